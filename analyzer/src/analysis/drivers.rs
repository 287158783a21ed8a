//! The report's drivers: each module whose code allocates with tags holding pool, with those
//! tags' bytes (system and session pool apart), the blocks the walk found for them, and its
//! allocation call sites.

use super::blocks::{keep_largest, BlockAggregator};
use crate::attribution::{AllocSite, Attributor, Mapping, Source};
use crate::kernel::Module;
use crate::pool::{PoolKind, Tag};
use crate::report::analysis::*;
use crate::report::hex::Hex;
use std::collections::{BTreeMap, BTreeSet};

/// Is this mapping evidence that the module's own code allocates with the tag?
fn allocates(m: &Mapping) -> bool {
    matches!(
        m.source,
        Source::DriverCodeAllocation | Source::DriverCallsUntaggedAllocator
    )
}

/// `tags[session_from..]` are session pool's.
pub(super) fn driver_reports(
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
            provenance: None,
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
