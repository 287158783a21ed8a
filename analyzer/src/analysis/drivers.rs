//! The report's drivers: each module whose code allocates with tags holding pool, with those
//! tags' bytes (system and session pool apart), the blocks the walk found for them, and its
//! allocation call sites.

use super::blocks::{keep_largest, BlockAggregator};
use crate::attribution::{AllocSite, Attributor, Source};
use crate::kernel::Module;
use crate::pool::{PoolKind, Tag};
use crate::report::analysis::*;
use crate::report::hex::Hex;
use crate::report::provenance::TagSplit;
use std::collections::{BTreeMap, BTreeSet};

/// Is this mapping evidence that the module's own code allocates with the tag?
fn allocates(source: Source) -> bool {
    matches!(
        source,
        Source::DriverCodeAllocation | Source::DriverCallsUntaggedAllocator
    )
}

/// What the drivers table is built from.
pub(super) struct DriverInputs<'a> {
    /// System tags, then session tags from `session_from` on.
    pub tags: &'a [TagReport],
    pub session_from: usize,
    pub agg: &'a BlockAggregator,
    pub attributor: &'a Attributor,
    pub mods: &'a [Module],
    /// Paged + nonpaged pool in use (`!vm`), when known.
    pub in_use_total: Option<u64>,
    /// Each ambiguous tag's blocks split between modules by provenance ('None', tags several
    /// modules' code allocates with), by tag text.
    pub splits: &'a BTreeMap<String, TagSplit>,
}

/// Module name -> the tags tied to it (index into the tags) and how.
type Ties = BTreeMap<String, Vec<(usize, Source)>>;

/// The modules tied to each tag: by their own code, by provenance's split of an ambiguous
/// tag, and only failing both by a pooltag-file line naming a loaded module (a description
/// never overrides evidence from code or blocks).
fn ties(x: &DriverInputs) -> (Ties, Vec<BTreeSet<String>>) {
    let mut by_module: Ties = BTreeMap::new();
    let mut owners_of: Vec<BTreeSet<String>> = vec![BTreeSet::new(); x.tags.len()];
    let loaded = |name: &str| {
        x.mods
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .map(|m| m.name.clone())
    };
    let tie = |by_module: &mut Ties, name: String, i, source| {
        let e = by_module.entry(name).or_default();
        if !e.iter().any(|(j, _)| *j == i) {
            e.push((i, source));
        }
    };
    for (i, t) in x.tags.iter().enumerate() {
        let split = (i < x.session_from).then(|| x.splits.get(&t.tag)).flatten();
        let code: Vec<(&str, Source)> = t
            .owners
            .iter()
            .filter(|o| allocates(o.source))
            .filter_map(|o| Some((o.module.as_deref()?, o.source)))
            .collect();
        for &(module, source) in &code {
            let name = loaded(module).unwrap_or_else(|| module.to_string());
            owners_of[i].insert(name.clone());
            tie(&mut by_module, name, i, source);
        }
        for share in split.iter().flat_map(|s| s.modules.iter()) {
            let name = loaded(&share.module).unwrap_or_else(|| share.module.clone());
            tie(&mut by_module, name, i, Source::BlockProvenance);
        }
        if code.is_empty() && split.is_none() {
            let named = t
                .owners
                .iter()
                .filter(|o| o.source == Source::PoolTagFile)
                .filter_map(|o| loaded(o.module.as_deref()?));
            for name in named {
                tie(&mut by_module, name, i, Source::PoolTagFile);
            }
        }
    }
    (by_module, owners_of)
}

pub(super) fn driver_reports(x: &DriverInputs) -> Vec<DriverReport> {
    let (by_module, owners_of) = ties(x);
    by_module
        .into_iter()
        .map(|(module, list)| driver_report(x, &owners_of, module, &list))
        .collect()
}

