//! The `!vm` figures the dump holds: pool in use and maximum (with a warning near
//! exhaustion), paged pool commit, commit charge and limit, available pages, special pool,
//! pool per descriptor, per session, and the allocation failure counters.
//!
//! The figures are kernel variables: MmSizeOfPagedPoolInBytes and MmMaximumNonPagedPoolInBytes
//! (bytes), MmPagedPoolCommit and MmAllocatedNonPagedPool (pages). Their addresses come from
//! the debugger data block or the profile; Windows 10 keeps few of them, so when a figure is
//! missing the in-use numbers fall back to the tag tables' outstanding bytes, and each figure
//! says where it came from. Windows 10 keeps the figures inside nt!MiState ([`MiState`]) and
//! nt!MiSystemPartition (`vm_system`). Quota charges are `super::quota`'s (re-exported here).

pub use super::quota::{
    walk_processes, Process, QuotaAccumulator, QuotaCharge, QuotaEncoding, QuotaReport,
    MAX_PROCESSES,
};
use super::tags::TagStats;
use super::vm_descriptors::{nonpaged_descriptors, paged_descriptors, PoolDescriptorUsage};
use super::vm_failures::{failures, FailureCount};
use super::vm_read::Vars;
use super::vm_sessions::{session_commit, SessionVm};
use super::vm_system::{special_pool, system_figures};
use super::KernelContext;
use crate::memory::{VirtualMemory, PAGE_SIZE};
use serde::Serialize;

/// Percent of its maximum above which nonpaged pool is near exhaustion: WinDbg's `!vm` prints
/// "Excessive NonPaged Pool Usage" when the pages in use exceed 4/5 of the maximum (the kdexts
/// `!vm` source, memory.c). The one definition: the `!vm` warning here and the analysis
/// report's `pools[].near_exhaustion` both use [`near_exhaustion`].
pub const NONPAGED_EXHAUSTION_PERCENT: u64 = 80;
/// Percent for paged pool: `!vm` prints "Excessive Paged Pool Usage" above 95% of the
/// maximum (paged pool is far larger and pages out, so it warns later).
pub const PAGED_EXHAUSTION_PERCENT: u64 = 95;

/// Whether `in_use` bytes exceed the pool's `!vm` threshold of `max` (strictly, as `!vm`
/// compares); never for an unknown (zero) maximum.
pub fn near_exhaustion(paged: bool, in_use: u64, max: u64) -> bool {
    let pct = if paged {
        PAGED_EXHAUSTION_PERCENT
    } else {
        NONPAGED_EXHAUSTION_PERCENT
    };
    max > 0 && u128::from(in_use) * 100 > u128::from(max) * u128::from(pct)
}

/// One figure of the summary, in bytes, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub bytes: u64,
    /// "kdbg:MmAllocatedNonPagedPool", "profile:MmSizeOfPagedPoolInBytes", "tag tables".
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VmSummary {
    pub paged_in_use: Option<Figure>,
    pub paged_max: Option<Figure>,
    pub paged_commit: Option<Figure>,
    pub nonpaged_in_use: Option<Figure>,
    pub nonpaged_max: Option<Figure>,
    /// "Committed pages": MmTotalCommittedPages, MiSystemPartition.Vp.TotalCommittedPages.
    pub commit_charge: Option<Figure>,
    /// "Commit limit": MmTotalCommitLimit, MiSystemPartition.Vp.TotalCommitLimit.
    pub commit_limit: Option<Figure>,
    /// MmPeakCommitment, MiSystemPartition.Commit.PeakCommitment.
    pub commit_peak: Option<Figure>,
    /// "Available Pages": MmAvailablePages, MiSystemPartition.Vp.AvailablePages.
    pub available: Option<Figure>,
    /// "Special Pool": pages in use, where the kernel counts them (`vm_system`).
    pub special_pool: Option<Figure>,
    /// "PagedPool N Usage": each paged pool descriptor (XP, 7601, 17763).
    pub paged_pools: Vec<PoolDescriptorUsage>,
    /// "NonPagedPool N Used": each nonpaged descriptor, when there are several.
    pub nonpaged_pools: Vec<PoolDescriptorUsage>,
    /// The sessions' CommittedPages summed.
    pub session_commit: Option<Figure>,
    /// Each session's pool and commit (`!vm 4`).
    pub sessions: Vec<SessionVm>,
    /// The allocation failure counters the kernel keeps (`vm_failures`).
    pub failures: Vec<FailureCount>,
    /// "nonpaged pool is near exhaustion ..." lines, naming the limit.
    pub warnings: Vec<String>,
}

