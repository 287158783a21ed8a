//! Unit tests against the real corpus triage dump. Expected values come from the corpus README
//! (build, bugcheck, CPUs, driver count), the raw header bytes at the documented offsets, and
//! the corpus symbol store key `amdppm.sys/c9c030003b000` (TIMESTAMP + SizeOfImage) — never
//! from this reader's own output.

use super::*;

fn triage_path() -> std::path::PathBuf {
    crate::test_corpus::corpus("dumps/triage_x64.dmp")
}

fn triage() -> Dump {
    Dump::open(triage_path()).expect("open corpus triage dump")
}

#[test]
fn dump_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dump>();
}

#[test]
fn triage_header_matches_corpus_readme() {
    let d = triage();
    let h = d.header();
    assert_eq!(h.arch, Arch::X64);
    assert!(!h.pae);
    assert_eq!(h.build, 19041);
    assert_eq!(h.major_version, 0xF);
    assert_eq!(h.bugcheck.code, 0x1000007E);
    assert_eq!(h.processors, 16);
    assert_eq!(h.dump_type, 4);
    assert_eq!(h.machine_image_type, 0x8664);
    assert_eq!(d.format(), DumpFormat::Triage);
    assert_eq!(d.format().as_str(), "triage");
    assert_eq!(d.stored_page_count(), 0);
    assert_eq!(d.stored_pfns().count(), 0);
    // 0x1000007E's first parameter is the exception code: STATUS_ACCESS_VIOLATION.
    assert_eq!(h.bugcheck.params[0], 0xFFFF_FFFF_C000_0005);
}

#[test]
fn triage_drivers_match_symbol_store() {
    let d = triage();
    let t = d.triage().expect("triage data");
    assert_eq!(t.drivers.len(), 151);
    let amd = t
        .drivers
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case("amdppm.sys"))
        .expect("amdppm.sys");
    assert_eq!(amd.timestamp, 0xC9C0_3000);
    assert_eq!(amd.size, 0x3B000);
    // The symbol store holds the very file: its PE header names the same key.
    let store = crate::test_corpus::corpus("symstore/amdppm.sys/c9c030003b000");
    assert!(
        store.as_path().is_dir(),
        "symbol store key directory exists"
    );
    // The first LDR entry is the kernel, loaded at a kernel-space address.
    assert_eq!(amd.path, "\\SystemRoot\\System32\\drivers\\amdppm.sys");
    assert_eq!(t.drivers[0].name, "ntoskrnl.exe");
    assert!(t
        .drivers
        .iter()
        .all(|m| m.base >= 0xFFFF_8000_0000_0000 && m.size > 0));
}

#[test]
fn triage_debugger_data_is_kdbg_and_readable_as_memory() {
    let d = triage();
    let kdbg = d.triage_debugger_data().expect("debugger data");
    assert_eq!(&kdbg[0x10..0x14], b"KDBG");
    let va = d
        .header()
        .kd_debugger_data_block
        .expect("KdDebuggerDataBlock");
    let mem = d.kernel_memory().unwrap();
    assert_eq!(mem.pointer_size(), 8);
    assert_eq!(
        mem.read_u32(va + 0x10).unwrap(),
        u32::from_le_bytes(*b"KDBG")
    );
    // KernBase (+0x18) equals the kernel driver entry's base.
    let kern_base = mem.read_u64(va + 0x18).unwrap();
    assert_eq!(kern_base, d.triage().unwrap().drivers[0].base);
    // An address nobody captured is an error, never zeros.
    assert!(mem.read_u64(0x10).is_err());
}

#[test]
fn triage_data_blocks_are_in_file() {
    let d = triage();
    let t = d.triage().unwrap();
    assert_eq!(t.header.data_blocks_count as usize, t.data_blocks.len());
    assert!(!t.data_blocks.is_empty());
    let mem = d.kernel_memory().unwrap();
    for b in t.data_blocks.iter().take(50) {
        let want = &d.file_bytes()[b.offset as usize..(b.offset + b.size) as usize];
        let got = mem.read_vec(b.address, b.size as usize).unwrap();
        // Overlapping blocks may serve a later copy; compare only the first byte run for
        // blocks that do not overlap another.
        if t.data_blocks
            .iter()
            .filter(|o| {
                o.address < b.address + u64::from(b.size)
                    && b.address < o.address + u64::from(o.size)
            })
            .count()
            == 1
        {
            assert_eq!(got, want);
        }
    }
}

/// An x64 header of DumpType `t` ("PAGE" filler as a writer leaves it), 0x2000 bytes.
fn header64(t: u32) -> Vec<u8> {
    let mut h: Vec<u8> = b"PAGE".iter().copied().cycle().take(0x2000).collect();
    h[4..8].copy_from_slice(b"DU64");
    h[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
    h[0x30..0x34].copy_from_slice(&0x8664u32.to_le_bytes());
    h[0x80..0x88].copy_from_slice(&0u64.to_le_bytes());
    h[0xF98..0xF9C].copy_from_slice(&t.to_le_bytes());
    h
}

/// A complete dump (DumpType 1) cut short: runs pfn 100..102 then 10..12 in file order, four
/// pages listed, three in the file. The page past the end (pfn 11) is not a stored pfn, though
/// it sorts before two that are. Found by fuzzing (fuzz/regressions/header).
#[test]
fn a_cut_run_dump_lists_only_the_pages_in_its_file() {
    let mut b = header64(1);
    b[0x88..0x8C].copy_from_slice(&2u32.to_le_bytes());
    b[0x90..0x98].copy_from_slice(&4u64.to_le_bytes());
    for (i, (base, count)) in [(100u64, 2u64), (10, 2)].iter().enumerate() {
        let at = 0x98 + i * 16;
        b[at..at + 8].copy_from_slice(&base.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&count.to_le_bytes());
    }
    b.resize(0x2000 + 3 * 0x1000, 0xAB);
    let d = Dump::from_bytes(b).expect("a cut dump opens");
    let t = d.truncation().expect("cut short");
    assert_eq!((t.pages_in_file, t.pages_listed), (3, 4));
    assert_eq!(d.stored_pfns().collect::<Vec<_>>(), vec![10, 100, 101]);
    assert!(d.stored_pfns().all(|pfn| d.physical().page(pfn).is_some()));
    assert!(d.physical().page(11).is_none());
}

/// A bitmap dump (DumpType 5, "SDMP") cut short: pfns 1, 3 and 5 present, one page in the file.
/// Found by fuzzing (fuzz/regressions/bitmap).
#[test]
fn a_cut_bitmap_dump_lists_only_the_pages_in_its_file() {
    let mut b = header64(5);
    let mut sub = vec![0u8; 0x38];
    sub[..4].copy_from_slice(b"SDMP");
    sub[4..8].copy_from_slice(b"DUMP");
    sub[0x20..0x28].copy_from_slice(&0x3000u64.to_le_bytes());
    sub[0x28..0x30].copy_from_slice(&3u64.to_le_bytes());
    sub[0x30..0x38].copy_from_slice(&64u64.to_le_bytes());
    b.extend_from_slice(&sub);
    b.extend_from_slice(&0b10_1010u64.to_le_bytes());
    b.resize(0x3000 + 0x1000, 0xCD);
    let d = Dump::from_bytes(b).expect("a cut dump opens");
    assert_eq!(d.truncation().map(|t| t.pages_in_file), Some(1));
    assert_eq!(d.stored_pfns().collect::<Vec<_>>(), vec![1]);
    assert!(d.physical().page(3).is_none());
}
