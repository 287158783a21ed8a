//! From evidence to an owner, per indexed block.
//!
//! - A block whose tag one module's code allocates with is that module's (evidence `tag`).
//! - Driver Verifier's record of the allocation names the caller exactly (`verifier`).
//! - Otherwise each kind of evidence may name a module: the block's size fits exactly one
//!   module's constant-size call sites (`size`); its own values point into one module's image
//!   or objects (`pointer`); a chain of pointers from one module's data, device extensions or
//!   owned blocks reaches it (`reachable`). When they all name the same module, it is the
//!   owner; when they name different modules, the block stays unattributed and the conflict is
//!   reported. No evidence, no owner: "unattributed" is an answer, a guess is not.
//! - Liveness: a block is live when something outside the index points into it, or a live
//!   indexed block does. An indexed block that is not live is an *orphan*: nothing the dump
//!   holds still points to it.

use super::classify::TagClass;
use super::index::BlockIndex;
use super::refs::{Refs, Via, Vote};
use super::sizes::block_size;
use crate::pool::{PoolKind, Tag};
use std::collections::VecDeque;

/// One kind of evidence, as a bit of [`Evidence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EvidenceKind {
    Verifier,
    Tag,
    Reachable,
    Size,
    Pointer,
}

impl EvidenceKind {
    pub const ALL: [EvidenceKind; 5] = [
        EvidenceKind::Verifier,
        EvidenceKind::Tag,
        EvidenceKind::Reachable,
        EvidenceKind::Size,
        EvidenceKind::Pointer,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of evidence kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence(u8);

impl Evidence {
    pub fn with(self, k: EvidenceKind) -> Evidence {
        Evidence(self.0 | k.bit())
    }
    pub fn has(self, k: EvidenceKind) -> bool {
        self.0 & k.bit() != 0
    }
    pub fn kinds(self) -> impl Iterator<Item = EvidenceKind> {
        EvidenceKind::ALL.into_iter().filter(move |k| self.has(*k))
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// How sure the owner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Certainty {
    Low,
    Medium,
    High,
}

/// How a block's call site was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteBasis {
    /// Verifier recorded the caller.
    Verifier,
    /// The block's size fits this site's constant size only.
    Size,
    /// The owner has no other site for the tag and pool.
    OnlySite,
}

/// The decision for one indexed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub owner: Option<u16>,
    pub site: Option<(u64, SiteBasis)>,
    pub evidence: Evidence,
    pub certainty: Certainty,
    /// Evidence named more than one module.
    pub conflict: bool,
    pub orphan: bool,
}

/// A call site as provenance needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    pub module: u16,
    /// Its address, as the report names it.
    pub address: u64,
    /// The call instruction (Verifier records the return address just after it).
    pub call: u64,
    /// The tag it allocates with ('None' for the untagged allocators).
    pub tag: Tag,
    /// Paged (true), nonpaged (false), unknown.
    pub paged: Option<bool>,
    /// The constant size it asks for, when there is one.
    pub size: Option<u64>,
}

/// A Verifier record: the block's owner and call site are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    pub module: u16,
    pub site: Option<u64>,
}

/// What the decisions need besides the scan.
pub struct Inputs<'a> {
    pub index: &'a BlockIndex,
    pub sites: &'a [Site],
    /// POOL_HEADER size: 8 (x86) or 16 (x64).
    pub header: u64,
    /// Verifier records by indexed block, when Verifier tracked the allocation.
    pub tracked: &'a [Option<Tracked>],
}

/// Decides every indexed block.
pub fn decide(inputs: &Inputs, refs: &Refs) -> Vec<Decision> {
    let n = inputs.index.len();
    let targets = adjacency(refs, n);
    let live = liveness(refs, &targets);
    let chain = chains(inputs, refs, &targets);
    (0..n)
        .map(|i| {
            let mut d = owner_of(inputs, refs, &chain, i);
            d.orphan = !live[i];
            d
        })
        .collect()
}

/// The targets of each block's pointers, as index ranges into a sorted edge list.
struct Adjacency {
    edges: Vec<(u32, u32)>,
    starts: Vec<usize>,
}

impl Adjacency {
    fn targets(&self, s: usize) -> impl Iterator<Item = usize> + '_ {
        let (a, b) = (self.starts[s], self.starts[s + 1]);
        self.edges[a..b].iter().map(|&(_, d)| d as usize)
    }
}

fn adjacency(refs: &Refs, n: usize) -> Adjacency {
    let mut edges = refs.edges.clone();
    edges.sort_unstable();
    edges.dedup();
    let mut starts = vec![0usize; n + 1];
    for &(s, _) in &edges {
        if let Some(c) = starts.get_mut(s as usize + 1) {
            *c += 1;
        }
    }
    for i in 0..n {
        starts[i + 1] += starts[i];
    }
    Adjacency { edges, starts }
}

/// Live blocks: pointed to from outside the index, or from a live indexed block.
fn liveness(refs: &Refs, adj: &Adjacency) -> Vec<bool> {
    let mut live = refs.live.clone();
    let mut queue: VecDeque<usize> = (0..live.len()).filter(|&i| live[i]).collect();
    while let Some(s) = queue.pop_front() {
        for d in adj.targets(s) {
            if !live[d] {
                live[d] = true;
                queue.push_back(d);
            }
        }
    }
    live
}

