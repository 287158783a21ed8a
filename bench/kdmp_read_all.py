#!/usr/bin/env python3
"""Reads every physical page stored in a kernel dump with kdmp-parser (PyPI), for bench/run.sh.

Usage: kdmp_read_all.py DUMP [--checksum]   -> one JSON line on stdout:
  {"pages": N, "bytes": N, "parse_s": .., "read_s": .., "loop_only_s": ..}

- parse_s: `KernelDumpParser(DUMP)`: kdmp-parser's C++ core maps the file and builds its
  physical-address -> page map (one hash-map entry per stored page).
- read_s: one pass over that map, fetching every page through the C++ `GetPhysicalPage`
  (the page-read API the wheel exposes; there is no whole-dump iterator in C++).
- loop_only_s: the same pass without fetching pages, i.e. the Python iteration overhead that
  read_s includes and a C++ caller would not pay.
The page contents cross into Python as the binding returns them; their length is summed so
that every page is really produced. With --checksum (a separate, untimed verification run) it
also prints the wrapping sum of all pages' little-endian u64 words, as the read_all_pages example
does, so bench/run.sh can check that both readers saw the same bytes.
"""
import json
import os
import sys
import time

import kdmp_parser


def main(argv):
    checksum = "--checksum" in argv[2:]
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the C++ core prints diagnostics on stdout

    t0 = time.perf_counter()
    dump = kdmp_parser.KernelDumpParser(argv[1])
    t1 = time.perf_counter()
    raw = dump._KernelDumpParser__dump  # the C++ object behind the Pythonic wrapper
    get = raw.GetPhysicalPage
    pages = 0
    total = 0
    for pa in raw.GetPhysmem():
        total += len(get(pa))
        pages += 1
    t2 = time.perf_counter()
    n = 0
    for pa in raw.GetPhysmem():
        n += 1
    t3 = time.perf_counter()
    result = {"pages": pages, "bytes": total, "parse_s": t1 - t0, "read_s": t2 - t1, "loop_only_s": t3 - t2}
    if checksum:
        s = 0
        for pa in raw.GetPhysmem():
            s += sum(memoryview(bytes(get(pa))).cast("Q"))
        result["checksum"] = f"{s % (1 << 64):#018x}"
    json.dump(result, out)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
