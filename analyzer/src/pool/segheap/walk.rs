//! From nt!ExPoolState down to the LFH and VS ranges of every page segment.

use super::lfh::walk_lfh;
use super::range::{count_unread, RangeBytes};
use super::vs::walk_vs;
use super::*;
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::header::HeaderLayout;
use crate::pool::pages::Block;
use crate::pool::resident::Releasing;
use crate::pool::{BlockSource, KernelContext, PoolError, PoolKind};
use std::collections::BTreeSet;

/// The pool of `Heaps[i]` / `SpecialHeaps[i]`: nonpaged, nonpaged NX, paged, paged (session).
fn heap_kind(i: u64) -> PoolKind {
    if i < 2 {
        PoolKind::Nonpaged
    } else {
        PoolKind::Paged
    }
}

/// Walks every segment heap of the kernel pool, calling `on_block(block, BlockSource::Lfh | BlockSource::Vs)` for
/// each block. `Err` only when the roots (ExPoolState, the heap keys) cannot be read; damage
/// below them is counted in the scan.
pub fn walk_segment_heap(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    l: &SegLayout,
    header: &HeaderLayout,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) -> Result<SegmentHeapScan, PoolError> {
    let releasing = Releasing::new(mem);
    let mem: &dyn VirtualMemory = &releasing;
    let rd = |what: &'static str, va: u64, r: Result<u64, crate::memory::MemoryError>| {
        r.map_err(|source| PoolError::Memory { what, va, source })
    };
    let state = ctx.kernel_base.wrapping_add(l.ex_pool_state_rva);
    let globals = ctx.kernel_base.wrapping_add(l.heap_globals_rva);
    let mut scan = SegmentHeapScan {
        heap_key: rd(
            "RtlpHpHeapGlobals.HeapKey",
            globals,
            mem.read_u64(globals + l.heap_key),
        )?,
        lfh_key: rd(
            "RtlpHpHeapGlobals.LfhKey",
            globals,
            mem.read_u64(globals + l.lfh_key),
        )?,
        ..SegmentHeapScan::default()
    };
    let pools = rd(
        "ExPoolState.NumberOfPools",
        state,
        mem.read_u32(state + l.number_of_pools).map(u64::from),
    )?;
    if pools == 0 || pools > u64::from(MAX_POOLS) {
        return Err(PoolError::Implausible {
            what: "ExPoolState.NumberOfPools",
            value: pools,
            limit: u64::from(MAX_POOLS),
        });
    }
    scan.pools = pools as u32;

    // Heaps[4] of each pool node, then SpecialHeaps[4]; each heap once.
    let mut slots: Vec<(u64, u64, bool)> = Vec::new();
    for n in 0..pools {
        let base = state + l.pool_node + n * l.pool_node_size + l.node_heaps;
        slots.extend((0..4).map(|i| (base + i * 8, i, false)));
    }
    if let Some(sh) = l.special_heaps {
        slots.extend((0..4).map(|i| (state + sh + i * 8, i, true)));
    }
    let mut seen = BTreeSet::new();
    for (slot, i, special) in slots {
        let heap = match mem.read_u64(slot) {
            Ok(h) => h,
            Err(e) => {
                count_unread(&mut scan, &e);
                scan.problem(format!("heap pointer at {slot:#x}: {e}"));
                continue;
            }
        };
        if heap == 0 || !seen.insert(heap) {
            continue;
        }
        let before = scan.ranges.len();
        walk_heap(mem, l, header, heap, heap_kind(i), &mut scan, on_block);
        if special {
            scan.mark_special(before);
        }
    }
    scan.ranges.sort_unstable();
    Ok(scan)
}

