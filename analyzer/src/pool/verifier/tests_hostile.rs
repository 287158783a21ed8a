//! Hostile and damaged dumps: lists that loop, trees that cycle, counts of 2^32, pointers into
//! memory the dump does not hold. Each must end with bounded work, a stated reason and what
//! could be read; and the fallback through the big page table must find what the tree or a
//! page list could not reach.

use super::tests::*;
use super::*;
use crate::pool::testmem::{W17763, W19041, W7601};
use std::time::Instant;

fn allocations(v: &VerifierTracking) -> Vec<u64> {
    let mut a: Vec<u64> = v
        .drivers
        .iter()
        .flat_map(|d| d.allocations.iter().map(|a| a.address))
        .collect();
    a.sort_unstable();
    a
}

fn stopped(v: &VerifierTracking, what: &str) -> bool {
    v.work.stopped.iter().any(|s| s.contains(what))
}

/// PoolBigPageTable with one nonpaged 4 KiB entry per `(va, tag)`.
fn big_table(f: &mut Fixture, pages: &[(u64, &[u8; 4])]) {
    const T: &str = "_POOL_TRACKER_BIG_PAGES";
    let table = 0xffff_a000_0080_0000u64;
    let es = f.p.type_size(T).unwrap();
    f.img.u64(f.global("PoolBigPageTable"), table);
    f.img.u64(f.global("PoolBigPageTableSize"), 16);
    f.img.touch(table);
    let (va, key, bytes) = (f.off(T, "Va"), f.off(T, "Key"), f.off(T, "NumberOfBytes"));
    for (i, (page, tag)) in pages.iter().enumerate() {
        let e = table + i as u64 * es;
        f.img.u64(e + va, *page);
        f.img.write(e + key, *tag);
        f.img.u64(e + bytes, 0x1000);
    }
}

#[test]
fn a_page_list_that_loops_is_read_once_with_a_reason() {
    let (mut f, planted) = vista(W19041, 19041);
    let next = f.off("_VI_POOL_PAGE_HEADER", "NextPage");
    f.img.u64(PAGE2 + next, PAGE1);
    let v = f.read().unwrap().unwrap();
    assert_eq!(v.work.loops_detected, 1);
    assert!(
        stopped(&v, "loops back to 0xffffa00000100000"),
        "{:?}",
        v.work.stopped
    );
    assert_eq!(allocations(&v).len(), planted.len(), "each allocation once");
    assert_eq!(v.work.pages_read, 2);
}

#[test]
fn an_avl_tree_that_cycles_visits_each_node_once() {
    let (mut f, _) = vista(W17763, 17763);
    let (left, right) = (
        f.off("_RTL_BALANCED_LINKS", "LeftChild"),
        f.off("_RTL_BALANCED_LINKS", "RightChild"),
    );
    f.img.u64(NODE2 + left, NODE2);
    f.img.u64(NODE2 + right, NODE1);
    let v = f.read().unwrap().unwrap();
    assert_eq!(v.work.loops_detected, 2);
    assert_eq!(v.work.nodes_read, 2);
    assert!(stopped(&v, "a cycle"), "{:?}", v.work.stopped);
    assert_eq!(v.drivers.len(), 1);
    assert_eq!(v.drivers[0].allocations.len(), 4);
}

#[test]
fn a_degenerate_tree_deeper_than_any_avl_tree_stops() {
    let (mut f, _) = vista(W19041, 19041);
    let left = f.off("_RTL_BALANCED_LINKS", "LeftChild");
    let chain = 0xffff_a000_0040_0000u64;
    f.img.u64(NODE2 + left, chain);
    for i in 0..200u64 {
        f.img.u64(chain + i * 0x100 + left, chain + (i + 1) * 0x100);
    }
    let v = f.read().unwrap().unwrap();
    assert!(stopped(&v, "deeper than 64"), "{:?}", v.work.stopped);
    assert!(v.work.nodes_read <= 66, "{}", v.work.nodes_read);
    assert_eq!(
        v.drivers.len(),
        1,
        "vrfdrv.sys was reached before the chain"
    );
}

#[test]
fn counts_of_2_to_the_32_are_bounded_and_reported() {
    let (mut f, _) = vista(W19041, 19041);
    let tree = f.global("ViTargetDriversAvl");
    f.img
        .u32(tree + f.off("_VF_AVL_TREE", "TablesNo"), u32::MAX);
    let count = f.off("_RTL_AVL_TABLE", "NumberGenericTableElements");
    f.img.u32(TABLES + count, u32::MAX);
    let cur = f.off(
        "_VF_TARGET_VERIFIED_DRIVER_DATA",
        "CurrentPagedPoolAllocations",
    );
    f.img.u32(DATA + cur, u32::MAX);
    let t = Instant::now();
    let v = f.read().unwrap().unwrap();
    assert!(t.elapsed().as_secs() < 20);
    assert!(stopped(
        &v,
        "TablesNo 4294967295 is implausible; read the first 256"
    ));
    assert!(v.work.stopped.len() <= 64, "reasons are bounded too");
    assert!(v
        .warnings
        .iter()
        .any(|w| w.contains("NumberGenericTableElements says 4294967295")));
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("found, the kernel counts 4294967298")),
        "{:?}",
        v.warnings
    );
    assert_eq!(v.drivers[0].allocations.len(), 4);

    let (mut x, _) = xp();
    let drv = 0x8a10_2000;
    let size = x.off("_MI_VERIFIER_DRIVER_ENTRY", "PoolHashSize");
    x.img.u32(drv + size, u32::MAX);
    let t = Instant::now();
    let v = x.read().unwrap().unwrap();
    assert!(t.elapsed().as_secs() < 20);
    assert!(
        stopped(&v, "PoolHashSize 4294967295 is implausible"),
        "{:?}",
        v.work.stopped
    );
    assert_eq!(v.drivers[0].allocations.len(), 3, "the readable slots");
    assert!(v.work.pages_missing > 1000, "{}", v.work.pages_missing);
}

