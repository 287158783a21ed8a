//! The pool tag tracker tables, as `!poolused` reads them: per tag, paged and nonpaged
//! allocations, frees and bytes.
//!
//! Where they are: `PoolTrackTable` (pointer) with `PoolTrackTableSize` entries; on kernels
//! with per-processor tables `ExPoolTagTables[cpu]` for each of KeNumberProcessors processors
//! (index 0 is PoolTrackTable itself), and tags that overflow them in
//! `PoolTrackTableExpansion` (`PoolTrackTableExpansionSize` entries). The counts of one tag
//! are summed over all of them. Session pool has its own table (`ExpSessionPoolTrackTable`),
//! reported apart; it is session space, so [`super::session`] re-reads it through each
//! session's own page tables (with the session's expansion table) when the process list
//! shows sessions; what is read here through the dump's page tables is the fallback.
//!
//! Entry layout (`_POOL_TRACKER_TABLE`): XP/7 x86 0x1C bytes (ULONG counts, SIZE_T bytes),
//! 7/8 x64 0x28 (LONG/ULONG counts at 4-byte offsets, SIZE_T bytes), Windows 10 x64 0x38 and
//! 20348 0x50 (all counts 64-bit). The profile gives offsets but not integer widths, so the
//! width of the counts is derived from the offsets: 64-bit only when every count sits on an
//! 8-byte boundary of an x64 entry of at least 0x38 bytes (true of the 10/20348 ISFs, false of
//! the 7601 ISF where NonPagedAllocs is at 4).

use super::layout::{table_profile, FieldSpec, LayoutSource};
use super::tag::Tag;
use super::{KernelContext, PoolError};
use crate::memory::VirtualMemory;
use crate::symbols::Profile;
use serde::Serialize;
use std::collections::HashMap;

/// Most tracker entries we read from one table. Windows sizes PoolTrackTable by memory (2K to
/// 64K entries, a power of two); a million is far beyond any real system.
pub const MAX_TABLE_ENTRIES: u64 = 1 << 20;
/// Most per-processor tables (Windows supports 640 logical processors; 2048 leaves room).
pub const MAX_PROCESSORS: u64 = 2048;
/// Entries read per memory read.
const CHUNK_ENTRIES: u64 = 256;

/// Where the fields of a `_POOL_TRACKER_TABLE` entry are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerLayout {
    pub size: u64,
    pub key: FieldSpec,
    pub nonpaged_allocs: FieldSpec,
    pub nonpaged_frees: FieldSpec,
    pub nonpaged_bytes: FieldSpec,
    pub paged_allocs: FieldSpec,
    pub paged_frees: FieldSpec,
    pub paged_bytes: FieldSpec,
    pub source: LayoutSource,
}

impl TrackerLayout {
    pub fn from_profile(profile: &Profile, pointer_size: u8) -> Option<TrackerLayout> {
        const T: &str = "_POOL_TRACKER_TABLE";
        let size = profile.type_size(T)?;
        let off = |f| profile.offset(T, f);
        let counts = [
            off("NonPagedAllocs")?,
            off("NonPagedFrees")?,
            off("PagedAllocs")?,
            off("PagedFrees")?,
        ];
        let wide = pointer_size == 8 && size >= 0x38 && counts.iter().all(|o| o % 8 == 0);
        let cw = if wide { 8 } else { 4 };
        let f = |name, width| FieldSpec::from_profile(profile, T, name, width);
        let l = TrackerLayout {
            size,
            key: f("Key", 4)?,
            nonpaged_allocs: f("NonPagedAllocs", cw)?,
            nonpaged_frees: f("NonPagedFrees", cw)?,
            nonpaged_bytes: f("NonPagedBytes", pointer_size)?,
            paged_allocs: f("PagedAllocs", cw)?,
            paged_frees: f("PagedFrees", cw)?,
            paged_bytes: f("PagedBytes", pointer_size)?,
            source: LayoutSource::Profile,
        };
        l.fields().iter().all(|f| f.end() <= size).then_some(l)
    }