/// One module's row: its tags (its share of each ambiguous one), their blocks and its sites.
fn driver_report(
    x: &DriverInputs,
    owners_of: &[BTreeSet<String>],
    module: String,
    list: &[(usize, Source)],
) -> DriverReport {
    let m = x.mods.iter().find(|m| m.name == module);
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
    for &(i, source) in list {
        let Some(t) = x.tags.get(i) else { continue };
        let session = i >= x.session_from;
        let split = (!session).then(|| x.splits.get(&t.tag)).flatten();
        let row = tag_row(t, split, &module, source, session, owners_of.get(i));
        if session {
            d.session_bytes = d
                .session_bytes
                .saturating_add(row.paged_bytes)
                .saturating_add(row.nonpaged_bytes);
        } else {
            d.paged_bytes = d.paged_bytes.saturating_add(row.paged_bytes);
            d.nonpaged_bytes = d.nonpaged_bytes.saturating_add(row.nonpaged_bytes);
        }
        d.allocations = d.allocations.saturating_add(row.allocations);
        d.tags.push(row);
        if let Some(tag) = tag_of(&t.tag) {
            tag_set.insert(tag);
        }
        if session && d.tags.iter().any(|r| r.tag == t.tag && !r.session) {
            // The same tag in system pool: its blocks are counted there once.
            continue;
        }
        add_blocks(
            x.agg,
            t,
            split,
            &module,
            &mut d.blocks,
            &mut largest,
            &mut tag_set,
        );
    }
    let system = d.paged_bytes.saturating_add(d.nonpaged_bytes);
    d.bytes = system.saturating_add(d.session_bytes);
    // Share of system pool in use (session pool has no !vm figure here).
    d.share_of_pool = x.in_use_total.map(|t| system as f64 / t as f64);
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
    if let Some((sites, truncated)) = x.attributor.sites(&module) {
        d.call_sites_truncated = truncated;
        d.call_sites = sites
            .iter()
            .filter(|s| tag_set.contains(&s.tag))
            .map(|s| call_site(s, &module, m))
            .collect();
    }
    d
}

/// A driver's row for one tag: the whole tag when the tag is its own, its share of the
/// blocks when provenance split the tag.
fn tag_row(
    t: &TagReport,
    split: Option<&TagSplit>,
    module: &str,
    source: Source,
    session: bool,
    owners: Option<&BTreeSet<String>>,
) -> DriverTag {
    let shared_with = owners
        .map(|s| s.iter().filter(|o| *o != module).cloned().collect())
        .unwrap_or_default();
    let (paged_bytes, nonpaged_bytes, allocations) = match split {
        Some(s) => s
            .modules
            .iter()
            .find(|m| m.module.eq_ignore_ascii_case(module))
            .map_or((0, 0, 0), |m| (m.paged_bytes, m.nonpaged_bytes, m.count)),
        None => (
            t.paged_bytes,
            t.nonpaged_bytes,
            t.paged_outstanding.saturating_add(t.nonpaged_outstanding),
        ),
    };
    DriverTag {
        tag: t.tag.clone(),
        paged_bytes,
        nonpaged_bytes,
        allocations,
        evidence: source,
        shared_with,
        session,
        attributed: split.is_some(),
    }
}

/// The walk's blocks of a tag, for a driver: all of them for its own tag, its attributed
/// share for a split one (whose largest blocks may be another module's: not listed).
fn add_blocks(
    agg: &BlockAggregator,
    t: &TagReport,
    split: Option<&TagSplit>,
    module: &str,
    blocks: &mut DriverBlocks,
    largest: &mut Vec<super::blocks::KeptBlock>,
    tag_set: &mut BTreeSet<Tag>,
) {
    if let Some(s) = split {
        if let Some(share) = s
            .modules
            .iter()
            .find(|m| m.module.eq_ignore_ascii_case(module))
        {
            blocks.count += share.count;
            blocks.bytes = blocks.bytes.saturating_add(share.bytes);
        }
        return;
    }
    // Printable tags parse back from their text; an escaped one is looked up by text.
    let found = match tag_of(&t.tag) {
        Some(tag) => agg.tags.get_key_value(&tag),
        None => agg.tags.iter().find(|(tag, _)| tag.to_string() == t.tag),
    };
    if let Some((tag, a)) = found {
        tag_set.insert(*tag);
        blocks.count += a.count;
        blocks.bytes = blocks.bytes.saturating_add(a.bytes);
        for b in &a.largest {
            keep_largest(largest, *b, MAX_LARGEST_BLOCKS);
        }
    }
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
        call: Some(Hex(s.call)),
        source: None,
    }
}
