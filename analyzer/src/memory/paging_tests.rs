//! Page-table walks on hand-built page tables.

use std::collections::HashMap;

use super::*;

const TRANSITION: u64 = 1 << 11;
const PROTOTYPE: u64 = 1 << 10;

/// `(va, Some(first byte))` for a stored page, `(va, None)` for an absent one (one entry per
/// run).
fn first_bytes(v: &PageTableMemory, start: u64, end: u64) -> Vec<(u64, Option<u8>)> {
    let mut seen = Vec::new();
    assert!(v.for_each_mapped_page(start, end, &mut |va, p| seen
        .push((va, p.bytes().map(|b| b[0])))));
    seen
}

/// Physical memory over a few hand-written pages.
#[derive(Default)]
struct Phys(HashMap<u64, Vec<u8>>);

impl Phys {
    fn page_mut(&mut self, pfn: u64) -> &mut Vec<u8> {
        self.0
            .entry(pfn)
            .or_insert_with(|| vec![0u8; PAGE_SIZE as usize])
    }
    fn put64(&mut self, pa: u64, v: u64) {
        let off = (pa & 0xFFF) as usize;
        self.page_mut(pa >> 12)[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(&mut self, pa: u64, v: u32) {
        let off = (pa & 0xFFF) as usize;
        self.page_mut(pa >> 12)[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, pa: u64, b: &[u8]) {
        let off = (pa & 0xFFF) as usize;
        self.page_mut(pa >> 12)[off..off + b.len()].copy_from_slice(b);
    }
}

impl PhysicalMemory for Phys {
    fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.0.get(&pfn).map(|v| v.as_slice())
    }
}

const P: u64 = 0x3; // present + writable
const PS: u64 = 0x83; // present + writable + large

#[test]
fn x64_small_large_huge_and_transition() {
    let mut m = Phys::default();
    let va = 0xFFFF_F800_0020_1234u64;
    let (pml4, pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
    m.put64(pml4 + ((va >> 39) & 0x1FF) * 8, pdpt | P);
    m.put64(pdpt, pd | P);
    m.put64(pd + 8, pt | P);
    m.put64(pt + 8, 0x5000 | P | (1 << 63)); // NX bit must be ignored
    m.bytes(0x5234, b"hello");
    // PTE 2: transition (valid clear, bit 11 set, bit 10 clear) -> page 6.
    m.put64(pt + 16, 0x6000 | TRANSITION);
    m.bytes(0x5FFC, &[1, 2, 3, 4]);
    m.bytes(0x6000, &[5, 6, 7, 8]);
    // PTE 3: prototype PTE -> not mapped.
    m.put64(pt + 24, 0x7000 | TRANSITION | PROTOTYPE);
    // PTE 4: valid, frame not in dump. PTE 5: absurd frame bits.
    m.put64(pt + 32, 0x99_000 | P);
    m.put64(pt + 40, 0xFFFF_FFFF_FFFF_F001);
    // PDE 2: 2 MB page at physical 0x20_0000.
    m.put64(pd + 16, 0x20_0000 | PS);
    m.bytes(0x20_0000 + 0x1_2345, b"2mb");
    // PDPTE 1: 1 GB page at physical 0x4000_0000.
    m.put64(pdpt + 8, 0x4000_0000 | PS);
    m.bytes(0x4000_0000 + 0x12_3456, b"1gb");

    let v = PageTableMemory::new(&m, pml4 | 0x5, PagingMode::X64); // low CR3 bits masked
    assert_eq!(v.pointer_size(), 8);
    assert_eq!(v.read_vec(va, 5).unwrap(), b"hello");
    assert_eq!(v.translate(va).unwrap(), 0x5234);
    // Across the boundary from a valid page into a transition page.
    let base = va & !0xFFF & !0x1FF000; // PT index 0 of this table
    let page1 = base + 0x1000;
    assert_eq!(
        v.read_vec(page1 + 0xFFC, 8).unwrap(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        v.read(page1 + 0x2000, &mut [0u8; 1]),
        Err(MemoryError::Prototype {
            va: page1 + 0x2000,
            table: false
        })
    );
    assert!(matches!(
        v.read_u8(page1 + 0x3000),
        Err(MemoryError::PageMissing { pa: 0x99_000, .. })
    ));
    assert!(matches!(
        v.read_u8(page1 + 0x4000),
        Err(MemoryError::PageMissing { .. })
    ));
    // PTE 6 is empty: never committed.
    assert_eq!(
        v.read_u8(page1 + 0x5000),
        Err(MemoryError::NotCommitted {
            va: page1 + 0x5000,
            demand_zero: false
        })
    );
    // 2 MB page: PD index 2 of the same PDPT entry.
    let va2m = (va & !0x3FFF_FFFF) + 2 * 0x20_0000 + 0x1_2345;
    assert_eq!(v.read_vec(va2m, 3).unwrap(), b"2mb");
    // 1 GB page: PDPT index 1.
    let va1g = (va & !0x7F_FFFF_FFFF) + 0x4000_0000 + 0x12_3456;
    assert_eq!(v.read_vec(va1g, 3).unwrap(), b"1gb");
    // Non-canonical and unmapped PML4 slot.
    assert_eq!(
        v.read_u8(0x0000_8000_0000_0000),
        Err(MemoryError::NotMapped {
            va: 0x0000_8000_0000_0000
        })
    );
    assert_eq!(
        v.read_u8(0x1000),
        Err(MemoryError::NotMapped { va: 0x1000 })
    );
    // Reading up to the top of the address space does not wrap.
    assert!(v.read(u64::MAX, &mut [0u8; 2]).is_err());

    // Enumeration of PT entries 0..6: 0 empty (skipped), 1 valid, 2 transition, 3
    // prototype (absent), 4 valid but not stored, 5 absurd frame (not stored).
    let seen: Vec<_> = first_bytes(&v, base, base + 0x6000)
        .into_iter()
        .map(|(va, b)| (va - base, b))
        .collect();
    assert_eq!(
        seen,
        [
            (0x1000, Some(0)),
            (0x2000, Some(5)),
            (0x3000, None),
            (0x4000, None),
            (0x5000, None)
        ]
    );
    // A 1 GB page is enumerated 4 KiB at a time, only inside the range asked for.
    let g = va & !0x7F_FFFF_FFFF;
    let mut n = 0;
    v.for_each_mapped_page(
        g + 0x4000_0000 + 0x12_3000,
        g + 0x4000_0000 + 0x12_5000,
        &mut |va, p| {
            n += 1;
            if va == g + 0x4000_0000 + 0x12_3000 {
                assert_eq!(&p.bytes().unwrap()[0x456..0x459], b"1gb");
            }
        },
    );
    assert_eq!(n, 2);
}

#[test]
fn x64_missing_table_page_and_self_loop() {
    let mut m = Phys::default();
    // PML4 entry 0 points to a page-table page that is not in the dump.
    m.put64(0x1000, 0x7_7000 | P);
    // PML4 entry 1 points back at the PML4 itself (a loop): the fixed-depth walk just
    // reinterprets the PML4 as lower levels and ends.
    m.put64(0x1000 + 8, 0x1000 | P);
    let v = PageTableMemory::new(&m, 0x1000, PagingMode::X64);
    assert_eq!(
        v.read_u8(0x10),
        Err(MemoryError::PageMissing {
            va: Some(0x10),
            pa: 0x7_7000
        })
    );
    // PML4 1 -> PDPT = PML4, PDPT 1 -> PD = PML4, PD 1 -> PT = PML4, PT 0 -> page 0x77.
    let looped = 0x80_0000_0000u64 + (1 << 30) + (1 << 21) + (1 << 12);
    assert_eq!(v.read_u64(looped).unwrap(), 0x7_7000 | P); // reads the PML4 page itself
    let to_missing = 0x80_0000_0000u64 + (1 << 30) + (1 << 21);
    assert_eq!(
        v.read_u8(to_missing),
        Err(MemoryError::PageMissing {
            va: Some(to_missing),
            pa: 0x7_7000
        })
    );
    // Enumerating the whole space through the loop ends (fixed depth): PML4 1 -> 1 -> 1
    // -> PT entries 0 (frame 0x77, not stored) and 1 (the PML4 page itself). PML4 0's
    // table is not in the dump: its 512 GiB are absent, one run per PDPT entry.
    let mut seen = Vec::new();
    let mut absent_runs = 0;
    v.for_each_mapped_page(0, u64::MAX, &mut |va, p| {
        if let MappedPage::Absent {
            pages: 0x4_0000, ..
        } = p
        {
            absent_runs += 1;
        }
        seen.push((va, p.bytes().is_some()))
    });
    assert_eq!(absent_runs, 512);
    assert!(
        seen.contains(&(looped, true)) && seen.contains(&(to_missing, false)),
        "{seen:x?}"
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
}

#[test]
fn pae_small_large_and_transition() {
    let mut m = Phys::default();
    let va = 0x8040_1234u64; // PDPT 2, PD 2, PT 1
    let (pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64);
    m.put64(pdpt + 2 * 8, pd | 1);
    m.put64(pd + 2 * 8, pt | P);
    m.put64(pt + 8, 0x4000 | P);
    m.put64(pt + 16, 0x5000 | TRANSITION);
    m.bytes(0x4234, b"pae");
    m.bytes(0x4FFE, &[1, 2]);
    m.bytes(0x5000, &[3, 4]);
    // PD 3: 2 MB page at 0x60_0000.
    m.put64(pd + 3 * 8, 0x60_0000 | PS);
    m.bytes(0x60_0000 + 0x1_0001, b"big");
    let v = PageTableMemory::new(&m, pdpt, PagingMode::X86Pae);
    assert_eq!(v.pointer_size(), 4);
    assert_eq!(v.read_vec(va, 3).unwrap(), b"pae");
    assert_eq!(v.read_vec(0x8040_1FFE, 4).unwrap(), [1, 2, 3, 4]);
    assert_eq!(v.read_vec(0x8060_0000 + 0x1_0001, 3).unwrap(), b"big");
    assert_eq!(
        v.read_u8(0x1234),
        Err(MemoryError::NotMapped { va: 0x1234 })
    ); // PDPT 0 empty
    assert_eq!(
        v.read_u8(0x1_0000_0000),
        Err(MemoryError::NotMapped { va: 0x1_0000_0000 })
    );
    // Enumeration: PT 1 and 2 (stored), then PD 3's 2 MB page (512 pages, one stored).
    let (mut all, mut stored) = (0, 0);
    v.for_each_mapped_page(0x8040_0000, 0x8080_0000, &mut |_, p| {
        all += 1;
        stored += usize::from(p.bytes().is_some());
    });
    assert_eq!((all, stored), (2 + 512, 2 + 1));
}

#[test]
fn x86_small_large_and_transition() {
    let mut m = Phys::default();
    let va = 0x8040_1234u64; // PD 0x201, PT 1
    let (pd, pt) = (0x1000u64, 0x2000u64);
    m.put32(pd + 0x201 * 4, (pt | P) as u32);
    m.put32(pt + 4, (0x3000 | P) as u32);
    m.put32(pt + 8, (0x4000 | TRANSITION) as u32);
    m.put32(pt + 12, (0x5000 | TRANSITION | PROTOTYPE) as u32);
    m.bytes(0x3234, b"x86");
    m.bytes(0x3FFF, &[9]);
    m.bytes(0x4000, &[10]);
    // PD 0x202: 4 MB page at physical 0xC0_0000.
    m.put32(pd + 0x202 * 4, (0xC0_0000 | PS) as u32);
    m.bytes(0xC0_0000 + 0x2F_0010, b"4mb");
    let v = PageTableMemory::new(&m, pd, PagingMode::X86);
    assert_eq!(v.read_vec(va, 3).unwrap(), b"x86");
    assert_eq!(v.read_vec(0x8040_1FFF, 2).unwrap(), [9, 10]);
    assert_eq!(
        v.read_u8(0x8040_3000),
        Err(MemoryError::Prototype {
            va: 0x8040_3000,
            table: false
        })
    );
    assert_eq!(v.read_vec(0x8080_0000 + 0x2F_0010, 3).unwrap(), b"4mb");
    assert_eq!(
        v.read_ptr(0x8040_1234).unwrap(),
        u64::from(u32::from_le_bytes(*b"x86\0"))
    );

    // Enumeration: PT 1 (stored), PT 2 (transition, stored), PT 3 prototype (absent), then
    // the 4 MB page's 1024 pages of which one is stored.
    let (mut all, mut stored) = (0, 0);
    assert!(
        v.for_each_mapped_page(0x8000_0000, 0x8100_0000, &mut |_, p| {
            all += 1;
            stored += usize::from(p.bytes().is_some());
        })
    );
    assert_eq!((all, stored), (3 + 1024, 2 + 1));
    let mut one = Vec::new();
    v.for_each_mapped_page(0x8090_0000, 0x8090_1000, &mut |va, p| {
        one.push((va, p.bytes().is_some()))
    });
    assert_eq!(one, [(0x8090_0000, false)]);
}

// ---------------------------------------------------------------------------------------
// Every PTE state, in each kernel's own layout (the ISFs' and the XP PDB's `_MMPTE_*`
// bitfields; raw values from the bit positions of /work/research/provenance.md §4).

/// The raw entries of one layout: a page in paging file 2 at page 0x123, a prototype PTE, a
/// transition PTE naming `frame`, a demand-zero PTE (protection 4, read/write).
struct Raw {
    page_file: u64,
    prototype: u64,
    transition: fn(u64) -> u64,
    demand_zero: u64,
}

const X64_RAW: Raw = Raw {
    // PageFileLow 12..15 = 2, Protection 5..9 = 4, PageFileHigh 32..63 = 0x123.
    page_file: 0x0000_0123_0000_2080,
    // Prototype bit 10, ProtoAddress 16..63.
    prototype: 0xFFFF_8A00_1230_0400,
    // Transition bit 11, Protection 4, PageFrameNumber 12..47.
    transition: |frame| frame | 0x880,
    demand_zero: 0x80,
};

const PAE_RAW: Raw = Raw {
    // XP PAE: PageFileLow 1..4 = 2, Protection 5..9 = 4, PageFileHigh 32..63 = 0x123.
    page_file: 0x0000_0123_0000_0084,
    // Prototype bit 10, ProtoAddress 32..63.
    prototype: 0xE100_0000_0000_0400,
    transition: |frame| frame | 0x880,
    demand_zero: 0x80,
};

/// Fills a page table at `pt` with one entry of each state, and the page directory at `pd`
/// with a paged-out page table (PDE 1), a page table in transition (PDE 2, at 0x5000), no
/// table (PDE 3) and a valid PDE whose table the dump lacks (PDE 4).
fn plant_states(m: &mut Phys, pd: u64, pt: u64, r: &Raw) {
    m.put64(pd, pt | P);
    m.bytes(0x10000, &[0x11]);
    m.bytes(0x12000, &[0x22]);
    let entries = [
        0x10000 | P,             // 0 valid, stored
        0x99000 | P,             // 1 valid, not stored
        (r.transition)(0x12000), // 2 transition, stored
        (r.transition)(0x98000), // 3 transition, not stored
        r.page_file,             // 4 paged out
        r.prototype,             // 5 prototype
        r.demand_zero,           // 6 demand-zero
        0,                       // 7 zero
    ];
    for (i, e) in entries.iter().enumerate() {
        m.put64(pt + 8 * i as u64, *e);
    }
    m.put64(pd + 8, r.page_file);
    m.put64(pd + 16, (r.transition)(0x5000));
    m.put64(0x5000, 0x10000 | P);
    m.put64(pd + 32, 0x97000 | P);
}

/// What a walk sees of the planted states, from the page table at `base`.
fn check_states(v: &PageTableMemory, base: u64, ctx: &str) {
    const MB2: u64 = 0x20_0000;
    assert_eq!(v.read_u8(base).unwrap(), 0x11, "{ctx}");
    let missing = |off: u64, pa: u64| MemoryError::PageMissing {
        va: Some(base + off),
        pa,
    };
    assert_eq!(
        v.read_u8(base + 0x1000),
        Err(missing(0x1000, 0x99000)),
        "{ctx}"
    );
    let mut page = vec![0u8; 0x1000];
    assert_eq!(
        v.read_page(base + 0x2000, &mut page),
        Ok(PageRead::Transition),
        "{ctx}"
    );
    assert_eq!(page[0], 0x22, "{ctx}");
    assert_eq!(
        v.read_u8(base + 0x3000),
        Err(missing(0x3000, 0x98000)),
        "{ctx}"
    );
    let paged_out = |off: u64, table: bool| MemoryError::PagedOut {
        va: base + off,
        page_file: 2,
        offset: 0x123,
        table,
    };
    assert_eq!(
        v.read_u8(base + 0x4000),
        Err(paged_out(0x4000, false)),
        "{ctx}"
    );
    let proto = MemoryError::Prototype {
        va: base + 0x5000,
        table: false,
    };
    assert_eq!(v.read_u8(base + 0x5000), Err(proto), "{ctx}");
    for (off, demand_zero) in [(0x6000, true), (0x7000, false)] {
        let e = MemoryError::NotCommitted {
            va: base + off,
            demand_zero,
        };
        assert_eq!(v.read_u8(base + off), Err(e), "{ctx}");
    }
    assert_eq!(
        v.read_u8(base + MB2 + 8),
        Err(paged_out(MB2 + 8, true)),
        "{ctx}"
    );
    assert_eq!(
        v.read_u8(base + 2 * MB2).unwrap(),
        0x11,
        "{ctx}: table in transition"
    );
    let none = MemoryError::NotMapped { va: base + 3 * MB2 };
    assert_eq!(v.read_u8(base + 3 * MB2), Err(none), "{ctx}");
    let table_missing = v.read_u8(base + 4 * MB2);
    assert_eq!(table_missing, Err(missing(4 * MB2, 0x97000)), "{ctx}");
    check_enumeration(v, base, ctx);
}

/// The enumeration of the same states: the first events, then pages per state.
fn check_enumeration(v: &PageTableMemory, base: u64, ctx: &str) {
    let mut events = Vec::new();
    let mut pages: HashMap<&str, u64> = HashMap::new();
    v.for_each_mapped_page(base, base + 0xA0_0000, &mut |va, p| {
        let (kind, n) = match p {
            MappedPage::Stored {
                transition: false, ..
            } => ("stored", 1),
            MappedPage::Stored {
                transition: true, ..
            } => ("transition", 1),
            MappedPage::Absent { why, pages } => (
                match why {
                    Absence::NotInDump => "not in dump",
                    Absence::PagedOut => "paged out",
                    Absence::Prototype => "prototype",
                    Absence::NeverCommitted => "never committed",
                },
                pages,
            ),
        };
        events.push((va - base, kind, n));
        *pages.entry(kind).or_default() += n;
    });
    let first: Vec<_> = events.iter().take(9).copied().collect();
    assert_eq!(
        first,
        [
            (0, "stored", 1),
            (0x1000, "not in dump", 1),
            (0x2000, "transition", 1),
            (0x3000, "not in dump", 1),
            (0x4000, "paged out", 1),
            (0x5000, "prototype", 1),
            (0x6000, "never committed", 1),
            (0x20_0000, "paged out", 512),
            (0x40_0000, "stored", 1),
        ],
        "{ctx}"
    );
    // The PDE 4 table's 512 entries, one page each, then nothing (PDE 3 and the rest zero).
    assert_eq!(pages.get("not in dump"), Some(&(2 + 512)), "{ctx}");
    assert_eq!(events.len(), 9 + 512, "{ctx}");
}

/// x64: PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000 at 0xFFFF_F800_0000_0000.
fn x64_tables(r: &Raw) -> (Phys, u64) {
    let mut m = Phys::default();
    let base = 0xFFFF_F800_0000_0000u64;
    m.put64(0x1000 + ((base >> 39) & 0x1FF) * 8, 0x2000 | P);
    m.put64(0x2000, 0x3000 | P);
    plant_states(&mut m, 0x3000, 0x4000, r);
    (m, base)
}

#[test]
fn every_pte_state_in_the_7601_layout() {
    let p = crate::pool::testmem::isf(crate::pool::testmem::W7601);
    let f = PteFormat::from_profile(&p, PagingMode::X64).expect("7601 _MMPTE_SOFTWARE");
    assert_eq!(f.page_file_low, super::super::pte::Bits::new(12, 4));
    let (m, base) = x64_tables(&X64_RAW);
    check_states(&PageTableMemory::with_format(&m, 0x1000, f), base, "7601");
}

#[test]
fn every_pte_state_in_the_19041_layout_swizzled() {
    let p = crate::pool::testmem::isf(crate::pool::testmem::W19041);
    let mask = 1u64 << 45;
    let f = PteFormat::from_profile(&p, PagingMode::X64)
        .expect("19041 _MMPTE_SOFTWARE")
        .with_invalid_pte_mask(mask);
    assert_eq!(f.swizzle, Some(super::super::pte::Bits::new(4, 1)));
    // The kernel stores invalid PTEs with the mask's bits set and SwizzleBit clear.
    let swizzled = Raw {
        page_file: X64_RAW.page_file | mask,
        prototype: X64_RAW.prototype,
        transition: |frame| frame | 0x880 | (1 << 45),
        demand_zero: X64_RAW.demand_zero | mask,
    };
    let (m, base) = x64_tables(&swizzled);
    check_states(&PageTableMemory::with_format(&m, 0x1000, f), base, "19041");
    // Without the mask the swizzled demand-zero page reads as paged out, and the transition
    // page's frame is not in the dump: counted missing, never read as something else.
    let plain = PteFormat::from_profile(&p, PagingMode::X64).unwrap();
    let v = PageTableMemory::with_format(&m, 0x1000, plain);
    assert!(matches!(
        v.read_u8(base + 0x6000),
        Err(MemoryError::PagedOut { .. })
    ));
    assert!(matches!(
        v.read_u8(base + 0x2000),
        Err(MemoryError::PageMissing { .. })
    ));
}

#[test]
fn every_pte_state_in_the_xp_pae_layout() {
    let p = crate::pool::testmem::xp_pdb();
    let f = PteFormat::from_profile(&p, PagingMode::X86Pae).expect("XP _MMPTE_SOFTWARE");
    assert_eq!(f.page_file_low, super::super::pte::Bits::new(1, 4));
    assert_eq!(f.swizzle, None);
    // PDPT 0x1000 (entry 2: 0x8000_0000), PD 0x2000, PT 0x3000.
    let mut m = Phys::default();
    m.put64(0x1000 + 2 * 8, 0x2000 | 1);
    plant_states(&mut m, 0x2000, 0x3000, &PAE_RAW);
    check_states(
        &PageTableMemory::with_format(&m, 0x1000, f),
        0x8000_0000,
        "xp",
    );
    // The x64 layout would read XP's page file number from the wrong bits.
    let x64 = PteFormat::built_in(PagingMode::X64);
    assert_ne!(
        f.classify(PAE_RAW.page_file),
        x64.classify(PAE_RAW.page_file)
    );
}

#[test]
fn the_invalid_pte_mask_is_read_where_each_kernel_keeps_it() {
    use crate::pool::testmem::{isf, Image, W19041, W7601};
    let kb = 0xffff_f800_1000_0000u64;
    let p7 = isf(W7601);
    let mut img = Image::new(8);
    img.u64(
        kb + p7.global("MiInvalidPteMask").unwrap(),
        0x0000_2000_0000_0000,
    );
    let got = super::super::pte::read_invalid_pte_mask(img.memory(), &p7, kb);
    assert_eq!(got, Some((0x0000_2000_0000_0000, "MiInvalidPteMask")));
    // 19041: MiState (0xc4c740) + Hardware (0x15c0) + InvalidPteMask (0xc0), as the ISF has.
    let p10 = isf(W19041);
    let mut img = Image::new(8);
    img.u64(kb + 0xc4c740 + 0x15c0 + 0xc0, 0x0000_0800_0000_0000);
    let got = super::super::pte::read_invalid_pte_mask(img.memory(), &p10, kb);
    assert_eq!(
        got,
        Some((0x0000_0800_0000_0000, "MiState.Hardware.InvalidPteMask"))
    );
}
