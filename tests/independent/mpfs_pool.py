#!/usr/bin/env python3
"""Prints MemProcFS's pool map of a dump as JSON, for tests/pool_independent.rs.

usage: LD_LIBRARY_PATH=<site-packages>/leechcorepyc:<site-packages>/memprocfs python mpfs_pool.py DUMP

MemProcFS (PyPI memprocfs, pinned in requirements.txt) walks the segment heap itself
(vmm.maps.pool(): LFH, VS and big-page blocks). Output: a list of {kind, va, size, tag,
allocated} with kind "big" / "vs" / "lfh" (MemProcFS type codes 2 / 4 / 5; any other code is
printed as its number so the test sees it), va as "0x..." and size in bytes, both as MemProcFS
reports them (for LFH/VS: the data after the 16-byte POOL_HEADER, without it). No interpretation
beyond the renaming: the test allows for MemProcFS's quirks (../shared/docs/independent-readers.md).
"""
import json
import sys

import memprocfs

KINDS = {2: "big", 4: "vs", 5: "lfh"}


def main():
    dump = sys.argv[1]
    # -disable-symbolserver: offline; its bundled info.db holds the 19041 kernel's symbols.
    vmm = memprocfs.Vmm(["-device", dump, "-waitinitialize", "-disable-symbolserver"])
    try:
        pool = vmm.maps.pool()
        rows = [
            {
                "kind": KINDS.get(e["tpSS"], e["tpSS"]),
                "va": hex(va),
                "size": e["cb"],
                "tag": e["tag"],
                "allocated": bool(e["alloc"]),
            }
            for va, e in pool["va"].items()
        ]
    finally:
        vmm.close()
    json.dump(sorted(rows, key=lambda r: int(r["va"], 16)), sys.stdout)


if __name__ == "__main__":
    main()
