//! The fallback when `ViTargetDriversAvl` or a driver's page list cannot be followed: every
//! tracker page is a page-sized nonpaged `'Vepp'` allocation (decompiled `ViGrowPoolAllocation`:
//! `ExAllocatePoolWithTagPriority(.., 0x1000, 'Vepp')`), so it is in `PoolBigPageTable`. A
//! page counts when its header's `VerifierEntry` is a kernel address and its `Signature` is
//! the expected constant, or, since that constant is unconfirmed for these builds, a value
//! that every candidate page shares (/work/research/provenance.md §1.5, route 2b). Pages are
//! grouped by `VerifierEntry`: one group per driver.

use super::layout::{uint, TargetLayout};
use super::{VerifierTracking, TRACKER_PAGE_SIGNATURE, TRACKER_TAG};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::bigpages::read_big_pages;
use crate::pool::KernelContext;
use std::collections::BTreeMap;

/// Tracker pages found in the big page table, by the driver data they name.
#[derive(Debug, Clone, Default)]
pub(super) struct ScannedPages {
    pub by_driver: BTreeMap<u64, Vec<u64>>,
}

/// Finds the tracker pages through the big page table.
pub(super) fn scan(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    l: &TargetLayout,
    out: &mut VerifierTracking,
) -> ScannedPages {
    let big = match read_big_pages(mem, ctx) {
        Ok(b) => b,
        Err(e) => {
            out.work
                .stop(format!("tracker-page scan: the big page table: {e}"));
            return ScannedPages::default();
        }
    };
    let header = l.next_page.max(l.verifier_entry).max(l.page_signature) + 8;
    let mut candidates: Vec<(u64, u64, u64)> = Vec::new();
    for e in big.entries.iter().filter(|e| {
        e.tag.unprotected() == TRACKER_TAG && e.size >= PAGE_SIZE && e.va & (PAGE_SIZE - 1) == 0
    }) {
        let Ok(buf) = mem.read_vec(e.va, header as usize) else {
            out.work.pages_missing += 1;
            continue;
        };
        let owner = uint(&buf, l.verifier_entry, 8).unwrap_or(0);
        let signature = uint(&buf, l.page_signature, 8).unwrap_or(0);
        if owner >> 63 == 1 {
            candidates.push((e.va, owner, signature));
        }
    }
    let Some(signature) = common_signature(&candidates, out) else {
        return ScannedPages::default();
    };
    let mut pages = ScannedPages::default();
    for (va, owner, _) in candidates.iter().filter(|c| c.2 == signature) {
        pages.by_driver.entry(*owner).or_default().push(*va);
    }
    pages
}

/// The expected signature if any page has it; else the one value all pages share (with a
/// warning); else none.
fn common_signature(candidates: &[(u64, u64, u64)], out: &mut VerifierTracking) -> Option<u64> {
    let first = candidates.first()?.2;
    if candidates.iter().any(|c| c.2 == TRACKER_PAGE_SIGNATURE) {
        return Some(TRACKER_PAGE_SIGNATURE);
    }
    if candidates.iter().all(|c| c.2 == first) {
        out.warnings.push(format!(
            "tracker-page scan: all {} 'Vepp' pages carry signature {first:#x}, not {TRACKER_PAGE_SIGNATURE:#x}: accepted",
            candidates.len()
        ));
        return Some(first);
    }
    out.work.stop(
        "tracker-page scan: the 'Vepp' pages share no signature: none taken as tracker pages"
            .into(),
    );
    None
}
