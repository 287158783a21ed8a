//! Crash scenarios: a faulting thread whose stack holds real frames (x64 prologs described by
//! `.pdata`/`.xdata` in the images, or an x86 EBP chain), the context record (or for 0x8E the
//! trap frame) and bugcheck parameters in the dump header, and the unloaded-driver list a
//! 0xC4/0x62 crash is about.
//!
//! What a stack walker must find is in the truth file's `crash` member ([`CrashTruth`]):
//! every frame (module, offset, function, instruction, stack pointer), where the walk stops
//! and why, the bucket and the follow-up module.

pub mod context;
pub mod image;
pub mod scenarios;
pub mod trap;
pub mod unloaded;
pub mod unwind;
pub mod x64;
pub mod x86;

use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde::Serialize;

/// The base of the loaded module `name`: a scenario plants its frames in modules it loaded.
fn module_base(sys: &System, name: &str) -> Result<u64, ForgeError> {
    sys.modules
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.base)
        .ok_or_else(|| ForgeError::Internal(format!("{name} is not loaded")))
}

/// What a crash scenario puts in the dump header.
#[derive(Debug, Clone)]
pub struct CrashHeader {
    pub code: u32,
    pub params: [u64; 4],
    /// CONTEXT bytes of the faulting frame ([`context`]); `None`: an empty record.
    pub context: Option<Vec<u8>>,
    /// EXCEPTION_RECORD bytes, when the crash is an exception.
    pub exception: Option<Vec<u8>>,
    /// The truth file's `crash` member.
    pub truth: CrashTruth,
}

/// Why a stack walk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The outermost frame returns to 0 (x64) or its frame pointer is 0 (x86).
    EndOfStack,
    /// Unwinding a frame needs a stack page the dump does not hold.
    PageMissing,
    /// The next return address lies in no loaded module.
    OutsideModules,
    /// The next return address lies in a module whose image has no exception directory
    /// (`.pdata`). (In a module that has one, an address no RUNTIME_FUNCTION covers is a
    /// leaf function's, as RtlVirtualUnwind reads it: `[rsp]` is the return address.)
    NoUnwindInfo,
    /// Unwinding gives a frame already seen (same instruction and stack pointer).
    Loop,
}

/// One frame as a walker must report it, innermost first.
#[derive(Debug, Clone, Serialize)]
pub struct FrameTruth {
    pub module: String,
    /// Instruction minus the module's base.
    pub offset: String,
    /// The function's name (from the kernel's symbols for nt, the forge's for its drivers,
    /// which have no PDB: a reader without symbols compares module and offset); null for an
    /// address no function covers.
    pub function: Option<String>,
    /// The faulting instruction (frame 0) or the return address.
    pub instruction: String,
    /// Rsp/Esp in the frame's body: the context's for frame 0, else the address just above
    /// the return address the callee returns through.
    pub stack_pointer: String,
    /// x86: the frame's EBP (the chain link); absent on x64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_pointer: Option<String>,
}

/// An MmUnloadedDrivers entry as planted.
#[derive(Debug, Clone, Serialize)]
pub struct UnloadedTruth {
    pub name: String,
    pub start: String,
    pub end: String,
    /// FILETIME of the unload as "0x..." and as RFC 3339.
    pub unloaded_at: String,
    pub unloaded_at_filetime: String,
}

/// The truth file's `crash` member.
#[derive(Debug, Clone, Serialize)]
pub struct CrashTruth {
    /// Empty when the scenario forged no stack (then `stopped` is null too).
    pub frames: Vec<FrameTruth>,
    pub stopped: Option<Stop>,
    /// The address that ended the walk: the return address outside every module (a walker
    /// may show it as a last frame without a module), the stack page missing, the repeated
    /// instruction, the address without unwind data; null at the end of the stack.
    pub stop_address: Option<String>,
    /// "0x7E_crashy!ParseRecord": the bugcheck (without the 0x10000000 flag) and the first
    /// frame outside nt, by function.
    pub bucket: Option<String>,
    /// The same without the driver's symbols: "0x7E_crashy.sys" (the module's name where its
    /// function cannot be named).
    pub bucket_without_symbols: Option<String>,
    pub followup_module: Option<String>,
    /// For bug check 0x8E: the KTRAP_FRAME (parameter 3) the walk must start from; null when
    /// the crash has a CONTEXT record instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trap_frame: Option<String>,
    pub unloaded_drivers: Vec<UnloadedTruth>,
}

/// A function placed in a module: where its code is.
#[derive(Debug, Clone)]
pub struct Placed {
    pub module: String,
    pub module_base: u64,
    pub name: Option<String>,
}

impl Placed {
    pub fn frame(&self, instruction: u64, sp: u64, fp: Option<u64>) -> FrameTruth {
        FrameTruth {
            module: self.module.clone(),
            offset: hex(instruction - self.module_base),
            function: self.name.clone(),
            instruction: hex(instruction),
            stack_pointer: hex(sp),
            frame_pointer: fp.map(hex),
        }
    }
}

/// The bucket of a crash (code without the "_M" flag, then the first frame outside the
/// kernel, by function), the same without symbols, and that frame's module.
pub fn bucket(
    code: u32,
    frames: &[FrameTruth],
) -> (Option<String>, Option<String>, Option<String>) {
    let Some(f) = frames.iter().find(|f| f.module != "ntoskrnl.exe") else {
        return (None, None, None);
    };
    let stem = f.module.rsplit_once('.').map(|x| x.0).unwrap_or(&f.module);
    let code = code & 0x0fff_ffff;
    (
        f.function
            .as_ref()
            .map(|n| format!("0x{code:X}_{stem}!{n}")),
        Some(format!("0x{code:X}_{}", f.module)),
        Some(f.module.clone()),
    )
}
