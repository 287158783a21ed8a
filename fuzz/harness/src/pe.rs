//! PE headers: an image as the loader mapped it (a module in a dump, read through its memory)
//! and a PE file on disk (a driver or a symbol store image).

use analyzer::attribution::scan::code_regions_from_file;
use analyzer::kernel::pe::{parse_codeview, read_pe, PeFile, SliceMemory};
use analyzer::memory::VirtualMemory;
use analyzer::symbols::identify::identify;
use analyzer::symbols::store::SymbolKey;

/// Where the mapped image lies (a kernel driver's address).
const BASE: u64 = 0xffff_f806_1234_0000;

/// Byte 0: bit 0 pointer size (4 or 8), bit 1 whether the loader entry's size bounds the image;
/// bytes 1..5 that size; the rest is the image mapped at [`BASE`].
pub fn pe_memory(data: &[u8]) {
    let sel = crate::le(data, 0, 1);
    let psize = if sel & 1 == 0 { 8 } else { 4 };
    let module_size = (sel & 2 != 0).then(|| crate::le(data, 1, 4) as u32);
    let image = data.get(5..).unwrap_or_default();
    let mem = SliceMemory::new(BASE, image, psize);
    if let Ok(pe) = read_pe(&mem, BASE, module_size) {
        let _ = pe.imports.as_ref().map(|i| i.function_count());
        if let Some(cv) = pe.codeview.as_ref() {
            let _ = cv.symstore_key();
        }
    }
    let _ = parse_codeview(image);
}

/// The whole input is a file: parsed as the loader would map it, its code sections found, then
/// checked by the symbol store (magic, TimeDateStamp and SizeOfImage) and identified as an
/// uploaded vendor image.
pub fn pe_file(data: &[u8]) {
    if let Ok(f) = PeFile::new(data) {
        if let Ok(pe) = f.info() {
            let _ = pe.imports.as_ref().map(|i| i.function_count());
        }
        let mut buf = [0u8; 64];
        for off in [0u64, 0x1000, 0x2000, 0xffff_f000] {
            let _ = f.read(f.base().wrapping_add(off), &mut buf);
        }
    }
    let _ = code_regions_from_file(data);
    let path = crate::tmp::file("driver.sys", data);
    let ts = crate::le(data, 0x88, 4) as u32;
    let size = crate::le(data, 0xd0, 4) as u32;
    let _ = analyzer::fuzzing::store_file_checks(&SymbolKey::pe("driver.sys", ts, size), &path);
    let _ = identify(&path, "driver.sys");
}
