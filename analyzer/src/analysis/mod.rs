//! `pooltriage analyze`: the whole pool analysis turned into the answer a support engineer
//! needs ([`crate::report::analysis::AnalysisReport`]): which driver is eating which pool, and
//! where in its code it allocates.
//!
//! The stages, one module each: [`input`] opens the dump and finds the kernel's symbols; the
//! pool engine ([`crate::pool::scan_pool`]) reads the tag tables and walks every block
//! (streamed into [`blocks::BlockAggregator`], bounded memory); [`attribute`] scans the
//! drivers' code for the tags; [`tags`] and [`drivers`] join the three per tag and per driver
//! (call sites named with the driver's PDB when the symbol path finds it); [`verdict`] decides.
//!
//! [`run`] is the one entry point the command line and the service's workers use.

pub mod attribute;
pub mod blocks;
pub mod crash;
mod drivers;
pub mod input;
mod naming;
mod overview;
pub mod pool_at;
pub mod pool_report;
pub mod progress;
pub mod provenance;
mod tags;
mod unloaded;
pub mod verdict;

pub use input::{open, Input, InputError, InputOptions};
pub use pool_report::{pool_report, PoolQuery};

use crate::pool::scan::read_pool;
use crate::pool::tags::SortKey;
use crate::pool::{PoolError, PoolScan};
use crate::report::analysis::*;
use crate::report::hex::Hex;
use crate::report::pool::PoolReport;
use crate::report::time::filetime_to_rfc3339;
use blocks::BlockAggregator;
use progress::Stage;
use std::path::Path;
use std::time::Instant;

/// How to analyse, beyond what [`InputOptions`] opens.
#[derive(Debug, Clone)]
pub struct AnalysisOptions {
    /// Scan the loaded drivers' code for tags and call sites.
    pub scan_drivers: bool,
    /// Stop starting driver PDB lookups (call-site names) after this instant.
    pub symbol_deadline: Option<Instant>,
    /// The generator string ("pooltriage 0.1.0").
    pub generator: String,
}

/// Opens `dump_path` and analyses it, calling `progress` as each stage starts. `Err` only
/// when the input cannot be opened; anything the analysis cannot read is in the report.
pub fn run(
    dump_path: &Path,
    input: &InputOptions,
    opts: &AnalysisOptions,
    progress: &mut dyn FnMut(Stage),
) -> Result<AnalysisReport, InputError> {
    let input = open(dump_path, input, progress)?;
    Ok(analyze(&input, opts, progress))
}

/// Analyses an opened dump. Never fails: what cannot be read becomes `errors` and, when
/// nothing about pool could be read, a `not-analyzable` verdict.
pub fn analyze(
    input: &Input,
    opts: &AnalysisOptions,
    progress: &mut dyn FnMut(Stage),
) -> AnalysisReport {
    let mut report = skeleton(input, &opts.generator);
    let mut agg = BlockAggregator::default();
    progress(Stage::ReadingPool);
    let profile = input.profile.as_ref();
    let reader = match read_pool(&input.dump, &input.kernel, profile) {
        Ok(r) => r,
        Err(e) => return not_started(report, input, e, opts.symbol_deadline),
    };
    let attributor = pool_report::attribute_tables(input, &reader, opts.scan_drivers);
    let mut collector = provenance::Collector::new(&attributor, &input.kernel, reader.verifier());
    let mut catcher = crash::pool_address(input).map(pool_at::BlockCatcher::new);
    let walk = reader.walk(&mut |b| {
        if let Some(c) = catcher.as_mut() {
            c.add(&b);
        }
        agg.add(b);
        collector.add(b);
    });
    let traced = provenance::trace(&reader, &input.kernel, profile, collector, &attributor);
    let pool_block = catcher.and_then(|c| c.report(&attributor, &traced));
    let scan = reader.finish(walk);
    if agg.tags_overflow > 0 {
        report.warnings.push(format!(
            "{} blocks of more than {} distinct tags counted only in the totals",
            agg.tags_overflow,
            blocks::MAX_BLOCK_TAGS
        ));
    }
    let pool = attributed(input, scan, attributor, opts.scan_drivers);
    progress(Stage::Attributing);
    let mut facts = verdict::Facts {
        unread: pool
            .errors
            .iter()
            .zip(&pool.failure_parts)
            .find(|(_, part)| **part == crate::pool::PoolPart::TagTables)
            .map(|(e, _)| e.clone()),
        needs_symbols: pool.needs_symbols,
        figures_from_blocks: false,
        walk_short: None,
    };
    fill_figures(&mut report, input, &pool, &agg, &mut facts);
    facts.walk_short = walk_short(&report, &facts);
    if let Some((counted, found)) = facts.walk_short {
        report.warnings.push(format!(
            "the tag tables count {counted} outstanding allocations but the block walk found only {found} allocated blocks in the memory it could walk"
        ));
    }
    let b = &report.blocks;
    if b.classic.count + b.big.count + b.lfh.count + b.vs.count > 0 {
        report.provenance = Some(traced.report());
    }
    fill_drivers(&mut report, input, &pool, &agg);
    attach_provenance(&mut report, input, &traced);
    naming::name_code(&mut report, input, opts.symbol_deadline);
    crash::set_pool_block(&mut report, pool_block);
    report.verdict = verdict::decide(&report, &facts);
    unloaded::fill(&mut report, input);
    report
}

