#!/usr/bin/env python3
"""Checks forged pool-scenario dumps with Volatility 3's windows.bigpools (an independent reader)
against the truth file's pool.big_pages: same addresses, tags, sizes and free/allocated status.

usage: check_bigpools.py [--vol VOL] [--corpus DIR] [--xp-isf FILE] DUMP...

Volatility reads symbols from a scratch directory holding COPIES of the corpus ISF files (never
links into the read-only corpus: a tool writing through a link would damage it). XP needs the
ISF Volatility's pdbconv makes from corpus/pdb/ntkrnlpa.pdb (scripts/test.sh makes it under
.cache/vol-symbols). Volatility does not report a size for XP's 12-byte entries (NumberOfPages,
not NumberOfBytes): there the size is not compared.
"""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--vol", default=os.path.join(os.path.dirname(__file__), "../../.venv/bin/vol"))
ap.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "../../../shared/corpus"))
ap.add_argument("--xp-isf", default=os.path.join(os.path.dirname(__file__),
                "../../.cache/vol-symbols/windows/ntkrnlpa.pdb/30B5FB31AE7E4ACAABA750AA241FF331-1.json.xz"))
ap.add_argument("dumps", nargs="+")
a = ap.parse_args()

syms = tempfile.mkdtemp(prefix="bigpools-syms-")
mp = os.path.join(syms, "windows", "ntkrnlmp.pdb")
pa = os.path.join(syms, "windows", "ntkrnlpa.pdb")
os.makedirs(mp)
os.makedirs(pa)
for f in glob.glob(os.path.join(a.corpus, "isf", "ntkrnlmp.pdb", "*.json.xz")):
    shutil.copyfile(f, os.path.join(mp, os.path.basename(f)))  # a copy, never a link
if os.path.exists(a.xp_isf):
    shutil.copyfile(a.xp_isf, os.path.join(pa, os.path.basename(a.xp_isf)))

ok = True
mask = (1 << 48) - 1
for dmp in a.dumps:
    truth = json.load(open(dmp + ".truth.json"))
    if not truth.get("pool"):
        print("SKIP", dmp, "(no pool scenario)")
        continue
    out = subprocess.run([a.vol, "-q", "--offline", "-s", syms, "-r", "json", "-f", dmp, "windows.bigpools",
                          "--show-free"], capture_output=True, text=True)
    try:
        rows = json.loads(out.stdout[out.stdout.index("["):])
    except ValueError:
        print("FAIL", dmp, "volatility:", out.stderr.strip()[-400:])
        ok = False
        continue
    got = sorted((r["Allocation"] & mask & ~1, r["Tag"].rstrip(), r["NumberOfBytes"], r["Status"] != "Allocated")
                 for r in rows)
    exp = sorted((int(b["va"], 16) & mask, b["tag"].rstrip(), b["size"], b["free"]) for b in truth["pool"]["big_pages"])
    if all(g[2] is None for g in got):
        got = [(g[0], g[1], None, g[3]) for g in got]
        exp = [(e[0], e[1], None, e[3]) for e in exp]
    if got == exp:
        print(f"OK   {os.path.basename(dmp)}: {len(got)} entries ({sum(1 for g in got if g[3])} free) as planted")
    else:
        ok = False
        print("DIFF", dmp, "volatility only:", sorted(set(got) - set(exp))[:5], "truth only:", sorted(set(exp) - set(got))[:5])
shutil.rmtree(syms)
sys.exit(0 if ok else 1)