    /// Built-in layouts: from the built-in table of kernel layouts, by era: x86 (ntkrnlpa.pdb)
    /// 0x1C on every build; x64 before Windows 10 (7601) 0x28; Windows 10 x64 (17763/19041)
    /// 0x38; 20348+ 0x50. A build between table builds takes the nearest older one of its era.
    pub fn built_in(pointer_size: u8, build: u32) -> Option<TrackerLayout> {
        let era = match (pointer_size, build) {
            (4, _) => 0..u32::MAX,
            (_, 0..=10239) => 0..10240,
            (_, 10240..=20347) => 10240..20348,
            _ => 20348..u32::MAX,
        };
        let p = table_profile(pointer_size, build, era)?;
        TrackerLayout::from_profile(&p, pointer_size).map(|l| TrackerLayout {
            source: LayoutSource::BuiltIn,
            ..l
        })
    }

    /// The profile's layout, else the built-in one; `None` when neither has one.
    pub fn for_kernel(ctx: &KernelContext) -> Option<TrackerLayout> {
        ctx.profile
            .and_then(|p| TrackerLayout::from_profile(p, ctx.pointer_size))
            .or_else(|| TrackerLayout::built_in(ctx.pointer_size, ctx.build))
    }

    fn fields(&self) -> [FieldSpec; 7] {
        [
            self.key,
            self.nonpaged_allocs,
            self.nonpaged_frees,
            self.nonpaged_bytes,
            self.paged_allocs,
            self.paged_frees,
            self.paged_bytes,
        ]
    }
}

/// One tag's counters, summed over every table that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TagStats {
    pub tag: Tag,
    pub paged_allocs: u64,
    pub paged_frees: u64,
    /// Outstanding paged bytes (the tracker adds on allocation, subtracts on free).
    pub paged_bytes: u64,
    pub nonpaged_allocs: u64,
    pub nonpaged_frees: u64,
    pub nonpaged_bytes: u64,
}

impl TagStats {
    fn new(tag: Tag) -> TagStats {
        TagStats {
            tag,
            paged_allocs: 0,
            paged_frees: 0,
            paged_bytes: 0,
            nonpaged_allocs: 0,
            nonpaged_frees: 0,
            nonpaged_bytes: 0,
        }
    }
    /// Allocations minus frees. Counters that wrapped (32-bit on older kernels) are still
    /// right modulo 2^32 as long as fewer than 2^32 are outstanding; a negative difference
    /// (a damaged table) is shown as 0.
    pub fn paged_outstanding(&self) -> u64 {
        outstanding(self.paged_allocs, self.paged_frees)
    }
    pub fn nonpaged_outstanding(&self) -> u64 {
        outstanding(self.nonpaged_allocs, self.nonpaged_frees)
    }
}

fn outstanding(allocs: u64, frees: u64) -> u64 {
    if allocs >= frees {
        allocs - frees
    } else if allocs <= u64::from(u32::MAX) && frees <= u64::from(u32::MAX) {
        // A 32-bit allocation counter that wrapped past the frees gives a small difference
        // modulo 2^32; a large one means frees really exceed allocations (damage): 0.
        let d = (allocs as u32).wrapping_sub(frees as u32);
        if d < 1 << 31 {
            u64::from(d)
        } else {
            0
        }
    } else {
        0
    }
}

/// Sort orders of `!poolused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By tag, byte order: WinDbg's `!poolused` default ("Sorting by Tag") and poolmon's (`/t`).
    Tag,
    PagedBytes,
    NonpagedBytes,
    /// Outstanding allocations (Diff), paged plus nonpaged.
    Allocs,
}

