//! Driver Verifier pool tracking, as `!verifier 3` shows it: for every driver the verifier
//! tracks, each outstanding pool allocation with its size, tag and the exact return address
//! in the driver's code that asked for it. Of all the evidence of who allocated a block this
//! is the best: the kernel wrote it down at allocation time.
//!
//! When it exists (docs/pool.md "Driver Verifier pool tracking"; /work/research/provenance.md
//! §1): `MmVerifierData.Level & 0x8` (DRIVER_VERIFIER_TRACK_POOL_ALLOCATIONS), or bit 3 of
//! `VfRuleClasses` (VrfTrackingPoolAllocationsRuleClass) on 17763+. Where the kernel keeps it:
//!
//! - **XP** ([`xp`]): `MiSuspectDriverList`, a ring of `_MI_VERIFIER_DRIVER_ENTRY` (one per
//!   driver named for verification; `Flags & 1` when verified, signature 0x98761940), each with
//!   a `PoolHash` array of `PoolHashSize` `_VI_POOL_ENTRY` slots; a slot is in use when its
//!   first field is a kernel address, not a free-list index (XP SP1 verifier.c and kdexts).
//! - **Vista+** ([`targets`], [`trackers`]): `ViTargetDriversAvl`, a `_VF_AVL_TREE` whose
//!   `Tables[TablesNo]` are `RTL_AVL_TABLE`s of `_VF_TARGET_DRIVER` nodes (the image range and
//!   a `VerifiedData` pointer). `_VF_TARGET_VERIFIED_DRIVER_DATA.PoolPageHeaders` is an SLIST
//!   of one-page tracker blocks (`'Vepp'`): entry 0 the `_VI_POOL_PAGE_HEADER`
//!   {NextPage, VerifierEntry, Signature}, the others `_VI_POOL_ENTRY`s, in use when
//!   `NumberOfBytes` is even (Server 2003 kdexts: "byte counts are never odd"). Where the tree
//!   or a page list cannot be followed, the tracker pages are found in the big page table
//!   instead ([`bigscan`]): each is a page-sized nonpaged `'Vepp'` allocation.
//!
//! Every offset comes from the kernel's own symbols; there is no built-in table for these
//! structures (they are internal and changed in every release). Everything read from the dump
//! is bounded: list and tree lengths, page counts, array sizes; a loop, a cycle or an address
//! the dump does not hold stops that walk with a stated reason ([`WalkWork::stopped`]), and the
//! kernel's own counters are checked against what was found.
//!
//! The function is pure: memory and the kernel's profile in, facts out. Which loaded module a
//! driver or a caller address is, is the caller's join (image ranges are given).

mod bigscan;
mod layout;
mod targets;
mod trackers;
mod xp;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;

use super::tag::Tag;
use super::{hex, hex_opt, KernelContext, PoolError};
use crate::memory::VirtualMemory;
use layout::Layouts;
use serde::Serialize;

/// `DRIVER_VERIFIER_TRACK_POOL_ALLOCATIONS` (wdm.h), and bit 3 of `VfRuleClasses`
/// (`VrfTrackingPoolAllocationsRuleClass` = 3 in the 17763 ISF's `_VERIFIER_RULE_CLASS_ID`).
pub const TRACK_POOL_ALLOCATIONS: u32 = 0x8;
/// `MI_VERIFIER_ENTRY_SIGNATURE` (XP SP1 mm/mi.h).
pub const XP_ENTRY_SIGNATURE: u32 = 0x9876_1940;
/// `VI_VERIFYING_DIRECTLY`: the driver named in the entry is being verified.
pub const XP_VERIFYING_DIRECTLY: u32 = 0x1;
/// `_VI_POOL_PAGE_HEADER.Signature` as decompiled x64 `ViGrowPoolAllocation` listings write it
/// (build unknown: UNCONFIRMED for the four kernels here, so a page with another value is read
/// with a warning, not refused).
pub const TRACKER_PAGE_SIGNATURE: u64 = 0x2132_1345;
/// The tag of the verifier's tracker blocks ("Vepp - nt!Vf - Verifier Pool Tracking information").
pub const TRACKER_TAG: Tag = Tag(*b"Vepp");

