//! The whole pool of a dump, read in one call: tag tables (system and session), big pages,
//! the Windows 10 segment heap, classic pool pages, quota charges and the `!vm` figures.
//! Every block the walks find is streamed to the caller's sink (a busy server has millions);
//! what cannot be read becomes a [`PartFailure`] or a warning, never a panic or a guess.
//!
//! [`scan_pool`] runs the stages in a fixed order, one function each: the segment heap is
//! walked before the classic pages so that its ranges are kept out of the classic scan, and
//! each session's pool is read through that session's own page tables (session space is
//! mapped per session).

use super::bigpages::{read_big_pages, BigPage, BigPages};
use super::header::HeaderLayout;
use super::page_states::PageStates;
use super::pages::{pool_ranges, scan_kernel_space, scan_ranges, Block, PageScan, PoolRange};
use super::pte_info::{kernel_pte_format, PteInfo};
use super::segheap::{walk_segment_heap, walk_session_heap, SegLayout, SegmentHeapScan};
use super::session::{
    find_sessions, read_session_big_pages, read_session_tables, session_memory, session_paged_pool,
    SessionInfo, SessionRef,
};
use super::tags::{read_tag_tables, TagTables, TrackerLayout};
use super::verifier::{read_verifier, VerifierTracking};
use super::vm::{
    vm_summary, walk_processes, Process, QuotaAccumulator, QuotaEncoding, QuotaReport, VmSummary,
};
use super::vm_sessions::session_figures;
use super::{BlockSource, KernelContext, PoolError, PoolKind, PoolType};
use crate::dump::{Arch, Dump};
use crate::kernel::KernelInfo;
use crate::memory::{PagingMode, PteFormat, VirtualMemory};
use crate::symbols::Profile;

/// The first build whose small pool allocations live in the kernel segment heap (19H1).
pub const SEGMENT_HEAP_BUILD: u32 = 18362;

/// One block as the walks find it: allocated or free, with the walk that found it and, for a
/// quota-charged block, the decoded EPROCESS it is billed to.
#[derive(Debug, Clone, Copy)]
pub struct SeenBlock<'b> {
    pub block: &'b Block,
    pub source: BlockSource,
    pub billed_process: Option<u64>,
}

/// A part of the pool the scan reads on its own, and can fail to read on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolPart {
    TagTables,
    BigPages,
    SegmentHeap,
    Verifier,
}

impl PoolPart {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolPart::TagTables => "tag tables",
            PoolPart::BigPages => "big pages",
            PoolPart::SegmentHeap => "segment heap",
            PoolPart::Verifier => "Driver Verifier pool tracking",
        }
    }
}

impl std::fmt::Display for PoolPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A part of the pool that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {error}")]
pub struct PartFailure {
    pub part: PoolPart,
    pub error: PoolError,
}

/// Everything the scan read. Warnings are in the order they were met; the `!vm` summary keeps
/// its own (`vm.warnings`).
#[derive(Debug, Clone)]
pub struct PoolScan {
    pub kernel_base: u64,
    /// The POOL_HEADER layout the walks used.
    pub header_layout: HeaderLayout,
    pub tables: Option<TagTables>,
    /// Each session whose tag tables were read through its own page tables.
    pub sessions: Vec<SessionInfo>,
    pub big_pages: Option<BigPages>,
    /// Every session's big page table, merged; `None` when no session has one.
    pub session_big_pages: Option<BigPages>,
    pub pages: Option<PageScan>,
    pub segment_heap: Option<SegmentHeapScan>,
    /// The pool ranges the classic walk used (empty where the kernel has none).
    pub ranges: Vec<PoolRange>,
    pub vm: VmSummary,
    pub quota: Option<QuotaReport>,
    /// Driver Verifier's record of each verified driver's outstanding allocations and their
    /// callers (`!verifier 3`); `None` when the verifier does not track pool, without the
    /// kernel's symbols, and on triage dumps.
    pub verifier: Option<VerifierTracking>,
    /// The PTE layout the walks read invalid entries with; `None` on triage dumps.
    pub pte: Option<PteInfo>,
    pub warnings: Vec<String>,
    pub failures: Vec<PartFailure>,
    /// Part of the pool was not walked because it needs the kernel's symbols.
    pub needs_symbols: bool,
}

impl PoolScan {
    /// Committed pool pages that could not be read (classic and segment heap): not in the
    /// dump, paged out, or behind a prototype PTE.
    pub fn missing_pool_pages(&self) -> Option<u64> {
        self.pages.as_ref().map(|p| {
            p.missing_pool_pages + self.segment_heap.as_ref().map_or(0, |s| s.missing_pages)
        })
    }

