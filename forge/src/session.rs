//! Session pool bookkeeping: the session's own tag tracker table, as Windows Vista+ keeps it
//! (docs/pool.md "Session pool").
//!
//! What the kernel does (decompiled ntoskrnl in public repositories, ISF layouts in the corpus):
//! allocations whose pool type has the session bit (0x20, PagedPoolSession = 0x21) are counted
//! in `ExpSessionPoolTrackTable`, a pointer to `_POOL_TRACKER_TABLE` entries of the same
//! layout as PoolTrackTable's, hashed the same way, `ExpSessionPoolTrackTableSize` entries
//! (mask `ExpSessionPoolTrackTableMask`); never per processor. The table lives in session
//! space: on 17763+ it is `MM_SESSION_SPACE.PoolTags` (ExInitializePoolDescriptor sets the
//! pointer to the session space base + that field's offset and the size to the largest power
//! of two of entries that fits the field), so the same address shows each session its own
//! table. Tags that find no free entry go to the session's expansion table,
//! `MM_SESSION_SPACE.PoolTrackTableExpansion` (`PoolTrackTableExpansionSize` entries), reached
//! from the current process's `EPROCESS.Session`.
//!
//! The forge plants one session (SessionId 1) whose MM_SESSION_SPACE every process but System
//! and smss.exe points at, mapped in the kernel half (real Windows maps session space only in
//! the processes of that session; the reader reads it through a session process's page
//! tables, which works for both). Before 19H1 (7601, 17763) session paged pool is classic pool
//! pages between `MM_SESSION_SPACE.PagedPoolStart` and `PagedPoolEnd`: the forge plants the
//! blocks there (PoolType with the session bit, 0x23) and counts the table from them, as it
//! does for system pool. On 19041/20348 session pool is the session's segment heap
//! (`MM_SESSION_SPACE.HeapState` -> `_EX_HEAP_SESSION_STATE.PagedHeap`): the forge plants the
//! blocks there with the system heaps' planter ([`crate::segheap`]) and counts the table from
//! them too.

use crate::pool::{Allocation, HeaderLayout, PoolKind, PoolRegion, FREE_TAG};
use crate::poolstate::{
    field_widths, put, put_bits, tag_str, write_tracker, PoolPlan, TableWriter, TagStats,
};
use crate::segheap::{SegLayout, SegmentHeap};
use crate::space::PAGE;
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Session id of the forged session.
pub const SESSION_ID: u32 = 1;
/// Entries of the session table on kernels whose MM_SESSION_SPACE has no PoolTags field
/// (7601): the forge's choice, a power of two as the kernel's are.
pub const SESSION_TABLE_SIZE: u64 = 256;
/// Entries of the session's expansion table.
pub const SESSION_EXPANSION_SIZE: u64 = 16;
/// Where the forged MM_SESSION_SPACE lives: this far above the session drivers (win32k).
const SESSION_SPACE_OFFSET: u64 = 0x1000_0000;
/// Session paged pool: this far above MM_SESSION_SPACE, this large (PagedPoolEnd is its last
/// byte, as the kernel's pool end variables are).
const SESSION_PAGED_POOL_OFFSET: u64 = 0x0100_0000;
pub const SESSION_PAGED_POOL_SIZE: u64 = 0x0400_0000;
/// 19H1+: the session's `_SEGMENT_HEAP` this far into the session paged pool range (big
/// session allocations take the range's start).
const SESSION_HEAP_OFFSET: u64 = 0x0200_0000;
/// The first build whose pool is the segment heap (no classic session pool pages).
const SEGMENT_HEAP_BUILD: u32 = 18362;
/// Entries of the session's big page table.
pub const SESSION_BIG_TABLE_SIZE: u64 = 64;
/// PagedPoolSession: the POOL_TYPE a session big page entry records.
const PAGED_POOL_SESSION: u64 = 0x21;

