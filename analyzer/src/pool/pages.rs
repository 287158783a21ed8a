//! Classic pool pages, walked header by header as `!pool` does.
//!
//! A page of small pool allocations is a chain of blocks: the first has PreviousSize 0, each
//! block's BlockSize equals the next one's PreviousSize, no block is empty, and the last one
//! ends exactly at the end of the page. A page that breaks any of these is not trusted (it is a
//! big allocation's interior, a free page, another kind of memory, or damaged) and its blocks
//! are not reported; the scan counts such pages and keeps a few examples with the reason.
//!
//! Which pages: the paged and nonpaged pool ranges from the debugger data block
//! (MmNonPagedPoolStart/End, MmPagedPoolStart/End), meaningful on kernels before Windows 10.
//! A page of a range that the page tables say is committed but that cannot be read (not in
//! the dump, paged out, a prototype PTE) is counted in `missing_pool_pages` and by cause in
//! `page_states`, so the report can say how complete it is; a transition page is read.

use super::header::HeaderLayout;
use super::page_states::PageStates;
use super::resident::Releasing;
use super::tag::Tag;
use super::types::{PoolKind, PoolType};
use super::{hex, hex_opt};
use crate::memory::{Absence, MappedPage, PageRead, VirtualMemory, PAGE_SIZE};
use serde::Serialize;

/// Most pages scanned per range: 2^26 pages is 256 GiB of address space, more than any
/// classic pool range (Windows 7 x64 paged pool is 128 GiB).
pub const MAX_RANGE_PAGES: u64 = 1 << 26;
/// Invalid pages kept as examples in a scan.
const MAX_EXAMPLES: usize = 20;

/// One pool block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Block {
    /// Address of the block's POOL_HEADER.
    #[serde(serialize_with = "hex")]
    pub address: u64,
    /// Bytes, header included.
    pub size: u64,
    /// The POOL_HEADER's PreviousSize, in bytes (`!pool`'s and `!poolfind`'s "previous size");
    /// `None` for a big allocation, which has no header.
    pub previous_size: Option<u64>,
    pub tag: Tag,
    pub pool_type: PoolType,
    /// The pool the block lives in: its header's type, or for a free block (whose header
    /// records none) the pool range it was found in.
    pub pool: PoolKind,
    pub allocated: bool,
    /// The quota-charged process pointer as stored, for a quota block: the header's
    /// ProcessBilled on x64 (encoded on Windows 8+), the block's last pointer on x86.
    #[serde(serialize_with = "hex_opt")]
    pub process_billed: Option<u64>,
}

/// Why a page is not a valid classic pool page: where its header chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("page is {0} bytes, not {PAGE_SIZE}")]
    NotAPage(usize),
    #[error("header at +{0:#x} runs past the page")]
    HeaderPastEnd(u64),
    #[error("block at +{offset:#x}: PreviousSize {found} but the previous block is {expected}")]
    PreviousSize {
        offset: u64,
        found: u32,
        expected: u32,
    },
    #[error("block at +{0:#x} has BlockSize 0")]
    ZeroSize(u64),
    #[error("block at +{offset:#x} of {size:#x} bytes runs past the page end")]
    BlockPastEnd { offset: u64, size: u64 },
}

/// Walks the header chain of one page (`page` is its [`PAGE_SIZE`] bytes, at `page_va`).
/// Returns the blocks, or why the page is not a valid classic pool page.
pub fn walk_page(
    page: &[u8],
    page_va: u64,
    layout: &HeaderLayout,
) -> Result<Vec<Block>, PageError> {
    if page.len() as u64 != PAGE_SIZE {
        return Err(PageError::NotAPage(page.len()));
    }
    let mut blocks = Vec::new();
    let mut off = 0u64;
    let mut prev = 0u32;
    while off < PAGE_SIZE {
        let bytes = page.get(off as usize..).unwrap_or(&[]);
        let h = layout.decode(bytes).ok_or(PageError::HeaderPastEnd(off))?;
        if h.previous_size != prev {
            return Err(PageError::PreviousSize {
                offset: off,
                found: h.previous_size,
                expected: prev,
            });
        }
        if h.block_size == 0 {
            return Err(PageError::ZeroSize(off));
        }
        let size = layout.bytes(h.block_size);
        let end = off + size;
        if end > PAGE_SIZE {
            return Err(PageError::BlockPastEnd { offset: off, size });
        }
        let pool_type = h.pool_type;
        let allocated = !pool_type.is_free();
        let process_billed = if allocated && pool_type.quota {
            match layout.process_billed {
                Some(_) => h.process_billed,
                // x86: the charged EPROCESS is the block's last pointer (WRK pool.c).
                None => page
                    .get((end - 4) as usize..end as usize)
                    .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            }
        } else {
            None
        };
        blocks.push(Block {
            address: page_va + off,
            size,
            previous_size: Some(layout.bytes(h.previous_size)),
            tag: h.tag,
            pool_type,
            pool: pool_type.kind,
            allocated,
            process_billed,
        });
        prev = h.block_size;
        off = end;
    }
    Ok(blocks)
}

