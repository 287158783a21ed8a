//! The kernel's own structures on hostile memory, read with the 19041 kernel's layouts: the
//! debugger data block (plain or encoded), the loaded-module and process lists, Driver
//! Verifier's pool tracking, the `!vm` figures, and the driver and device objects provenance
//! looks for in 'Driv' blocks.
//!
//! Input: bytes 0..8 the address of a 'Driv' pool block, 8..16 its size (at most a page); the
//! rest is kernel memory ([`Sparse`] records). The debugger data block is read at
//! [`KDBG_VA`], with the keys of [`KEYS`] when it is encoded.

use crate::mem::Sparse;
use crate::profile::{context, w19041, KERNEL_BASE};
use analyzer::analysis::provenance::modules::ModuleMap;
use analyzer::analysis::provenance::objects::find_driver_objects;
use analyzer::kernel::kdbg::read_kdbg;
use analyzer::kernel::modules::walk_loaded_modules;
use analyzer::kernel::KdbgKeys;
use analyzer::pool::quota::walk_processes;
use analyzer::pool::verifier::read_verifier;
use analyzer::pool::vm::vm_summary;

/// Where the input's debugger data block is.
pub const KDBG_VA: u64 = KERNEL_BASE + 0x20_0000;
/// The encoding keys (nt!KiWaitNever, nt!KiWaitAlways, &nt!KdpDataBlockEncoded).
pub const KEYS: KdbgKeys = KdbgKeys {
    ki_wait_never: 0x1234_5678_9abc_def0,
    ki_wait_always: 0x0fed_cba9_8765_4321,
    kdp_data_block_encoded: KERNEL_BASE + 0x30_0000,
};

pub fn kernel(data: &[u8]) {
    let block = (crate::le(data, 0, 8), crate::le(data, 8, 8).min(0x1000));
    let mem = Sparse::parse(data.get(16..).unwrap_or_default(), 8);
    let ctx = context();
    let _ = read_kdbg(&mem, KDBG_VA, Some(&KEYS));
    let global = |name| KERNEL_BASE.wrapping_add(w19041().global(name).unwrap_or(0));
    let modules = walk_loaded_modules(&mem, global("PsLoadedModuleList"));
    let _ = walk_processes(&mem, &ctx, global("PsActiveProcessHead"));
    let _ = read_verifier(&mem, &ctx);
    let _ = vm_summary(&mem, &ctx, &[], None);
    let map = ModuleMap::new(&modules.modules, Some(KERNEL_BASE));
    let bases: Vec<u64> = modules.modules.iter().map(|m| m.base).collect();
    let _ = find_driver_objects(&mem, Some(w19041()), &map, &bases, &[block]);
}
