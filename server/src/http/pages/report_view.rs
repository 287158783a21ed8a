//! A stored report as the pages show it: parsed with the analyzer's own types, then turned into
//! rows of display strings (the templates only lay them out).
//!
//! Two shapes are stored: `"kind": "analysis"` reports (`pooltriage analyze`,
//! `analyzer::report::analysis`) and, from before the workers ran the pool analysis, `inspect`
//! reports (`analyzer::report::inspect`). An inspect report still has a module list and a
//! bugcheck, so it is rendered with those and "no pool analysis".

use super::format;
use super::svg::{self, Bar, Svg};
use super::user::percent_encode;
use analyzer::attribution::Source;
use analyzer::report::analysis::{
    AnalysisReport, BlockSource, CallSiteKind, DriverReport, PoolName, TagReport,
};
use analyzer::report::InspectReport;

/// A stored report, parsed.
pub enum Stored {
    Analysis(Box<AnalysisReport>),
    Inspect(Box<InspectReport>),
    /// Valid or not, a report these types cannot read; the reason, for the page.
    Unreadable(String),
}

pub fn parse(json: &str) -> Stored {
    let value: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return Stored::Unreadable(format!("the stored report is not JSON: {e}")),
    };
    let is_analysis = value.get("kind").and_then(|k| k.as_str()) == Some("analysis");
    if is_analysis {
        match serde_json::from_value::<AnalysisReport>(value) {
            Ok(r) => Stored::Analysis(Box::new(r)),
            Err(e) => Stored::Unreadable(format!("analysis report of an unknown shape: {e}")),
        }
    } else {
        match serde_json::from_value::<InspectReport>(value) {
            Ok(r) => Stored::Inspect(Box::new(r)),
            Err(e) => Stored::Unreadable(format!("report of an unknown shape: {e}")),
        }
    }
}

/// How the per-tag table is sorted (`?sort=`); always descending by the quantity, the tag name
/// breaking ties, except `tag` (ascending by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSort {
    Paged,
    Nonpaged,
    Allocs,
    Tag,
}

impl TagSort {
    pub const ALL: [TagSort; 4] = [
        TagSort::Paged,
        TagSort::Nonpaged,
        TagSort::Allocs,
        TagSort::Tag,
    ];

    /// Unknown values fall back to the report's own order (paged + nonpaged bytes), shown as
    /// `None`.
    pub fn parse(s: Option<&str>) -> Option<TagSort> {
        match s? {
            "paged" => Some(TagSort::Paged),
            "nonpaged" => Some(TagSort::Nonpaged),
            "allocs" => Some(TagSort::Allocs),
            "tag" => Some(TagSort::Tag),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TagSort::Paged => "paged",
            TagSort::Nonpaged => "nonpaged",
            TagSort::Allocs => "allocs",
            TagSort::Tag => "tag",
        }
    }
}

/// Sorts tags for the table (stable; ties by tag name).
pub fn sort_tags(tags: &mut [&TagReport], sort: Option<TagSort>) {
    let outstanding = |t: &TagReport| t.paged_outstanding.saturating_add(t.nonpaged_outstanding);
    match sort {
        None => {}
        Some(TagSort::Paged) => tags.sort_by(|a, b| {
            b.paged_bytes
                .cmp(&a.paged_bytes)
                .then_with(|| a.tag.cmp(&b.tag))
        }),
        Some(TagSort::Nonpaged) => tags.sort_by(|a, b| {
            b.nonpaged_bytes
                .cmp(&a.nonpaged_bytes)
                .then_with(|| a.tag.cmp(&b.tag))
        }),
        Some(TagSort::Allocs) => tags.sort_by(|a, b| {
            outstanding(b)
                .cmp(&outstanding(a))
                .then_with(|| a.tag.cmp(&b.tag))
        }),
        Some(TagSort::Tag) => tags.sort_by(|a, b| a.tag.cmp(&b.tag)),
    }
}

/// Most tag rows shown before "show all".
pub const TAG_ROWS: usize = 100;
/// Bars in each chart.
const CHART_BARS: usize = 10;

pub struct VerdictView {
    pub sentence: String,
    pub kind: &'static str,
    pub confidence: &'static str,
    /// What the pool's state says: the pressure a leak verdict rests on, or that there is none.
    pub pressure: String,
    pub reasons: Vec<String>,
}

pub struct PoolRow {
    pub pool: &'static str,
    pub in_use: String,
    pub max: String,
    pub commit: String,
    pub used: String,
    pub source: String,
    pub near_exhaustion: bool,
}

pub struct DriverRow {
    pub module: String,
    pub href: String,
    pub paged: String,
    pub nonpaged: String,
    pub total: String,
    pub allocations: u64,
    pub share: String,
    pub tags: String,
    /// Its blocks nothing in the dump points to (provenance), "–" when none.
    pub orphans: String,
    pub is_verdict: bool,
}

