//! XP: `MiSuspectDriverList` of `_MI_VERIFIER_DRIVER_ENTRY`, each with its `PoolHash` array.
//!
//! XP SP1's verifier.c (public source tree) keeps one entry per driver named for
//! verification, `Flags & VI_VERIFYING_DIRECTLY` once it is verified and `Signature`
//! 0x98761940. `PoolHash` is a nonpaged `'Vepp'` array of `PoolHashSize` 16-byte
//! `_VI_POOL_ENTRY` slots, grown by copying: a free slot holds the index of the next free one
//! (`FreeListNext`, ending at 0xFFFFFFFF), a slot in use holds `InUse`, whose first field is
//! the allocation's kernel address, so its top bit is set (the kdexts `!verifier` test).
//! Each allocation ends with `_MI_VERIFIER_POOL_HEADER {ListIndex, Verifier}`: its slot index
//! and the driver entry.

use super::layout::{uint, XpLayout};
use super::{
    back_pointer, read_unicode, BackPointers, Budget, FoundThrough, TrackedAllocation,
    VerifiedDriver, VerifierTracking, MAX_DRIVERS, MAX_POOL_HASH, XP_ENTRY_SIGNATURE,
    XP_VERIFYING_DIRECTLY,
};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::{KernelContext, Tag};
use std::collections::HashSet;

/// Slots read at once.
const CHUNK_SLOTS: u64 = 256;

/// Walks `MiSuspectDriverList` and reads every verified driver's `PoolHash`.
pub(super) fn read(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    l: &XpLayout,
    out: &mut VerifierTracking,
    budget: &mut Budget,
) {
    let Some(head) = ctx.global("MiSuspectDriverList") else {
        return;
    };
    let mut link = match mem.read_ptr(head) {
        Ok(v) => v,
        Err(e) => {
            out.work
                .stop(format!("MiSuspectDriverList at {head:#x}: {e}"));
            return;
        }
    };
    let mut visited = HashSet::new();
    while link != head {
        if visited.len() >= MAX_DRIVERS {
            out.work.stop(format!(
                "MiSuspectDriverList: more than {MAX_DRIVERS} entries"
            ));
            return;
        }
        if link == 0 {
            out.work.stop("MiSuspectDriverList: a null link".into());
            return;
        }
        if !visited.insert(link) {
            out.work.loops_detected += 1;
            out.work.stop(format!(
                "MiSuspectDriverList loops back to {link:#x} without reaching its head"
            ));
            return;
        }
        let entry = link.wrapping_sub(l.links);
        let Ok(buf) = mem.read_vec(entry, l.size as usize) else {
            out.work.pages_missing += 1;
            out.work.stop(format!(
                "MiSuspectDriverList: the entry at {entry:#x} is not in the dump"
            ));
            return;
        };
        out.work.nodes_read += 1;
        driver_entry(mem, l, entry, &buf, out, budget);
        link = uint(&buf, l.links, l.ptr).unwrap_or(0);
    }
}

/// One `_MI_VERIFIER_DRIVER_ENTRY`: skipped unless verified directly with a good signature.
fn driver_entry(
    mem: &dyn VirtualMemory,
    l: &XpLayout,
    entry: u64,
    buf: &[u8],
    out: &mut VerifierTracking,
    budget: &mut Budget,
) {
    let u32_at = |off| uint(buf, off, 4).unwrap_or(0) as u32;
    let signature = u32_at(l.signature);
    let flags = u32_at(l.flags);
    if signature != XP_ENTRY_SIGNATURE {
        out.work.drivers_skipped += 1;
        out.warnings.push(format!(
            "verifier entry at {entry:#x}: signature {signature:#x}, not {XP_ENTRY_SIGNATURE:#x}: skipped"
        ));
        return;
    }
    if flags & XP_VERIFYING_DIRECTLY == 0 {
        out.work.drivers_skipped += 1;
        return;
    }
    let start = uint(buf, l.start_address, l.ptr).unwrap_or(0);
    let end = uint(buf, l.end_address, l.ptr).unwrap_or(0);
    let mut d = VerifiedDriver {
        name: read_unicode(mem, entry.wrapping_add(l.base_name), l.unicode_buffer),
        image_base: (start != 0).then_some(start),
        image_size: (start != 0 && end > start).then(|| end - start),
        entry,
        flags: Some(flags),
        loads: Some(u32_at(l.loads)),
        unloads: Some(u32_at(l.unloads)),
        found_through: FoundThrough::SuspectDriverList,
        counters: l.counters.decode(buf),
        allocations: Vec::new(),
        back_pointers: BackPointers::default(),
    };
    let table = uint(buf, l.pool_hash, l.ptr).unwrap_or(0);
    let size = u64::from(u32_at(l.pool_hash_size));
    pool_hash(mem, l, table, size, &mut d, out, budget);
    out.drivers.push(d);
}

