//! ARM64 unwinding from the modules' `.pdata`: the function table ([`pdata`]), `.xdata`
//! records ([`xdata`]), the packed form written out as the record it abbreviates
//! ([`packed`]), the unwind codes ([`codes`]) and their execution, partial prologs and
//! epilogs included ([`unwind`]), from the registers of an ARM64 CONTEXT ([`context`]).

pub mod codes;
pub mod context;
pub mod packed;
pub mod pdata;
pub mod unwind;
pub mod xdata;

#[cfg(test)]
mod tests;

pub use context::Arm64Context;
pub use pdata::FunctionTable;

use super::context::Registers;
use super::image::ImageRead;
use super::walk::UnwoundBy;
use super::UnwindError;
use crate::memory::VirtualMemory;
use context::LR;
use unwind::{unwind, Form, Frame};

/// One frame of a walk undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The caller's registers (in the walk's slots, see [`Arm64Context::to_registers`]).
    pub regs: Registers,
    pub by: UnwoundBy,
    /// The caller's pc is the interrupted instruction, not a return address (a trap frame,
    /// machine frame or context record supplied it).
    pub interrupted: bool,
}

/// Undoes the frame at `regs` in the image based at `base`. `return_address`: `regs.ip` is a
/// return address (every frame but the first and those an interruption resumed at), which is
/// looked up as its call instruction, 4 bytes back. A function no RUNTIME_FUNCTION covers is
/// a leaf whose return address is still in lr, which holds only while lr is the live
/// register: for a return address it is an error, not a guess.
pub fn step(
    image: &mut dyn ImageRead,
    table: &Result<FunctionTable, UnwindError>,
    base: u64,
    regs: &Registers,
    return_address: bool,
    stack: &dyn VirtualMemory,
) -> Result<Step, UnwindError> {
    let mut ctx = Arm64Context::from_registers(regs);
    let back = if return_address { 4 } else { 0 };
    let rva = regs.ip.wrapping_sub(base).wrapping_sub(back) as u32;
    let function = match table {
        Ok(t) => t.lookup(image, rva)?,
        Err(UnwindError::NoTable) if !return_address => None,
        Err(e) => return Err(e.clone()),
    };
    let Some(function) = function else {
        if return_address {
            return Err(UnwindError::NoFunction { rva });
        }
        ctx.pc = ctx.x[LR];
        return Ok(Step {
            regs: ctx.to_registers(),
            by: UnwoundBy::LinkRegister,
            interrupted: false,
        });
    };
    let frame = Frame {
        image,
        base,
        function,
        return_address,
    };
    let done = unwind(frame, &mut ctx, stack)?;
    let by = match done.form {
        Form::Xdata => UnwoundBy::Pdata,
        Form::Packed | Form::PackedFragment => UnwoundBy::PdataPacked,
    };
    Ok(Step {
        regs: ctx.to_registers(),
        by,
        interrupted: !done.to_call,
    })
}
