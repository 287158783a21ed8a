//! One x86 frame undone with its function's frame record from the module's PDB
//! ([`crate::symbols::frame_data`]): how WinDbg and breakpad's StackwalkerX86 walk through
//! code built with frame-pointer omission.
//!
//! Both record kinds start from the same address, `.raSearch`: the frame's ESP plus the
//! parameters its callee was passed (the callee's record's `cbParams`; the arguments still lie
//! between the return address into this frame and its body's ESP) plus its locals and saved
//! registers. The return address is the word there and the caller's ESP is just above it.
//! - FPO_DATA (no program): EIP from `.raSearch`; when the function uses EBP as a general
//!   register the caller's EBP is the second register MSVC's prolog pushed (at
//!   ESP + callee parameters + saved registers - 8, breakpad's reading); otherwise EBP is
//!   untouched. At the function's first instruction nothing is pushed yet: `[esp]`.
//! - FRAMEDATA: the record's program string ([`super::program`]) computes `$eip`, `$esp` and
//!   any registers it restores; those it does not set keep their values.
//!
//! Unlike breakpad, no stack words are scanned for a likelier return address: the walk stops
//! where the records and the stack disagree rather than guess.

use super::context::{Registers, RBP, RSP};
use super::program::{evaluate, ProgramError, Variables};
use super::UnwindError;
use crate::memory::VirtualMemory;
use crate::symbols::frame_data::{FrameRecord, FrameRule};

/// Register slots (x86 numbering, as [`Registers::gpr`] holds them) a program may name.
const NAMES: [(&str, usize); 8] = [
    ("$eax", 0),
    ("$ecx", 1),
    ("$edx", 2),
    ("$ebx", 3),
    ("$esp", RSP),
    ("$ebp", RBP),
    ("$esi", 6),
    ("$edi", 7),
];

/// What the step needs besides the registers.
#[derive(Debug, Clone, Copy)]
pub struct FrameFacts<'a> {
    pub record: &'a FrameRecord,
    /// Bytes of parameters the frame passed to its callee (0 for frame 0).
    pub callee_params: u32,
    /// The instruction is the function's first (frame 0 only): nothing is pushed yet.
    pub at_entry: bool,
}

/// The caller of the frame `regs` describes, with `facts.record` covering its instruction.
pub fn step(
    regs: &Registers,
    facts: FrameFacts<'_>,
    mem: &dyn VirtualMemory,
) -> Result<Registers, UnwindError> {
    let r = facts.record;
    let esp = regs.sp() as u32;
    let frame = if facts.at_entry {
        0
    } else {
        r.locals.wrapping_add(r.saved_regs)
    };
    let ra_search = esp.wrapping_add(facts.callee_params).wrapping_add(frame);
    match &r.rule {
        FrameRule::Fpo { uses_base_pointer } => {
            let mut out = *regs;
            out.ip = u64::from(read(mem, ra_search)?);
            out.gpr[RSP] = u64::from(ra_search.wrapping_add(4));
            if *uses_base_pointer && !facts.at_entry {
                let at = esp
                    .wrapping_add(facts.callee_params)
                    .wrapping_add(r.saved_regs)
                    .wrapping_sub(8);
                out.gpr[RBP] = u64::from(read(mem, at)?);
            }
            Ok(out)
        }
        FrameRule::Program(text) => run_program(regs, r, text, ra_search, facts.callee_params, mem)
            .map_err(|e| match e {
                ProgramError::Unreadable(address) => UnwindError::Missing {
                    what: "stack",
                    address,
                },
                error => UnwindError::FrameData { rva: r.rva, error },
            }),
        FrameRule::BadProgram(reason) => Err(UnwindError::FrameData {
            rva: r.rva,
            error: ProgramError::Unusable(reason.clone()),
        }),
        FrameRule::FramePointer => Err(UnwindError::Malformed {
            rva: r.rva,
            reason: "an EBP frame's record has no FPO layout",
        }),
    }
}

/// The registers the program computes from `regs` and the record's sizes.
fn run_program(
    regs: &Registers,
    r: &FrameRecord,
    text: &str,
    ra_search: u32,
    callee_params: u32,
    mem: &dyn VirtualMemory,
) -> Result<Registers, ProgramError> {
    let mut vars = Variables::default();
    for (name, slot) in NAMES {
        vars.define(name, regs.gpr[slot] as u32)?;
    }
    vars.define("$eip", regs.ip as u32)?;
    for (name, value) in [
        (".raSearch", ra_search),
        (".raSearchStart", ra_search),
        (".cbLocals", r.locals),
        (".cbSavedRegs", r.saved_regs),
        (".cbParams", r.params),
        (".cbCalleeParams", callee_params),
    ] {
        vars.define(name, value)?;
    }
    evaluate(text, &mut vars, mem)?;
    let mut out = *regs;
    out.ip = u64::from(vars.assigned("$eip").ok_or(ProgramError::Missing("$eip"))?);
    for (name, slot) in NAMES {
        if let Some(v) = vars.get(name) {
            out.gpr[slot] = u64::from(v);
        }
    }
    if vars.assigned("$esp").is_none() {
        return Err(ProgramError::Missing("$esp"));
    }
    Ok(out)
}