/// Most verified drivers read (Windows verifies at most the drivers named in the registry, or
/// all loaded drivers: a few hundred).
pub const MAX_DRIVERS: usize = 4096;
/// Most AVL tables in `ViTargetDriversAvl` (the kernel makes a handful).
pub const MAX_TABLES: u64 = 256;
/// Deepest AVL node followed: an AVL tree of 2^32 nodes is 46 deep.
pub const MAX_TREE_DEPTH: usize = 64;
/// Most tree nodes visited per table.
pub const MAX_NODES_PER_TABLE: usize = 1 << 16;
/// Most tracker pages followed per driver (127 allocations each: 8.3 million allocations).
pub const MAX_TRACKER_PAGES: usize = 1 << 16;
/// Most `PoolHash` slots read per driver on XP (16 bytes each: 64 MiB, a quarter of XP's
/// largest nonpaged pool).
pub const MAX_POOL_HASH: u64 = 1 << 22;
/// Most tracked allocations kept over all drivers.
pub const MAX_ALLOCATIONS: usize = 1 << 23;
/// Most allocations whose back-pointer is checked (one small read each).
pub const MAX_BACK_POINTER_CHECKS: usize = 1 << 20;
/// Longest driver name read (UNICODE_STRING.Length, bytes).
pub const MAX_NAME_BYTES: u16 = 512;

/// What Driver Verifier's pool tracking holds in the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifierTracking {
    /// `MmVerifierData.Level`: the verifier's options (0x8 = pool tracking).
    pub level: u32,
    /// `VfRuleClasses` (17763+: the rule classes in force, bit 3 = pool tracking); `None` where
    /// the kernel has no such variable.
    pub rule_classes: Option<u32>,
    pub format: TrackingFormat,
    /// `MmVerifierData`'s system-wide counters (all verified drivers together).
    pub totals: Option<VerifierCounters>,
    /// Each verified driver with tracking data, in the order found.
    pub drivers: Vec<VerifiedDriver>,
    pub work: WalkWork,
    pub warnings: Vec<String>,
}

/// How the kernel keeps the tracked allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrackingFormat {
    /// XP: one `PoolHash` array per driver entry.
    PoolHash,
    /// Server 2003 SP1 and later: pages of tracker entries on an SLIST per driver.
    TrackerPages,
}

/// Where a verified driver was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundThrough {
    /// XP: `MiSuspectDriverList`.
    SuspectDriverList,
    /// Vista+: `ViTargetDriversAvl`.
    TargetDriverTree,
    /// Vista+: only through its tracker pages in the big page table.
    TrackerPageScan,
}

/// The kernel's pool-tracking counters for one driver (or, in `totals`, for all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerifierCounters {
    pub current_paged_allocations: u64,
    pub current_nonpaged_allocations: u64,
    pub peak_paged_allocations: u64,
    pub peak_nonpaged_allocations: u64,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    pub peak_paged_bytes: u64,
    pub peak_nonpaged_bytes: u64,
}

impl VerifierCounters {
    /// Outstanding allocations the kernel counts (paged + nonpaged).
    pub fn current_allocations(&self) -> u64 {
        self.current_paged_allocations
            .saturating_add(self.current_nonpaged_allocations)
    }
}

/// One verified driver and its outstanding allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedDriver {
    /// The image name the verifier keeps (XP `BaseName`; Vista+ the suspect entry's
    /// `BaseName`); `None` when unreadable.
    pub name: Option<String>,
    /// The image's range as the verifier keeps it (XP `StartAddress`..`EndAddress`; Vista+
    /// the tree node's `p`/`RangeSize`): match it to the module list. `None` when found
    /// through the tracker-page scan (no tree node) or unreadable.
    #[serde(serialize_with = "hex_opt")]
    pub image_base: Option<u64>,
    pub image_size: Option<u64>,
    /// The kernel's structure for this driver: XP `_MI_VERIFIER_DRIVER_ENTRY`, Vista+
    /// `_VF_TARGET_VERIFIED_DRIVER_DATA`.
    #[serde(serialize_with = "hex")]
    pub entry: u64,
    /// XP `Flags` (1 = verified directly); `None` on Vista+.
    pub flags: Option<u32>,
    pub loads: Option<u32>,
    pub unloads: Option<u32>,
    pub found_through: FoundThrough,
    /// The kernel's counters for this driver; `None` when unreadable.
    pub counters: Option<VerifierCounters>,
    /// Every outstanding allocation found, in table order.
    pub allocations: Vec<TrackedAllocation>,
    /// Back-pointer check over `allocations`.
    pub back_pointers: BackPointers,
}