/// Sorts by tag, or largest first with ties by tag, so the order is stable across runs.
pub fn sort_tags(tags: &mut [TagStats], key: SortKey) {
    let k = |t: &TagStats| match key {
        SortKey::Tag => 0,
        SortKey::PagedBytes => t.paged_bytes,
        SortKey::NonpagedBytes => t.nonpaged_bytes,
        SortKey::Allocs => t
            .paged_outstanding()
            .saturating_add(t.nonpaged_outstanding()),
    };
    tags.sort_by(|a, b| k(b).cmp(&k(a)).then(a.tag.cmp(&b.tag)));
}

/// One tracker table that was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableInfo {
    /// "PoolTrackTable", "ExPoolTagTables[3]", "PoolTrackTableExpansion", "ExpSessionPoolTrackTable".
    pub name: String,
    #[serde(serialize_with = "crate::pool::hex")]
    pub address: u64,
    pub entries: u64,
    /// Entries with a non-zero key.
    pub used: u64,
    /// Entries whose memory is not in the dump.
    pub unreadable: u64,
}

/// Everything the tag tables say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagTables {
    /// System (non-session) pool, one row per tag, unsorted.
    pub tags: Vec<TagStats>,
    /// Session pool, apart; `None` when the kernel has no session table or it is empty.
    pub session: Option<Vec<TagStats>>,
    pub tables: Vec<TableInfo>,
    pub layout_source: LayoutSource,
    pub warnings: Vec<String>,
}

