//! One ARM64 frame undone from its RUNTIME_FUNCTION, as RtlVirtualUnwind does it (Microsoft's
//! "ARM64 exception handling"; the order of checks follows Windows' unwinder as published in
//! .NET's runtime, and Wine's reading of the same format).
//!
//! The codes describe the prolog in reverse and each epilog in execution order, one code per
//! instruction. Inside the prolog the codes of the instructions not yet executed are skipped;
//! inside an epilog the codes of the instructions already executed are; in the body all
//! prolog codes apply. The caller's pc is the restored lr, unless a custom-stack code
//! (trap frame, machine frame, context) supplied it. Every stack read is checked; the code
//! walk moves forward by at least one byte per step, so it ends.

use super::codes::{code_len, decode, instruction_count, is_end, Code, RegClass};
use super::context::{Arm64Context, FLAG_UNWOUND_TO_CALL, FP, LR};
use super::context::{CTX_PC, CTX_SP, CTX_V, CTX_X0};
use super::packed::expand;
use super::pdata::{read_entry, RuntimeFunction, UnwindKind};
use super::xdata::{Epilogs, Xdata};
use crate::memory::VirtualMemory;
use crate::stack::image::ImageRead;
use crate::stack::UnwindError;

/// ARM64 KTRAP_FRAME: Sp 0x098, X0..X18 0x0A0, Lr 0x138, Fp 0x140, Pc 0x148.
const TRAP_SP: u64 = 0x098;
const TRAP_X0: u64 = 0x0A0;
const TRAP_LR: u64 = 0x138;
const TRAP_FP: u64 = 0x140;
const TRAP_PC: u64 = 0x148;
/// ARM64EC CONTEXT (the x64 CONTEXT layout): ContextFlags 0x30, then the registers at the x64
/// registers' offsets (X8 at Rax .. Pc at Rip), Lr in the first x87 slot, the XMM registers
/// holding v0..v15 at 0x1A0.
const EC_FLAGS: u64 = 0x30;
const EC_GPRS: [(usize, u64); 16] = [
    (8, 0x78),
    (0, 0x80),
    (1, 0x88),
    (27, 0x90),
    (FP, 0xA0),
    (25, 0xA8),
    (26, 0xB0),
    (2, 0xB8),
    (3, 0xC0),
    (4, 0xC8),
    (5, 0xD0),
    (19, 0xD8),
    (20, 0xE0),
    (21, 0xE8),
    (22, 0xF0),
    (LR, 0x120),
];
const EC_SP: u64 = 0x98;
const EC_PC: u64 = 0xF8;
const EC_V: u64 = 0x1A0;

/// Which form of unwind information undid the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Xdata,
    Packed,
    /// Flag 2: a packed fragment without prolog or epilog.
    PackedFragment,
}

/// Where the pc was in its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Body,
    /// Inside the prolog, `done` instructions executed.
    Prolog {
        done: u32,
    },
    /// Inside an epilog, `done` instructions executed.
    Epilog {
        done: u32,
    },
}

/// What undoing a frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwound {
    pub form: Form,
    pub place: Place,
    /// The caller's pc is a return address (CONTEXT_UNWOUND_TO_CALL); not after a trap
    /// frame, machine frame, context record or clear_unwound_to_call.
    pub to_call: bool,
    /// Bit n: xn was restored from the stack.
    pub restored_x: u32,
    /// Bit n: dn was restored from the stack.
    pub restored_d: u32,
}

/// What [`unwind`] needs besides the registers.
pub struct Frame<'a> {
    pub image: &'a mut dyn ImageRead,
    pub base: u64,
    pub function: RuntimeFunction,
    /// The pc is a return address: the scope is chosen for the call instruction before it
    /// (a return address may be the first instruction of an epilog, the call never is).
    pub return_address: bool,
}