/// One outstanding allocation as the verifier recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrackedAllocation {
    /// The address the driver got (`VirtualAddress`: the data, after the POOL_HEADER).
    #[serde(serialize_with = "hex")]
    pub address: u64,
    /// `NumberOfBytes` as recorded: the bytes charged (the request rounded, plus the
    /// verifier's 8-byte back-pointer, plus pool rounding), not the request.
    pub size: u64,
    /// The tag passed (bit 31, XP's protected-pool bit, cleared as `!verifier` shows it).
    pub tag: Tag,
    /// `CallingAddress`: the return address in the caller's code, right after its call.
    #[serde(serialize_with = "hex")]
    pub caller: u64,
    /// The tracker entry (XP: the `PoolHash` slot) that recorded it.
    #[serde(serialize_with = "hex")]
    pub tracker: u64,
    /// Whether the back-pointer the verifier puts in the allocation's last 8 bytes names
    /// this tracker entry (XP: the slot index and the driver entry); `None` when those bytes
    /// are not in the dump or were not checked.
    pub back_pointer: Option<bool>,
}

/// Results of the back-pointer check of one driver's allocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BackPointers {
    pub matching: u64,
    pub mismatched: u64,
    /// Allocations whose last bytes are not in the dump (paged out, left out) or not checked.
    pub unknown: u64,
}

/// How much was read, and every walk that stopped early with why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WalkWork {
    /// Driver structures read (list entries or tree nodes).
    pub nodes_read: u64,
    /// Tracker pages (Vista+) or `PoolHash` pages (XP) read.
    pub pages_read: u64,
    /// Tracker entries examined (in use or free).
    pub entries_read: u64,
    /// Lists that came back to an element already visited, and tree nodes reached twice.
    pub loops_detected: u64,
    /// Tracker pages (or parts of a `PoolHash` array) mapped but not in the dump, or not
    /// mapped at all.
    pub pages_missing: u64,
    /// Driver entries skipped: not verified directly, bad signature, or no tracking data.
    pub drivers_skipped: u64,
    /// Why a walk stopped before its natural end, one line each.
    pub stopped: Vec<String>,
}

impl WalkWork {
    fn stop(&mut self, why: String) {
        if self.stopped.len() < 64 {
            self.stopped.push(why);
        }
    }
}

/// Reads Driver Verifier's pool tracking. `Ok(None)` when the verifier does not track pool on
/// this system (neither `MmVerifierData.Level` nor `VfRuleClasses` has bit 3) or the kernel's
/// symbols describe no tracking structures; `Err` when the kernel's symbols are missing (these
/// structures have no built-in layout) or `MmVerifierData` cannot be read.
pub fn read_verifier(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
) -> Result<Option<VerifierTracking>, PoolError> {
    let profile = ctx.profile.ok_or_else(|| PoolError::Missing {
        what: "Driver Verifier pool tracking",
        why: "needs the kernel's symbols (a PDB or ISF)".into(),
    })?;
    let Some(layouts) = Layouts::from_profile(profile, ctx.pointer_size) else {
        return Ok(None);
    };
    let Some(at) = ctx.global("MmVerifierData") else {
        return Ok(None);
    };
    let level = mem
        .read_u32(at + layouts.verifier_data.level)
        .map_err(|source| PoolError::Memory {
            what: "MmVerifierData.Level",
            va: at,
            source,
        })?;
    let rule_classes = ctx
        .global("VfRuleClasses")
        .and_then(|va| mem.read_u32(va).ok());
    let tracking = level & TRACK_POOL_ALLOCATIONS != 0
        || rule_classes.is_some_and(|r| r & TRACK_POOL_ALLOCATIONS != 0);
    if !tracking {
        return Ok(None);
    }
    let totals = layouts.verifier_data.counters.read(mem, at);
    let mut out = VerifierTracking {
        level,
        rule_classes,
        format: layouts.format(),
        totals,
        drivers: Vec::new(),
        work: WalkWork::default(),
        warnings: Vec::new(),
    };
    let mut budget = Budget::new();
    match &layouts.kind {
        layout::Kind::Xp(l) => xp::read(mem, ctx, l, &mut out, &mut budget),
        layout::Kind::Targets(l) => targets::read(mem, ctx, l, &mut out, &mut budget),
    }
    check_counts(&mut out);
    Ok(Some(out))
}