/// Reads and sums the tag tables. `pool_track_table_var` is the ADDRESS of the PoolTrackTable
/// variable from the debugger data block, used when the profile does not give it.
pub fn read_tag_tables(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    pool_track_table_var: Option<u64>,
) -> Result<TagTables, PoolError> {
    let layout = TrackerLayout::for_kernel(ctx).ok_or_else(|| PoolError::Missing {
        what: "_POOL_TRACKER_TABLE layout",
        why: "no symbols, and no built-in layout for this pointer size".into(),
    })?;
    let mut warnings = Vec::new();
    let var = ctx
        .global("PoolTrackTable")
        .or(pool_track_table_var)
        .ok_or_else(|| PoolError::Missing {
            what: "PoolTrackTable",
            why: "neither the profile nor the debugger data block gives its address".into(),
        })?;
    let table = read_ptr(mem, var, "PoolTrackTable")?;
    let size = match ctx.global("PoolTrackTableSize") {
        Some(a) => read_ptr(mem, a, "PoolTrackTableSize")?,
        None => {
            // Without symbols: XP to 10 1809 keep PoolTrackTableSize in the pointer just
            // before PoolTrackTable (ntkrnlpa.pdb, 7601 and 17763 ISFs); accept it only if it
            // is a power of two in the range Windows uses.
            let guess = read_ptr(
                mem,
                var.wrapping_sub(u64::from(ctx.pointer_size)),
                "PoolTrackTableSize",
            )?;
            if !(guess.is_power_of_two() && (0x100..=MAX_TABLE_ENTRIES).contains(&guess)) {
                return Err(PoolError::Missing {
                    what: "PoolTrackTableSize",
                    why: "no symbols, and the word before PoolTrackTable is not a plausible size"
                        .into(),
                });
            }
            warnings.push(format!(
                "PoolTrackTableSize assumed from the word before PoolTrackTable ({guess}); give symbols to be sure"
            ));
            guess
        }
    };
    check_size("PoolTrackTableSize", size)?;

    if ctx.profile.is_none() && ctx.build >= 7600 {
        warnings.push(
            "without symbols only PoolTrackTable is read: the per-processor tables (ExPoolTagTables) and the \
             expansion table are not, so the counts can be short; give symbols"
                .into(),
        );
    }
    let mut acc = Accumulator::new(layout);
    let mut tables = Vec::new();
    let mut seen = vec![table];
    tables.push(acc.add_table(mem, "PoolTrackTable".into(), table, size));

    if let Some(per_cpu) = ctx.global("ExPoolTagTables") {
        let n = processor_count(mem, ctx, &mut warnings);
        for cpu in 0..n {
            let slot = per_cpu + cpu * u64::from(ctx.pointer_size);
            match mem.read_ptr(slot) {
                Ok(0) => {}
                Ok(t) if seen.contains(&t) => {}
                Ok(t) => {
                    seen.push(t);
                    tables.push(acc.add_table(mem, format!("ExPoolTagTables[{cpu}]"), t, size));
                }
                Err(e) => warnings.push(format!(
                    "ExPoolTagTables[{cpu}] at {slot:#x} unreadable: {e}"
                )),
            }
        }
    }

    if let (Some(a), Some(s)) = (
        ctx.global("PoolTrackTableExpansion"),
        ctx.global("PoolTrackTableExpansionSize"),
    ) {
        match (mem.read_ptr(a), mem.read_ptr(s)) {
            (Ok(0), _) | (_, Ok(0)) => {}
            (Ok(t), Ok(n)) => match check_size("PoolTrackTableExpansionSize", n) {
                Ok(()) => tables.push(acc.add_table(mem, "PoolTrackTableExpansion".into(), t, n)),
                Err(e) => warnings.push(e.to_string()),
            },
            (Err(e), _) | (_, Err(e)) => {
                warnings.push(format!("PoolTrackTableExpansion unreadable: {e}"))
            }
        }
    }

    let mut session = None;
    if let (Some(a), Some(s)) = (
        ctx.global("ExpSessionPoolTrackTable"),
        ctx.global("ExpSessionPoolTrackTableSize"),
    ) {
        match (mem.read_ptr(a), mem.read_ptr(s)) {
            (Ok(0), _) | (_, Ok(0)) => {}
            (Ok(t), Ok(n)) => match check_size("ExpSessionPoolTrackTableSize", n) {
                Ok(()) => {
                    let mut sacc = Accumulator::new(layout);
                    tables.push(sacc.add_table(mem, "ExpSessionPoolTrackTable".into(), t, n));
                    let rows = sacc.finish();
                    if !rows.is_empty() {
                        session = Some(rows);
                    }
                }
                Err(e) => warnings.push(e.to_string()),
            },
            (Err(e), _) | (_, Err(e)) => {
                warnings.push(format!("ExpSessionPoolTrackTable unreadable: {e}"))
            }
        }
    }

    for t in &tables {
        if t.unreadable > 0 {
            warnings.push(format!(
                "{}: {} of {} entries are not in the dump",
                t.name, t.unreadable, t.entries
            ));
        }
    }
    Ok(TagTables {
        tags: acc.finish(),
        session,
        tables,
        layout_source: layout.source,
        warnings,
    })
}

fn read_ptr(mem: &dyn VirtualMemory, va: u64, what: &'static str) -> Result<u64, PoolError> {
    mem.read_ptr(va)
        .map_err(|source| PoolError::Memory { what, va, source })
}

pub(super) fn check_size(what: &'static str, n: u64) -> Result<(), PoolError> {
    if n > MAX_TABLE_ENTRIES {
        return Err(PoolError::Implausible {
            what,
            value: n,
            limit: MAX_TABLE_ENTRIES,
        });
    }
    Ok(())
}

/// KeNumberProcessors (a CCHAR before Vista, a ULONG after), else the dump header's count.
fn processor_count(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    warnings: &mut Vec<String>,
) -> u64 {
    let from_kernel = ctx.global("KeNumberProcessors").and_then(|a| {
        if ctx.build < 6000 {
            mem.read_u8(a).ok().map(u64::from)
        } else {
            mem.read_u32(a).ok().map(u64::from)
        }
    });
    let n = match from_kernel {
        Some(n) if n > 0 => n,
        _ => u64::from(ctx.processors),
    };
    if n > MAX_PROCESSORS {
        warnings.push(format!("processor count {n} capped at {MAX_PROCESSORS}"));
    }
    n.min(MAX_PROCESSORS)
}

