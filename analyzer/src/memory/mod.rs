//! Memory as the rest of the analyzer sees it: physical pages served straight from the dump's
//! mmap, and kernel virtual memory (page-table translation, or a triage dump's data blocks).
//!
//! A page that the dump did not store is an error ([`MemoryError::PageMissing`]), never zeros:
//! a pool walker that mistakes a missing page for an empty one reports a wrong picture.

use thiserror::Error;

mod blocks;
mod paging;

pub use blocks::BlockMemory;
pub use paging::{PageTableMemory, PagingMode};

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
    /// Calls `f(va, page)` for every 4 KiB page of `[start, end)` that the address space maps,
    /// in ascending order: `Some(bytes)` when the dump holds the page, `None` when it is mapped
    /// but not stored. Unmapped ranges are skipped without visiting their pages, which is what
    /// makes scanning a 128 GiB pool range or the whole kernel half affordable. Returns `false`
    /// when this memory cannot enumerate its mappings (the caller then reads page by page).
    fn for_each_mapped_page(
        &self,
        _start: u64,
        _end: u64,
        _f: &mut dyn FnMut(u64, Option<&[u8]>),
    ) -> bool {
        false
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

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MemoryError {
    #[error("virtual address {va:#x} is not mapped")]
    NotMapped { va: u64 },
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