pub struct TagRow {
    pub tag: String,
    pub paged: String,
    pub paged_outstanding: u64,
    pub nonpaged: String,
    pub nonpaged_outstanding: u64,
    pub owners: String,
}

pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

pub struct ModuleRow {
    pub name: String,
    pub base: String,
    pub size: String,
    pub symbols: String,
    pub href: Option<String>,
}

/// A module's symbol status as the table shows it: the status, the store that answered (the
/// tenant's uploaded symbols are named so, which support needs to know) and whether the PDB
/// gave source lines.
pub fn symbols_text(m: &analyzer::report::analysis::AnalysisModule) -> String {
    let mut s = m.symbols.clone();
    if let Some(src) = &m.symbols_source {
        let store = if src.starts_with("vendor-symbols/") {
            format!("the tenant's uploaded symbols ({src})")
        } else {
            src.clone()
        };
        s.push_str(&format!(" · from {store}"));
    }
    match m.line_info {
        Some(true) => s.push_str(" · with source lines"),
        Some(false) => s.push_str(" · names only (the PDB carries no line information)"),
        None => {}
    }
    s
}

/// The faulting instruction by function and line, as the bugcheck section shows it.
pub fn faulting_text(r: &analyzer::report::analysis::AnalysisReport) -> Option<String> {
    let b = &r.bugcheck;
    let at = b.faulting.clone()?;
    let Some(symbol) = &b.faulting_symbol else {
        return Some(at);
    };
    let module = at.rsplit_once('+').map_or(at.as_str(), |(m, _)| m);
    let no_lines = r
        .modules
        .iter()
        .any(|m| m.name == module && m.line_info == Some(false));
    Some(match (&b.faulting_source, no_lines) {
        (Some(l), _) => format!("{symbol} ({}) at {at}", l.short()),
        (None, true) => format!("{symbol} at {at} (the PDB carries no line information)"),
        (None, false) => format!("{symbol} at {at}"),
    })
}

pub struct BugcheckView {
    pub code: String,
    pub name: String,
    pub params: Vec<String>,
    pub note: Option<String>,
    /// The faulting instruction (`amdppm!WriteIoMemRawEx+0x70 at amdppm.sys+0x334c`).
    pub faulting: Option<String>,
}

pub struct BlockRow {
    pub source: &'static str,
    pub count: u64,
    pub bytes: String,
}

pub struct QuotaRow {
    pub process: String,
    pub eprocess: String,
    pub blocks: u64,
    pub bytes: String,
}

/// An analysis report, ready for `templates/dump.html`.
pub struct AnalysisView {
    /// No pool figure at all could be read (a triage or small dump): the page shows how to
    /// capture a dump that can be analysed instead of a row of empty tables.
    pub nothing_read: bool,
    pub verdict: VerdictView,
    /// Who holds the untagged and shared-tag blocks; `None` without provenance figures.
    pub provenance: Option<super::provenance_view::ProvenanceView>,
    pub gauges: Vec<Svg>,
    pub pools: Vec<PoolRow>,
    pub drivers: Vec<DriverRow>,
    pub drivers_chart: Option<Svg>,
    pub tags_chart: Option<Svg>,
    pub tags: Vec<TagRow>,
    /// Session pool tags, apart; empty when the report has none.
    pub session_tags: Vec<TagRow>,
    pub tags_total: usize,
    pub tags_hidden: usize,
    pub show_all_href: String,
    pub sort_links: Vec<SortLink>,
    pub modules: Vec<ModuleRow>,
    pub bugcheck: BugcheckView,
    /// The crash's stack, followup and bucket; `None` when the report has no `crash`.
    pub stack: Option<super::stack_view::StackView>,
    pub blocks: Vec<BlockRow>,
    pub blocks_note: String,
    pub quota: Vec<QuotaRow>,
    pub quota_uncharged: Option<String>,
    pub dump_line: String,
    pub symbols_line: String,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// A tag provenance split between modules, as the drivers table credits it.
fn split_owners(r: &AnalysisReport, tag: &str) -> Option<String> {
    let split = r.provenance.as_ref()?.tags.iter().find(|s| s.tag == tag)?;
    let mut parts: Vec<String> = split
        .modules
        .iter()
        .map(|m| format!("{} {}", m.module, format::bytes(m.bytes)))
        .collect();
    if split.unattributed.count > 0 {
        parts.push(format!(
            "{} unattributed",
            format::bytes(split.unattributed.bytes)
        ));
    }
    Some(format!("{} (by block)", parts.join("; ")))
}

/// "pool under pressure: near exhaustion (97% of its maximum in use)", or why no leak is
/// claimed; empty for verdicts about no pool.
fn pressure_line(v: &analyzer::report::analysis::Verdict) -> String {
    use analyzer::report::analysis::{PressureRule, VerdictKind};
    match (&v.pressure, v.kind) {
        (Some(p), _) => format!(
            "{} under pressure: {}",
            pool_name(p.pool),
            match p.rule {
                PressureRule::NearExhaustion => format!(
                    "near exhaustion ({} of its maximum in use)",
                    format::percent(p.used_fraction)
                ),
                PressureRule::ShareOfMaximum => format!(
                    "the driver alone holds {} of its maximum",
                    format::percent(v.share_of_maximum)
                ),
            }
        ),
        (None, VerdictKind::LargestConsumer) => {
            "no pressure on the pool: the largest consumer, not a proven leak".into()
        }
        _ => String::new(),
    }
}

pub fn pool_name(p: PoolName) -> &'static str {
    match p {
        PoolName::Paged => "Paged pool",
        PoolName::Nonpaged => "Nonpaged pool",
    }
}