/// What was planted, for the truth and the driver totals.
pub struct PlantedSession {
    pub session_space: u64,
    pub table: u64,
    pub entries: u64,
    pub expansion: Option<u64>,
    pub expansion_tags: Vec<[u8; 4]>,
    /// Per tag, summed over the table and the expansion table.
    pub totals: BTreeMap<[u8; 4], TagStats>,
    /// The session paged pool blocks planted (classic pages, before 19H1), free ones included.
    pub blocks: Vec<Allocation>,
    /// The session's big page table, when big session allocations were planted.
    pub big_table: Option<u64>,
}

impl PlantedSession {
    /// The truth's `session_tags`: the same fields as `tags`.
    pub fn rows(&self) -> Value {
        self.totals
            .iter()
            .map(|(t, s)| {
                json!({ "tag": tag_str(t), "paged_allocs": s.paged_allocs, "paged_frees": s.paged_frees,
                        "paged_bytes": s.paged_bytes, "nonpaged_allocs": s.nonpaged_allocs,
                        "nonpaged_frees": s.nonpaged_frees, "nonpaged_bytes": s.nonpaged_bytes })
            })
            .collect()
    }

    /// The truth's `session`: where the tables are.
    pub fn truth(&self) -> Value {
        // 19H1+: the blocks are in the session's segment heap, not in a classic page range.
        let heap = self
            .blocks
            .iter()
            .any(|b| b.source == "lfh" || b.source == "vs");
        json!({
            "session_id": SESSION_ID,
            "mm_session_space": hex(self.session_space),
            "table": hex(self.table),
            "entries": self.entries,
            "expansion": self.expansion.map(hex),
            "expansion_tags": self.expansion_tags.iter().map(tag_str).collect::<Vec<_>>(),
            "blocks_planted": !self.blocks.is_empty(),
            "big_table": self.big_table.map(hex),
            "big_pages": self.blocks.iter().filter(|b| b.big).map(|b| json!({
                "va": hex(b.address), "tag": tag_str(&b.tag), "size": b.size, "pool_type": "paged", "free": false,
            })).collect::<Vec<_>>(),
            "segment_heap": heap,
            "paged_pool": (!self.blocks.is_empty() && !heap).then(|| json!({
                "start": hex(self.session_space + SESSION_PAGED_POOL_OFFSET),
                "size": SESSION_PAGED_POOL_SIZE,
            })),
        })
    }
}

/// Bytes of a field that is an array: up to the next field, or the structure's end.
fn field_bytes(sys: &System, ty: &str, field: &str) -> Option<(u64, u64)> {
    let t = sys.profile.types.get(ty)?;
    let off = t.fields.get(field)?.offset;
    let end = t
        .fields
        .values()
        .map(|f| f.offset)
        .filter(|&o| o > off)
        .min()
        .unwrap_or(t.size);
    Some((off, end - off))
}

/// Allocates the plan's session blocks (sizes with their header) in `region`, then closes its
/// last page.
fn plant_session_blocks(
    region: &mut PoolRegion,
    sys: &mut System,
    plan: &PoolPlan,
) -> Result<(), ForgeError> {
    let h = region.header_size();
    for a in &plan.session {
        if a.bytes % h != 0 || a.bytes <= h {
            return Err(ForgeError::Internal(format!(
                "session block of {:#x} bytes is not a whole number of {h}-byte header units",
                a.bytes
            )));
        }
        for _ in 0..a.count {
            region.alloc(&mut sys.machine, a.bytes - h, &a.tag)?;
        }
    }
    region.close_page(&mut sys.machine)
}

