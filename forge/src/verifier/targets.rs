//! Vista+: `ViTargetDriversAvl` (one `_VF_AVL_TABLE` whose `RTL_AVL_TABLE` holds the driver's
//! `_VF_TARGET_DRIVER` node), its `_VF_TARGET_VERIFIED_DRIVER_DATA` with the suspect entry and
//! counters, and the tracker pages as decompiled `ViGrowPoolAllocation` makes them: one-page
//! nonpaged `'Vepp'` allocations (big pages), entry 0 the `_VI_POOL_PAGE_HEADER` {NextPage,
//! VerifierEntry, Signature 0x21321345}, pushed on `PoolPageHeaders` (newest first), the free
//! entries (`NumberOfBytes` odd) on `PoolTrackers`. AVL tables and nodes are `'VfAT'`
//! allocations (pooltag.txt: "Verifier AVL trees"); the driver data and the suspect entry
//! `'ViIn'` ("Verifier Internal Tag for pool tracking": which tag Windows uses for them is
//! not known).

use super::{Counters, Freed, Tracked, VerifiedImage, BACK_POINTER};
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Value};

const DATA: &str = "_VF_TARGET_VERIFIED_DRIVER_DATA";
const PAGE: u64 = 0x1000;
/// `_VI_POOL_PAGE_HEADER.Signature` as decompiled x64 listings write it (build unknown).
pub const PAGE_SIGNATURE: u64 = 0x2132_1345;

pub(super) fn plant(
    sys: &mut System,
    image: &VerifiedImage,
    tracked: &[Tracked],
    freed: &[Freed],
    c: &Counters,
) -> Result<Value, ForgeError> {
    let data = sys.alloc_nonpaged(sys.type_size(DATA)?, b"ViIn")?;
    let suspect = suspect_entry(sys, image.name)?;
    sys.machine
        .write_ptr(data + sys.offset(DATA, "SuspectDriverEntry")?, suspect)?;
    c.write(sys, DATA, data)?;
    let pages = tracker_pages(sys, data, tracked, freed)?;
    tree(sys, image, data)?;
    Ok(json!({
        "entry": hex(data),
        "tracker_pages": pages.iter().map(|&p| hex(p)).collect::<Vec<_>>(),
    }))
}

/// A `_VF_SUSPECT_DRIVER_ENTRY` naming the driver (loaded once), on `VfSuspectDriversList`.
fn suspect_entry(sys: &mut System, name: &str) -> Result<u64, ForgeError> {
    const S: &str = "_VF_SUSPECT_DRIVER_ENTRY";
    let size = sys.type_size(S)?;
    let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let e = sys.alloc_nonpaged(size + utf16.len() as u64, b"ViIn")?;
    sys.machine.write(e + size, &utf16)?;
    let bn = e + sys.offset(S, "BaseName")?;
    sys.machine.write_u16(bn, utf16.len() as u16)?;
    sys.machine.write_u16(bn + 2, utf16.len() as u16)?;
    let buf = sys.offset("_UNICODE_STRING", "Buffer")?;
    sys.machine.write_ptr(bn + buf, e + size)?;
    sys.machine.write_u32(e + sys.offset(S, "Loads")?, 1)?;
    if let Ok(head) = sys.global("VfSuspectDriversList") {
        let links = e + sys.offset(S, "Links")?;
        sys.link_ring(head, &[links])?;
    }
    Ok(e)
}

/// An x64 SLIST head: Depth in bits 0..16 of the first quadword, the first entry in bits
/// 4..63 of the second; on 7601 (whose union has the 8-byte form) HeaderType, bit 0 of the
/// second quadword, is 1 for this 16-byte form.
fn slist_head(sys: &mut System, at: u64, first: u64, depth: u64) -> Result<(), ForgeError> {
    let header_type = u64::from(sys.profile.offset("_SLIST_HEADER", "Header8").is_some());
    sys.machine.write_u64(at, depth & 0xffff)?;
    sys.machine.write_u64(at + 8, first | header_type)
}

