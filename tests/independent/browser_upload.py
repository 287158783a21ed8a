#!/usr/bin/env python3
"""Drives a real headless Chromium (Debian's `chromium`) over the DevTools protocol through the
upload portal of `pooltriage serve`, for tests/service_browser.rs:

1. signs in on /login with a token (the real form, submitted by the page);
2. opens the portal `/` and drops a file on #drop-zone with a REAL drag and drop
   (CDP Input.dispatchDragEvent with `data.files`: Chromium builds the File and fires
   dragenter/dragover/drop on the page, as when a user drops a file from the desktop);
3. waits until the page navigates to /dumps/{id}, then until its text contains every --expect
   and its #verdict every --verdict.

Progress goes to stdout as JSON lines ({"event": ...}), so the Rust test can act while the upload
runs (restart the server); the last line is {"event": "done", "url", "text", "title"}.
Optional: --throttle BYTES_PER_SEC slows uploads (Network.emulateNetworkConditions).

Only the standard library and websocket-client (pinned in requirements.txt). Exit code 0 when
every step passed, 1 with {"event": "error", "error": ...} otherwise.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client


def emit(**kw):
    print(json.dumps(kw), flush=True)


class Cdp:
    """A minimal CDP client over one page's websocket: commands, and events kept for waiting."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {expr[:80]}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def wait_for(self, expr, timeout, what):
        """Polls a page expression until it is truthy; the page may navigate in between."""
        end = time.time() + timeout
        last_err = None
        while time.time() < end:
            try:
                v = self.eval(expr)
                if v:
                    return v
            except RuntimeError as e:  # navigation in progress: context destroyed
                last_err = e
            time.sleep(0.2)
        raise TimeoutError(f"{what}: not true after {timeout} s ({expr}); last error: {last_err}")


def start_chromium(profile_dir):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise RuntimeError("chromium not found: install Debian's chromium (scripts/test.sh APT_PACKAGES)")
    args = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-allow-origins=*",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile_dir}",
        "about:blank",
    ]
    # Chromium and its helpers in their own process group, killed together at the end; and, where
    # util-linux's setpriv is there, a parent-death signal: if this driver is killed outright
    # (the test failed and dropped it), Chromium dies with it instead of running on.
    setpriv = shutil.which("setpriv")
    if setpriv:
        args = [setpriv, "--pdeathsig", "KILL", "--"] + args
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # Chromium writes the port it chose into DevToolsActivePort in the profile directory.
    port_file = os.path.join(profile_dir, "DevToolsActivePort")
    end = time.time() + 60
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} at start")
        try:
            with open(port_file) as f:
                port = int(f.readline().strip())
            return proc, port
        except (OSError, ValueError):
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("chromium did not open its DevTools port within 60 s")


def page_ws(port):
    end = time.time() + 30
    while time.time() < end:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise RuntimeError("no page target in chromium")


