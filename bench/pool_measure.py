#!/usr/bin/env python3
"""The pool benchmark, called by bench/pool.sh: times pooltriage's whole pool
analysis side by side with Volatility 3's windows.bigpools and windows.poolscanner on forged
busy-server dumps, and writes its section of bench/RESULTS.md (between its markers;
the rest of the file is left alone) plus bench/POOL_RESULTS.json.

Usage: pool_measure.py --runs N --out RESULTS.md --poolscanner-timeout S LABEL=DUMP ...
Environment (from pool.sh): BENCH_POOLTRIAGE, BENCH_ISF_DIR, BENCH_VOL, BENCH_VOL_SYMBOLS,
BENCH_OUT (scratch folder for outputs and Volatility caches), BENCH_OUR_COMMANDS (our subcommands
to time, e.g. "analyze pool blocks"), BENCH_WHOLE (those that together are the whole pool
analysis: "analyze", or "pool blocks" when the binary has no `analyze`).

Each command runs under /usr/bin/time -v through measure.run_once (max RSS; RssAnon and RssFile
sampled every 2 ms). Our commands' stdout goes to a file (a 2-million-block JSON listing is
~700 MB; piping it into this script would measure the pipe). One warm-up run each, then N runs
interleaved, medians. poolscanner gets a timeout; a run that hits it is recorded as such.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (run_once, machine, POOL_SECTION_BEGIN/END)


def to_file(cmd, out):
    """`cmd > out` with the measured process still the direct child of /usr/bin/time."""
    return ["sh", "-c", 'out="$1"; shift; exec "$@" > "$out"', "sh", out] + cmd


def commands(dump, label, env):
    pt, isf, out = env["BENCH_POOLTRIAGE"], env["BENCH_ISF_DIR"], env["BENCH_OUT"]
    safe = label.replace(" ", "-")
    cmds = {}
    for sub in env["BENCH_OUR_COMMANDS"].split():
        cmds[f"pooltriage {sub} --json"] = to_file([pt, sub, dump, "--json", "--isf-dir", isf], f"{out}/{safe}.{sub}.json")
    for plugin in ("windows.bigpools", "windows.poolscanner"):
        cache = f"{out}/vol-cache-{safe}-{plugin}"
        os.makedirs(cache, exist_ok=True)
        cmds[f"vol {plugin}"] = [env["BENCH_VOL"], "-q", "--offline", "-r", "json", "-s", env["BENCH_VOL_SYMBOLS"],
                                 "--cache-path", cache, "-f", dump, plugin]
    return cmds


def check(dump, label, env):
    """Untimed: do we and Volatility see the same pool? Our `pool --json` block counts against
    the truth file's block_counts, and our big allocations against windows.bigpools'."""
    pt = env["BENCH_POOLTRIAGE"]
    r = measure.run_once([pt, "pool", dump, "--json", "--isf-dir", env["BENCH_ISF_DIR"]])
    ours = json.loads(r["stdout"])
    truth = json.load(open(dump + ".truth.json"))["pool"]["block_counts"]
    seg = ours.get("segment_heap") or {}
    big = [e for e in (ours.get("big_pages") or {}).get("entries", [])]
    vol = measure.run_once([env["BENCH_VOL"], "-q", "--offline", "-r", "json", "-s", env["BENCH_VOL_SYMBOLS"],
                            "--cache-path", f"{env['BENCH_OUT']}/vol-cache-{label.replace(' ', '-')}-windows.bigpools",
                            "-f", dump, "windows.bigpools"])
    vol_rows = json.loads(vol["stdout"])
    vol_big = {(row["Allocation"] & ((1 << 48) - 1), row["NumberOfBytes"]) for row in vol_rows}
    our_big = {(int(e["va"], 16) & ((1 << 48) - 1), e["size"]) for e in big}
    return {
        "truth_blocks": sum(truth.values()),
        "truth_block_counts": truth,
        "our_lfh_blocks": seg.get("lfh_blocks"),
        "our_vs_blocks": seg.get("vs_blocks"),
        "our_big": len(big),
        "our_blocks": (seg.get("lfh_blocks") or 0) + (seg.get("vs_blocks") or 0) + len(big),
        "our_tags": len(ours.get("tags") or []),
        "vol_bigpools_rows": len(vol_rows),
        "big_agree": vol_big == our_big,
        "errors": ours.get("errors"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--poolscanner-timeout", type=float, default=3600)
    ap.add_argument("--note", default="")
    ap.add_argument("dumps", nargs="+", help="LABEL=PATH")
    a = ap.parse_args()
    env = os.environ
    rows, checks = [], {}
    for spec in a.dumps:
        label, path = spec.split("=", 1)
        cmds = commands(path, label, env)
        timeout = {name: (a.poolscanner_timeout if "poolscanner" in name else None) for name in cmds}
        for name, c in cmds.items():
            print(f"warm-up {label}: {name}", file=sys.stderr)
            measure.run_once(c, timeout=timeout[name])
        checks[label] = check(path, label, env)
        print(f"{label}: {checks[label]}", file=sys.stderr)
        results = {k: [] for k in cmds}
        for i in range(a.runs):
            for name, c in cmds.items():
                r = measure.run_once(c, timeout=timeout[name])
                what = "TIMED OUT" if r.get("timed_out") else f"max RSS {measure.mib(r['max_rss_kb'])} MiB"
                print(f"{label} run {i + 1}: {name}: {r['wall_s']:.2f} s, {what}", file=sys.stderr)
                results[name].append(r)
        for name, rs in results.items():
            done = [r for r in rs if not r.get("timed_out")]
            rows.append({
                "dump": label,
                "file_gib": os.path.getsize(path) / 2**30,
                "alloc_gib": os.stat(path).st_blocks * 512 / 2**30,
                "command": name,
                "timed_out": len(rs) - len(done),
                "wall_s": statistics.median(r["wall_s"] for r in done) if done else None,
                "wall_all": [round(r["wall_s"], 3) for r in rs],
                "max_rss_kb": statistics.median(r["max_rss_kb"] for r in done) if done else None,
                "peak_anon_kb": statistics.median(r["peak_anon_kb"] for r in rs),
                "peak_file_kb": statistics.median(r["peak_file_kb"] for r in rs),
                "stderr_tail": rs[-1]["stderr"].strip().splitlines()[-1:] if rs[-1]["stderr"].strip() else [],
            })
    m = measure.machine()
    whole = env.get("BENCH_WHOLE", env["BENCH_OUR_COMMANDS"]).split()
    ours_names = [f"pooltriage {s} --json" for s in whole]
    lines = [
        "# Pool analysis benchmark (`bench/pool.sh`)",
        "",
        f"Made on {m['date']} at commit {m['commit']}{' (with uncommitted changes)' if m['dirty'] else ''}: "
        f"{m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB RAM, Linux {m['kernel']}.",
        f"Forged `busy-server` kernel-bitmap dumps (win10-19041-x64 unless the label says otherwise); {a.runs} timed runs per",
        "command after one warm-up run, interleaved; medians. Our commands write their JSON to a file; Volatility prints JSON",
        "to a pipe. All use the corpus ISF (pooltriage `--isf-dir`, Volatility `-s` with the same files).",
    ]
    if a.note:
        lines += ["", a.note]
    lines += [
        "",
        "| dump | file (on disk) | command | wall s (median) | all runs | max RSS MiB | peak RssAnon MiB | peak RssFile MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        wall = "timed out" if r["wall_s"] is None else f"{r['wall_s']:.3f}"
        if r["timed_out"] and r["wall_s"] is not None:
            wall += f" ({r['timed_out']} run(s) timed out)"
        rss = "-" if r["max_rss_kb"] is None else measure.mib(r["max_rss_kb"])
        lines.append(
            f"| {r['dump']} | {r['file_gib']:.2f} GiB ({r['alloc_gib']:.2f} GiB) | {r['command']} | {wall} | "
            f"{', '.join(f'{w:.2f}' for w in r['wall_all'])} | {rss} | {measure.mib(r['peak_anon_kb'])} | {measure.mib(r['peak_file_kb'])} |"
        )
    lines += ["", "Whole pool analysis by pooltriage (sum of the medians of " + " + ".join(f"`{n}`" for n in ours_names) + "):", ""]
    for label in checks:
        by = {r["command"]: r for r in rows if r["dump"] == label}
        total = sum(by[n]["wall_s"] for n in ours_names)
        rss = max(by[n]["max_rss_kb"] for n in ours_names)
        anon = max(by[n]["peak_anon_kb"] for n in ours_names)
        lines.append(f"- {label}: {total:.2f} s, max RSS {measure.mib(rss)} MiB (heap at most {measure.mib(anon)} MiB).")
    lines += ["", "Same pool? (untimed runs) Our `pool --json` block counts against the truth file, our big allocations against `windows.bigpools`:", ""]
    lines += ["| dump | truth blocks (with free) | ours: LFH + VS + big (free LFH and VS included) | truth counts | our tags | big: ours / vol rows | same big set |",
              "|---|---|---|---|---|---|---|"]
    for label, c in checks.items():
        lines.append(
            f"| {label} | {c['truth_blocks']} | {c['our_blocks']} = {c['our_lfh_blocks']} + {c['our_vs_blocks']} + {c['our_big']} | "
            f"{c['truth_block_counts']} | {c['our_tags']} | {c['our_big']} / {c['vol_bigpools_rows']} | {'yes' if c['big_agree'] else '**NO**'} |"
        )
    text = "\n".join(lines) + "\n"
    measure.write_section(a.out, measure.POOL_SECTION_BEGIN, measure.POOL_SECTION_END, text)
    with open(os.path.join(os.path.dirname(a.out), "POOL_RESULTS.json"), "w") as f:
        json.dump({"machine": m, "rows": rows, "checks": checks}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
