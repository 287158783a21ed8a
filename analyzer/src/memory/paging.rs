//! Kernel virtual memory by page-table walk over the dump's physical pages: x64 4-level
//! (2 MB and 1 GB pages), x86 PAE 3-level (2 MB pages) and x86 non-PAE 2-level (4 MB pages).
//!
//! An entry whose Valid bit is clear is classified by the kernel's PTE layout ([`PteFormat`],
//! at every level: a paged pool page table can itself be paged out). A transition entry
//! still names the physical page that holds the data; WinDbg reads it as present and so do
//! we when the dump holds that page. A page-file, prototype, demand-zero or zero entry is an
//! error that says which ([`MemoryError::PagedOut`], [`MemoryError::Prototype`],
//! [`MemoryError::NotCommitted`]); a zero upper-level entry is [`MemoryError::NotMapped`].
//! The walk has a fixed depth, so a page-table "loop" cannot recurse; an entry pointing at an
//! absurd physical address ends in `PageMissing`.

use super::pte::{PteFormat, PteState};
use super::{
    Absence, MappedPage, MemoryError, PageRead, PhysicalMemory, VirtualMemory, PAGE_SHIFT,
    PAGE_SIZE,
};
use std::cell::Cell;

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
/// Physical frame bits 12..51 of a 64-bit entry (x64 and PAE).
const PFN_MASK_64: u64 = 0x000F_FFFF_FFFF_F000;

/// Page-table translation over a physical memory with a directory table base.
pub struct PageTableMemory<'a> {
    phys: &'a dyn PhysicalMemory,
    dtb: u64,
    format: PteFormat,
    /// The last page translated: the pool walks read one page's headers one after another,
    /// and a dump's page tables never change, so one entry saves most table walks.
    last: Cell<Option<(u64, Resolved)>>,
}

/// Where a translation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resolved {
    pa: u64,
    transition: bool,
}

impl<'a> PageTableMemory<'a> {
    /// `dtb` is CR3 as stored in the dump header; low flag/PCID bits are masked off. Invalid
    /// entries are read with the mode's built-in layout ([`PteFormat::built_in`]).
    pub fn new(phys: &'a dyn PhysicalMemory, dtb: u64, mode: PagingMode) -> Self {
        Self::with_format(phys, dtb, PteFormat::built_in(mode))
    }

    /// As [`PageTableMemory::new`], reading invalid entries with `format` (the kernel's).
    pub fn with_format(phys: &'a dyn PhysicalMemory, dtb: u64, format: PteFormat) -> Self {
        let dtb = match format.mode {
            PagingMode::X64 => dtb & PFN_MASK_64,
            // The PAE PDPT is 32-byte aligned.
            PagingMode::X86Pae => dtb & 0xFFFF_FFE0,
            PagingMode::X86 => dtb & 0xFFFF_F000,
        };
        PageTableMemory {
            phys,
            dtb,
            format,
            last: Cell::new(None),
        }
    }

    pub fn mode(&self) -> PagingMode {
        self.format.mode
    }

    pub fn format(&self) -> &PteFormat {
        &self.format
    }

    /// The physical address `va` maps to (a transition PTE's frame too). Errors: `NotMapped`
    /// (an upper-level entry is zero, or not a valid address for the mode), `NotCommitted`,
    /// `PagedOut`, `Prototype` (what the entry says), `PageMissing` (a table page is not in
    /// the dump).
    pub fn translate(&self, va: u64) -> Result<u64, MemoryError> {
        self.resolve(va).map(|r| r.pa)
    }

    fn resolve(&self, va: u64) -> Result<Resolved, MemoryError> {
        let page = va & !(PAGE_SIZE - 1);
        let offset = va & (PAGE_SIZE - 1);
        if let Some((_, r)) = self.last.get().filter(|&(p, _)| p == page) {
            return Ok(Resolved {
                pa: r.pa | offset,
                ..r
            });
        }
        let r = self.walk_tables(va)?;
        let base = Resolved {
            pa: r.pa & !(PAGE_SIZE - 1),
            ..r
        };
        self.last.set(Some((page, base)));
        Ok(r)
    }

    fn walk_tables(&self, va: u64) -> Result<Resolved, MemoryError> {
        if !self.valid_va(va) {
            return Err(MemoryError::NotMapped { va });
        }
        let levels = self.levels();
        let mut table = self.dtb;
        for (depth, level) in levels.iter().enumerate() {
            let index = (va >> level.shift) & (level.entries - 1);
            let pa = table + index * self.entry_size();
            let entry = self
                .entry(pa)
                .ok_or(MemoryError::PageMissing { va: Some(va), pa })?;
            let leaf = depth + 1 == levels.len();
            if self.is_pae_pdpt(depth) {
                if entry & VALID == 0 {
                    return Err(MemoryError::NotMapped { va });
                }
                table = entry & self.frame_mask();
                continue;
            }
            match self.format.classify(entry) {
                PteState::Valid => {
                    if let Some(frame) = self.maps_page(levels, depth, entry) {
                        let span_mask = (1u64 << level.shift) - 1;
                        let pa = frame | (va & span_mask);
                        return Ok(Resolved {
                            pa,
                            transition: false,
                        });
                    }
                    table = entry & self.frame_mask();
                }
                PteState::Transition { frame } if leaf => {
                    return Ok(Resolved {
                        pa: frame | (va & (PAGE_SIZE - 1)),
                        transition: true,
                    })
                }
                PteState::Transition { frame } => table = frame,
                other => return Err(not_present(va, other, leaf)),
            }
        }
        // Unreachable for non-empty level tables: the last level always maps a page.
        Err(MemoryError::NotMapped { va })
    }

