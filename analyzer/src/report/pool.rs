//! The JSON of `pooltriage pool` and `pooltriage blocks` (docs/json.md): the pool engine's
//! figures as `!vm`, `!poolused` and `!poolfind` give them, with each tag's drivers.

use crate::attribution::Mapping;
use crate::pool::bigpages::BigPages;
use crate::pool::page_states::PageStates;
use crate::pool::pages::{Block, PageScan};
use crate::pool::pte_info::PteInfo;
use crate::pool::segheap::SegmentHeapScan;
use crate::pool::session::SessionInfo;
use crate::pool::tags::{TableInfo, TagStats};
use crate::pool::verifier::VerifierTracking;
use crate::pool::vm::{QuotaReport, VmSummary};
use crate::pool::{hex, hex_opt, BlockSource, LayoutSource, Tag};
use serde::{Deserialize, Serialize};

/// Most blocks kept for a `blocks` listing (the scan itself streams; this bounds the report).
pub const MAX_LISTED_BLOCKS: usize = 5_000_000;

/// Where the kernel's profile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolSource {
    /// The kernel's PDB.
    Pdb,
    /// A Volatility ISF made from it.
    Isf,
    /// No symbols: the debugger data block and built-in layouts.
    None,
}

impl SymbolSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolSource::Pdb => "pdb",
            SymbolSource::Isf => "isf",
            SymbolSource::None => "none",
        }
    }
}

impl std::fmt::Display for SymbolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which symbols the report used, as the caller found them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolsInfo {
    pub source: SymbolSource,
    pub path: Option<String>,
    pub guid: Option<String>,
    pub age: Option<u32>,
    /// Whether the profile's GUID/age equal the kernel image's CodeView record in the dump
    /// (`None` when the dump does not hold it).
    pub matches_kernel: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layouts {
    pub pool_header: LayoutSource,
    pub tag_table: Option<LayoutSource>,
    pub big_pages: Option<LayoutSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRow {
    #[serde(flatten)]
    pub stats: TagStats,
    pub paged_outstanding: u64,
    pub nonpaged_outstanding: u64,
    pub drivers: Vec<Mapping>,
}

/// The `TOTAL` row of a `!poolused` table (`!poolused 1` prints one): every counter summed
/// over the rows listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TagTotals {
    pub nonpaged_allocs: u64,
    pub nonpaged_frees: u64,
    /// Allocs minus frees (poolmon's and `!poolused 1`'s Diff).
    pub nonpaged_outstanding: u64,
    pub nonpaged_bytes: u64,
    pub paged_allocs: u64,
    pub paged_frees: u64,
    pub paged_outstanding: u64,
    pub paged_bytes: u64,
}

impl TagTotals {
    pub fn of(rows: &[TagRow]) -> TagTotals {
        let mut t = TagTotals::default();
        for r in rows {
            let s = &r.stats;
            for (sum, v) in [
                (&mut t.nonpaged_allocs, s.nonpaged_allocs),
                (&mut t.nonpaged_frees, s.nonpaged_frees),
                (&mut t.nonpaged_outstanding, r.nonpaged_outstanding),
                (&mut t.nonpaged_bytes, s.nonpaged_bytes),
                (&mut t.paged_allocs, s.paged_allocs),
                (&mut t.paged_frees, s.paged_frees),
                (&mut t.paged_outstanding, r.paged_outstanding),
                (&mut t.paged_bytes, s.paged_bytes),
            ] {
                *sum = sum.saturating_add(v);
            }
        }
        t
    }
}

/// poolmon's "Per Alloc": bytes divided by Diff (outstanding allocations); 0 when none is
/// outstanding (learn.microsoft.com, devtest/poolmon-display).
pub fn per_alloc(bytes: u64, outstanding: u64) -> u64 {
    bytes.checked_div(outstanding).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedBlock {
    #[serde(flatten)]
    pub block: Block,
    /// The EPROCESS a quota block is charged to (ProcessBilled decoded), when decodable.
    #[serde(serialize_with = "hex_opt")]
    pub billed_process: Option<u64>,
    pub source: BlockSource,
    /// Which module allocated it, with the evidence (docs/json.md "provenance"); null for
    /// blocks provenance does not examine (tags only Windows allocates, free blocks).
    pub owner: Option<super::provenance::BlockOwner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverRow {
    pub module: String,
    /// Tags the module's code passes to an allocation.
    pub tags: Vec<Tag>,
    /// Outstanding paged + nonpaged bytes of those tags (tag tables).
    pub bytes: u64,
    /// Tags of this list that other modules' code also allocates with.
    pub shared_tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpSummary {
    pub format: &'static str,
    pub arch: &'static str,
    pub build: u32,
    #[serde(serialize_with = "hex")]
    pub kernel_base: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolReport {
    /// Same meaning and name as in every other report (docs/json.md).
    pub schema_version: u32,
    pub dump: DumpSummary,
    pub symbols: SymbolsInfo,
    pub layouts: Layouts,
    pub sort: &'static str,
    pub tag_filter: Option<String>,
    /// Sorted and filtered; `None` when the tag tables could not be read.
    pub tags: Option<Vec<TagRow>>,
    pub session_tags: Option<Vec<TagRow>>,
    /// Each session whose tag tables were read through its own page tables, with its totals
    /// (`session_tags` sums them).
    pub sessions: Vec<SessionInfo>,
    pub tag_tables: Vec<TableInfo>,
    pub big_pages: Option<BigPages>,
    /// Every session's big page table (MM_SESSION_SPACE.PoolTrackBigPages), merged; `None`
    /// when no session has one. Filtered by the tag pattern as `big_pages`.
    pub session_big_pages: Option<BigPages>,
    pub pages: Option<PageScan>,
    /// Committed pool pages that could not be read (not in the dump, paged out, prototype
    /// PTE), classic and segment heap.
    pub missing_pool_pages: Option<u64>,
    /// The classic and segment-heap walks' pages by what their PTEs say (`pages` and
    /// `segment_heap` each give their own).
    pub page_states: Option<PageStates>,
    /// The PTE layout invalid entries were read with; `None` on triage dumps.
    pub pte_layout: Option<PteInfo>,
    /// The Windows 10 19H1+ kernel segment heap walk (LFH and VS blocks), when there is one.
    pub segment_heap: Option<SegmentHeapScan>,
    /// `pooltriage blocks` streams its listing into this member; `pool` leaves it null.
    pub blocks: Option<Vec<ListedBlock>>,
    pub blocks_truncated: bool,
    pub vm: VmSummary,
    pub quota: Option<QuotaReport>,
    /// Driver Verifier pool tracking (`!verifier 3`): each verified driver's outstanding
    /// allocations with their callers; `None` when the verifier does not track pool.
    pub verifier: Option<VerifierTracking>,
    pub drivers: Vec<DriverRow>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}
