//! The `crash` member of the analyze report (docs/json.md, "crash"): the crashing thread's
//! stack as WinDbg's `k` shows it, why the walk stopped, the followup module and the bucket id
//! `!analyze -v` would file the crash under, and for pool bug checks the block at the
//! parameter's address.

use super::hex::Hex;
use super::pool_at::PoolAtBlock;
use crate::stack::{ContextSource, StopReason, UnwoundBy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    /// Where the starting registers came from.
    pub context_source: ContextSource,
    /// The address of the record read (the exception's context record or the trap frame);
    /// null for the dump header's record.
    #[serde(default)]
    pub context_address: Option<Hex>,
    pub stack: CrashStack,
    /// The first frame's module outside the kernel's own relay modules (the kernel, the HAL,
    /// ...); null when every frame is in one of them or in no module.
    pub followup_module: Option<String>,
    /// `0x7E_amdppm!WriteIoMemRawEx`: code without the 0x10000000 flag, module, function.
    pub bucket: String,
    /// For pool bug checks: the block holding the parameter's pool address, as `pool-at`
    /// reports it; null for other bug checks or when no walked block holds the address.
    pub pool_block: Option<PoolAtBlock>,
    /// The kernel's list of recently unloaded drivers (MmUnloadedDrivers), oldest unload
    /// first; empty when it is empty or could not be read (a warning says why).
    #[serde(default)]
    pub unloaded_drivers: Vec<super::unloaded::UnloadedDriverReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashStack {
    /// "unwind" (x64: the modules' .pdata/.xdata) or "frame_pointer" (x86: the EBP chain, and
    /// the PDBs' FPO/FRAMEDATA records where they cover a frame: see each frame's `unwound_by`).
    pub method: String,
    pub frames: Vec<CrashFrame>,
    pub stopped: StackStopped,
    /// Modules whose unwind information came from an image fetched through the symbol path
    /// because the dump does not hold their pages.
    #[serde(default)]
    pub images_from_symbol_path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashFrame {
    pub index: usize,
    /// Frame 0: the instruction the CPU was at; later frames: the return address.
    pub instruction: Hex,
    /// The stack pointer at the instruction (WinDbg's Child-SP).
    pub stack_pointer: Hex,
    pub module: Option<String>,
    /// Offset in the module.
    pub offset: Option<Hex>,
    /// The function from the module's PDB, without the module and displacement.
    pub function: Option<String>,
    pub displacement: Option<Hex>,
    pub unwound_by: UnwoundBy,
    /// WinDbg's form: `amdppm!WriteIoMemRawEx+0x70`, `amdppm+0x334c`, or the bare address.
    #[serde(default)]
    pub symbol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackStopped {
    pub reason: StopReason,
    pub detail: String,
}