impl VmSummary {
    /// Adds the per-session figures (read through each session's page tables by the caller).
    pub fn set_sessions(&mut self, sessions: Vec<SessionVm>) {
        self.session_commit = session_commit(&sessions);
        self.sessions = sessions;
    }
}

/// Reads the summary. `kdbg_values` are the dereferenced debugger-data-block variables
/// (`KernelInfo::kdbg_values`); `tags` the tag tables' rows, for the fallback.
pub fn vm_summary(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    kdbg_values: &[(&str, u64)],
    tags: Option<&[TagStats]>,
) -> VmSummary {
    let v = Vars {
        mem,
        ctx,
        kdbg: kdbg_values,
    };
    let paged_commit = v.var("MmPagedPoolCommit", PAGE_SIZE);
    let mi = MiState::read(&v);
    let system = system_figures(&v);
    let mut s = VmSummary {
        // !vm's paged usage: MmPagedPoolInfo where the kernel has it, else MiState's copy
        // (Windows 10), else the commit.
        paged_in_use: paged_pool_info(mem, ctx)
            .or_else(|| mi.paged_in_use.clone())
            .or_else(|| paged_commit.clone()),
        paged_max: v
            .var("MmSizeOfPagedPoolInBytes", 1)
            .or_else(|| mi.paged_max.clone()),
        paged_commit,
        nonpaged_in_use: v
            .var("MmAllocatedNonPagedPool", PAGE_SIZE)
            .or_else(|| mi.nonpaged_in_use.clone()),
        nonpaged_max: v
            .var("MmMaximumNonPagedPoolInBytes", 1)
            .or_else(|| mi.nonpaged_max.clone()),
        commit_charge: system.commit_charge,
        commit_limit: system.commit_limit,
        commit_peak: system.commit_peak,
        available: system.available,
        special_pool: special_pool(&v),
        paged_pools: paged_descriptors(&v),
        nonpaged_pools: nonpaged_descriptors(&v),
        failures: failures(&v),
        ..VmSummary::default()
    };
    if let Some(rows) = tags {
        tag_table_fallback(&mut s, rows);
    }
    s.warnings = exhaustion_warnings(&s);
    s
}

/// In-use figures from the tag tables' outstanding bytes, when the kernel keeps no variable.
fn tag_table_fallback(s: &mut VmSummary, rows: &[TagStats]) {
    let sum = |f: fn(&TagStats) -> u64| rows.iter().fold(0u64, |a, r| a.saturating_add(f(r)));
    if s.paged_in_use.is_none() {
        s.paged_in_use = Some(Figure {
            bytes: sum(|r| r.paged_bytes),
            source: "tag tables".into(),
        });
    }
    if s.nonpaged_in_use.is_none() {
        s.nonpaged_in_use = Some(Figure {
            bytes: sum(|r| r.nonpaged_bytes),
            source: "tag tables".into(),
        });
    }
}