/// Sums entries by tag. Counters are added modulo their width: per-processor byte counts can
/// be "negative" (freed on another processor) and only their sum is meaningful.
pub(super) struct Accumulator {
    layout: TrackerLayout,
    by_tag: HashMap<Tag, TagStats>,
}

impl Accumulator {
    pub(super) fn new(layout: TrackerLayout) -> Self {
        Accumulator {
            layout,
            by_tag: HashMap::new(),
        }
    }

    pub(super) fn add_table(
        &mut self,
        mem: &dyn VirtualMemory,
        name: String,
        va: u64,
        entries: u64,
    ) -> TableInfo {
        let mut info = TableInfo {
            name,
            address: va,
            entries,
            used: 0,
            unreadable: 0,
        };
        super::entries::for_each_entry(
            mem,
            va,
            entries,
            self.layout.size,
            CHUNK_ENTRIES,
            &mut |e| match e {
                Some(e) => info.used += u64::from(self.add_entry(e)),
                None => info.unreadable += 1,
            },
        );
        info
    }

    fn add_entry(&mut self, e: &[u8]) -> bool {
        let l = &self.layout;
        let key = l.key.read(e).unwrap_or(0) as u32;
        if key == 0 {
            return false;
        }
        let v = |f: FieldSpec| f.read(e).unwrap_or(0);
        let s = self
            .by_tag
            .entry(Tag::from_u32(key))
            .or_insert_with(|| TagStats::new(Tag::from_u32(key)));
        s.nonpaged_allocs = s.nonpaged_allocs.wrapping_add(v(l.nonpaged_allocs));
        s.nonpaged_frees = s.nonpaged_frees.wrapping_add(v(l.nonpaged_frees));
        s.nonpaged_bytes = s.nonpaged_bytes.wrapping_add(v(l.nonpaged_bytes));
        s.paged_allocs = s.paged_allocs.wrapping_add(v(l.paged_allocs));
        s.paged_frees = s.paged_frees.wrapping_add(v(l.paged_frees));
        s.paged_bytes = s.paged_bytes.wrapping_add(v(l.paged_bytes));
        true
    }

    pub(super) fn finish(self) -> Vec<TagStats> {
        let l = self.layout;
        let mask = |f: FieldSpec, v: u64| {
            if f.width >= 8 {
                v
            } else {
                v & ((1u64 << (8 * f.width)) - 1)
            }
        };
        let mut rows: Vec<TagStats> = self
            .by_tag
            .into_values()
            .map(|s| TagStats {
                tag: s.tag,
                paged_allocs: mask(l.paged_allocs, s.paged_allocs),
                paged_frees: mask(l.paged_frees, s.paged_frees),
                paged_bytes: mask(l.paged_bytes, s.paged_bytes),
                nonpaged_allocs: mask(l.nonpaged_allocs, s.nonpaged_allocs),
                nonpaged_frees: mask(l.nonpaged_frees, s.nonpaged_frees),
                nonpaged_bytes: mask(l.nonpaged_bytes, s.nonpaged_bytes),
            })
            .collect();
        rows.sort_by_key(|r| r.tag);
        rows
    }
}

#[cfg(test)]
#[test]
fn outstanding_handles_wrapped_32_bit_counters() {
    assert_eq!(outstanding(10, 4), 6);
    // allocs wrapped: 2^32 + 5 allocations, 0xffff_fff0 frees -> 21 outstanding.
    assert_eq!(outstanding(5, 0xffff_fff0), 21);
    // frees slightly above allocs (damage): 0, not four billion.
    assert_eq!(outstanding(5, 7), 0);
    assert_eq!(outstanding(5, 1 << 40), 0);
}

#[cfg(test)]
#[path = "tags_tests.rs"]
mod tests;
