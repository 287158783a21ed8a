//! The reader on verifier structures built by hand with each kernel's own layouts (the corpus
//! ISFs and ntkrnlpa.pdb), field by field through the profile; expected values are the ones
//! written, and the offsets are checked against /work/research/provenance.md §1, which was
//! dumped from the same symbol files by another tool.

use super::layout::{Kind, Layouts};
use super::*;
use crate::pool::testmem::{isf, xp_pdb, Image, W17763, W19041, W20348, W7601};
use crate::symbols::Profile;

pub(super) const KB64: u64 = 0xffff_f800_0000_0000;
pub(super) const KB32: u64 = 0x804d_7000;
pub(super) const DATA: u64 = 0xffff_a000_0001_0000;
pub(super) const SUSPECT: u64 = 0xffff_a000_0001_1000;
pub(super) const TABLES: u64 = 0xffff_a000_0002_0000;
pub(super) const NODE1: u64 = 0xffff_a000_0003_0000;
pub(super) const NODE2: u64 = 0xffff_a000_0003_0100;
pub(super) const PAGE1: u64 = 0xffff_a000_0010_0000;
pub(super) const PAGE2: u64 = 0xffff_a000_0010_1000;
pub(super) const DRV: u64 = 0xffff_f806_1c20_0000;
pub(super) const ALLOC: u64 = 0xffff_b000_0000_0000;

pub(super) fn ctx(p: &Profile, ptr: u8, build: u32) -> KernelContext<'_> {
    KernelContext {
        kernel_base: if ptr == 8 { KB64 } else { KB32 },
        pointer_size: ptr,
        build,
        processors: 1,
        profile: Some(p),
    }
}

/// A hand-built address space and the profile whose layouts it follows.
pub(super) struct Fixture {
    pub img: Image,
    pub p: Profile,
    pub build: u32,
}

impl Fixture {
    pub fn off(&self, ty: &str, f: &str) -> u64 {
        self.p
            .offset(ty, f)
            .unwrap_or_else(|| panic!("{ty}.{f} not in the profile"))
    }
    pub fn global(&self, name: &str) -> u64 {
        let kb = if self.img.pointer_size == 8 {
            KB64
        } else {
            KB32
        };
        kb + self.p.global(name).unwrap()
    }
    pub fn ptr(&mut self, va: u64, v: u64) {
        if self.img.pointer_size == 8 {
            self.img.u64(va, v)
        } else {
            self.img.u32(va, v as u32)
        }
    }
    pub fn read(&self) -> Result<Option<VerifierTracking>, PoolError> {
        read_verifier(
            self.img.memory(),
            &ctx(&self.p, self.img.pointer_size, self.build),
        )
    }
    /// A UNICODE_STRING at `at` naming `s`, its buffer at `buf`.
    pub fn unicode(&mut self, at: u64, buf: u64, s: &str) {
        let b: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        self.img.write(buf, &b);
        self.img.u16(at, b.len() as u16);
        self.img.u16(at + 2, b.len() as u16 + 2);
        let o = self.off("_UNICODE_STRING", "Buffer");
        self.ptr(at + o, buf);
    }
    /// The eight counters of a structure of type `ty` at `at`.
    pub fn counters(&mut self, ty: &str, at: u64, c: [u64; 8]) {
        let names = [
            "CurrentPagedPoolAllocations",
            "CurrentNonPagedPoolAllocations",
            "PeakPagedPoolAllocations",
            "PeakNonPagedPoolAllocations",
            "PagedBytes",
            "NonPagedBytes",
            "PeakPagedBytes",
            "PeakNonPagedBytes",
        ];
        for (i, (n, v)) in names.iter().zip(c).enumerate() {
            let o = at + self.off(ty, n);
            if i < 4 {
                self.img.u32(o, v as u32)
            } else {
                self.ptr(o, v)
            }
        }
    }
}

/// One in-use tracker entry as written: (entry index on its page, address, bytes, tag, caller).
pub(super) type Planted = (u64, u64, u64, u32, u64);

