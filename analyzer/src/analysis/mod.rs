//! `pooltriage analyze`: the whole pool analysis turned into the answer a support engineer
//! needs ([`crate::report::analysis::AnalysisReport`]): which driver is eating which pool, and
//! where in its code it allocates.
//!
//! The pool engine ([`crate::pool::analyze::analyze_parts`]) reads the tag tables, walks every
//! block (streamed into [`blocks::BlockAggregator`], bounded memory) and scans the drivers'
//! code ([`crate::attribution`]); this module joins the three per driver and per tag, names the
//! call sites (with the driver's PDB when the symbol path finds it), and [`verdict`] decides.

pub mod blocks;
pub mod progress;
pub mod verdict;

use crate::attribution::{AllocSite, Attributor, Mapping, Source};
use crate::dump::Dump;
use crate::kernel::{KernelInfo, Module};
use crate::pool::analyze::{analyze_parts, PoolReport, TagRow};
use crate::pool::{AnalyzeOptions, PoolKind, Tag};
use crate::report::analysis::*;
use crate::report::hex::Hex;
use crate::report::time::filetime_to_rfc3339;
use crate::symbols::resolve::{resolve_modules, ResolveOptions, SymbolStatus, Symbolizer};
use crate::symbols::store::SymbolStore;
use blocks::{keep_largest, BlockAggregator, TagAggregate};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// What `analyze` needs beyond the pool engine's options.
pub struct AnalysisOptions<'a> {
    pub pool: AnalyzeOptions<'a>,
    /// Where to look up drivers' PDBs for call-site function names; `None`: no lookups.
    pub symbol_store: Option<&'a SymbolStore>,
    /// Stop starting PDB lookups after this instant.
    pub symbol_deadline: Option<Instant>,
    /// The generator string ("pooltriage 0.1.0").
    pub generator: String,
}

/// Runs the analysis. Never fails: what cannot be read becomes `errors` and, when nothing about
/// pool could be read, a `not-analyzable` verdict.
pub fn analyze_dump(dump: &Dump, kernel: &KernelInfo, opts: AnalysisOptions) -> AnalysisReport {
    analyze_dump_with_progress(dump, kernel, opts, &mut |_| {})
}

/// As [`analyze_dump`], calling `progress` as it enters each of its stages
/// ([`progress::Stage::ReadingPool`], then [`progress::Stage::Attributing`]).
pub fn analyze_dump_with_progress(
    dump: &Dump,
    kernel: &KernelInfo,
    opts: AnalysisOptions,
    progress: &mut dyn FnMut(progress::Stage),
) -> AnalysisReport {
    let header = dump.header();
    let symbols = AnalysisSymbols {
        source: opts.pool.symbols_source.to_string(),
        path: opts.pool.symbols_path.clone(),
        guid: opts.pool.profile.map(|p| p.guid.clone()),
        age: opts.pool.profile.map(|p| p.age),
        matches_kernel: None,
    };
    let mut report = AnalysisReport {
        schema_version: ANALYSIS_SCHEMA_VERSION,
        kind: ANALYSIS_KIND.to_string(),
        generator: opts.generator.clone(),
        dump: AnalysisDump {
            format: dump.format().as_str().to_string(),
            dump_type: header.dump_type,
            arch: header.arch.as_str().to_string(),
            pae: header.pae,
            build: header.build,
            processors: header.processors,
            system_time: header.system_time.and_then(filetime_to_rfc3339),
            file_size: dump.file_size(),
            kernel_base: kernel.kernel_base.map(Hex),
        },
        bugcheck: bugcheck(kernel),
        symbols,
        verdict: verdict::not_analyzable("the analysis did not run".into()),
        pools: Vec::new(),
        drivers: Vec::new(),
        tags: Vec::new(),
        session_tags: None,
        sessions: Vec::new(),
        blocks: BlockTotals::default(),
        quota: None,
        modules: Vec::new(),
        warnings: kernel.warnings.clone(),
        errors: Vec::new(),
    };
    let mut agg = BlockAggregator::default();
    let store = opts.symbol_store;
    let deadline = opts.symbol_deadline;
    progress(progress::Stage::ReadingPool);
    let parts = analyze_parts(dump, kernel, opts.pool, &mut |b| agg.add(b));
    let (pool, attributor) = match parts {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("pool analysis: {e}"));
            report.modules = modules(kernel, &BTreeMap::new());
            report.verdict =
                verdict::not_analyzable(format!("the pool analysis could not start: {e}"));
            return report;
        }
    };
    if agg.tags_overflow > 0 {
        report.warnings.push(format!(
            "{} blocks of more than {} distinct tags counted only in the totals",
            agg.tags_overflow,
            blocks::MAX_BLOCK_TAGS
        ));
    }
    progress(progress::Stage::Attributing);
    fill(
        &mut report,
        dump,
        kernel,
        &pool,
        &attributor,
        &agg,
        store,
        deadline,
    );
    report.verdict = verdict::decide(&report);
    report
}

