//! One x64 frame undone with its function's UNWIND_INFO, as RtlVirtualUnwind does it
//! (Microsoft's "x64 exception handling" reference: UNWIND_INFO, UNWIND_CODE, chained unwind
//! information; Wine's and ReactOS's implementations read for the order of operations).
//!
//! The codes are in reverse prolog order, so undoing them in array order undoes the prolog from
//! its last instruction back. Inside the prolog only the codes whose CodeOffset the instruction
//! pointer has passed are undone; inside an epilogue the epilogue's remaining instructions are
//! emulated instead ([`super::epilog`]). Every read is bounds-checked; chains are capped.

use super::context::{Registers, RSP};
use super::epilog;
use super::image::ImageRead;
use super::pdata::RuntimeFunction;
use super::UnwindError;
use crate::memory::VirtualMemory;

const UWOP_PUSH_NONVOL: u8 = 0;
const UWOP_ALLOC_LARGE: u8 = 1;
const UWOP_ALLOC_SMALL: u8 = 2;
const UWOP_SET_FPREG: u8 = 3;
const UWOP_SAVE_NONVOL: u8 = 4;
const UWOP_SAVE_NONVOL_FAR: u8 = 5;
/// Version 2: epilogue descriptions, nothing to undo.
const UWOP_EPILOG: u8 = 6;
const UWOP_SAVE_XMM128: u8 = 8;
const UWOP_SAVE_XMM128_FAR: u8 = 9;
const UWOP_PUSH_MACHFRAME: u8 = 10;
const UNW_FLAG_CHAININFO: u8 = 0x4;
/// Longest chain followed: real images chain one or two levels.
pub const MAX_CHAIN: usize = 32;

/// One UNWIND_INFO, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwindInfo {
    pub version: u8,
    pub flags: u8,
    pub prolog_size: u8,
    pub frame_register: u8,
    /// Scaled by 16 when applied.
    pub frame_offset: u8,
    /// The UNWIND_CODE slots, two bytes each (CodeOffset, UnwindOp | OpInfo << 4).
    pub slots: Vec<[u8; 2]>,
    /// The function whose unwind information continues this one (UNW_FLAG_CHAININFO).
    pub chained: Option<RuntimeFunction>,
}

/// One decoded unwind operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwindOp {
    PushNonvol { reg: u8 },
    Alloc { size: u32 },
    SetFpreg,
    SaveNonvol { reg: u8, offset: u32 },
    SaveXmm128 { reg: u8, offset: u32 },
    PushMachframe { error_code: bool },
    Epilog,
}

/// A decoded code with the prolog offset it takes effect after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindCode {
    pub code_offset: u8,
    pub op: UnwindOp,
}

impl UnwindInfo {
    /// Reads the UNWIND_INFO at `rva`.
    pub fn read(img: &mut dyn ImageRead, rva: u32) -> Result<UnwindInfo, UnwindError> {
        let mut h = [0u8; 4];
        img.read_rva(rva, &mut h)?;
        let (version, flags) = (h[0] & 7, h[0] >> 3);
        if version != 1 && version != 2 {
            return Err(UnwindError::Malformed {
                rva,
                reason: "UNWIND_INFO version is neither 1 nor 2",
            });
        }
        let count = usize::from(h[2]);
        let mut codes = vec![0u8; 2 * count];
        img.read_rva(rva + 4, &mut codes)?;
        let slots = codes.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        let chained = if flags & UNW_FLAG_CHAININFO != 0 {
            // After the code array, padded to an even number of slots.
            let at = rva + 4 + 2 * ((count as u32 + 1) & !1);
            let mut b = [0u8; 12];
            img.read_rva(at, &mut b)?;
            Some(RuntimeFunction::parse(&b))
        } else {
            None
        };
        Ok(UnwindInfo {
            version,
            flags,
            prolog_size: h[1],
            frame_register: h[3] & 0xF,
            frame_offset: h[3] >> 4,
            slots,
            chained,
        })
    }

    /// The codes, decoded; an operation whose operand slots are missing is an error.
    pub fn codes(&self, rva: u32) -> Result<Vec<UnwindCode>, UnwindError> {
        let bad = |reason| UnwindError::Malformed { rva, reason };
        let slot = |i: usize| -> Result<u32, UnwindError> {
            self.slots
                .get(i)
                .map(|s| u32::from(u16::from_le_bytes(*s)))
                .ok_or(bad("an unwind code's operand is past the code array"))
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.slots.len() {
            let [code_offset, b] = self.slots[i];
            let (op, info) = (b & 0xF, b >> 4);
            let (op, used) = match op {
                UWOP_PUSH_NONVOL => (UnwindOp::PushNonvol { reg: info }, 1),
                UWOP_ALLOC_LARGE if info == 0 => (
                    UnwindOp::Alloc {
                        size: slot(i + 1)? * 8,
                    },
                    2,
                ),
                UWOP_ALLOC_LARGE if info == 1 => {
                    let size = slot(i + 1)? | slot(i + 2)? << 16;
                    (UnwindOp::Alloc { size }, 3)
                }
                UWOP_ALLOC_SMALL => (
                    UnwindOp::Alloc {
                        size: u32::from(info) * 8 + 8,
                    },
                    1,
                ),
                UWOP_SET_FPREG => (UnwindOp::SetFpreg, 1),
                UWOP_SAVE_NONVOL => (
                    UnwindOp::SaveNonvol {
                        reg: info,
                        offset: slot(i + 1)? * 8,
                    },
                    2,
                ),
                UWOP_SAVE_NONVOL_FAR => {
                    let offset = slot(i + 1)? | slot(i + 2)? << 16;
                    (UnwindOp::SaveNonvol { reg: info, offset }, 3)
                }
                UWOP_EPILOG if self.version == 2 => (UnwindOp::Epilog, 1),
                UWOP_SAVE_XMM128 => (
                    UnwindOp::SaveXmm128 {
                        reg: info,
                        offset: slot(i + 1)? * 16,
                    },
                    2,
                ),
                UWOP_SAVE_XMM128_FAR => {
                    let offset = slot(i + 1)? | slot(i + 2)? << 16;
                    (UnwindOp::SaveXmm128 { reg: info, offset }, 3)
                }
                UWOP_PUSH_MACHFRAME if info <= 1 => (
                    UnwindOp::PushMachframe {
                        error_code: info == 1,
                    },
                    1,
                ),
                _ => return Err(bad("unknown unwind operation")),
            };
            out.push(UnwindCode { code_offset, op });
            i += used;
        }
        Ok(out)
    }
}

/// What undoing a frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwound {
    /// The caller's state came from a machine frame (an interrupt or exception): the next
    /// instruction pointer is the interrupted one, not a return address.
    pub machine_frame: bool,
}

