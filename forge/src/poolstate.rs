//! The kernel's pool bookkeeping, written to agree with the blocks the pool regions planted:
//! the tag tracker tables (PoolTrackTable of PoolTrackTableSize entries; Windows 8+ one table
//! per processor in ExPoolTagTables[] plus PoolTrackTableExpansion), the big page table
//! (PoolBigPageTable / PoolBigPageTableSize), the !vm variables and their debugger-data-block
//! entries; and the truth file's `pool` section (schema in /work/notes/issue4.md and
//! docs/forge.md).
//!
//! Every layout comes from the profile: entry sizes, field offsets, the big-page PoolType
//! bitfield of 17763+. Field widths follow from the next field's offset (the tracker entries
//! are plain integers; padding is zero).

use crate::pool::{Allocation, PoolKind, FREE_TAG};
use crate::space::{Paging, PAGE};
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use analyzer::symbols::Field;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Entries of each tag tracker table (a power of two, as the kernel sizes it); more for
/// systems with many tags (at least twice the tags, so probing stays short).
pub const TRACK_TABLE_SIZE: u64 = 2048;

fn track_table_size(tags: usize) -> u64 {
    (2 * tags as u64).next_power_of_two().max(TRACK_TABLE_SIZE)
}
/// Entries of the expansion table (Windows 8+).
pub const EXPANSION_SIZE: u64 = 16;
/// Entries of the big page table: page aligned, a multiple of 0x1000 entries (MemProcFS).
pub const BIG_TABLE_SIZE: u64 = 0x1000;

/// Per-tag counters as the tracker tables hold them (and the truth reports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagStats {
    pub paged_allocs: u64,
    pub paged_frees: u64,
    pub paged_bytes: u64,
    pub nonpaged_allocs: u64,
    pub nonpaged_frees: u64,
    pub nonpaged_bytes: u64,
}

impl TagStats {
    pub(crate) fn add(&mut self, kind: PoolKind, allocs: u64, frees: u64, bytes: u64) {
        match kind {
            PoolKind::Paged => {
                self.paged_allocs += allocs;
                self.paged_frees += frees;
                self.paged_bytes += bytes;
            }
            PoolKind::NonPaged => {
                self.nonpaged_allocs += allocs;
                self.nonpaged_frees += frees;
                self.nonpaged_bytes += bytes;
            }
        }
    }
}

/// A freed big allocation still listed in the big page table (Va bit 0 set).
#[derive(Debug, Clone)]
pub struct FreedBig {
    pub va: u64,
    pub tag: [u8; 4],
    pub size: u64,
    pub kind: PoolKind,
}

/// A scenario driver and the tags it holds pool with, for the truth's `drivers`.
#[derive(Debug, Clone)]
pub struct DriverLeak {
    pub module: String,
    pub tags: Vec<[u8; 4]>,
    /// The forge made it leak (false: it holds pool as a working driver does).
    pub leak: bool,
}

impl DriverLeak {
    /// A driver the scenario makes leak `tags`.
    pub fn leaking(module: &str, tags: Vec<[u8; 4]>) -> Self {
        DriverLeak {
            module: module.into(),
            tags,
            leak: true,
        }
    }

    /// A driver that holds pool with `tags` and leaks none of it.
    pub fn holding(module: &str, tags: Vec<[u8; 4]>) -> Self {
        DriverLeak {
            leak: false,
            ..DriverLeak::leaking(module, tags)
        }
    }
}