/// A virtual range that holds pool pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRange {
    #[serde(serialize_with = "hex")]
    pub start: u64,
    /// Exclusive.
    #[serde(serialize_with = "hex")]
    pub end: u64,
    pub kind: PoolKind,
}

/// Windows 7/Vista x64 paged pool starts at a fixed address (MM_PAGED_POOL_START; the kernel has
/// no variable for it, and its ISF no MmPagedPoolStart).
pub const X64_PAGED_POOL_START: u64 = 0xffff_f8a0_0000_0000;

/// The classic pool ranges, from kernel variables (`get` answers from the debugger data block's
/// dereferenced values, else the profile's globals):
/// nonpaged `MmNonPagedPoolStart`..`MmNonPagedPoolEnd`, paged `MmPagedPoolStart`..`MmPagedPoolEnd`
/// (the end variables hold the last byte, WRK). Where an end is missing, start plus the
/// pool's maximum (MmMaximumNonPagedPoolInBytes, MmSizeOfPagedPoolInBytes); where the paged
/// start is missing on x64 before Windows 8, [`X64_PAGED_POOL_START`]. Later kernels place pool
/// in dynamic system VA: no ranges (their walker is the segment heap's).
pub fn pool_ranges(
    get: &dyn Fn(&str) -> Option<u64>,
    pointer_size: u8,
    build: u32,
) -> Vec<PoolRange> {
    if build >= 9200 {
        return Vec::new();
    }
    let get = |n: &str| get(n).filter(|&v| v != 0);
    let mut out = Vec::new();
    let paged_start =
        get("MmPagedPoolStart").or((pointer_size == 8).then_some(X64_PAGED_POOL_START));
    for (start, end, max, kind) in [
        (
            get("MmNonPagedPoolStart"),
            "MmNonPagedPoolEnd",
            "MmMaximumNonPagedPoolInBytes",
            PoolKind::Nonpaged,
        ),
        (
            paged_start,
            "MmPagedPoolEnd",
            "MmSizeOfPagedPoolInBytes",
            PoolKind::Paged,
        ),
    ] {
        let Some(start) = start else { continue };
        let end = match (get(end), get(max)) {
            (Some(last), _) if last > start => last.saturating_add(1),
            (_, Some(m)) => start.saturating_add(m),
            _ => continue,
        };
        let start = start & !(PAGE_SIZE - 1);
        let end = end.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        if end > start {
            out.push(PoolRange { start, end, kind });
        }
    }
    out
}

/// Counts from scanning pool ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PageScan {
    /// "pool-ranges" (the kernel's pool ranges) or "kernel-space" (every mapped kernel page,
    /// for kernels whose pool has no fixed range).
    pub mode: &'static str,
    /// Pages of the ranges (in kernel-space mode: mapped pages).
    pub pages_in_ranges: u64,
    /// Pages whose header chain validated.
    pub pages_valid: u64,
    /// Mapped, stored pages that are not valid classic pool pages (free pages, big
    /// allocations not in the big page table, other memory, damage).
    pub pages_invalid: u64,
    /// Pages inside big allocations from the big page table (no headers to walk).
    pub pages_big: u64,
    /// Pages the page tables do not map (never committed).
    pub pages_unmapped: u64,
    /// Committed pages that could not be read: not stored in the dump, paged out, or behind
    /// a prototype PTE (`page_states.missing()`). In kernel-space mode an upper bound: any
    /// missing kernel page could have been pool.
    pub missing_pool_pages: u64,
    /// The pages by what their PTEs say (in pool-ranges mode `never_committed` includes
    /// `pages_unmapped`; in kernel-space mode unmapped VA is not visited).
    pub page_states: PageStates,
    /// Ranges cut at [`MAX_RANGE_PAGES`].
    pub truncated: bool,
    /// The first few invalid pages and why (pool-ranges mode only).
    pub invalid_examples: Vec<InvalidPage>,
}