/// The Vista+ fixture: Level 0x1a; `ViTargetDriversAvl` with two tables, the first holding
/// two nodes (vrfdrv.sys with tracking data; another image without); two tracker pages on the
/// driver's SLIST (newest first: PAGE1 -> PAGE2) holding four allocations, one free entry,
/// one entry never used; back-pointers in the allocations (one wrong, one not in the dump).
pub(super) fn vista(guid: &str, build: u32) -> (Fixture, Vec<Planted>) {
    let mut f = Fixture {
        img: Image::new(8),
        p: isf(guid),
        build,
    };
    let vd = f.global("MmVerifierData");
    f.img
        .u32(vd + f.off("_MM_DRIVER_VERIFIER_DATA", "Level"), 0x1a);
    if f.p.global("VfRuleClasses").is_some() {
        f.img.u32(f.global("VfRuleClasses"), 0x1a);
    }
    f.counters(
        "_MM_DRIVER_VERIFIER_DATA",
        vd,
        [1, 3, 2, 5, 0x200, 0x9600, 0x400, 0xa000],
    );
    // The tree: two tables; table 0's sentinel -> NODE1 (left child NODE2).
    let tree = f.global("ViTargetDriversAvl");
    f.img.u64(tree + f.off("_VF_AVL_TREE", "Tables"), TABLES);
    f.img.u32(tree + f.off("_VF_AVL_TREE", "TablesNo"), 2);
    let table_size = f.p.type_size("_VF_AVL_TABLE").unwrap();
    let right = f.off("_RTL_BALANCED_LINKS", "RightChild");
    let left = f.off("_RTL_BALANCED_LINKS", "LeftChild");
    let count = f.off("_RTL_AVL_TABLE", "NumberGenericTableElements");
    f.img.u64(TABLES + right, NODE1);
    f.img.u32(TABLES + count, 2);
    f.img.touch(TABLES + table_size); // table 1: empty
    f.img.u64(NODE1 + left, NODE2);
    let links = f.p.type_size("_RTL_BALANCED_LINKS").unwrap();
    let node_base = f.off("_VF_TARGET_DRIVER", "TreeNode")
        + f.p.offset("_VF_AVL_TREE_NODE_EX", "Base").unwrap_or(0);
    let vdata = f.off("_VF_TARGET_DRIVER", "VerifiedData");
    for (node, base, data) in [(NODE1, DRV, DATA), (NODE2, DRV + 0x10_0000, 0)] {
        f.img.u64(node + links + node_base, base);
        f.img.u64(node + links + node_base + 8, 0xa000);
        f.img.u64(node + links + vdata, data);
    }
    // The driver's data and its suspect entry.
    const D: &str = "_VF_TARGET_VERIFIED_DRIVER_DATA";
    f.img.u64(DATA + f.off(D, "SuspectDriverEntry"), SUSPECT);
    f.counters(D, DATA, [1, 3, 2, 5, 0x200, 0x9600, 0x400, 0xa000]);
    let name = SUSPECT + f.off("_VF_SUSPECT_DRIVER_ENTRY", "BaseName");
    f.unicode(name, SUSPECT + 0x100, "vrfdrv.sys");
    f.img
        .u32(SUSPECT + f.off("_VF_SUSPECT_DRIVER_ENTRY", "Loads"), 1);
    // PoolPageHeaders: 16-byte head, NextEntry in bits 4..63 of the second quadword; 7601's
    // HeaderType (bit 0) = 1 for the 16-byte form.
    let head = DATA + f.off(D, "PoolPageHeaders");
    f.img.u64(head, 2 | 7 << 16);
    let header_type = u64::from(f.p.offset("_SLIST_HEADER", "Header8").is_some());
    f.img.u64(head + 8, PAGE1 | header_type);
    let planted: Vec<Planted> = vec![
        (
            1,
            ALLOC + 0x10,
            0x190,
            u32::from_le_bytes(*b"None"),
            DRV + 0x1121,
        ),
        (
            3,
            ALLOC + 0x1010,
            0x9010,
            u32::from_le_bytes(*b"Vrfd") | 1 << 31,
            DRV + 0x1161,
        ),
        (
            127,
            ALLOC + 0xb010,
            0x30,
            u32::from_le_bytes(*b"None"),
            DRV + 0x11a1,
        ),
        (
            5,
            ALLOC + 0xc010,
            0x40,
            u32::from_le_bytes(*b"None"),
            DRV + 0x1121,
        ),
    ];
    let ph = |f: &Fixture, n| f.off("_VI_POOL_PAGE_HEADER", n);
    for (page, next) in [(PAGE1, PAGE2), (PAGE2, 0)] {
        f.img.touch(page);
        f.img.u64(page + ph(&f, "NextPage"), next);
        f.img.u64(page + ph(&f, "VerifierEntry"), DATA);
        f.img
            .u64(page + ph(&f, "Signature"), TRACKER_PAGE_SIGNATURE);
    }
    for (i, &(j, va, bytes, tag, caller)) in planted.iter().enumerate() {
        let page = if i < 3 { PAGE1 } else { PAGE2 };
        let e = page + j * 0x20;
        f.entry(e, va, caller, bytes, u64::from(tag));
        if i != 3 {
            // The back-pointer; the third allocation's is wrong, the fourth's not in the dump.
            let bp = if i == 2 { e + 0x20 } else { e };
            f.img.u64(va + bytes - 8, bp);
        }
    }
    // A freed entry: odd NumberOfBytes, its first field now a free-list link.
    f.entry(
        PAGE1 + 2 * 0x20,
        PAGE1 + 0x40 * 0x20,
        DRV + 0x1121,
        0x191,
        0x656e6f4e,
    );
    (f, planted)
}

