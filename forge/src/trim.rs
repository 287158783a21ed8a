//! Pool pages the memory manager trimmed to a paging file, in a scenario without per-block
//! provenance (`missing-pages`): the pages whose allocated blocks are all leaked blocks of one
//! tag (nobody touches them, so they age out of the working set first) are paged out
//! ([`crate::pte::page_out`]), and the truth accounts for them as `untagged-two-drivers` does
//! ([`crate::provenance_truth`]): their blocks leave `blocks` for
//! `provenance.paged_out_blocks` (`"paged_out": true`), the pages are in
//! `provenance.paged_out_pages`, the tag tables still count the blocks, and `mapped[]` leaves
//! the pages out. `missing_pool_pages` counts them: committed pool pages the dump cannot show
//! (docs/json.md).

use crate::provenance_truth::{pages_of, FIRST_OFFSET, OFFSET_STEP};
use crate::pte::{self, Trimmed};
use crate::space::PAGE;
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Paged-pool pages (classic pages, one-page LFH subsegments) holding allocated blocks and no
/// allocated block of another tag, in address order.
fn pages_of_tag(blocks: &[Value], tag: &str) -> Vec<u64> {
    let mut only: BTreeMap<u64, bool> = BTreeMap::new();
    for b in blocks.iter().filter(|b| b["allocated"] == true) {
        let small = b["source"] == "classic" || b["source"] == "lfh";
        let ok = small && b["pool_type"] == "paged" && b["tag"] == tag;
        for p in pages_of(b) {
            let v = only.entry(p * PAGE).or_insert(true);
            *v = *v && ok;
        }
    }
    only.into_iter()
        .filter(|&(_, ok)| ok)
        .map(|(p, _)| p)
        .collect()
}

/// Pages out the first `n` pages holding only allocated `tag` blocks (paged pool), and rewrites
/// `pool`'s blocks and `provenance` for them; `paging_files` is the truth of the paging files
/// planted before the pool's bookkeeping.
pub fn page_out_tag(
    sys: &mut System,
    pool: &mut Value,
    tag: &str,
    n: usize,
    paging_files: Value,
) -> Result<(), ForgeError> {
    let blocks: Vec<Value> = pool["blocks"].as_array().cloned().unwrap_or_default();
    let pages: Vec<u64> = pages_of_tag(&blocks, tag).into_iter().take(n).collect();
    if pages.len() < n {
        return Err(ForgeError::Internal(format!(
            "fewer than {n} pages hold only '{tag}' blocks"
        )));
    }
    let trimmed: Vec<Trimmed> = pages
        .iter()
        .enumerate()
        .map(|(i, &p)| pte::page_out(sys, p, FIRST_OFFSET + OFFSET_STEP * i as u64))
        .collect::<Result<_, _>>()?;
    let out: BTreeSet<u64> = pages.iter().copied().collect();
    let (resident, mut paged_out): (Vec<Value>, Vec<Value>) = blocks
        .into_iter()
        .partition(|b| !pages_of(b).any(|p| out.contains(&(p * PAGE))));
    for b in &mut paged_out {
        b["paged_out"] = json!(true);
    }
    pool["blocks"] = Value::Array(resident);
    add_missing_pages(pool, pages.len());
    pool["provenance"] = json!({
        "paged_out_pages": trimmed.iter().map(Trimmed::truth).collect::<Vec<_>>(),
        "paged_out_blocks": paged_out,
        "paging_files": paging_files,
        "invalid_pte_mask": trimmed.first().filter(|t| t.swizzled).map(|_| hex(pte::INVALID_PTE_MASK)),
    });
    Ok(())
}

/// Counts `n` paged-out pages in the truth's `missing_pool_pages`: committed pool pages the walk
/// cannot read, as docs/json.md defines it (not in the dump, paged out, prototype PTE).
pub fn add_missing_pages(pool: &mut Value, n: usize) {
    let before = pool["missing_pool_pages"].as_u64().unwrap_or(0);
    pool["missing_pool_pages"] = json!(before + n as u64);
}
