#!/usr/bin/env python3
"""Service benchmark, called by bench/service.sh:

1. upload throughput on loopback of one large dump to `pooltriage serve`, as one raw
   `POST /api/v1/dumps` and as a resumable chunked upload (`/api/v1/uploads`, sequential PUTs),
   with the server's resident memory sampled from /proc/PID/status (VmRSS, RssAnon) every 20 ms
   while the dump streams in;
2. analysis jobs per minute for small forged dumps with N workers.

The clients are Python's http.client from the standard library, sending the file in 1 MiB
writes from disk (page cache): the client holds one block (raw) or one chunk (chunked) at a time.
Timings are wall clock from the first byte sent to the answer, so they include the server's
hashing, its final fsync of the file and the database commit. During the throughput runs the
analyzer is /bin/true (the job fails at once), so no analysis competes for the 2 cores; the jobs
run uses the real analyzer (`pooltriage analyze` as the service runs it).

Writes its section of bench/RESULTS.md between SECTION_BEGIN and SECTION_END (replaced on each
run, the rest of the file untouched) and the raw figures to bench/out/service.json.
"""
import argparse
import sys
import datetime
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (status_kb, machine, write_section)

SECTION_BEGIN = "<!-- bench/service.sh -->"
SECTION_END = "<!-- /bench/service.sh -->"
BLOCK = 1 << 20