#[test]
fn pointers_into_memory_the_dump_lacks_stop_with_a_reason() {
    let (mut f, _) = vista(W19041, 19041);
    let head = DATA + f.off("_VF_TARGET_VERIFIED_DRIVER_DATA", "PoolPageHeaders");
    f.img.u64(head + 8, 0xffff_a000_0099_0000);
    f.img.missing(0xffff_a000_0099_0000);
    let v = f.read().unwrap().unwrap();
    assert!(stopped(
        &v,
        "tracker page 0xffffa00000990000 is not in the dump"
    ));
    assert_eq!(v.work.pages_missing, 1);
    assert!(v.drivers[0].allocations.is_empty());
    assert!(v
        .warnings
        .iter()
        .any(|w| w.contains("0 tracked allocations found, the kernel counts 4")));
}

#[test]
fn a_suspect_list_that_loops_is_read_once() {
    let (mut x, planted) = xp();
    x.img.u32(0x8a10_2000, 0x8a10_0000); // the last entry links back to the first
    let v = x.read().unwrap().unwrap();
    assert_eq!(v.work.loops_detected, 1);
    assert!(stopped(&v, "MiSuspectDriverList loops back to 0x8a100000"));
    assert_eq!(v.drivers.len(), 1);
    assert_eq!(v.drivers[0].allocations.len(), planted.len());
}

/// Without `ViTargetDriversAvl` the tracker pages come from the big page table: 'Vepp' pages
/// grouped by the driver data their header names; a 'Vepp' page of another signature and a
/// page of another tag are not tracker pages.
#[test]
fn without_the_tree_the_tracker_pages_are_found_in_the_big_page_table() {
    let (mut f, planted) = vista(W19041, 19041);
    f.p.globals.remove("ViTargetDriversAvl");
    let stray = 0xffff_a000_0010_5000u64;
    f.img.u64(stray + 8, DATA);
    f.img.u64(stray + 0x10, 0x1111);
    big_table(
        &mut f,
        &[
            (PAGE2, b"Vepp"),
            (stray, b"Vepp"),
            (PAGE1, b"Vepp"),
            (0xffff_a000_0010_6000, b"Leak"),
        ],
    );
    let v = f.read().unwrap().unwrap();
    assert!(stopped(&v, "no ViTargetDriversAvl"), "{:?}", v.work.stopped);
    assert_eq!(v.drivers.len(), 1);
    let d = &v.drivers[0];
    assert_eq!(d.found_through, FoundThrough::TrackerPageScan);
    assert_eq!(
        (d.name.as_deref(), d.image_base),
        (Some("vrfdrv.sys"), None)
    );
    assert_eq!(d.allocations.len(), planted.len());
    assert_eq!(v.work.pages_read, 2);
}

/// 7601's 8-byte SLIST form (HeaderType 0) is not decoded: the driver's pages come from the
/// big page table instead.
#[test]
fn an_8_byte_slist_head_on_7601_falls_back_to_the_big_page_table() {
    let (mut f, planted) = vista(W7601, 7601);
    let head = DATA + f.off("_VF_TARGET_VERIFIED_DRIVER_DATA", "PoolPageHeaders");
    f.img.u64(head + 8, 0x0000_0000_0000_0040);
    big_table(&mut f, &[(PAGE1, b"Vepp"), (PAGE2, b"Vepp")]);
    let v = f.read().unwrap().unwrap();
    assert!(stopped(&v, "8-byte SLIST header"), "{:?}", v.work.stopped);
    let d = &v.drivers[0];
    assert_eq!(d.found_through, FoundThrough::TargetDriverTree);
    assert_eq!(d.image_base, Some(DRV));
    assert_eq!(d.allocations.len(), planted.len());
}

/// A list that breaks in the middle (a page not in the dump): the pages after it are found in
/// the big page table.
#[test]
fn a_broken_page_list_is_completed_from_the_big_page_table() {
    let (mut f, planted) = vista(W19041, 19041);
    let third = 0xffff_a000_0010_2000u64;
    let next = f.off("_VI_POOL_PAGE_HEADER", "NextPage");
    f.img.u64(PAGE1 + next, third);
    f.img.missing(third);
    big_table(&mut f, &[(PAGE1, b"Vepp"), (PAGE2, b"Vepp")]);
    let v = f.read().unwrap().unwrap();
    assert!(stopped(
        &v,
        "tracker page 0xffffa00000102000 is not in the dump"
    ));
    assert_eq!(v.drivers[0].allocations.len(), planted.len());
    assert_eq!(v.work.pages_missing, 1);
}

/// A 32-bit kernel with the Vista+ structures is not decoded with x64 offsets: a stated
/// reason, nothing made up.
#[test]
fn a_32_bit_vista_kernel_is_refused_with_a_reason() {
    let (f, _) = vista(W19041, 19041);
    let c = KernelContext {
        pointer_size: 4,
        kernel_base: KB64,
        ..ctx(&f.p, 8, 19041)
    };
    let v = read_verifier(f.img.memory(), &c).unwrap().unwrap();
    assert!(v.drivers.is_empty());
    assert!(stopped(&v, "x64 kernels only"), "{:?}", v.work.stopped);
}