/// What [`unwind`] needs besides the registers.
pub struct Frame<'a> {
    pub image: &'a mut dyn ImageRead,
    pub base: u64,
    pub function: RuntimeFunction,
    /// Frame 0 or the instruction a machine frame resumed at: it may be inside an epilogue.
    /// A return address is not (its call is in the body).
    pub may_be_in_epilog: bool,
}

fn read_stack(stack: &dyn VirtualMemory, va: u64) -> Result<u64, UnwindError> {
    stack.read_u64(va).map_err(|_| UnwindError::Missing {
        what: "stack",
        address: va,
    })
}

/// Undoes the frame of `f.function` in `regs`: the caller's instruction pointer, stack
/// pointer and the non-volatile registers the function saved.
pub fn unwind(
    f: Frame<'_>,
    regs: &mut Registers,
    stack: &dyn VirtualMemory,
) -> Result<Unwound, UnwindError> {
    let Frame {
        image,
        base,
        function,
        may_be_in_epilog,
    } = f;
    let rva = regs.ip.wrapping_sub(base) as u32;
    let mut func = function;
    let mut info = UnwindInfo::read(image, func.unwind)?;
    let in_prolog = rva >= func.begin && rva - func.begin < u32::from(info.prolog_size);
    if !in_prolog && may_be_in_epilog {
        if let Some(()) = epilog::emulate(image, base, func, regs, stack)? {
            return Ok(Unwound {
                machine_frame: false,
            });
        }
    }
    // The prolog offset only limits the function's own codes; chained ones all apply.
    let mut prolog_offset = if in_prolog {
        rva - func.begin
    } else {
        u32::MAX
    };
    let mut machine_frame = false;
    for depth in 0.. {
        if depth >= MAX_CHAIN {
            return Err(UnwindError::Malformed {
                rva: func.unwind,
                reason: "chained unwind information longer than any real image's (a cycle?)",
            });
        }
        let frame_base = if info.frame_register != 0 {
            regs.gpr[usize::from(info.frame_register)]
                .wrapping_sub(16 * u64::from(info.frame_offset))
        } else {
            regs.sp()
        };
        for c in info.codes(func.unwind)? {
            if prolog_offset < u32::from(c.code_offset) {
                continue;
            }
            if apply(c.op, regs, frame_base, stack)? {
                machine_frame = true;
            }
        }
        match info.chained {
            Some(next) => {
                func = next;
                info = UnwindInfo::read(image, func.unwind)?;
                prolog_offset = u32::MAX;
            }
            None => break,
        }
    }
    if !machine_frame {
        let sp = regs.sp();
        regs.ip = read_stack(stack, sp)?;
        regs.gpr[RSP] = sp.wrapping_add(8);
    }
    Ok(Unwound { machine_frame })
}

/// Undoes one operation; `true` for a machine frame.
fn apply(
    op: UnwindOp,
    regs: &mut Registers,
    frame_base: u64,
    stack: &dyn VirtualMemory,
) -> Result<bool, UnwindError> {
    let sp = regs.sp();
    match op {
        UnwindOp::PushNonvol { reg } => {
            regs.gpr[usize::from(reg)] = read_stack(stack, sp)?;
            regs.gpr[RSP] = sp.wrapping_add(8);
        }
        UnwindOp::Alloc { size } => regs.gpr[RSP] = sp.wrapping_add(u64::from(size)),
        UnwindOp::SetFpreg => regs.gpr[RSP] = frame_base,
        UnwindOp::SaveNonvol { reg, offset } => {
            let v = read_stack(stack, frame_base.wrapping_add(u64::from(offset)))?;
            regs.gpr[usize::from(reg)] = v;
        }
        // XMM registers are not tracked: a frame's instruction and stack do not depend on them.
        UnwindOp::SaveXmm128 { .. } | UnwindOp::Epilog => {}
        UnwindOp::PushMachframe { error_code } => {
            // RIP, CS, EFLAGS, old RSP, SS as the processor pushed them, after an error code.
            let at = if error_code { sp.wrapping_add(8) } else { sp };
            regs.ip = read_stack(stack, at)?;
            regs.gpr[RSP] = read_stack(stack, at.wrapping_add(24))?;
            return Ok(true);
        }
    }
    Ok(false)
}