    /// The classic and segment-heap walks' pages by state; `None` when no page was walked.
    pub fn page_states(&self) -> Option<PageStates> {
        let mut all = self.pages.as_ref()?.page_states;
        if let Some(s) = &self.segment_heap {
            all.add(&s.page_states);
        }
        Some(all)
    }

    /// A big allocation's pool: the entry's, else (XP records none) the pool range that
    /// holds its address.
    pub fn big_block(&self, e: &BigPage) -> Block {
        big_block(e, &self.ranges)
    }
}

/// What every stage reads through.
struct Kernel<'a> {
    dump: &'a Dump,
    kernel: &'a KernelInfo,
    mem: Box<dyn VirtualMemory + 'a>,
    ctx: KernelContext<'a>,
    /// For reading through a session process's own page tables (the kernel's PTE layout);
    /// `None` for triage dumps.
    paging: Option<PteFormat>,
    pte: Option<PteInfo>,
    layout: HeaderLayout,
}

/// Warnings and failures, in the order met.
#[derive(Default)]
struct Notes {
    warnings: Vec<String>,
    failures: Vec<PartFailure>,
    needs_symbols: bool,
}

impl Notes {
    fn fail(&mut self, part: PoolPart, error: PoolError) {
        self.failures.push(PartFailure { part, error });
    }
}

/// Hands each block to the caller's sink and to the quota accumulator.
struct BlockStream<'s> {
    sink: &'s mut dyn FnMut(SeenBlock),
    quota_enc: Option<QuotaEncoding>,
    quota: Option<QuotaAccumulator>,
}

impl BlockStream<'_> {
    fn block(&mut self, b: &Block, source: BlockSource) {
        if let Some(q) = self.quota.as_mut() {
            q.add(b);
        }
        let billed_process = billed(self.quota_enc, b);
        (self.sink)(SeenBlock {
            block: b,
            source,
            billed_process,
        });
    }
}

/// Reads the pool of `dump` with `profile`'s layouts (or the built-in ones), streaming every
/// block to `sink`. `Err` only when nothing can be read at all: no kernel memory, or no
/// kernel base.
pub fn scan_pool(
    dump: &Dump,
    kernel: &KernelInfo,
    profile: Option<&Profile>,
    sink: &mut dyn FnMut(SeenBlock),
) -> Result<PoolScan, PoolError> {
    let pool = read_pool(dump, kernel, profile)?;
    let walk = pool.walk(sink);
    Ok(pool.finish(walk))
}

/// The pool's tables, read before any block is walked: what the walks need, and what a caller
/// may want first (the tags to search the drivers' code for). [`PoolReader::walk`] walks the
/// blocks; it can run more than once (the same blocks in the same order).
pub struct PoolReader<'a> {
    k: Kernel<'a>,
    notes: Notes,
    verifier: Option<VerifierTracking>,
    /// The verifier's warnings, reported after the walk's (as the report has always ordered
    /// them).
    verifier_notes: Notes,
    tables: Option<TagTables>,
    big: Option<BigPages>,
    session_big: Option<BigPages>,
    sessions: Vec<SessionInfo>,
    session_refs: Vec<SessionRef>,
    quota_enc: Option<QuotaEncoding>,
    processes: Vec<Process>,
    ranges: Vec<PoolRange>,
}

/// What one walk of the blocks found.
pub struct BlockWalk {
    segment_heap: Option<SegmentHeapScan>,
    pages: Option<PageScan>,
    quota: Option<QuotaAccumulator>,
    notes: Notes,
}

