//! Kernel virtual memory by page-table walk over the dump's physical pages: x64 4-level
//! (2 MB and 1 GB pages), x86 PAE 3-level (2 MB pages) and x86 non-PAE 2-level (4 MB pages).
//!
//! Transition PTEs (valid bit clear, Transition bit 11 set, Prototype bit 10 clear) still name
//! the physical page that holds the data, which the dump writer saved; WinDbg reads them as
//! present and so do we. The walk has a fixed depth, so a page-table "loop" cannot recurse;
//! an entry pointing at an absurd physical address ends in `PageMissing`.

use super::{MemoryError, PhysicalMemory, VirtualMemory, PAGE_SHIFT, PAGE_SIZE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// x64 4-level paging (PML4, PDPT, PD, PT), 8-byte entries.
    X64,
    /// x86 PAE: 4-entry PDPT, PD, PT, 8-byte entries.
    X86Pae,
    /// x86 classic 2-level paging, 4-byte entries.
    X86,
}

const VALID: u64 = 1 << 0;
const LARGE: u64 = 1 << 7;
const PROTOTYPE: u64 = 1 << 10;
const TRANSITION: u64 = 1 << 11;
/// Physical frame bits 12..51 of a 64-bit entry (x64 and PAE).
const PFN_MASK_64: u64 = 0x000F_FFFF_FFFF_F000;

/// Page-table translation over a physical memory with a directory table base.
pub struct PageTableMemory<'a> {
    phys: &'a dyn PhysicalMemory,
    dtb: u64,
    mode: PagingMode,
}

impl<'a> PageTableMemory<'a> {
    /// `dtb` is CR3 as stored in the dump header; low flag/PCID bits are masked off.
    pub fn new(phys: &'a dyn PhysicalMemory, dtb: u64, mode: PagingMode) -> Self {
        let dtb = match mode {
            PagingMode::X64 => dtb & PFN_MASK_64,
            // The PAE PDPT is 32-byte aligned.
            PagingMode::X86Pae => dtb & 0xFFFF_FFE0,
            PagingMode::X86 => dtb & 0xFFFF_F000,
        };
        PageTableMemory { phys, dtb, mode }
    }

    pub fn mode(&self) -> PagingMode {
        self.mode
    }

    /// The physical address `va` maps to. Errors: `NotMapped` (entry not present, or not a
    /// valid address for the mode), `PageMissing` (a table page is not in the dump).
    pub fn translate(&self, va: u64) -> Result<u64, MemoryError> {
        match self.mode {
            PagingMode::X64 => self.translate_x64(va),
            PagingMode::X86Pae => self.translate_pae(va),
            PagingMode::X86 => self.translate_x86(va),
        }
    }

    fn entry64(&self, va: u64, table: u64, index: u64) -> Result<u64, MemoryError> {
        let pa = table + index * 8;
        let mut b = [0u8; 8];
        self.phys.read_physical(pa, &mut b).map_err(|_| MemoryError::PageMissing { va: Some(va), pa })?;
        Ok(u64::from_le_bytes(b))
    }

    fn entry32(&self, va: u64, table: u64, index: u64) -> Result<u64, MemoryError> {
        let pa = table + index * 4;
        let mut b = [0u8; 4];
        self.phys.read_physical(pa, &mut b).map_err(|_| MemoryError::PageMissing { va: Some(va), pa })?;
        Ok(u64::from(u32::from_le_bytes(b)))
    }

