//! DumpType 8/9/0xA (kernel, kernel+user, complete; Windows 10 2022+): an "RDMP" sub-header
//! after the 64-bit dump header, PFN ranges as metadata, then the pages back to back.
//!
//! Layout (kdmp-parser `RDMP_HEADER64` / `KERNEL_RDMP_HEADER64` / `FULL_RDMP_HEADER64`, and its
//! Rust port kdmp-parser-rs `KernelRdmpHeader64` / `FullRdmpHeader64`):
//! `{u32 Marker = 0x40; "RDMP"; "DUMP"; u32; u64 MetadataSize; u64 FirstPageOffset}`, then at
//! +0x20 `{u32 NumberOfRanges; u16; u16; u64 TotalNumberOfPages}` (named for the complete type;
//! unknown for 8/9), then `{u64 Pfn; u64 PageCount}` ranges from +0x30 up to FirstPageOffset.
//! Consistency: MetadataSize - 0x20 == FirstPageOffset - 0x2040, i.e. MetadataSize counts the
//! bytes from +0x20 to the first page, so at most (MetadataSize - 0x10) / 16 ranges exist.
//!
//! Verified (tests/formats_independent.rs) by building RDMP files by hand and checking that
//! kdmp-parser 0.7.4 (PyPI) indexes the same PFNs and serves the same bytes: ranges start at
//! +0x30, not +0x31 (kdmp-parser reads them from the address of its 1-byte `Bitmap[1]` member
//! at +0x30, not after `sizeof(KERNEL_RDMP_HEADER64)` = 0x31; ranges written at +0x31 make it
//! refuse the file). A real Windows complete dump (kdmp-parser issue #27, debugger session on
//! the file) agrees: MetadataSize 0x70 held the six ranges `1/9f, 100/91e, ae3/940d, a001/1ff,
//! a20d/ad0ed, bcffe/1002` at +0x30..+0x90 (the classic PC memory map starting at PFN 1), with
//! no zero terminator; reading MetadataSize / 16 = 7 entries took the first 16 bytes of page
//! data as a range (`100064de9/1018003f00000000`). So the range list is bounded by
//! FirstPageOffset, and kdmp-parser since PR #28 also stops a complete dump (0xA) once
//! TotalNumberOfPages pages are indexed. Both bounds are applied here; a zero Pfn also ends
//! the list (kdmp-parser). No real RDMP file is in the corpus.

use super::bytes::{slice, u64_at};
use super::runs::RunIndex;
use super::DumpError;

/// Where the PFN ranges start, relative to the RDMP sub-header.
const RANGES: u64 = 0x30;

/// `complete`: DumpType 0xA, whose list is also bounded by TotalNumberOfPages (+0x28).
pub(crate) fn parse(data: &[u8], at: u64, complete: bool) -> Result<RunIndex, DumpError> {
    let w = "RDMP header";
    let h = slice(data, w, at, RANGES)?;
    let marker = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if marker != 0x40 || &h[4..8] != b"RDMP" || &h[8..12] != b"DUMP" {
        return Err(DumpError::malformed(
            w,
            "no 0x40/\"RDMP\"/\"DUMP\" signature",
        ));
    }
    let metadata_size = u64_at(data, w, at + 0x10)?;
    let first_page = u64_at(data, w, at + 0x18)?;
    if metadata_size == 0 || first_page == 0 {
        return Err(DumpError::malformed(
            w,
            "MetadataSize or FirstPageOffset is zero",
        ));
    }
    // kdmp-parser's check, in its unsigned (wrapping) arithmetic.
    if metadata_size.wrapping_sub(0x20) != first_page.wrapping_sub(at + 0x40) {
        return Err(DumpError::malformed(
            w,
            format!(
                "MetadataSize {metadata_size:#x} does not match FirstPageOffset {first_page:#x}"
            ),
        ));
    }
    if metadata_size % 16 != 0 {
        return Err(DumpError::malformed(
            w,
            format!("MetadataSize {metadata_size:#x} is not a multiple of 16"),
        ));
    }
    let ranges_at = at + RANGES;
    let slots = first_page.checked_sub(ranges_at).ok_or_else(|| {
        DumpError::malformed(
            w,
            format!("FirstPageOffset {first_page:#x} points inside the RDMP header"),
        )
    })? / 16;
    let total_pages = if complete {
        Some(u64_at(data, w, at + 0x28)?)
    } else {
        None
    };
    let mut raw = Vec::new();
    let mut pages = 0u64;
    for i in 0..slots {
        if total_pages.is_some_and(|t| pages >= t) {
            break;
        }
        let e = ranges_at + i * 16;
        // Every range read is bounds-checked, so a lying MetadataSize ends in `Truncated`
        // long before the vector grows beyond the file's size.
        let pfn = u64_at(data, "RDMP page ranges", e)?;
        if pfn == 0 {
            break;
        }
        let count = u64_at(data, "RDMP page ranges", e + 8)?;
        pages = pages.saturating_add(count);
        raw.push((pfn, count));
    }
    check_cut_short(data, first_page, pages)?;
    RunIndex::build(&raw, first_page, data.len() as u64, "RDMP page ranges")
}

