#!/usr/bin/env python3
"""Independent oracle for pool allocation call sites, from GNU objdump's own reading of a PE
driver (binutils-mingw-w64: x86_64-w64-mingw32-objdump / i686-w64-mingw32-objdump).

Usage: objdump_sites.py DRIVER.sys  ->  JSON on stdout:
  {"bits": 64, "image_base": N,
   "sites": [{"call": N, "allocator": "ExAllocatePoolWithTag", "thunk": N|null, "tail": bool,
              "tag": "Leak"|null, "tag_insn": N|null, "size": N|null, "pool": N|null}],
   "rejected": [{"address": N, "tag": "Leak", "why": "..."}]}

What it does, with objdump's text only (no code of pooltriage):
- `objdump -p` gives ImageBase and the import tables: the IAT slot of import i of a DLL is
  ImageBase + FirstThunk + i * pointer size. The allocators are named by the WDK docs.
- `objdump -d -M intel` gives the instructions. An allocator call is a `call`/`jmp` through an
  allocator's slot (`[rip+x] # slot`, x86 `ds:slot`), through a register loaded from that slot
  earlier in the function (`mov rsi, [rip+x] # slot` ... `call rsi`), or a `call` to an import
  thunk (a `jmp` through the slot). A `jmp` through a slot right after padding or a return is
  the thunk itself, not a site.
- In the few instructions before the call (back to the previous call, jump, return or
  branch target, at most 12) it reads the last write of each argument: x64 ecx/edx/r8d/r9d
  (`mov reg, imm`, `xor reg, reg`) and [rsp+8k] stores of immediates, x86 the pushes (last push
  = first argument). Anything else writing the argument makes it unknown.
- Rejected: printable four-byte immediates that reach no allocator: those of cmp/test, and
  those moved into a volatile argument register whose next control transfer is a call or jump
  through a non-allocator import slot, or a return.
"""
import json
import re
import subprocess
import sys

# name -> (kind, {x64 slots}, {x86 slots}) with slots for pool / size / tag (None: not an
# argument). x64 slots 0..3 are rcx, rdx, r8, r9, slot k >= 4 is [rsp+8k]; x86 slot k is the
# dword at [esp+4k] at the call (POOL_FLAGS is 64-bit: two dwords).
TST = {"pool": 0, "size": 1, "tag": 2}
TS = {"pool": 0, "size": 1, "tag": None}
ALLOCATORS = {
    "ExAllocatePool": (TS, TS),
    "ExAllocatePoolWithQuota": (TS, TS),
    "ExAllocatePoolWithTag": (TST, TST),
    "ExAllocatePoolWithQuotaTag": (TST, TST),
    "ExAllocatePoolWithTagPriority": (TST, TST),
    "ExAllocatePool2": (TST, {"pool": 0, "size": 2, "tag": 3}),
    "ExAllocatePool3": (TST, {"pool": 0, "size": 2, "tag": 3}),
    "ExInitializeNPagedLookasideList": ({"pool": None, "size": 4, "tag": 5},) * 2,
    "ExInitializePagedLookasideList": ({"pool": None, "size": 4, "tag": 5},) * 2,
    "ExInitializeLookasideListEx": ({"pool": 3, "size": 5, "tag": 6},) * 2,
    "NdisAllocateMemoryWithTagPriority": ({"pool": None, "size": 1, "tag": 2},) * 2,
}
X64_ARG_REGS = [
    {"rcx", "ecx", "cx", "cl", "ch"},
    {"rdx", "edx", "dx", "dl", "dh"},
    {"r8", "r8d", "r8w", "r8b"},
    {"r9", "r9d", "r9w", "r9b"},
]
X64_VOLATILE = {"rax", "eax", "rcx", "ecx", "rdx", "edx", "r8", "r8d", "r9", "r9d", "r10",
                "r10d", "r11", "r11d"}
X86_VOLATILE = {"eax", "ecx", "edx"}
WINDOW = 12


def objdump(bits):
    return "x86_64-w64-mingw32-objdump" if bits == 64 else "i686-w64-mingw32-objdump"


