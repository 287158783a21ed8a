//! Keeps the pool walks' resident memory bounded whatever the dump size.
//!
//! The walks read the dump through a memory map. Every page they touch stays mapped into the
//! process, so a walk over the 2 million blocks of an 8 GiB server's pool ended with the whole
//! 600 MB kernel dump resident (bench/RESULTS.md), and a 64 GiB server's dump would take
//! gigabytes. The walks go through virtual addresses, not in file order, so the page release of
//! a sequential reader (`Dump::for_each_stored_page`) does not fit: instead every
//! [`RELEASE_EVERY_PAGES`] distinct pages touched, [`Releasing`] lets go of everything
//! (`VirtualMemory::release_resident`). The few hot pages (page tables, heap headers) are read
//! back from the page cache on their next use, which costs a minor fault each.

use crate::memory::{MappedPage, MemoryError, PageRead, VirtualMemory, PAGE_SHIFT};
use std::cell::Cell;

/// Page changes between two releases: 16 MiB of 4 KiB pages (the kernel maps up to 16 pages
/// around each fault, so the resident peak is a small multiple of this).
pub const RELEASE_EVERY_PAGES: u64 = 4 * 1024;

/// A [`VirtualMemory`] that forwards to `inner` and releases its resident pages every
/// [`RELEASE_EVERY_PAGES`] page changes.
pub struct Releasing<'a> {
    inner: &'a dyn VirtualMemory,
    /// Page changes since the last release: consecutive reads within one page count once.
    touched: Cell<u64>,
    last_page: Cell<u64>,
    every: u64,
}

impl<'a> Releasing<'a> {
    pub fn new(inner: &'a dyn VirtualMemory) -> Self {
        Self::every(inner, RELEASE_EVERY_PAGES)
    }

    /// With another period (tests).
    pub fn every(inner: &'a dyn VirtualMemory, pages: u64) -> Self {
        Releasing {
            inner,
            touched: Cell::new(0),
            last_page: Cell::new(u64::MAX),
            every: pages.max(1),
        }
    }

    fn touch(&self, first_page: u64, pages: u64) {
        if pages == 1 && first_page == self.last_page.get() {
            return;
        }
        self.last_page.set(first_page.wrapping_add(pages - 1));
        let n = self.touched.get().saturating_add(pages);
        if n >= self.every {
            self.inner.release_resident();
            self.touched.set(0);
        } else {
            self.touched.set(n);
        }
    }
}

impl VirtualMemory for Releasing<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let r = self.inner.read(va, buf);
        if !buf.is_empty() {
            let first = va >> PAGE_SHIFT;
            let last = va.saturating_add(buf.len() as u64 - 1) >> PAGE_SHIFT;
            self.touch(first, last - first + 1);
        }
        r
    }

    fn pointer_size(&self) -> u8 {
        self.inner.pointer_size()
    }

    fn for_each_mapped_page(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, MappedPage<'_>),
    ) -> bool {
        self.inner
            .for_each_mapped_page(start, end, &mut |va, page| {
                f(va, page);
                if page.bytes().is_some() {
                    self.touch(va >> PAGE_SHIFT, 1);
                }
            })
    }

    fn read_page(&self, va: u64, buf: &mut [u8]) -> Result<PageRead, MemoryError> {
        let r = self.inner.read_page(va, buf);
        self.touch(va >> PAGE_SHIFT, 1);
        r
    }

    fn release_resident(&self) {
        self.inner.release_resident();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts releases; every address reads as zeros; maps `[0, 16 pages)`.
    struct Counting {
        releases: Cell<u32>,
    }

    impl VirtualMemory for Counting {
        fn read(&self, _va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            buf.fill(0);
            Ok(())
        }
        fn pointer_size(&self) -> u8 {
            8
        }
        fn for_each_mapped_page(
            &self,
            start: u64,
            end: u64,
            f: &mut dyn FnMut(u64, MappedPage<'_>),
        ) -> bool {
            let page = [0u8; 4096];
            let mut va = start;
            while va < end.min(16 << PAGE_SHIFT) {
                let stored = MappedPage::Stored {
                    bytes: &page,
                    transition: false,
                };
                f(va, stored);
                va += 4096;
            }
            true
        }
        fn release_resident(&self) {
            self.releases.set(self.releases.get() + 1);
        }
    }

    #[test]
    fn reads_within_one_page_count_once() {
        let inner = Counting {
            releases: Cell::new(0),
        };
        let m = Releasing::every(&inner, 4);
        for i in 0..100 {
            m.read_u64(0x1000 + 8 * (i % 500)).expect("read");
        }
        assert_eq!(inner.releases.get(), 0, "one page touched, no release");
        // Four more distinct pages reach the period.
        for p in 2..6u64 {
            m.read_u32(p << PAGE_SHIFT).expect("read");
        }
        assert_eq!(inner.releases.get(), 1);
    }

    #[test]
    fn a_read_across_pages_counts_every_page() {
        let inner = Counting {
            releases: Cell::new(0),
        };
        let m = Releasing::every(&inner, 3);
        let mut buf = vec![0u8; 2 * 4096];
        m.read(0x1800, &mut buf).expect("read");
        assert_eq!(
            inner.releases.get(),
            1,
            "0x1800..0x3800 spans pages 1, 2, 3"
        );
    }

    #[test]
    fn page_walks_release_every_period_and_visit_every_page() {
        let inner = Counting {
            releases: Cell::new(0),
        };
        let m = Releasing::every(&inner, 5);
        let mut seen = 0;
        assert!(m.for_each_mapped_page(0, u64::MAX, &mut |_, p| {
            assert!(p.bytes().is_some());
            seen += 1;
        }));
        assert_eq!(seen, 16);
        assert_eq!(inner.releases.get(), 3, "16 pages, a release every 5");
    }
}
