//! The verdict docs/json.md's rule ("verdict", "The rule") gives a forged dump, computed from
//! its truth file alone: who holds what (the truth's tags, and its per-block owners or per-site
//! figures for tags several modules allocate with), the `!vm` figures the forge planted, the
//! blocks billed to a process. Scenario names are never looked at.
//!
//! Holdings follow the rule: a tag only one module's code allocates with counts whole (tag
//! tables); a tag several modules allocate with ('None', a shared tag) counts only the blocks
//! tied to the module, which the dump must hold evidence for: between the truth's blocks of the
//! module that have evidence (less 5%, the documented provenance bar) and all its blocks the
//! dump holds. Without a block list (busy-server) the truth's per-site figures
//! (`provenance.modules[].sites`) are both bounds. Blocks on a page in transition count toward
//! the upper bound only: on 7601 and later the forge stores that PTE swizzled (InvalidPteMask,
//! bit 45), which pooltriage's page walk does not undo yet, so it reads the page as missing.

use crate::harness::hx;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// docs/json.md: nonpaged pool near exhaustion above 80% of its maximum, paged above 95%.
const NEAR_NONPAGED: f64 = 0.80;
const NEAR_PAGED: f64 = 0.95;
/// `LEAK_SHARE_OF_MAXIMUM`, `SIGNIFICANT_SHARE`, `QUOTA_DOMINANCE`.
const LEAK_SHARE_OF_MAXIMUM: f64 = 0.25;
const SIGNIFICANT_SHARE: f64 = 0.10;
/// Provenance's bar: per-module bytes within 5% of the truth's blocks with evidence.
const PROVENANCE_SLACK: u64 = 5;

pub const POOLS: [&str; 2] = ["paged", "nonpaged"];

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Bytes a module holds in one pool: `exact` from its own tags, plus between `lo` and `hi` of
/// tags shared with other modules.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bytes {
    pub exact: u64,
    pub lo: u64,
    pub hi: u64,
}

impl Bytes {
    pub fn add(&mut self, o: Bytes) {
        self.exact += o.exact;
        self.lo += o.lo;
        self.hi += o.hi;
    }
    /// The least the analyzer may report.
    pub fn min(&self) -> u64 {
        self.exact + self.lo - self.lo * PROVENANCE_SLACK / 100
    }
    /// The most it may report: never more than the module holds.
    pub fn max(&self) -> u64 {
        self.exact + self.hi
    }
    pub fn mid(&self) -> u64 {
        (self.min() + self.max()) / 2
    }
    pub fn contains(&self, v: u64) -> bool {
        (self.min()..=self.max()).contains(&v)
    }
}

/// A scenario driver's holdings per pool ("paged", "nonpaged", "session") and its tags.
#[derive(Debug, Default)]
pub struct Holdings {
    pub pools: BTreeMap<&'static str, Bytes>,
    /// Its tags with their bytes in both system pools (mid), largest first.
    pub tags: Vec<(String, u64)>,
}

impl Holdings {
    pub fn pool(&self, pool: &str) -> Bytes {
        self.pools.get(pool).copied().unwrap_or_default()
    }
    pub fn total(&self) -> Bytes {
        let mut t = Bytes::default();
        for b in self.pools.values() {
            t.add(*b);
        }
        t
    }
    /// System pool (paged + nonpaged).
    fn system(&self) -> Bytes {
        let mut t = self.pool("paged");
        t.add(self.pool("nonpaged"));
        t
    }
}

/// Modules that allocate with each tag: the truth's drivers, the modules with call sites in
/// `provenance.modules`, the owners of blocks.
fn tag_modules(pool: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in pool["drivers"].as_array().into_iter().flatten() {
        for t in d["tags"].as_array().into_iter().flatten() {
            out.entry(s(t).into())
                .or_default()
                .insert(s(&d["module"]).into());
        }
    }
    for m in pool["provenance"]["modules"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for site in m["sites"].as_array().into_iter().flatten() {
            let tag = site["tag"].as_str().unwrap_or("None");
            out.entry(tag.into())
                .or_default()
                .insert(s(&m["module"]).into());
        }
    }
    for b in owned_blocks(pool) {
        out.entry(s(&b["tag"]).into())
            .or_default()
            .insert(s(&b["owner"]).into());
    }
    out
}

/// Every truth block with an owner, those the dump holds and those paged out.
fn owned_blocks(pool: &Value) -> impl Iterator<Item = &Value> {
    pool["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pool["provenance"]["paged_out_blocks"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter(|b| b["owner"].is_string())
}

/// `tag`'s bytes per pool in the truth's tag tables (system pools, and session).
fn tag_bytes(pool: &Value, tag: &str) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    let row = |key: &str| {
        pool[key]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["tag"] == tag)
            .cloned()
    };
    if let Some(t) = row("tags") {
        for p in POOLS {
            *out.entry(p).or_default() += t[format!("{p}_bytes")].as_u64().unwrap_or(0);
        }
    }
    if let Some(t) = row("session_tags") {
        let b = t["paged_bytes"].as_u64().unwrap_or(0) + t["nonpaged_bytes"].as_u64().unwrap_or(0);
        *out.entry("session").or_default() += b;
    }
    out
}

