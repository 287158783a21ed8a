//! Page index for bitmap dumps: DumpType 5/6 ("SDMP"/"FDMP" sub-header) and the old summary
//! dump, DumpType 2. Bit N set = physical page N is stored; stored pages follow one another in
//! bit order, so the file offset of page N is `first_page + rank(N) * 4096`.
//!
//! rank(N) (set bits before N) comes from a prefix-count table with one u64 per 512-bit block
//! plus at most 8 popcounts: O(1) per lookup, 1/64 of the bitmap's size in memory, built in one
//! pass over the bitmap words. The bitmap itself stays in the mmap.

use super::bytes::{need, slice};
use super::DumpError;
use crate::memory::PAGE_SIZE;

const WORDS_PER_BLOCK: u64 = 8;

#[derive(Debug, Clone)]
pub(crate) struct BitmapIndex {
    /// File offset of the bitmap.
    bitmap_offset: u64,
    /// Number of valid bits (physical pages covered).
    bits: u64,
    /// File offset of the first stored page.
    first_page: u64,
    /// Set bits before each 512-bit block.
    ranks: Vec<u64>,
    present: u64,
    /// Stored pages whose bytes are wholly in the file: fewer than `present` when the file was
    /// cut short.
    in_file: u64,
}

/// Bitmap word `i` (bits 64i..64i+63), zero beyond `bits`; the tail word may be partial.
fn word(data: &[u8], bitmap_offset: u64, bits: u64, i: u64) -> u64 {
    let start = bitmap_offset + i * 8;
    let nbytes = (bits.saturating_sub(i * 64)).div_ceil(8).min(8);
    let mut b = [0u8; 8];
    if let Some(src) = data.get(start as usize..(start + nbytes) as usize) {
        b[..src.len()].copy_from_slice(src);
    }
    let w = u64::from_le_bytes(b);
    let valid = bits.saturating_sub(i * 64);
    if valid >= 64 {
        w
    } else {
        w & ((1u64 << valid) - 1)
    }
}

impl BitmapIndex {
    /// `expected_present`: the header's count of stored pages, checked against the bitmap.
    pub(crate) fn build(
        data: &[u8],
        what: &'static str,
        bitmap_offset: u64,
        bits: u64,
        first_page: u64,
        expected_present: Option<u64>,
    ) -> Result<BitmapIndex, DumpError> {
        // 2^52 physical bytes = 2^40 pages: anything beyond is a lie, not a machine.
        if bits > 1u64 << 40 {
            return Err(DumpError::malformed(
                what,
                format!("bitmap claims {bits:#x} pages"),
            ));
        }
        // The whole bitmap must be in the file before we size anything by it.
        need(data, "bitmap", bitmap_offset, bits.div_ceil(8))?;
        let nwords = bits.div_ceil(64);
        let mut ranks = Vec::with_capacity(nwords.div_ceil(WORDS_PER_BLOCK) as usize);
        let mut present = 0u64;
        for i in 0..nwords {
            if i % WORDS_PER_BLOCK == 0 {
                ranks.push(present);
            }
            present += u64::from(word(data, bitmap_offset, bits, i).count_ones());
        }
        if let Some(expected) = expected_present {
            if expected != present {
                return Err(DumpError::malformed(what, format!("header says {expected:#x} pages are stored but the bitmap has {present:#x} set bits")));
            }
        }
        present
            .checked_mul(PAGE_SIZE)
            .and_then(|b| b.checked_add(first_page))
            .ok_or_else(|| DumpError::malformed(what, "page data offset overflows"))?;
        // A file cut short is read as far as it goes, as WinDbg opens it: the pages past its
        // end are listed but not stored.
        let in_file = ((data.len() as u64).saturating_sub(first_page) / PAGE_SIZE).min(present);
        Ok(BitmapIndex {
            bitmap_offset,
            bits,
            first_page,
            ranks,
            present,
            in_file,
        })
    }

    pub(crate) fn present(&self) -> u64 {
        self.present
    }

    /// Stored pages whose bytes are in the file.
    pub(crate) fn pages_in_file(&self) -> u64 {
        self.in_file
    }

    pub(crate) fn offset(&self, data: &[u8], pfn: u64) -> Option<u64> {
        if pfn >= self.bits {
            return None;
        }
        let wi = pfn / 64;
        let w = word(data, self.bitmap_offset, self.bits, wi);
        let bit = 1u64 << (pfn % 64);
        if w & bit == 0 {
            return None;
        }
        let block = wi / WORDS_PER_BLOCK;
        let mut rank = *self.ranks.get(block as usize)?;
        for j in block * WORDS_PER_BLOCK..wi {
            rank += u64::from(word(data, self.bitmap_offset, self.bits, j).count_ones());
        }
        rank += u64::from((w & (bit - 1)).count_ones());
        Some(self.first_page + rank * PAGE_SIZE)
    }

    /// Stored page numbers, ascending.
    pub(crate) fn pfns<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
        let nwords = self.bits.div_ceil(64);
        (0..nwords).flat_map(move |i| {
            let mut w = word(data, self.bitmap_offset, self.bits, i);
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = u64::from(w.trailing_zeros());
                w &= w - 1;
                Some(i * 64 + b)
            })
        })
    }
}

