//! The x86 walk. 32-bit Windows code of the XP era is mostly compiled with EBP frames
//! (`push ebp; mov ebp, esp`): each frame's EBP points at the caller's saved EBP with the
//! return address above it ([`step`]). Code built with frame-pointer omission (FPO; MSVC's
//! `/Oy`, clang's `-O2` for i686) keeps no such chain: there the module's PDB describes each
//! function's frame, and the frame is undone with that record ([`super::fpo`]), as WinDbg does.
//! [`unwind`] chooses: a record of the FPO or FRAMEDATA kind covering the instruction, else
//! the EBP chain (no PDB, no record, or a record of an EBP frame). Each frame's
//! [`UnwoundBy`] says which was used. EBP 0 in a frame found through EBP (by the chain or by
//! an EBP frame's program) is the thread's first frame: the walk ends there.

use super::context::{Registers, RBP, RSP};
use super::fpo::{self, FrameFacts};
use super::walk::UnwoundBy;
use super::UnwindError;
use crate::memory::VirtualMemory;
use crate::symbols::frame_data::{FrameRule, FrameTable};

/// Where the x86 walk is at one frame.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    pub regs: &'a Registers,
    /// The RVA to look the frame up by: the instruction, or for a return address the byte
    /// before it (the call); `None` outside every module.
    pub rva: Option<u32>,
    /// The instruction is the CPU's (frame 0 or after a trap), not a return address.
    pub exact: bool,
    /// Bytes of parameters this frame passed to its callee, from the callee's record.
    pub callee_params: u32,
}

/// One frame undone: the caller's registers, how, and the parameter bytes this frame's record
/// says its own caller passed (the next step's `callee_params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwound {
    pub regs: Registers,
    pub by: UnwoundBy,
    pub params: u32,
}

/// The caller of the frame at `at`, with `table` (the module's PDB records) when there is one;
/// `Ok(None)` at the end of the EBP chain (EBP 0 in a frame no record covers).
pub fn unwind(
    at: Position<'_>,
    table: Option<&FrameTable>,
    stack: &dyn VirtualMemory,
) -> Result<Option<Unwound>, UnwindError> {
    let record = at.rva.and_then(|rva| table?.lookup(rva));
    match record {
        Some(r) if at.regs.bp() == 0 && is_ebp_frame_program(&r.rule) => Ok(None),
        Some(r) if !matches!(r.rule, FrameRule::FramePointer) => {
            let facts = FrameFacts {
                record: r,
                callee_params: at.callee_params,
                at_entry: at.exact && at.rva == Some(r.rva) && r.function_start,
            };
            let regs = fpo::step(at.regs, facts, stack)?;
            Ok(Some(Unwound {
                regs,
                by: UnwoundBy::FpoData,
                params: r.params,
            }))
        }
        _ if at.regs.bp() == 0 => Ok(None),
        _ => Ok(Some(Unwound {
            regs: step(at.regs, stack)?,
            by: UnwoundBy::FramePointer,
            params: record.map_or(0, |r| r.params),
        })),
    }
}

/// Whether the record's program finds the frame from EBP, as MSVC's programs for EBP frames do
/// (`$T0 $ebp = $eip $T0 4 + ^ = ...`): with EBP 0 that is the thread's first frame, as on the
/// EBP chain.
fn is_ebp_frame_program(rule: &FrameRule) -> bool {
    match rule {
        FrameRule::Program(p) => p.split_ascii_whitespace().take(3).eq(["$T0", "$ebp", "="]),
        _ => false,
    }
}