    fn translate_x64(&self, va: u64) -> Result<u64, MemoryError> {
        // Canonical: bits 63..47 all equal.
        let top = va >> 47;
        if top != 0 && top != 0x1_FFFF {
            return Err(MemoryError::NotMapped { va });
        }
        let pml4e = self.entry64(va, self.dtb, (va >> 39) & 0x1FF)?;
        let pdpt = table_of(va, pml4e)?;
        let pdpte = self.entry64(va, pdpt, (va >> 30) & 0x1FF)?;
        if pdpte & (VALID | LARGE) == VALID | LARGE {
            return Ok((pdpte & PFN_MASK_64 & !0x3FFF_FFFF) | (va & 0x3FFF_FFFF));
        }
        let pd = table_of(va, pdpte)?;
        let pde = self.entry64(va, pd, (va >> 21) & 0x1FF)?;
        if pde & (VALID | LARGE) == VALID | LARGE {
            return Ok((pde & PFN_MASK_64 & !0x1F_FFFF) | (va & 0x1F_FFFF));
        }
        let pt = table_of(va, pde)?;
        let pte = self.entry64(va, pt, (va >> 12) & 0x1FF)?;
        Ok(table_of(va, pte)? | (va & 0xFFF))
    }

    fn translate_pae(&self, va: u64) -> Result<u64, MemoryError> {
        if va > u64::from(u32::MAX) {
            return Err(MemoryError::NotMapped { va });
        }
        let pdpte = self.entry64(va, self.dtb, (va >> 30) & 0x3)?;
        if pdpte & VALID == 0 {
            return Err(MemoryError::NotMapped { va });
        }
        let pd = pdpte & PFN_MASK_64;
        let pde = self.entry64(va, pd, (va >> 21) & 0x1FF)?;
        if pde & (VALID | LARGE) == VALID | LARGE {
            return Ok((pde & PFN_MASK_64 & !0x1F_FFFF) | (va & 0x1F_FFFF));
        }
        let pt = table_of(va, pde)?;
        let pte = self.entry64(va, pt, (va >> 12) & 0x1FF)?;
        Ok(table_of(va, pte)? | (va & 0xFFF))
    }

    fn translate_x86(&self, va: u64) -> Result<u64, MemoryError> {
        if va > u64::from(u32::MAX) {
            return Err(MemoryError::NotMapped { va });
        }
        let pde = self.entry32(va, self.dtb, (va >> 22) & 0x3FF)?;
        if pde & (VALID | LARGE) == VALID | LARGE {
            return Ok((pde & 0xFFC0_0000) | (va & 0x3F_FFFF));
        }
        let pt = table_of32(va, pde)?;
        let pte = self.entry32(va, pt, (va >> 12) & 0x3FF)?;
        Ok(table_of32(va, pte)? | (va & 0xFFF))
    }
}

/// Is a non-large entry usable: hardware-valid, or a transition entry (data still in RAM)?
fn usable(entry: u64) -> bool {
    entry & VALID != 0 || entry & (TRANSITION | PROTOTYPE) == TRANSITION
}

/// The physical base of the table/page a 64-bit entry points to.
fn table_of(va: u64, entry: u64) -> Result<u64, MemoryError> {
    if usable(entry) { Ok(entry & PFN_MASK_64) } else { Err(MemoryError::NotMapped { va }) }
}

fn table_of32(va: u64, entry: u64) -> Result<u64, MemoryError> {
    if usable(entry) { Ok(entry & 0xFFFF_F000) } else { Err(MemoryError::NotMapped { va }) }
}

impl VirtualMemory for PageTableMemory<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = va.checked_add(done as u64).ok_or(MemoryError::AddressOverflow { addr: va })?;
            let pa = self.translate(addr)?;
            let page = self
                .phys
                .page(pa >> PAGE_SHIFT)
                .ok_or(MemoryError::PageMissing { va: Some(addr), pa })?;
            let off = (pa & (PAGE_SIZE - 1)) as usize;
            let n = page.len().saturating_sub(off).min(buf.len() - done);
            if n == 0 {
                return Err(MemoryError::PageMissing { va: Some(addr), pa });
            }
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }

    fn pointer_size(&self) -> u8 {
        match self.mode {
            PagingMode::X64 => 8,
            PagingMode::X86Pae | PagingMode::X86 => 4,
        }
    }
}
