//! One x86 frame undone with a PDB's frame record: an FPO_DATA layout or a FRAMEDATA program
//! string evaluated over the stack (`stack::fpo::step`, `stack::program::evaluate`). Program
//! strings come from PDBs a customer or vendor supplies, so every operator, name and stack
//! depth is hostile input.
//!
//! Input: bytes 0..16 the record's locals, saved registers and parameters and the callee's
//! parameters (u32 each); byte 16 bit 0 a program (else an FPO_DATA layout), bit 1 the function
//! uses EBP as a general register, bit 2 the instruction is the function's first; bytes 17..25
//! ESP and EBP; then the program text up to a NUL (at most [`MAX_TEXT`] bytes); the rest is
//! stack memory ([`Sparse`] records, 4-byte pointers).

use crate::mem::Sparse;
use analyzer::stack::context::{Registers, RBP, RSP};
use analyzer::stack::fpo::{step, FrameFacts};
use analyzer::symbols::frame_data::{FrameRecord, FrameRule};

/// Longer than any program a PDB may carry here (`frame_data::MAX_PROGRAM` is refused).
pub const MAX_TEXT: usize = 600;
/// Where the frame's function starts; the instruction is inside it.
pub const FUNCTION_RVA: u32 = 0x1000;

pub fn frame_data(data: &[u8]) {
    let word = |i: usize| crate::le(data, 4 * i, 4) as u32;
    let flags = crate::le(data, 16, 1);
    let rest = data.get(25..).unwrap_or_default();
    let end = rest
        .iter()
        .take(MAX_TEXT)
        .position(|&b| b == 0)
        .unwrap_or(rest.len().min(MAX_TEXT));
    let text = String::from_utf8_lossy(&rest[..end]).into_owned();
    let mem = Sparse::parse(rest.get(end + 1..).unwrap_or_default(), 4);
    let rule = if flags & 1 == 1 {
        FrameRule::Program(text)
    } else {
        FrameRule::Fpo {
            uses_base_pointer: flags & 2 == 2,
        }
    };
    let record = FrameRecord {
        rva: FUNCTION_RVA,
        size: 0x100,
        locals: word(0),
        saved_regs: word(1),
        params: word(2),
        function_start: true,
        rule,
    };
    let mut regs = Registers {
        ip: u64::from(FUNCTION_RVA) + 0x10,
        ..Registers::default()
    };
    regs.gpr[RSP] = crate::le(data, 17, 4);
    regs.gpr[RBP] = crate::le(data, 21, 4);
    let facts = FrameFacts {
        record: &record,
        callee_params: word(3),
        at_entry: flags & 4 == 4,
    };
    let _ = step(&regs, facts, &mem);
}
