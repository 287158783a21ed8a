//! Tag tables in the real layouts (offsets from the corpus ISF/PDB via Profile), built by hand;
//! expected sums worked out by hand in each test.

use super::*;
use crate::pool::testmem::*;

const KB64: u64 = 0xffff_f800_1000_0000;
const KB32: u64 = 0x8040_0000;

fn ctx<'a>(p: Option<&'a Profile>, ptr: u8, build: u32, kb: u64) -> KernelContext<'a> {
    KernelContext {
        kernel_base: kb,
        pointer_size: ptr,
        build,
        processors: 1,
        profile: p,
    }
}

fn g(p: &Profile, kb: u64, name: &str) -> u64 {
    kb + p.global(name).unwrap()
}

fn find(rows: &[TagStats], tag: &str) -> TagStats {
    *rows
        .iter()
        .find(|r| r.tag == Tag::from_text(tag).unwrap())
        .unwrap_or_else(|| panic!("{tag} missing"))
}

/// Windows 10 entry (19041 ISF: 0x38 bytes, Key at 0, all counters 64-bit).
#[allow(clippy::too_many_arguments)]
fn w10_entry(
    img: &mut Image,
    p: &Profile,
    at: u64,
    tag: &[u8; 4],
    pa: u64,
    pf: u64,
    pb: u64,
    na: u64,
    nf: u64,
    nb: u64,
) {
    let o = |f| p.offset("_POOL_TRACKER_TABLE", f).unwrap();
    img.write(at + o("Key"), tag);
    img.u64(at + o("PagedAllocs"), pa);
    img.u64(at + o("PagedFrees"), pf);
    img.u64(at + o("PagedBytes"), pb);
    img.u64(at + o("NonPagedAllocs"), na);
    img.u64(at + o("NonPagedFrees"), nf);
    img.u64(at + o("NonPagedBytes"), nb);
}

#[test]
fn win10_sums_per_cpu_tables_and_expansion_keeps_session_apart() {
    let p = isf(W19041);
    assert_eq!(p.type_size("_POOL_TRACKER_TABLE"), Some(0x38));
    let mut img = Image::new(8);
    let (t0, t1, te, ts) = (
        0xffff_c000_0010_0000_u64,
        0xffff_c000_0020_0000,
        0xffff_c000_0030_0000,
        0xffff_c000_0040_0000,
    );
    img.u64(g(&p, KB64, "PoolTrackTable"), t0);
    img.u64(g(&p, KB64, "PoolTrackTableSize"), 4);
    img.u32(g(&p, KB64, "KeNumberProcessors"), 2);
    img.u64(g(&p, KB64, "ExPoolTagTables"), t0);
    img.u64(g(&p, KB64, "ExPoolTagTables") + 8, t1);
    img.u64(g(&p, KB64, "PoolTrackTableExpansion"), te);
    img.u64(g(&p, KB64, "PoolTrackTableExpansionSize"), 2);
    img.u64(g(&p, KB64, "ExpSessionPoolTrackTable"), ts);
    img.u64(g(&p, KB64, "ExpSessionPoolTrackTableSize"), 2);
    // CPU 0: Leak 10 allocs, 2 frees, 80 KiB; Ntfs nonpaged 5/1/0x400.
    w10_entry(&mut img, &p, t0, b"Leak", 10, 2, 81920, 0, 0, 0);
    w10_entry(&mut img, &p, t0 + 2 * 0x38, b"Ntfs", 0, 0, 0, 5, 1, 0x400);
    // CPU 1: Leak 3 allocs, 5 frees, -4 KiB (freed here, allocated on CPU 0).
    w10_entry(
        &mut img,
        &p,
        t1 + 0x38,
        b"Leak",
        3,
        5,
        4096u64.wrapping_neg(),
        0,
        0,
        0,
    );
    // A free slot with stale counters (key 0) is not a tag.
    w10_entry(&mut img, &p, t1 + 3 * 0x38, &[0; 4], 99, 0, 99, 99, 0, 99);
    // Expansion: Leak 1 alloc of 4 KiB; Exp1 7 nonpaged allocs of 0x70 bytes.
    w10_entry(&mut img, &p, te, b"Leak", 1, 0, 4096, 0, 0, 0);
    w10_entry(&mut img, &p, te + 0x38, b"Exp1", 0, 0, 0, 7, 0, 0x70);
    // Session: Gses 4 paged allocs, 1 free, 0x300 bytes.
    w10_entry(&mut img, &p, ts + 0x38, b"Gses", 4, 1, 0x300, 0, 0, 0);
    let mem = img.memory();

    let t = read_tag_tables(mem, &ctx(Some(&p), 8, 19041, KB64), None).unwrap();
    assert_eq!(t.layout_source, LayoutSource::Profile);
    assert_eq!(t.tags.len(), 3, "{:?}", t.tags);
    let leak = find(&t.tags, "Leak");
    assert_eq!(
        (leak.paged_allocs, leak.paged_frees, leak.paged_bytes),
        (14, 7, 81920)
    );
    assert_eq!(leak.paged_outstanding(), 7);
    let ntfs = find(&t.tags, "Ntfs");
    assert_eq!(
        (
            ntfs.nonpaged_allocs,
            ntfs.nonpaged_frees,
            ntfs.nonpaged_bytes
        ),
        (5, 1, 0x400)
    );
    assert_eq!(find(&t.tags, "Exp1").nonpaged_bytes, 0x70);
    let session = t.session.as_ref().unwrap();
    assert_eq!(session.len(), 1);
    assert_eq!(
        (
            session[0].paged_allocs,
            session[0].paged_frees,
            session[0].paged_bytes
        ),
        (4, 1, 0x300)
    );
    let names: Vec<_> = t.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "PoolTrackTable",
            "ExPoolTagTables[1]",
            "PoolTrackTableExpansion",
            "ExpSessionPoolTrackTable"
        ]
    );
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);

    let mut rows = t.tags.clone();
    sort_tags(&mut rows, SortKey::NonpagedBytes);
    assert_eq!(rows[0].tag, Tag(*b"Ntfs"));
    sort_tags(&mut rows, SortKey::Allocs);
    // Outstanding: Leak 7, Exp1 7, Ntfs 4 -> ties by tag.
    let order: Vec<_> = rows.iter().map(|r| r.tag.to_string()).collect();
    assert_eq!(order, ["Exp1", "Leak", "Ntfs"]);
}