/// Undoes the frame of `f.function` in `ctx`.
pub fn unwind(
    f: Frame<'_>,
    ctx: &mut Arm64Context,
    stack: &dyn VirtualMemory,
) -> Result<Unwound, UnwindError> {
    let Frame {
        image,
        base,
        mut function,
        return_address,
    } = f;
    let control = ctx
        .pc
        .wrapping_sub(base)
        .wrapping_sub(if return_address { 4 } else { 0 });
    let mut offset = control
        .checked_sub(u64::from(function.begin))
        .filter(|o| *o < 1 << 32)
        .ok_or(UnwindError::Malformed {
            rva: function.begin,
            reason: "the pc is not inside the function its RUNTIME_FUNCTION begins",
        })? as u32
        / 4;
    let mut kind = function.kind()?;
    if let UnwindKind::Parent { rva } = kind {
        function = read_entry(image, rva)?;
        kind = function.kind()?;
        offset = 0;
    }
    let bad = |reason| UnwindError::Malformed {
        rva: function.begin,
        reason,
    };
    let (xdata, form) = match kind {
        UnwindKind::Xdata { rva } => (Xdata::read(image, rva)?, Form::Xdata),
        UnwindKind::Packed(p) => {
            let x = expand(&p).ok_or(bad("packed unwind data no unwind code can express"))?;
            let form = if p.fragment {
                Form::PackedFragment
            } else {
                Form::Packed
            };
            (x, form)
        }
        UnwindKind::Parent { .. } => {
            return Err(bad("a RUNTIME_FUNCTION refers to one that refers further"))
        }
    };
    let (start, skip, place) = scope(&xdata, offset);
    let mut m = Machine {
        ctx,
        stack,
        to_call: true,
        restored_x: 0,
        restored_d: 0,
    };
    let pc_from_lr = m.run(&xdata.codes, start, skip).map_err(|e| match e {
        Fault::Bad(reason) => bad(reason),
        Fault::Stack(address) => UnwindError::Missing {
            what: "stack",
            address,
        },
    })?;
    if pc_from_lr {
        m.ctx.pc = m.ctx.x[LR];
    }
    Ok(Unwound {
        form,
        place,
        to_call: m.to_call,
        restored_x: m.restored_x,
        restored_d: m.restored_d,
    })
}

/// How many instructions the sequence at `codes[from..]` stands for (up to end / end_c), plus
/// the `ret` an epilog ends with.
fn scope_size(codes: &[u8], from: usize, epilog: bool) -> u32 {
    let mut at = from;
    let mut n = 0u32;
    while let Some(&b) = codes.get(at) {
        if is_end(b) {
            break;
        }
        n += instruction_count(b);
        at += code_len(b);
    }
    n + u32::from(epilog)
}

/// Where to start in the codes and how many to skip for a pc `offset` instructions into the
/// function.
fn scope(x: &Xdata, offset: u32) -> (usize, u32, Place) {
    let words = x.codes.len() as u32;
    // A code byte describes at most one instruction: past `words` is past the prolog.
    if offset < words {
        let size = scope_size(&x.codes, 0, false);
        if offset < size {
            return (0, size - offset, Place::Prolog { done: offset });
        }
    }
    let epilog = |index: u32, start: u32| {
        let size = scope_size(&x.codes, index as usize, true);
        let done = offset.checked_sub(start)?;
        (done < size).then_some((index as usize, done, Place::Epilog { done }))
    };
    let found = match &x.epilogs {
        Epilogs::AtEnd { index } => {
            let size = scope_size(&x.codes, *index as usize, true);
            x.function_length
                .checked_sub(size)
                .and_then(|start| epilog(*index, start))
        }
        Epilogs::Scopes(scopes) => scopes
            .iter()
            .take_while(|s| s.start <= offset)
            .find_map(|s| epilog(s.index, s.start)),
    };
    found.unwrap_or((0, 0, Place::Body))
}