/// 19H1+: the session's segment heap. `MM_SESSION_SPACE.HeapState` points to an
/// `_EX_HEAP_SESSION_STATE` whose `PagedHeap` is a `_SEGMENT_HEAP` (docs/pool.md): the forge
/// plants the state in session space right after MM_SESSION_SPACE (Windows allocates it from
/// nonpaged pool, tag 'HpSe'; planting it there would add a block to the system heap), the
/// heap and its segments in the session paged pool range, keyed with the system heaps'
/// RtlpHpHeapGlobals keys. Small blocks go to the heap's LFH/VS subsegments (headers with the
/// session bit), blocks above 0xFE0 bytes are big allocations at the range's start (the
/// session big page table, below). Returns the blocks; none when the kernel lacks the layout.
fn plant_session_heap(
    sys: &mut System,
    plan: &PoolPlan,
    session_space: u64,
    space_bytes: u64,
) -> Result<Vec<Allocation>, ForgeError> {
    let (Some(layout), Some(state_off), Some(paged_off)) = (
        SegLayout::from_profile(&sys.profile),
        sys.profile.offset("_MM_SESSION_SPACE", "HeapState"),
        sys.profile.offset("_EX_HEAP_SESSION_STATE", "PagedHeap"),
    ) else {
        return Ok(Vec::new());
    };
    let globals = sys.global("RtlpHpHeapGlobals")?;
    let keys = sys
        .machine
        .read(globals, 16)
        .ok_or_else(|| ForgeError::Internal("RtlpHpHeapGlobals is not planted".into()))?;
    let key = |at: usize| -> Result<u64, ForgeError> {
        keys.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| ForgeError::Internal("heap key".into()))
    };
    let (heap_key, lfh_key) = (key(0)?, key(8)?);
    let state = session_space + space_bytes;
    let state_size = sys.type_size("_EX_HEAP_SESSION_STATE")?;
    sys.machine
        .map_range(state, state_size.div_ceil(PAGE) * PAGE)?;
    let start = session_space + SESSION_PAGED_POOL_OFFSET;
    let heap_va = start + SESSION_HEAP_OFFSET;
    let heap = SegmentHeap::new(
        &mut sys.machine,
        layout,
        heap_va,
        heap_va + 0x10_0000,
        heap_key,
        lfh_key,
    )?;
    sys.machine.write_ptr(state + paged_off, heap_va)?;
    sys.machine.write_ptr(session_space + state_off, state)?;
    let header = HeaderLayout::from_profile(&sys.profile)?;
    let mut region = PoolRegion::new(
        start,
        PoolKind::Paged,
        sys.spec.paging,
        sys.spec.build,
        header,
    );
    region.session = true;
    region.segment_heap = Some(heap);
    plant_session_blocks(&mut region, sys, plan)?;
    if region.end() > heap_va {
        return Err(ForgeError::Internal(
            "session big allocations overflow into the session heap".into(),
        ));
    }
    Ok(region.allocations)
}