impl Fixture {
    fn entry(&mut self, e: u64, va: u64, caller: u64, bytes: u64, tag: u64) {
        const I: &str = "_VI_POOL_ENTRY_INUSE";
        let in_use = self.off("_VI_POOL_ENTRY", "InUse");
        let (a, c, n, t) = (
            self.off(I, "VirtualAddress"),
            self.off(I, "CallingAddress"),
            self.off(I, "NumberOfBytes"),
            self.off(I, "Tag"),
        );
        self.ptr(e + in_use + a, va);
        self.ptr(e + in_use + c, caller);
        self.ptr(e + in_use + n, bytes);
        self.ptr(e + in_use + t, tag);
    }
}

fn expected(planted: &[Planted], page_of: impl Fn(usize) -> u64) -> Vec<(u64, u64, Tag, u64, u64)> {
    planted
        .iter()
        .enumerate()
        .map(|(i, &(j, va, bytes, tag, caller))| {
            let t = Tag::from_u32(tag & 0x7fff_ffff);
            (va, bytes, t, caller, page_of(i) + j * 0x20)
        })
        .collect()
}

fn got(d: &VerifiedDriver) -> Vec<(u64, u64, Tag, u64, u64)> {
    d.allocations
        .iter()
        .map(|a| (a.address, a.size, a.tag, a.caller, a.tracker))
        .collect()
}

#[test]
fn vista_plus_tree_and_tracker_pages_on_every_x64_kernel() {
    for (guid, build) in [
        (W7601, 7601),
        (W17763, 17763),
        (W19041, 19041),
        (W20348, 20348),
    ] {
        let (f, planted) = vista(guid, build);
        let v = f.read().unwrap().expect("tracking on");
        assert_eq!(
            (v.level, v.format),
            (0x1a, TrackingFormat::TrackerPages),
            "{build}"
        );
        assert_eq!(
            v.rule_classes.is_some(),
            build >= 17763,
            "VfRuleClasses: {build}"
        );
        assert_eq!(v.totals.unwrap().nonpaged_bytes, 0x9600, "{build}");
        assert_eq!(
            v.drivers.len(),
            1,
            "the node without VerifiedData is not a driver"
        );
        let d = &v.drivers[0];
        assert_eq!(d.name.as_deref(), Some("vrfdrv.sys"));
        assert_eq!((d.image_base, d.image_size), (Some(DRV), Some(0xa000)));
        assert_eq!(
            (d.entry, d.found_through),
            (DATA, FoundThrough::TargetDriverTree)
        );
        assert_eq!((d.loads, d.flags), (Some(1), None));
        let c = d.counters.unwrap();
        assert_eq!(
            (c.current_allocations(), c.peak_nonpaged_bytes),
            (4, 0xa000)
        );
        let page_of = |i| if i < 3 { PAGE1 } else { PAGE2 };
        assert_eq!(got(d), expected(&planted, page_of), "{build}");
        let bp: Vec<Option<bool>> = d.allocations.iter().map(|a| a.back_pointer).collect();
        assert_eq!(bp, [Some(true), Some(true), Some(false), None]);
        assert_eq!(
            d.back_pointers,
            BackPointers {
                matching: 2,
                mismatched: 1,
                unknown: 1
            }
        );
        assert_eq!(
            (v.work.pages_read, v.work.entries_read, v.work.nodes_read),
            (2, 2 * 127, 2),
            "{build}"
        );
        assert!(v.work.stopped.is_empty(), "{:?}", v.work.stopped);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(v.warnings[0].contains("1 allocations' back-pointers"));
    }
}

#[test]
fn counts_differing_from_the_kernels_counters_are_a_warning_with_both_figures() {
    let (mut f, _) = vista(W19041, 19041);
    let at = DATA
        + f.off(
            "_VF_TARGET_VERIFIED_DRIVER_DATA",
            "CurrentNonPagedPoolAllocations",
        );
    f.img.u32(at, 9);
    let v = f.read().unwrap().unwrap();
    let w = v
        .warnings
        .iter()
        .find(|w| w.contains("tracked allocations found"))
        .unwrap();
    assert!(
        w.contains("4 tracked allocations found, the kernel counts 10"),
        "{w}"
    );
    assert!(
        w.contains("CurrentPagedPoolAllocations 1 + CurrentNonPagedPoolAllocations 9"),
        "{w}"
    );
}