#[allow(clippy::too_many_arguments)]
fn fill(
    report: &mut AnalysisReport,
    dump: &Dump,
    kernel: &KernelInfo,
    pool: &PoolReport,
    attributor: &Attributor,
    agg: &BlockAggregator,
    store: Option<&SymbolStore>,
    deadline: Option<Instant>,
) {
    report.symbols.matches_kernel = pool.symbols.matches_kernel;
    report.warnings.extend(pool.warnings.iter().cloned());
    report.errors.extend(pool.errors.iter().cloned());
    report.pools = pools(pool);
    report.tags = pool
        .tags
        .as_deref()
        .map(|rows| tag_reports(rows, agg))
        .unwrap_or_default();
    if pool.tags.is_none() && !agg.tags.is_empty() {
        report.warnings.push(
            "the tag tables could not be read: tag figures below come from the block walk (allocated blocks only)"
                .into(),
        );
        report.tags = tags_from_blocks(agg, attributor);
    }
    // Block figures by tag: the walk includes each session's pool (classic pages before 19H1,
    // its segment heap after; a tag used in both pools shows the blocks of both).
    report.session_tags = pool
        .session_tags
        .as_deref()
        .map(|rows| tag_reports(rows, agg))
        .filter(|v| !v.is_empty());
    report.sessions = pool
        .sessions
        .iter()
        .map(|s| AnalysisSession {
            session_id: s.session_id,
            mm_session_space: Hex(s.mm_session_space),
            tags: s.tags,
            paged_bytes: s.paged_bytes,
            nonpaged_bytes: s.nonpaged_bytes,
        })
        .collect();
    report.blocks = block_totals(pool, agg, dump);
    report.quota = pool.quota.as_ref().map(|q| QuotaSummary {
        processes: q
            .processes
            .iter()
            .map(|p| QuotaProcess {
                pid: p.pid,
                name: p.name.clone(),
                eprocess: Hex(p.eprocess),
                blocks: p.blocks,
                bytes: p.bytes,
            })
            .collect(),
        uncharged_blocks: q.uncharged_blocks,
        uncharged_bytes: q.uncharged_bytes,
    });
    let mods = &kernel.modules.modules;
    let in_use_total = {
        let v: Vec<u64> = report.pools.iter().map(|p| p.in_use).collect();
        (v.len() == 2)
            .then(|| v.iter().sum::<u64>())
            .filter(|&t| t > 0)
    };
    // Session tags after the system ones: a driver's row counts both, each tag marked.
    let mut all_tags = report.tags.clone();
    let session_from = all_tags.len();
    all_tags.extend(report.session_tags.iter().flatten().cloned());
    let mut drivers = driver_reports(&all_tags, session_from, agg, attributor, mods, in_use_total);
    // Function names for call sites: the drivers' PDBs through the symbol path.
    let mut statuses_by_module: BTreeMap<String, SymbolStatus> = BTreeMap::new();
    if let Some(store) = store {
        let wanted: Vec<Module> = mods
            .iter()
            .filter(|m| {
                drivers
                    .iter()
                    .any(|d| d.module == m.name && !d.call_sites.is_empty())
            })
            .cloned()
            .collect();
        let statuses = resolve_modules(
            store,
            &wanted,
            ResolveOptions {
                workers: 8,
                deadline,
            },
        );
        let mut sym = Symbolizer::new(&wanted, &statuses, None);
        for d in drivers.iter_mut() {
            for c in d.call_sites.iter_mut() {
                c.symbol = sym.name(c.address.0).filter(|n| n.named).map(|n| n.symbol);
            }
        }
        for (m, s) in wanted.iter().zip(statuses) {
            statuses_by_module.insert(m.name.clone(), s);
        }
    }
    drivers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.module.cmp(&b.module)));
    report.drivers = drivers;
    report.modules = modules(kernel, &statuses_by_module);
}