def run(args):
    base = args.base.rstrip("/")
    profile = tempfile.mkdtemp(prefix="pooltriage-chromium-")
    proc = None
    try:
        proc, port = start_chromium(profile)
        cdp = Cdp(page_ws(port))
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Network.enable")
        if args.throttle:
            cdp.call(
                "Network.emulateNetworkConditions",
                offline=False,
                latency=0,
                downloadThroughput=-1,
                uploadThroughput=args.throttle,
            )

        # 1. Sign in through the real login form.
        cdp.call("Page.navigate", url=f"{base}/login")
        cdp.wait_for("document.readyState === 'complete' && !!document.querySelector('input[name=token]')", 30, "login form")
        cdp.eval(
            "(() => { const f = document.querySelector('input[name=token]');"
            f" f.value = {json.dumps(args.token)}; f.form.submit(); return true; }})()"
        )
        cdp.wait_for("location.pathname === '/' && document.readyState === 'complete'", 30, "portal after login")
        emit(event="logged_in", url=cdp.eval("location.href"))

        # 2. The portal: the contract's elements, the script loaded, then a real drop.
        cdp.wait_for(
            "!!(document.getElementById('drop-zone') && document.getElementById('file-input')"
            " && document.getElementById('upload-form') && document.getElementById('progress')"
            " && document.getElementById('upload-status'))",
            30,
            "portal elements #drop-zone #file-input #upload-form #progress #upload-status",
        )
        cdp.wait_for(
            "Array.from(document.scripts).some(s => s.src.endsWith('/static/upload.js'))", 10, "upload.js on the page"
        )
        if args.via == "drop":
            rect = cdp.eval(
                "(() => { const r = document.getElementById('drop-zone').getBoundingClientRect();"
                " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
            )
            data = {"items": [], "files": [os.path.abspath(args.file)], "dragOperationsMask": 1}
            for kind in ("dragEnter", "dragOver", "drop"):
                cdp.call("Input.dispatchDragEvent", type=kind, x=rect["x"], y=rect["y"], data=data)
        else:
            # The file picker: set #file-input's file as a user choosing it would, then click the
            # form's submit button with a real mouse click.
            root = cdp.call("DOM.getDocument")["root"]["nodeId"]
            node = cdp.call("DOM.querySelector", nodeId=root, selector="#file-input")["nodeId"]
            cdp.call("DOM.setFileInputFiles", files=[os.path.abspath(args.file)], nodeId=node)
            rect = cdp.eval(
                "(() => { const b = document.querySelector('#upload-form [type=submit]');"
                " b.scrollIntoView(); const r = b.getBoundingClientRect();"
                " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
            )
            for kind in ("mousePressed", "mouseReleased"):
                cdp.call("Input.dispatchMouseEvent", type=kind, x=rect["x"], y=rect["y"], button="left", clickCount=1)
        emit(event="dropped", file=os.path.abspath(args.file), via=args.via)

        # 3. Progress, then the dump's page.
        end = time.time() + args.timeout
        last = None
        while time.time() < end:
            try:
                state = cdp.eval(
                    "({path: location.pathname,"
                    " value: (document.getElementById('progress') || {}).value,"
                    " status: (document.getElementById('upload-status') || {}).textContent})"
                )
            except RuntimeError:
                state = None  # navigating
            if state:
                if state["path"].startswith("/dumps/"):
                    break
                if state != last:
                    emit(event="progress", value=state.get("value"), status=state.get("status"))
                    last = state
            time.sleep(0.2)
        else:
            raise TimeoutError(f"the browser never reached /dumps/ (last state {last})")
        emit(event="page", url=cdp.eval("location.href"))
        conds = [f"document.body.innerText.includes({json.dumps(e)})" for e in args.expect]
        conds += [
            f"(document.getElementById('verdict') || {{innerText: ''}}).innerText.includes({json.dumps(v)})"
            for v in args.verdict
        ]
        want = " && ".join(conds) or "true"
        try:
            cdp.wait_for(f"document.readyState === 'complete' && {want}", args.timeout, f"page text with {args.expect}")
        finally:
            text = None
            try:
                text = cdp.eval("document.body.innerText")
            except RuntimeError:
                pass
            verdict = None
            try:
                verdict = cdp.eval("(document.getElementById('verdict') || {innerText: null}).innerText")
            except RuntimeError:
                pass
            emit(event="done", url=cdp.eval("location.href"), title=cdp.eval("document.title"), text=text, verdict=verdict)
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def on_term(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # runs the clean-up in run()'s finally


def main():
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--token", required=True)
    ap.add_argument("--file", required=True, help="the dump to drop")
    ap.add_argument("--expect", action="append", default=[], help="text the dump page must show")
    ap.add_argument("--verdict", action="append", default=[], help="text the page's #verdict must show")
    ap.add_argument("--via", choices=["drop", "picker"], default="drop",
                    help="drag and drop on #drop-zone, or choose in #file-input and submit")
    ap.add_argument("--throttle", type=int, default=0, help="upload bytes per second (0 = no limit)")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    try:
        run(args)
    except (Exception, SystemExit) as e:  # one line for the test's failure message
        emit(event="error", error=f"{type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
