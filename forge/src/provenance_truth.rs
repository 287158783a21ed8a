//! The end of `untagged-two-drivers` ([`crate::provenance`]): the memory manager trims some
//! pool pages ([`crate::pte`]), and the truth's `pool` gains the provenance of every block.
//!
//! Trimmed pages: three paged-pool pages (classic pages, or one-page LFH subsegments on
//! 19041/20348) holding nothing but leaked blocks are paged out, and one page of list entries is
//! put in transition. Blocks on paged-out pages leave `blocks` (the dump cannot show them) for
//! `provenance.paged_out_blocks` (`"paged_out": true`); the tag tables still count them. Blocks on
//! the transition page stay in `blocks` with `"transition": true`.

use crate::code::SiteRecord;
use crate::ownership::{Evidence, Ledger};
use crate::pool::PoolKind;
use crate::provenance::Story;
use crate::pte::{self, Trimmed};
use crate::space::PAGE;
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Pages paged out.
const PAGED_OUT: usize = 3;
/// Offset in the paging file (pages) of the first paged-out page.
pub(crate) const FIRST_OFFSET: u64 = 0x1a40;
/// Pages between two trimmed pages' offsets in the paging file.
pub(crate) const OFFSET_STEP: u64 = 0x31;

fn hex_of(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}

pub(crate) fn pages_of(b: &Value) -> std::ops::Range<u64> {
    let a = hex_of(&b["address"]);
    let size = b["size"].as_u64().unwrap_or(0);
    a / PAGE..(a + size).div_ceil(PAGE)
}

/// Paged-pool pages (classic or LFH) whose allocated blocks are all leaked ledger blocks
/// (with `bare`: blocks that hold no pointer either).
fn orphan_pages(blocks: &[Value], ledger: &Ledger, bare: bool) -> Vec<u64> {
    let orphans: BTreeSet<u64> = (0..ledger.entries.len())
        .filter(|&i| ledger.orphan(i) && (!bare || ledger.entries[i].pointers.is_empty()))
        .map(|i| ledger.entries[i].block.address)
        .collect();
    let mut verdict: BTreeMap<u64, bool> = BTreeMap::new();
    for b in blocks {
        if b["allocated"] != true {
            continue;
        }
        let small = b["source"] == "classic" || b["source"] == "lfh";
        let ok = small && b["pool_type"] == "paged" && orphans.contains(&hex_of(&b["address"]));
        for p in pages_of(b) {
            let v = verdict.entry(p * PAGE).or_insert(true);
            *v = *v && ok;
        }
    }
    verdict
        .into_iter()
        .filter(|&(_, ok)| ok)
        .map(|(p, _)| p)
        .collect()
}

