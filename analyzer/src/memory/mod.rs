//! Memory as the rest of the analyzer sees it: physical pages served straight from the dump's
//! mmap, and kernel virtual memory (page-table translation, or a triage dump's data blocks).
//!
//! A page that the dump did not store is an error ([`MemoryError::PageMissing`]), never zeros:
//! a pool walker that mistakes a missing page for an empty one reports a wrong picture.

use thiserror::Error;

mod blocks;
mod paging;
pub mod pte;

pub use blocks::BlockMemory;
pub use paging::{PageTableMemory, PagingMode};
pub use pte::{PteFormat, PteFormatSource, PteState};

pub const PAGE_SIZE: u64 = 0x1000;
pub const PAGE_SHIFT: u32 = 12;

/// Physical memory: 4 KiB pages by page frame number, as stored in the dump.
pub trait PhysicalMemory {
    /// The bytes of page `pfn` (exactly [`PAGE_SIZE`] long), or `None` when the dump does not
    /// hold it. Must be O(1) and must not copy.
    fn page(&self, pfn: u64) -> Option<&[u8]>;

    /// Reads `buf.len()` bytes at physical address `pa`, across page boundaries.
    fn read_physical(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = pa
                .checked_add(done as u64)
                .ok_or(MemoryError::AddressOverflow { addr: pa })?;
            let page = self
                .page(addr >> PAGE_SHIFT)
                .ok_or(MemoryError::PageMissing { va: None, pa: addr })?;
            let off = (addr & (PAGE_SIZE - 1)) as usize;
            let n = (page.len() - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }

    /// Lets go of the resident pages behind this memory (a memory-mapped dump's file pages),
    /// for walks that touch far more of a dump than they need at once: a pool walk over a
    /// multi-GiB dump otherwise ends with all of it resident. Everything stays readable (pages
    /// are read back on the next access). A hint; the default does nothing.
    fn release_resident(&self) {}
}

/// Kernel virtual memory. Implemented by page-table translation over [`PhysicalMemory`] and by
/// a triage dump's captured data blocks.
pub trait VirtualMemory {
    /// Reads `buf.len()` bytes at virtual address `va`, across page boundaries. Fails with the
    /// first address that is not mapped or whose page the dump does not hold.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// Pointer size of the address space: 4 on x86 (PAE or not), 8 on x64 and arm64.
    fn pointer_size(&self) -> u8;

