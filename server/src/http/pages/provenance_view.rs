//! Block provenance on the pages: who holds the untagged and shared-tag blocks (the dump
//! page), and what the dump ties to one driver, per call site and kind of evidence (the
//! driver page).

use super::format;
use super::report_view::driver_href;
use analyzer::report::analysis::{AnalysisReport, CountBytes, DriverReport};
use analyzer::report::provenance::{EvidenceCount, EvidenceName, ProvenanceReport};

/// One module's share of an ambiguous tag.
pub struct ShareRow {
    pub module: String,
    pub href: String,
    pub blocks: u64,
    pub bytes: String,
    pub paged: String,
    pub nonpaged: String,
    pub orphans: String,
}

/// One ambiguous tag split between modules.
pub struct SplitView {
    pub tag: String,
    pub blocks: u64,
    pub bytes: String,
    pub rows: Vec<ShareRow>,
    pub unattributed: String,
    pub unattributed_blocks: u64,
}

/// The dump page's provenance section.
pub struct ProvenanceView {
    /// One paragraph: what was examined, attributed, orphaned, by which evidence.
    pub summary: String,
    pub splits: Vec<SplitView>,
    /// What the scan could not see, when it matters.
    pub limits: Option<String>,
}

fn count_bytes(c: &CountBytes) -> String {
    if c.count == 0 {
        "–".into()
    } else {
        format!(
            "{} in {} blocks",
            format::bytes(c.bytes),
            format::count(c.count)
        )
    }
}

fn evidence_name(k: EvidenceName) -> &'static str {
    match k {
        EvidenceName::Verifier => "Driver Verifier's record",
        EvidenceName::Tag => "its own tag",
        EvidenceName::Reachable => "pointers from its data",
        EvidenceName::Size => "block size",
        EvidenceName::Pointer => "pointers into it",
    }
}

fn evidence_list(e: &[EvidenceCount]) -> String {
    e.iter()
        .map(|c| format!("{} ({})", evidence_name(c.kind), format::count(c.count)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProvenanceView {
    pub fn build(dump_id: &str, p: &ProvenanceReport) -> ProvenanceView {
        let summary = format!(
            "{} blocks examined ({}): {} tied to a module, {} unattributed{}; {} are orphans (nothing in the dump points to them). Evidence: {}.",
            format::count(p.examined.count),
            format::bytes(p.examined.bytes),
            format::count(p.attributed.count),
            format::count(p.unattributed.count),
            if p.conflicts > 0 {
                format!(
                    " ({} with conflicting evidence)",
                    format::count(p.conflicts)
                )
            } else {
                String::new()
            },
            format::count(p.orphans.count),
            if p.evidence.is_empty() {
                "none".into()
            } else {
                evidence_list(&p.evidence)
            }
        );
        let splits = p
            .tags
            .iter()
            .map(|t| SplitView {
                tag: t.tag.clone(),
                blocks: t.blocks.count,
                bytes: format::bytes(t.blocks.bytes),
                rows: t
                    .modules
                    .iter()
                    .map(|m| ShareRow {
                        module: m.module.clone(),
                        href: driver_href(dump_id, &m.module),
                        blocks: m.count,
                        bytes: format::bytes(m.bytes),
                        paged: format::bytes(m.paged_bytes),
                        nonpaged: format::bytes(m.nonpaged_bytes),
                        orphans: count_bytes(&m.orphans),
                    })
                    .collect(),
                unattributed: format::bytes(t.unattributed.bytes),
                unattributed_blocks: t.unattributed.count,
            })
            .collect();
        let l = &p.limits;
        let mut notes = Vec::new();
        if l.unread_pages > 0 {
            notes.push(format!(
                "{} pages of blocks and driver data are not in the dump: pointers there are not seen, so a block can look orphaned while something still points to it",
                l.unread_pages
            ));
        }
        if l.blocks_left_out > 0 {
            notes.push(format!(
                "{} blocks were not examined (the limit was reached)",
                format::count(l.blocks_left_out)
            ));
        }
        if l.pointers_dropped {
            notes.push(
                "some pointers between blocks were not kept (their targets count as live)".into(),
            );
        }
        ProvenanceView {
            summary,
            splits,
            limits: (!notes.is_empty()).then(|| notes.join("; ") + "."),
        }
    }

    /// The section, when the report has provenance figures.
    pub fn from_report(dump_id: &str, r: &AnalysisReport) -> Option<ProvenanceView> {
        r.provenance
            .as_ref()
            .filter(|p| p.examined.count > 0)
            .map(|p| ProvenanceView::build(dump_id, p))
    }
}

/// One call site's blocks on the driver page.
pub struct SiteBlocksRow {
    pub offset: String,
    pub symbol: String,
    /// `request.c:118` from the driver's PDB, empty without line information.
    pub source: String,
    pub source_file: String,
    pub tag: String,
    pub blocks: u64,
    pub bytes: String,
    pub orphans: String,
}

/// The driver page's provenance section.
pub struct DriverProvenanceView {
    pub summary: String,
    pub sites: Vec<SiteBlocksRow>,
    pub unknown_site: String,
}

impl DriverProvenanceView {
    pub fn build(d: &DriverReport) -> Option<DriverProvenanceView> {
        let p = d.provenance.as_ref()?;
        let summary = format!(
            "The dump ties {} to {} ({} paged, {} nonpaged): certainty high for {}, medium for {}, low for {}. Evidence: {}. {} of them are orphans: nothing in the dump points to them.",
            count_bytes(&p.blocks),
            d.module,
            format::bytes(p.paged_bytes),
            format::bytes(p.nonpaged_bytes),
            p.high.count,
            p.medium.count,
            p.low.count,
            evidence_list(&p.evidence),
            p.orphans.count
        );
        let sites = p
            .sites
            .iter()
            .map(|s| SiteBlocksRow {
                offset: s.offset.clone(),
                symbol: s
                    .symbol
                    .clone()
                    .or_else(|| {
                        d.call_sites
                            .iter()
                            .find(|c| c.call == Some(s.address))
                            .and_then(|c| c.symbol.clone())
                    })
                    .unwrap_or_default(),
                source: s.source.as_ref().map(|l| l.short()).unwrap_or_default(),
                source_file: s
                    .source
                    .as_ref()
                    .map(|l| l.file.clone())
                    .unwrap_or_default(),
                tag: s.tag.clone(),
                blocks: s.blocks.count,
                bytes: format::bytes(s.blocks.bytes),
                orphans: count_bytes(&s.orphans),
            })
            .collect();
        Some(DriverProvenanceView {
            summary,
            sites,
            unknown_site: count_bytes(&p.unknown_site),
        })
    }
}