class RssSampler:
    """Peak VmRSS and RssAnon (KiB) of one process, sampled every 20 ms in a thread."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_rss = 0
        self.peak_anon = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rss = measure.status_kb(self.pid, "VmRSS")
            anon = measure.status_kb(self.pid, "RssAnon")
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)
                self.samples += 1
            if anon is not None:
                self.peak_anon = max(self.peak_anon, anon)
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


class Server:
    def __init__(self, binary, data_dir, env):
        self.data_dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        out = subprocess.run(
            [binary, "tokens", "create", "--tenant", "bench", "--role", "admin", "--data-dir", data_dir],
            check=True, capture_output=True, text=True,
        )
        self.token = out.stdout.strip()
        e = dict(os.environ)
        e.update(env)
        e.setdefault("POOLTRIAGE_UPLOAD_BURST", "1000")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e, text=True,
        )
        line = self.proc.stdout.readline()
        m = re.match(r"listening on http://([0-9.]+):(\d+)", line)
        if not m:
            raise RuntimeError(f"serve did not start: {line!r}")
        self.host, self.port = m.group(1), int(m.group(2))

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=600, blocksize=BLOCK)

    def headers(self, extra=None):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(extra or {})
        return h

    def call(self, method, path, body=None, headers=None):
        c = self.conn()
        c.request(method, path, body=body, headers=self.headers(headers))
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, (json.loads(data) if data else None)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def upload_raw(srv, path):
    size = os.path.getsize(path)
    c = srv.conn()
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        c.request("POST", "/api/v1/dumps", body=f,
                  headers=srv.headers({"Content-Length": str(size), "Content-Type": "application/octet-stream"}))
        r = c.getresponse()
        body = r.read()
        dt = time.perf_counter() - t0
    c.close()
    if r.status not in (200, 201):
        raise RuntimeError(f"raw upload: HTTP {r.status} {body[:200]!r}")
    return dt, json.loads(body)


def upload_chunked(srv, path, chunk):
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    status, up = srv.call("POST", "/api/v1/uploads", body=json.dumps({"filename": os.path.basename(path), "size": size}),
                          headers={"Content-Type": "application/json"})
    if status != 201:
        raise RuntimeError(f"start upload: HTTP {status} {up}")
    url = up["upload_url"]
    chunk = chunk or up["chunk_size"]
    c = srv.conn()
    last = None
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            data = f.read(chunk)
            c.request("PUT", url, body=data, headers=srv.headers({"Upload-Offset": str(offset),
                                                                  "Content-Type": "application/octet-stream"}))
            r = c.getresponse()
            last = json.loads(r.read())
            if r.status != 200:
                raise RuntimeError(f"PUT at {offset}: HTTP {r.status} {last}")
            offset = last["offset"]
    dt = time.perf_counter() - t0
    c.close()
    if not last or not last.get("complete"):
        raise RuntimeError(f"chunked upload did not complete: {last}")
    return dt, last


def machine():
    """measure.machine() plus the file system the data directories are on."""
    m = measure.machine()
    try:
        out = subprocess.run(["df", "-h", "--output=source,fstype", "."], capture_output=True, text=True).stdout
        m["disk"] = " ".join(out.split("\n")[1].split())
    except (OSError, IndexError):
        m["disk"] = ""
    return m


def throughput(binary, big, runs, work):
    size = os.path.getsize(big)
    results = []
    modes = [("raw POST /api/v1/dumps", lambda s: upload_raw(s, big)),
             ("chunked, 8 MiB PUTs", lambda s: upload_chunked(s, big, 0)),
             ("chunked, 64 MiB PUTs", lambda s: upload_chunked(s, big, 64 << 20))]
    for name, fn in modes:
        times, peaks, anons = [], [], []
        for i in range(runs):
            d = os.path.join(work, f"tp-{len(results)}-{i}")
            srv = Server(binary, d, {"POOLTRIAGE_ANALYZER": "/bin/true", "POOLTRIAGE_WORKERS": "1"})
            try:
                idle = measure.status_kb(srv.proc.pid, "VmRSS")
                with RssSampler(srv.proc.pid) as s:
                    dt, _ = fn(srv)
                times.append(dt)
                peaks.append(s.peak_rss)
                anons.append(s.peak_anon)
            finally:
                srv.stop()
                shutil.rmtree(d, ignore_errors=True)
            print(f"  {name}: run {i + 1}: {dt:.2f} s, {size / dt / 1e6:.0f} MB/s, server peak VmRSS {s.peak_rss / 1024:.1f} MiB"
                  f" (RssAnon {s.peak_anon / 1024:.1f} MiB, idle {idle / 1024:.1f} MiB)", flush=True)
        t = statistics.median(times)
        results.append({"mode": name, "runs": runs, "seconds_median": t, "seconds": times,
                        "mb_per_s": size / t / 1e6, "peak_vmrss_kib": max(peaks), "peak_rssanon_kib": max(anons),
                        "idle_vmrss_kib": idle})
    return results


def jobs_per_minute(binary, small, workers_list, work):
    out = []
    for workers in workers_list:
        d = os.path.join(work, f"jobs-{workers}")
        srv = Server(binary, d, {"POOLTRIAGE_WORKERS": str(workers)})
        try:
            ids = []
            t0 = time.perf_counter()
            for p in small:
                _, v = upload_raw(srv, p)
                ids.append(v["id"])
            uploaded = time.perf_counter() - t0
            pending = set(ids)
            failed = []
            while pending:
                for i in list(pending):
                    _, v = srv.call("GET", f"/api/v1/dumps/{i}")
                    if v["status"] in ("done", "failed"):
                        pending.discard(i)
                        if v["status"] == "failed":
                            failed.append(v.get("error"))
                time.sleep(0.05)
                if time.perf_counter() - t0 > 3600:
                    raise RuntimeError("jobs not finished within an hour")
            total = time.perf_counter() - t0
        finally:
            srv.stop()
            shutil.rmtree(d, ignore_errors=True)
        jpm = len(small) / total * 60
        print(f"  {workers} worker(s): {len(small)} dumps in {total:.1f} s (uploads {uploaded:.1f} s): {jpm:.1f} jobs/min;"
              f" failed {len(failed)}", flush=True)
        out.append({"workers": workers, "dumps": len(small), "seconds": total, "upload_seconds": uploaded,
                    "jobs_per_minute": jpm, "failed": failed})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--big", required=True, help="the large dump for the throughput runs")
    ap.add_argument("--big-desc", default="")
    ap.add_argument("--small", nargs="+", required=True, help="distinct small dumps for the jobs run")
    ap.add_argument("--small-desc", default="")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--work", required=True, help="scratch directory for data dirs")
    ap.add_argument("--results", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    m = machine()
    size = os.path.getsize(a.big)
    print(f"throughput: {a.big} ({size / 2**30:.2f} GiB), {a.runs} run(s) per mode", flush=True)
    tp = throughput(a.bin, a.big, a.runs, a.work)
    print(f"jobs: {len(a.small)} small dumps, workers {a.workers}", flush=True)
    jobs = jobs_per_minute(a.bin, a.small, [int(w) for w in a.workers.split(",")], a.work)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open(a.json, "w") as f:
        json.dump({"date": date, "machine": m, "big": {"path": a.big, "bytes": size, "desc": a.big_desc},
                   "throughput": tp, "jobs": jobs}, f, indent=2)
    lines = [
        "# Service benchmark (`bench/service.sh`)",
        "",
        f"{date}; {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB RAM, Linux {m['kernel']}, "
        f"data directory on {m['disk']}. Release build; server and client on loopback; the machine is "
        "shared with other builds, so expect noise of tens of percent.",
        "",
        f"**Upload of one {size / 2**30:.2f} GiB dump** ({a.big_desc}), median of {a.runs} run(s) per mode. "
        "Wall clock from the first byte to the answer: streaming, SHA-256, the final fsync of the file "
        "and the database commit. Server memory sampled every 20 ms from /proc/PID/status while the "
        "dump streams in (the maximum over the runs).",
        "",
        "| mode | time | throughput | server peak VmRSS | peak RssAnon | idle VmRSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in tp:
        lines.append(f"| {r['mode']} | {r['seconds_median']:.2f} s | {r['mb_per_s']:.0f} MB/s | "
                     f"{r['peak_vmrss_kib'] / 1024:.1f} MiB | {r['peak_rssanon_kib'] / 1024:.1f} MiB | "
                     f"{r['idle_vmrss_kib'] / 1024:.1f} MiB |")
    lines += [
        "",
        f"**Analysis jobs per minute**: {len(a.small)} distinct small dumps ({a.small_desc}) uploaded back "
        "to back, timed from the first upload until every job is done (the real analyzer child per job, "
        "`pooltriage analyze` as the service runs it, with the kernel's ISF from POOLTRIAGE_ISF_DIR).",
        "",
        "| workers | dumps | total | jobs/min | failed |",
        "|---:|---:|---:|---:|---:|",
    ]
    for j in jobs:
        lines.append(f"| {j['workers']} | {j['dumps']} | {j['seconds']:.1f} s | {j['jobs_per_minute']:.1f} | {len(j['failed'])} |")
    lines += ["", "Raw figures: `bench/out/service.json` (not committed). Rerun: `bench/service.sh` (see bench/README.md)."]
    measure.write_section(a.results, SECTION_BEGIN, SECTION_END, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