/// The tracker pages: entries for `tracked`, then `freed`, then never used; returns the pages
/// in allocation order (the list links them newest first).
fn tracker_pages(
    sys: &mut System,
    data: u64,
    tracked: &[Tracked],
    freed: &[Freed],
) -> Result<Vec<u64>, ForgeError> {
    let es = sys.type_size("_VI_POOL_ENTRY")?;
    let per_page = PAGE / es - 1;
    let used = (tracked.len() + freed.len()) as u64;
    let mut pages = Vec::new();
    for _ in 0..used.div_ceil(per_page).max(1) {
        let p = sys.alloc_nonpaged(PAGE, b"Vepp")?;
        if p % PAGE != 0 {
            return Err(ForgeError::Internal("tracker page not page aligned".into()));
        }
        page_header(sys, p, pages.last().copied().unwrap_or(0), data)?;
        pages.push(p);
    }
    let slot = |i: u64| pages[(i / per_page) as usize] + (i % per_page + 1) * es;
    for (i, t) in tracked.iter().enumerate() {
        let e = slot(i as u64);
        entry(sys, e, t.address, t.call.return_address, t.charged, t.tag)?;
        sys.machine
            .write_u64(t.address + t.charged - BACK_POINTER, e)?;
    }
    let all = pages.len() as u64 * per_page;
    let first_free = tracked.len() as u64;
    for i in first_free..all {
        let next = if i + 1 < all { slot(i + 1) } else { 0 };
        match freed.get((i - first_free) as usize) {
            Some(f) => entry(
                sys,
                slot(i),
                next,
                f.call.return_address,
                f.charged | 1,
                f.tag,
            )?,
            None => entry(sys, slot(i), next, 0, 1, [0; 4])?,
        }
    }
    let at = |sys: &System, f: &str| sys.offset(DATA, f).map(|o| data + o);
    let newest = *pages.last().unwrap_or(&0);
    let heads = at(sys, "PoolPageHeaders")?;
    slist_head(sys, heads, newest, pages.len() as u64)?;
    let trackers = at(sys, "PoolTrackers")?;
    slist_head(sys, trackers, slot(first_free), all - first_free)?;
    Ok(pages)
}

fn page_header(sys: &mut System, page: u64, next: u64, data: u64) -> Result<(), ForgeError> {
    const H: &str = "_VI_POOL_PAGE_HEADER";
    sys.machine
        .write_u64(page + sys.offset(H, "NextPage")?, next)?;
    sys.machine
        .write_u64(page + sys.offset(H, "VerifierEntry")?, data)?;
    sys.machine
        .write_u64(page + sys.offset(H, "Signature")?, PAGE_SIGNATURE)
}

/// One `_VI_POOL_ENTRY` through its `InUse` view (a free entry's first field is its link).
fn entry(
    sys: &mut System,
    e: u64,
    first: u64,
    caller: u64,
    bytes: u64,
    tag: [u8; 4],
) -> Result<(), ForgeError> {
    const I: &str = "_VI_POOL_ENTRY_INUSE";
    let e = e + sys.offset("_VI_POOL_ENTRY", "InUse")?;
    sys.machine
        .write_u64(e + sys.offset(I, "VirtualAddress")?, first)?;
    sys.machine
        .write_u64(e + sys.offset(I, "CallingAddress")?, caller)?;
    sys.machine
        .write_u64(e + sys.offset(I, "NumberOfBytes")?, bytes)?;
    sys.machine.write_u64(
        e + sys.offset(I, "Tag")?,
        u64::from(u32::from_le_bytes(tag)),
    )
}

/// `ViTargetDriversAvl`: one table whose sentinel's right child is the driver's node.
fn tree(sys: &mut System, image: &VerifiedImage, data: u64) -> Result<(), ForgeError> {
    const L: &str = "_RTL_BALANCED_LINKS";
    const A: &str = "_RTL_AVL_TABLE";
    const TD: &str = "_VF_TARGET_DRIVER";
    let table = sys.alloc_nonpaged(sys.type_size("_VF_AVL_TABLE")?, b"VfAT")?;
    let links = sys.type_size(L)?;
    let node = sys.alloc_nonpaged(links + sys.type_size(TD)?, b"VfAT")?;
    let root = table + sys.offset("_VF_AVL_TABLE", "RtlTable")? + sys.offset(A, "BalancedRoot")?;
    let rtl = table + sys.offset("_VF_AVL_TABLE", "RtlTable")?;
    sys.machine
        .write_u64(root + sys.offset(L, "Parent")?, root)?;
    sys.machine
        .write_u64(root + sys.offset(L, "RightChild")?, node)?;
    sys.machine
        .write_u64(node + sys.offset(L, "Parent")?, root)?;
    sys.machine
        .write_u32(rtl + sys.offset(A, "NumberGenericTableElements")?, 1)?;
    sys.machine
        .write_u32(rtl + sys.offset(A, "DepthOfTree")?, 1)?;
    let base = node
        + links
        + sys.offset(TD, "TreeNode")?
        + sys
            .profile
            .offset("_VF_AVL_TREE_NODE_EX", "Base")
            .unwrap_or(0);
    sys.machine
        .write_u64(base + sys.offset("_VF_AVL_TREE_NODE", "p")?, image.base)?;
    sys.machine.write_u64(
        base + sys.offset("_VF_AVL_TREE_NODE", "RangeSize")?,
        image.size,
    )?;
    sys.machine
        .write_u64(node + links + sys.offset(TD, "VerifiedData")?, data)?;
    const T: &str = "_VF_AVL_TREE";
    let tree = sys.global("ViTargetDriversAvl")?;
    sys.machine
        .write_u64(tree + sys.offset(T, "Tables")?, table)?;
    sys.machine
        .write_u32(tree + sys.offset(T, "TablesNo")?, 1)?;
    sys.machine.write_u64(tree + sys.offset(T, "NodeCount")?, 1)
}