fn pool_name(v: &Value) -> &'static str {
    if v == "paged" {
        "paged"
    } else {
        "nonpaged"
    }
}

/// A shared tag's bytes tied to `module`, per pool: from its blocks (lo: those with evidence,
/// hi: all the dump holds), else from its call sites.
fn shared_bytes(pool: &Value, module: &str, tag: &str) -> BTreeMap<&'static str, Bytes> {
    let mut out: BTreeMap<&'static str, Bytes> = BTreeMap::new();
    let with_owners = pool["blocks"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["tag"] == tag && b["owner"].is_string()));
    if with_owners {
        for b in pool["blocks"].as_array().unwrap() {
            if b["tag"] != tag || b["owner"] != module || b["allocated"] != true {
                continue;
            }
            let size = b["size"].as_u64().unwrap();
            let e = out.entry(pool_name(&b["pool_type"])).or_default();
            e.hi += size;
            if b["evidence"].as_array().is_some_and(|e| !e.is_empty()) && b["transition"] != true {
                e.lo += size;
            }
        }
        return out;
    }
    let modules = pool["provenance"]["modules"]
        .as_array()
        .into_iter()
        .flatten();
    for m in modules.filter(|m| m["module"] == module) {
        for site in m["sites"].as_array().unwrap() {
            if site["tag"].as_str().unwrap_or("None") != tag {
                continue;
            }
            let bytes = site["bytes"].as_u64().unwrap();
            let e = out.entry(pool_name(&site["pool_type"])).or_default();
            e.lo += bytes;
            e.hi += bytes;
        }
    }
    out
}

/// What each of the truth's drivers holds, by the rule.
pub fn holdings(pool: &Value) -> BTreeMap<String, Holdings> {
    let modules = tag_modules(pool);
    let mut out = BTreeMap::new();
    for d in pool["drivers"].as_array().into_iter().flatten() {
        let m = s(&d["module"]);
        let mut h = Holdings::default();
        for (tag, who) in modules.iter().filter(|(_, who)| who.contains(m)) {
            let shared = tag == "None" || who.len() > 1;
            let per_pool: BTreeMap<&'static str, Bytes> = if shared {
                shared_bytes(pool, m, tag)
            } else {
                tag_bytes(pool, tag)
                    .into_iter()
                    .map(|(p, b)| {
                        (
                            p,
                            Bytes {
                                exact: b,
                                lo: 0,
                                hi: 0,
                            },
                        )
                    })
                    .collect()
            };
            let mut system = Bytes::default();
            for (p, b) in per_pool {
                h.pools.entry(p).or_default().add(b);
                if p != "session" {
                    system.add(b);
                }
            }
            h.tags.push((tag.clone(), system.mid()));
        }
        h.tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.insert(m.to_string(), h);
    }
    out
}

/// What the truth says the verdict must be.
#[derive(Debug)]
pub struct Expected {
    pub kind: &'static str,
    pub drivers: BTreeSet<String>,
    pub tags: BTreeSet<String>,
    /// The planted process (eprocess) for a quota verdict.
    pub process: Option<u64>,
    /// The drivers' tags are only in the truth's session pool: the verdict is about session pool.
    pub session: bool,
    /// The verdict's pool and the named driver's bytes there (not for a quota verdict).
    pub pool: Option<&'static str>,
    pub bytes: Option<Bytes>,
    /// `pressure.rule`, or None when the pool is not under pressure.
    pub pressure: Option<&'static str>,
}

/// The pool's in-use fraction of its maximum from the truth's `vm`.
fn used(pool: &Value, which: &str) -> Option<(u64, u64)> {
    let vm = &pool["vm"];
    Some((
        vm[format!("{which}_in_use")].as_u64()?,
        vm[format!("{which}_max")].as_u64()?,
    ))
}

/// `!vm`'s near exhaustion for `which` ("paged" / "nonpaged").
pub fn near(pool: &Value, which: &str) -> bool {
    let limit = if which == "paged" {
        NEAR_PAGED
    } else {
        NEAR_NONPAGED
    };
    used(pool, which).is_some_and(|(u, m)| u as f64 > m as f64 * limit)
}

/// The pressure rule for a driver holding `bytes` in `which`.
fn pressure(pool: &Value, which: &str, bytes: u64) -> Option<&'static str> {
    if near(pool, which) {
        return Some("near-exhaustion");
    }
    let (_, max) = used(pool, which)?;
    (bytes as f64 >= max as f64 * LEAK_SHARE_OF_MAXIMUM).then_some("share-of-maximum")
}