/// Walks one session's segment heaps (19H1+): `MM_SESSION_SPACE.HeapState` of the session at
/// `session_space` points to its `_EX_HEAP_SESSION_STATE`, whose `PagedHeap` and
/// `SpecialPoolHeap` are `_SEGMENT_HEAP`s of the system heaps' type, keyed with the same
/// `RtlpHpHeapGlobals` keys (docs/pool.md). `mem` must be that session's address space.
/// `Ok(None)` when the layout has no session heap fields or the session has no heap state
/// (heap-backed session pool off); `Err` when the keys or the state pointer cannot be read.
pub fn walk_session_heap(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    l: &SegLayout,
    header: &HeaderLayout,
    session_space: u64,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) -> Result<Option<SegmentHeapScan>, PoolError> {
    let (Some(state_off), Some(paged), special) = (
        l.session_heap_state,
        l.session_paged_heap,
        l.session_special_heap,
    ) else {
        return Ok(None);
    };
    let releasing = Releasing::new(mem);
    let mem: &dyn VirtualMemory = &releasing;
    let rd = |what: &'static str, va: u64, r: Result<u64, crate::memory::MemoryError>| {
        r.map_err(|source| PoolError::Memory { what, va, source })
    };
    let globals = ctx.kernel_base.wrapping_add(l.heap_globals_rva);
    let at = session_space.wrapping_add(state_off);
    let state = rd("MM_SESSION_SPACE.HeapState", at, mem.read_u64(at))?;
    if state == 0 {
        return Ok(None);
    }
    let mut scan = SegmentHeapScan {
        heap_key: rd(
            "RtlpHpHeapGlobals.HeapKey",
            globals,
            mem.read_u64(globals + l.heap_key),
        )?,
        lfh_key: rd(
            "RtlpHpHeapGlobals.LfhKey",
            globals,
            mem.read_u64(globals + l.lfh_key),
        )?,
        ..SegmentHeapScan::default()
    };
    let mut seen = BTreeSet::new();
    for (slot, is_special) in [(Some(paged), false), (special, true)] {
        let Some(slot) = slot else { continue };
        let slot = state.wrapping_add(slot);
        let heap = match mem.read_u64(slot) {
            Ok(h) => h,
            Err(e) => {
                count_unread(&mut scan, &e);
                scan.problem(format!("session heap pointer at {slot:#x}: {e}"));
                continue;
            }
        };
        if heap == 0 || !seen.insert(heap) {
            continue;
        }
        // Session pool is paged pool (PagedPoolSession); the blocks' headers carry the
        // session bit.
        let before = scan.ranges.len();
        walk_heap(mem, l, header, heap, PoolKind::Paged, &mut scan, on_block);
        if is_special {
            scan.mark_special(before);
        }
    }
    scan.ranges.sort_unstable();
    Ok(Some(scan))
}