#[test]
fn win7_x64_counts_are_32_bit_and_missing_pages_are_counted() {
    let p = isf(W7601);
    assert_eq!(p.type_size("_POOL_TRACKER_TABLE"), Some(0x28));
    let mut img = Image::new(8);
    let t0 = 0xffff_fa80_0100_0000_u64;
    img.u64(g(&p, KB64, "PoolTrackTable"), t0);
    img.u64(g(&p, KB64, "PoolTrackTableSize"), 0x200);
    img.u32(g(&p, KB64, "KeNumberProcessors"), 1);
    img.u64(g(&p, KB64, "ExPoolTagTables"), t0);
    // 0x200 entries of 0x28 bytes = 5 pages; page 2 (0x2000..0x3000) is not in the dump.
    for pg in [0u64, 1, 3, 4] {
        img.touch(t0 + pg * 0x1000);
    }
    // Entry 1 (7601 ISF: Key long@0, NonPagedAllocs long@4, NonPagedFrees long@8,
    // NonPagedBytes u64@0x10, PagedAllocs ulong@0x18, PagedFrees ulong@0x1c, PagedBytes u64@0x20).
    let e = t0 + 0x28;
    img.write(e, b"Irp ");
    img.u32(e + 4, 12);
    img.u32(e + 8, 2);
    img.u32(e + 0xc, 0xdead_beef); // padding: must not leak into NonPagedFrees
    img.u64(e + 0x10, 0x1400);
    img.u32(e + 0x18, 1);
    img.u32(e + 0x1c, 0);
    img.u64(e + 0x20, 0x40);
    let mem = img.memory();
    let t = read_tag_tables(mem, &ctx(Some(&p), 8, 7601, KB64), None).unwrap();
    assert_eq!(t.tags.len(), 1);
    let irp = t.tags[0];
    assert_eq!(
        (irp.nonpaged_allocs, irp.nonpaged_frees, irp.nonpaged_bytes),
        (12, 2, 0x1400)
    );
    assert_eq!(
        (irp.paged_allocs, irp.paged_frees, irp.paged_bytes),
        (1, 0, 0x40)
    );
    // Entries 204..=307 touch the missing page (204*0x28 = 0x1fe0 .. 307*0x28 = 0x2ff8).
    assert_eq!(
        t.tables.len(),
        1,
        "ExPoolTagTables[0] is PoolTrackTable itself"
    );
    assert_eq!(t.tables[0].unreadable, 104);
    assert_eq!(t.tables[0].used, 1);
    assert!(
        t.warnings.iter().any(|w| w.contains("104 of 512")),
        "{:?}",
        t.warnings
    );
}