/// The process most of the drivers' tag bytes are billed to.
fn billed_process(pool: &Value, tags: &BTreeSet<String>) -> Option<u64> {
    let mut billed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut tag_bytes = 0u64;
    for b in pool["blocks"].as_array().into_iter().flatten() {
        if b["allocated"] != true || !tags.contains(s(&b["tag"])) {
            continue;
        }
        let size = b["size"].as_u64().unwrap();
        tag_bytes += size;
        if let Some(p) = b.get("process_billed").filter(|p| !p.is_null()) {
            *billed.entry(hx(p)).or_insert(0) += size;
        }
    }
    let (p, bytes) = billed.into_iter().max_by_key(|(_, b)| *b)?;
    (bytes * 2 >= tag_bytes).then_some(p)
}

/// The largest tag of a pool in the truth's tag tables.
fn top_tag(pool: &Value, which: &str) -> Option<String> {
    let key = format!("{which}_bytes");
    pool["tags"]
        .as_array()?
        .iter()
        .max_by_key(|t| t[&key].as_u64().unwrap_or(0))
        .map(|t| s(&t["tag"]).to_string())
}

pub fn expected(truth: &Value) -> Expected {
    let pool = &truth["pool"];
    let held = holdings(pool);
    let tags_of = |m: &str| -> BTreeSet<String> {
        held.get(m)
            .map(|h| h.tags.iter().map(|t| t.0.clone()).collect())
            .unwrap_or_default()
    };
    let mut e = Expected {
        kind: "no-leak-found",
        drivers: BTreeSet::new(),
        tags: BTreeSet::new(),
        process: None,
        session: false,
        pool: None,
        bytes: None,
        pressure: None,
    };
    let all: BTreeSet<String> = held.keys().flat_map(|m| tags_of(m)).collect();
    if held.is_empty() {
        return e;
    }
    if let Some(p) = billed_process(pool, &all) {
        e.kind = "process-quota";
        e.drivers = held.keys().cloned().collect();
        e.tags = all;
        e.process = Some(p);
        return e;
    }
    // Session candidate: a driver whose holdings are all session pool.
    let session_in_use: u64 = pool["session_tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["paged_bytes"].as_u64().unwrap_or(0) + t["nonpaged_bytes"].as_u64().unwrap_or(0))
        .sum();
    let session = held
        .iter()
        .filter(|(_, h)| h.pool("session").max() > 0 && h.system().max() == 0)
        .max_by_key(|(_, h)| h.pool("session").max());
    if let Some((m, h)) = session {
        let bytes = h.pool("session");
        if bytes.max() as f64 >= session_in_use as f64 * SIGNIFICANT_SHARE {
            e.session = true;
            e.pool = Some("paged");
            e.pressure = near(pool, "paged").then_some("near-exhaustion");
            e.kind = if e.pressure.is_some() {
                "driver-leak"
            } else {
                "largest-consumer"
            };
            e.drivers = BTreeSet::from([m.clone()]);
            e.tags = tags_of(m);
            e.bytes = Some(bytes);
            return e;
        }
    }
    system_verdict(pool, &held, e)
}

/// Steps 2 and 5: the driver holding the most system pool.
fn system_verdict(pool: &Value, held: &BTreeMap<String, Holdings>, mut e: Expected) -> Expected {
    let Some((m, h)) = held.iter().max_by(|a, b| {
        a.1.system()
            .mid()
            .cmp(&b.1.system().mid())
            .then(b.0.cmp(a.0))
    }) else {
        return e;
    };
    let (paged, nonpaged) = (h.pool("paged"), h.pool("nonpaged"));
    let which = if nonpaged.mid() > paged.mid() {
        "nonpaged"
    } else {
        "paged"
    };
    let bytes = h.pool(which);
    let main = h.tags.first().map(|t| t.0.clone()).unwrap_or_default();
    let in_use = used(pool, which).map_or(0, |(u, _)| u);
    let significant = bytes.mid() as f64 >= in_use as f64 * SIGNIFICANT_SHARE
        || (near(pool, which) && top_tag(pool, which).as_deref() == Some(main.as_str()));
    if !significant {
        return e;
    }
    let shared = tag_modules(pool).get(&main).is_some_and(|w| w.len() > 1);
    e.pressure = pressure(pool, which, bytes.mid());
    e.kind = match (e.pressure, main.as_str()) {
        (None, _) => "largest-consumer",
        (Some(_), "None") => "untagged-leak",
        (Some(_), _) if shared => "shared-tag",
        _ => "driver-leak",
    };
    e.pool = Some(which);
    e.bytes = Some(bytes);
    e.drivers = BTreeSet::from([m.clone()]);
    e.tags = h.tags.iter().map(|t| t.0.clone()).collect();
    e
}