pub fn source_text(s: Source) -> &'static str {
    match s {
        Source::DriverCodeAllocation => "allocation in its code",
        Source::DriverCallsUntaggedAllocator => "calls ExAllocatePool (untagged)",
        Source::PoolTagFile => "pooltag file",
        Source::BuiltIn => "built-in table",
        Source::DriverCodeImmediate => "immediate in its code",
        Source::DriverBytes => "bytes in its code",
        Source::BlockProvenance => "its blocks (provenance)",
    }
}

pub fn block_source(s: BlockSource) -> &'static str {
    match s {
        BlockSource::Classic => "classic",
        BlockSource::Big => "big",
        BlockSource::Lfh => "LFH",
        BlockSource::Vs => "VS",
    }
}

/// The page of one driver of a dump.
pub fn driver_href(dump_id: &str, module: &str) -> String {
    format!(
        "/dumps/{}/drivers/{}",
        percent_encode(dump_id),
        percent_encode(module)
    )
}

impl AnalysisView {
    pub fn build(
        dump_id: &str,
        r: &AnalysisReport,
        sort: Option<TagSort>,
        all_tags: bool,
    ) -> AnalysisView {
        let verdict_drivers: Vec<String> =
            r.verdict.drivers.iter().map(|d| d.to_lowercase()).collect();
        let gauges = r
            .pools
            .iter()
            .map(|p| svg::gauge(pool_name(p.pool), p.in_use, p.max, p.near_exhaustion))
            .collect();
        let pools = r
            .pools
            .iter()
            .map(|p| PoolRow {
                pool: pool_name(p.pool),
                in_use: format::bytes(p.in_use),
                max: p.max.map(format::bytes).unwrap_or_else(|| "unknown".into()),
                commit: p.commit.map(format::bytes).unwrap_or_else(|| "–".into()),
                used: format::percent(p.used_fraction),
                source: p.source.clone(),
                near_exhaustion: p.near_exhaustion,
            })
            .collect();
        let drivers = r
            .drivers
            .iter()
            .map(|d| DriverRow {
                module: d.module.clone(),
                href: driver_href(dump_id, &d.module),
                paged: format::bytes(d.paged_bytes),
                nonpaged: format::bytes(d.nonpaged_bytes),
                total: format::bytes(d.bytes),
                allocations: d.allocations,
                share: format::percent(d.share_of_pool),
                tags: d
                    .tags
                    .iter()
                    .map(|t| t.tag.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                orphans: d
                    .provenance
                    .as_ref()
                    .map(|p| p.orphans)
                    .filter(|o| o.count > 0)
                    .map_or("–".into(), |o| {
                        format!("{} ({})", format::bytes(o.bytes), o.count)
                    }),
                is_verdict: verdict_drivers.contains(&d.module.to_lowercase()),
            })
            .collect();
        let drivers_chart = top_chart(
            "Outstanding pool of the top drivers",
            r.drivers
                .iter()
                .map(|d| (&d.module, d.paged_bytes, d.nonpaged_bytes)),
        );
        let tags_chart = top_chart(
            "Outstanding pool of the top tags",
            r.tags
                .iter()
                .map(|t| (&t.tag, t.paged_bytes, t.nonpaged_bytes)),
        );
        let mut sorted: Vec<&TagReport> = r.tags.iter().collect();
        sort_tags(&mut sorted, sort);
        let shown = if all_tags {
            sorted.len()
        } else {
            sorted.len().min(TAG_ROWS)
        };
        let tag_row = |t: &TagReport| TagRow {
            tag: t.tag.clone(),
            paged: format::bytes(t.paged_bytes),
            paged_outstanding: t.paged_outstanding,
            nonpaged: format::bytes(t.nonpaged_bytes),
            nonpaged_outstanding: t.nonpaged_outstanding,
            owners: split_owners(r, &t.tag).unwrap_or_else(|| {
                t.owners
                    .iter()
                    .map(|o| match &o.module {
                        Some(m) => format!("{m} ({})", source_text(o.source)),
                        None => match &o.description {
                            Some(d) => format!("{d} ({})", source_text(o.source)),
                            None => source_text(o.source).to_string(),
                        },
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        };
        let tags = sorted.iter().take(shown).map(|t| tag_row(t)).collect();
        // Session pool apart (the analysis sums the sessions' own tag tables), same order.
        let mut session_sorted: Vec<&TagReport> = r.session_tags.iter().flatten().collect();
        sort_tags(&mut session_sorted, sort);
        let session_tags = session_sorted.iter().map(|t| tag_row(t)).collect();
        let base = format!("/dumps/{}", percent_encode(dump_id));
        let sort_links = TagSort::ALL
            .iter()
            .map(|s| SortLink {
                label: match s {
                    TagSort::Paged => "paged bytes",
                    TagSort::Nonpaged => "nonpaged bytes",
                    TagSort::Allocs => "outstanding allocations",
                    TagSort::Tag => "tag",
                },
                href: format!(
                    "{base}?sort={}{}#tags",
                    s.as_str(),
                    if all_tags { "&tags=all" } else { "" }
                ),
                active: sort == Some(*s),
            })
            .collect();
        let show_all_href = format!(
            "{base}?{}tags=all#tags",
            sort.map(|s| format!("sort={}&", s.as_str()))
                .unwrap_or_default()
        );
        let driver_names: Vec<String> = r.drivers.iter().map(|d| d.module.to_lowercase()).collect();
        let modules = r
            .modules
            .iter()
            .map(|m| ModuleRow {
                name: m.name.clone(),
                base: m.base.to_string(),
                size: format::bytes(m.size),
                symbols: symbols_text(m),
                href: driver_names
                    .contains(&m.name.to_lowercase())
                    .then(|| driver_href(dump_id, &m.name)),
            })
            .collect();
        let b = &r.bugcheck;
        let bugcheck = BugcheckView {
            code: b.code.to_string(),
            name: b.name.clone().unwrap_or_else(|| "unknown bugcheck".into()),
            params: b.params.iter().map(|p| p.to_string()).collect(),
            note: b
                .pool_related
                .then(|| "This bugcheck concerns pool itself.".to_string()),
            faulting: faulting_text(r),
        };
        let bt = &r.blocks;
        let blocks = [
            ("classic", bt.classic),
            ("big", bt.big),
            ("LFH", bt.lfh),
            ("VS", bt.vs),
        ]
        .into_iter()
        .map(|(source, cb)| BlockRow {
            source,
            count: cb.count,
            bytes: format::bytes(cb.bytes),
        })
        .collect();
        let walked = bt.complete
            || bt.missing_pool_pages > 0
            || [bt.classic, bt.big, bt.lfh, bt.vs]
                .iter()
                .any(|c| c.count > 0);
        let blocks_note = if bt.complete {
            format!(
                "Every pool page was walked; {} free blocks seen.",
                bt.free_blocks
            )
        } else if !walked {
            "The pool pages were not walked (see the warnings).".to_string()
        } else {
            format!(
                "Incomplete: {} pool pages are not in the dump; {} free blocks seen.",
                bt.missing_pool_pages, bt.free_blocks
            )
        };
        let (quota, quota_uncharged) = match &r.quota {
            Some(q) => (
                q.processes
                    .iter()
                    .map(|p| QuotaRow {
                        process: match (&p.name, p.pid) {
                            (Some(n), Some(pid)) => format!("{n} (pid {pid})"),
                            (Some(n), None) => n.clone(),
                            (None, Some(pid)) => format!("pid {pid}"),
                            (None, None) => "unnamed process".into(),
                        },
                        eprocess: p.eprocess.to_string(),
                        blocks: p.blocks,
                        bytes: format::bytes(p.bytes),
                    })
                    .collect(),
                Some(format!(
                    "{} in {} blocks charged to no process we could name.",
                    format::bytes(q.uncharged_bytes),
                    q.uncharged_blocks
                )),
            ),
            None => (Vec::new(), None),
        };
        let dm = &r.dump;
        let dump_line = format!(
            "{} dump (type {}), {}{}, build {}, {} processors, {}{}",
            dm.format,
            dm.dump_type,
            dm.arch,
            if dm.pae { " PAE" } else { "" },
            dm.build,
            dm.processors,
            format::bytes(dm.file_size),
            dm.system_time
                .as_ref()
                .map(|t| format!(", crashed {t}"))
                .unwrap_or_default()
        );
        let s = &r.symbols;
        let symbols_line = match s.source.as_str() {
            "none" => {
                "Kernel symbols: none (debugger data block and built-in layouts).".to_string()
            }
            other => format!(
                "Kernel symbols: {other}{}{}",
                s.path
                    .as_deref()
                    .map(|p| format!(" {}", store_key(p)))
                    .unwrap_or_default(),
                match s.matches_kernel {
                    Some(false) => " (does NOT match the kernel image)",
                    _ => "",
                }
            ),
        };
        let nothing_read =
            !walked && r.pools.is_empty() && r.drivers.is_empty() && sorted.is_empty();
        AnalysisView {
            nothing_read,
            verdict: VerdictView {
                sentence: r.verdict.sentence.clone(),
                kind: r.verdict.kind.as_str(),
                confidence: match r.verdict.confidence {
                    analyzer::report::analysis::Confidence::High => "high",
                    analyzer::report::analysis::Confidence::Medium => "medium",
                    analyzer::report::analysis::Confidence::Low => "low",
                },
                pressure: pressure_line(&r.verdict),
                reasons: r.verdict.reasons.clone(),
            },
            provenance: super::provenance_view::ProvenanceView::from_report(dump_id, r),
            gauges,
            pools,
            drivers,
            drivers_chart,
            tags_chart,
            tags,
            session_tags,
            tags_total: sorted.len(),
            tags_hidden: sorted.len() - shown,
            show_all_href,
            sort_links,
            modules,
            bugcheck,
            stack: r.crash.as_ref().map(super::stack_view::StackView::build),
            blocks,
            blocks_note,
            quota,
            quota_uncharged,
            dump_line,
            symbols_line,
            warnings: r.warnings.clone(),
            errors: r.errors.clone(),
        }
    }
}

impl AnalysisView {
    /// Keeps the tag rows (pool and session) whose tag or owners contain `text`,
    /// case-insensitive; an empty text keeps every row.
    pub fn filter_tags(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let needle = text.to_lowercase();
        let keep = |t: &TagRow| {
            t.tag.to_lowercase().contains(&needle) || t.owners.to_lowercase().contains(&needle)
        };
        self.tags.retain(keep);
        self.session_tags.retain(keep);
        self.tags_hidden = 0;
    }
}

/// An `inspect` report: modules and bugcheck only.
pub struct InspectView {
    pub modules: Vec<ModuleRow>,
    pub bugcheck: BugcheckView,
    pub dump_line: String,
    pub warnings: Vec<String>,
}

impl InspectView {
    pub fn build(r: &InspectReport) -> InspectView {
        let modules = r
            .modules
            .iter()
            .map(|m| ModuleRow {
                name: m.name.clone(),
                base: m.base.to_string(),
                size: format::bytes(u64::from(m.size)),
                symbols: m
                    .symbols
                    .as_ref()
                    .map(|s| s.status.clone())
                    .unwrap_or_else(|| "not looked up".into()),
                href: None,
            })
            .collect();
        let b = &r.bugcheck;
        let bugcheck = BugcheckView {
            code: b.code.to_string(),
            name: b.name.clone().unwrap_or_else(|| "unknown bugcheck".into()),
            params: b
                .params
                .iter()
                .zip(b.params_symbolized.iter())
                .map(|(p, s)| match s {
                    Some(s) => format!("{p} ({s})"),
                    None => p.to_string(),
                })
                .collect(),
            note: b
                .pool_or_memory
                .then(|| "This bugcheck concerns pool or memory.".to_string()),
            faulting: b.faulting.as_ref().map(|f| {
                let at = f
                    .module_offset
                    .clone()
                    .unwrap_or_else(|| f.address.to_string());
                match (&f.symbol, f.named) {
                    (Some(s), true) => format!("{s} at {at}"),
                    _ => at,
                }
            }),
        };
        let dm = &r.dump;
        InspectView {
            modules,
            bugcheck,
            dump_line: format!(
                "{} dump (type {}), {}{}, build {}, {} processors",
                dm.format,
                dm.dump_type,
                dm.arch,
                if dm.pae { " PAE" } else { "" },
                dm.build,
                dm.processors
            ),
            warnings: r.warnings.clone(),
        }
    }
}

pub struct CallSiteRow {
    pub offset: String,
    pub symbol: String,
    /// `request.c:118` from the driver's PDB, empty without line information.
    pub source: String,
    /// The source file as the PDB records it (the cell's title).
    pub source_file: String,
    /// The allocator called ("ExAllocatePoolWithTag"...), when recognised.
    pub callee: String,
    pub tag: String,
    pub kind: &'static str,
    pub pool: &'static str,
    pub size: String,
}

pub struct LargestRow {
    pub address: String,
    pub size: String,
    pub tag: String,
    pub pool: &'static str,
    pub source: &'static str,
}

pub struct DriverTagRow {
    pub tag: String,
    pub paged: String,
    pub nonpaged: String,
    pub allocations: u64,
    pub evidence: &'static str,
    pub shared_with: String,
}

/// One driver of an analysis report, for `templates/driver.html`.
pub struct DriverView {
    pub module: String,
    pub path: String,
    pub base: String,
    pub size: String,
    pub paged: String,
    pub nonpaged: String,
    pub total: String,
    pub allocations: u64,
    pub share: String,
    pub tags: Vec<DriverTagRow>,
    pub call_sites: Vec<CallSiteRow>,
    pub call_sites_truncated: bool,
    pub block_count: u64,
    pub block_bytes: String,
    pub largest: Vec<LargestRow>,
    /// The blocks the dump ties to it; `None` when none.
    pub provenance: Option<super::provenance_view::DriverProvenanceView>,
}

/// The driver named `module` (case-insensitive, as Windows module names are).
pub fn find_driver<'a>(r: &'a AnalysisReport, module: &str) -> Option<&'a DriverReport> {
    r.drivers
        .iter()
        .find(|d| d.module.eq_ignore_ascii_case(module))
}

impl DriverView {
    pub fn build(d: &DriverReport) -> DriverView {
        let pool = |p: Option<PoolName>| match p {
            Some(PoolName::Paged) => "paged",
            Some(PoolName::Nonpaged) => "nonpaged",
            None => "–",
        };
        DriverView {
            module: d.module.clone(),
            path: d.path.clone().unwrap_or_default(),
            base: d.base.map(|b| b.to_string()).unwrap_or_else(|| "–".into()),
            size: d.size.map(format::bytes).unwrap_or_else(|| "–".into()),
            paged: format::bytes(d.paged_bytes),
            nonpaged: format::bytes(d.nonpaged_bytes),
            total: format::bytes(d.bytes),
            allocations: d.allocations,
            share: format::percent(d.share_of_pool),
            tags: d
                .tags
                .iter()
                .map(|t| DriverTagRow {
                    tag: t.tag.clone(),
                    paged: format::bytes(t.paged_bytes),
                    nonpaged: format::bytes(t.nonpaged_bytes),
                    allocations: t.allocations,
                    evidence: source_text(t.evidence),
                    shared_with: t.shared_with.join(", "),
                })
                .collect(),
            call_sites: d
                .call_sites
                .iter()
                .map(|c| CallSiteRow {
                    offset: c.offset.clone(),
                    symbol: c.symbol.clone().unwrap_or_default(),
                    source: c.source.as_ref().map(|l| l.short()).unwrap_or_default(),
                    source_file: c
                        .source
                        .as_ref()
                        .map(|l| l.file.clone())
                        .unwrap_or_default(),
                    callee: c.callee.clone().unwrap_or_default(),
                    tag: c.tag.clone(),
                    kind: match c.kind {
                        CallSiteKind::TagArgument => "tag argument",
                        CallSiteKind::UntaggedAllocatorCall => "untagged allocator call",
                    },
                    pool: pool(c.pool_type),
                    size: c.size.map(format::bytes).unwrap_or_else(|| "–".into()),
                })
                .collect(),
            call_sites_truncated: d.call_sites_truncated,
            block_count: d.blocks.count,
            block_bytes: format::bytes(d.blocks.bytes),
            provenance: super::provenance_view::DriverProvenanceView::build(d),
            largest: d
                .blocks
                .largest
                .iter()
                .map(|b| LargestRow {
                    address: b.address.to_string(),
                    size: format::bytes(b.size),
                    tag: b.tag.clone(),
                    pool: pool(b.pool),
                    source: block_source(b.source),
                })
                .collect(),
        }
    }
}

/// The last two components of a symbol file's path on the server (`<GUID><age>/ntkrnlmp.pdb`,
/// `ntkrnlmp.pdb/<GUID>-<age>.json.xz`): which file it is, not where the server keeps it (a
/// customer reads this page).
fn store_key(path: &str) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    parts[parts.len().saturating_sub(2)..].join("/")
}

/// A bar chart of the first [`CHART_BARS`] (label, paged, nonpaged) rows; `None` for no rows.
fn top_chart<'a>(title: &str, rows: impl Iterator<Item = (&'a String, u64, u64)>) -> Option<Svg> {
    let bars: Vec<Bar> = rows
        .take(CHART_BARS)
        .map(|(label, paged, nonpaged)| Bar {
            label: label.clone(),
            paged,
            nonpaged,
        })
        .collect();
    (!bars.is_empty()).then(|| svg::bar_chart(title, &bars))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, paged: u64, nonpaged: u64, outstanding: u64) -> TagReport {
        TagReport {
            tag: name.into(),
            paged_allocs: outstanding,
            paged_frees: 0,
            paged_bytes: paged,
            nonpaged_allocs: 0,
            nonpaged_frees: 0,
            nonpaged_bytes: nonpaged,
            paged_outstanding: outstanding,
            nonpaged_outstanding: 0,
            owners: vec![],
            blocks: None,
        }
    }

    #[test]
    fn tag_sorts() {
        let tags = [
            tag("Bbbb", 10, 300, 1),
            tag("Aaaa", 200, 0, 7),
            tag("Cccc", 200, 5, 3),
        ];
        let order = |sort| {
            let mut v: Vec<&TagReport> = tags.iter().collect();
            sort_tags(&mut v, sort);
            v.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>()
        };
        assert_eq!(order(None), ["Bbbb", "Aaaa", "Cccc"]);
        assert_eq!(order(Some(TagSort::Paged)), ["Aaaa", "Cccc", "Bbbb"]);
        assert_eq!(order(Some(TagSort::Nonpaged)), ["Bbbb", "Cccc", "Aaaa"]);
        assert_eq!(order(Some(TagSort::Allocs)), ["Aaaa", "Cccc", "Bbbb"]);
        assert_eq!(order(Some(TagSort::Tag)), ["Aaaa", "Bbbb", "Cccc"]);
        assert_eq!(TagSort::parse(Some("bogus")), None);
        assert_eq!(TagSort::parse(Some("allocs")), Some(TagSort::Allocs));
    }

    #[test]
    fn unknown_shapes_are_reported_not_panicked_on() {
        assert!(matches!(parse("not json"), Stored::Unreadable(_)));
        assert!(matches!(
            parse("{\"kind\": \"analysis\"}"),
            Stored::Unreadable(_)
        ));
        assert!(matches!(parse("[1,2]"), Stored::Unreadable(_)));
    }

    /// A report in the analysis schema with `n_tags` tags ("T000", "T001"... with decreasing
    /// paged bytes) and two drivers, the second named by the verdict.
    fn report(n_tags: usize) -> AnalysisReport {
        let tags: Vec<serde_json::Value> = (0..n_tags)
            .map(|i| {
                serde_json::json!({ "tag": format!("T{i:03}"), "paged_allocs": 1, "paged_frees": 0,
                    "paged_bytes": 10_000 - i, "nonpaged_allocs": 0, "nonpaged_frees": 0, "nonpaged_bytes": i,
                    "paged_outstanding": 1, "nonpaged_outstanding": 0, "owners": [] })
            })
            .collect();
        let driver = |name: &str, bytes: u64| {
            serde_json::json!({ "module": name, "base": null, "size": null, "path": null,
                "paged_bytes": bytes, "nonpaged_bytes": 0, "bytes": bytes, "allocations": 1, "share_of_pool": null,
                "tags": [], "call_sites": [], "blocks": { "count": 0, "bytes": 0, "largest": [] } })
        };
        let v = serde_json::json!({
            "schema_version": 1, "kind": "analysis", "generator": "test",
            "dump": { "format": "kernel-bitmap", "dump_type": 5, "arch": "x64", "pae": false, "build": 19041,
                      "processors": 2, "system_time": null, "file_size": 1, "kernel_base": null },
            "bugcheck": { "code": "0x19", "name": null, "params": ["0x0","0x0","0x0","0x0"], "pool_related": true },
            "symbols": { "source": "none", "path": null, "guid": null, "age": null, "matches_kernel": null },
            "verdict": { "kind": "driver-leak", "sentence": "s", "pool": "paged", "drivers": ["B.SYS"], "tags": [],
                         "bytes": 1, "share_of_pool": null, "confidence": "low", "process": null, "reasons": [] },
            "pools": [ { "pool": "paged", "in_use": 50, "max": 100, "commit": null, "used_fraction": 0.5,
                         "near_exhaustion": false, "source": "t" },
                       { "pool": "nonpaged", "in_use": 5, "max": null, "commit": null, "used_fraction": null,
                         "near_exhaustion": false, "source": "t" } ],
            "drivers": [ driver("a.sys", 20), driver("b.sys", 10) ],
            "tags": tags, "session_tags": null,
            "blocks": { "classic": {"count":0,"bytes":0}, "big": {"count":0,"bytes":0}, "lfh": {"count":0,"bytes":0},
                        "vs": {"count":0,"bytes":0}, "free_blocks": 0, "missing_pool_pages": 3, "complete": false },
            "quota": null,
            "modules": [ { "name": "a.sys", "base": "0x1000", "size": 4096, "timestamp": null, "pdb": null, "symbols": "found" },
                         { "name": "c.sys", "base": "0x2000", "size": 4096, "timestamp": null, "pdb": null, "symbols": "not found" } ],
            "warnings": [], "errors": []
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_tag_filter_keeps_matching_rows_only() {
        let r = report(TAG_ROWS + 50);
        let mut v = AnalysisView::build("d1", &r, None, true);
        v.filter_tags("t01");
        let tags: Vec<&str> = v.tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags.len(), 10, "T010..T019: {tags:?}");
        assert!(tags.iter().all(|t| t.starts_with("T01")));
        assert_eq!(v.tags_hidden, 0);
        v.filter_tags("nothing like it");
        assert!(v.tags.is_empty());
    }

    #[test]
    fn a_report_with_nothing_read_says_so_once() {
        let mut r = report(0);
        assert!(!AnalysisView::build("d1", &r, None, false).nothing_read);
        r.pools.clear();
        r.drivers.clear();
        r.blocks.missing_pool_pages = 0;
        let v = AnalysisView::build("d1", &r, None, false);
        assert!(v.nothing_read);
        // Not "Incomplete: 0 pool pages are not in the dump".
        assert_eq!(
            v.blocks_note,
            "The pool pages were not walked (see the warnings)."
        );
    }

    #[test]
    fn analysis_view_rows_links_and_limits() {
        let r = report(TAG_ROWS + 50);
        let v = AnalysisView::build("d1", &r, Some(TagSort::Nonpaged), false);
        // One gauge per pool; the verdict's driver is matched case-insensitively.
        assert_eq!(v.gauges.len(), 2);
        assert_eq!(
            v.drivers
                .iter()
                .map(|d| (d.module.as_str(), d.is_verdict))
                .collect::<Vec<_>>(),
            [("a.sys", false), ("b.sys", true)]
        );
        assert_eq!(v.drivers[0].href, "/dumps/d1/drivers/a.sys");
        // 100 rows shown, sorted by nonpaged bytes (the last tag has the most), 50 hidden.
        assert_eq!(v.tags.len(), TAG_ROWS);
        assert_eq!(v.tags_hidden, 50);
        assert_eq!(v.tags_total, TAG_ROWS + 50);
        assert_eq!(v.tags[0].tag, format!("T{:03}", TAG_ROWS + 49));
        assert_eq!(v.show_all_href, "/dumps/d1?sort=nonpaged&tags=all#tags");
        let links: Vec<_> = v
            .sort_links
            .iter()
            .map(|l| (l.href.as_str(), l.active))
            .collect();
        assert_eq!(
            links,
            [
                ("/dumps/d1?sort=paged#tags", false),
                ("/dumps/d1?sort=nonpaged#tags", true),
                ("/dumps/d1?sort=allocs#tags", false),
                ("/dumps/d1?sort=tag#tags", false)
            ]
        );
        let all = AnalysisView::build("d1", &r, None, true);
        assert_eq!((all.tags.len(), all.tags_hidden), (TAG_ROWS + 50, 0));
        assert_eq!(
            all.tags[0].tag, "T000",
            "the report's own order without ?sort"
        );
        assert!(all
            .sort_links
            .iter()
            .all(|l| l.href.contains("&tags=all") && !l.active));
        // Modules link to a driver page only when the report has that driver.
        assert_eq!(
            v.modules[0].href.as_deref(),
            Some("/dumps/d1/drivers/a.sys")
        );
        assert_eq!(v.modules[1].href, None);
        assert!(v.blocks_note.contains("3 pool pages are not in the dump"));
        assert_eq!(v.bugcheck.name, "unknown bugcheck");
        assert!(v.bugcheck.note.is_some());
        assert!(find_driver(&r, "A.SYS").is_some() && find_driver(&r, "z.sys").is_none());
    }

    #[test]
    fn session_pool_tags_are_rows_of_their_own() {
        let mut r = report(3);
        assert!(AnalysisView::build("d1", &r, None, false)
            .session_tags
            .is_empty());
        let system = r.tags[0].clone();
        let mut small = system.clone();
        small.tag = "Gh05".into();
        small.paged_bytes = 100;
        let mut big = system;
        big.tag = "DspK".into();
        big.paged_bytes = 900_000;
        r.session_tags = Some(vec![small, big]);
        let v = AnalysisView::build("d1", &r, Some(TagSort::Paged), false);
        let tags: Vec<&str> = v.session_tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags, ["DspK", "Gh05"], "largest paged first");
        assert_eq!(v.tags.len(), 3, "system rows unchanged");
    }

    #[test]
    fn driver_links_encode_hostile_names() {
        assert_eq!(
            driver_href("abc", "a/b?.sys"),
            "/dumps/abc/drivers/a%2Fb%3F.sys"
        );
    }
}
