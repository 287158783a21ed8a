#!/usr/bin/env python3
"""Reads a hand-built kernel dump with an independent reader and prints what it found as JSON,
for tests/formats_independent.rs. Nothing of pooltriage is used here.

Usage:
  formats_read.py kdmp DUMP PFNS VAS   kdmp-parser (PyPI, C++ core): 64-bit dumps incl. RDMP types
  formats_read.py vol DUMP PFNS        Volatility 3's crash layer: x86 and x64, DumpType 1 and 5
  formats_read.py vol-json NAME        path of Volatility's symbols/windows/NAME (e.g. crash.json)
  formats_read.py isf-type ISF NAME    user type NAME of an ISF file (.json or .json.xz) as JSON

PFNS and VAS are comma-separated hex numbers ("0x10,0x11"; may be empty). Output:
  {"ok": true, "stored": ["0x..", ...],            # every PFN the reader indexes (kdmp only)
   "pages": {"0x10": "hex..." | null, ...},        # 4 KiB at each asked PFN, null = not stored
   "virt": [{"va": "0x..", "pa": "0x.." | null, "page": "hex" | null}]}   (kdmp only)
or {"ok": false, "error": "..."} when the reader refuses the file (exit code 0 either way, so
the test can assert on a refusal).
"""
import json
import os
import sys

PAGE = 0x1000


def nums(arg):
    return [int(x, 16) for x in arg.split(",") if x.strip()]


def quiet_stdout():
    """kdmp-parser's C++ core prints diagnostics on fd 1: send them to stderr, keep the JSON."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out


def kdmp(path, pfns, vas):
    import kdmp_parser

    try:
        dump = kdmp_parser.KernelDumpParser(path)
    except Exception as e:  # noqa: BLE001 - any refusal is a result
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    raw = dump._KernelDumpParser__dump  # the C++ object: GetPhysmem() is the PA -> offset map
    stored = sorted(int(pa) // PAGE for pa in raw.GetPhysmem())
    pages = {}
    for pfn in pfns:
        page = dump.read_physical_page(pfn * PAGE)
        pages[f"{pfn:#x}"] = None if page is None else bytes(page).hex()
    virt = []
    for va in vas:
        pa = dump.translate_virtual(va)
        page = dump.read_virtual_page(va & ~(PAGE - 1))
        virt.append({"va": f"{va:#x}", "pa": None if pa is None else f"{pa:#x}",
                     "page": None if page is None else bytes(page).hex()})
    return {"ok": True, "type": int(dump.type), "stored": [f"{p:#x}" for p in stored],
            "pages": pages, "virt": virt}


def vol(path, pfns):
    from volatility3.framework import contexts, exceptions
    from volatility3.framework.layers import crash, physical

    ctx = contexts.Context()
    ctx.config["base.location"] = "file://" + os.path.abspath(path)
    ctx.add_layer(physical.FileLayer(ctx, "base", "base"))
    with open(path, "rb") as f:
        wide = f.read(8) == b"PAGEDU64"
    cls = crash.WindowsCrashDump64Layer if wide else crash.WindowsCrashDump32Layer
    ctx.config["crash.base_layer"] = "base"
    try:
        layer = cls(ctx, "crash", "crash")
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    pages = {}
    for pfn in pfns:
        try:
            pages[f"{pfn:#x}"] = layer.read(pfn * PAGE, PAGE).hex()
        except exceptions.InvalidAddressException:
            pages[f"{pfn:#x}"] = None
    return {"ok": True, "layer": cls.__name__, "pages": pages}


def vol_json(name):
    import volatility3.framework.symbols.windows as w

    return os.path.join(os.path.dirname(w.__file__), name)


def isf_type(path, name):
    import lzma

    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt") as f:
        return json.load(f)["user_types"].get(name)


def main(argv):
    if len(argv) >= 3 and argv[1] == "vol-json":
        print(vol_json(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "isf-type":
        print(json.dumps(isf_type(argv[2], argv[3])))
        return 0
    out = quiet_stdout()
    if len(argv) == 5 and argv[1] == "kdmp":
        result = kdmp(argv[2], nums(argv[3]), nums(argv[4]))
    elif len(argv) == 4 and argv[1] == "vol":
        result = vol(argv[2], nums(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(result, out)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
