#!/usr/bin/env python3
"""Reads a 64-bit kernel dump with kdmp-parser (PyPI; C++ core, nothing of ours) and prints JSON.

Usage: kdmp_read.py DUMP ADDRS_FILE

ADDRS_FILE holds one virtual address per line ("0x..." hex). For each address the output holds
kdmp-parser's translation (`translate_virtual`, through the header's DirectoryTableBase) and the
4 KiB page that contains it (`read_virtual_page`), as hex; null where kdmp-parser cannot
translate or read it. The dump header as kdmp-parser decodes it comes first, so tests can check
the forge's header against an independent parser too (with its context record: ContextFlags,
Rip, Rsp, Rbp and the non-volatile registers).

    {"header": {"dump_type": 5, "directory_table_base": "0x1ad000", ...},
     "reads": [{"va": "0x...", "pa": "0x..." | null, "page": "hex" | null}, ...]}
"""
import json
import os
import sys

import kdmp_parser

PAGE = 0x1000


def hexs(v):
    return None if v is None else f"{v:#x}"


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    # kdmp-parser's C++ core prints diagnostics ("Invalid page table entry...") on stdout: point
    # fd 1 at stderr while it runs and keep the real stdout for the JSON.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    dump = kdmp_parser.KernelDumpParser(argv[1])
    h = dump.header
    header = {
        "dump_type": int(dump.type),
        "directory_table_base": hexs(h.DirectoryTableBase),
        "machine_image_type": hexs(h.MachineImageType),
        "major_version": h.MajorVersion,
        "minor_version": h.MinorVersion,
        "processors": h.NumberProcessors,
        "bugcheck_code": hexs(h.BugCheckCode),
        "bugcheck_params": [hexs(p) for p in h.BugCheckCodeParameter],
        "kd_debugger_data_block": hexs(h.KdDebuggerDataBlock),
        "ps_loaded_module_list": hexs(h.PsLoadedModuleList),
        "ps_active_process_head": hexs(h.PsActiveProcessHead),
        "system_time": hexs(h.SystemTime),
    }
    # The header's context record as kdmp-parser decodes it (CONTEXT at +0x348).
    c = dump.context
    header["context"] = {
        k.lower(): hexs(getattr(c, k))
        for k in ("ContextFlags", "Rip", "Rsp", "Rbp", "Rbx", "Rsi", "Rdi", "R12", "R13", "R14", "R15")
    }
    reads = []
    with open(argv[2]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            va = int(line, 16)
            pa = dump.translate_virtual(va)
            page = dump.read_virtual_page(va & ~(PAGE - 1))
            reads.append({"va": hexs(va), "pa": hexs(pa), "page": None if page is None else bytes(page).hex()})
    json.dump({"header": header, "reads": reads}, out)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
