//! The whole pool analysis of a dump, in one call: tag tables, big pages, classic pool pages,
//! the `!vm` summary, quota charges, and tags mapped to drivers. Each part that cannot be read
//! becomes a `None` plus an error line; the report always says which symbols and layouts it
//! used.

use super::bigpages::{read_big_pages, BigPage, BigPages};
use super::header::HeaderLayout;
use super::pages::{pool_ranges, scan_kernel_space, scan_ranges, Block, PageScan, PoolRange};
use super::segheap::{walk_segment_heap, walk_session_heap, SegLayout, SegmentHeapScan};
use super::session::{
    find_sessions, read_session_big_pages, read_session_tables, session_memory, session_paged_pool,
    SessionInfo, SessionRef,
};
use super::tags::{
    read_tag_tables, sort_tags, SortKey, TableInfo, TagStats, TagTables, TrackerLayout,
};
use super::vm::{
    vm_summary, walk_processes, QuotaAccumulator, QuotaEncoding, QuotaReport, VmSummary,
};
use super::{hex, KernelContext, LayoutSource, PoolKind, PoolType, Tag, TagPattern};
use crate::attribution::{Attributor, Mapping, PoolTagFile, Source};
use crate::dump::{Arch, Dump};
use crate::kernel::{read_kernel, KernelInfo};
use crate::memory::PagingMode;
use crate::symbols::Profile;
use serde::Serialize;
use std::collections::BTreeMap;

/// Most tags searched for in drivers' code bytes (a real system has a few thousand).
pub const MAX_CANDIDATE_TAGS: usize = 20_000;

/// Most blocks kept for a `blocks` listing (the scan itself streams; this bounds the report).
pub const MAX_LISTED_BLOCKS: usize = 5_000_000;

/// The first build whose small pool allocations live in the kernel segment heap (19H1).
pub const SEGMENT_HEAP_BUILD: u32 = 18362;

/// Where the profile came from, as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolsInfo {
    /// "pdb", "isf" or "none".
    pub source: &'static str,
    pub path: Option<String>,
    pub guid: Option<String>,
    pub age: Option<u32>,
    /// Whether the profile's GUID/age equal the kernel image's CodeView record in the dump
    /// (`None` when the dump does not hold it).
    pub matches_kernel: Option<bool>,
}

pub struct AnalyzeOptions<'a> {
    pub profile: Option<&'a Profile>,
    /// "pdb" / "isf" / "none", and the file.
    pub symbols_source: &'static str,
    pub symbols_path: Option<String>,
    pub sort: SortKey,
    pub tag: Option<TagPattern>,
    /// Keep every block (for `pooltriage blocks`).
    pub list_blocks: bool,
    pub pooltag: Option<PoolTagFile>,
    /// Scan loaded drivers' code for tags.
    pub scan_drivers: bool,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedBlock {
    #[serde(flatten)]
    pub block: Block,
    /// The EPROCESS a quota block is charged to (ProcessBilled decoded), when decodable.
    #[serde(serialize_with = "super::hex_opt")]
    pub billed_process: Option<u64>,
    /// "classic", "big", "lfh" or "vs".
    pub source: &'static str,
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
    pub missing_pool_pages: Option<u64>,
    /// The Windows 10 19H1+ kernel segment heap walk (LFH and VS blocks), when there is one.
    pub segment_heap: Option<SegmentHeapScan>,
    /// Only with `list_blocks`: classic, big, LFH and VS blocks matching the filter.
    pub blocks: Option<Vec<ListedBlock>>,
    pub blocks_truncated: bool,
    pub vm: VmSummary,
    pub quota: Option<QuotaReport>,
    pub drivers: Vec<DriverRow>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

pub fn analyze(dump: &Dump, opts: AnalyzeOptions) -> Result<PoolReport, String> {
    let kernel = read_kernel(dump);
    analyze_with_kernel(dump, &kernel, opts)
}

pub fn analyze_with_kernel(
    dump: &Dump,
    kernel: &KernelInfo,
    opts: AnalyzeOptions,
) -> Result<PoolReport, String> {
    analyze_parts(dump, kernel, opts, &mut |_| {}).map(|(r, _)| r)
}

/// One block as the walks find it, handed to [`analyze_parts`]' sink: allocated or free, with
/// the walk that found it and, for a quota-charged block, the decoded EPROCESS it is billed to.
#[derive(Debug, Clone, Copy)]
pub struct SeenBlock<'b> {
    pub block: &'b Block,
    /// "classic", "big", "lfh" or "vs".
    pub source: &'static str,
    pub billed_process: Option<u64>,
}

