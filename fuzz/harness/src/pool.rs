//! The pool walkers on hostile memory: one classic pool page, the big page and tag tables with
//! the classic page scan over a pool range, the segment heap (LFH and VS subsegments, system
//! and session heaps), and the session tables read through page tables.

use crate::mem::Sparse;
use crate::profile::{context, w19041, BUILD};
use analyzer::memory::pte::PteFormat;
use analyzer::memory::{PageTableMemory, PagingMode};
use analyzer::pool::bigpages::read_big_pages;
use analyzer::pool::header::HeaderLayout;
use analyzer::pool::pages::{scan_ranges, walk_page, PoolRange};
use analyzer::pool::quota::Process;
use analyzer::pool::segheap::{walk_segment_heap, walk_session_heap, SegLayout};
use analyzer::pool::session::{
    find_sessions, read_session_big_pages, read_session_tables, session_memory, session_paged_pool,
};
use analyzer::pool::tags::{read_tag_tables, TrackerLayout};
use analyzer::pool::PoolKind;

/// Kernels whose built-in POOL_HEADER layout a page is walked with: XP x86, 7 x86 and x64,
/// 8.1 x64, 10 x64.
const KERNELS: [(u8, u32); 5] = [(4, 2600), (4, 7601), (8, 7601), (8, 9600), (8, 19041)];

/// The classic pool range every memory seed puts its pages in.
pub const POOL_START: u64 = 0xffff_c000_0000_0000;
pub const POOL_PAGES: u64 = 64;

/// Byte 0 picks the kernel (and 5 the 19041 ISF's layout); the rest, zero-padded or cut to
/// 4 KiB, is the page.
pub fn pool_page(data: &[u8]) {
    let sel = crate::le(data, 0, 1) as usize % (KERNELS.len() + 1);
    let layout = match KERNELS.get(sel) {
        Some(&(ps, build)) => HeaderLayout::for_kernel(None, ps, build),
        None => HeaderLayout::for_kernel(Some(w19041()), 8, BUILD),
    };
    let mut page = data.get(1..).unwrap_or_default().to_vec();
    page.resize(0x1000, 0);
    let _ = walk_page(&page, POOL_START, &layout);
}

/// The input is kernel memory ([`Sparse`] records) of the 19041 kernel: the big page table,
/// the tag tables, then the classic page scan of [`POOL_START`] skipping the big pages.
pub fn big_pages(data: &[u8]) {
    let mem = Sparse::parse(data, 8);
    let ctx = context();
    let big: Vec<(u64, u64)> = match read_big_pages(&mem, &ctx) {
        Ok(b) => {
            let mut v: Vec<(u64, u64)> = b
                .entries
                .iter()
                .map(|e| (e.va, e.va.saturating_add(e.size)))
                .collect();
            v.sort_unstable();
            v
        }
        Err(_) => Vec::new(),
    };
    let _ = read_tag_tables(&mem, &ctx, None);
    let header = HeaderLayout::for_kernel(ctx.profile, 8, BUILD);
    let range = PoolRange {
        start: POOL_START,
        end: POOL_START + POOL_PAGES * 0x1000,
        kind: PoolKind::Nonpaged,
    };
    let _ = scan_ranges(&mem, &header, &[range], &big, &mut |_| {});
}

/// Byte 0..8: an `MM_SESSION_SPACE` address; the rest is kernel memory ([`Sparse`]) of the
/// 19041 kernel: its segment heaps from nt!ExPoolState, then that session's heap.
pub fn segheap(data: &[u8]) {
    let session_space = crate::le(data, 0, 8);
    let mem = Sparse::parse(data.get(8..).unwrap_or_default(), 8);
    let ctx = context();
    let Ok(l) = SegLayout::from_profile(w19041()) else {
        return;
    };
    let header = HeaderLayout::for_kernel(ctx.profile, 8, BUILD);
    let _ = walk_segment_heap(&mem, &ctx, &l, &header, &mut |_, _| {});
    let _ = walk_session_heap(&mem, &ctx, &l, &header, session_space, &mut |_, _| {});
}

/// Bytes 0..8: the kernel's CR3; 8..16: one EPROCESS address; the rest is physical memory
/// ([`Sparse`] records by physical address) holding the page tables and what they map. The
/// process's session is found, then its paged pool range scanned, its big pages, tag tables
/// and segment heap read, each through the session's own page tables.
pub fn session(data: &[u8]) {
    let dtb = crate::le(data, 0, 8);
    let eprocess = crate::le(data, 8, 8);
    let phys = Sparse::parse(data.get(16..).unwrap_or_default(), 8);
    let ctx = context();
    let format = PteFormat::for_kernel(ctx.profile, PagingMode::X64);
    let kernel = PageTableMemory::with_format(&phys, dtb & !0xfff, format);
    let procs = [Process {
        eprocess,
        pid: 4,
        name: "csrss.exe".into(),
    }];
    let sessions = find_sessions(&kernel, &ctx, &procs);
    let header = HeaderLayout::for_kernel(ctx.profile, 8, BUILD);
    let seg = SegLayout::from_profile(w19041()).ok();
    for s in &sessions {
        if let Some(range) = session_paged_pool(&phys, format, &ctx, s) {
            let mem = session_memory(&phys, format, s);
            let _ = scan_ranges(&mem, &header, &[range], &[], &mut |_| {});
        }
        if let Some(l) = seg.as_ref() {
            let mem = session_memory(&phys, format, s);
            let _ = walk_session_heap(&mem, &ctx, l, &header, s.session_space, &mut |_, _| {});
        }
    }
    let mut warnings = Vec::new();
    let _ = read_session_big_pages(&phys, format, &ctx, &sessions, &mut warnings);
    if let Some(layout) = TrackerLayout::for_kernel(&ctx) {
        let _ = read_session_tables(&phys, format, &ctx, layout, &sessions);
    }
}
