//! One LFH or VS range read from the dump page by page, remembering which pages it lacks, so
//! that a block on a missing page is skipped and counted instead of read as zeros.

use crate::memory::{MemoryError, PageRead, VirtualMemory, PAGE_SIZE};
use crate::pool::page_states::PageStates;

pub struct RangeBytes {
    pub va: u64,
    bytes: Vec<u8>,
    present: Vec<bool>,
    /// The range's pages by what their PTEs say.
    pub states: PageStates,
}

impl RangeBytes {
    /// Reads `len` bytes at `va` (both page-aligned by the caller's descriptors; `len` bounded
    /// by [`super::MAX_RANGE_BYTES`]). Pages that cannot be read are marked absent and
    /// counted by cause.
    pub fn read(mem: &dyn VirtualMemory, va: u64, len: u64) -> RangeBytes {
        let pages = len.div_ceil(PAGE_SIZE) as usize;
        let mut bytes = vec![0u8; pages * PAGE_SIZE as usize];
        let mut present = vec![false; pages];
        let mut states = PageStates::default();
        for (i, (chunk, p)) in bytes
            .chunks_mut(PAGE_SIZE as usize)
            .zip(present.iter_mut())
            .enumerate()
        {
            let page_va = va.wrapping_add(i as u64 * PAGE_SIZE);
            match mem.read_page(page_va, chunk) {
                Ok(how) => {
                    *p = true;
                    states.in_transition += u64::from(how == PageRead::Transition);
                }
                Err(e) => {
                    // An unmapped page inside a committed range: nothing committed there.
                    if !states.error(&e) && e.absence().is_none() {
                        states.never_committed += 1;
                    }
                }
            }
        }
        bytes.truncate(len as usize);
        RangeBytes {
            va,
            bytes,
            present,
            states,
        }
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Committed pages of the range that could not be read (not in the dump, paged out,
    /// prototype PTE).
    pub fn missing_pages(&self) -> u64 {
        self.states.missing()
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

/// Counts the page a failed metadata read was about in `scan` (by cause; `missing_pages`
/// when it was committed but could not be read).
pub fn count_unread(scan: &mut super::SegmentHeapScan, e: &MemoryError) {
    if scan.page_states.error(e) {
        scan.missing_pages += 1;
    }
}
