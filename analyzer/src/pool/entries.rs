//! Tables of fixed-size entries read from a dump (the tag tables, the big page tables): a chunk
//! at a time, and where a chunk is not all there, entry by entry, counting what is missing.
//!
//! A table's size is a number the dump's writer chose: millions of entries in memory the dump
//! does not hold would cost a page-table walk each. An entry lying wholly inside a page that
//! could not be read is counted as missing without reading it again.

use crate::memory::{VirtualMemory, PAGE_SIZE};

/// Calls `f` for each of the `n` entries of `esize` bytes at `va`, in order: `Some(bytes)` for
/// an entry that was read, `None` for one the dump does not hold.
pub(crate) fn for_each_entry(
    mem: &dyn VirtualMemory,
    va: u64,
    n: u64,
    esize: u64,
    chunk_entries: u64,
    f: &mut dyn FnMut(Option<&[u8]>),
) {
    if esize == 0 || chunk_entries == 0 {
        return;
    }
    let mut buf = vec![0u8; (chunk_entries * esize) as usize];
    // The last page an entry lying wholly inside it could not be read from.
    let mut bad_page: Option<u64> = None;
    let mut i = 0;
    while i < n {
        let k = chunk_entries.min(n - i);
        let chunk = &mut buf[..(k * esize) as usize];
        let start = va.wrapping_add(i * esize);
        if mem.read(start, chunk).is_ok() {
            for e in chunk.chunks_exact(esize as usize) {
                f(Some(e));
            }
        } else {
            for (j, e) in chunk.chunks_exact_mut(esize as usize).enumerate() {
                let at = start.wrapping_add(j as u64 * esize);
                let page = one_page(at, esize);
                if page.is_some() && page == bad_page {
                    f(None);
                } else if mem.read(at, e).is_ok() {
                    f(Some(e));
                } else {
                    bad_page = page.or(bad_page);
                    f(None);
                }
            }
        }
        i += k;
    }
}

/// The page holding all `len` bytes at `va`, `None` when they straddle two pages.
fn one_page(va: u64, len: u64) -> Option<u64> {
    let last = va.checked_add(len.checked_sub(1)?)?;
    let page = va & !(PAGE_SIZE - 1);
    (last & !(PAGE_SIZE - 1) == page).then_some(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::testmem::Image;
    use std::cell::Cell;

    /// Memory that counts the reads made of it.
    struct Counting<'a>(&'a Image, Cell<u64>);

    impl VirtualMemory for Counting<'_> {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::memory::MemoryError> {
            self.1.set(self.1.get() + 1);
            self.0.read(va, buf)
        }
        fn pointer_size(&self) -> u8 {
            8
        }
    }

    /// A tag table's size (0x38-byte entries, some straddling pages) over memory the dump lacks
    /// but for one page: every entry is reported once, in order, and the reads are a few per
    /// page, not one per entry.
    #[test]
    fn missing_pages_cost_a_read_each_not_a_read_per_entry() {
        let (va, n, es) = (0xffff_c000_0000_0000u64, 1u64 << 16, 0x38u64);
        let mut img = Image::new(8);
        img.write(va + 0x10_0800, b"Here");
        let mem = Counting(&img, Cell::new(0));
        let (mut got, mut missing, mut seen) = (0u64, 0u64, Vec::new());
        for_each_entry(&mem, va, n, es, 512, &mut |e| match e {
            Some(e) => {
                got += 1;
                seen.extend_from_slice(e);
            }
            None => missing += 1,
        });
        assert_eq!(got + missing, n);
        assert!(got >= 0x1000 / es - 1 && got <= 0x1000 / es + 1, "{got}");
        assert!(seen.windows(4).any(|w| w == b"Here"));
        let pages = n * es / 0x1000;
        assert!(
            mem.1.get() < 4 * pages,
            "{} reads for {pages} pages",
            mem.1.get()
        );
    }

    #[test]
    fn one_page_is_the_page_of_a_range_that_does_not_straddle() {
        assert_eq!(one_page(0x1ff0, 0x10), Some(0x1000));
        assert_eq!(one_page(0x1ff8, 0x10), None);
        assert_eq!(one_page(u64::MAX - 3, 8), None);
        assert_eq!(one_page(0x1000, 0), None);
    }
}
