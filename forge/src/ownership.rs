//! Who allocated each pool block, and what in the dump says so: the ledger a scenario keeps of
//! the blocks it plants for named modules (owner, call site, the pointers it stores in them and
//! in the owners' own memory), turned into the truth's per-block `owner`, `site`, `orphan` and
//! `evidence`.
//!
//! Evidence kinds, each present only when the dump holds it for that block:
//! - `size`: the block can be read, and its size and pool type are what a constant-size call
//!   site of its owner (same tag, or ExAllocatePool for 'None') gives, and no other module's
//!   constant-size site of that tag gives the same;
//! - `pointer`: the block can be read and holds a pointer into its owner's image, its
//!   DRIVER_OBJECT or one of its DEVICE_OBJECTs;
//! - `reachable`: a chain of pointers from the owner's writable data (a list head in .data) or
//!   a device extension reaches the block, every block on the way readable;
//! - `tag`: the block can be read and its tag is allocated by one module's code only.
//!
//! `orphan`: nothing in memory points into the block (by construction: the ledger records
//! every pointer the scenario stores; the read-back test scans the whole dump to confirm).

use crate::code::SiteRecord;
use crate::pool::{Allocation, PoolKind};
use crate::poolstate::unprotected;
use crate::space::PAGE;
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a stored pointer points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Another ledger block (index).
    Block(usize),
    /// Into the owner's image, DRIVER_OBJECT or a DEVICE_OBJECT.
    Owner,
}

/// One planted block of a named module.
#[derive(Debug, Clone)]
pub struct Entry {
    pub block: Allocation,
    /// Where the caller's data starts (after the POOL_HEADER; the block itself when big).
    pub data: u64,
    pub owner: String,
    /// The site's record (None: a module without forged code, e.g. the kernel).
    pub site: Option<SiteRecord>,
    pub pointers: Vec<Target>,
}

/// The blocks a scenario planted for named modules, and the pointers to them.
#[derive(Debug, Default)]
pub struct Ledger {
    pub entries: Vec<Entry>,
    /// Pointers from a module's own memory (.data list heads, device extensions) to blocks.
    pub roots: Vec<(String, usize)>,
}

impl Ledger {
    /// Allocates a block for `site` (its pool, tag; `size` data bytes) and records it.
    pub fn alloc(
        &mut self,
        sys: &mut System,
        site: &SiteRecord,
        size: u64,
    ) -> Result<usize, ForgeError> {
        let tag = site.tag.unwrap_or(*b"None");
        let kind = kind_of(site.pool_type);
        let data = match kind {
            PoolKind::Paged => sys.alloc_paged(size, &tag)?,
            PoolKind::NonPaged => sys.alloc_nonpaged(size, &tag)?,
        };
        let region = match kind {
            PoolKind::Paged => &sys.paged,
            PoolKind::NonPaged => &sys.nonpaged,
        };
        let block = region
            .allocations
            .last()
            .cloned()
            .ok_or_else(|| ForgeError::Internal("allocation not recorded".into()))?;
        self.entries.push(Entry {
            block,
            data,
            owner: site.module.clone(),
            site: Some(site.clone()),
            pointers: Vec::new(),
        });
        Ok(self.entries.len() - 1)
    }

    /// Writes a pointer to block `to` at `from_block`'s data + `offset`.
    pub fn link(
        &mut self,
        sys: &mut System,
        from_block: usize,
        offset: u64,
        to: usize,
    ) -> Result<(), ForgeError> {
        let at = self.entries[from_block].data + offset;
        sys.machine.write_ptr(at, self.entries[to].data)?;
        self.entries[from_block].pointers.push(Target::Block(to));
        Ok(())
    }

    /// Writes `value` (an address in the owner's image or objects) at the block's data +
    /// `offset`.
    pub fn point_to_owner(
        &mut self,
        sys: &mut System,
        block: usize,
        offset: u64,
        value: u64,
    ) -> Result<(), ForgeError> {
        sys.machine
            .write_ptr(self.entries[block].data + offset, value)?;
        self.entries[block].pointers.push(Target::Owner);
        Ok(())
    }

    /// Writes a pointer to `block` at `at` in `owner`'s own memory (.data, device extension).
    pub fn root(
        &mut self,
        sys: &mut System,
        owner: &str,
        at: u64,
        block: usize,
    ) -> Result<(), ForgeError> {
        sys.machine.write_ptr(at, self.entries[block].data)?;
        self.roots.push((owner.to_string(), block));
        Ok(())
    }

    /// Links `blocks` (each starting with a LIST_ENTRY) into a ring headed at `head` in
    /// `owner`'s .data.
    pub fn list(
        &mut self,
        sys: &mut System,
        owner: &str,
        head: u64,
        blocks: &[usize],
    ) -> Result<(), ForgeError> {
        let nodes: Vec<u64> = blocks.iter().map(|&b| self.entries[b].data).collect();
        sys.link_ring(head, &nodes)?;
        // The head points at the first and last entries, and they back at the head, which is
        // in the owner's image.
        if let Some(&first) = blocks.first() {
            self.roots.push((owner.to_string(), first));
            self.entries[first].pointers.push(Target::Owner);
        }
        if let Some(&last) = blocks.last() {
            self.roots.push((owner.to_string(), last));
            if blocks.len() > 1 {
                self.entries[last].pointers.push(Target::Owner);
            }
        }
        for (i, &b) in blocks.iter().enumerate() {
            for n in [i + 1, i + blocks.len() - 1] {
                let other = blocks[n % blocks.len()];
                if other != b {
                    self.entries[b].pointers.push(Target::Block(other));
                }
            }
        }
        Ok(())
    }

