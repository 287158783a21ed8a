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