/// DumpType 5/6 sub-header at `at`: "SDMP"/"FDMP", "DUMP", FirstPage +0x20,
/// TotalPresentPages +0x28, bit count +0x30, bitmap +0x38 (kdmp-parser BMP_HEADER64).
/// Returns the index and whether it is a full ("FDMP") bitmap.
pub(crate) fn parse_bmp(data: &[u8], at: u64) -> Result<(BitmapIndex, bool), DumpError> {
    let w = "bitmap header";
    let h = slice(data, w, at, 0x38)?;
    let full = match &h[..4] {
        b"SDMP" => false,
        b"FDMP" => true,
        other => {
            return Err(DumpError::malformed(
                w,
                format!(
                    "signature {:?} is neither \"SDMP\" nor \"FDMP\"",
                    String::from_utf8_lossy(other)
                ),
            ))
        }
    };
    if &h[4..8] != b"DUMP" {
        return Err(DumpError::malformed(
            w,
            "no \"DUMP\" tag after the signature",
        ));
    }
    let rd = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let (first_page, present, bits) = (rd(0x20), rd(0x28), rd(0x30));
    let index = BitmapIndex::build(data, w, at + 0x38, bits, first_page, Some(present))?;
    Ok((index, full))
}

/// DumpType 2 (old "summary" kernel dump) sub-header at `at`: SUMMARY_DUMP {"SDMP", "DUMP",
/// u32 DumpOptions, u32 HeaderSize (file offset of the first page), u32 BitmapSize (bits),
/// u32 Pages (stored), RTL_BITMAP}, bitmap after the RTL_BITMAP: +0x20 on x86, +0x28 on
/// 64-bit headers (WDK _SUMMARY_DUMP64, via can1357/selene's SDK dump).
pub(crate) fn parse_summary(data: &[u8], at: u64, wide: bool) -> Result<BitmapIndex, DumpError> {
    let w = "summary dump header";
    let bitmap_at = if wide { 0x28 } else { 0x20 };
    let h = slice(data, w, at, bitmap_at)?;
    if &h[..4] != b"SDMP" || &h[4..8] != b"DUMP" {
        return Err(DumpError::malformed(w, "no \"SDMP\"/\"DUMP\" signature"));
    }
    let rd = |o: usize| u64::from(u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]));
    let (first_page, bits, present) = (rd(0xC), rd(0x10), rd(0x14));
    let bitmap_offset = at + bitmap_at;
    if first_page < bitmap_offset + bits.div_ceil(8) {
        return Err(DumpError::malformed(
            w,
            format!("HeaderSize {first_page:#x} points inside the bitmap"),
        ));
    }
    BitmapIndex::build(data, w, bitmap_offset, bits, first_page, Some(present))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bitmap at offset 0 with `set` bits; pages start at `first`.
    fn file(bits: u64, set: &[u64], first: u64) -> Vec<u8> {
        let mut v = vec![0u8; first as usize + set.len() * 0x1000];
        for &b in set {
            v[(b / 8) as usize] |= 1 << (b % 8);
        }
        let _ = bits;
        v
    }

    #[test]
    fn rank_crosses_blocks() {
        // Bits in word 0, word 7, word 8 (second block), and the last partial word.
        let set = [0u64, 3, 7 * 64 + 5, 8 * 64, 8 * 64 + 63, 1000];
        let data = file(1001, &set, 0x1000);
        let idx = BitmapIndex::build(&data, "t", 0, 1001, 0x1000, Some(set.len() as u64)).unwrap();
        for (k, &b) in set.iter().enumerate() {
            assert_eq!(
                idx.offset(&data, b),
                Some(0x1000 + k as u64 * 0x1000),
                "bit {b}"
            );
        }
        assert_eq!(idx.offset(&data, 1), None);
        assert_eq!(idx.offset(&data, 1001), None);
        assert_eq!(idx.pfns(&data).collect::<Vec<_>>(), set.to_vec());
    }

    #[test]
    fn bits_past_the_count_are_ignored() {
        // Byte 0 = 0xff but only 4 bits are valid.
        let mut data = vec![0u8; 0x1000 + 4 * 0x1000];
        data[0] = 0xff;
        let idx = BitmapIndex::build(&data, "t", 0, 4, 0x1000, Some(4)).unwrap();
        assert_eq!(idx.present(), 4);
        assert_eq!(idx.offset(&data, 4), None);
    }

    #[test]
    fn lies_are_errors() {
        let data = file(64, &[1, 2], 0x1000);
        assert!(BitmapIndex::build(&data, "t", 0, 64, 0x1000, Some(3))
            .unwrap_err()
            .to_string()
            .contains("set bits"));
        assert!(BitmapIndex::build(&data, "t", 0, 1 << 45, 0x1000, None).is_err());
        // Bitmap past EOF.
        let e = BitmapIndex::build(&data, "t", 0, 1 << 30, 0x1000, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("truncated: bitmap"), "{e}");
        // Pages past EOF: listed, not in the file.
        let idx = BitmapIndex::build(&data, "t", 0, 64, 0x2000, None).unwrap();
        assert_eq!((idx.present(), idx.pages_in_file()), (2, 1));
    }
}