/// `!vm`'s warnings, each naming the limit that is near: "Excessive NonPaged/Paged Pool
/// Usage" ([`near_exhaustion`]) and "Number of committed pages is near limit" (the kdexts
/// source prints it when the committed pages plus 100 exceed the commit limit).
fn exhaustion_warnings(s: &VmSummary) -> Vec<String> {
    let mut out = Vec::new();
    for (what, used, max) in [
        ("paged", &s.paged_in_use, &s.paged_max),
        ("nonpaged", &s.nonpaged_in_use, &s.nonpaged_max),
    ] {
        if let (Some(u), Some(m)) = (used, max) {
            if near_exhaustion(what == "paged", u.bytes, m.bytes) {
                let pct = u128::from(u.bytes) * 100 / u128::from(m.bytes);
                let limit = if what == "paged" {
                    PAGED_EXHAUSTION_PERCENT
                } else {
                    NONPAGED_EXHAUSTION_PERCENT
                };
                out.push(format!(
                    "{what} pool is near exhaustion: {} of {} bytes in use ({pct}% of the maximum, {}), above !vm's {limit}% (Excessive {} Pool Usage)",
                    u.bytes,
                    m.bytes,
                    m.source,
                    if what == "paged" { "Paged" } else { "NonPaged" }
                ));
            }
        }
    }
    if let (Some(c), Some(l)) = (&s.commit_charge, &s.commit_limit) {
        if c.bytes.saturating_add(100 * PAGE_SIZE) > l.bytes {
            out.push(format!(
                "committed pages are near the commit limit: {} of {} pages ({}, {}), as !vm's \"Number of committed pages is near limit\"",
                c.bytes / PAGE_SIZE,
                l.bytes / PAGE_SIZE,
                c.source,
                l.source
            ));
        }
    }
    out
}

/// MmPagedPoolInfo.AllocatedPagedPool (pages), when the profile describes it (XP to 7).
fn paged_pool_info(mem: &dyn VirtualMemory, ctx: &KernelContext) -> Option<Figure> {
    let p = ctx.profile?;
    let info = ctx.global("MmPagedPoolInfo")?;
    let off = p.offset("_MM_PAGED_POOL_INFO", "AllocatedPagedPool")?;
    let pages = mem
        .read_ptr(info.checked_add(off)?)
        .ok()
        .filter(|&p| p != 0)?;
    Some(Figure {
        bytes: pages.saturating_mul(PAGE_SIZE),
        source: "profile:MmPagedPoolInfo.AllocatedPagedPool".into(),
    })
}

/// The pool figures Windows 10 keeps in nt!MiState (`_MI_SYSTEM_INFORMATION`) instead of the
/// variables of earlier kernels: `Vs` (`_MI_VISIBLE_STATE`) holds `PagedPoolInfo`
/// (`_MM_PAGED_POOL_INFO`, AllocatedPagedPool in pages), `SizeOfPagedPoolInPages` and
/// `MaximumNonPagedPoolInPages`; `Pools` (`_MI_POOL_STATE`) holds `AllocatedNonPagedPool`
/// (pages). Names and offsets come from the kernel's profile (the 19041 and 20348 ISFs carry
/// them); each figure is read only if its field is there, and a zero is taken as "not set".
#[derive(Debug, Default)]
struct MiState {
    paged_in_use: Option<Figure>,
    paged_max: Option<Figure>,
    nonpaged_in_use: Option<Figure>,
    nonpaged_max: Option<Figure>,
}

impl MiState {
    fn read(v: &Vars) -> MiState {
        const SI: &str = "_MI_SYSTEM_INFORMATION";
        const VS: (&str, &str) = (SI, "Vs");
        const VIS: &str = "_MI_VISIBLE_STATE";
        MiState {
            paged_in_use: v.pages_at(
                "MiState",
                &[
                    VS,
                    (VIS, "PagedPoolInfo"),
                    ("_MM_PAGED_POOL_INFO", "AllocatedPagedPool"),
                ],
            ),
            paged_max: v.pages_at("MiState", &[VS, (VIS, "SizeOfPagedPoolInPages")]),
            nonpaged_in_use: v.pages_at(
                "MiState",
                &[(SI, "Pools"), ("_MI_POOL_STATE", "AllocatedNonPagedPool")],
            ),
            nonpaged_max: v.pages_at("MiState", &[VS, (VIS, "MaximumNonPagedPoolInPages")]),
        }
    }
}

#[cfg(test)]
#[path = "vm_tests.rs"]
mod tests;
