//! Provenance as the report gives it: per block, per ambiguous tag, per driver and call site.

use super::classify::TagClass;
use super::decide::{Certainty, Decision, EvidenceKind, SiteBasis};
use super::{BlockProvenance, Provenance};
use crate::kernel::Module;
use crate::pool::PoolKind;
use crate::report::analysis::{Confidence, CountBytes};
use crate::report::hex::Hex;
use crate::report::provenance as r;
use std::collections::BTreeMap;

fn add(c: &mut CountBytes, bytes: u64) {
    c.count += 1;
    c.bytes = c.bytes.saturating_add(bytes);
}

fn evidence_name(k: EvidenceKind) -> r::EvidenceName {
    match k {
        EvidenceKind::Verifier => r::EvidenceName::Verifier,
        EvidenceKind::Tag => r::EvidenceName::Tag,
        EvidenceKind::Reachable => r::EvidenceName::Reachable,
        EvidenceKind::Size => r::EvidenceName::Size,
        EvidenceKind::Pointer => r::EvidenceName::Pointer,
    }
}

fn confidence(c: Certainty) -> Confidence {
    match c {
        Certainty::High => Confidence::High,
        Certainty::Medium => Confidence::Medium,
        Certainty::Low => Confidence::Low,
    }
}

fn evidence_counts(by: &BTreeMap<EvidenceKind, CountBytes>) -> Vec<r::EvidenceCount> {
    by.iter()
        .map(|(k, c)| r::EvidenceCount {
            kind: evidence_name(*k),
            count: c.count,
            bytes: c.bytes,
        })
        .collect()
}

impl BlockProvenance<'_> {
    /// The block's owner, as the listings give it.
    pub fn owner(&self) -> r::BlockOwner {
        let d = self.decision;
        r::BlockOwner {
            module: d.owner.map(|m| self.provenance.module_name(m).to_string()),
            site: d.site.map(|(a, _)| Hex(a)),
            site_offset: d.site.map(|(a, _)| self.provenance.modules.offset(a)),
            site_basis: d.site.map(|(_, basis)| match basis {
                SiteBasis::Verifier => r::SiteBasis::Verifier,
                SiteBasis::Size => r::SiteBasis::Size,
                SiteBasis::OnlySite => r::SiteBasis::OnlySite,
            }),
            evidence: d.evidence.kinds().map(evidence_name).collect(),
            confidence: d.owner.map(|_| confidence(d.certainty)),
            conflict: d.conflict,
            orphan: d.orphan,
        }
    }
}

impl Provenance {
    /// The whole dump's figures.
    pub fn report(&self) -> r::ProvenanceReport {
        let mut out = r::ProvenanceReport {
            examined: CountBytes::default(),
            attributed: CountBytes::default(),
            unattributed: CountBytes::default(),
            orphans: CountBytes::default(),
            conflicts: 0,
            evidence: Vec::new(),
            tags: Vec::new(),
            driver_objects: self.driver_objects.len() as u64,
            limits: r::ProvenanceLimits {
                blocks_left_out: self.limits.blocks_left_out,
                pointers_dropped: self.limits.pointers_dropped,
                unread_pages: self.limits.unread_pages,
                blocks_scanned: self.limits.blocks_scanned,
            },
        };
        let mut evidence = BTreeMap::new();
        let mut tags: BTreeMap<String, TagAcc> = BTreeMap::new();
        for b in self.blocks() {
            let (e, d) = (b.entry, b.decision);
            let bytes = u64::from(e.size);
            add(&mut out.examined, bytes);
            if d.orphan {
                add(&mut out.orphans, bytes);
            }
            out.conflicts += u64::from(d.conflict);
            match d.owner {
                Some(_) => add(&mut out.attributed, bytes),
                None => add(&mut out.unattributed, bytes),
            }
            for k in d.evidence.kinds() {
                add(evidence.entry(k).or_default(), bytes);
            }
            if e.class == TagClass::Ambiguous {
                let t = tags.entry(e.tag.unprotected().to_string()).or_default();
                t.add(self, d, e.pool, bytes);
            }
        }
        out.evidence = evidence_counts(&evidence);
        out.tags = tags.into_iter().map(|(tag, t)| t.finish(tag)).collect();
        out.tags
            .sort_by(|a, b| b.blocks.bytes.cmp(&a.blocks.bytes).then(a.tag.cmp(&b.tag)));
        out
    }

