//! `pooltriage pool` and `pooltriage blocks`: the pool engine's figures with each tag's
//! drivers, sorted and filtered as asked ([`crate::report::pool::PoolReport`]).

use super::attribute::PoolTags;
use super::input::Input;
use super::provenance::{trace, BlockProvenance, Collector, Provenance};
use crate::attribution::{Attributor, Source};
use crate::kernel::KernelInfo;
use crate::pool::scan::{read_pool, PoolReader};
use crate::pool::tags::{sort_tags, SortKey, TagStats};
use crate::pool::{PoolError, PoolKind, PoolScan, SeenBlock, Tag, TagPattern};
use crate::report::pool::*;
use std::collections::BTreeMap;

/// What the `pool` and `blocks` commands ask for.
#[derive(Debug, Clone)]
pub struct PoolQuery {
    pub sort: SortKey,
    /// Only tags matching this pattern (their protected form too).
    pub tag: Option<TagPattern>,
    /// Scan the loaded drivers' code for tags.
    pub scan_drivers: bool,
}

/// Reads the pool and maps its tags to drivers; every block the walk finds goes to `sink`.
pub fn pool_report(
    input: &Input,
    query: &PoolQuery,
    sink: &mut dyn FnMut(SeenBlock),
) -> Result<PoolReport, PoolError> {
    let reader = read_pool(&input.dump, &input.kernel, input.profile.as_ref())?;
    let attributor = attribute_tables(input, &reader, query.scan_drivers);
    let walk = reader.walk(sink);
    Ok(build(input, query, reader.finish(walk), &attributor))
}

/// As [`pool_report`], with the provenance of every block: `sink` gets each block of a last
/// walk with its decision (`None` for blocks whose tag names their owner's kind outright:
/// Windows' own, or no code evidence at all).
pub fn pool_report_with_provenance(
    input: &Input,
    query: &PoolQuery,
    sink: &mut dyn FnMut(SeenBlock, Option<BlockProvenance>),
) -> Result<(PoolReport, Provenance), PoolError> {
    let profile = input.profile.as_ref();
    let reader = read_pool(&input.dump, &input.kernel, profile)?;
    let attributor = attribute_tables(input, &reader, query.scan_drivers);
    let mut collector = Collector::new(&attributor, &input.kernel, reader.verifier());
    let walk = reader.walk(&mut |b| collector.add(b));
    let provenance = trace(&reader, &input.kernel, profile, collector, &attributor);
    let _ = reader.walk(&mut |b| sink(b, provenance.block_at(b.block.address)));
    let report = build(input, query, reader.finish(walk), &attributor);
    Ok((report, provenance))
}

/// The attributor for the tags the reader's tables hold.
pub(crate) fn attribute_tables(
    input: &Input,
    reader: &PoolReader,
    scan_drivers: bool,
) -> Attributor {
    super::attribute::attribute(
        reader.memory(),
        &input.kernel,
        input.profile.as_ref(),
        PoolTags {
            tables: reader.tables(),
            big_pages: reader.big_pages(),
        },
        input.pooltag.clone(),
        scan_drivers,
    )
}

/// The report of `scan`, its tags mapped by `attributor`.
pub(crate) fn build(
    input: &Input,
    query: &PoolQuery,
    scan: PoolScan,
    attributor: &Attributor,
) -> PoolReport {
    let wanted = |t: Tag| match query.tag.as_ref() {
        None => true,
        Some(p) => p.matches(t) || p.matches(t.unprotected()),
    };
    let rows_of = |v: &[TagStats]| -> Vec<TagRow> {
        let mut v: Vec<TagStats> = v.iter().filter(|s| wanted(s.tag)).copied().collect();
        sort_tags(&mut v, query.sort);
        v.iter().map(|s| row(s, attributor)).collect()
    };
    let tags = scan.tables.as_ref().map(|t| rows_of(&t.tags));
    let session_tags = scan
        .tables
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
    let mut warnings = scan.warnings.clone();
    warnings.extend(attributor.warnings.iter().cloned());
    warnings.extend(scan.vm.warnings.iter().cloned());
    let (missing_pool_pages, page_states) = (scan.missing_pool_pages(), scan.page_states());
    let mut session_big = scan.session_big_pages.clone();
    if let Some(b) = session_big.as_mut() {
        b.entries.retain(|e| wanted(e.tag));
    }
    let mut big = scan.big_pages.clone();
    if let Some(b) = big.as_mut() {
        b.entries.retain(|e| wanted(e.tag));
        for i in 0..b.entries.len() {
            if b.entries[i].pool == PoolKind::Unknown {
                b.entries[i].pool = scan.big_block(&b.entries[i]).pool;
            }
        }
    }
    let header = input.dump.header();
    PoolReport {
        schema_version: 1,
        dump: DumpSummary {
            format: input.dump.format().as_str(),
            arch: header.arch.as_str(),
            build: header.build,
            kernel_base: scan.kernel_base,
        },
        symbols: symbols_info(input),
        layouts: Layouts {
            pool_header: scan.header_layout.source,
            tag_table: scan.tables.as_ref().map(|t| t.layout_source),
            big_pages: big.as_ref().map(|b| b.layout_source),
        },
        sort: match query.sort {
            SortKey::Tag => "tag",
            SortKey::PagedBytes => "paged",
            SortKey::NonpagedBytes => "nonpaged",
            SortKey::Allocs => "allocs",
        },
        tag_filter: query.tag.as_ref().map(|p| p.to_string()),
        tags,
        session_tags,
        sessions: scan.sessions,
        tag_tables: scan
            .tables
            .as_ref()
            .map(|t| t.tables.clone())
            .unwrap_or_default(),
        missing_pool_pages,
        page_states,
        pte_layout: scan.pte.clone(),
        segment_heap: scan.segment_heap,
        pages: scan.pages,
        big_pages: big,
        session_big_pages: session_big,
        blocks: None,
        blocks_truncated: false,
        vm: scan.vm,
        quota: scan.quota,
        verifier: scan.verifier,
        drivers,
        warnings,
        errors: scan.failures.iter().map(|f| f.to_string()).collect(),
    }
}

fn row(s: &TagStats, attributor: &Attributor) -> TagRow {
    TagRow {
        stats: *s,
        paged_outstanding: s.paged_outstanding(),
        nonpaged_outstanding: s.nonpaged_outstanding(),
        drivers: attributor.mappings(s.tag),
    }
}

/// Which symbols were used, and whether they are the dump's kernel's.
pub(crate) fn symbols_info(input: &Input) -> SymbolsInfo {
    let (source, path) = input.symbol_source();
    let profile = input.profile.as_ref();
    SymbolsInfo {
        source,
        path,
        guid: profile.map(|p| p.guid.clone()),
        age: profile.map(|p| p.age),
        matches_kernel: matches_kernel(profile, &input.kernel),
    }
}

fn matches_kernel(profile: Option<&crate::symbols::Profile>, kernel: &KernelInfo) -> Option<bool> {
    let cv = kernel
        .kernel_module()
        .and_then(|m| m.pe.as_ref())
        .and_then(|pe| pe.codeview.as_ref());
    match (profile, cv) {
        (Some(p), Some(cv)) => Some(p.guid.eq_ignore_ascii_case(&cv.guid) && p.age == cv.age),
        _ => None,
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