#[test]
fn off_or_without_symbols() {
    let (mut f, _) = vista(W17763, 17763);
    let vd = f.global("MmVerifierData");
    f.img.u32(vd, 0x1 | 0x2); // special pool and IRQL checking, no tracking
    f.img.u32(f.global("VfRuleClasses"), 0x3);
    assert_eq!(
        f.read().unwrap(),
        None,
        "neither Level nor VfRuleClasses has bit 3"
    );
    f.img.u32(f.global("VfRuleClasses"), 0x8);
    assert!(
        f.read().unwrap().is_some(),
        "VfRuleClasses bit 3 alone turns it on"
    );
    let none = KernelContext {
        profile: None,
        ..ctx(&f.p, 8, 17763)
    };
    assert!(matches!(
        read_verifier(f.img.memory(), &none),
        Err(PoolError::Missing { .. })
    ));
    let mut empty = Image::new(8);
    empty.touch(0);
    assert!(matches!(
        read_verifier(empty.memory(), &ctx(&f.p, 8, 17763)),
        Err(PoolError::Memory { .. })
    ));
}

/// XP: three entries on MiSuspectDriverList: a driver named but not verified (Flags 0), one
/// with a bad signature, and vrfdrv.sys with a 32-slot PoolHash:
/// slots 0, 2 and 30 in use, the others free (the index of the next free slot; slot 31 the
/// end marker 0xFFFFFFFF). The array starts 16 bytes before a page boundary.
pub(super) fn xp() -> (Fixture, Vec<Planted>) {
    let mut f = Fixture {
        img: Image::new(4),
        p: xp_pdb(),
        build: 2600,
    };
    const E: &str = "_MI_VERIFIER_DRIVER_ENTRY";
    let vd = f.global("MmVerifierData");
    f.img.u32(vd, 0x1a);
    let head = f.global("MiSuspectDriverList");
    let entries = [0x8a10_0000u64, 0x8a10_1000, 0x8a10_2000];
    let ring = [head, entries[0], entries[1], entries[2]];
    for i in 0..4 {
        f.img.u32(ring[i], ring[(i + 1) % 4] as u32);
        f.img.u32(ring[i] + 4, ring[(i + 3) % 4] as u32);
    }
    let (sig, flags) = (f.off(E, "Signature"), f.off(E, "Flags"));
    for (e, s, fl, name) in [
        (entries[0], XP_ENTRY_SIGNATURE, 0u32, "other.sys"),
        (entries[1], 0x1234_5678, 1, "bad.sys"),
        (entries[2], XP_ENTRY_SIGNATURE, 1, "vrfdrv.sys"),
    ] {
        f.img.u32(e + sig, s);
        f.img.u32(e + flags, fl);
        let bn = f.off(E, "BaseName");
        f.unicode(e + bn, e + 0x60, name);
    }
    let drv = entries[2];
    let hash = 0x8a20_0ff0u64;
    f.img.u32(drv + f.off(E, "StartAddress"), 0xb900_0000);
    f.img.u32(drv + f.off(E, "EndAddress"), 0xb900_a000);
    f.img.u32(drv + f.off(E, "PoolHash"), hash as u32);
    f.img.u32(drv + f.off(E, "PoolHashSize"), 32);
    f.counters(E, drv, [1, 2, 1, 2, 0x30, 0x1a0, 0x30, 0x1a0]);
    for i in 0..32u64 {
        f.img.u32(hash + i * 16, (i + 1) as u32);
    }
    f.img.u32(hash + 31 * 16, 0xffff_ffff);
    let planted: Vec<Planted> = vec![
        (
            0,
            0xe100_0010,
            0x30,
            u32::from_le_bytes(*b"Wrap"),
            0xb900_1121,
        ),
        (
            2,
            0x8a30_0008,
            0x190,
            u32::from_le_bytes(*b"Wrap"),
            0xb900_1161,
        ),
        (
            30,
            0x8a30_1008,
            0x10,
            u32::from_le_bytes(*b"Vrfd") | 1 << 31,
            0xb900_11a1,
        ),
    ];
    for &(i, va, bytes, tag, caller) in &planted {
        let s = hash + i * 16;
        f.img.u32(s, va as u32);
        f.img.u32(s + 4, caller as u32);
        f.img.u32(s + 8, bytes as u32);
        f.img.u32(s + 12, tag);
        // {ListIndex, Verifier} in the allocation's last 8 bytes.
        f.img.u32(va + bytes - 8, i as u32);
        f.img.u32(va + bytes - 4, drv as u32);
    }
    (f, planted)
}