fn read(mem: &dyn VirtualMemory, at: u32) -> Result<u32, UnwindError> {
    mem.read_u32(u64::from(at))
        .map_err(|_| UnwindError::Missing {
            what: "stack",
            address: u64::from(at),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    const STACK: u64 = 0xf000_0000;

    fn record(locals: u32, saved: u32, rule: FrameRule) -> FrameRecord {
        FrameRecord {
            rva: 0x1000,
            size: 0x100,
            locals,
            params: 8,
            saved_regs: saved,
            function_start: true,
            rule,
        }
    }

    /// A stack of words at STACK.. from `words`.
    fn stack(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn regs(esp: u64, ebp: u64) -> Registers {
        let mut r = Registers {
            ip: 0x8050_1000,
            ..Default::default()
        };
        r.gpr[RSP] = esp;
        r.gpr[RBP] = ebp;
        r.gpr[3] = 0x3333;
        r
    }

    #[test]
    fn old_fpo_record() {
        // esp -> [callee arg][saved ebp][saved ebx][local][local][ret] [caller's]
        let s = stack(&[0xa, 0xb0b0, 0xe0e0, 0, 0, 0x8060_2000, 0]);
        let mem = SliceMemory::new(STACK, &s, 4);
        let r = record(
            8,
            8,
            FrameRule::Fpo {
                uses_base_pointer: true,
            },
        );
        let facts = FrameFacts {
            record: &r,
            callee_params: 4,
            at_entry: false,
        };
        let n = step(&regs(STACK, 0x77), facts, &mem).unwrap();
        assert_eq!((n.ip, n.sp()), (0x8060_2000, STACK + 0x18));
        // The second register pushed, below the first (breakpad's reading of MSVC's order).
        assert_eq!(n.bp(), 0xb0b0);
        let plain = record(
            8,
            8,
            FrameRule::Fpo {
                uses_base_pointer: false,
            },
        );
        let n = step(
            &regs(STACK, 0x77),
            FrameFacts {
                record: &plain,
                ..facts
            },
            &mem,
        )
        .unwrap();
        assert_eq!(n.bp(), 0x77, "EBP untouched");
        // At the first instruction the return address is at [esp].
        let entry = FrameFacts {
            record: &plain,
            callee_params: 0,
            at_entry: true,
        };
        let n = step(&regs(STACK + 0x14, 0x77), entry, &mem).unwrap();
        assert_eq!((n.ip, n.sp()), (0x8060_2000, STACK + 0x18));
    }

    #[test]
    fn llvm_style_program() {
        // After `push esi; sub esp, 8`: [local][local][saved esi][ret].
        let s = stack(&[0, 0, 0x5151, 0x8060_3000, 0]);
        let mem = SliceMemory::new(STACK, &s, 4);
        let r = record(
            8,
            4,
            FrameRule::Program(
                "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + = $esi $T0 4 - ^ = ".into(),
            ),
        );
        let facts = FrameFacts {
            record: &r,
            callee_params: 0,
            at_entry: false,
        };
        let n = step(&regs(STACK, 0x77), facts, &mem).unwrap();
        assert_eq!(
            (n.ip, n.sp(), n.gpr[6]),
            (0x8060_3000, STACK + 0x10, 0x5151)
        );
        assert_eq!((n.bp(), n.gpr[3]), (0x77, 0x3333), "not restored: kept");
    }

    /// A program MSVC wrote for an EBP frame that also saved EBX (the XP SP3 kernel's
    /// ntkrnlpa.pdb, record at RVA 0x9631 as `llvm-pdbutil dump -fpo` prints it).
    #[test]
    fn msvc_ebp_frame_program() {
        let mut words = vec![0u32; 0x40];
        // EBP = STACK + 0x80: [ebp] the caller's EBP, [ebp+4] the return address, EBX 68
        // bytes below.
        words[0x80 / 4] = 0xf000_0100;
        words[0x84 / 4] = 0x8060_4000;
        words[(0x80 - 68) / 4] = 0xbbbb;
        let s = stack(&words);
        let mem = SliceMemory::new(STACK, &s, 4);
        let r = record(
            60,
            4,
            FrameRule::Program(
                "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + = $L $T0 .cbSavedRegs - = \
                 $P $T0 4 + .cbParams + = $ebx $T0 68 - ^ ="
                    .into(),
            ),
        );
        let facts = FrameFacts {
            record: &r,
            callee_params: 12,
            at_entry: false,
        };
        let n = step(&regs(STACK + 0x10, STACK + 0x80), facts, &mem).unwrap();
        assert_eq!(
            (n.ip, n.sp(), n.bp(), n.gpr[3]),
            (0x8060_4000, STACK + 0x88, 0xf000_0100, 0xbbbb)
        );
    }

    #[test]
    fn hostile_records_stop_with_a_reason() {
        let s = stack(&[0, 0, 0, 0]);
        let mem = SliceMemory::new(STACK, &s, 4);
        let go = |rule: FrameRule, locals: u32| {
            let r = record(locals, 0, rule);
            let facts = FrameFacts {
                record: &r,
                callee_params: 0,
                at_entry: false,
            };
            step(&regs(STACK, 0), facts, &mem)
        };
        let p = |s: &str| FrameRule::Program(s.into());
        assert!(matches!(
            go(p("$T0 .raSearch = $esp $T0 4 + ="), 0),
            Err(UnwindError::FrameData {
                error: ProgramError::Missing("$eip"),
                ..
            })
        ));
        assert!(matches!(
            go(p("$eip 1 0 / ="), 0),
            Err(UnwindError::FrameData {
                error: ProgramError::DivideByZero(_),
                ..
            })
        ));
        assert!(matches!(
            go(p("$eip ="), 0),
            Err(UnwindError::FrameData {
                error: ProgramError::Underflow(_),
                ..
            })
        ));
        // A return address past the stack the dump holds.
        assert_eq!(
            go(
                FrameRule::Fpo {
                    uses_base_pointer: false
                },
                0x1000
            ),
            Err(UnwindError::Missing {
                what: "stack",
                address: STACK + 0x1000
            })
        );
        assert!(matches!(
            go(FrameRule::BadProgram("x".into()), 0),
            Err(UnwindError::FrameData {
                error: ProgramError::Unusable(_),
                ..
            })
        ));
    }
}