/// Reads the pool's tables (tag tables, big pages, sessions, processes); `Err` only when
/// nothing can be read at all: no kernel memory, or no kernel base.
pub fn read_pool<'a>(
    dump: &'a Dump,
    kernel: &'a KernelInfo,
    profile: Option<&'a Profile>,
) -> Result<PoolReader<'a>, PoolError> {
    let k = Kernel::new(dump, kernel, profile)?;
    let mut notes = Notes::default();
    if symbols_mismatch(profile, kernel) {
        notes.warnings.push(
            "the symbols given are not the dump's kernel's (GUID/age differ): layouts and globals may be wrong".into(),
        );
    }
    let mut tables = read_tables(&k, &mut notes);
    let big = match read_big_pages(k.mem(), &k.ctx) {
        Ok(b) => Some(b),
        Err(e) => {
            notes.fail(PoolPart::BigPages, e);
            None
        }
    };
    let quota_enc = quota_encoding(&k, &mut notes);
    let processes = processes(&k, &mut notes);
    let session_refs = match k.paging {
        Some(_) => find_sessions(k.mem(), &k.ctx, &processes),
        None => Vec::new(),
    };
    let session_big = match k.paging {
        Some(m) if dump.triage().is_none() => read_session_big_pages(
            dump.physical(),
            m,
            &k.ctx,
            &session_refs,
            &mut notes.warnings,
        ),
        _ => None,
    };
    let sessions = read_sessions(&k, &session_refs, tables.as_mut(), &mut notes);
    let ranges = pool_ranges(&|name| k.lookup(name), k.ctx.pointer_size, k.ctx.build);
    let mut verifier_notes = Notes::default();
    let verifier = read_verifier_tracking(&k, &mut verifier_notes);
    Ok(PoolReader {
        k,
        notes,
        verifier,
        verifier_notes,
        tables,
        big,
        session_big,
        sessions,
        session_refs,
        quota_enc,
        processes,
        ranges,
    })
}

impl<'a> PoolReader<'a> {
    /// The kernel's virtual memory, as the walks read it.
    pub fn memory(&self) -> &dyn VirtualMemory {
        self.k.mem()
    }

    pub fn context(&self) -> &KernelContext<'a> {
        &self.k.ctx
    }

    pub fn tables(&self) -> Option<&TagTables> {
        self.tables.as_ref()
    }

    pub fn big_pages(&self) -> Option<&BigPages> {
        self.big.as_ref()
    }

    /// Driver Verifier's pool tracking, when it is on and readable.
    pub fn verifier(&self) -> Option<&VerifierTracking> {
        self.verifier.as_ref()
    }

    /// The process list (for quota charges and sessions).
    pub fn processes(&self) -> &[Process] {
        &self.processes
    }

    /// Walks every block: the segment heaps (their ranges are then kept out of the classic
    /// walk), the classic pool pages, then the big allocations; each goes to `sink`.
    pub fn walk(&self, sink: &mut dyn FnMut(SeenBlock)) -> BlockWalk {
        let k = &self.k;
        let mut notes = Notes::default();
        let mut stream = BlockStream {
            sink,
            quota_enc: self.quota_enc,
            quota: self.quota_enc.map(QuotaAccumulator::new),
        };
        let mut skip = merged(
            self.big
                .iter()
                .flat_map(|b| b.entries.iter())
                .map(page_span),
        );
        let segment_heap = walk_segment_heaps(k, &self.session_refs, &mut stream, &mut notes);
        if let Some(s) = &segment_heap {
            skip = merged(skip.into_iter().chain(s.ranges.iter().copied()));
        }
        let pages = walk_classic_pages(
            k,
            &self.session_refs,
            &self.ranges,
            &skip,
            self.session_big.as_ref(),
            &mut stream,
            &mut notes,
        );
        let big = self.big.iter().chain(self.session_big.iter());
        for e in big.flat_map(|b| b.entries.iter()) {
            let blk = big_block(e, &self.ranges);
            if let Some(q) = stream.quota.as_mut() {
                if e.process_billed.is_some() {
                    q.add(&blk);
                }
            }
            (stream.sink)(SeenBlock {
                block: &blk,
                source: BlockSource::Big,
                billed_process: billed(self.quota_enc, &blk),
            });
        }
        BlockWalk {
            segment_heap,
            pages,
            quota: stream.quota,
            notes,
        }
    }

    /// The scan's figures: the tables, `walk`'s results and the `!vm` summary.
    pub fn finish(self, walk: BlockWalk) -> PoolScan {
        let k = &self.k;
        let mut vm = vm_summary(
            k.mem(),
            &k.ctx,
            &k.kernel.kdbg_values,
            self.tables.as_ref().map(|t| &t.tags[..]),
        );
        if let Some(f) = k.paging {
            let phys = k.dump.physical();
            vm.set_sessions(session_figures(phys, f, &k.ctx, &self.session_refs));
        }
        let mut notes = self.notes;
        notes.warnings.extend(swizzle_warning(k, &walk));
        for more in [walk.notes, self.verifier_notes] {
            notes.warnings.extend(more.warnings);
            notes.failures.extend(more.failures);
            notes.needs_symbols |= more.needs_symbols;
        }
        PoolScan {
            kernel_base: k.ctx.kernel_base,
            header_layout: k.layout,
            tables: self.tables,
            sessions: self.sessions,
            big_pages: self.big,
            session_big_pages: self.session_big,
            pages: walk.pages,
            segment_heap: walk.segment_heap,
            ranges: self.ranges,
            vm,
            quota: walk.quota.map(|q| q.finish(&self.processes)),
            verifier: self.verifier,
            pte: k.pte.clone(),
            warnings: notes.warnings,
            failures: notes.failures,
            needs_symbols: notes.needs_symbols,
        }
    }
}

