//! Vista+: one driver's tracker pages and the allocations they record.
//!
//! Decompiled x64 `ViGrowPoolAllocation` (several builds, /work/research/provenance.md §1.4)
//! allocates a zeroed nonpaged page tagged `'Vepp'`, makes entry 0 the `_VI_POOL_PAGE_HEADER`
//! {NextPage, VerifierEntry = the driver's `_VF_TARGET_VERIFIED_DRIVER_DATA`, Signature},
//! pushes the page on the driver's `PoolPageHeaders` SLIST (so `NextPage` links the pages,
//! newest first) and the other entries, with `NumberOfBytes = 1`, on `PoolTrackers`. An
//! allocation pops an entry and fills `VirtualAddress`, `CallingAddress`, `NumberOfBytes`
//! (even) and `Tag`; a free sets bit 0 of `NumberOfBytes` and pushes the entry back (its first
//! field then links the free list). The allocation's last 8 bytes point back to its entry.

use super::layout::{uint, TargetLayout};
use super::{
    back_pointer, Budget, TrackedAllocation, VerifiedDriver, VerifierTracking, MAX_TRACKER_PAGES,
    TRACKER_PAGE_SIGNATURE,
};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::Tag;
use std::collections::HashSet;

/// The first tracker page on a driver's `PoolPageHeaders` SLIST (0 when empty). x64 heads are
/// 16 bytes whose second quadword holds `NextEntry` in bits 4..63 (`HeaderX64`, all four
/// ISFs). 7601's union also has the 8-byte form (`Header8`, for CPUs without CMPXCHG16B),
/// flagged by `HeaderType` (bit 0 of that quadword) = 0; its pointer packing is not confirmed
/// by any source we have, so such a head is refused and the caller falls back to the scan.
pub(super) fn first_page(
    mem: &dyn VirtualMemory,
    l: &TargetLayout,
    data: u64,
) -> Result<u64, String> {
    if l.slist_size != 16 {
        return Err(format!(
            "{}-byte SLIST headers are not decoded (x64 kernels only)",
            l.slist_size
        ));
    }
    let at = data.wrapping_add(l.page_headers);
    let q1 = mem
        .read_u64(at.wrapping_add(8))
        .map_err(|e| format!("PoolPageHeaders at {at:#x}: {e}"))?;
    if l.slist_has_header8 && q1 & 1 == 0 && q1 != 0 {
        return Err(format!(
            "PoolPageHeaders at {at:#x} is an 8-byte SLIST header (HeaderType 0), not decoded"
        ));
    }
    Ok(q1 & !0xf)
}

/// What the reading of one driver's pages keeps: the pages read (each once), and those whose
/// signature is not [`TRACKER_PAGE_SIGNATURE`] (read anyway: the constant is unconfirmed for
/// these builds), reported once per driver.
#[derive(Debug, Default)]
pub(super) struct PageState {
    pub visited: HashSet<u64>,
    odd_signatures: u64,
    odd_example: Option<u64>,
}

impl PageState {
    pub fn report(&self, who: &str, out: &mut VerifierTracking) {
        if let Some(sig) = self.odd_example {
            out.warnings.push(format!(
                "{who}: {} tracker pages carry signature {sig:#x}, not {TRACKER_PAGE_SIGNATURE:#x} (read anyway)",
                self.odd_signatures
            ));
        }
    }
}

/// Follows `NextPage` from `first`, reading every page (bounded, loop-checked). `true` when
/// the list ended normally (a null `NextPage`).
pub(super) fn walk_pages(
    mem: &dyn VirtualMemory,
    l: &TargetLayout,
    first: u64,
    d: &mut VerifiedDriver,
    state: &mut PageState,
    out: &mut VerifierTracking,
    budget: &mut Budget,
) -> bool {
    let who = d.name.clone().unwrap_or_else(|| format!("{:#x}", d.entry));
    let mut page = first;
    while page != 0 {
        if state.visited.len() >= MAX_TRACKER_PAGES {
            out.work.stop(format!(
                "{who}: more than {MAX_TRACKER_PAGES} tracker pages"
            ));
            return false;
        }
        if page & (PAGE_SIZE - 1) != 0 {
            out.work.stop(format!(
                "{who}: tracker page link {page:#x} is not page aligned"
            ));
            return false;
        }
        if !state.visited.insert(page) {
            out.work.loops_detected += 1;
            out.work.stop(format!(
                "{who}: the tracker page list loops back to {page:#x}"
            ));
            return false;
        }
        match read_page(mem, l, page, d, state, out, budget) {
            Ok(next) => page = next,
            Err(why) => {
                out.work.stop(format!("{who}: {why}"));
                return false;
            }
        }
    }
    true
}

/// Reads one tracker page: checks that it belongs to the driver, keeps every entry in use,
/// and returns its `NextPage`.
pub(super) fn read_page(
    mem: &dyn VirtualMemory,
    l: &TargetLayout,
    page: u64,
    d: &mut VerifiedDriver,
    state: &mut PageState,
    out: &mut VerifierTracking,
    budget: &mut Budget,
) -> Result<u64, String> {
    let Ok(buf) = mem.read_vec(page, PAGE_SIZE as usize) else {
        out.work.pages_missing += 1;
        return Err(format!("tracker page {page:#x} is not in the dump"));
    };
    out.work.pages_read += 1;
    let owner = uint(&buf, l.verifier_entry, 8).unwrap_or(0);
    if owner != d.entry {
        return Err(format!(
            "tracker page {page:#x} names {owner:#x} as its driver data, not {:#x}",
            d.entry
        ));
    }
    let signature = uint(&buf, l.page_signature, 8).unwrap_or(0);
    if signature != TRACKER_PAGE_SIGNATURE {
        state.odd_signatures += 1;
        state.odd_example.get_or_insert(signature);
    }
    let es = l.entry.size;
    // Entry 0 (and any entry the page header overlaps) is the header.
    let first = l.next_page.max(l.verifier_entry).max(l.page_signature) / es + 1;
    for j in first..PAGE_SIZE / es {
        let off = (j * es) as usize;
        let Some(raw) = l.entry.decode(&buf[off..off + es as usize]) else {
            continue;
        };
        out.work.entries_read += 1;
        if raw.number_of_bytes & 1 != 0 || raw.virtual_address == 0 {
            continue;
        }
        if budget.allocations_left == 0 {
            return Err("allocation limit reached".into());
        }
        budget.allocations_left -= 1;
        let mut a = TrackedAllocation {
            address: raw.virtual_address,
            size: raw.number_of_bytes,
            tag: Tag::from_u32(raw.tag).unprotected(),
            caller: raw.calling_address,
            tracker: page + j * es,
            back_pointer: None,
        };
        a.back_pointer = back_pointer(mem, &a, l.back_pointer_size, &[(0, 8, a.tracker)], budget);
        d.back_pointers.add(a.back_pointer);
        d.allocations.push(a);
    }
    Ok(uint(&buf, l.next_page, 8).unwrap_or(0))
}