/// The pages to page out: pages of bare leaked blocks first (the blocks that show pointer
/// evidence stay in the dump), then any page of leaked blocks; never `avoid`.
fn pages_to_trim(blocks: &[Value], ledger: &Ledger, avoid: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for bare in [true, false] {
        for p in orphan_pages(blocks, ledger, bare) {
            if p != avoid && !out.contains(&p) && out.len() < PAGED_OUT {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Trims the pages, then rewrites `pool`: blocks split, ownership added, `provenance` and
/// `driver_objects` members.
pub fn finish(
    sys: &mut System,
    ledger: &Ledger,
    story: &Story,
    mut pool: Value,
) -> Result<Value, ForgeError> {
    let listed = story
        .listed
        .get(story.listed.len() / 2)
        .ok_or_else(|| ForgeError::Internal("no listed blocks".into()))?;
    let transition_page = ledger.entries[*listed].block.address & !(PAGE - 1);
    let blocks: Vec<Value> = pool["blocks"].as_array().cloned().unwrap_or_default();
    let out_pages = pages_to_trim(&blocks, ledger, transition_page);
    if out_pages.len() < PAGED_OUT {
        return Err(ForgeError::Internal(
            "too few pages of leaked blocks".into(),
        ));
    }
    let mut trimmed = Vec::new();
    for (i, &p) in out_pages.iter().enumerate() {
        trimmed.push(pte::page_out(
            sys,
            p,
            FIRST_OFFSET + OFFSET_STEP * i as u64,
        )?);
    }
    let transition = pte::transition(sys, transition_page)?;
    let unreadable: BTreeSet<u64> = out_pages.iter().copied().collect();
    let ev = Evidence::new(ledger, &unreadable, &sys.sites);
    let (mut resident, mut paged_out): (Vec<Value>, Vec<Value>) = blocks
        .into_iter()
        .partition(|b| !pages_of(b).any(|p| unreadable.contains(&(p * PAGE))));
    for b in &mut resident {
        if pages_of(b).any(|p| p * PAGE == transition_page) {
            b["transition"] = json!(true);
        }
    }
    for b in &mut paged_out {
        b["paged_out"] = json!(true);
    }
    let mut resident = Value::Array(resident);
    let mut paged_out = Value::Array(paged_out);
    crate::ownership::annotate_blocks(&mut resident, sys, &ev);
    crate::ownership::annotate_blocks(&mut paged_out, sys, &ev);
    pool["blocks"] = resident;
    crate::trim::add_missing_pages(&mut pool, out_pages.len());
    pool["driver_objects"] = crate::devices::truth(&sys.driver_objects);
    pool["provenance"] = json!({
        "modules": modules(sys, ledger),
        "paged_out_pages": trimmed.iter().map(Trimmed::truth).collect::<Vec<_>>(),
        "transition_pages": [transition.truth()],
        "paged_out_blocks": paged_out,
        "paging_files": story.paging_files,
        "invalid_pte_mask": trimmed.first().filter(|t| t.swizzled).map(|_| hex(pte::INVALID_PTE_MASK)),
    });
    Ok(pool)
}

/// Ownership without trimmed pages (shared-tag): the ledger blocks annotated, and
/// `driver_objects` and `provenance.modules` added to `pool`.
pub fn annotate(sys: &System, ledger: &Ledger, pool: &mut Value) {
    let none = BTreeSet::new();
    let ev = Evidence::new(ledger, &none, &sys.sites);
    crate::ownership::annotate_blocks(&mut pool["blocks"], sys, &ev);
    pool["driver_objects"] = crate::devices::truth(&sys.driver_objects);
    pool["provenance"] = json!({ "modules": modules(sys, ledger) });
}

/// Adds `blocks` blocks of `bytes` to a site's figures in `provenance.modules`: blocks a
/// scenario planted for the site without the ledger (busy-server's hundreds of thousands).
pub fn add_site_blocks(pool: &mut Value, site: &SiteRecord, blocks: u64, bytes: u64) {
    let address = json!(hex(site.call));
    let sites = pool["provenance"]["modules"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter(|m| m["module"] == site.module.as_str())
        .filter_map(|m| m["sites"].as_array_mut())
        .flatten();
    for s in sites.filter(|s| s["address"] == address) {
        let add = |v: &Value, n: u64| json!(v.as_u64().unwrap_or(0) + n);
        s["blocks"] = add(&s["blocks"], blocks);
        s["bytes"] = add(&s["bytes"], bytes);
    }
}

#[derive(Default)]
struct Sum {
    blocks: u64,
    bytes: u64,
}

impl Sum {
    fn add(&mut self, bytes: u64) {
        self.blocks += 1;
        self.bytes += bytes;
    }
    fn json(&self) -> Value {
        json!({ "blocks": self.blocks, "bytes": self.bytes })
    }
}

/// `provenance.modules`: per module with ledger blocks, its untagged blocks per pool, per
/// call site and its leaked (orphan) blocks; block bytes as the truth's `size`.
fn modules(sys: &System, ledger: &Ledger) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for e in &ledger.entries {
        if !names.contains(&e.owner.as_str()) {
            names.push(&e.owner);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let (mut paged, mut nonpaged, mut orphans) =
            (Sum::default(), Sum::default(), Sum::default());
        let mut per_site: BTreeMap<u64, Sum> = BTreeMap::new();
        for (i, e) in ledger
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.owner == name)
        {
            let size = e.block.size;
            if e.block.tag == *b"None" {
                match e.block.kind {
                    PoolKind::Paged => paged.add(size),
                    PoolKind::NonPaged => nonpaged.add(size),
                }
            }
            if let Some(s) = &e.site {
                per_site.entry(s.call).or_default().add(size);
            }
            if ledger.orphan(i) {
                orphans.add(size);
            }
        }
        let sites: Vec<Value> = sys
            .sites
            .iter()
            .filter(|s| s.module == name)
            .map(|s| {
                let sum = per_site.remove(&s.call).unwrap_or_default();
                let mut v = site_json(s);
                v["blocks"] = json!(sum.blocks);
                v["bytes"] = json!(sum.bytes);
                v
            })
            .collect();
        out.push(json!({ "module": name, "untagged_paged": paged.json(),
            "untagged_nonpaged": nonpaged.json(), "orphans": orphans.json(), "sites": sites }));
    }
    Value::Array(out)
}

/// A call site as the truth lists it.
pub fn site_json(s: &crate::code::SiteRecord) -> Value {
    let mut m = Map::new();
    m.insert("address".into(), json!(hex(s.call)));
    m.insert("return_address".into(), json!(hex(s.return_address())));
    m.insert("function".into(), json!(hex(s.function)));
    m.insert("import".into(), json!(s.import));
    m.insert("iat_slot".into(), json!(hex(s.iat_slot)));
    m.insert(
        "tag".into(),
        json!(s.tag.as_ref().map(crate::poolstate::tag_str)),
    );
    m.insert(
        "pool_type".into(),
        json!(crate::ownership::kind_of(s.pool_type).as_str()),
    );
    m.insert("pool_type_value".into(), json!(s.pool_type));
    m.insert("size".into(), json!(s.size));
    Value::Object(m)
}