impl<'a> Kernel<'a> {
    /// The kernel's memory, read with its own PTE layout and swizzle mask where the profile
    /// gives them (read first through the built-in layout: the kernel image's data is valid
    /// memory whatever the layout).
    fn new(
        dump: &'a Dump,
        kernel: &'a KernelInfo,
        profile: Option<&'a Profile>,
    ) -> Result<Self, PoolError> {
        let header = dump.header();
        let kernel_base = kernel.kernel_base.ok_or(PoolError::NoKernelBase)?;
        let pointer_size = if header.arch == Arch::X86 { 4 } else { 8 };
        let no_memory = |e: crate::dump::DumpError| PoolError::NoKernelMemory(e.to_string());
        let mut mem = dump.kernel_memory().map_err(no_memory)?;
        let (paging, pte) = match paging_mode(dump) {
            Some(mode) => {
                let (f, info) = kernel_pte_format(&*mem, profile, kernel_base, mode);
                mem = dump.kernel_memory_with(Some(f)).map_err(no_memory)?;
                (Some(f), Some(info))
            }
            None => (None, None),
        };
        Ok(Kernel {
            dump,
            kernel,
            mem,
            ctx: KernelContext {
                kernel_base,
                pointer_size,
                build: header.build,
                processors: header.processors,
                profile,
            },
            paging,
            pte,
            layout: HeaderLayout::for_kernel(profile, pointer_size, header.build),
        })
    }

    fn mem(&self) -> &dyn VirtualMemory {
        &*self.mem
    }

    /// A kernel variable's value: the debugger data block's, else read at its symbol.
    fn lookup(&self, name: &str) -> Option<u64> {
        match self.kernel.kdbg_values.iter().find(|(n, _)| *n == name) {
            Some(&(_, v)) => Some(v),
            None => self
                .ctx
                .global(name)
                .and_then(|va| self.mem().read_ptr(va).ok()),
        }
    }

    fn is_triage(&self) -> bool {
        self.dump.triage().is_some()
    }
}

fn symbols_mismatch(profile: Option<&Profile>, kernel: &KernelInfo) -> bool {
    let cv = kernel
        .kernel_module()
        .and_then(|m| m.pe.as_ref())
        .and_then(|pe| pe.codeview.as_ref());
    match (profile, cv) {
        (Some(p), Some(cv)) => !(p.guid.eq_ignore_ascii_case(&cv.guid) && p.age == cv.age),
        _ => false,
    }
}

/// Driver Verifier's pool tracking. Nothing is claimed without the kernel's symbols (these
/// structures have no built-in layout) or from a triage dump (it does not hold the tracker
/// pages: Microsoft's pool-tracking documentation asks for a kernel or complete dump).
fn read_verifier_tracking(k: &Kernel, notes: &mut Notes) -> Option<VerifierTracking> {
    if k.is_triage() || k.ctx.profile.is_none() {
        return None;
    }
    match read_verifier(k.mem(), &k.ctx) {
        Ok(v) => {
            if let Some(v) = &v {
                let stopped = v.work.stopped.iter();
                for w in v.warnings.iter().chain(stopped) {
                    notes.warnings.push(format!("Driver Verifier: {w}"));
                }
            }
            v
        }
        Err(e) => {
            notes.fail(PoolPart::Verifier, e);
            None
        }
    }
}

/// The system tag tables (every processor's and the expansion table).
fn read_tables(k: &Kernel, notes: &mut Notes) -> Option<TagTables> {
    let ptt_var = k
        .kernel
        .kdbg
        .as_ref()
        .and_then(|d| d.get("PoolTrackTable"))
        .filter(|&v| v != 0);
    match read_tag_tables(k.mem(), &k.ctx, ptt_var) {
        Ok(t) => {
            notes.warnings.extend(t.warnings.iter().cloned());
            Some(t)
        }
        Err(e) => {
            notes.fail(PoolPart::TagTables, e);
            None
        }
    }
}