/// The tag tables and the walk disagree: the tables count at least [`verdict::WALK_SHORT_MIN`]
/// outstanding allocations and the walk found fewer than [`verdict::WALK_SHORT_SHARE`] of them,
/// although it walked what it could (not a walk short for want of symbols).
fn walk_short(r: &AnalysisReport, facts: &verdict::Facts) -> Option<(u64, u64)> {
    if facts.figures_from_blocks || facts.needs_symbols {
        return None;
    }
    let counted: u64 = r
        .tags
        .iter()
        .chain(r.session_tags.iter().flatten())
        .map(|t| t.paged_outstanding.saturating_add(t.nonpaged_outstanding))
        .sum();
    let b = &r.blocks;
    let found = b.classic.count + b.big.count + b.lfh.count + b.vs.count;
    (counted >= verdict::WALK_SHORT_MIN
        && (found as f64) < counted as f64 * verdict::WALK_SHORT_SHARE)
        .then_some((counted, found))
}

/// The pool report with its tags mapped to drivers, and what the verdict needs of the scan.
struct Attributed {
    report: PoolReport,
    attributor: crate::attribution::Attributor,
    /// The part each of `report.errors` is about, in the same order.
    failure_parts: Vec<crate::pool::PoolPart>,
    needs_symbols: bool,
}

impl std::ops::Deref for Attributed {
    type Target = PoolReport;
    fn deref(&self) -> &PoolReport {
        &self.report
    }
}

fn attributed(
    input: &Input,
    scan: PoolScan,
    attributor: crate::attribution::Attributor,
    scan_drivers: bool,
) -> Attributed {
    let failure_parts = scan.failures.iter().map(|f| f.part).collect();
    let needs_symbols = scan.needs_symbols;
    let query = PoolQuery {
        sort: SortKey::PagedBytes,
        tag: None,
        scan_drivers,
    };
    let report = pool_report::build(input, &query, scan, &attributor);
    Attributed {
        report,
        attributor,
        failure_parts,
        needs_symbols,
    }
}

/// The report before the pool is read: the dump, the bugcheck, the symbols.
fn skeleton(input: &Input, generator: &str) -> AnalysisReport {
    let dump = &input.dump;
    let header = dump.header();
    let (source, path) = input.symbol_source();
    let profile = input.profile.as_ref();
    AnalysisReport {
        schema_version: ANALYSIS_SCHEMA_VERSION,
        kind: ANALYSIS_KIND.to_string(),
        generator: generator.to_string(),
        dump: AnalysisDump {
            format: dump.format().as_str().to_string(),
            dump_type: header.dump_type,
            arch: header.arch.as_str().to_string(),
            pae: header.pae,
            build: header.build,
            processors: header.processors,
            system_time: header.system_time.and_then(filetime_to_rfc3339),
            file_size: dump.file_size(),
            kernel_base: input.kernel.kernel_base.map(Hex),
            boot_time: boot_time(header),
            truncated: dump
                .truncation()
                .map(|t| crate::report::analysis::TruncatedFile {
                    pages_in_file: t.pages_in_file,
                    pages_listed: t.pages_listed,
                }),
        },
        bugcheck: overview::bugcheck(&input.kernel),
        symbols: AnalysisSymbols {
            source,
            path,
            guid: profile.map(|p| p.guid.clone()),
            age: profile.map(|p| p.age),
            matches_kernel: None,
        },
        verdict: verdict::not_analyzable("the analysis did not run".into()),
        pools: Vec::new(),
        drivers: Vec::new(),
        tags: Vec::new(),
        session_tags: None,
        sessions: Vec::new(),
        blocks: BlockTotals::default(),
        quota: None,
        modules: Vec::new(),
        provenance: None,
        crash: None,
        warnings: input.kernel.warnings.clone(),
        errors: Vec::new(),
    }
}