/// Why executing the codes failed.
enum Fault {
    Bad(&'static str),
    Stack(u64),
}

/// Where a save code's registers are, relative to sp.
#[derive(Clone, Copy)]
enum At {
    /// `[sp + offset]`.
    Offset(u32),
    /// `[sp]`, after which sp grows by `offset` (the undo of a pre-decrement).
    Pre(u32),
}

fn at(offset: u32, pre: bool) -> At {
    if pre {
        At::Pre(offset)
    } else {
        At::Offset(offset)
    }
}

struct Machine<'a, 'b> {
    ctx: &'a mut Arm64Context,
    stack: &'b dyn VirtualMemory,
    to_call: bool,
    restored_x: u32,
    restored_d: u32,
}

impl Machine<'_, '_> {
    fn read(&self, va: u64) -> Result<u64, Fault> {
        self.stack.read_u64(va).map_err(|_| Fault::Stack(va))
    }

    /// Restores `count` registers of `class` from `first` on, 8 bytes apart (16 for Q,
    /// whose low halves are the d registers).
    fn restore(&mut self, class: RegClass, first: u8, count: u32, place: At) -> Result<(), Fault> {
        let (limit, stride) = match class {
            RegClass::X => (31, 8),
            RegClass::D => (32, 8),
            RegClass::Q => (32, 16),
        };
        let first = u32::from(first);
        if first + count > limit {
            return Err(Fault::Bad("a save names a register past the last one"));
        }
        let base = match place {
            At::Offset(o) => self.ctx.sp.wrapping_add(u64::from(o)),
            At::Pre(_) => self.ctx.sp,
        };
        for i in 0..count {
            let v = self.read(base.wrapping_add(u64::from(i) * stride))?;
            let r = (first + i) as usize;
            if class == RegClass::X {
                self.ctx.x[r] = v;
                self.restored_x |= 1 << r;
            } else {
                self.ctx.d[r] = v;
                self.restored_d |= 1 << r;
            }
        }
        if let At::Pre(o) = place {
            self.ctx.sp = self.ctx.sp.wrapping_add(u64::from(o));
        }
        Ok(())
    }

    /// Executes the codes from `start`, skipping `skip` of them first; `true` when the
    /// caller's pc is the restored lr.
    fn run(&mut self, codes: &[u8], start: usize, mut skip: u32) -> Result<bool, Fault> {
        let mut pos = start;
        while skip > 0 {
            match codes.get(pos) {
                Some(&b) if !is_end(b) => pos += code_len(b),
                _ => break,
            }
            skip -= 1;
        }
        let mut next_pairs = 0u32;
        let mut pc_from_lr = true;
        while pos < codes.len() {
            let (code, len) = decode(codes, pos).map_err(|e| Fault::Bad(e.reason()))?;
            pos += len;
            let pairs = 2 + 2 * next_pairs;
            let takes_pairs = matches!(
                code,
                Code::SaveNext
                    | Code::SaveR19R20X { .. }
                    | Code::SaveRegp { .. }
                    | Code::SaveFregp { .. }
                    | Code::SaveAnyReg { pair: true, .. }
                    | Code::EndC
            );
            if next_pairs > 0 && !takes_pairs {
                return Err(Fault::Bad("save_next before a code that saves no pair"));
            }
            match code {
                Code::Alloc { size } => self.ctx.sp = self.ctx.sp.wrapping_add(u64::from(size)),
                Code::SaveR19R20X { offset } => {
                    self.restore(RegClass::X, 19, pairs, At::Pre(offset))?
                }
                Code::SaveFplr { offset } => {
                    self.restore(RegClass::X, 29, 2, At::Offset(offset))?
                }
                Code::SaveFplrX { offset } => self.restore(RegClass::X, 29, 2, At::Pre(offset))?,
                Code::SaveRegp { reg, offset, pre } => {
                    self.restore(RegClass::X, reg, pairs, at(offset, pre))?
                }
                Code::SaveReg { reg, offset, pre } => {
                    self.restore(RegClass::X, reg, 1, at(offset, pre))?
                }
                Code::SaveLrpair { reg, offset } => {
                    self.restore(RegClass::X, reg, 1, At::Offset(offset))?;
                    self.restore(RegClass::X, LR as u8, 1, At::Offset(offset + 8))?;
                }
                Code::SaveFregp { reg, offset, pre } => {
                    self.restore(RegClass::D, reg, pairs, at(offset, pre))?
                }
                Code::SaveFreg { reg, offset, pre } => {
                    self.restore(RegClass::D, reg, 1, at(offset, pre))?
                }
                Code::SaveAnyReg {
                    class,
                    reg,
                    pair,
                    pre,
                    offset,
                } => {
                    let count = if pair { pairs } else { 1 };
                    self.restore(class, reg, count, at(offset, pre))?
                }
                Code::SetFp => self.ctx.sp = self.ctx.x[FP],
                Code::AddFp { offset } => {
                    self.ctx.sp = self.ctx.x[FP].wrapping_sub(u64::from(offset))
                }
                Code::Nop | Code::Reserved | Code::EndC => {}
                Code::End => break,
                Code::SaveNext => {
                    next_pairs += 1;
                    continue;
                }
                Code::PacSignLr => self.ctx.x[LR] = strip_pac(self.ctx.x[LR]),
                Code::TrapFrame
                | Code::MachineFrame
                | Code::Context
                | Code::EcContext
                | Code::ClearUnwoundToCall => {
                    self.custom(code)?;
                    pc_from_lr = false;
                }
            }
            next_pairs = 0;
        }
        Ok(pc_from_lr)
    }