fn quota_encoding(k: &Kernel, notes: &mut Notes) -> Option<QuotaEncoding> {
    match QuotaEncoding::for_kernel(k.mem(), &k.ctx) {
        Ok(q) => Some(q),
        Err(e) => {
            notes.warnings.push(format!("quota: {e}"));
            None
        }
    }
}

/// The process list, for quota charges and sessions.
fn processes(k: &Kernel, notes: &mut Notes) -> Vec<Process> {
    let head = k
        .kernel
        .kdbg
        .as_ref()
        .and_then(|d| d.ps_active_process_head())
        .or(k.dump.header().ps_active_process_head);
    match head.map(|h| walk_processes(k.mem(), &k.ctx, h)) {
        Some(Ok((p, w))) => {
            notes.warnings.extend(w);
            p
        }
        Some(Err(e)) => {
            notes.warnings.push(format!("processes: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// Each session's tag tables through its own page tables. They replace the session table read
/// through the dump's page tables unless they found nothing where that one found rows (session
/// pages left out of the dump).
fn read_sessions(
    k: &Kernel,
    refs: &[SessionRef],
    tables: Option<&mut TagTables>,
    notes: &mut Notes,
) -> Vec<SessionInfo> {
    let (Some(t), Some(layout), Some(mode)) = (tables, TrackerLayout::for_kernel(&k.ctx), k.paging)
    else {
        return Vec::new();
    };
    if refs.is_empty() {
        return Vec::new();
    }
    let st = read_session_tables(k.dump.physical(), mode, &k.ctx, layout, refs);
    notes.warnings.extend(st.warnings.iter().cloned());
    if st.tables.is_empty() || (st.rows.is_none() && t.session.is_some()) {
        return Vec::new();
    }
    t.tables.retain(|i| i.name != "ExpSessionPoolTrackTable");
    t.tables.extend(st.tables);
    t.session = st.rows;
    st.sessions
}

/// The system segment heap (19H1+) and each session's, through that session's page tables.
fn walk_segment_heaps(
    k: &Kernel,
    session_refs: &[SessionRef],
    stream: &mut BlockStream,
    notes: &mut Notes,
) -> Option<SegmentHeapScan> {
    if k.ctx.build < SEGMENT_HEAP_BUILD || k.is_triage() {
        return None;
    }
    if k.ctx.pointer_size != 8 {
        notes
            .warnings
            .push("segment heap: only the x64 kernel segment heap is walked".into());
        return None;
    }
    let Some(profile) = k.ctx.profile else {
        notes.warnings.push(
            "segment heap (LFH/VS) could not be walked: it needs the kernel's symbols (ExPoolState, heap layouts)"
                .into(),
        );
        notes.needs_symbols = true;
        return None;
    };
    let seg_layout = match SegLayout::from_profile(profile) {
        Ok(l) => l,
        Err(e) => {
            notes.fail(PoolPart::SegmentHeap, e);
            return None;
        }
    };
    let mut on_block = |b: &Block, source: BlockSource| stream.block(b, source);
    let mut scan = match walk_segment_heap(k.mem(), &k.ctx, &seg_layout, &k.layout, &mut on_block) {
        Ok(s) => s,
        Err(e) => {
            notes.fail(PoolPart::SegmentHeap, e);
            return None;
        }
    };
    if let Some(m) = k.paging {
        for r in session_refs {
            let smem = session_memory(k.dump.physical(), m, r);
            match walk_session_heap(
                &smem,
                &k.ctx,
                &seg_layout,
                &k.layout,
                r.session_space,
                &mut on_block,
            ) {
                Ok(Some(one)) => scan.add(&one),
                Ok(None) => {}
                Err(e) => notes.warnings.push(format!(
                    "session segment heap of the session at {:#x}: {e}",
                    r.session_space
                )),
            }
        }
    }
    if scan.heaps == 0 {
        notes
            .warnings
            .push("segment heap: no valid segment heap found from ExPoolState".into());
    }
    if let Some(first) = scan.problems.first() {
        notes.warnings.push(format!(
            "segment heap: {} problem(s), {} page segment(s) and {} subsegment(s) rejected; first: {first}",
            scan.problems.len(),
            scan.segments_invalid,
            scan.subsegments_invalid
        ));
    }
    Some(scan)
}

/// Classic pool pages: the system's ranges (or, without fixed ranges, every mapped kernel
/// page), then each session's paged pool range (before 19H1) through that session's page
/// tables, kept out of the system walk so that a session mapped in the dump's own page tables
/// is not walked twice. `skip` are ranges whose pages have no headers (big allocations,
/// segment heap).
fn walk_classic_pages(
    k: &Kernel,
    session_refs: &[SessionRef],
    ranges: &[PoolRange],
    skip: &[(u64, u64)],
    session_big: Option<&BigPages>,
    stream: &mut BlockStream,
    notes: &mut Notes,
) -> Option<PageScan> {
    if k.is_triage() {
        notes
            .warnings
            .push("triage dump: pool pages are not captured, no block walk".into());
        return None;
    }
    let session_pools: Vec<(SessionRef, PoolRange)> = match k.paging {
        Some(m) if k.ctx.build < SEGMENT_HEAP_BUILD => session_refs
            .iter()
            .filter_map(|s| session_paged_pool(k.dump.physical(), m, &k.ctx, s).map(|r| (*s, r)))
            .collect(),
        _ => Vec::new(),
    };
    // Session big allocations lie in session paged pool: their pages have no headers.
    let session_skip = merged(
        session_big
            .iter()
            .flat_map(|b| b.entries.iter())
            .map(page_span),
    );
    let system_skip = if session_pools.is_empty() && session_skip.is_empty() {
        skip.to_vec()
    } else {
        merged(
            skip.iter()
                .copied()
                .chain(session_skip.iter().copied())
                .chain(session_pools.iter().map(|(_, r)| (r.start, r.end))),
        )
    };
    let mut on_block = |b: &Block| stream.block(b, BlockSource::Classic);
    let mut scan = if !ranges.is_empty() {
        Some(scan_ranges(
            k.mem(),
            &k.layout,
            ranges,
            &system_skip,
            &mut on_block,
        ))
    } else if k.ctx.build >= 9200 {
        // No fixed pool ranges: every mapped kernel page is tried as a classic pool page.
        scan_kernel_space(k.mem(), &k.layout, &system_skip, &mut on_block)
    } else {
        notes.warnings.push(
            "no pool ranges (neither the debugger data block nor the symbols give them): no block walk".into(),
        );
        None
    };
    if let Some(m) = k.paging {
        for (s, r) in &session_pools {
            let smem = session_memory(k.dump.physical(), m, s);
            let one = scan_ranges(
                &smem,
                &k.layout,
                std::slice::from_ref(r),
                &session_skip,
                &mut on_block,
            );
            match scan.as_mut() {
                Some(total) => total.add(&one),
                None => scan = Some(one),
            }
        }
    }
    scan
}

/// The pages a big allocation covers, as a half-open range.
fn page_span(e: &BigPage) -> (u64, u64) {
    (e.va & !0xfff, e.va.saturating_add(e.size))
}

/// Sorted, with overlapping ranges merged (the skip lookups binary-search them).
fn merged(ranges: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = ranges.collect();
    v.sort_unstable();
    v.dedup_by(|b, a| {
        if b.0 <= a.1 {
            a.1 = a.1.max(b.1);
            true
        } else {
            false
        }
    });
    v
}

/// Without the kernel's InvalidPteMask a swizzled demand-zero PTE reads as paged out and a
/// swizzled transition PTE as not in the dump: said when the walks counted such pages.
fn swizzle_warning(k: &Kernel, walk: &BlockWalk) -> Option<String> {
    let (info, format) = (k.pte.as_ref()?, k.paging.as_ref()?);
    let mut states = walk
        .pages
        .as_ref()
        .map(|p| p.page_states)
        .unwrap_or_default();
    if let Some(s) = &walk.segment_heap {
        states.add(&s.page_states);
    }
    (info.swizzle_unknown(format) && states.missing() > 0).then(|| {
        format!(
            "{} pool pages counted as paged out or not in the dump without the kernel's InvalidPteMask (no symbols give MiInvalidPteMask or MiState.Hardware.InvalidPteMask): swizzled demand-zero or transition PTEs among them are miscounted",
            states.missing()
        )
    })
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
        previous_size: None,
        tag: e.tag,
        pool_type,
        pool,
        allocated: true,
        process_billed: e.process_billed.filter(|&v| v != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_ranges_merge_and_stay_sorted() {
        let v = merged([(30, 40), (0, 10), (5, 20), (20, 25), (41, 50)].into_iter());
        assert_eq!(v, [(0, 25), (30, 40), (41, 50)]);
    }

    #[test]
    fn a_failure_reads_as_its_part_then_the_reason() {
        let f = PartFailure {
            part: PoolPart::TagTables,
            error: PoolError::NoKernelBase,
        };
        assert!(f.to_string().starts_with("tag tables: "), "{f}");
    }
}