/// The kernel's outstanding-allocation counters against what was found: a difference means
/// the walk missed entries (pages not in the dump, a broken list) or the entries were
/// misread, and the report must say so with both figures.
fn check_counts(out: &mut VerifierTracking) {
    for d in &out.drivers {
        let Some(c) = d.counters else { continue };
        let found = d.allocations.len() as u64;
        if found != c.current_allocations() {
            out.warnings.push(format!(
                "{}: {found} tracked allocations found, the kernel counts {} \
                 (CurrentPagedPoolAllocations {} + CurrentNonPagedPoolAllocations {})",
                d.name.as_deref().unwrap_or("a verified driver"),
                c.current_allocations(),
                c.current_paged_allocations,
                c.current_nonpaged_allocations
            ));
        }
        if d.back_pointers.mismatched > 0 {
            out.warnings.push(format!(
                "{}: {} allocations' back-pointers do not name their tracker entry",
                d.name.as_deref().unwrap_or("a verified driver"),
                d.back_pointers.mismatched
            ));
        }
    }
}

/// What is left of the bounded work, shared by every walk of one read.
struct Budget {
    allocations_left: usize,
    checks_left: usize,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            allocations_left: MAX_ALLOCATIONS,
            checks_left: MAX_BACK_POINTER_CHECKS,
        }
    }
}

/// Whether the back-pointer the verifier stores in the last `size` bytes of an allocation
/// (`VirtualAddress + NumberOfBytes - size`; XP SP1 `ViPostPoolAllocation`) holds the
/// `expect`ed fields (offset, width, value). `None` when the bytes are not in the dump, or the
/// check budget is spent.
fn back_pointer(
    mem: &dyn VirtualMemory,
    a: &TrackedAllocation,
    size: u64,
    expect: &[(u64, u8, u64)],
    budget: &mut Budget,
) -> Option<bool> {
    if budget.checks_left == 0 {
        return None;
    }
    budget.checks_left -= 1;
    let Some(at) = a
        .address
        .checked_add(a.size)
        .and_then(|e| e.checked_sub(size))
    else {
        return Some(false);
    };
    if a.size < size {
        return Some(false);
    }
    let buf = mem.read_vec(at, usize::try_from(size).ok()?).ok()?;
    Some(
        expect
            .iter()
            .all(|&(off, width, v)| layout::uint(&buf, off, width) == Some(v)),
    )
}

impl BackPointers {
    fn add(&mut self, r: Option<bool>) {
        match r {
            Some(true) => self.matching += 1,
            Some(false) => self.mismatched += 1,
            None => self.unknown += 1,
        }
    }
}

/// Reads a UNICODE_STRING's text (bounded), `None` when unreadable or empty.
fn read_unicode(mem: &dyn VirtualMemory, at: u64, buffer_offset: u64) -> Option<String> {
    let len = mem.read_u16(at).ok()?;
    if len == 0 || len > MAX_NAME_BYTES {
        return None;
    }
    let buf = mem.read_ptr(at.checked_add(buffer_offset)?).ok()?;
    let bytes = mem.read_vec(buf, usize::from(len & !1)).ok()?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}
