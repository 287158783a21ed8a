//! The crashing thread's stack, as WinDbg's `k` shows it, and the `!analyze`-style summary
//! built on it (followup module, bucket id).
//!
//! [`context`] finds the registers the walk starts from; [`walk`] undoes one frame after the
//! other: on x64 with the modules' unwind information ([`pdata`], [`unwind_x64`], [`epilog`])
//! read from the dump's pages or, where the dump does not hold them, from a copy of the image
//! the symbol path serves ([`image`]); on arm64 with the modules' ARM64 `.pdata`/`.xdata`
//! ([`arm64`]); on x86 with the frame records of the modules' PDBs where they cover a frame
//! ([`fpo`], [`program`]) and along the EBP chain elsewhere ([`x86`]). Every walk ends with a
//! [`Stop`] saying why. [`bucket`] names the followup module and the bucket.

pub mod arm64;
pub mod bucket;
pub mod context;
pub mod epilog;
pub mod fpo;
pub mod image;
pub mod pdata;
pub mod program;
pub mod unwind_x64;
pub mod walk;
pub mod x86;

#[cfg(test)]
mod unwind_tests;

pub use context::{start_context, ContextSource, Registers, StartContext};
pub use walk::{walk, StackFrame, StackWalk, Stop, StopReason, UnwoundBy, MAX_FRAMES};

use thiserror::Error;

/// Why one frame could not be undone.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnwindError {
    /// A page the unwind needs is neither in the dump nor in a fetched image.
    #[error("{what} at {address:#x} is not in the dump")]
    Missing { what: &'static str, address: u64 },
    /// The unwind information contradicts itself or the image.
    #[error("malformed unwind information at RVA {rva:#x}: {reason}")]
    Malformed { rva: u32, reason: &'static str },
    /// The image has no exception directory.
    #[error("the image has no exception directory (.pdata)")]
    NoTable,
    /// An x86 frame record's program string (from the module's PDB) failed.
    #[error("the PDB's frame record at RVA {rva:#x} cannot be evaluated: {error}")]
    FrameData {
        rva: u32,
        error: program::ProgramError,
    },
    /// ARM64: no RUNTIME_FUNCTION covers a return address, and past the first frame lr no
    /// longer holds that leaf function's own return address.
    #[error("no RUNTIME_FUNCTION covers RVA {rva:#x}, and lr no longer holds the return address of a leaf function there")]
    NoFunction { rva: u32 },
}