/// Offset of RequiredDumpSpace in the 64-bit dump header: the file's size when written.
const REQUIRED_DUMP_SPACE: u64 = 0xFA0;

/// Ranges that reach past the end of the file are read as a dump cut short only when the
/// header says the file was written that long (RequiredDumpSpace): otherwise the ranges are
/// misread (ranges at +0x31, as kdmp-parser's packed struct would put them, describe hundreds
/// of times the file) and the file is refused, as kdmp-parser refuses it.
fn check_cut_short(data: &[u8], first_page: u64, pages: u64) -> Result<(), DumpError> {
    let implied = pages
        .checked_mul(0x1000)
        .and_then(|b| b.checked_add(first_page))
        .unwrap_or(u64::MAX);
    let len = data.len() as u64;
    if implied <= len {
        return Ok(());
    }
    let declared = u64_at(data, "dump header", REQUIRED_DUMP_SPACE).unwrap_or(0);
    if declared == implied {
        return Ok(());
    }
    Err(DumpError::malformed(
        "RDMP page ranges",
        format!(
            "the ranges end at {implied:#x}, past the end of the {len:#x}-byte file, and the \
             header's RequiredDumpSpace ({declared:#x}) does not say the file was that long"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RDMP sub-header at 0x2000 with `ranges` filling the metadata exactly (no zero entry),
    /// first page right after them, every page's first qword non-zero: the shape of the real
    /// complete dump in kdmp-parser issue #27.
    fn unterminated(ranges: &[(u64, u64)], total_pages: u64) -> Vec<u8> {
        let first = 0x2030 + 16 * ranges.len() as u64;
        let mut v = vec![0u8; first as usize];
        v[0x2000..0x2004].copy_from_slice(&0x40u32.to_le_bytes());
        v[0x2004..0x2008].copy_from_slice(b"RDMP");
        v[0x2008..0x200C].copy_from_slice(b"DUMP");
        v[0x2010..0x2018].copy_from_slice(&(first - 0x2020).to_le_bytes());
        v[0x2018..0x2020].copy_from_slice(&first.to_le_bytes());
        v[0x2028..0x2030].copy_from_slice(&total_pages.to_le_bytes());
        for (i, &(pfn, count)) in ranges.iter().enumerate() {
            let e = 0x2030 + 16 * i;
            v[e..e + 8].copy_from_slice(&pfn.to_le_bytes());
            v[e + 8..e + 16].copy_from_slice(&count.to_le_bytes());
        }
        let pages: u64 = ranges.iter().map(|r| r.1).sum();
        v.resize(v.len() + (pages * 0x1000) as usize, 0xA5);
        v
    }

    #[test]
    fn ranges_end_at_the_first_page_not_at_metadata_size_over_16() {
        let v = unterminated(&[(1, 2), (0x10, 1)], 3);
        for complete in [false, true] {
            let idx = parse(&v, 0x2000, complete).unwrap();
            assert_eq!(idx.pfns().collect::<Vec<_>>(), vec![1, 2, 0x10]);
            assert_eq!(idx.offset(0x10), Some(0x2050 + 2 * 0x1000));
        }
    }

    #[test]
    fn complete_dump_stops_at_total_number_of_pages() {
        let v = unterminated(&[(1, 2), (0x10, 1)], 2);
        assert_eq!(
            parse(&v, 0x2000, true).unwrap().pfns().collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(parse(&v, 0x2000, false).unwrap().total(), 3);
    }

    #[test]
    fn first_page_inside_the_header_is_an_error() {
        let mut v = unterminated(&[(1, 1)], 1);
        // MetadataSize 2^64 - 0x20 passes the (wrapping) consistency check with FirstPageOffset
        // 0x2000, the sub-header itself.
        v[0x2010..0x2018].copy_from_slice(&(u64::MAX - 0x1F).to_le_bytes());
        v[0x2018..0x2020].copy_from_slice(&0x2000u64.to_le_bytes());
        let e = parse(&v, 0x2000, false).unwrap_err().to_string();
        assert!(e.contains("points inside the RDMP header"), "{e}");
    }
}
