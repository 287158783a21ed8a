//! Test helper: a sparse kernel address space built by hand, page by page. A page never written
//! is not mapped; a page marked [`Image::missing`] is mapped but not in the dump, one marked
//! [`Image::absent`] unreadable for another reason (paged out, prototype, demand-zero), as
//! page-table translation reports them; [`Image::transition`] pages read as transition pages.

use crate::memory::{Absence, MappedPage, MemoryError, PageRead, VirtualMemory};
use std::collections::{BTreeMap, BTreeSet};

pub struct Image {
    pub pointer_size: u8,
    pages: BTreeMap<u64, Vec<u8>>,
    missing: BTreeMap<u64, Absence>,
    transition: BTreeSet<u64>,
    /// Whether to offer mapping enumeration (as page-table memory does) or not (as a triage
    /// dump's captured blocks do).
    pub enumerate: bool,
}

impl Image {
    pub fn new(pointer_size: u8) -> Image {
        Image {
            pointer_size,
            pages: BTreeMap::new(),
            missing: BTreeMap::new(),
            transition: BTreeSet::new(),
            enumerate: false,
        }
    }

    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let a = va + i as u64;
            let page = self
                .pages
                .entry(a & !0xfff)
                .or_insert_with(|| vec![0u8; 0x1000]);
            page[(a & 0xfff) as usize] = b;
        }
    }
    pub fn u16(&mut self, va: u64, v: u16) {
        self.write(va, &v.to_le_bytes());
    }
    pub fn u32(&mut self, va: u64, v: u32) {
        self.write(va, &v.to_le_bytes());
    }
    pub fn u64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }
    /// Makes a zero-filled page present.
    pub fn touch(&mut self, va: u64) {
        self.pages
            .entry(va & !0xfff)
            .or_insert_with(|| vec![0u8; 0x1000]);
    }
    /// Marks a page as mapped but not stored in the dump (and drops it if written).
    pub fn missing(&mut self, va: u64) {
        self.absent(va, Absence::NotInDump);
    }
    /// Marks a page as unreadable for `why` (and drops it if written).
    pub fn absent(&mut self, va: u64, why: Absence) {
        self.pages.remove(&(va & !0xfff));
        self.missing.insert(va & !0xfff, why);
    }
    /// Marks a written page as mapped by a transition PTE (still read).
    pub fn transition(&mut self, va: u64) {
        self.transition.insert(va & !0xfff);
    }
    pub fn memory(&self) -> &Image {
        self
    }
}

impl VirtualMemory for Image {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = va
                .checked_add(i as u64)
                .ok_or(MemoryError::AddressOverflow { addr: va })?;
            let page = a & !0xfff;
            match self.pages.get(&page) {
                Some(p) => *b = p[(a & 0xfff) as usize],
                None => return Err(self.error(a)),
            }
        }
        Ok(())
    }
    fn pointer_size(&self) -> u8 {
        self.pointer_size
    }
    fn read_page(&self, va: u64, buf: &mut [u8]) -> Result<PageRead, MemoryError> {
        self.read(va, buf)?;
        Ok(if self.transition.contains(&(va & !0xfff)) {
            PageRead::Transition
        } else {
            PageRead::Resident
        })
    }
    fn for_each_mapped_page(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, MappedPage<'_>),
    ) -> bool {
        if !self.enumerate {
            return false;
        }
        let mut all: Vec<u64> = self
            .pages
            .keys()
            .chain(self.missing.keys())
            .copied()
            .filter(|&p| p >= start && p < end)
            .collect();
        all.sort_unstable();
        for p in all {
            let page = match (self.pages.get(&p), self.missing.get(&p)) {
                (Some(v), _) => MappedPage::Stored {
                    bytes: v,
                    transition: self.transition.contains(&p),
                },
                (None, Some(&why)) => MappedPage::Absent { why, pages: 1 },
                (None, None) => continue,
            };
            f(p, page);
        }
        true
    }
}

impl Image {
    /// The error reading the unreadable address `a` gives.
    fn error(&self, a: u64) -> MemoryError {
        match self.missing.get(&(a & !0xfff)) {
            Some(Absence::NotInDump) => MemoryError::PageMissing { va: Some(a), pa: 0 },
            Some(Absence::PagedOut) => MemoryError::PagedOut {
                va: a,
                page_file: 0,
                offset: 1,
                table: false,
            },
            Some(Absence::Prototype) => MemoryError::Prototype {
                va: a,
                table: false,
            },
            Some(Absence::NeverCommitted) => MemoryError::NotCommitted {
                va: a,
                demand_zero: true,
            },
            None => MemoryError::NotMapped { va: a },
        }
    }
}

pub fn corpus(rel: &str) -> String {
    crate::test_corpus::corpus_str(rel)
}

pub fn isf(guid_age: &str) -> crate::symbols::Profile {
    crate::symbols::Profile::from_isf(corpus(&format!("isf/ntkrnlmp.pdb/{guid_age}.json.xz")))
        .unwrap()
}

pub fn xp_pdb() -> crate::symbols::Profile {
    crate::symbols::Profile::from_pdb(corpus("pdb/ntkrnlpa.pdb")).unwrap()
}

pub const W7601: &str = "339E74133576439CBCDF7E0229DA3773-1";
pub const W17763: &str = "8B11040A5928757B11390AC78F6B6925-1";
pub const W19041: &str = "5278AFF86C341677D7D7835C85B7B844-1";
pub const W20348: &str = "C2EADB24A615E9472CE47C8ADD31F130-1";
