//! One LFH or VS range read from the dump page by page, remembering which pages it lacks, so
//! that a block on a missing page is skipped and counted instead of read as zeros.

use crate::memory::{MemoryError, VirtualMemory, PAGE_SIZE};

pub struct RangeBytes {
    pub va: u64,
    bytes: Vec<u8>,
    present: Vec<bool>,
    /// Pages mapped but not stored in the dump (a page paged out or never mapped is absent
    /// too, but not missing: docs/json.md's `missing_pool_pages`).
    missing: u64,
}

impl RangeBytes {
    /// Reads `len` bytes at `va` (both page-aligned by the caller's descriptors; `len` bounded
    /// by [`super::MAX_RANGE_BYTES`]). Pages that cannot be read are marked absent.
    pub fn read(mem: &dyn VirtualMemory, va: u64, len: u64) -> RangeBytes {
        let pages = len.div_ceil(PAGE_SIZE) as usize;
        let mut bytes = vec![0u8; pages * PAGE_SIZE as usize];
        let mut present = vec![false; pages];
        let mut missing = 0;
        for (i, (chunk, p)) in bytes
            .chunks_mut(PAGE_SIZE as usize)
            .zip(present.iter_mut())
            .enumerate()
        {
            let page_va = va.wrapping_add(i as u64 * PAGE_SIZE);
            match mem.read(page_va, chunk) {
                Ok(()) => *p = true,
                Err(e) => missing += u64::from(is_missing(&e)),
            }
        }
        bytes.truncate(len as usize);
        RangeBytes {
            va,
            bytes,
            present,
            missing,
        }
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Pages of the range that are mapped but that the dump lacks.
    pub fn missing_pages(&self) -> u64 {
        self.missing
    }

    /// `len` bytes at offset `off`, if inside the range and every page they touch is present.
    pub fn get(&self, off: u64, len: u64) -> Option<&[u8]> {
        let end = off.checked_add(len)?;
        if len == 0 || end > self.len() {
            return None;
        }
        let first = (off / PAGE_SIZE) as usize;
        let last = ((end - 1) / PAGE_SIZE) as usize;
        if !self.present.get(first..=last)?.iter().all(|p| *p) {
            return None;
        }
        self.bytes.get(off as usize..end as usize)
    }

    pub fn u16(&self, off: u64) -> Option<u16> {
        self.get(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&self, off: u64) -> Option<u32> {
        self.get(off, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&self, off: u64) -> Option<u64> {
        self.get(off, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// Whether an error means "mapped but not in the dump" (counted) rather than "not mapped".
pub fn is_missing(e: &MemoryError) -> bool {
    matches!(
        e,
        MemoryError::PageMissing { .. } | MemoryError::NotCaptured { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::testmem::Image;

    /// A page the page tables do not map (paged out, never committed) is absent from the
    /// range but not missing from the dump; only a mapped page the dump lacks is.
    #[test]
    fn only_mapped_pages_the_dump_lacks_are_missing() {
        let base = 0xffff_c80c_4d10_0000;
        let mut img = Image::new(8);
        img.u64(base, 1);
        img.missing(base + 0x1000);
        img.u64(base + 0x3000, 2);
        let r = RangeBytes::read(&img, base, 0x4000);
        assert_eq!(r.missing_pages(), 1);
        assert_eq!(r.u64(0), Some(1));
        assert_eq!(r.u64(0x1000), None);
        assert_eq!(r.u64(0x2000), None);
        assert_eq!(r.u64(0x3000), Some(2));
    }
}
