//! The attribution scanner over a module's code: the x86/x64 decode that finds allocation call
//! sites (through import slots, thunks and wrappers), tag immediates, the anchored re-decode
//! and the byte search for candidate tags.

use analyzer::attribution::allocators::{import_use, ImportUse};
use analyzer::attribution::image::scan_code;
use analyzer::attribution::scan::CodeRegion;
use analyzer::attribution::sites::ModuleCode;
use analyzer::pool::Tag;
use std::collections::HashSet;

/// The image base of 64-bit code (32-bit code: [`BASE32`]); its code starts a page later, its
/// import slots at +0x8000.
pub const BASE64: u64 = 0x1_4000_0000;
pub const BASE32: u64 = 0x1000_0000;
pub const CODE_RVA: u64 = 0x1000;
pub const IAT_RVA: u64 = 0x8000;
/// The allocators (and a kernel data export) in the import slots, in slot order.
pub const IMPORTS: [&str; 5] = [
    "ExAllocatePoolWithTag",
    "ExAllocatePool2",
    "ExAllocatePool",
    "ExFreePoolWithTag",
    "PsProcessType",
];

/// Byte 0: bit 0 selects 32-bit code (else 64-bit); bytes 1..17 four candidate tags; the rest
/// is the code section at [`CODE_RVA`]. Globals read as the 4 bytes at their address in the
/// code.
pub fn code_scan(data: &[u8]) {
    let bitness = if crate::le(data, 0, 1) & 1 == 1 {
        32
    } else {
        64
    };
    let (psize, base): (u64, u64) = if bitness == 64 {
        (8, BASE64)
    } else {
        (4, BASE32)
    };
    let (code_va, iat) = (base + CODE_RVA, base + IAT_RVA);
    let candidates: HashSet<Tag> = (0..4)
        .map(|i| Tag((crate::le(data, 1 + i * 4, 4) as u32).to_le_bytes()))
        .collect();
    let code = data.get(17..).unwrap_or_default();
    let regions = [CodeRegion {
        address: code_va,
        bytes: code.to_vec(),
    }];
    let uses: Vec<Option<ImportUse>> = IMPORTS.iter().map(|n| import_use(n)).collect();
    let imports = |slot: u64| {
        let i = slot.checked_sub(iat)?;
        if i % psize != 0 {
            return None;
        }
        uses.get(usize::try_from(i / psize).ok()?)
            .copied()
            .flatten()
    };
    let read_u32 = |a: u64| {
        let off = usize::try_from(a.checked_sub(code_va)?).ok()?;
        Some(u32::from_le_bytes(
            code.get(off..off.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let m = ModuleCode {
        bitness,
        regions: &regions,
        imports: &imports,
        read_u32: &read_u32,
    };
    let _ = scan_code(&m, None);
    let _ = scan_code(&m, Some((&candidates, 64)));
}