/// What a scenario adds beyond the planted blocks.
#[derive(Debug, Clone, Default)]
pub struct PoolPlan {
    /// Earlier allocate/free pairs no longer visible in memory: (tag, kind, count).
    pub history: Vec<([u8; 4], PoolKind, u64)>,
    pub freed_big: Vec<FreedBig>,
    /// Tags counted in the expansion table instead of the per-CPU tables (Windows 8+).
    pub expansion_tags: Vec<[u8; 4]>,
    pub drivers: Vec<DriverLeak>,
    /// MmMaximumNonPagedPoolInBytes (or MiState's nonpaged maximum) as a percentage of the
    /// nonpaged bytes in use: a scenario about a pool near exhaustion sets it, because it plants
    /// kilobytes where a real leak holds megabytes, so only a maximum sized to the pool's use (a
    /// small pool) shows the pool as full as the dumps customers send. `None` = what Windows
    /// gives the machine ([`crate::maxima`]).
    pub nonpaged_max_percent_of_use: Option<u64>,
    /// MmSizeOfPagedPoolInBytes (or MiState's paged maximum) the same way.
    pub paged_max_percent_of_use: Option<u64>,
    /// Leave the truth's `blocks` out (null) and give `block_counts` instead: for millions of
    /// blocks the list would be larger than the dump's pool.
    pub omit_blocks: bool,
    /// Leave out of the dump up to `.1` pool pages holding blocks of tag `.0` (classic pages
    /// or one-page LFH subsegments): their blocks leave the truth's `blocks`, and they count
    /// in `missing_pool_pages`; the tag tables still count them.
    pub omit_pages_of: Option<([u8; 4], usize)>,
    /// Session paged pool (PagedPoolSession) outstanding per tag, counted in the session's own
    /// tag table ([`crate::session`]); ignored on kernels without one (XP).
    pub session: Vec<SessionAlloc>,
    /// Session allocate/free pairs no longer in memory: (tag, count).
    pub session_history: Vec<([u8; 4], u64)>,
    /// Session tags counted in the session's expansion table (MM_SESSION_SPACE
    /// .PoolTrackTableExpansion) instead of ExpSessionPoolTrackTable.
    pub session_expansion_tags: Vec<[u8; 4]>,
}

/// `count` outstanding session paged allocations of `bytes` each (as the tracker counts them).
#[derive(Debug, Clone, Copy)]
pub struct SessionAlloc {
    pub tag: [u8; 4],
    pub count: u64,
    pub bytes: u64,
}

/// One counting event for the tables: an allocation (maybe freed since).
struct Event {
    tag: [u8; 4],
    kind: PoolKind,
    bytes: u64,
    freed: bool,
}

