//! A KTRAP_FRAME as the kernel's trap handlers build it for a fault in kernel mode, the record
//! bug check 0x8E (KERNEL_MODE_EXCEPTION_NOT_HANDLED) names in its parameter 3. The fields'
//! offsets and the record's size come from the kernel's own symbols (`_KTRAP_FRAME` of
//! ntkrnlpa.pdb, of the ISF on x64), never from constants here.
//!
//! Where it lies: x86 pushes no stack pointer for a trap that does not change privilege, so the
//! trap frame ends where the interrupted stack goes on: its HardwareEsp field *is* the
//! interrupted ESP. x64 always stores Rsp; the frame lies below the interrupted stack, aligned
//! to 16 bytes as the processor aligns it.

use super::context::Registers;
use crate::system::System;
use crate::ForgeError;

/// Kernel code and stack selectors of the era (x86: 8 / 0x10; x64: 0x10 / 0x18).
const X86_CS: u64 = 8;
const X64_CS: u64 = 0x10;
const X64_SS: u64 = 0x18;
/// EFLAGS with IF set (and the reserved bit 1).
const EFLAGS: u64 = 0x10282;

/// Where the trap frame of a kernel-mode fault with registers `r` goes, and its bytes (on x86
/// only those below HardwareEsp).
pub fn build(sys: &System, r: &Registers) -> Result<(u64, Vec<u8>), ForgeError> {
    let x86 = sys.ptr_size() == 4;
    let esp = r.gpr[4];
    // x86: only the part below HardwareEsp is the trap frame's own; from there on lies the
    // interrupted stack, which must stay as it is.
    let (at, size) = if x86 {
        let tail = sys.offset("_KTRAP_FRAME", "HardwareEsp")?;
        (esp - tail, tail)
    } else {
        let size = sys.type_size("_KTRAP_FRAME")?;
        ((esp - size) & !0xf, size)
    };
    let mut b = vec![0u8; size as usize];
    let fields: Vec<(&str, u64)> = if x86 {
        vec![
            ("Eax", r.gpr[0]),
            ("Ecx", r.gpr[1]),
            ("Edx", r.gpr[2]),
            ("Ebx", r.gpr[3]),
            ("Ebp", r.gpr[5]),
            ("Esi", r.gpr[6]),
            ("Edi", r.gpr[7]),
            ("Eip", r.ip),
            ("SegCs", X86_CS),
            ("EFlags", EFLAGS),
            // The debugger's links, which the trap handlers set so an EBP walk crosses the
            // trap: DbgEbp = the interrupted EBP, DbgEip = its EIP.
            ("DbgEbp", r.gpr[5]),
            ("DbgEip", r.ip),
        ]
    } else {
        vec![
            ("Rax", r.gpr[0]),
            ("Rcx", r.gpr[1]),
            ("Rdx", r.gpr[2]),
            ("Rbx", r.gpr[3]),
            ("Rsp", esp),
            ("Rbp", r.gpr[5]),
            ("Rsi", r.gpr[6]),
            ("Rdi", r.gpr[7]),
            ("R8", r.gpr[8]),
            ("R9", r.gpr[9]),
            ("R10", r.gpr[10]),
            ("R11", r.gpr[11]),
            ("Rip", r.ip),
            ("SegCs", X64_CS),
            ("SegSs", X64_SS),
            ("EFlags", EFLAGS),
        ]
    };
    for (name, value) in fields {
        let off = sys.offset("_KTRAP_FRAME", name)? as usize;
        let width = field_width(name, x86);
        let dst = b
            .get_mut(off..off + width)
            .ok_or_else(|| ForgeError::Internal(format!("_KTRAP_FRAME.{name} past its size")))?;
        dst.copy_from_slice(&value.to_le_bytes()[..width]);
    }
    Ok((at, b))
}

/// Bytes of a field: x86 fields are 4 bytes; x64's segment selectors 2, EFlags 4, the rest 8.
fn field_width(name: &str, x86: bool) -> usize {
    match (x86, name) {
        (true, _) => 4,
        (false, "SegCs" | "SegSs") => 2,
        (false, "EFlags") => 4,
        _ => 8,
    }
}