/// SystemTime minus SystemUpTime, when the header holds both (and up time is not after it).
fn boot_time(header: &crate::dump::DumpHeader) -> Option<String> {
    let boot = header.system_time?.checked_sub(header.system_up_time?)?;
    filetime_to_rfc3339(boot)
}

/// The pool engine could not start (no kernel memory, no kernel base).
fn not_started(
    mut report: AnalysisReport,
    input: &Input,
    e: PoolError,
    deadline: Option<Instant>,
) -> AnalysisReport {
    report.errors.push(format!("pool analysis: {e}"));
    naming::name_code(&mut report, input, deadline);
    report.verdict = verdict::not_analyzable(format!("the pool analysis could not start: {e}"));
    report
}

/// Pools, tags, sessions, block totals and quota.
fn fill_figures(
    report: &mut AnalysisReport,
    input: &Input,
    pool: &Attributed,
    agg: &BlockAggregator,
    facts: &mut verdict::Facts,
) {
    report.symbols.matches_kernel = pool.symbols.matches_kernel;
    report.warnings.extend(pool.warnings.iter().cloned());
    report.errors.extend(pool.errors.iter().cloned());
    report.pools = overview::pools(&pool.report);
    report.tags = pool
        .tags
        .as_deref()
        .map(|rows| tags::tag_reports(rows, agg))
        .unwrap_or_default();
    if pool.tags.is_none() && !agg.tags.is_empty() {
        report.warnings.push(
            "the tag tables could not be read: tag figures below come from the block walk (allocated blocks only)"
                .into(),
        );
        report.tags = tags::tags_from_blocks(agg, &pool.attributor);
        facts.figures_from_blocks = true;
    }
    // Session tags: the walk includes each session's pool (classic pages before 19H1, its
    // segment heap after; a tag used in both pools shows the blocks of both).
    report.session_tags = pool
        .session_tags
        .as_deref()
        .map(|rows| tags::tag_reports(rows, agg))
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
    report.blocks = overview::block_totals(&pool.report, agg, &input.dump);
    report.quota = pool.quota.as_ref().map(quota_summary);
}

fn quota_summary(q: &crate::pool::vm::QuotaReport) -> QuotaSummary {
    QuotaSummary {
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
    }
}

/// The drivers: their tags' bytes, blocks and call sites (named later, with the rest of the
/// report's code addresses: [`naming`]).
fn fill_drivers(
    report: &mut AnalysisReport,
    input: &Input,
    pool: &Attributed,
    agg: &BlockAggregator,
) {
    let mods = &input.kernel.modules.modules;
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
    let splits = report
        .provenance
        .iter()
        .flat_map(|p| p.tags.iter())
        .map(|t| (t.tag.clone(), t.clone()))
        .collect();
    let mut drivers = drivers::driver_reports(&drivers::DriverInputs {
        tags: &all_tags,
        session_from,
        agg,
        attributor: &pool.attributor,
        mods,
        in_use_total,
        splits: &splits,
    });
    drivers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.module.cmp(&b.module)));
    report.drivers = drivers;
}

/// Each driver's attributed blocks, per call site and evidence.
fn attach_provenance(report: &mut AnalysisReport, input: &Input, p: &provenance::Provenance) {
    let mods = &input.kernel.modules.modules;
    for d in report.drivers.iter_mut() {
        let m = mods.iter().find(|m| m.name == d.module);
        d.provenance = p.driver(&d.module, m);
    }
}