    /// True when no root and no block points at `i`.
    pub fn orphan(&self, i: usize) -> bool {
        !self.roots.iter().any(|r| r.1 == i)
            && !self
                .entries
                .iter()
                .any(|e| e.pointers.contains(&Target::Block(i)))
    }
}

/// The `index`th call site (in code order) of `module`.
pub fn site(sys: &System, module: &str, index: usize) -> Result<SiteRecord, ForgeError> {
    sys.sites
        .iter()
        .filter(|s| s.module == module)
        .nth(index)
        .cloned()
        .ok_or_else(|| ForgeError::Internal(format!("{module} has no site {index}")))
}

/// POOL_TYPE's pool: odd (bit 0) = paged.
pub fn kind_of(pool_type: u32) -> PoolKind {
    if pool_type & 1 == 1 {
        PoolKind::Paged
    } else {
        PoolKind::NonPaged
    }
}

/// The block size the forge's pool gives a request of `size` bytes (the header added and
/// rounded to its size; above a page, or 0xFE0 in the segment heap, whole pages).
pub fn block_size(sys: &System, kind: PoolKind, size: u64) -> u64 {
    let region = match kind {
        PoolKind::Paged => &sys.paged,
        PoolKind::NonPaged => &sys.nonpaged,
    };
    let h = region.header_size();
    let block = (size + h).div_ceil(h) * h;
    let big = if region.segment_heap.is_some() {
        block > 0xfe0
    } else {
        block > PAGE - h
    };
    if big {
        size.div_ceil(PAGE) * PAGE
    } else {
        block
    }
}

/// The readable state of each ledger block: `unreadable` holds the page addresses that are
/// paged out.
pub struct Evidence<'a> {
    ledger: &'a Ledger,
    unreadable: &'a BTreeSet<u64>,
    /// (tag, module) of every site of every module.
    sites: &'a [SiteRecord],
}

impl<'a> Evidence<'a> {
    pub fn new(ledger: &'a Ledger, unreadable: &'a BTreeSet<u64>, sites: &'a [SiteRecord]) -> Self {
        Evidence {
            ledger,
            unreadable,
            sites,
        }
    }

    /// Whether the block's bytes are in the dump (not on a paged-out page).
    pub fn readable(&self, i: usize) -> bool {
        let b = &self.ledger.entries[i].block;
        !(b.address / PAGE..(b.address + b.size).div_ceil(PAGE))
            .any(|p| self.unreadable.contains(&(p * PAGE)))
    }

    fn reachable(&self, i: usize) -> bool {
        let owner = &self.ledger.entries[i].owner;
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = self
            .ledger
            .roots
            .iter()
            .filter(|r| &r.0 == owner)
            .map(|r| r.1)
            .collect();
        while let Some(b) = todo.pop() {
            if !seen.insert(b) {
                continue;
            }
            if b == i {
                return true;
            }
            if !self.readable(b) {
                continue;
            }
            for t in &self.ledger.entries[b].pointers {
                if let Target::Block(n) = t {
                    todo.push(*n);
                }
            }
        }
        false
    }

    /// Modules whose code allocates with the block's tag ('None': ExAllocatePool).
    fn tag_modules(&self, tag: [u8; 4]) -> BTreeSet<&str> {
        self.sites
            .iter()
            .filter(|s| s.tag.unwrap_or(*b"None") == unprotected(tag))
            .map(|s| s.module.as_str())
            .collect()
    }

    fn size_matches(&self, sys: &System, i: usize) -> bool {
        let e = &self.ledger.entries[i];
        let b = &e.block;
        let fits = |s: &SiteRecord| {
            s.tag.unwrap_or(*b"None") == unprotected(b.tag)
                && kind_of(s.pool_type) == b.kind
                && s.size
                    .is_some_and(|n| block_size(sys, b.kind, u64::from(n)) == b.size)
        };
        let mods: BTreeSet<&str> = self
            .sites
            .iter()
            .filter(|s| fits(s))
            .map(|s| s.module.as_str())
            .collect();
        mods.len() == 1 && mods.contains(e.owner.as_str())
    }

    /// The evidence kinds of block `i`, in the order size, pointer, reachable, tag.
    pub fn kinds(&self, sys: &System, i: usize) -> Vec<&'static str> {
        let e = &self.ledger.entries[i];
        let readable = self.readable(i);
        let mut out = Vec::new();
        if readable && self.size_matches(sys, i) {
            out.push("size");
        }
        if readable && e.pointers.contains(&Target::Owner) {
            out.push("pointer");
        }
        if self.reachable(i) {
            out.push("reachable");
        }
        if readable && self.tag_modules(e.block.tag).len() == 1 {
            out.push("tag");
        }
        out
    }

    /// The truth's per-block additions.
    pub fn block_fields(&self, sys: &System, i: usize) -> Value {
        let e = &self.ledger.entries[i];
        json!({ "owner": e.owner, "site": e.site.as_ref().map(|s| hex(s.call)),
                "orphan": self.ledger.orphan(i), "evidence": self.kinds(sys, i) })
    }
}

/// Adds `owner`, `site`, `orphan` and `evidence` to the truth's blocks that are ledger blocks
/// (matched by address).
pub fn annotate_blocks(blocks: &mut Value, sys: &System, ev: &Evidence<'_>) {
    let by_address: BTreeMap<String, usize> = ev
        .ledger
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (hex(e.block.address), i))
        .collect();
    let Some(list) = blocks.as_array_mut() else {
        return;
    };
    for b in list {
        let Some(&i) = b["address"].as_str().and_then(|a| by_address.get(a)) else {
            continue;
        };
        if let (Some(obj), Value::Object(extra)) = (b.as_object_mut(), ev.block_fields(sys, i)) {
            obj.extend(extra);
        }
    }
}