/// Reads the in-use slots of one `PoolHash` array (at most [`MAX_POOL_HASH`]), a chunk at a
/// time; a chunk the dump lacks is read slot by slot, skipping pages known to be missing.
fn pool_hash(
    mem: &dyn VirtualMemory,
    l: &XpLayout,
    table: u64,
    size: u64,
    d: &mut VerifiedDriver,
    out: &mut VerifierTracking,
    budget: &mut Budget,
) {
    let who = d.name.clone().unwrap_or_else(|| format!("{:#x}", d.entry));
    if table == 0 {
        if size != 0 {
            out.warnings
                .push(format!("{who}: PoolHashSize {size} but no PoolHash array"));
        }
        return;
    }
    let n = if size > MAX_POOL_HASH {
        out.work.stop(format!(
            "{who}: PoolHashSize {size} is implausible; read the first {MAX_POOL_HASH} slots"
        ));
        MAX_POOL_HASH
    } else {
        size
    };
    let es = l.entry.size;
    let mut missing: HashSet<u64> = HashSet::new();
    let mut chunk = vec![0u8; (CHUNK_SLOTS * es) as usize];
    let mut i = 0;
    while i < n {
        let k = CHUNK_SLOTS.min(n - i);
        let start = table.wrapping_add(i * es);
        let bytes = &mut chunk[..(k * es) as usize];
        let whole = mem.read(start, bytes).is_ok();
        if whole {
            out.work.pages_read += pages_spanned(start, k * es);
        } else if none_readable(mem, start, k * es, &mut missing, out) {
            i += k;
            continue;
        }
        for j in 0..k {
            let slot = start.wrapping_add(j * es);
            let e = &mut bytes[(j * es) as usize..((j + 1) * es) as usize];
            if !whole && !read_slot(mem, slot, e, &mut missing, out) {
                continue;
            }
            out.work.entries_read += 1;
            if let Some(a) = slot_allocation(mem, l, slot, i + j, d.entry, e, budget) {
                if budget.allocations_left == 0 {
                    out.work.stop(format!("{who}: allocation limit reached"));
                    return;
                }
                budget.allocations_left -= 1;
                d.back_pointers.add(a.back_pointer);
                d.allocations.push(a);
            }
        }
        i += k;
    }
}

/// Whether no page of `len` bytes at `start` is in the dump (each missing page counted once):
/// then the chunk is skipped without reading it slot by slot.
fn none_readable(
    mem: &dyn VirtualMemory,
    start: u64,
    len: u64,
    missing: &mut HashSet<u64>,
    out: &mut VerifierTracking,
) -> bool {
    let first = start & !(PAGE_SIZE - 1);
    let mut all_missing = true;
    for p in 0..pages_spanned(start, len) {
        let page = first.wrapping_add(p * PAGE_SIZE);
        if missing.contains(&page) {
            continue;
        }
        if mem.read_u8(page.max(start)).is_ok() {
            all_missing = false;
        } else if missing.insert(page) {
            out.work.pages_missing += 1;
        }
    }
    all_missing
}

/// Reads one slot on its own; `false` (counted once per page) when its page is not in the dump.
fn read_slot(
    mem: &dyn VirtualMemory,
    slot: u64,
    e: &mut [u8],
    missing: &mut HashSet<u64>,
    out: &mut VerifierTracking,
) -> bool {
    let first = slot & !(PAGE_SIZE - 1);
    let last = slot.wrapping_add(e.len() as u64 - 1) & !(PAGE_SIZE - 1);
    if missing.contains(&first) || missing.contains(&last) {
        return false;
    }
    if mem.read(slot, e).is_ok() {
        return true;
    }
    for p in [first, last] {
        if mem.read_u8(p.max(slot)).is_err() && missing.insert(p) {
            out.work.pages_missing += 1;
        }
    }
    false
}

/// A slot in use, as an allocation; `None` for a free slot (a free-list index or the end
/// marker 0xFFFFFFFF, whose top bit kdexts tests).
fn slot_allocation(
    mem: &dyn VirtualMemory,
    l: &XpLayout,
    slot: u64,
    index: u64,
    driver: u64,
    e: &[u8],
    budget: &mut Budget,
) -> Option<TrackedAllocation> {
    let raw = l.entry.decode(e)?;
    let top = 1u64 << (u32::from(l.ptr) * 8 - 1);
    let end = (top << 1).wrapping_sub(1);
    if raw.virtual_address & top == 0 || raw.virtual_address == end {
        return None;
    }
    let mut a = TrackedAllocation {
        address: raw.virtual_address,
        size: raw.number_of_bytes,
        tag: Tag::from_u32(raw.tag).unprotected(),
        caller: raw.calling_address,
        tracker: slot,
        back_pointer: None,
    };
    let expect = [
        (l.back_pointer_index, 4, index),
        (l.back_pointer_verifier, l.ptr, driver),
    ];
    a.back_pointer = back_pointer(mem, &a, l.back_pointer_size, &expect, budget);
    Some(a)
}

/// Pages touched by `len` bytes at `start`.
fn pages_spanned(start: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let end = start.saturating_add(len - 1);
    (end >> 12) - (start >> 12) + 1
}