/// The caller of the frame whose EBP is `regs.bp()`: `[ebp+4]` is the return address, `[ebp]`
/// the caller's EBP, and the caller's ESP is `ebp + 8`.
pub fn step(regs: &Registers, stack: &dyn VirtualMemory) -> Result<Registers, UnwindError> {
    let bp = regs.bp();
    let read = |va: u64| {
        stack
            .read_u32(va)
            .map(u64::from)
            .map_err(|_| UnwindError::Missing {
                what: "stack",
                address: va,
            })
    };
    let next_bp = read(bp)?;
    let ip = read(bp.wrapping_add(4))?;
    let mut out = *regs;
    out.ip = ip;
    out.gpr[RBP] = next_bp;
    out.gpr[RSP] = bp.wrapping_add(8);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    #[test]
    fn follows_the_saved_ebp() {
        let mut stack = vec![0u8; 0x40];
        stack[0x10..0x14].copy_from_slice(&0xf000_0030u32.to_le_bytes());
        stack[0x14..0x18].copy_from_slice(&0x8050_1234u32.to_le_bytes());
        let mem = SliceMemory::new(0xf000_0000, &stack, 4);
        let mut r = Registers::default();
        r.gpr[RBP] = 0xf000_0010;
        let n = step(&r, &mem).unwrap();
        assert_eq!(
            (n.ip, n.bp(), n.sp()),
            (0x8050_1234, 0xf000_0030, 0xf000_0018)
        );
        r.gpr[RBP] = 0xf000_0040;
        assert!(matches!(step(&r, &mem), Err(UnwindError::Missing { .. })));
    }

    fn fpo_table() -> FrameTable {
        use crate::symbols::frame_data::FrameRecord;
        let rec = |rva, rule| FrameRecord {
            rva,
            size: 0x40,
            locals: 4,
            params: 12,
            saved_regs: 0,
            function_start: true,
            rule,
        };
        FrameTable::new(vec![
            rec(
                0x1000,
                FrameRule::Fpo {
                    uses_base_pointer: false,
                },
            ),
            rec(0x2000, FrameRule::FramePointer),
        ])
    }

    #[test]
    fn records_choose_fpo_or_the_ebp_chain() {
        // esp 0xf000_0000: [local][ret 0x8050_9999]; ebp 0xf000_0010: [0xf000_0030][0x8050_1234]
        let mut stack = vec![0u8; 0x40];
        stack[4..8].copy_from_slice(&0x8050_9999u32.to_le_bytes());
        stack[0x10..0x14].copy_from_slice(&0xf000_0030u32.to_le_bytes());
        stack[0x14..0x18].copy_from_slice(&0x8050_1234u32.to_le_bytes());
        let mem = SliceMemory::new(0xf000_0000, &stack, 4);
        let mut r = Registers::default();
        r.gpr[RSP] = 0xf000_0000;
        r.gpr[RBP] = 0xf000_0010;
        let table = fpo_table();
        let at = |rva| Position {
            regs: &r,
            rva: Some(rva),
            exact: false,
            callee_params: 0,
        };
        let u = unwind(at(0x1010), Some(&table), &mem).unwrap().unwrap();
        assert_eq!(
            (u.regs.ip, u.by, u.params),
            (0x8050_9999, UnwoundBy::FpoData, 12)
        );
        assert_eq!(u.regs.bp(), 0xf000_0010, "an FPO frame leaves EBP alone");
        // An EBP frame's record, no record, no PDB: the chain.
        for (rva, t) in [
            (0x2010, Some(&table)),
            (0x3000, Some(&table)),
            (0x1010, None),
        ] {
            let u = unwind(at(rva), t, &mem).unwrap().unwrap();
            assert_eq!(
                (u.regs.ip, u.by),
                (0x8050_1234, UnwoundBy::FramePointer),
                "{rva:#x}"
            );
        }
        // EBP 0 ends the chain only where no FPO record covers the frame.
        r.gpr[RBP] = 0;
        let at = |rva| Position {
            regs: &r,
            rva: Some(rva),
            exact: false,
            callee_params: 0,
        };
        assert_eq!(unwind(at(0x3000), Some(&table), &mem), Ok(None));
        assert!(unwind(at(0x1010), Some(&table), &mem).unwrap().is_some());
        // ... or where the record's program is MSVC's for an EBP frame.
        use crate::symbols::frame_data::FrameRecord;
        let ebp_program = FrameTable::new(vec![FrameRecord {
            rva: 0x1000,
            size: 0x40,
            locals: 0,
            params: 0,
            saved_regs: 0,
            function_start: true,
            rule: FrameRule::Program("$T0 $ebp = $eip $T0 4 + ^ = $esp $T0 8 + =".into()),
        }]);
        assert_eq!(unwind(at(0x1010), Some(&ebp_program), &mem), Ok(None));
    }
}