/// A tag as the truth spells it (and WinDbg-like readers print it): printable ASCII as is, a
/// backslash doubled, any other byte as `\xNN` (XP/7 object tags such as 'Dri\xf6' carry
/// PROTECTED_POOL in their last byte).
pub(crate) fn tag_str(t: &[u8; 4]) -> String {
    t.iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

/// The tag without PROTECTED_POOL (bit 31): what the kernel counts in its tag tables
/// (ExpInsertPoolTracker clears the bit) while the POOL_HEADER keeps it.
pub(crate) fn unprotected(t: [u8; 4]) -> [u8; 4] {
    [t[0], t[1], t[2], t[3] & 0x7f]
}

/// The kernel's tag hash (ReactOS `ExpComputeHashForTag`, windows-internals.md).
pub fn tag_hash(tag: [u8; 4], mask: u64) -> u64 {
    let r = 40543u64.wrapping_mul(u64::from(u32::from_le_bytes(tag)));
    mask & (r ^ (r >> 32))
}

/// Offsets and widths of the fields of a structure, widths from the next field's offset.
pub(crate) fn field_widths(
    sys: &System,
    ty: &str,
) -> Result<BTreeMap<String, (u64, u64)>, ForgeError> {
    let t = sys
        .profile
        .types
        .get(ty)
        .ok_or_else(|| ForgeError::MissingSymbol(ty.to_string()))?;
    let mut plain: Vec<(u64, &String)> = t
        .fields
        .iter()
        .filter(|(_, f)| f.bit_length.is_none())
        .map(|(n, f)| (f.offset, n))
        .collect();
    plain.sort();
    let mut out = BTreeMap::new();
    for (i, (off, name)) in plain.iter().enumerate() {
        let next = plain
            .iter()
            .skip(i + 1)
            .map(|(o, _)| *o)
            .find(|o| o > off)
            .unwrap_or(t.size);
        out.insert((*name).clone(), (*off, (next - off).min(8)));
    }
    Ok(out)
}

pub(crate) fn put(sys: &mut System, at: u64, width: u64, v: u64) -> Result<(), ForgeError> {
    let b = v.to_le_bytes();
    sys.machine.write(at, &b[..width as usize])
}

pub(crate) fn put_bits(sys: &mut System, at: u64, f: Field, v: u64) -> Result<(), ForgeError> {
    let (Some(pos), Some(len)) = (f.bit_position, f.bit_length) else {
        return put(sys, at + f.offset, 4, v);
    };
    let cur = sys
        .machine
        .read(at + f.offset, 4)
        .ok_or(ForgeError::Unmapped(at + f.offset))?;
    let mut w = u32::from_le_bytes([cur[0], cur[1], cur[2], cur[3]]);
    let mask = ((1u64 << len) - 1) as u32;
    w = (w & !(mask << pos)) | (((v as u32) & mask) << pos);
    sys.machine.write_u32(at + f.offset, w)
}

/// A VA area for the kernel's pool tables, below the nonpaged pool region.
fn tables_area(sys: &System) -> u64 {
    sys.spec.plan.nonpaged_pool - 0x200_0000
}

pub(crate) struct TableWriter {
    next: u64,
}

impl TableWriter {
    pub(crate) fn alloc(&mut self, sys: &mut System, bytes: u64) -> Result<u64, ForgeError> {
        let va = self.next;
        let len = bytes.div_ceil(PAGE) * PAGE;
        sys.machine.map_range(va, len)?;
        self.next = va + len + PAGE;
        Ok(va)
    }
}

pub(crate) fn write_tracker(
    sys: &mut System,
    table: u64,
    entries: u64,
    stats: &BTreeMap<[u8; 4], TagStats>,
    hashed: bool,
) -> Result<(), ForgeError> {
    let size = sys.type_size("_POOL_TRACKER_TABLE")?;
    let w = field_widths(sys, "_POOL_TRACKER_TABLE")?;
    let get = |n: &str| {
        w.get(n)
            .copied()
            .ok_or_else(|| ForgeError::MissingSymbol(format!("_POOL_TRACKER_TABLE.{n}")))
    };
    let mut used = vec![false; entries as usize];
    for (i, (tag, s)) in stats.iter().enumerate() {
        // Hashed tables: linear probing from the tag's hash, the last entry left as the
        // overflow bucket; the expansion table is searched linearly, filled in order.
        let mut idx = if hashed {
            tag_hash(*tag, entries - 1)
        } else {
            i as u64
        };
        let mut probes = 0;
        while used.get(idx as usize).copied().unwrap_or(true) || (hashed && idx == entries - 1) {
            idx = (idx + 1) % entries;
            probes += 1;
            if probes > entries {
                return Err(ForgeError::Internal("tag table full".into()));
            }
        }
        used[idx as usize] = true;
        let e = table + idx * size;
        let (o, n) = get("Key")?;
        put(sys, e + o, n.min(4), u64::from(u32::from_le_bytes(*tag)))?;
        for (field, v) in [
            ("NonPagedAllocs", s.nonpaged_allocs),
            ("NonPagedFrees", s.nonpaged_frees),
            ("NonPagedBytes", s.nonpaged_bytes),
            ("PagedAllocs", s.paged_allocs),
            ("PagedFrees", s.paged_frees),
            ("PagedBytes", s.paged_bytes),
        ] {
            let (o, n) = get(field)?;
            put(sys, e + o, n, v)?;
        }
    }
    Ok(())
}

/// Writes the bookkeeping for everything planted and returns the truth's `pool` value.
pub fn finish(sys: &mut System, plan: &PoolPlan) -> Result<Value, ForgeError> {
    let ptr = u64::from(sys.ptr_size());
    {
        let System {
            machine,
            nonpaged,
            paged,
            ..
        } = sys;
        nonpaged.close_page(machine)?;
        paged.close_page(machine)?;
    }
    let mut blocks: Vec<Allocation> = std::mem::take(&mut sys.nonpaged.allocations);
    blocks.append(&mut std::mem::take(&mut sys.paged.allocations));

    // ---- Pages left out of the dump.
    let mut omitted = std::collections::BTreeSet::new();
    if let Some((tag, n)) = plan.omit_pages_of {
        for b in blocks
            .iter()
            .filter(|b| b.tag == tag && (b.source == "classic" || b.source == "lfh"))
        {
            if omitted.len() >= n {
                break;
            }
            omitted.insert(b.address & !(PAGE - 1));
        }
        for &page in &omitted {
            sys.machine
                .omit_page(page)
                .ok_or(ForgeError::Unmapped(page))?;
        }
    }
    let on_omitted = |b: &Allocation| -> bool {
        !b.big
            && (b.address / PAGE..(b.address + b.size).div_ceil(PAGE))
                .any(|p| omitted.contains(&(p * PAGE)))
    };

    // ---- Counting events: every allocation still in memory, freed blocks, history, freed big.
    let mut events = Vec::new();
    for b in &blocks {
        if b.tag == FREE_TAG && !b.allocated {
            continue; // the free rest of a page was never an allocation
        }
        events.push(Event {
            tag: unprotected(b.tag),
            kind: b.kind,
            bytes: b.size,
            freed: !b.allocated,
        });
    }
    for f in &plan.freed_big {
        events.push(Event {
            tag: f.tag,
            kind: f.kind,
            bytes: f.size,
            freed: true,
        });
    }

    let per_cpu = sys.profile.global("ExPoolTagTables").is_some();
    let cpus = if per_cpu { sys.processors as usize } else { 1 };
    let mut tables: Vec<BTreeMap<[u8; 4], TagStats>> = vec![BTreeMap::new(); cpus];
    let mut expansion: BTreeMap<[u8; 4], TagStats> = BTreeMap::new();
    let mut totals: BTreeMap<[u8; 4], TagStats> = BTreeMap::new();
    let expansion_set: std::collections::BTreeSet<[u8; 4]> =
        plan.expansion_tags.iter().copied().collect();
    for (i, e) in events.iter().enumerate() {
        let (frees, bytes) = if e.freed { (1, 0) } else { (0, e.bytes) };
        totals
            .entry(e.tag)
            .or_default()
            .add(e.kind, 1, frees, bytes);
        let t = if per_cpu && expansion_set.contains(&e.tag) {
            &mut expansion
        } else {
            &mut tables[i % cpus]
        };
        t.entry(e.tag).or_default().add(e.kind, 1, frees, bytes);
    }
    // Allocate/free pairs no longer in memory: spread over the CPUs, each pair on one CPU.
    for &(tag, kind, n) in &plan.history {
        totals.entry(tag).or_default().add(kind, n, n, 0);
        if per_cpu && expansion_set.contains(&tag) {
            expansion.entry(tag).or_default().add(kind, n, n, 0);
        } else {
            for (cpu, t) in tables.iter_mut().enumerate() {
                let share = n / cpus as u64 + u64::from((cpu as u64) < n % cpus as u64);
                if share > 0 {
                    t.entry(tag).or_default().add(kind, share, share, 0);
                }
            }
        }
    }

    // ---- Tag tables.
    let entry = sys.type_size("_POOL_TRACKER_TABLE")?;
    let table_size = track_table_size(totals.len());
    let mut area = TableWriter {
        next: tables_area(sys),
    };
    let mut table_vas = Vec::new();
    for t in &tables {
        let va = area.alloc(sys, table_size * entry)?;
        write_tracker(sys, va, table_size, t, true)?;
        table_vas.push(va);
    }
    let first = table_vas.first().copied().unwrap_or(0);
    let g = sys.global("PoolTrackTable")?;
    sys.machine.write_ptr(g, first)?;
    let g = sys.global("PoolTrackTableSize")?;
    sys.machine.write_ptr(g, table_size)?;
    if let Ok(g) = sys.global("ExPoolTagTables") {
        for (cpu, va) in table_vas.iter().enumerate() {
            sys.machine.write_ptr(g + cpu as u64 * ptr, *va)?;
        }
    }
    if let (Ok(gx), Ok(gs)) = (
        sys.global("PoolTrackTableExpansion"),
        sys.global("PoolTrackTableExpansionSize"),
    ) {
        if !expansion.is_empty() {
            let va = area.alloc(sys, EXPANSION_SIZE * entry)?;
            write_tracker(sys, va, EXPANSION_SIZE, &expansion, false)?;
            sys.machine.write_ptr(gx, va)?;
            sys.machine.write_ptr(gs, EXPANSION_SIZE)?;
        }
    }

    // ---- Session pool's own tag table (Vista+ x64 profiles; XP has none).
    let session = crate::session::plant(sys, plan, &mut area)?;

    // ---- Big page table.
    let big_size = sys.type_size("_POOL_TRACKER_BIG_PAGES")?;
    let big_table = area.alloc(sys, BIG_TABLE_SIZE * big_size)?;
    let bw = field_widths(sys, "_POOL_TRACKER_BIG_PAGES")?;
    let big_pool_type = sys.profile.field("_POOL_TRACKER_BIG_PAGES", "PoolType");
    let mut used = vec![false; BIG_TABLE_SIZE as usize];
    let mut big_truth = Vec::new();
    // (va, tag, bytes, pool, freed, billed EPROCESS)
    type BigEntry = (u64, [u8; 4], u64, PoolKind, bool, Option<u64>);
    let bigs: Vec<BigEntry> = blocks
        .iter()
        .filter(|b| b.big)
        .map(|b| {
            (
                b.address,
                b.tag,
                b.size,
                b.kind,
                false,
                b.quota.map(|q| q.eprocess),
            )
        })
        .chain(
            plan.freed_big
                .iter()
                .map(|f| (f.va, f.tag, f.size, f.kind, true, None)),
        )
        .collect();
    for (va, tag, size, kind, free, _billed) in &bigs {
        let mut idx = (va >> 12) & (BIG_TABLE_SIZE - 1);
        while used[idx as usize] {
            idx = (idx + 1) % BIG_TABLE_SIZE;
        }
        used[idx as usize] = true;
        let e = big_table + idx * big_size;
        let (o, n) = bw
            .get("Va")
            .copied()
            .ok_or_else(|| ForgeError::MissingSymbol("_POOL_TRACKER_BIG_PAGES.Va".into()))?;
        put(sys, e + o, n.min(ptr), va | u64::from(*free))?;
        let (o, _) = bw
            .get("Key")
            .copied()
            .ok_or_else(|| ForgeError::MissingSymbol("_POOL_TRACKER_BIG_PAGES.Key".into()))?;
        put(sys, e + o, 4, u64::from(u32::from_le_bytes(*tag)))?;
        if let Some(&(o, n)) = bw.get("NumberOfBytes") {
            put(sys, e + o, n, *size)?;
        } else if let Some(&(o, n)) = bw.get("NumberOfPages") {
            put(sys, e + o, n, size / PAGE)?;
        }
        // POOL_TYPE: NonPagedPool 0, PagedPool 1 (XP's 12-byte entry has no PoolType).
        if let Some(f) = big_pool_type {
            put_bits(sys, e, f, if *kind == PoolKind::Paged { 1 } else { 0 })?;
        }
        big_truth.push(
            json!({ "va": hex(*va), "tag": tag_str(tag), "size": size, "pool_type": kind.as_str(), "free": free }),
        );
    }
    let g = sys.global("PoolBigPageTable")?;
    sys.machine.write_ptr(g, big_table)?;
    let g = sys.global("PoolBigPageTableSize")?;
    sys.machine.write_ptr(g, BIG_TABLE_SIZE)?;

    // ---- !vm variables (XP/7 only: later kernels keep them inside MiState).
    let used_pages = |kind: PoolKind| -> u64 {
        let mut pages = std::collections::BTreeSet::new();
        for b in blocks.iter().filter(|b| b.kind == kind) {
            for p in b.address / PAGE..(b.address + b.size).div_ceil(PAGE) {
                pages.insert(p);
            }
        }
        pages.len() as u64
    };
    let np_pages = used_pages(PoolKind::NonPaged);
    let p_pages = used_pages(PoolKind::Paged);
    let machine = crate::maxima::pool_maxima(sys.spec, sys.memory_size);
    let nonpaged_max = match plan.nonpaged_max_percent_of_use {
        Some(pct) => forced_max(np_pages, pct, VM_NONPAGED_PERCENT),
        None => machine.nonpaged,
    };
    let paged_max = match plan.paged_max_percent_of_use {
        Some(pct) => forced_max(p_pages, pct, VM_PAGED_PERCENT),
        None => machine.paged,
    };
    let np_base = sys.nonpaged.base;
    let p_base = sys.paged.base;
    let vars: [(&str, u64, u64); 8] = [
        ("MmNonPagedPoolStart", 0x110, np_base),
        (
            "MmNonPagedPoolEnd",
            0x118,
            np_base + nonpaged_max.max(0x400_0000),
        ),
        ("MmPagedPoolStart", 0x120, p_base),
        ("MmPagedPoolEnd", 0x128, p_base + paged_max.max(0x400_0000)),
        ("MmMaximumNonPagedPoolInBytes", 0x100, nonpaged_max),
        ("MmSizeOfPagedPoolInBytes", 0x140, paged_max),
        ("MmPagedPoolCommit", 0x170, p_pages),
        ("MmAllocatedNonPagedPool", 0x250, np_pages),
    ];
    let kdbg = sys.kdbg;
    let mut have_vm = true;
    for (name, kdbg_off, value) in vars {
        match sys.global(name) {
            Ok(addr) => {
                sys.machine.write_ptr(addr, value)?;
                let stored = if ptr == 4 && addr & 0x8000_0000 != 0 {
                    addr | 0xffff_ffff_0000_0000
                } else {
                    addr
                };
                sys.machine.write_u64(kdbg + kdbg_off, stored)?;
            }
            Err(_) => {
                if !name.ends_with("Start") && !name.ends_with("End") {
                    have_vm = false;
                }
            }
        }
    }
    // Windows 10 keeps the !vm figures in nt!MiState (_MI_SYSTEM_INFORMATION) instead: plant
    // them there, from the same pages (analyzer::pool::vm reads them by the profile's names).
    let mut mi_state = false;
    if !have_vm {
        if let Some(fields) = mi_state_fields(sys) {
            let values = [p_pages, paged_max / PAGE, np_pages, nonpaged_max / PAGE];
            for (va, v) in fields.into_iter().zip(values) {
                sys.machine.write_u64(va, v)?;
            }
            have_vm = true;
            mi_state = true;
        }
    }
    let track = sys.global("PoolTrackTable")?;
    let stored = if ptr == 4 && track & 0x8000_0000 != 0 {
        track | 0xffff_ffff_0000_0000
    } else {
        track
    };
    sys.machine.write_u64(kdbg + 0x1b8, stored)?;

    // ---- Truth.
    let tags: Vec<Value> = totals
        .iter()
        .map(|(t, s)| {
            json!({ "tag": tag_str(t), "paged_allocs": s.paged_allocs, "paged_frees": s.paged_frees,
                    "paged_bytes": s.paged_bytes, "nonpaged_allocs": s.nonpaged_allocs,
                    "nonpaged_frees": s.nonpaged_frees, "nonpaged_bytes": s.nonpaged_bytes })
        })
        .collect();
    let session_blocks: &[Allocation] = session.as_ref().map_or(&[], |s| &s.blocks[..]);
    let mut block_counts: BTreeMap<String, u64> = BTreeMap::new();
    for b in blocks.iter().chain(session_blocks) {
        *block_counts
            .entry(if b.allocated {
                b.source.to_string()
            } else {
                format!("{}_free", b.source)
            })
            .or_default() += 1;
    }
    let block_truth: Value = if plan.omit_blocks {
        Value::Null
    } else {
        blocks
            .iter()
            .filter(|b| !on_omitted(b))
            .map(|b| {
                let mut v = json!({ "address": hex(b.address), "size": b.size, "tag": tag_str(&b.tag),
                    "pool_type": b.kind.as_str(), "allocated": b.allocated, "source": b.source });
                if let Some(q) = b.quota {
                    v["process_billed"] = json!(hex(q.eprocess));
                }
                v
            })
            .chain(session_blocks.iter().map(|b| {
                json!({ "address": hex(b.address), "size": b.size, "tag": tag_str(&b.tag),
                    "pool_type": b.kind.as_str(), "allocated": b.allocated, "source": b.source, "session": true })
            }))
            .collect()
    };
    let drivers: Vec<Value> = plan
        .drivers
        .iter()
        .map(|d| {
            let system: u64 = d.tags.iter().filter_map(|t| totals.get(t)).map(|s| s.paged_bytes + s.nonpaged_bytes).sum();
            let in_session: u64 = d
                .tags
                .iter()
                .filter_map(|t| session.as_ref().and_then(|s| s.totals.get(t)))
                .map(|s| s.paged_bytes + s.nonpaged_bytes)
                .sum();
            let leaked = system + in_session;
            json!({ "module": d.module, "tags": d.tags.iter().map(tag_str).collect::<Vec<_>>(), "leaked_bytes": leaked, "leak": d.leak })
        })
        .collect();
    let vm = if have_vm {
        // MiState has no paged-pool commit figure: null there.
        let paged_commit = if mi_state {
            Value::Null
        } else {
            json!(p_pages * PAGE)
        };
        json!({ "paged_in_use": p_pages * PAGE, "nonpaged_in_use": np_pages * PAGE, "paged_max": paged_max,
                "nonpaged_max": nonpaged_max, "paged_commit": paged_commit })
    } else {
        // Windows 8.x keeps them where the profiles we have do not describe (no MiState.Vs).
        Value::Null
    };
    let _ = sys.spec.paging == Paging::X64;
    Ok(json!({
        "tags": tags,
        "session_tags": session.as_ref().map(|s| s.rows()),
        "session": session.as_ref().map(|s| s.truth()),
        "big_pages": big_truth,
        "blocks": block_truth,
        "block_counts": block_counts,
        "missing_pool_pages": omitted.len(),
        "drivers": drivers,
        "vm": vm,
        "tag_tables": { "per_cpu": per_cpu, "tables": table_vas.len(), "entries": table_size,
                        "expansion_tags": plan.expansion_tags.iter().map(tag_str).collect::<Vec<_>>() },
    }))
}

/// WinDbg `!vm`'s "Excessive ... Pool Usage" thresholds: nonpaged pool above 80% of its
/// maximum, paged pool above 95%.
const VM_NONPAGED_PERCENT: u64 = 80;
const VM_PAGED_PERCENT: u64 = 95;

/// A forced maximum in bytes: `pct`% of the `pages` in use, rounded up to a page; when that
/// rounding leaves the pool at or below `!vm`'s `threshold` (a pool of fewer than about twenty
/// pages), the pages in use: the pool is exactly full.
fn forced_max(pages: u64, pct: u64, threshold: u64) -> u64 {
    let max = (pages * pct).div_ceil(100);
    let max = if pages * 100 > max * threshold {
        max
    } else {
        pages
    };
    max * PAGE
}

/// Where MiState keeps AllocatedPagedPool, SizeOfPagedPoolInPages, AllocatedNonPagedPool and
/// MaximumNonPagedPoolInPages (pages each), when the profile has MiState and those fields
/// (the 17763, 19041 and 20348 ISFs).
fn mi_state_fields(sys: &System) -> Option<[u64; 4]> {
    let base = sys.global("MiState").ok()?;
    let off = |ty: &str, f: &str| sys.offset(ty, f).ok();
    let vs = base + off("_MI_SYSTEM_INFORMATION", "Vs")?;
    let pools = base + off("_MI_SYSTEM_INFORMATION", "Pools")?;
    Some([
        vs + off("_MI_VISIBLE_STATE", "PagedPoolInfo")?
            + off("_MM_PAGED_POOL_INFO", "AllocatedPagedPool")?,
        vs + off("_MI_VISIBLE_STATE", "SizeOfPagedPoolInPages")?,
        pools + off("_MI_POOL_STATE", "AllocatedNonPagedPool")?,
        vs + off("_MI_VISIBLE_STATE", "MaximumNonPagedPoolInPages")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ReactOS ExpComputeHashForTag: (40543 * Tag) folded, masked.
    #[test]
    fn forced_maxima_put_the_pool_above_the_vm_threshold() {
        for pages in 1..400 {
            for (pct, threshold) in [(102, VM_PAGED_PERCENT), (110, VM_NONPAGED_PERCENT)] {
                let max = forced_max(pages, pct, threshold) / PAGE;
                assert!(
                    max >= pages && pages * 100 > max * threshold,
                    "{pages} {pct}"
                );
            }
        }
        assert_eq!(forced_max(300, 102, VM_PAGED_PERCENT), 306 * PAGE);
        assert_eq!(forced_max(11, 102, VM_PAGED_PERCENT), 11 * PAGE);
    }

    #[test]
    fn tag_hash_matches_the_kernel_formula() {
        let t = u32::from_le_bytes(*b"Leak") as u64;
        let r = 40543 * t;
        assert_eq!(tag_hash(*b"Leak", 2047), (r ^ (r >> 32)) & 2047);
        assert!(tag_hash(*b"Proc", 2047) < 2048);
    }
}