/// Plants the session table (and expansion table) for `plan.session`; `None` when the plan
/// has no session pool or the kernel keeps no session table (XP).
pub(crate) fn plant(
    sys: &mut System,
    plan: &PoolPlan,
    area: &mut TableWriter,
) -> Result<Option<PlantedSession>, ForgeError> {
    if plan.session.is_empty() && plan.session_history.is_empty() {
        return Ok(None);
    }
    let (Ok(g_table), Ok(g_size)) = (
        sys.global("ExpSessionPoolTrackTable"),
        sys.global("ExpSessionPoolTrackTableSize"),
    ) else {
        return Ok(None);
    };
    let space_size = sys.type_size("_MM_SESSION_SPACE")?;
    let session_field = sys.offset("_EPROCESS", "Session")?;
    let session_space = sys.spec.plan.session_drivers + SESSION_SPACE_OFFSET;
    let space_bytes = space_size.div_ceil(PAGE) * PAGE;
    sys.machine.map_range(session_space, space_bytes)?;
    sys.machine.write_u32(
        session_space + sys.offset("_MM_SESSION_SPACE", "SessionId")?,
        SESSION_ID,
    )?;

    let entry = sys.type_size("_POOL_TRACKER_TABLE")?;
    // 17763+: the table is MM_SESSION_SPACE.PoolTags, as many entries as fit, rounded down to
    // a power of two. 7601: a page-aligned table after the structure.
    let (table, entries) = match field_bytes(sys, "_MM_SESSION_SPACE", "PoolTags") {
        Some((off, bytes)) if bytes / entry >= 2 => {
            let n = bytes / entry;
            (session_space + off, 1u64 << (63 - n.leading_zeros()))
        }
        _ => {
            let va = session_space + space_bytes;
            sys.machine
                .map_range(va, (SESSION_TABLE_SIZE * entry).div_ceil(PAGE) * PAGE)?;
            (va, SESSION_TABLE_SIZE)
        }
    };

    // Before 19H1: the blocks, in classic session paged pool pages; the counts come from them.
    let mut blocks = Vec::new();
    if sys.spec.build < SEGMENT_HEAP_BUILD && sys.spec.build >= 6000 {
        let header = HeaderLayout::from_profile(&sys.profile)?;
        let start = session_space + SESSION_PAGED_POOL_OFFSET;
        let mut region = PoolRegion::new(
            start,
            PoolKind::Paged,
            sys.spec.paging,
            sys.spec.build,
            header,
        );
        region.session = true;
        plant_session_blocks(&mut region, sys, plan)?;
        if region.end() > start + SESSION_PAGED_POOL_SIZE {
            return Err(ForgeError::Internal(
                "session paged pool overflows its range".into(),
            ));
        }
        let w = field_widths(sys, "_MM_SESSION_SPACE")?;
        for (name, v) in [
            ("PagedPoolStart", start),
            ("PagedPoolEnd", start + SESSION_PAGED_POOL_SIZE - 1),
        ] {
            let (o, _) = w
                .get(name)
                .copied()
                .ok_or_else(|| ForgeError::MissingSymbol(format!("_MM_SESSION_SPACE.{name}")))?;
            sys.machine.write_ptr(session_space + o, v)?;
        }
        blocks = region.allocations;
    } else if sys.spec.build >= SEGMENT_HEAP_BUILD {
        blocks = plant_session_heap(sys, plan, session_space, space_bytes)?;
    }
    // Big session allocations: the session's own big page table (MM_SESSION_SPACE
    // .PoolTrackBigPages), entries laid out as PoolBigPageTable's, POOL_TYPE PagedPoolSession.
    let mut big_table = None;
    let bigs: Vec<(u64, [u8; 4], u64)> = blocks
        .iter()
        .filter(|b| b.big)
        .map(|b| (b.address, b.tag, b.size))
        .collect();
    if !bigs.is_empty() {
        let es = sys.type_size("_POOL_TRACKER_BIG_PAGES")?;
        let table = area.alloc(sys, SESSION_BIG_TABLE_SIZE * es)?;
        let bw = field_widths(sys, "_POOL_TRACKER_BIG_PAGES")?;
        let f = |n: &str| {
            bw.get(n)
                .copied()
                .ok_or_else(|| ForgeError::MissingSymbol(format!("_POOL_TRACKER_BIG_PAGES.{n}")))
        };
        let pool_type = sys.profile.field("_POOL_TRACKER_BIG_PAGES", "PoolType");
        let ptr = u64::from(sys.ptr_size());
        for (i, (va, tag, size)) in bigs.iter().enumerate() {
            let e = table + i as u64 * es;
            let (o, n) = f("Va")?;
            put(sys, e + o, n.min(ptr), *va)?;
            put(sys, e + f("Key")?.0, 4, u64::from(u32::from_le_bytes(*tag)))?;
            let (o, n) = f("NumberOfBytes")?;
            put(sys, e + o, n, *size)?;
            if let Some(pt) = pool_type {
                put_bits(sys, e, pt, PAGED_POOL_SESSION)?;
            }
        }
        let w = field_widths(sys, "_MM_SESSION_SPACE")?;
        let at = |n: &str| {
            w.get(n)
                .map(|&(o, _)| o)
                .ok_or_else(|| ForgeError::MissingSymbol(format!("_MM_SESSION_SPACE.{n}")))
        };
        sys.machine
            .write_ptr(session_space + at("PoolTrackBigPages")?, table)?;
        sys.machine.write_ptr(
            session_space + at("PoolTrackBigPagesSize")?,
            SESSION_BIG_TABLE_SIZE,
        )?;
        sys.machine.write_u32(
            session_space + at("PoolBigEntriesInUse")?,
            bigs.len() as u32,
        )?;
        big_table = Some(table);
    }

    // Counting: outstanding allocations (the blocks where planted), then history pairs.
    // Expansion tags, and tags beyond what the hashed table holds (its last entry stays free),
    // go to the expansion table.
    let mut totals: BTreeMap<[u8; 4], TagStats> = BTreeMap::new();
    if blocks.is_empty() {
        for a in &plan.session {
            totals
                .entry(a.tag)
                .or_default()
                .add(PoolKind::Paged, a.count, 0, a.count * a.bytes);
        }
    } else {
        for b in blocks.iter().filter(|b| b.tag != FREE_TAG || b.allocated) {
            let (frees, bytes) = if b.allocated { (0, b.size) } else { (1, 0) };
            totals
                .entry(b.tag)
                .or_default()
                .add(PoolKind::Paged, 1, frees, bytes);
        }
    }
    for &(tag, n) in &plan.session_history {
        totals.entry(tag).or_default().add(PoolKind::Paged, n, n, 0);
    }
    let mut main: BTreeMap<[u8; 4], TagStats> = BTreeMap::new();
    let mut expansion: BTreeMap<[u8; 4], TagStats> = BTreeMap::new();
    for (tag, s) in &totals {
        if plan.session_expansion_tags.contains(tag) || main.len() as u64 >= entries / 2 {
            expansion.insert(*tag, *s);
        } else {
            main.insert(*tag, *s);
        }
    }
    if expansion.len() as u64 > SESSION_EXPANSION_SIZE {
        return Err(ForgeError::Internal(
            "too many session tags for the expansion table".into(),
        ));
    }
    write_tracker(sys, table, entries, &main, true)?;
    sys.machine.write_ptr(g_table, table)?;
    sys.machine.write_ptr(g_size, entries)?;
    if let Ok(g) = sys.global("ExpSessionPoolTrackTableMask") {
        sys.machine.write_ptr(g, entries - 1)?;
    }
    let mut expansion_va = None;
    if !expansion.is_empty() {
        let va = area.alloc(sys, SESSION_EXPANSION_SIZE * entry)?;
        write_tracker(sys, va, SESSION_EXPANSION_SIZE, &expansion, false)?;
        let w = field_widths(sys, "_MM_SESSION_SPACE")?;
        let at = |n: &str| {
            w.get(n)
                .map(|&(o, _)| o)
                .ok_or_else(|| ForgeError::MissingSymbol(format!("_MM_SESSION_SPACE.{n}")))
        };
        sys.machine
            .write_ptr(session_space + at("PoolTrackTableExpansion")?, va)?;
        sys.machine.write_ptr(
            session_space + at("PoolTrackTableExpansionSize")?,
            SESSION_EXPANSION_SIZE,
        )?;
        expansion_va = Some(va);
    }
    // Every process but System and smss.exe runs in the session.
    let members: Vec<u64> = sys
        .processes
        .iter()
        .filter(|p| p.pid != 4 && p.name != "smss.exe")
        .map(|p| p.eprocess)
        .collect();
    for ep in members {
        sys.machine.write_ptr(ep + session_field, session_space)?;
    }
    Ok(Some(PlantedSession {
        session_space,
        table,
        entries,
        expansion: expansion_va,
        expansion_tags: expansion.keys().copied().collect(),
        totals,
        blocks,
        big_table,
    }))
}