def run(args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def file_bits(path):
    out = run(["x86_64-w64-mingw32-objdump", "-f", path])
    if "pei-x86-64" in out:
        return 64
    if "pei-i386" in out:
        return 32
    raise SystemExit(f"{path}: not a PE driver objdump knows: {out}")


def imports(path, bits):
    """ImageBase and {slot: name} of every import, from `objdump -p`."""
    text = run([objdump(bits), "-p", path])
    base = int(re.search(r"^ImageBase\s+([0-9a-fA-F]+)", text, re.M).group(1), 16)
    ptr = 8 if bits == 64 else 4
    slots = {}
    first_thunk = None
    index = 0
    for line in text.splitlines():
        m = re.match(r"^ ([0-9a-f]{8})\t([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8})$", line)
        if m:
            first_thunk = int(m.group(6), 16)
            index = 0
            continue
        m = re.match(r"^\t([0-9a-f]+)\s+(\d+)\s+(\S+)", line)
        if m and first_thunk:
            slots[base + first_thunk + index * ptr] = m.group(3)
            index += 1
    return base, slots


def instructions(path, bits):
    """[(address, mnemonic, operands)] in address order, from `objdump -d -M intel`."""
    text = run([objdump(bits), "-d", "-M", "intel", "--no-show-raw-insn", path])
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s+([0-9a-f]+):\t(.*)$", line)
        if not m:
            continue
        body = m.group(2).split("#")[0].strip()
        comment = m.group(2).split("#")[1].strip() if "#" in m.group(2) else ""
        parts = body.split(None, 1)
        if not parts:
            continue
        mnem = parts[0]
        ops = parts[1] if len(parts) > 1 else ""
        # Prefixes objdump prints as words.
        while mnem in ("rex.W", "rex", "bnd", "notrack", "lock", "rep", "repz", "repnz", "ds",
                       "cs", "data16") and ops:
            p = ops.split(None, 1)
            if mnem in ("rep", "repz", "repnz"):
                mnem, ops = mnem + " " + p[0], (p[1] if len(p) > 1 else "")
                break
            mnem, ops = p[0], (p[1] if len(p) > 1 else "")
        out.append((int(m.group(1), 16), mnem, ops, comment))
    return out


def slot_of(ops, comment, bits):
    """The memory address a `call`/`jmp` goes through, if it is a fixed one."""
    if bits == 64 and "[rip+" in ops or "[rip-" in ops:
        m = re.match(r"0x([0-9a-f]+)", comment)
        return int(m.group(1), 16) if m else None
    m = re.search(r"ds:0x([0-9a-f]+)$", ops)
    return int(m.group(1), 16) if m else None


def direct(ops):
    m = re.match(r"^0x([0-9a-f]+)$", ops.strip())
    return int(m.group(1), 16) if m else None


def imm_of(s):
    s = s.strip()
    if re.match(r"^-?0x[0-9a-f]+$", s):
        v = int(s, 16)
        return v & 0xFFFFFFFFFFFFFFFF
    if re.match(r"^\d+$", s):
        return int(s)
    return None


def printable_tag(v):
    if v is None or v > 0xFFFFFFFF:
        return None
    b = v.to_bytes(4, "little")
    if all(0x20 <= c < 0x7F for c in b) and b != b"    ":
        return b.decode()
    return None


def is_transfer(mnem):
    return mnem.startswith("j") or mnem in ("call", "ret", "int3", "ud2", "iretq", "loop")


def dest(ops):
    return ops.split(",")[0].strip() if ops else ""


def src(ops):
    return ops.split(",", 1)[1].strip() if "," in ops else ""


IMPLICIT = {  # registers some instructions write without naming them
    "mul": {"rdx", "edx"}, "div": {"rdx", "edx"}, "idiv": {"rdx", "edx"}, "cdq": {"rdx", "edx"},
    "cqo": {"rdx", "edx"}, "cpuid": {"rcx", "ecx", "rdx", "edx"}, "rdtsc": {"rdx", "edx"},
    "rdmsr": {"rdx", "edx"},
}


def writes_reg(mnem, ops, names):
    if mnem in ("cmp", "test", "push") or mnem.startswith("j"):
        return False
    if mnem in IMPLICIT and IMPLICIT[mnem] & names:
        return True
    if mnem.startswith("rep") and names & {"rcx", "ecx"}:
        return True
    if mnem == "xchg" and any(o.strip() in names for o in ops.split(",")):
        return True
    return dest(ops) in names


def reg_value(window, names, bits):
    """The last value written to a register (any alias in `names`) in the window."""
    for addr, mnem, ops, _ in reversed(window):
        if not writes_reg(mnem, ops, names):
            continue
        if mnem == "mov" and imm_of(src(ops)) is not None:
            v = imm_of(src(ops))
            return (v & 0xFFFFFFFF if dest(ops).startswith("e") or dest(ops).endswith("d")
                    else v), addr
        if mnem in ("xor", "sub") and src(ops) == dest(ops):
            return 0, addr
        return None, None
    return None, None


def stack_value(window, off, width):
    """x64: the last store of an immediate to [rsp+off] in the window."""
    want = f"[rsp+0x{off:x}]"
    for addr, mnem, ops, _ in reversed(window):
        if want in dest(ops) and mnem == "mov":
            w = dest(ops).split()[0]
            ok = {"QWORD": 8, "DWORD": 4}.get(w, 0) >= width
            v = imm_of(src(ops))
            return (v, addr) if ok and v is not None else (None, None)
        if mnem in ("push", "pop", "sub", "add") and "rsp" in dest(ops):
            return None, None
    return None, None


def pushes_value(window, k):
    """x86: the k-th push before the call (0 = the last one)."""
    n = 0
    for addr, mnem, ops, _ in reversed(window):
        if "esp" in dest(ops) and mnem != "push":
            return None, None
        if mnem == "push":
            if n == k:
                v = imm_of(ops)
                return (v & 0xFFFFFFFF, addr) if v is not None else (None, None)
            n += 1
        elif mnem == "pop":
            return None, None
    return None, None


def window_before(insns, i, targets):
    """The instructions before insns[i] back to a transfer, a branch target, or WINDOW."""
    out = []
    j = i - 1
    while j >= 0 and len(out) < WINDOW:
        addr, mnem, ops, _ = insns[j]
        if is_transfer(mnem):
            break
        out.append(insns[j])
        if addr in targets:
            break
        j -= 1
    return list(reversed(out))


def arg(window, k, width, bits):
    if k is None:
        return None, None
    if bits == 64 and k < 4:
        return reg_value(window, X64_ARG_REGS[k], bits)
    if bits == 64:
        return stack_value(window, 8 * k, width)
    return pushes_value(window, k)


def register_slot(insns, i, reg, slots, bits):
    """`call reg`: the allocator slot `reg` was loaded from earlier in the function."""
    j = i - 1
    while j >= 0 and i - j < 64:
        addr, mnem, ops, comment = insns[j]
        if mnem in ("ret", "int3"):
            return None
        if dest(ops) == reg and mnem != "call":
            if mnem == "mov":
                s = slot_of(src(ops), comment, bits)
                return s if s in slots else None
            return None
        if mnem == "call" and reg in (X64_VOLATILE if bits == 64 else X86_VOLATILE):
            return None
        j -= 1
    return None


def main():
    path = sys.argv[1]
    bits = file_bits(path)
    base, slots = imports(path, bits)
    alloc_slots = {s: n for s, n in slots.items() if n in ALLOCATORS}
    insns = instructions(path, bits)
    targets = {direct(ops) for _, m, ops, _ in insns if m.startswith("j") or m == "call"}
    targets.discard(None)
    # Import thunks: `jmp [slot]` at a function's start (after padding or a return).
    thunks = {}
    for i, (addr, mnem, ops, comment) in enumerate(insns):
        if mnem == "jmp":
            s = slot_of(ops, comment, bits)
            prev = insns[i - 1][1] if i else "ret"
            if s in alloc_slots and prev in ("int3", "ret", "nop", "jmp", "xchg"):
                thunks[addr] = s
    sites = []
    used_tags = set()
    for i, (addr, mnem, ops, comment) in enumerate(insns):
        if mnem not in ("call", "jmp") or addr in thunks:
            continue
        s = slot_of(ops, comment, bits)
        thunk = None
        if s is None and direct(ops) in thunks:
            thunk = direct(ops)
            s = thunks[thunk]
        if s is None and re.match(r"^[er][a-z0-9]+$", ops.strip()):
            s = register_slot(insns, i, ops.strip(), alloc_slots, bits)
        if s not in alloc_slots:
            continue
        if mnem == "jmp" and thunk is None and direct(ops) is not None:
            continue
        name = alloc_slots[s]
        layout = ALLOCATORS[name][0 if bits == 64 else 1]
        window = window_before(insns, i, targets)
        ptr = 8 if bits == 64 else 4
        size_width = 4 if name.startswith("Ndis") else ptr
        if mnem == "jmp" and bits == 32:
            # A tail jump: the caller's return address is on the stack below the arguments.
            pool = size = tag = (None, None)
        else:
            pool = arg(window, layout["pool"], 4, bits)
            size = arg(window, layout["size"], size_width, bits)
            tag = arg(window, layout["tag"], 4, bits)
        tag_text = printable_tag(tag[0]) if layout["tag"] is not None else "None"
        if tag[1] is not None and tag_text:
            used_tags.add(tag[1])
        sites.append({
            "call": addr, "allocator": name, "thunk": thunk, "tail": mnem == "jmp",
            "tag": tag_text, "tag_insn": tag[1] if layout["tag"] is not None else None,
            "size": size[0], "pool": pool[0],
        })
    rejected = []
    volatile = X64_VOLATILE if bits == 64 else X86_VOLATILE
    for i, (addr, mnem, ops, comment) in enumerate(insns):
        tag = None
        for operand in ops.split(","):
            tag = tag or printable_tag(imm_of(operand))
        if not tag or addr in used_tags:
            continue
        if mnem in ("cmp", "test"):
            rejected.append({"address": addr, "tag": tag, "why": mnem})
            continue
        if mnem != "mov" or dest(ops) not in volatile:
            continue
        for j in range(i + 1, min(i + 16, len(insns))):
            _, m2, ops2, c2 = insns[j]
            if m2 == "ret":
                rejected.append({"address": addr, "tag": tag, "why": "ret"})
                break
            if m2 in ("call", "jmp"):
                s = slot_of(ops2, c2, bits)
                if s in slots and s not in alloc_slots:
                    rejected.append({"address": addr, "tag": tag, "why": slots[s]})
                break
            if is_transfer(m2) or writes_reg(m2, ops2, {dest(ops)}):
                break
    json.dump({"bits": bits, "image_base": base, "sites": sites, "rejected": rejected},
              sys.stdout, indent=1)


if __name__ == "__main__":
    main()