    /// `n` consecutive 64-bit values `stride` bytes apart from `va`.
    fn read_many(&self, va: u64, stride: u64, n: usize) -> Result<Vec<u64>, Fault> {
        (0..n as u64)
            .map(|i| self.read(va.wrapping_add(i * stride)))
            .collect()
    }

    /// The custom-stack codes: the interrupted state is a structure at sp.
    fn custom(&mut self, code: Code) -> Result<(), Fault> {
        let base = self.ctx.sp;
        let q = |m: &Self, off: u64| m.read(base.wrapping_add(off));
        self.to_call = false;
        match code {
            Code::TrapFrame => {
                let x = self.read_many(base.wrapping_add(TRAP_X0), 8, 19)?;
                self.ctx.x[..19].copy_from_slice(&x);
                self.ctx.x[LR] = q(self, TRAP_LR)?;
                self.ctx.x[FP] = q(self, TRAP_FP)?;
                self.ctx.pc = q(self, TRAP_PC)?;
                self.ctx.sp = q(self, TRAP_SP)?;
            }
            Code::MachineFrame => {
                self.ctx.pc = q(self, 8)?;
                self.ctx.sp = q(self, 0)?;
            }
            Code::Context => {
                // x0..x28, fp and lr are consecutive in the record.
                let x = self.read_many(base.wrapping_add(CTX_X0), 8, 31)?;
                self.ctx.x.copy_from_slice(&x);
                let d = self.read_many(base.wrapping_add(CTX_V), 16, 32)?;
                self.ctx.d.copy_from_slice(&d);
                self.ctx.pc = q(self, CTX_PC)?;
                self.ctx.sp = q(self, CTX_SP)?;
                self.to_call = q(self, 0)? as u32 & FLAG_UNWOUND_TO_CALL != 0;
            }
            Code::EcContext => {
                for (r, off) in EC_GPRS {
                    self.ctx.x[r] = q(self, off)?;
                }
                let d = self.read_many(base.wrapping_add(EC_V), 16, 16)?;
                self.ctx.d[..16].copy_from_slice(&d);
                self.ctx.pc = q(self, EC_PC)?;
                self.ctx.sp = q(self, EC_SP)?;
                self.to_call = q(self, EC_FLAGS)? as u32 & FLAG_UNWOUND_TO_CALL != 0;
            }
            _ => self.ctx.pc = self.ctx.x[LR],
        }
        Ok(())
    }
}

/// lr without its pointer-authentication code. Windows uses 48-bit virtual addresses: once
/// the code is gone the bits above 47 repeat bit 55, which says kernel (1) or user (0).
pub fn strip_pac(v: u64) -> u64 {
    if v >> 55 & 1 == 1 {
        v | 0xFFFF_0000_0000_0000
    } else {
        v & 0x0000_FFFF_FFFF_FFFF
    }
}
