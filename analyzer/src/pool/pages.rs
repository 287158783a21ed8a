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
//! A page of a range that the page tables map but the dump did not store is counted in
//! `missing_pool_pages`, so the report can say how complete it is.

use super::header::HeaderLayout;
use super::resident::Releasing;
use super::tag::Tag;
use super::types::{PoolKind, PoolType};
use super::{hex, hex_opt};
use crate::memory::{MemoryError, VirtualMemory, PAGE_SIZE};
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
    /// Pages mapped but not stored in the dump. In kernel-space mode an upper bound: any
    /// missing kernel page could have been pool.
    pub missing_pool_pages: u64,
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
            mapped += 1;
            visit(&mut scan, layout, r.kind, big, va, page, on_block);
        });
        if enumerated {
            scan.pages_unmapped += pages - mapped.min(pages);
            continue;
        }
        for i in 0..pages {
            let va = r.start + i * PAGE_SIZE;
            match mem.read(va, &mut buf) {
                Ok(()) => visit(&mut scan, layout, r.kind, big, va, Some(&buf), on_block),
                Err(MemoryError::PageMissing { .. } | MemoryError::NotCaptured { .. }) => {
                    visit(&mut scan, layout, r.kind, big, va, None, on_block)
                }
                Err(_) => scan.pages_unmapped += 1,
            }
        }
    }
    scan
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
        scan.pages_in_ranges += 1;
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
    page: Option<&[u8]>,
    on_block: &mut dyn FnMut(&Block),
) {
    if in_big(big, va) {
        scan.pages_big += 1;
        return;
    }
    let Some(page) = page else {
        scan.missing_pool_pages += 1;
        return;
    };
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

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