#[test]
fn xp_suspect_list_and_pool_hash() {
    let (f, planted) = xp();
    let v = f.read().unwrap().expect("tracking on");
    assert_eq!(
        (v.level, v.format, v.rule_classes),
        (0x1a, TrackingFormat::PoolHash, None)
    );
    assert_eq!(v.drivers.len(), 1);
    assert_eq!(v.work.drivers_skipped, 2, "not verified, bad signature");
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("signature 0x12345678")),
        "{:?}",
        v.warnings
    );
    let d = &v.drivers[0];
    assert_eq!(d.name.as_deref(), Some("vrfdrv.sys"));
    assert_eq!(
        (d.image_base, d.image_size, d.flags),
        (Some(0xb900_0000), Some(0xa000), Some(1))
    );
    assert_eq!(d.found_through, FoundThrough::SuspectDriverList);
    let want: Vec<_> = planted
        .iter()
        .map(|&(i, va, bytes, tag, caller)| {
            (
                va,
                bytes,
                Tag::from_u32(tag & 0x7fff_ffff),
                caller,
                0x8a20_0ff0 + i * 16,
            )
        })
        .collect();
    assert_eq!(got(d), want);
    assert_eq!(d.back_pointers.matching, 3);
    assert_eq!(v.work.entries_read, 32);
    assert!(v.work.stopped.is_empty(), "{:?}", v.work.stopped);
    assert!(!v
        .warnings
        .iter()
        .any(|w| w.contains("tracked allocations found")));
}

/// The layouts agree with the tables of /work/research/provenance.md §1 (dumped from the same
/// symbol files by another tool).
#[test]
fn layouts_match_the_research_tables() {
    let l = Layouts::from_profile(&xp_pdb(), 4).unwrap();
    let Kind::Xp(x) = l.kind else { panic!("XP") };
    assert_eq!(
        (x.size, x.pool_hash, x.pool_hash_size, x.flags, x.signature),
        (0x60, 0x30, 0x34, 0x20, 0x24)
    );
    assert_eq!(
        (
            x.entry.size,
            x.entry.calling_address,
            x.entry.number_of_bytes,
            x.entry.tag
        ),
        (0x10, 4, 8, 0xc)
    );
    assert_eq!(
        (
            x.back_pointer_index,
            x.back_pointer_verifier,
            x.back_pointer_size
        ),
        (0, 4, 8)
    );
    assert_eq!(x.counters.span(), 0x60);
    // (guid, data size, PoolPageHeaders, CurrentPaged.., VerifiedData, Tables, TablesNo, table size)
    for (guid, size, pph, cur, vdata, tables, tables_no, table) in [
        (W7601, 0x100, 0x30, 0x50, 0x28, 0x20, 0x28, 0x70),
        (W17763, 0x120, 0x40, 0x60, 0x38, 0x10, 0x18, 0xc0),
        (W19041, 0x130, 0x40, 0x68, 0x38, 0x10, 0x18, 0xc0),
        (W20348, 0x130, 0x40, 0x70, 0x30, 0x10, 0x18, 0xc0),
    ] {
        let p = isf(guid);
        let l = Layouts::from_profile(&p, 8).unwrap();
        let Kind::Targets(t) = l.kind else {
            panic!("Vista+")
        };
        assert_eq!(
            (t.data_size, t.page_headers, t.verified_data),
            (size, pph, vdata),
            "{guid}"
        );
        assert_eq!(
            (t.tables, t.tables_no, t.table_size),
            (tables, tables_no, table),
            "{guid}"
        );
        assert!(t.counters.decode(&[0; 0x200]).is_some());
        assert_eq!(
            p.offset(
                "_VF_TARGET_VERIFIED_DRIVER_DATA",
                "CurrentPagedPoolAllocations"
            ),
            Some(cur)
        );
        assert_eq!(
            (t.entry.size, t.entry.number_of_bytes, t.entry.tag),
            (0x20, 0x10, 0x18)
        );
        assert_eq!((t.range_base, t.range_size, t.links_size), (0, 8, 0x20));
        assert_eq!((t.slist_size, t.slist_has_header8), (0x10, guid == W7601));
        assert_eq!(
            (t.next_page, t.verifier_entry, t.page_signature),
            (0, 8, 0x10)
        );
        assert_eq!(t.back_pointer_size, 8);
    }
}