/// As [`analyze_with_kernel`], and also streams every block the walks find to `sink` (so a
/// caller can aggregate millions of blocks without keeping them) and returns the attributor
/// with its per-module code evidence (call sites) for the caller to report.
pub fn analyze_parts(
    dump: &Dump,
    kernel: &KernelInfo,
    opts: AnalyzeOptions,
    sink: &mut dyn FnMut(SeenBlock),
) -> Result<(PoolReport, Attributor), String> {
    let header = dump.header();
    let mem = dump.kernel_memory().map_err(|e| e.to_string())?;
    let mem = &*mem;
    let kernel_base = kernel.kernel_base.ok_or(
        "the kernel's base address is unknown (no debugger data block and no module list)",
    )?;
    let pointer_size = if header.arch == Arch::X86 { 4 } else { 8 };
    let ctx = KernelContext {
        kernel_base,
        pointer_size,
        build: header.build,
        processors: header.processors,
        profile: opts.profile,
    };
    let mut warnings = Vec::new();
    let mut errors = Vec::new();

    let symbols = symbols_info(&opts, kernel);
    if symbols.matches_kernel == Some(false) {
        warnings.push(
            "the symbols given are not the dump's kernel's (GUID/age differ): layouts and globals may be wrong".into(),
        );
    }

    // Tag tables.
    let ptt_var = kernel
        .kdbg
        .as_ref()
        .and_then(|k| k.get("PoolTrackTable"))
        .filter(|&v| v != 0);
    let mut tables: Option<TagTables> = match read_tag_tables(mem, &ctx, ptt_var) {
        Ok(t) => {
            warnings.extend(t.warnings.iter().cloned());
            Some(t)
        }
        Err(e) => {
            errors.push(format!("tag tables: {e}"));
            None
        }
    };

    // Big pages.
    let big = match read_big_pages(mem, &ctx) {
        Ok(b) => Some(b),
        Err(e) => {
            errors.push(format!("big pages: {e}"));
            None
        }
    };

    // Quota decoding and processes.
    let quota_enc = match QuotaEncoding::for_kernel(mem, &ctx) {
        Ok(q) => Some(q),
        Err(e) => {
            warnings.push(format!("quota: {e}"));
            None
        }
    };
    let head = kernel
        .kdbg
        .as_ref()
        .and_then(|k| k.ps_active_process_head())
        .or(header.ps_active_process_head);
    let processes = match head.map(|h| walk_processes(mem, &ctx, h)) {
        Some(Ok((p, w))) => {
            warnings.extend(w);
            p
        }
        Some(Err(e)) => {
            warnings.push(format!("processes: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    };

    // Session pool: each session's tables through its own page tables (session space).
    let mut sessions = Vec::new();
    let session_layout = TrackerLayout::for_kernel(&ctx);
    let mode = paging_mode(dump);
    let session_refs = match mode {
        Some(_) => find_sessions(mem, &ctx, &processes),
        None => Vec::new(),
    };
    let mut session_big = match mode {
        Some(m) if dump.triage().is_none() => {
            read_session_big_pages(dump.physical(), m, &ctx, &session_refs, &mut warnings)
        }
        _ => None,
    };
    if let (Some(t), Some(layout), Some(mode)) = (tables.as_mut(), session_layout, mode) {
        let refs = &session_refs;
        if !refs.is_empty() {
            let st = read_session_tables(dump.physical(), mode, &ctx, layout, refs);
            warnings.extend(st.warnings.iter().cloned());
            // The per-session read replaces the one through the dump's page tables unless it
            // found nothing where that one found rows (session pages left out of the dump).
            if !st.tables.is_empty() && (st.rows.is_some() || t.session.is_none()) {
                t.tables.retain(|i| i.name != "ExpSessionPoolTrackTable");
                t.tables.extend(st.tables);
                t.session = st.rows;
                sessions = st.sessions;
            }
        }
    }

    // Classic pool pages.
    let layout = HeaderLayout::for_kernel(opts.profile, pointer_size, header.build);
    let lookup = |name: &str| -> Option<u64> {
        match kernel.kdbg_values.iter().find(|(n, _)| *n == name) {
            Some(&(_, v)) => Some(v),
            None => ctx.global(name).and_then(|va| mem.read_ptr(va).ok()),
        }
    };
    let ranges = pool_ranges(&lookup, pointer_size, header.build);
    let mut quota = quota_enc.map(QuotaAccumulator::new);
    let mut listed: Vec<ListedBlock> = Vec::new();
    let mut truncated = false;
    let filter = opts.tag.clone();
    let wanted = |t: Tag| match filter.as_ref() {
        None => true,
        Some(p) => p.matches(t) || p.matches(t.unprotected()),
    };
    let mut big_ranges: Vec<(u64, u64)> = big
        .iter()
        .flat_map(|b| b.entries.iter())
        .map(|e| (e.va & !0xfff, e.va.saturating_add(e.size)))
        .collect();
    big_ranges.sort_unstable();
    big_ranges.dedup_by(|b, a| {
        // merge overlaps so the lookup's binary search stays correct
        if b.0 <= a.1 {
            a.1 = a.1.max(b.1);
            true
        } else {
            false
        }
    });
    // Segment heap (19H1+): walked first so that its ranges are kept out of the classic scan.
    let segment_heap = if header.build < SEGMENT_HEAP_BUILD || dump.triage().is_some() {
        None
    } else if pointer_size != 8 {
        warnings.push("segment heap: only the x64 kernel segment heap is walked".into());
        None
    } else {
        match opts.profile.map(SegLayout::from_profile) {
            None => {
                warnings.push(
                    "segment heap (LFH/VS) could not be walked: it needs the kernel's symbols (ExPoolState, heap layouts)"
                        .into(),
                );
                None
            }
            Some(Err(e)) => {
                errors.push(format!("segment heap: {e}"));
                None
            }
            Some(Ok(seg_layout)) => {
                let mut on_seg_block = |b: &Block, source: &'static str| {
                    if let Some(q) = quota.as_mut() {
                        q.add(b);
                    }
                    sink(SeenBlock {
                        block: b,
                        source,
                        billed_process: billed(quota_enc, b),
                    });
                    if opts.list_blocks && wanted(b.tag) {
                        if listed.len() < MAX_LISTED_BLOCKS {
                            let billed_process = billed(quota_enc, b);
                            listed.push(ListedBlock {
                                block: *b,
                                billed_process,
                                source,
                            });
                        } else {
                            truncated = true;
                        }
                    }
                };
                match walk_segment_heap(mem, &ctx, &seg_layout, &layout, &mut on_seg_block) {
                    Ok(mut s) => {
                        // Each session's segment heap (MM_SESSION_SPACE.HeapState), through
                        // that session's page tables: session space is per session.
                        if let Some(m) = mode {
                            for r in &session_refs {
                                let smem = session_memory(dump.physical(), m, r);
                                match walk_session_heap(
                                    &smem,
                                    &ctx,
                                    &seg_layout,
                                    &layout,
                                    r.session_space,
                                    &mut on_seg_block,
                                ) {
                                    Ok(Some(one)) => s.add(&one),
                                    Ok(None) => {}
                                    Err(e) => warnings.push(format!(
                                        "session segment heap of the session at {:#x}: {e}",
                                        r.session_space
                                    )),
                                }
                            }
                        }
                        if s.heaps == 0 {
                            warnings.push(
                                "segment heap: no valid segment heap found from ExPoolState".into(),
                            );
                        }
                        if let Some(first) = s.problems.first() {
                            warnings.push(format!(
                                "segment heap: {} problem(s), {} page segment(s) and {} subsegment(s) rejected; first: {first}",
                                s.problems.len(),
                                s.segments_invalid,
                                s.subsegments_invalid
                            ));
                        }
                        Some(s)
                    }
                    Err(e) => {
                        errors.push(format!("segment heap: {e}"));
                        None
                    }
                }
            }
        }
    };
    if let Some(s) = &segment_heap {
        big_ranges.extend(s.ranges.iter().copied());
        big_ranges.sort_unstable();
        big_ranges.dedup_by(|b, a| {
            if b.0 <= a.1 {
                a.1 = a.1.max(b.1);
                true
            } else {
                false
            }
        });
    }
    let pages = if dump.triage().is_some() {
        warnings.push("triage dump: pool pages are not captured, no block walk".into());
        None
    } else {
        let mut on_block = |b: &Block| {
            if let Some(q) = quota.as_mut() {
                q.add(b);
            }
            sink(SeenBlock {
                block: b,
                source: "classic",
                billed_process: billed(quota_enc, b),
            });
            if opts.list_blocks && wanted(b.tag) {
                if listed.len() < MAX_LISTED_BLOCKS {
                    let billed_process = billed(quota_enc, b);
                    listed.push(ListedBlock {
                        block: *b,
                        billed_process,
                        source: "classic",
                    });
                } else {
                    truncated = true;
                }
            }
        };
        // Session paged pool (before 19H1: classic pages in each session's range), walked
        // through that session's page tables; kept out of the system walk so that a session
        // mapped in the dump's own page tables is not walked twice.
        let session_pools: Vec<(SessionRef, PoolRange)> = match mode {
            Some(m) if header.build < SEGMENT_HEAP_BUILD => session_refs
                .iter()
                .filter_map(|s| session_paged_pool(dump.physical(), m, &ctx, s).map(|r| (*s, r)))
                .collect(),
            _ => Vec::new(),
        };
        let mut system_skip = big_ranges.clone();
        // Session big allocations have no headers (19H1+ they lie outside any walked range).
        let session_big_ranges: Vec<(u64, u64)> = session_big
            .iter()
            .flat_map(|b| b.entries.iter())
            .map(|e| (e.va & !0xfff, e.va.saturating_add(e.size)))
            .collect();
        if !session_pools.is_empty() || !session_big_ranges.is_empty() {
            system_skip.extend(session_big_ranges);
            system_skip.extend(session_pools.iter().map(|(_, r)| (r.start, r.end)));
            system_skip.sort_unstable();
            system_skip.dedup_by(|b, a| {
                if b.0 <= a.1 {
                    a.1 = a.1.max(b.1);
                    true
                } else {
                    false
                }
            });
        }
        let mut scan = if !ranges.is_empty() {
            Some(scan_ranges(
                mem,
                &layout,
                &ranges,
                &system_skip,
                &mut on_block,
            ))
        } else if header.build >= 9200 {
            // No fixed pool ranges: every mapped kernel page is tried as a classic pool page.
            // 19H1+: the segment heap ranges walked above are skipped here.
            scan_kernel_space(mem, &layout, &system_skip, &mut on_block)
        } else {
            warnings.push(
                "no pool ranges (neither the debugger data block nor the symbols give them): no block walk".into(),
            );
            None
        };
        // Session big allocations lie in session paged pool: their pages have no headers.
        let mut session_skip: Vec<(u64, u64)> = session_big
            .iter()
            .flat_map(|b| b.entries.iter())
            .map(|e| (e.va & !0xfff, e.va.saturating_add(e.size)))
            .collect();
        session_skip.sort_unstable();
        session_skip.dedup_by(|b, a| {
            if b.0 <= a.1 {
                a.1 = a.1.max(b.1);
                true
            } else {
                false
            }
        });
        if let Some(m) = mode {
            for (s, r) in &session_pools {
                let smem = session_memory(dump.physical(), m, s);
                let one = scan_ranges(
                    &smem,
                    &layout,
                    std::slice::from_ref(r),
                    &session_skip,
                    &mut on_block,
                );
                match scan.as_mut() {
                    Some(total) => add_scan(total, &one),
                    None => scan = Some(one),
                }
            }
        }
        scan
    };
    for b in big.iter().chain(session_big.iter()) {
        for e in &b.entries {
            let blk = big_block(e, &ranges);
            if let Some(q) = quota.as_mut() {
                if e.process_billed.is_some() {
                    q.add(&blk);
                }
            }
            sink(SeenBlock {
                block: &blk,
                source: "big",
                billed_process: billed(quota_enc, &blk),
            });
            if opts.list_blocks && wanted(e.tag) {
                if listed.len() < MAX_LISTED_BLOCKS {
                    let billed_process = billed(quota_enc, &blk);
                    listed.push(ListedBlock {
                        block: blk,
                        billed_process,
                        source: "big",
                    });
                } else {
                    truncated = true;
                }
            }
        }
    }

    // Attribution.
    let mut attributor = Attributor::new(opts.pooltag);
    if opts.scan_drivers {
        let mut candidates: Vec<Tag> = tables
            .iter()
            .flat_map(|t| t.tags.iter().chain(t.session.iter().flatten()))
            .map(|s| s.tag)
            .collect();
        candidates.extend(big.iter().flat_map(|b| b.entries.iter().map(|e| e.tag)));
        candidates.sort_unstable();
        candidates.dedup();
        candidates.truncate(MAX_CANDIDATE_TAGS);
        attributor.add_modules(
            mem,
            &kernel.modules.modules,
            &candidates,
            ctx.global("ExAllocatePool"),
        );
        warnings.extend(attributor.warnings.iter().cloned());
    }
    let row = |s: &TagStats| TagRow {
        stats: *s,
        paged_outstanding: s.paged_outstanding(),
        nonpaged_outstanding: s.nonpaged_outstanding(),
        drivers: attributor.mappings(s.tag),
    };
    let rows_of = |v: &[TagStats]| -> Vec<TagRow> {
        let mut v: Vec<TagStats> = v.iter().filter(|s| wanted(s.tag)).copied().collect();
        sort_tags(&mut v, opts.sort);
        v.iter().map(row).collect()
    };
    let tags = tables.as_ref().map(|t| rows_of(&t.tags));
    let session_tags = tables
        .as_ref()
        .and_then(|t| t.session.as_deref())
        .map(rows_of);
    // A driver's row counts its tags in session pool too (a display driver's leak is there).
    let drivers = tags
        .as_deref()
        .map(|t| {
            let mut all = t.to_vec();
            all.extend(session_tags.iter().flatten().cloned());
            driver_rows(&all)
        })
        .unwrap_or_default();

    let vm = vm_summary(
        mem,
        &ctx,
        &kernel.kdbg_values,
        tables.as_ref().map(|t| &t.tags[..]),
    );
    warnings.extend(vm.warnings.iter().cloned());

    if let Some(b) = session_big.as_mut() {
        if opts.tag.is_some() {
            b.entries.retain(|e| wanted(e.tag));
        }
    }
    let mut big_out = big;
    if let Some(b) = big_out.as_mut() {
        if opts.tag.is_some() {
            b.entries.retain(|e| wanted(e.tag));
        }
        for e in b.entries.iter_mut().filter(|e| e.pool == PoolKind::Unknown) {
            e.pool = big_block(e, &ranges).pool;
        }
    }
    let report = PoolReport {
        schema_version: 1,
        dump: DumpSummary {
            format: dump.format().as_str(),
            arch: header.arch.as_str(),
            build: header.build,
            kernel_base,
        },
        symbols,
        layouts: Layouts {
            pool_header: layout.source,
            tag_table: tables.as_ref().map(|t| t.layout_source),
            big_pages: big_out.as_ref().map(|b| b.layout_source),
        },
        sort: match opts.sort {
            SortKey::PagedBytes => "paged",
            SortKey::NonpagedBytes => "nonpaged",
            SortKey::Allocs => "allocs",
        },
        tag_filter: opts.tag.as_ref().map(|p| p.to_string()),
        tags,
        session_tags,
        sessions,
        tag_tables: tables
            .as_ref()
            .map(|t| t.tables.clone())
            .unwrap_or_default(),
        missing_pool_pages: pages
            .as_ref()
            .map(|p| p.missing_pool_pages + segment_heap.as_ref().map_or(0, |s| s.missing_pages)),
        segment_heap,
        pages,
        big_pages: big_out,
        session_big_pages: session_big,
        blocks: opts.list_blocks.then_some(listed),
        blocks_truncated: truncated,
        vm,
        quota: quota.map(|q| q.finish(&processes)),
        drivers,
        warnings,
        errors,
    };
    Ok((report, attributor))
}

/// Adds a session pool walk's page counts to the system walk's.
fn add_scan(total: &mut PageScan, one: &PageScan) {
    total.pages_in_ranges += one.pages_in_ranges;
    total.pages_valid += one.pages_valid;
    total.pages_invalid += one.pages_invalid;
    total.pages_big += one.pages_big;
    total.pages_unmapped += one.pages_unmapped;
    total.missing_pool_pages += one.missing_pool_pages;
    total.truncated |= one.truncated;
    for e in &one.invalid_examples {
        if total.invalid_examples.len() < 20 {
            total.invalid_examples.push(e.clone());
        }
    }
}

/// The dump's paging mode, for reading through a process's own page tables.
fn paging_mode(dump: &Dump) -> Option<PagingMode> {
    let h = dump.header();
    if dump.triage().is_some() {
        return None;
    }
    match (h.arch, h.pae) {
        (Arch::X64, _) => Some(PagingMode::X64),
        (Arch::X86, true) => Some(PagingMode::X86Pae),
        (Arch::X86, false) => Some(PagingMode::X86),
        (Arch::Arm64, _) => None,
    }
}

/// The decoded EPROCESS of a quota-charged block.
fn billed(enc: Option<QuotaEncoding>, b: &Block) -> Option<u64> {
    let raw = b
        .process_billed
        .filter(|_| b.allocated && b.pool_type.quota)?;
    Some(enc?.decode(raw, b.address))
}

/// A big allocation as a block. XP's entries record no pool type: the pool range that holds the
/// address says which pool, else it is unknown.
fn big_block(e: &BigPage, ranges: &[PoolRange]) -> Block {
    let pool = match e.pool {
        PoolKind::Unknown => ranges
            .iter()
            .find(|r| (r.start..r.end).contains(&e.va))
            .map_or(PoolKind::Unknown, |r| r.kind),
        k => k,
    };
    let pool_type = e.pool_type.unwrap_or(PoolType {
        raw: 0,
        kind: pool,
        session: false,
        quota: false,
    });
    Block {
        address: e.va,
        size: e.size,
        tag: e.tag,
        pool_type,
        pool,
        allocated: true,
        process_billed: e.process_billed.filter(|&v| v != 0),
    }
}

fn symbols_info(opts: &AnalyzeOptions, kernel: &KernelInfo) -> SymbolsInfo {
    let cv = kernel
        .kernel_module()
        .and_then(|m| m.pe.as_ref())
        .and_then(|pe| pe.codeview.as_ref());
    SymbolsInfo {
        source: opts.symbols_source,
        path: opts.symbols_path.clone(),
        guid: opts.profile.map(|p| p.guid.clone()),
        age: opts.profile.map(|p| p.age),
        matches_kernel: match (opts.profile, cv) {
            (Some(p), Some(cv)) => Some(p.guid.eq_ignore_ascii_case(&cv.guid) && p.age == cv.age),
            _ => None,
        },
    }
}

/// Modules whose code allocates with a tag (or, for "None", calls ExAllocatePool), with the
/// outstanding bytes of those tags.
fn driver_rows(rows: &[TagRow]) -> Vec<DriverRow> {
    let mut by_module: BTreeMap<String, (Vec<Tag>, u64, Vec<Tag>)> = BTreeMap::new();
    for r in rows {
        let owners: Vec<&str> = r
            .drivers
            .iter()
            .filter(|m| {
                matches!(
                    m.source,
                    Source::DriverCodeAllocation | Source::DriverCallsUntaggedAllocator
                )
            })
            .filter_map(|m| m.module.as_deref())
            .collect();
        for o in &owners {
            let e = by_module.entry(o.to_string()).or_default();
            if !e.0.contains(&r.stats.tag) {
                e.0.push(r.stats.tag);
            }
            e.1 =
                e.1.saturating_add(r.stats.paged_bytes)
                    .saturating_add(r.stats.nonpaged_bytes);
            if owners.len() > 1 && !e.2.contains(&r.stats.tag) {
                e.2.push(r.stats.tag);
            }
        }
    }
    let mut out: Vec<DriverRow> = by_module
        .into_iter()
        .map(|(module, (tags, bytes, shared_tags))| DriverRow {
            module,
            tags,
            bytes,
            shared_tags,
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.module.cmp(&b.module)));
    out
}
