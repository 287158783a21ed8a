//! Every DumpType through `Dump::open` / `Dump::from_bytes`: format, stored pages, page
//! contents, and virtual reads over page tables. Inputs are built by hand (dump_support).

mod dump_support;

use analyzer::dump::{Arch, Dump, DumpError, DumpFormat};
use analyzer::memory::MemoryError;
use dump_support::*;

/// Checks the stored pages are exactly `pfns` (ascending) with their pattern, and others absent.
fn check_pages(d: &Dump, pfns: &[u64]) {
    assert_eq!(d.stored_page_count(), pfns.len() as u64);
    assert_eq!(d.stored_pfns().collect::<Vec<_>>(), pfns);
    for &pfn in pfns {
        assert_eq!(
            d.physical().page(pfn).expect("stored page"),
            page_of(pfn).as_slice(),
            "pfn {pfn:#x}"
        );
    }
    for absent in [pfns.iter().max().map_or(0, |m| m + 1), 1 << 30, u64::MAX] {
        assert!(d.physical().page(absent).is_none(), "pfn {absent:#x}");
    }
}

fn via_file(bytes: &[u8]) -> Dump {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    Dump::open(f.path()).unwrap()
}

#[test]
fn full64_runs_in_file_order() {
    let bytes = full64(&[(0x100, 3), (0x10, 2), (0x2000, 1)]);
    for d in [Dump::from_bytes(bytes.clone()).unwrap(), via_file(&bytes)] {
        assert_eq!(d.format(), DumpFormat::Full);
        assert_eq!(d.format().as_str(), "full");
        assert_eq!(d.header().arch, Arch::X64);
        assert_eq!(d.header().build, 19041);
        assert_eq!(d.header().bugcheck.code, 0xE2);
        assert_eq!(d.header().bugcheck.params, [0x1111, 0x2222, 0x3333, 0x4444]);
        assert_eq!(d.header().pfn_database, None); // left as "PAGE"
        assert_eq!(
            d.header().kd_debugger_data_block,
            Some(0xFFFF_F800_0000_1000)
        );
        check_pages(&d, &[0x10, 0x11, 0x100, 0x101, 0x102, 0x2000]);
        // Pages are served in place: file offset of pfn 0x10 is after the three 0x100 pages.
        assert_eq!(d.page_file_offset(0x10), Some(0x2000 + 3 * 0x1000));
    }
}

#[test]
fn full32_pae_and_non_pae() {
    for pae in [true, false] {
        let d = Dump::from_bytes(full32(&[(1, 2), (0x50, 1)], pae)).unwrap();
        assert_eq!(d.header().arch, Arch::X86);
        assert_eq!(d.header().pae, pae);
        assert_eq!(d.header().build, 2600);
        assert_eq!(d.header().bugcheck.params, [0x2222, 0x4444, 0x6666, 0x8888]);
        assert_eq!(d.header().system_time, Some(0x01C9_0000_0000_0000));
        check_pages(&d, &[1, 2, 0x50]);
        assert_eq!(d.kernel_memory().unwrap().pointer_size(), 4);
    }
}

#[test]
fn bitmap_kernel_and_full() {
    let set = [0u64, 1, 63, 64, 511, 512, 513, 4000, 4095];
    for (sig, fmt) in [
        (b"SDMP", DumpFormat::KernelBitmap),
        (b"FDMP", DumpFormat::FullBitmap),
    ] {
        let bytes = bmp64(sig, 4096, &set);
        for d in [Dump::from_bytes(bytes.clone()).unwrap(), via_file(&bytes)] {
            assert_eq!(d.format(), fmt);
            check_pages(&d, &set);
        }
    }
    // DumpType 6 uses the same sub-header.
    let mut b = bmp64(b"SDMP", 128, &[5]);
    put32(&mut b, 0xF98, 6);
    assert_eq!(
        Dump::from_bytes(b).unwrap().format(),
        DumpFormat::KernelBitmap
    );
}

#[test]
fn summary_dump_type_2() {
    let set = [2u64, 3, 100, 1023];
    let d = Dump::from_bytes(summary32(1024, &set)).unwrap();
    assert_eq!(d.format(), DumpFormat::Summary);
    assert!(d.header().pae);
    check_pages(&d, &set);
}

#[test]
fn rdmp_types() {
    for (t, fmt, name) in [
        (8, DumpFormat::RdmpKernel, "rdmp-kernel"),
        (9, DumpFormat::RdmpKernelUser, "rdmp-kernel-user"),
        (0xA, DumpFormat::RdmpComplete, "rdmp-complete"),
    ] {
        let d = Dump::from_bytes(rdmp64(t, &[(0x30, 2), (0x10, 1)])).unwrap();
        assert_eq!(d.format(), fmt);
        assert_eq!(d.format().as_str(), name);
        check_pages(&d, &[0x10, 0x30, 0x31]);
    }
}

