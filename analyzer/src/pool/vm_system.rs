//! The system-wide `!vm` lines beside pool: commit charge and limit, available pages and
//! special pool, where each kernel keeps them.
//!
//! WinDbg's `!vm` (the kdexts memory.c source as published in public repositories) reads
//! `MmTotalCommittedPages` ("Committed pages"), `MmTotalCommitLimit` ("Commit limit"),
//! `MmAvailablePages` ("Available Pages") and `MmSpecialPagesInUse` ("Special Pool"), all in
//! pages. XP and 7601 keep those globals (both symbol files name them). Windows 10 keeps them in
//! the system partition instead (17763, 19041 and 20348 ISFs: `nt!MiSystemPartition`, an
//! `_MI_PARTITION` whose `Vp` (`_MI_VISIBLE_PARTITION`) holds `TotalCommittedPages`,
//! `TotalCommitLimit` and `AvailablePages`, and whose `Commit` (`_MI_PARTITION_COMMIT`) holds
//! `PeakCommitment`; no global of the old names remains). Special pool pages in use:
//! `MmSpecialPagesInUse` (XP, a ULONG), `MiSpecialPool.PagesInUse` (7601, `_MI_SPECIAL_POOL`),
//! `MiState.Vs.SpecialPagesInUse` (17763); 19041 and 20348 keep special pool in a segment heap
//! (`ExpHpIsSpecialPoolHeap`) and no count of its pages.

use super::vm::Figure;
use super::vm_read::{label, Step, Vars};
use crate::memory::PAGE_SIZE;

const PARTITION: &str = "MiSystemPartition";
const P: &str = "_MI_PARTITION";
const VP: Step<'static> = (P, "Vp");
const VISIBLE: &str = "_MI_VISIBLE_PARTITION";

/// Commit charge and limit, peak commit and available pages.
#[derive(Debug, Default)]
pub struct SystemFigures {
    pub commit_charge: Option<Figure>,
    pub commit_limit: Option<Figure>,
    pub commit_peak: Option<Figure>,
    pub available: Option<Figure>,
}

/// Reads the figures: the globals where the kernel has them, else the system partition's.
pub fn system_figures(v: &Vars) -> SystemFigures {
    let either = |global: &str, path: &[Step]| {
        v.nonzero(global, PAGE_SIZE)
            .or_else(|| v.pages_at(PARTITION, path))
    };
    SystemFigures {
        commit_charge: either(
            "MmTotalCommittedPages",
            &[VP, (VISIBLE, "TotalCommittedPages")],
        ),
        commit_limit: either("MmTotalCommitLimit", &[VP, (VISIBLE, "TotalCommitLimit")]),
        commit_peak: either(
            "MmPeakCommitment",
            &[(P, "Commit"), ("_MI_PARTITION_COMMIT", "PeakCommitment")],
        ),
        available: either("MmAvailablePages", &[VP, (VISIBLE, "AvailablePages")]),
    }
}

/// Special pool pages in use, where the kernel counts them.
pub fn special_pool(v: &Vars) -> Option<Figure> {
    let spool: [Step; 1] = [("_MI_SPECIAL_POOL", "PagesInUse")];
    let vs: [Step; 2] = [
        ("_MI_SYSTEM_INFORMATION", "Vs"),
        ("_MI_VISIBLE_STATE", "SpecialPagesInUse"),
    ];
    let pages = |root: &str, path: &[Step]| -> Option<Figure> {
        let n = v.mem.read_u64(v.field_addr(root, path)?).ok()?;
        Some(Figure {
            bytes: n.saturating_mul(PAGE_SIZE),
            source: format!("profile:{}", label(root, path)),
        })
    };
    pages("MiSpecialPool", &spool)
        .or_else(|| pages("MiState", &vs))
        .or_else(|| {
            // XP's ULONG (7601 keeps the same name in an 8-byte slot: the typed
            // MiSpecialPool.PagesInUse above is read there).
            let n = v.ulong("MmSpecialPagesInUse")?;
            Some(Figure {
                bytes: u64::from(n).saturating_mul(PAGE_SIZE),
                source: "profile:MmSpecialPagesInUse".into(),
            })
        })
}
