#!/usr/bin/env python3
"""Reads kernel virtual pages of a 32-bit (x86 PAE or non-PAE) kernel dump with Volatility 3's
own layers (the crash-dump layer and its Intel paging layers; nothing of ours) and prints JSON.

Usage: vol_virt_read.py DUMP ADDRS_FILE

ADDRS_FILE holds one page-aligned virtual address per line ("0x..." hex). The page tables are
walked from the header's DirectoryTableBase (DUMP_HEADER32 offset 0x10) with PAE as the header's
PaeEnabled byte (offset 0x5c) says. Output: {"reads": [{"va": "0x...", "page": "hex" | null}]}.
kdmp-parser (tests/independent/kdmp_read.py) reads only 64-bit dumps; this is its x86 twin.
"""
import json
import os
import struct
import sys

PAGE = 0x1000


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    from volatility3.framework import contexts, exceptions
    from volatility3.framework.layers import crash, intel, physical

    path = os.path.abspath(argv[1])
    with open(path, "rb") as f:
        head = f.read(0x60)
    if head[:8] != b"PAGEDUMP":
        print("not a 32-bit kernel dump", file=sys.stderr)
        return 2
    dtb = struct.unpack_from("<I", head, 0x10)[0]
    pae = head[0x5C] != 0
    ctx = contexts.Context()
    ctx.config["base.location"] = "file://" + path
    ctx.add_layer(physical.FileLayer(ctx, "base", "base"))
    ctx.config["crash.base_layer"] = "base"
    ctx.add_layer(crash.WindowsCrashDump32Layer(ctx, "crash", "crash"))
    cls = intel.IntelPAE if pae else intel.Intel
    ctx.config["virt.memory_layer"] = "crash"
    ctx.config["virt.page_map_offset"] = dtb
    layer = cls(ctx, "virt", "virt")
    reads = []
    with open(argv[2]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            va = int(line, 16)
            try:
                page = layer.read(va, PAGE).hex()
            except exceptions.InvalidAddressException:
                page = None
            reads.append({"va": f"{va:#x}", "page": page})
    json.dump({"reads": reads}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