impl PageScan {
    /// Adds another walk's page counts (a session's pool walked apart) to these.
    pub fn add(&mut self, one: &PageScan) {
        self.pages_in_ranges += one.pages_in_ranges;
        self.pages_valid += one.pages_valid;
        self.pages_invalid += one.pages_invalid;
        self.pages_big += one.pages_big;
        self.pages_unmapped += one.pages_unmapped;
        self.missing_pool_pages += one.missing_pool_pages;
        self.page_states.add(&one.page_states);
        self.truncated |= one.truncated;
        for e in &one.invalid_examples {
            if self.invalid_examples.len() < MAX_EXAMPLES {
                self.invalid_examples.push(e.clone());
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidPage {
    #[serde(serialize_with = "hex")]
    pub va: u64,
    pub reason: String,
}

/// The kernel half of the address space, for [`scan_kernel_space`].
pub fn kernel_space(pointer_size: u8) -> PoolRange {
    if pointer_size == 8 {
        PoolRange {
            start: 0xffff_8000_0000_0000,
            end: u64::MAX,
            kind: PoolKind::Unknown,
        }
    } else {
        PoolRange {
            start: 0x8000_0000,
            end: 0x1_0000_0000,
            kind: PoolKind::Unknown,
        }
    }
}

/// Walks every page of `ranges`, calling `on_block` for each block of each valid page, so that
/// millions of blocks never have to be held at once. `big` lists big allocations as sorted,
/// non-overlapping `(start, end)` ranges; their pages are skipped. Uses the memory's mapping
/// enumeration when it has one (unmapped stretches cost nothing), else reads page by page.
pub fn scan_ranges(
    mem: &dyn VirtualMemory,
    layout: &HeaderLayout,
    ranges: &[PoolRange],
    big: &[(u64, u64)],
    on_block: &mut dyn FnMut(&Block),
) -> PageScan {
    let releasing = Releasing::new(mem);
    let mem: &dyn VirtualMemory = &releasing;
    let mut scan = PageScan {
        mode: "pool-ranges",
        ..PageScan::default()
    };
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    for r in ranges {
        let mut pages = (r.end.saturating_sub(r.start)) / PAGE_SIZE;
        if pages > MAX_RANGE_PAGES {
            pages = MAX_RANGE_PAGES;
            scan.truncated = true;
        }
        let end = r.start + pages * PAGE_SIZE;
        scan.pages_in_ranges += pages;
        let mut mapped = 0u64;
        let enumerated = mem.for_each_mapped_page(r.start, end, &mut |va, page| {
            mapped += page_count(&page);
            visit(&mut scan, layout, r.kind, big, va, page, on_block);
        });
        if enumerated {
            scan.unmapped(pages - mapped.min(pages));
            continue;
        }
        for i in 0..pages {
            let va = r.start + i * PAGE_SIZE;
            match read_one(mem, va, &mut buf) {
                Some(page) => visit(&mut scan, layout, r.kind, big, va, page, on_block),
                None => scan.unmapped(1),
            }
        }
    }
    scan
}

/// One page read without enumeration: `None` when nothing maps it.
fn read_one<'b>(mem: &dyn VirtualMemory, va: u64, buf: &'b mut [u8]) -> Option<MappedPage<'b>> {
    match mem.read_page(va, buf) {
        Ok(how) => Some(MappedPage::Stored {
            bytes: buf,
            transition: how == PageRead::Transition,
        }),
        Err(e) => e.absence().map(|why| MappedPage::Absent { why, pages: 1 }),
    }
}

fn page_count(page: &MappedPage) -> u64 {
    match page {
        MappedPage::Stored { .. } => 1,
        MappedPage::Absent { pages, .. } => *pages,
    }
}

impl PageScan {
    /// Pages no entry maps: never committed.
    fn unmapped(&mut self, pages: u64) {
        self.pages_unmapped += pages;
        self.page_states.never_committed += pages;
    }

    /// Pages an entry maps that cannot be read.
    fn absent(&mut self, why: Absence, pages: u64) {
        self.page_states.absent(why, pages);
        if why != Absence::NeverCommitted {
            self.missing_pool_pages += pages;
        }
    }
}

/// Validates every mapped page of the kernel half as a classic pool page: for kernels whose
/// pool lives in dynamic system VA (Windows 8 to 10 1809, and classic pages of later ones).
/// Returns `None` when the memory cannot enumerate its mappings (a triage dump).
pub fn scan_kernel_space(
    mem: &dyn VirtualMemory,
    layout: &HeaderLayout,
    big: &[(u64, u64)],
    on_block: &mut dyn FnMut(&Block),
) -> Option<PageScan> {
    let releasing = Releasing::new(mem);
    let mem: &dyn VirtualMemory = &releasing;
    let mut scan = PageScan {
        mode: "kernel-space",
        ..PageScan::default()
    };
    let r = kernel_space(mem.pointer_size());
    let ok = mem.for_each_mapped_page(r.start, r.end, &mut |va, page| {
        scan.pages_in_ranges += page_count(&page);
        visit(
            &mut scan,
            layout,
            PoolKind::Unknown,
            big,
            va,
            page,
            on_block,
        );
    });
    scan.invalid_examples.clear();
    ok.then_some(scan)
}

fn visit(
    scan: &mut PageScan,
    layout: &HeaderLayout,
    kind: PoolKind,
    big: &[(u64, u64)],
    va: u64,
    page: MappedPage<'_>,
    on_block: &mut dyn FnMut(&Block),
) {
    let (page, transition) = match page {
        MappedPage::Stored { bytes, transition } => (bytes, transition),
        MappedPage::Absent { why, pages } => {
            let in_big = big_pages(big, va, pages);
            scan.pages_big += in_big;
            scan.absent(why, pages - in_big);
            return;
        }
    };
    if in_big(big, va) {
        scan.pages_big += 1;
        return;
    }
    if transition {
        scan.page_states.in_transition += 1;
    }
    match walk_page(page, va, layout) {
        Ok(mut blocks) => {
            scan.pages_valid += 1;
            for b in &mut blocks {
                if !b.allocated {
                    // A free block's pool: the range's, or in kernel-space mode its page
                    // neighbours' (the first allocated block of the page).
                    b.pool = kind;
                }
            }
            if kind == PoolKind::Unknown {
                let page_kind = blocks
                    .iter()
                    .find(|b| b.allocated)
                    .map_or(PoolKind::Unknown, |b| b.pool_type.kind);
                for b in blocks.iter_mut().filter(|b| !b.allocated) {
                    b.pool = page_kind;
                }
            }
            blocks.iter().for_each(&mut *on_block);
        }
        Err(reason) => {
            scan.pages_invalid += 1;
            if scan.invalid_examples.len() < MAX_EXAMPLES {
                scan.invalid_examples.push(InvalidPage {
                    va,
                    reason: reason.to_string(),
                });
            }
        }
    }
}

fn in_big(big: &[(u64, u64)], va: u64) -> bool {
    let i = big.partition_point(|&(s, _)| s <= va);
    i > 0 && big.get(i - 1).is_some_and(|&(_, e)| va < e)
}

/// How many of the `pages` pages from `va` lie in the (sorted, disjoint) skipped ranges.
fn big_pages(big: &[(u64, u64)], va: u64, pages: u64) -> u64 {
    let end = va.saturating_add(pages.saturating_mul(PAGE_SIZE));
    let first = big.partition_point(|&(_, e)| e <= va);
    let mut bytes = 0u64;
    for &(s, e) in big.get(first..).unwrap_or(&[]) {
        if s >= end {
            break;
        }
        let (from, to) = (s.max(va) & !(PAGE_SIZE - 1), e.min(end));
        bytes = bytes.saturating_add(to.saturating_sub(from).div_ceil(PAGE_SIZE) * PAGE_SIZE);
    }
    (bytes / PAGE_SIZE).min(pages)
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