fn bugcheck(kernel: &KernelInfo) -> AnalysisBugcheck {
    let b = &kernel.bugcheck;
    let base = b
        .name
        .as_ref()
        .map_or(b.code & !0x1000_0000, |n| n.base_code);
    AnalysisBugcheck {
        code: Hex(u64::from(b.code)),
        name: b.name.as_ref().map(|n| n.name.clone()),
        params: [0, 1, 2, 3].map(|i| Hex(b.params.get(i).map_or(0, |p| p.value))),
        pool_related: POOL_BUGCHECKS.contains(&base),
        faulting: b.faulting.as_ref().and_then(|f| {
            crate::kernel::bugcheck::module_offset(f.address, &kernel.modules.modules)
        }),
    }
}

fn pools(pool: &PoolReport) -> Vec<PoolGauge> {
    let vm = &pool.vm;
    let gauge = |name: PoolName,
                 in_use: &Option<crate::pool::vm::Figure>,
                 max: &Option<crate::pool::vm::Figure>,
                 commit: Option<&crate::pool::vm::Figure>| {
        let in_use = in_use.as_ref()?;
        let max = max.as_ref().map(|f| f.bytes).filter(|&m| m > 0);
        let used_fraction = max.map(|m| in_use.bytes as f64 / m as f64);
        Some(PoolGauge {
            pool: name,
            in_use: in_use.bytes,
            max,
            commit: commit.map(|f| f.bytes),
            used_fraction,
            near_exhaustion: near_exhaustion(name, in_use.bytes, max),
            source: in_use.source.clone(),
        })
    };
    [
        gauge(
            PoolName::Paged,
            &vm.paged_in_use,
            &vm.paged_max,
            vm.paged_commit.as_ref(),
        ),
        gauge(
            PoolName::Nonpaged,
            &vm.nonpaged_in_use,
            &vm.nonpaged_max,
            None,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn owner(m: &Mapping) -> TagOwner {
    TagOwner {
        module: m.module.clone(),
        source: m.source,
        description: m.description.clone(),
    }
}

fn tag_blocks(a: &TagAggregate) -> TagBlocks {
    let get = |s: BlockSource| a.by_source.get(&s).copied().unwrap_or_default();
    TagBlocks {
        count: a.count,
        bytes: a.bytes,
        paged_bytes: a.paged_bytes,
        nonpaged_bytes: a.nonpaged_bytes,
        classic: get(BlockSource::Classic),
        big: get(BlockSource::Big),
        lfh: get(BlockSource::Lfh),
        vs: get(BlockSource::Vs),
        quota_bytes: a.quota_bytes,
        quota_processes: {
            let mut v: Vec<QuotaShare> = a
                .quota_by_process
                .iter()
                .map(|(&ep, &(blocks, bytes))| QuotaShare {
                    eprocess: Hex(ep),
                    blocks,
                    bytes,
                })
                .collect();
            v.sort_by(|x, y| y.bytes.cmp(&x.bytes).then(x.eprocess.cmp(&y.eprocess)));
            v
        },
        sizes: a
            .sizes
            .iter()
            .map(|(&size, &count)| SizeCount { size, count })
            .collect(),
    }
}

/// Tags with outstanding bytes, biggest first.
fn tag_reports(rows: &[TagRow], agg: &BlockAggregator) -> Vec<TagReport> {
    let mut out: Vec<TagReport> = rows
        .iter()
        .filter(|r| r.stats.paged_bytes > 0 || r.stats.nonpaged_bytes > 0)
        .map(|r| {
            let s = &r.stats;
            TagReport {
                tag: s.tag.to_string(),
                paged_allocs: s.paged_allocs,
                paged_frees: s.paged_frees,
                paged_bytes: s.paged_bytes,
                nonpaged_allocs: s.nonpaged_allocs,
                nonpaged_frees: s.nonpaged_frees,
                nonpaged_bytes: s.nonpaged_bytes,
                paged_outstanding: r.paged_outstanding,
                nonpaged_outstanding: r.nonpaged_outstanding,
                owners: r.drivers.iter().map(owner).collect(),
                blocks: agg.tags.get(&s.tag).map(tag_blocks),
            }
        })
        .collect();
    sort_tags(&mut out);
    out
}

fn sort_tags(v: &mut [TagReport]) {
    v.sort_by(|a, b| {
        (b.paged_bytes.saturating_add(b.nonpaged_bytes))
            .cmp(&a.paged_bytes.saturating_add(a.nonpaged_bytes))
            .then(a.tag.cmp(&b.tag))
    });
}

/// Without tag tables: one row per tag of the block walk (allocated blocks only, so frees are
/// unknown and reported as 0).
fn tags_from_blocks(agg: &BlockAggregator, attributor: &Attributor) -> Vec<TagReport> {
    let mut out: Vec<TagReport> = agg
        .tags
        .iter()
        .map(|(tag, a)| {
            let paged_share = a.paged_count;
            TagReport {
                tag: tag.to_string(),
                paged_allocs: paged_share,
                paged_frees: 0,
                paged_bytes: a.paged_bytes,
                nonpaged_allocs: a.count.saturating_sub(paged_share),
                nonpaged_frees: 0,
                nonpaged_bytes: a.nonpaged_bytes,
                paged_outstanding: paged_share,
                nonpaged_outstanding: a.count.saturating_sub(paged_share),
                owners: attributor.mappings(*tag).iter().map(owner).collect(),
                blocks: Some(tag_blocks(a)),
            }
        })
        .collect();
    sort_tags(&mut out);
    out
}

fn block_totals(pool: &PoolReport, agg: &BlockAggregator, dump: &Dump) -> BlockTotals {
    let get = |s: BlockSource| agg.totals.get(&s).copied().unwrap_or_default();
    let missing = pool.missing_pool_pages.unwrap_or(0);
    let seg_ok = pool.dump.build < crate::pool::analyze::SEGMENT_HEAP_BUILD
        || pool
            .segment_heap
            .as_ref()
            .is_some_and(|s| !s.truncated && s.problems.is_empty());
    BlockTotals {
        classic: get(BlockSource::Classic),
        big: get(BlockSource::Big),
        lfh: get(BlockSource::Lfh),
        vs: get(BlockSource::Vs),
        free_blocks: agg.free_blocks,
        missing_pool_pages: missing,
        complete: dump.triage().is_none()
            && pool.pages.as_ref().is_some_and(|p| !p.truncated)
            && pool.big_pages.is_some()
            && missing == 0
            && seg_ok,
    }
}

/// Is this mapping evidence that the module's own code allocates with the tag?
fn allocates(m: &Mapping) -> bool {
    matches!(
        m.source,
        Source::DriverCodeAllocation | Source::DriverCallsUntaggedAllocator
    )
}

/// `tags[session_from..]` are session pool's.
fn driver_reports(
    tags: &[TagReport],
    session_from: usize,
    agg: &BlockAggregator,
    attributor: &Attributor,
    mods: &[Module],
    in_use_total: Option<u64>,
) -> Vec<DriverReport> {
    // module -> its tags (index into `tags`) and the evidence for each.
    let mut by_module: BTreeMap<String, Vec<(usize, Source)>> = BTreeMap::new();
    let mut owners_of: Vec<BTreeSet<String>> = vec![BTreeSet::new(); tags.len()];
    for (i, t) in tags.iter().enumerate() {
        for o in &t.owners {
            let Some(module) = o.module.as_deref() else {
                continue;
            };
            let code = allocates(&Mapping {
                module: None,
                description: None,
                source: o.source,
                count: 0,
                line: None,
                address: None,
            });
            // A pooltag-file mapping counts when it names a loaded module.
            let named_loaded = o.source == Source::PoolTagFile
                && mods.iter().any(|m| m.name.eq_ignore_ascii_case(module));
            if !(code || named_loaded) {
                continue;
            }
            let name = mods
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(module))
                .map_or(module.to_string(), |m| m.name.clone());
            let e = by_module.entry(name.clone()).or_default();
            if !e.iter().any(|(j, _)| *j == i) {
                e.push((i, o.source));
                if code {
                    owners_of[i].insert(name);
                }
            }
        }
    }
    let mut out = Vec::new();
    for (module, list) in by_module {
        let m = mods.iter().find(|m| m.name == module);
        let mut d = DriverReport {
            module: module.clone(),
            base: m.map(|m| Hex(m.base)),
            size: m.map(|m| u64::from(m.size)),
            path: m.map(|m| m.path.clone()),
            paged_bytes: 0,
            nonpaged_bytes: 0,
            session_bytes: 0,
            bytes: 0,
            allocations: 0,
            share_of_pool: None,
            tags: Vec::new(),
            call_sites: Vec::new(),
            call_sites_truncated: false,
            blocks: DriverBlocks::default(),
        };
        let mut largest = Vec::new();
        let mut tag_set: BTreeSet<Tag> = BTreeSet::new();
        for (i, source) in list {
            let Some(t) = tags.get(i) else { continue };
            let session = i >= session_from;
            if session {
                d.session_bytes = d
                    .session_bytes
                    .saturating_add(t.paged_bytes)
                    .saturating_add(t.nonpaged_bytes);
            } else {
                d.paged_bytes = d.paged_bytes.saturating_add(t.paged_bytes);
                d.nonpaged_bytes = d.nonpaged_bytes.saturating_add(t.nonpaged_bytes);
            }
            d.allocations = d
                .allocations
                .saturating_add(t.paged_outstanding)
                .saturating_add(t.nonpaged_outstanding);
            let shared_with = owners_of
                .get(i)
                .map(|s| s.iter().filter(|o| **o != module).cloned().collect())
                .unwrap_or_default();
            d.tags.push(DriverTag {
                tag: t.tag.clone(),
                paged_bytes: t.paged_bytes,
                nonpaged_bytes: t.nonpaged_bytes,
                allocations: t.paged_outstanding.saturating_add(t.nonpaged_outstanding),
                evidence: source,
                shared_with,
                session,
            });
            if session && d.tags.iter().any(|x| x.tag == t.tag && !x.session) {
                // The same tag in system pool: its blocks are counted there once.
                continue;
            }
            // Printable tags parse back from their text; an escaped one is looked up by text.
            let found = match tag_of(&t.tag) {
                Some(tag) => agg.tags.get_key_value(&tag),
                None => agg.tags.iter().find(|(tag, _)| tag.to_string() == t.tag),
            };
            if let Some((tag, a)) = found {
                tag_set.insert(*tag);
                d.blocks.count += a.count;
                d.blocks.bytes = d.blocks.bytes.saturating_add(a.bytes);
                for b in &a.largest {
                    keep_largest(&mut largest, *b, MAX_LARGEST_BLOCKS);
                }
            } else if let Some(tag) = tag_of(&t.tag) {
                tag_set.insert(tag);
            }
        }
        let system = d.paged_bytes.saturating_add(d.nonpaged_bytes);
        d.bytes = system.saturating_add(d.session_bytes);
        // Share of system pool in use (session pool has no !vm figure here).
        d.share_of_pool = in_use_total.map(|t| system as f64 / t as f64);
        d.blocks.largest = largest
            .iter()
            .map(|b| BlockRef {
                address: Hex(b.address),
                size: b.size,
                tag: b.tag.to_string(),
                pool: pool_name(b.pool),
                source: b.source,
            })
            .collect();
        if let Some((sites, truncated)) = attributor.sites(&module) {
            d.call_sites_truncated = truncated;
            d.call_sites = sites
                .iter()
                .filter(|s| tag_set.contains(&s.tag))
                .map(|s| call_site(s, &module, m))
                .collect();
        }
        out.push(d);
    }
    out
}

/// The tag a report string names (printable tags only; a `\xNN` escape does not parse back).
fn tag_of(s: &str) -> Option<Tag> {
    if s.contains('\\') {
        return None;
    }
    <[u8; 4]>::try_from(s.as_bytes()).ok().map(Tag)
}

pub(crate) fn pool_name(k: PoolKind) -> Option<PoolName> {
    match k {
        PoolKind::Paged => Some(PoolName::Paged),
        PoolKind::Nonpaged => Some(PoolName::Nonpaged),
        _ => None,
    }
}

fn call_site(s: &AllocSite, module: &str, m: Option<&Module>) -> CallSite {
    let offset = match m {
        Some(m) => format!("{module}+{:#x}", s.address.wrapping_sub(m.base)),
        None => format!("{:#x}", s.address),
    };
    CallSite {
        address: Hex(s.address),
        offset,
        symbol: None,
        tag: s.tag.to_string(),
        kind: if s.untagged_call {
            CallSiteKind::UntaggedAllocatorCall
        } else {
            CallSiteKind::TagArgument
        },
        pool_type: s.paged.map(|p| {
            if p {
                PoolName::Paged
            } else {
                PoolName::Nonpaged
            }
        }),
        size: s.size,
        callee: s.callee.map(str::to_string),
    }
}

fn modules(kernel: &KernelInfo, statuses: &BTreeMap<String, SymbolStatus>) -> Vec<AnalysisModule> {
    kernel
        .modules
        .modules
        .iter()
        .map(|m| {
            let cv = m.pe.as_ref().and_then(|pe| pe.codeview.as_ref());
            AnalysisModule {
                name: m.name.clone(),
                base: Hex(m.base),
                size: u64::from(m.size),
                timestamp: m.timestamp.map(|t| Hex(u64::from(t))),
                pdb: cv.map(|cv| ModulePdb {
                    name: cv.pdb_name().to_string(),
                    guid: cv.guid.clone(),
                    age: cv.age,
                }),
                symbols: statuses
                    .get(&m.name)
                    .map_or("not looked up", |s| s.status.as_str())
                    .to_string(),
            }
        })
        .collect()
}