    fn read_u8(&self, va: u64) -> Result<u8, MemoryError> {
        let mut b = [0u8; 1];
        self.read(va, &mut b)?;
        Ok(b[0])
    }
    fn read_u16(&self, va: u64) -> Result<u16, MemoryError> {
        let mut b = [0u8; 2];
        self.read(va, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn read_u32(&self, va: u64) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u64(&self, va: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads a pointer of the address space's size, zero-extended to 64 bits.
    fn read_ptr(&self, va: u64) -> Result<u64, MemoryError> {
        match self.pointer_size() {
            4 => self.read_u32(va).map(u64::from),
            _ => self.read_u64(va),
        }
    }
    /// Calls `f(va, page)` for every 4 KiB page of `[start, end)` that a non-zero entry maps,
    /// in ascending order: [`MappedPage::Stored`] when the dump holds the page (a valid or a
    /// transition PTE's), [`MappedPage::Absent`] with why when it does not, for a run of
    /// `pages` pages at once where a whole table is absent. Zero entries (never committed,
    /// unmapped ranges) are skipped without visiting their pages, which is what makes
    /// scanning a 128 GiB pool range or the whole kernel half affordable. Returns `false`
    /// when this memory cannot enumerate its mappings (the caller then reads page by page).
    fn for_each_mapped_page(
        &self,
        _start: u64,
        _end: u64,
        _f: &mut dyn FnMut(u64, MappedPage<'_>),
    ) -> bool {
        false
    }

    /// Reads the page-aligned 4 KiB at `va` into `buf` and says how the page was found: as
    /// [`VirtualMemory::read`], and [`PageRead::Transition`] when a transition PTE maps it.
    fn read_page(&self, va: u64, buf: &mut [u8]) -> Result<PageRead, MemoryError> {
        self.read(va, buf).map(|()| PageRead::Resident)
    }

    /// As [`PhysicalMemory::release_resident`], for the memory under this address space.
    fn release_resident(&self) {}

    /// Reads `len` bytes into a new vector; `len` is capped by the caller's own sanity limits.
    fn read_vec(&self, va: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut v = vec![0u8; len];
        self.read(va, &mut v)?;
        Ok(v)
    }
}

/// How a page that was read is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRead {
    /// A valid PTE (or memory without page tables).
    Resident,
    /// A transition PTE: the page is on the standby or modified list, still in RAM and in the
    /// dump; WinDbg reads it too.
    Transition,
}

/// Why a mapped page cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Absence {
    /// A valid or transition PTE (or a table) names a physical page the dump did not store.
    NotInDump,
    /// In a paging file (or Windows 10's compression store), or under a paged-out page table.
    PagedOut,
    /// A prototype PTE (section-backed memory), not followed.
    Prototype,
    /// A demand-zero PTE: committed, never touched; holds nothing yet.
    NeverCommitted,
}

/// One page (or run of absent pages) of [`VirtualMemory::for_each_mapped_page`].
#[derive(Debug, Clone, Copy)]
pub enum MappedPage<'a> {
    Stored {
        bytes: &'a [u8],
        /// Mapped by a transition PTE.
        transition: bool,
    },
    Absent {
        why: Absence,
        /// Consecutive pages from the address given (more than one where a table is absent).
        pages: u64,
    },
}

impl<'a> MappedPage<'a> {
    /// The page's bytes when stored.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match *self {
            MappedPage::Stored { bytes, .. } => Some(bytes),
            MappedPage::Absent { .. } => None,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// No table maps the address (an upper-level entry is zero), or it is not an address of
    /// the mode.
    #[error("virtual address {va:#x} is not mapped")]
    NotMapped { va: u64 },
    /// The PTE is zero (never committed, or decommitted) or demand-zero (committed, never
    /// touched): no page holds anything yet.
    #[error("virtual address {va:#x} was never committed ({})", if *.demand_zero { "demand-zero PTE" } else { "zero PTE" })]
    NotCommitted { va: u64, demand_zero: bool },
    /// The PTE (or, with `table`, an entry above it) names a page in a paging file.
    #[error("virtual address {va:#x} is paged out{}: paging file {page_file}, page {offset:#x}", if *.table { " (its page table is)" } else { "" })]
    PagedOut {
        va: u64,
        page_file: u32,
        offset: u64,
        table: bool,
    },
    /// The PTE (or, with `table`, an entry above it) is a prototype PTE, not followed.
    #[error("virtual address {va:#x} has a prototype PTE{} (not followed)", if *.table { " above its page table" } else { "" })]
    Prototype { va: u64, table: bool },
    #[error("page at physical address {pa:#x}{} is not in the dump", .va.map(|v| format!(" (virtual {v:#x})")).unwrap_or_default())]
    PageMissing { va: Option<u64>, pa: u64 },
    #[error("address {addr:#x} overflows the address space")]
    AddressOverflow { addr: u64 },
    #[error("page-table walk for {va:#x} is malformed: {reason}")]
    BadPageTable { va: u64, reason: &'static str },
    #[error("virtual memory translation is not supported for {arch}")]
    Unsupported { arch: &'static str },
    /// A triage dump holds only the ranges its writer captured; this address is not one.
    #[error("virtual address {va:#x} was not captured in the triage dump")]
    NotCaptured { va: u64 },
}

impl MemoryError {
    /// Why the page cannot be read, when the error is about a mapped page (or one whose
    /// entries say it was committed); `None` for an unmapped address or a malformed request.
    pub fn absence(&self) -> Option<Absence> {
        match self {
            MemoryError::PageMissing { .. } | MemoryError::NotCaptured { .. } => {
                Some(Absence::NotInDump)
            }
            MemoryError::PagedOut { .. } => Some(Absence::PagedOut),
            MemoryError::Prototype { .. } => Some(Absence::Prototype),
            MemoryError::NotCommitted { .. } => Some(Absence::NeverCommitted),
            _ => None,
        }
    }
}
