//! DumpType 8/9/0xA (kernel, kernel+user, complete; Windows 10 2022+): an "RDMP" sub-header
//! after the 64-bit dump header, PFN ranges as metadata, then the pages back to back.
//!
//! Layout and consistency check from kdmp-parser (`RDMP_HEADER64::LooksGood`,
//! `BuildPhysicalMemoryFromDump`): `{u32 Marker = 0x40; "RDMP"; "DUMP"; u32; u64 MetadataSize;
//! u64 FirstPageOffset}`, MetadataSize - 0x20 == FirstPageOffset - 0x2040, then (after 0x10
//! more header bytes) `{u64 Pfn; u64 PageCount}` ranges, MetadataSize / 16 of them at most,
//! ended early by a zero Pfn. UNCONFIRMED against a real Windows RDMP file (none in corpus).

use super::bytes::{slice, u64_at};
use super::runs::RunIndex;
use super::DumpError;

pub(crate) fn parse(data: &[u8], at: u64) -> Result<RunIndex, DumpError> {
    let w = "RDMP header";
    let h = slice(data, w, at, 0x30)?;
    let marker = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if marker != 0x40 || &h[4..8] != b"RDMP" || &h[8..12] != b"DUMP" {
        return Err(DumpError::malformed(w, "no 0x40/\"RDMP\"/\"DUMP\" signature"));
    }
    let metadata_size = u64_at(data, w, at + 0x10)?;
    let first_page = u64_at(data, w, at + 0x18)?;
    if metadata_size == 0 || first_page == 0 {
        return Err(DumpError::malformed(w, "MetadataSize or FirstPageOffset is zero"));
    }
    // kdmp-parser's check, in its unsigned (wrapping) arithmetic.
    if metadata_size.wrapping_sub(0x20) != first_page.wrapping_sub(at + 0x40) {
        return Err(DumpError::malformed(
            w,
            format!("MetadataSize {metadata_size:#x} does not match FirstPageOffset {first_page:#x}"),
        ));
    }
    if metadata_size % 16 != 0 {
        return Err(DumpError::malformed(w, format!("MetadataSize {metadata_size:#x} is not a multiple of 16")));
    }
    let ranges_at = at + 0x30;
    let mut raw = Vec::new();
    for i in 0..metadata_size / 16 {
        let e = ranges_at + i * 16;
        // Every range read is bounds-checked, so a lying MetadataSize ends in `Truncated`
        // long before the vector grows beyond the file's size.
        let pfn = u64_at(data, "RDMP page ranges", e)?;
        if pfn == 0 {
            break;
        }
        raw.push((pfn, u64_at(data, "RDMP page ranges", e + 8)?));
    }
    RunIndex::build(&raw, first_page, data.len() as u64, "RDMP page ranges")
}