fn walk_heap(
    mem: &dyn VirtualMemory,
    l: &SegLayout,
    header: &HeaderLayout,
    heap: u64,
    kind: PoolKind,
    scan: &mut SegmentHeapScan,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) {
    match mem.read_u32(heap.wrapping_add(l.heap_signature)) {
        Ok(SEGMENT_HEAP_SIGNATURE) => scan.heaps += 1,
        Ok(sig) => {
            scan.heaps_invalid += 1;
            scan.problem(format!(
                "heap {heap:#x}: signature {sig:#x}, not {SEGMENT_HEAP_SIGNATURE:#x}"
            ));
            return;
        }
        Err(e) => {
            count_unread(scan, &e);
            scan.heaps_invalid += 1;
            scan.problem(format!("heap {heap:#x}: {e}"));
            return;
        }
    }
    for c in 0..2 {
        let seg_ctx = heap + l.seg_contexts + c * l.seg_context_size;
        let (Ok(shift), Ok(first)) = (
            mem.read_u8(seg_ctx + l.unit_shift),
            mem.read_u8(seg_ctx + l.first_descriptor_index),
        ) else {
            scan.problem(format!("segment context {seg_ctx:#x} unreadable"));
            continue;
        };
        // Units are pages (12) or 64 KiB (16) on the kernels we know; a page segment's 256
        // units must stay addressable.
        if !(12..=20).contains(&shift) {
            scan.problem(format!("segment context {seg_ctx:#x}: UnitShift {shift}"));
            continue;
        }
        walk_segment_list(mem, l, header, seg_ctx, shift, first, kind, scan, on_block);
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_segment_list(
    mem: &dyn VirtualMemory,
    l: &SegLayout,
    header: &HeaderLayout,
    seg_ctx: u64,
    shift: u8,
    first_index: u8,
    kind: PoolKind,
    scan: &mut SegmentHeapScan,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) {
    let head = seg_ctx + l.segment_list_head;
    let mut visited = BTreeSet::new();
    let mut entry = match mem.read_u64(head) {
        Ok(f) => f,
        Err(e) => {
            scan.problem(format!("segment list {head:#x}: {e}"));
            return;
        }
    };
    while entry != head {
        if visited.len() >= MAX_SEGMENTS_PER_LIST {
            scan.truncated = true;
            return;
        }
        if !visited.insert(entry) {
            scan.problem(format!("segment list {head:#x} loops at {entry:#x}"));
            return;
        }
        // `_HEAP_PAGE_SEGMENT.ListEntry` is at offset 0: the entry is the segment.
        let seg = entry;
        let next = match mem.read_u64(seg) {
            Ok(n) => n,
            Err(e) => {
                count_unread(scan, &e);
                scan.problem(format!("page segment {seg:#x}: {e}"));
                return;
            }
        };
        match mem.read_u64(seg + l.segment_signature) {
            Ok(sig) if sig ^ scan.heap_key ^ seg ^ SEGMENT_SIGNATURE_KEY == seg_ctx => {
                scan.segments += 1;
                walk_descriptors(
                    mem,
                    l,
                    header,
                    seg,
                    shift,
                    first_index,
                    kind,
                    scan,
                    on_block,
                );
            }
            Ok(sig) => {
                scan.segments_invalid += 1;
                scan.problem(format!(
                    "page segment {seg:#x}: signature {sig:#x} decodes to {:#x}, not its segment context {seg_ctx:#x}",
                    sig ^ scan.heap_key ^ seg ^ SEGMENT_SIGNATURE_KEY
                ));
                return;
            }
            Err(e) => {
                scan.problem(format!("page segment {seg:#x}: {e}"));
                return;
            }
        }
        entry = next;
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_descriptors(
    mem: &dyn VirtualMemory,
    l: &SegLayout,
    header: &HeaderLayout,
    seg: u64,
    shift: u8,
    first_index: u8,
    kind: PoolKind,
    scan: &mut SegmentHeapScan,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) {
    let descs = RangeBytes::read(mem, seg, l.page_segment_size);
    scan.missing_pages += descs.missing_pages();
    scan.page_states.add(&descs.states);
    let mut i = u64::from(first_index);
    while i < 256 {
        let d = i * l.descriptor_size;
        let (Some(units), Some(flags)) = (
            descs.get(d + l.unit_size, 1).map(|b| b[0]),
            descs.get(d + l.range_flags, 1).map(|b| b[0]),
        ) else {
            i += 1;
            continue;
        };
        if units == 0 {
            i += 1;
            continue;
        }
        let start = seg + (i << shift);
        let len = u64::from(units) << shift;
        i += u64::from(units);
        if flags != RANGE_LFH && flags != RANGE_VS {
            continue;
        }
        if !(PAGE_SIZE..=MAX_RANGE_BYTES).contains(&len) {
            scan.problem(format!("range {start:#x}: {len:#x} bytes"));
            continue;
        }
        scan.ranges.push((start, start + len));
        let r = RangeBytes::read(mem, start, len);
        scan.missing_pages += r.missing_pages();
        scan.page_states.add(&r.states);
        if flags == RANGE_LFH {
            walk_lfh(&r, l, header, scan.lfh_key, kind, scan, on_block);
        } else {
            walk_vs(&r, l, header, scan.heap_key, kind, scan, on_block);
        }
    }
}