#[test]
fn triage64_synthetic() {
    let blob = [0xABu8; 0x20];
    let d = Dump::from_bytes(triage64(
        &[
            (
                "\\SystemRoot\\system32\\ntoskrnl.exe",
                0xFFFF_F800_0000_0000,
                0x100_0000,
                0x1234,
                0x5678,
            ),
            ("x.sys", 0xFFFF_F800_1000_0000, 0x3000, 7, 8),
        ],
        &[(0xFFFF_F800_0000_0010, &blob)],
    ))
    .unwrap();
    assert_eq!(d.format(), DumpFormat::Triage);
    let t = d.triage().unwrap();
    assert_eq!(t.drivers.len(), 2);
    assert_eq!(t.drivers[0].name, "ntoskrnl.exe");
    assert_eq!(
        (t.drivers[0].timestamp, t.drivers[0].checksum),
        (0x1234, 0x5678)
    );
    assert_eq!(t.drivers[1].path, "x.sys");
    assert_eq!(
        (t.drivers[1].base, t.drivers[1].size),
        (0xFFFF_F800_1000_0000, 0x3000)
    );
    let mem = d.kernel_memory().unwrap();
    assert_eq!(
        mem.read_u64(0xFFFF_F800_0000_0018).unwrap(),
        0xABAB_ABAB_ABAB_ABAB
    );
    assert!(matches!(
        mem.read_u8(0xFFFF_F800_0000_0030),
        Err(MemoryError::NotCaptured { .. })
    ));
    assert_eq!(
        mem.read_u32(0xFFFF_F800_0000_1010).unwrap(),
        u32::from_le_bytes(*b"KDBG")
    );
    assert_eq!(&d.triage_debugger_data().unwrap()[0x10..0x14], b"KDBG");
}

#[test]
fn arm64_header_parses_but_translation_is_unsupported() {
    let mut b = full64(&[(1, 1)]);
    put32(&mut b, 0x30, 0xAA64);
    let d = Dump::from_bytes(b).unwrap();
    assert_eq!(d.header().arch, Arch::Arm64);
    let e = d
        .kernel_memory()
        .err()
        .expect("arm64 translation must be refused");
    assert!(matches!(e, DumpError::Unsupported(_)));
    assert!(e.to_string().contains("arm64"), "{e}");
}

#[test]
fn virtual_reads_over_a_full_dump() {
    let (bytes, va) = full64_with_page_tables();
    let d = Dump::from_bytes(bytes).unwrap();
    let mem = d.kernel_memory().unwrap();
    assert_eq!(mem.read_u64(va).unwrap(), 5 << 16);
    // Across the boundary into the transition page (pfn 6).
    let mut buf = [0u8; 16];
    mem.read(va + 0xFF8, &mut buf).unwrap();
    assert_eq!(
        u64::from_le_bytes(buf[..8].try_into().unwrap()),
        (5 << 16) | 511
    );
    assert_eq!(u64::from_le_bytes(buf[8..].try_into().unwrap()), 6 << 16);
    // pfn 7 is mapped but not stored: missing, not zeros.
    assert_eq!(
        mem.read_u8(va + 0x2000),
        Err(MemoryError::PageMissing {
            va: Some(va + 0x2000),
            pa: 0x7000
        })
    );
    // PTE 3 is zero: never committed.
    assert_eq!(
        mem.read_u8(va + 0x3000),
        Err(MemoryError::NotCommitted {
            va: va + 0x3000,
            demand_zero: false
        })
    );
}

#[test]
fn triage32_synthetic() {
    let d = Dump::from_bytes(triage32(
        "\\SystemRoot\\System32\\DRIVERS\\foo.sys",
        0xF7A0_0000,
        0x5000,
        0x4802_5E4C,
        0x1_2345,
        (0x8055_0000, b"blockdata"),
    ))
    .unwrap();
    assert_eq!(d.format(), DumpFormat::Triage);
    assert_eq!(d.header().arch, Arch::X86);
    let t = d.triage().unwrap();
    assert_eq!(t.drivers.len(), 1);
    let m = &t.drivers[0];
    assert_eq!(
        (m.name.as_str(), m.base, m.size, m.timestamp, m.checksum),
        ("foo.sys", 0xF7A0_0000, 0x5000, 0x4802_5E4C, 0x1_2345)
    );
    let mem = d.kernel_memory().unwrap();
    assert_eq!(mem.pointer_size(), 4);
    assert_eq!(mem.read_vec(0x8055_0005, 4).unwrap(), b"data");
    // Every cut of this file loses a structure.
    let full = triage32("a.sys", 1, 2, 3, 4, (0x1000, b"x"));
    for l in 0..full.len() {
        assert!(Dump::from_bytes(full[..l].to_vec()).is_err(), "len {l}");
    }
}

/// A full scan over more than two release windows (64 MiB each) of a mapped file: every stored
/// page is visited once, in order, with its contents, and pages released behind the scan still
/// read back correctly afterwards.
#[test]
fn for_each_stored_page_visits_all_and_released_pages_stay_readable() {
    let pfns: Vec<u64> = (0..40_000u64).map(|i| i * 3 + 1).collect();
    let d = via_file(&bmp64(b"FDMP", 40_000 * 3 + 64, &pfns));
    let mut seen = Vec::with_capacity(pfns.len());
    let mut bad = 0usize;
    d.for_each_stored_page(|pfn, page| {
        if page != page_of(pfn).as_slice() {
            bad += 1;
        }
        seen.push(pfn);
    });
    assert_eq!(bad, 0);
    assert_eq!(seen, pfns);
    for &pfn in [pfns[0], pfns[1000], pfns[20_000]].iter() {
        assert_eq!(
            d.physical().page(pfn).unwrap(),
            page_of(pfn).as_slice(),
            "pfn {pfn:#x} after release"
        );
    }
}