    /// One module's attributed blocks; `None` when it owns none.
    pub fn driver(&self, module: &str, m: Option<&Module>) -> Option<r::DriverProvenance> {
        let idx = self.module_index(module)?;
        let mut out = r::DriverProvenance {
            blocks: CountBytes::default(),
            paged_bytes: 0,
            nonpaged_bytes: 0,
            orphans: CountBytes::default(),
            evidence: Vec::new(),
            high: CountBytes::default(),
            medium: CountBytes::default(),
            low: CountBytes::default(),
            sites: Vec::new(),
            unknown_site: CountBytes::default(),
        };
        let mut evidence = BTreeMap::new();
        let mut sites: BTreeMap<(u64, String), (CountBytes, CountBytes)> = BTreeMap::new();
        for b in self.blocks().filter(|b| b.decision.owner == Some(idx)) {
            let (e, d) = (b.entry, b.decision);
            let bytes = u64::from(e.size);
            add(&mut out.blocks, bytes);
            match e.pool {
                PoolKind::Paged => out.paged_bytes = out.paged_bytes.saturating_add(bytes),
                PoolKind::Nonpaged => out.nonpaged_bytes = out.nonpaged_bytes.saturating_add(bytes),
                _ => {}
            }
            if d.orphan {
                add(&mut out.orphans, bytes);
            }
            for k in d.evidence.kinds() {
                add(evidence.entry(k).or_default(), bytes);
            }
            add(
                match d.certainty {
                    Certainty::High => &mut out.high,
                    Certainty::Medium => &mut out.medium,
                    Certainty::Low => &mut out.low,
                },
                bytes,
            );
            match d.site {
                Some((a, _)) => {
                    let s = sites
                        .entry((a, e.tag.unprotected().to_string()))
                        .or_default();
                    add(&mut s.0, bytes);
                    if d.orphan {
                        add(&mut s.1, bytes);
                    }
                }
                None => add(&mut out.unknown_site, bytes),
            }
        }
        if out.blocks.count == 0 {
            return None;
        }
        out.evidence = evidence_counts(&evidence);
        out.sites = sites
            .into_iter()
            .map(|((a, tag), (blocks, orphans))| r::SiteBlocks {
                address: Hex(a),
                offset: match m {
                    Some(m) => format!("{module}+{:#x}", a.wrapping_sub(m.base)),
                    None => format!("{a:#x}"),
                },
                tag,
                blocks,
                orphans,
                symbol: None,
                source: None,
            })
            .collect();
        out.sites.sort_by(|a, b| {
            b.blocks
                .bytes
                .cmp(&a.blocks.bytes)
                .then(a.address.cmp(&b.address))
        });
        Some(out)
    }

    fn module_index(&self, name: &str) -> Option<u16> {
        let i = self
            .modules
            .names()
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))?;
        u16::try_from(i).ok()
    }
}

/// One ambiguous tag's blocks as they are counted.
#[derive(Default)]
struct TagAcc {
    blocks: CountBytes,
    unattributed: CountBytes,
    modules: BTreeMap<String, r::ModuleShare>,
}

impl TagAcc {
    fn add(&mut self, p: &Provenance, d: &Decision, pool: PoolKind, bytes: u64) {
        add(&mut self.blocks, bytes);
        let Some(m) = d.owner else {
            add(&mut self.unattributed, bytes);
            return;
        };
        let name = p.module_name(m).to_string();
        let s = self
            .modules
            .entry(name.clone())
            .or_insert_with(|| r::ModuleShare {
                module: name,
                count: 0,
                bytes: 0,
                paged_bytes: 0,
                nonpaged_bytes: 0,
                orphans: CountBytes::default(),
            });
        s.count += 1;
        s.bytes = s.bytes.saturating_add(bytes);
        match pool {
            PoolKind::Paged => s.paged_bytes = s.paged_bytes.saturating_add(bytes),
            PoolKind::Nonpaged => s.nonpaged_bytes = s.nonpaged_bytes.saturating_add(bytes),
            _ => {}
        }
        if d.orphan {
            add(&mut s.orphans, bytes);
        }
    }

    fn finish(self, tag: String) -> r::TagSplit {
        let mut modules: Vec<r::ModuleShare> = self.modules.into_values().collect();
        modules.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.module.cmp(&b.module)));
        r::TagSplit {
            tag,
            blocks: self.blocks,
            modules,
            unattributed: self.unattributed,
        }
    }
}