/// The module each ambiguous block is reachable from: roots (module data, device extensions,
/// owned blocks outside the index) and indexed blocks with a known owner (their tag's, or
/// Verifier's), followed through pointers between indexed blocks.
fn chains(inputs: &Inputs, refs: &Refs, adj: &Adjacency) -> Vec<Vote> {
    let entries = inputs.index.entries();
    let mut votes = refs.reach.clone();
    let mut queue = VecDeque::new();
    for (i, e) in entries.iter().enumerate() {
        let known = match (e.class, inputs.tracked.get(i).copied().flatten()) {
            (_, Some(t)) => Some(t.module),
            (TagClass::Owned(m), None) => Some(m),
            _ => votes[i].decided(),
        };
        if let Some(m) = known {
            queue.push_back((i, m));
        }
    }
    while let Some((s, m)) = queue.pop_front() {
        for d in adj.targets(s) {
            if entries[d].class != TagClass::Ambiguous || d == s {
                continue;
            }
            let before = votes[d];
            votes[d].add(m, Via::Chain);
            if before.module.is_none() && votes[d].module.is_some() {
                queue.push_back((d, m));
            }
        }
    }
    votes
}

fn owner_of(inputs: &Inputs, refs: &Refs, chain: &[Vote], i: usize) -> Decision {
    let e = &inputs.index.entries()[i];
    let mut d = Decision {
        owner: None,
        site: None,
        evidence: Evidence::default(),
        certainty: Certainty::Low,
        conflict: false,
        orphan: false,
    };
    let size = size_vote(inputs, i);
    let pointer = refs.points_to[i];
    let reach = chain[i];
    if let Some(t) = inputs.tracked.get(i).copied().flatten() {
        d.owner = Some(t.module);
        d.site = t.site.map(|a| (a, SiteBasis::Verifier));
        d.evidence = d.evidence.with(EvidenceKind::Verifier);
        d.certainty = Certainty::High;
    } else if let TagClass::Owned(m) = e.class {
        d.owner = Some(m);
        d.evidence = d.evidence.with(EvidenceKind::Tag);
        d.certainty = Certainty::High;
    }
    let named = [
        (EvidenceKind::Size, size.module),
        (EvidenceKind::Pointer, pointer.decided()),
        (EvidenceKind::Reachable, reach.decided()),
    ];
    match d.owner {
        // The tag's or Verifier's owner stands; agreeing evidence is listed. Other modules
        // may hold pointers to a block they did not allocate (a buffer handed to them).
        Some(owner) => {
            for (k, m) in named {
                if m == Some(owner) {
                    d.evidence = d.evidence.with(k);
                }
            }
        }
        None => {
            d.conflict = pointer.conflict || reach.conflict;
            let mut modules: Vec<u16> = named.iter().filter_map(|(_, m)| *m).collect();
            modules.sort_unstable();
            modules.dedup();
            match modules[..] {
                [m] => {
                    d.owner = Some(m);
                    for (k, n) in named {
                        if n == Some(m) {
                            d.evidence = d.evidence.with(k);
                        }
                    }
                    d.certainty = certainty(d.evidence, d.conflict);
                }
                [] => {}
                _ => d.conflict = true,
            }
        }
    }
    if d.site.is_none() {
        d.site = d.owner.and_then(|m| site_of(inputs, i, m, size));
    }
    d
}

/// Two kinds that agree make a sure owner; one alone, a likely one; any conflict lowers it.
fn certainty(evidence: Evidence, conflict: bool) -> Certainty {
    let kinds = evidence.kinds().count();
    match (kinds, conflict) {
        (0, _) => Certainty::Low,
        (_, true) => Certainty::Low,
        (1, false) => Certainty::Medium,
        (_, false) => Certainty::High,
    }
}

/// The size evidence of one block: the one module whose constant-size sites (for the block's
/// tag and pool) give exactly its size, and the site when only one does.
#[derive(Debug, Clone, Copy, Default)]
struct SizeVote {
    module: Option<u16>,
    site: Option<u64>,
}

fn size_vote(inputs: &Inputs, i: usize) -> SizeVote {
    let e = &inputs.index.entries()[i];
    let header = if e.source == crate::pool::BlockSource::Big {
        0
    } else {
        inputs.header
    };
    let fits = inputs.sites.iter().filter(|s| {
        s.tag == e.tag.unprotected()
            && pool_matches(s.paged, e.pool)
            && s.size
                .and_then(|z| block_size(z, header, e.source))
                .is_some_and(|z| z == u64::from(e.size))
    });
    let mut module = None;
    let mut site = None;
    let mut sites = 0;
    for s in fits {
        match module {
            None => module = Some(s.module),
            Some(m) if m != s.module => return SizeVote::default(),
            Some(_) => {}
        }
        sites += 1;
        site = Some(s.address);
    }
    SizeVote {
        module,
        site: site.filter(|_| sites == 1),
    }
}

fn pool_matches(paged: Option<bool>, pool: PoolKind) -> bool {
    matches!(
        (paged, pool),
        (Some(true), PoolKind::Paged)
            | (Some(false), PoolKind::Nonpaged)
            | (None, _)
            | (_, PoolKind::Unknown)
    )
}

/// The owner's site for a block: the size evidence's, else the owner's only site for the
/// tag and pool.
fn site_of(inputs: &Inputs, i: usize, owner: u16, size: SizeVote) -> Option<(u64, SiteBasis)> {
    if size.module == Some(owner) {
        if let Some(s) = size.site {
            return Some((s, SiteBasis::Size));
        }
    }
    let e = &inputs.index.entries()[i];
    let mut candidates = inputs.sites.iter().filter(|s| {
        s.module == owner && s.tag == e.tag.unprotected() && pool_matches(s.paged, e.pool)
    });
    let first = candidates.next()?;
    candidates
        .next()
        .is_none()
        .then_some((first.address, SiteBasis::OnlySite))
}