    fn valid_va(&self, va: u64) -> bool {
        match self.mode() {
            // Canonical: bits 63..47 all equal.
            PagingMode::X64 => matches!(va >> 47, 0 | 0x1_FFFF),
            PagingMode::X86Pae | PagingMode::X86 => va <= u64::from(u32::MAX),
        }
    }

    fn levels(&self) -> &'static [Level] {
        match self.mode() {
            PagingMode::X64 => &X64_LEVELS,
            PagingMode::X86Pae => &PAE_LEVELS,
            PagingMode::X86 => &X86_LEVELS,
        }
    }

    /// PAE's four PDPTEs are hardware-only (Windows keeps them valid): no software states.
    fn is_pae_pdpt(&self, depth: usize) -> bool {
        self.mode() == PagingMode::X86Pae && depth == 0
    }

    fn entry_size(&self) -> u64 {
        if self.mode() == PagingMode::X86 {
            4
        } else {
            8
        }
    }

    fn frame_mask(&self) -> u64 {
        if self.mode() == PagingMode::X86 {
            0xFFFF_F000
        } else {
            PFN_MASK_64
        }
    }

    /// The table entry at physical address `pa`, or `None` when its page is not in the dump.
    fn entry(&self, pa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        let size = self.entry_size() as usize;
        self.phys.read_physical(pa, &mut b[..size]).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// For a valid entry that maps a page (a PTE, or a large PDE/PDPTE), the physical base
    /// of that page (aligned to the span the entry maps); `None` for an entry naming a table.
    fn maps_page(&self, levels: &[Level], depth: usize, entry: u64) -> Option<u64> {
        let level = levels.get(depth)?;
        let leaf = depth + 1 == levels.len();
        if leaf || (level.large && entry & (VALID | LARGE) == VALID | LARGE) {
            Some(entry & self.frame_mask() & !((1u64 << level.shift) - 1))
        } else {
            None
        }
    }
}

/// The error for an entry that maps nothing readable (`state` is not Valid or Transition).
fn not_present(va: u64, state: PteState, leaf: bool) -> MemoryError {
    match state {
        PteState::PageFile { file, offset } => MemoryError::PagedOut {
            va,
            page_file: file,
            offset,
            table: !leaf,
        },
        PteState::Prototype => MemoryError::Prototype { va, table: !leaf },
        PteState::DemandZero => MemoryError::NotCommitted {
            va,
            demand_zero: true,
        },
        PteState::Zero if leaf => MemoryError::NotCommitted {
            va,
            demand_zero: false,
        },
        _ => MemoryError::NotMapped { va },
    }
}

/// One level of a page-table format, for enumeration.
struct Level {
    entries: u64,
    /// log2 of the bytes one entry maps.
    shift: u32,
    /// Whether a valid entry with the large bit maps a page directly (PDPT/PD levels).
    large: bool,
}

impl Level {
    const fn new(entries: u64, shift: u32, large: bool) -> Level {
        Level {
            entries,
            shift,
            large,
        }
    }
}

const X64_LEVELS: [Level; 4] = [
    Level::new(512, 39, false),
    Level::new(512, 30, true),
    Level::new(512, 21, true),
    Level::new(512, 12, false),
];
const PAE_LEVELS: [Level; 3] = [
    Level::new(4, 30, false),
    Level::new(512, 21, true),
    Level::new(512, 12, false),
];
const X86_LEVELS: [Level; 2] = [Level::new(1024, 22, true), Level::new(1024, 12, false)];

/// The part of `[start, end)` one entry's span `[va, last]` covers, as (first page, pages).
fn clip(va: u64, last: u64, start: u64, end: u64) -> Option<(u64, u64)> {
    let from = va.max(start & !(PAGE_SIZE - 1));
    let to = last.min(end.checked_sub(1)?);
    (from <= to).then(|| (from, ((to - from) >> PAGE_SHIFT) + 1))
}

/// One entry of a table being enumerated: the span it maps and the range asked for.
struct Span {
    depth: usize,
    va: u64,
    last: u64,
    start: u64,
    end: u64,
}

type Visit<'v> = dyn FnMut(u64, MappedPage<'_>) + 'v;

