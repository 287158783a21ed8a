#!/usr/bin/env python3
"""Checks forged 19041 pool-scenario dumps with MemProcFS (PyPI memprocfs), which walks the
segment heap itself: its pool map (vmm.maps.pool()) must list exactly the truth's LFH, VS and
big blocks.

usage: LD_LIBRARY_PATH=<site-packages>/leechcorepyc:<site-packages>/memprocfs \
       python3 check_memprocfs.py DUMP...

Quirks allowed for (../shared/docs/independent-readers.md): addresses are those of the data
after the 16-byte POOL_HEADER and sizes exclude it; freed big-page entries are reported as
allocated; free VS chunks are not reported (LFH free blocks are, as free); classic blocks are not
walked on these builds. MemProcFS type codes: 2 big, 4 VS, 5 LFH.
"""
import collections, json, sys
import memprocfs

SS = {2: "big", 4: "vs", 5: "lfh"}
ok = True
for dmp in sys.argv[1:]:
    truth = json.load(open(dmp + ".truth.json"))["pool"]
    vmm = memprocfs.Vmm(["-device", dmp, "-waitinitialize", "-disable-symbolserver"])
    got = {(SS.get(e["tpSS"], e["tpSS"]), va, e["cb"], e["tag"], e["alloc"]) for va, e in vmm.maps.pool()["va"].items()}
    vmm.close()
    if truth["blocks"] is None:
        # busy-server: no block list in the truth; compare counts per kind.
        c = truth["block_counts"]
        kinds = collections.Counter(g[0] for g in got)
        want = {"lfh": c.get("lfh", 0) + c.get("lfh_free", 0), "vs": c.get("vs", 0),
                "big": sum(1 for b in truth["big_pages"])}
        if dict(kinds) == want:
            print(f"OK   {dmp}: counts equal {want}")
        else:
            ok = False
            print("DIFF", dmp, "memprocfs", dict(kinds), "truth", want)
        continue
    exp = set()
    for b in truth["blocks"]:
        a = int(b["address"], 16)
        if b["source"] == "big":
            exp.add(("big", a, b["size"], b["tag"], True))
        elif b["source"] == "lfh":
            exp.add(("lfh", a + 16, b["size"] - 16, b["tag"], b["allocated"]))
        elif b["source"] == "vs" and b["allocated"]:
            exp.add(("vs", a + 16, b["size"] - 16, b["tag"], True))
    for b in truth["big_pages"]:
        if b["free"]:
            exp.add(("big", int(b["va"], 16), b["size"], b["tag"], True))
    kinds = collections.Counter(g[0] for g in got)
    if got == exp:
        print(f"OK   {dmp}: {len(got)} blocks equal ({dict(kinds)})")
    else:
        ok = False
        print("DIFF", dmp, "memprocfs only:", sorted(got - exp)[:5], "truth only:", sorted(exp - got)[:5])
sys.exit(0 if ok else 1)
