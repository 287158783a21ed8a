#!/usr/bin/env python3
"""Runs the benchmark commands side by side and writes bench/RESULTS.md. Called by bench/run.sh.

Usage: measure.py --runs N --out RESULTS.md --label LABEL=DUMP ... -- (commands come from run.sh
via environment: BENCH_POOLTRIAGE, BENCH_READ_ALL, BENCH_PYTHON, BENCH_KDMP_SCRIPT)

Every command runs under `/usr/bin/time -v` (maximum resident set size; its wall clock has only
10 ms resolution, so wall time is taken around the process with perf_counter, which includes
the ~1 ms start of /usr/bin/time itself). While it
runs, its /proc/PID/status is sampled every 2 ms for the peak of RssAnon (heap: what the program
allocated) and RssFile (pages of the memory-mapped dump that happen to be resident: the kernel
reclaims those at will, so they are not memory the program holds). One warm-up run of each
command first, so every timed run reads the dump from the page cache, not from disk; then N runs
per command, interleaved, and the median.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time


# bench/pool.sh's section of RESULTS.md (bench/pool_measure.py writes it between these).
POOL_SECTION_BEGIN = "<!-- bench/pool.sh -->"
POOL_SECTION_END = "<!-- /bench/pool.sh -->"
# Every other bench script's section starts with "<!-- bench/NAME -->": run.sh keeps them all.
OTHER_SECTIONS = "<!-- bench/"


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def run_once(cmd, timeout=None):
    """Runs `cmd` under /usr/bin/time -v. With `timeout` (seconds), a command still running then
    is killed (with its process group) and the result says `timed_out` instead of exiting."""
    timed_out = False
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tf.name] + cmd, stdout=subprocess.PIPE, stderr=err,
                             start_new_session=timeout is not None)
        anon = file_ = 0
        child = None
        out_chunks = []
        # Poll the measured process (the child of /usr/bin/time) until it ends.
        os.set_blocking(p.stdout.fileno(), False)
        while p.poll() is None:
            if child is None:
                kids = children(p.pid)
                child = kids[0] if kids else None
            if child is not None:
                a = status_kb(child, "RssAnon")
                f = status_kb(child, "RssFile")
                anon = max(anon, a or 0)
                file_ = max(file_, f or 0)
            try:
                chunk = p.stdout.read()
                if chunk:
                    out_chunks.append(chunk)
            except (BlockingIOError, TypeError):
                pass
            time.sleep(0.002)
            if timeout is not None and not timed_out and time.perf_counter() - t0 > timeout:
                timed_out = True
                os.killpg(p.pid, 9)
        wall_precise = time.perf_counter() - t0
        rest = p.stdout.read()
        if rest:
            out_chunks.append(rest)
        text = tf.read()
        err.seek(0)
        stderr = err.read()
    if timed_out:
        return {"wall_s": wall_precise, "timed_out": True, "max_rss_kb": 0, "peak_anon_kb": anon, "peak_file_kb": file_,
                "stdout": "", "stderr": stderr}
    if p.returncode != 0:
        sys.exit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{text}")
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"wall_s": wall_precise, "time_v_wall_s": wall, "max_rss_kb": rss, "peak_anon_kb": anon, "peak_file_kb": file_, "stdout": b"".join(out_chunks).decode(errors="replace"), "stderr": stderr}


def machine():
    def cmd(c):
        try:
            return subprocess.run(c, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""
    model = next((l.split(":", 1)[1].strip() for l in cmd(["lscpu"]).splitlines() if l.startswith("Model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    return {
        "nproc": cmd(["nproc"]).strip(),
        "cpu": model,
        "mem_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": cmd(["git", "rev-parse", "--short", "HEAD"]).strip() or "?",
        "dirty": bool(cmd(["git", "status", "--porcelain", "--untracked-files=no"]).strip()),
    }


def mib(kb):
    return f"{kb / 1024:.1f}"


def write_section(results_md, begin, end, text):
    """Puts `text` between the markers `begin` and `end` in results_md: replaced where the
    section already is (the rest of the file is other scripts'), else appended."""
    try:
        with open(results_md) as f:
            old = f.read()
    except OSError:
        old = "# Benchmark results\n"
    section = f"{begin}\n{text.strip()}\n{end}\n"
    at, until = old.find(begin), old.find(end)
    if at >= 0 and until > at:
        tail = old[until + len(end):].lstrip("\n")
        new = old[:at] + section + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    with open(results_md, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", required=True, help="forged physical memory size, for the report")
    ap.add_argument("dumps", nargs="+", help="LABEL=PATH")
    a = ap.parse_args()
    env = os.environ
    rows = []
    raw = {}
    verify = {}
    for spec in a.dumps:
        label, path = spec.split("=", 1)
        cmds = {
            "pooltriage inspect": [env["BENCH_POOLTRIAGE"], "inspect", path] + env.get("BENCH_INSPECT_ARGS", "").split(),
            "pooltriage reader: every stored page": [env["BENCH_READ_ALL"], path],
            "kdmp-parser (Python wheel): every stored page": [env["BENCH_PYTHON"], env["BENCH_KDMP_SCRIPT"], path],
        }
        results = {k: [] for k in cmds}
        for name, c in cmds.items():  # warm-up: the dump comes from the page cache afterwards
            print(f"warm-up {label}: {name}", file=sys.stderr)
            run_once(c)
        # Both readers must have seen the same bytes: compare page count and checksum (untimed).
        ours = run_once(cmds["pooltriage reader: every stored page"])["stdout"]
        theirs = json.loads(run_once(cmds["kdmp-parser (Python wheel): every stored page"] + ["--checksum"])["stdout"].strip().splitlines()[-1])
        ours_kv = dict(l.split(": ", 1) for l in ours.splitlines() if ": " in l)
        agree = ours_kv.get("pages") == str(theirs["pages"]) and ours_kv.get("checksum") == theirs["checksum"]
        verify[label] = (ours_kv.get("pages"), ours_kv.get("checksum"), theirs["pages"], theirs["checksum"], agree)
        print(f"{label}: same pages and checksum as kdmp-parser: {agree} {verify[label]}", file=sys.stderr)
        for i in range(a.runs):
            for name, c in cmds.items():
                r = run_once(c)
                print(f"{label} run {i + 1}: {name}: {r['wall_s']:.2f} s, max RSS {mib(r['max_rss_kb'])} MiB", file=sys.stderr)
                results[name].append(r)
        size = os.path.getsize(path)
        alloc = os.stat(path).st_blocks * 512
        for name, rs in results.items():
            kdmp_inner = None
            if "kdmp" in name:
                inner = [json.loads(r["stdout"].strip().splitlines()[-1]) for r in rs]
                kdmp_inner = {k: statistics.median(x[k] for x in inner) for k in ("parse_s", "read_s", "loop_only_s")}
                kdmp_inner["pages"] = inner[0]["pages"]
            rows.append({
                "dump": label,
                "file_gib": size / 2**30,
                "alloc_gib": alloc / 2**30,
                "command": name,
                "wall_s": statistics.median(r["wall_s"] for r in rs),
                "wall_all": [round(r["wall_s"], 3) for r in rs],
                "max_rss_kb": statistics.median(r["max_rss_kb"] for r in rs),
                "peak_anon_kb": statistics.median(r["peak_anon_kb"] for r in rs),
                "peak_file_kb": statistics.median(r["peak_file_kb"] for r in rs),
                "kdmp": kdmp_inner,
                "stdout_tail": rs[-1]["stdout"].strip().splitlines()[-1:] if rs[-1]["stdout"].strip() else [],
                "stderr_tail": rs[-1]["stderr"].strip().splitlines()[-1:] if rs[-1]["stderr"].strip() else [],
            })
        raw[label] = path
    m = machine()
    lines = [
        "# Benchmark results",
        "",
        f"Made by `bench/run.sh` on {m['date']} at commit {m['commit']}{' (with uncommitted changes)' if m['dirty'] else ''}: "
        f"{m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB RAM, Linux {m['kernel']}.",
        f"Forged dumps of {a.size} of physical memory (profile and formats below); {a.runs} timed runs per command after one",
        "warm-up run (the dump is in the page cache: this measures the readers, not the disk); medians.",
        "The machine is shared (other builds may run at the same time), so treat differences under ~20 % as noise.",
        "",
        "| dump | file size (allocated on disk) | command | wall s (median) | all runs | max RSS MiB | peak RssAnon MiB | peak RssFile MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dump']} | {r['file_gib']:.2f} GiB ({r['alloc_gib'] * 1024:.1f} MiB) | {r['command']} | {r['wall_s']:.3f} | "
            f"{', '.join(f'{w:.3f}' for w in r['wall_all'])} | {mib(r['max_rss_kb'])} | {mib(r['peak_anon_kb'])} | {mib(r['peak_file_kb'])} |"
        )
    lines += ["", "Summary per dump (medians):", ""]
    for label in raw:
        by = {r["command"]: r for r in rows if r["dump"] == label}
        ours = by["pooltriage reader: every stored page"]
        kd = by["kdmp-parser (Python wheel): every stored page"]
        insp = by["pooltriage inspect"]
        pages = kd["kdmp"]["pages"] or 1
        lines.append(
            f"- {label}: {pages} stored pages. Every page: pooltriage {ours['wall_s']:.3f} s "
            f"({ours['wall_s'] / pages * 1e6:.2f} us/page, heap {mib(ours['peak_anon_kb'])} MiB) vs kdmp-parser "
            f"{kd['wall_s']:.3f} s ({kd['wall_s'] / pages * 1e6:.2f} us/page, heap {mib(kd['peak_anon_kb'])} MiB). "
            f"Opening: kdmp-parser's C++ parse alone {kd['kdmp']['parse_s']:.3f} s; the whole `pooltriage inspect` {insp['wall_s']:.3f} s."
        )
    lines += ["", "kdmp-parser's own timings inside its process (medians):", ""]
    lines += ["| dump | stored pages | parse (C++: map file, build page map) s | read every page via binding s | Python loop alone s |", "|---|---|---|---|---|"]
    for r in rows:
        k = r["kdmp"]
        if k:
            lines.append(f"| {r['dump']} | {k['pages']} | {k['parse_s']:.3f} | {k['read_s']:.2f} | {k['loop_only_s']:.3f} |")
    lines += ["", "Same bytes? Page count and checksum (wrapping sum of all u64 words) of a separate, untimed run of each reader:", ""]
    lines += ["| dump | pooltriage pages | pooltriage checksum | kdmp-parser pages | kdmp-parser checksum | agree |", "|---|---|---|---|---|---|"]
    for label, (op, oc, kp, kc, ok) in verify.items():
        lines.append(f"| {label} | {op} | {oc} | {kp} | {kc} | {'yes' if ok else '**NO**'} |")
    lines += ["", "Last line each of our commands printed:", ""]
    for r in rows:
        if "kdmp" not in r["command"]:
            lines.append(f"- {r['dump']}, {r['command']}: `{' '.join(r['stdout_tail'])[:200]}`"
                         + (f" (stderr: `{' '.join(r['stderr_tail'])[:200]}`)" if r["stderr_tail"] else ""))
    lines.append("")
    # Other bench scripts (pool.sh, service.sh) keep their sections after this one: carry them over.
    kept = ""
    try:
        with open(a.out) as f:
            old = f.read()
        at = old.find(OTHER_SECTIONS)
        if at >= 0:
            kept = "\n" + old[at:]
    except OSError:
        pass
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + kept)
    with open(a.out.replace(".md", ".json"), "w") as f:
        json.dump({"machine": m, "rows": rows}, f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