impl PageTableMemory<'_> {
    /// Walks the tables below `table` (level `depth`), visiting the pages of `[start, end)`
    /// that non-zero entries map. A table page missing from the dump makes its span absent
    /// (except the root: nothing is known to be mapped then).
    fn walk(&self, depth: usize, table: u64, base: u64, start: u64, end: u64, f: &mut Visit) {
        let Some(level) = self.levels().get(depth) else {
            return;
        };
        let span = 1u64 << level.shift;
        for idx in 0..level.entries {
            let mut va = base.wrapping_add(idx << level.shift);
            if depth == 0 && self.mode() == PagingMode::X64 && idx >= 256 {
                va |= 0xFFFF_0000_0000_0000; // canonical upper half
            }
            let last = va.wrapping_add(span - 1);
            if last < start {
                continue;
            }
            if va >= end {
                break;
            }
            let s = Span {
                depth,
                va,
                last,
                start,
                end,
            };
            match self.entry(table + idx * self.entry_size()) {
                Some(entry) => self.visit_entry(&s, entry, f),
                None if depth > 0 => absent(&s, Absence::NotInDump, f),
                None => {}
            }
        }
    }

    /// One entry: its page(s), the table it names, or why its span cannot be read.
    fn visit_entry(&self, s: &Span, entry: u64, f: &mut Visit) {
        let leaf = s.depth + 1 == self.levels().len();
        if self.is_pae_pdpt(s.depth) {
            if entry & VALID != 0 {
                self.descend(s, entry & self.frame_mask(), f);
            }
            return;
        }
        match self.format.classify(entry) {
            PteState::Valid => match self.maps_page(self.levels(), s.depth, entry) {
                Some(frame) => self.pages(s, frame, false, f),
                None => self.descend(s, entry & self.frame_mask(), f),
            },
            PteState::Transition { frame } if leaf => self.pages(s, frame, true, f),
            PteState::Transition { frame } => self.descend(s, frame, f),
            PteState::PageFile { .. } => absent(s, Absence::PagedOut, f),
            PteState::Prototype => absent(s, Absence::Prototype, f),
            // A demand-zero table would be created empty: nothing under it is committed.
            PteState::DemandZero if leaf => absent(s, Absence::NeverCommitted, f),
            PteState::DemandZero | PteState::Zero => {}
        }
    }

    fn descend(&self, s: &Span, table: u64, f: &mut Visit) {
        self.walk(s.depth + 1, table, s.va, s.start, s.end, f);
    }

    /// The 4 KiB pages of a page an entry maps at `frame` (a large one is enumerated page by
    /// page, only inside the range asked for).
    fn pages(&self, s: &Span, frame: u64, transition: bool, f: &mut Visit) {
        let Some((first, count)) = clip(s.va, s.last, s.start, s.end) else {
            return;
        };
        for i in 0..count {
            let page_va = first + (i << PAGE_SHIFT);
            let pfn = (frame + (page_va - s.va)) >> PAGE_SHIFT;
            let page = match self.phys.page(pfn) {
                Some(bytes) => MappedPage::Stored { bytes, transition },
                None => MappedPage::Absent {
                    why: Absence::NotInDump,
                    pages: 1,
                },
            };
            f(page_va, page);
        }
    }
}

/// Reports the pages of an entry's span (inside the range asked for) as absent, in one call.
fn absent(s: &Span, why: Absence, f: &mut Visit) {
    if let Some((first, pages)) = clip(s.va, s.last, s.start, s.end) {
        f(first, MappedPage::Absent { why, pages });
    }
}

impl VirtualMemory for PageTableMemory<'_> {
    fn release_resident(&self) {
        self.phys.release_resident();
    }

    fn for_each_mapped_page(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, MappedPage<'_>),
    ) -> bool {
        self.walk(0, self.dtb, 0, start, end, f);
        true
    }

    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = va
                .checked_add(done as u64)
                .ok_or(MemoryError::AddressOverflow { addr: va })?;
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

    fn read_page(&self, va: u64, buf: &mut [u8]) -> Result<PageRead, MemoryError> {
        let r = self.resolve(va)?;
        let off = (r.pa & (PAGE_SIZE - 1)) as usize;
        let page = self.phys.page(r.pa >> PAGE_SHIFT);
        match page.and_then(|p| p.get(off..off.checked_add(buf.len())?)) {
            Some(src) => buf.copy_from_slice(src),
            None if page.is_none() => {
                return Err(MemoryError::PageMissing {
                    va: Some(va),
                    pa: r.pa,
                })
            }
            // Across the page end: byte by byte through the tables.
            None => self.read(va, buf)?,
        }
        Ok(if r.transition {
            PageRead::Transition
        } else {
            PageRead::Resident
        })
    }

    fn pointer_size(&self) -> u8 {
        match self.mode() {
            PagingMode::X64 => 8,
            PagingMode::X86Pae | PagingMode::X86 => 4,
        }
    }
}

#[cfg(test)]
#[path = "paging_tests.rs"]
mod tests;