/// XP x86 (ntkrnlpa.pdb: 0x1C entries of ULONGs), once with the PDB and once with no symbols
/// at all (KDBG's PoolTrackTable address, size from the word before it).
#[test]
fn xp_x86_with_pdb_and_without_symbols() {
    let p = xp_pdb();
    assert_eq!(p.type_size("_POOL_TRACKER_TABLE"), Some(0x1c));
    let var = g(&p, KB32, "PoolTrackTable");
    assert_eq!(
        g(&p, KB32, "PoolTrackTableSize"),
        var - 4,
        "XP keeps the size just before the table pointer"
    );
    let mut img = Image::new(4);
    let t0 = 0x8100_0000_u64;
    img.u32(var, t0 as u32);
    img.u32(var - 4, 0x800);
    img.touch(t0);
    for pg in 1..=(0x800 * 0x1c / 0x1000) {
        img.touch(t0 + pg * 0x1000);
    }
    // Entry 5: "MmSt" paged 300 allocs, 100 frees, 0x32000 bytes; nonpaged 1/1/0.
    // Entry 6: "Thre" nonpaged 50 allocs, 8 frees, 42*0x280 = 0x6900 bytes.
    let e = t0 + 5 * 0x1c;
    img.write(e, b"MmSt");
    for (off, v) in [
        (4, 1u32),
        (8, 1),
        (0xc, 0),
        (0x10, 300),
        (0x14, 100),
        (0x18, 0x32000),
    ] {
        img.u32(e + off, v);
    }
    let e = t0 + 6 * 0x1c;
    img.write(e, b"Thre");
    for (off, v) in [(4, 50u32), (8, 8), (0xc, 0x6900)] {
        img.u32(e + off, v);
    }
    let mem = img.memory();
    for (profile, source) in [
        (Some(&p), LayoutSource::Profile),
        (None, LayoutSource::BuiltIn),
    ] {
        let t = read_tag_tables(mem, &ctx(profile, 4, 2600, KB32), Some(var)).unwrap();
        assert_eq!(t.layout_source, source);
        assert_eq!(t.tags.len(), 2);
        let mm = find(&t.tags, "MmSt");
        assert_eq!(
            (mm.paged_allocs, mm.paged_frees, mm.paged_bytes),
            (300, 100, 0x32000)
        );
        assert_eq!((mm.nonpaged_allocs, mm.nonpaged_frees), (1, 1));
        let th = find(&t.tags, "Thre");
        assert_eq!(
            (th.nonpaged_allocs, th.nonpaged_frees, th.nonpaged_bytes),
            (50, 8, 0x6900)
        );
        assert_eq!(
            t.warnings.len(),
            usize::from(profile.is_none()),
            "{:?}",
            t.warnings
        );
    }
}

#[test]
fn absurd_table_size_is_refused_before_reading() {
    let p = isf(W17763);
    let mut img = Image::new(8);
    img.u64(g(&p, KB64, "PoolTrackTable"), 0xffff_c000_0010_0000);
    img.u64(g(&p, KB64, "PoolTrackTableSize"), 1 << 40);
    let mem = img.memory();
    let e = read_tag_tables(mem, &ctx(Some(&p), 8, 17763, KB64), None).unwrap_err();
    assert!(
        matches!(
            e,
            PoolError::Implausible {
                what: "PoolTrackTableSize",
                ..
            }
        ),
        "{e}"
    );
    // No symbols and no debugger data block: nothing to go on.
    let e = read_tag_tables(mem, &ctx(None, 8, 17763, KB64), None).unwrap_err();
    assert!(
        matches!(
            e,
            PoolError::Missing {
                what: "PoolTrackTable",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn built_in_layouts_match_the_corpus_symbols() {
    // The built-in table must say what the real symbols say, field by field.
    let cases: [(Profile, u8, u32); 5] = [
        (xp_pdb(), 4, 2600),
        (isf(W7601), 8, 7601),
        (isf(W17763), 8, 17763),
        (isf(W19041), 8, 19041),
        (isf(W20348), 8, 20348),
    ];
    for (p, ptr, build) in cases {
        let a = TrackerLayout::from_profile(&p, ptr).unwrap();
        let b = TrackerLayout::built_in(ptr, build).unwrap();
        assert_eq!(a.size, b.size, "{build}");
        assert_eq!(a.fields(), b.fields(), "{build}");
    }
}

#[test]
fn built_in_layouts_follow_the_era_of_builds_between_table_builds() {
    // The table's own nearest-earlier rule would give 10586 the 7601 entry (0x28).
    let size = |ptr, build| TrackerLayout::built_in(ptr, build).unwrap().size;
    assert_eq!(size(8, 9600), 0x28, "8.1 x64 is in the Windows 7 era");
    assert_eq!(
        size(8, 10586),
        0x38,
        "Windows 10 1511 takes the earliest Windows 10 entry"
    );
    assert_eq!(size(8, 18362), 0x38);
    assert_eq!(size(8, 22621), 0x50, "Windows 11 follows 20348");
    assert_eq!(size(4, 7601), 0x1c, "x86 keeps one layout");
    assert_eq!(
        TrackerLayout::built_in(8, 10586).unwrap().source,
        LayoutSource::BuiltIn
    );
}
