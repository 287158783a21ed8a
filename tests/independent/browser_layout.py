#!/usr/bin/env python3
"""Checks the pages of `pooltriage serve` in a real headless Chromium (Debian's `chromium`), for
tests/service_layout.rs: for each signed-in role and each page, at a phone's width (390 px) and
a desktop's (1400 px),

- the document is no wider than the viewport (nothing scrolls sideways; wide tables must scroll
  inside their own box);
- every visible piece of text has WCAG 2.1 AA contrast against the background it is drawn on
  (4.5:1; 3:1 for large text: 24 px, or 18.66 px bold), computed here from the rendered colours,
  not read from the stylesheet.

Usage: browser_layout.py --base URL --login ROLE=TOKEN ... --path PATH ... [--support-path PATH ...]
`--support-path` pages are visited only by roles other than `customer`.

Prints one JSON object: {"checked": N, "problems": [...]}; exit code 0 when there are none.
Only the standard library, websocket-client and the CDP helpers of browser_upload.py.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_upload import Cdp, page_ws, start_chromium  # noqa: E402

WIDTHS = (390, 1400)

# Runs in the page: the layout and contrast problems of the current document.
CHECK = r"""
(() => {
  const problems = [];
  const doc = document.documentElement;
  // clientWidth is the layout viewport (390 px on the phone): a mobile browser zooms out to
  // show overflowing content, which makes window.innerWidth grow with the page.
  const viewport = doc.clientWidth;
  if (doc.scrollWidth > viewport) {
    const wide = Array.from(document.querySelectorAll('body *'))
      .filter(e => e.getBoundingClientRect().right > viewport + 1 && !e.closest('.scroll'))
      .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.getAttribute('class') ? '.' + e.getAttribute('class') : ''));
    problems.push({kind: 'sideways', scrollWidth: doc.scrollWidth, viewport: viewport, widest: wide});
  }
  const rgba = s => { const m = s.match(/[\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lin = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  const lum = c => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]));
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let base = [255, 255, 255];
    for (let i = layers.length - 1; i >= 0; i--) base = over(layers[i], base);
    return base;
  };
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || el.closest('[hidden]')) continue;
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim() !== '');
    if (!own) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right < 0) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
    const fg = rgba(st.color), bg = background(el);
    const ratio = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const c = ratio(lum(over(fg, bg)), lum(bg));
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    checked++;
    if (c < need) {
      problems.push({kind: 'contrast', element: el.tagName.toLowerCase() + (el.getAttribute('class') ? '.' + el.getAttribute('class') : ''),
                     text: el.textContent.trim().slice(0, 60), ratio: Math.round(c * 100) / 100, need: need,
                     color: st.color, background: 'rgb(' + bg.map(Math.round).join(', ') + ')'});
    }
  }
  return {problems: problems, checked: checked};
})()
"""


def sign_in(cdp, base, token):
    cdp.call("Network.clearBrowserCookies")
    cdp.call("Page.navigate", url=f"{base}/login")
    cdp.wait_for("document.readyState === 'complete' && !!document.querySelector('input[name=token]')", 30, "login form")
    cdp.eval(
        "(() => { const f = document.querySelector('input[name=token]');"
        f" f.value = {json.dumps(token)}; f.form.submit(); return true; }})()"
    )
    cdp.wait_for("location.pathname === '/' && document.readyState === 'complete'", 30, "portal after login")


def visit(cdp, url):
    cdp.call("Page.navigate", url=url)
    cdp.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'", 30, url)
    return cdp.eval(CHECK)


def run(args):
    base = args.base.rstrip("/")
    profile = tempfile.mkdtemp(prefix="pooltriage-layout-")
    proc = None
    problems, checked = [], 0
    try:
        proc, port = start_chromium(profile)
        cdp = Cdp(page_ws(port))
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Network.enable")
        for login in args.login:
            role, token = login.split("=", 1)
            sign_in(cdp, base, token)
            paths = args.path + (args.support_path if role != "customer" else [])
            for width in WIDTHS:
                cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                         deviceScaleFactor=1, mobile=width < 500)
                for path in paths:
                    out = visit(cdp, base + path)
                    checked += out["checked"]
                    for p in out["problems"]:
                        p.update(role=role, width=width, path=path)
                        problems.append(p)
        # The sign-in page, signed out.
        cdp.call("Network.clearBrowserCookies")
        for width in WIDTHS:
            cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                     deviceScaleFactor=1, mobile=width < 500)
            out = visit(cdp, base + "/login")
            checked += out["checked"]
            for p in out["problems"]:
                p.update(role="signed out", width=width, path="/login")
                problems.append(p)
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps({"checked": checked, "problems": problems}))
    return 0 if not problems else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--login", action="append", default=[], help="ROLE=TOKEN")
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--support-path", action="append", default=[])
    sys.exit(run(ap.parse_args()))


if __name__ == "__main__":
    main()
