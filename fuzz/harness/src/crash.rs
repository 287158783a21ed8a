//! The crashing thread on hostile memory: the starting registers (the dump header's context
//! record, or the exception record or trap frame a bug check's parameter names), the stack walk
//! through the modules' unwind information (x64 `.pdata`/`.xdata`, the x86 EBP chain), and the
//! kernel's list of unloaded drivers.
//!
//! Input: byte 0 picks the architecture (bits 0-1: x64, x86, arm64) and the bug check (bits
//! 2-3: one without a record, 0x1000007E, 0x3B, 0x8E); bytes 1..33 are the four parameters;
//! the rest is kernel memory ([`Sparse`] records). The dump header is the memory at
//! [`HEADER_VA`]; two modules are loaded at fixed places (nt at [`KERNEL_BASE`] on x64).

use crate::mem::Sparse;
use crate::profile::{w19041, KERNEL_BASE};
use analyzer::dump::Arch;
use analyzer::kernel::unloaded::read_unloaded;
use analyzer::kernel::Module;
use analyzer::memory::VirtualMemory;
use analyzer::stack::image::NoFetch;
use analyzer::stack::{start_context, walk};

/// Where the input's memory holds the dump header (its first 0x2000 bytes).
pub const HEADER_VA: u64 = 0x10_0000;
const HEADER_SIZE: usize = 0x2000;
/// The x86 modules: nt and one driver.
pub const NT32: u64 = 0x8040_0000;
pub const DRIVER32: u64 = 0xf000_0000;
/// The x64 driver (nt is at [`KERNEL_BASE`]).
pub const DRIVER64: u64 = 0xffff_f801_0000_0000;
const MODULE_SIZE: u32 = 0x20_0000;
/// Bug checks by input bits 2-3: no record, an exception record (parameter 4 or 3), a trap
/// frame (parameter 3).
pub const CODES: [u32; 4] = [0xE2, 0x1000_007E, 0x3B, 0x8E];

pub fn crash(data: &[u8]) {
    let sel = crate::le(data, 0, 1) as u8;
    let arch = match sel & 3 {
        1 => Arch::X86,
        2 => Arch::Arm64,
        _ => Arch::X64,
    };
    let code = CODES[usize::from(sel >> 2 & 3)];
    let params: [u64; 4] = std::array::from_fn(|i| crate::le(data, 1 + 8 * i, 8));
    let pointer_size = if arch == Arch::X86 { 4 } else { 8 };
    let mem = Sparse::parse(data.get(33..).unwrap_or_default(), pointer_size);
    let header = header_bytes(&mem);
    let modules = modules(arch);
    if let Some(start) = start_context(&header, arch, code, &params, Some(&mem)) {
        let _ = walk(&start, arch, &modules, &mem, &NoFetch);
    }
    if arch == Arch::X64 {
        let _ = read_unloaded(&mem, KERNEL_BASE, w19041());
    }
}

/// The header page the input wrote, zeros where it wrote nothing.
fn header_bytes(mem: &Sparse) -> Vec<u8> {
    let mut header = vec![0u8; HEADER_SIZE];
    for (i, page) in header.chunks_mut(0x1000).enumerate() {
        let _ = mem.read(HEADER_VA + 0x1000 * i as u64, page);
    }
    header
}

pub fn modules(arch: Arch) -> Vec<Module> {
    let (nt, driver) = match arch {
        Arch::X86 => (NT32, DRIVER32),
        _ => (KERNEL_BASE, DRIVER64),
    };
    [("ntoskrnl.exe", nt), ("crashy.sys", driver)]
        .into_iter()
        .map(|(name, base)| Module {
            name: name.into(),
            path: format!("\\SystemRoot\\system32\\{name}"),
            base,
            size: MODULE_SIZE,
            timestamp: None,
            checksum: None,
            ldr_entry: None,
            pe: None,
            pe_error: None,
        })
        .collect()
}
