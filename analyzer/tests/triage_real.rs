//! Every field of the inspect report of the real Windows 10 triage dump
//! (../shared/corpus/dumps/triage_x64.dmp), checked against values that do not come from our
//! code:
//! - the corpus README: build 19041, bugcheck 0x1000007E in amdppm.sys, 16 CPUs, 151 drivers;
//! - the symbol-store keys of the crashing driver: `amdppm.sys/c9c030003b000` (TimeDateStamp
//!   C9C03000, SizeOfImage 3B000);
//! - a hand read of the file with Python's `struct` at the offsets of
//!   ../shared/docs/windows-internals.md (header, TRIAGE_DUMP, driver entries, the KDBG copy at
//!   DebuggerDataOffset 0x104a8, the NtBuildLab data block at file offset 0xdfffc);
//! - pefile 2024.8.26 (PyPI) run on the kernel's captured header page (data block for
//!   0xfffff8047ba00000 at file offset 0xe6474): machine, timestamp, SizeOfImage, checksum,
//!   33 sections;
//! - Python's datetime for the FILETIME conversion.
//!
//! rizin (whose dmp parser the brief suggested as a second reader) is not packaged for Debian
//! 12, so the hand read above stands in for it.

use analyzer::dump::Dump;
use analyzer::kernel::bugcheck::{NameSource, ParamKind};
use analyzer::kernel::read_kernel;
use analyzer::report::{Hex, InspectReport};

fn dump_path() -> std::path::PathBuf {
    analyzer::test_corpus::corpus("dumps/triage_x64.dmp")
}

fn report() -> InspectReport {
    let dump = Dump::open(dump_path()).expect("the corpus triage dump opens");
    let kernel = read_kernel(&dump);
    InspectReport::build("triage_x64.dmp", &dump, &kernel)
}

#[test]
fn dump_fields() {
    let r = report();
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.file.size, 1_444_532); // ls -l
    let d = &r.dump;
    assert_eq!(d.format, "triage");
    assert_eq!(d.dump_type, 4); // u32 at 0xF98
    assert_eq!(d.arch, "x64"); // "DU64", MachineImageType 0x8664 at 0x30
    assert_eq!(d.machine_image_type, Hex(0x8664));
    assert!(!d.pae);
    assert_eq!(d.major_version, 15); // 0x08
    assert_eq!(d.build, 19041); // README; 0x0C
    assert_eq!(d.processors, 16); // README; 0x34
    assert_eq!(d.system_time, Some(Hex(0x01d7_07f2_3dbb_3399))); // 0xFA8
    assert_eq!(d.system_time_utc.as_deref(), Some("2021-02-21T01:38:22Z")); // datetime: 01:38:22.987765
    assert_eq!(d.directory_table_base, Hex(0x1ad000)); // 0x10
    assert_eq!(d.pfn_database, Some(Hex(0xfffff804_7c6fc500))); // 0x18
    assert_eq!(d.ps_loaded_module_list, Some(Hex(0xfffff804_7c62a390))); // 0x20
    assert_eq!(d.ps_active_process_head, Some(Hex(0xfffff804_7c61e200))); // 0x28
    assert_eq!(d.kd_debugger_data_block, Some(Hex(0xfffff804_7c600b20))); // 0x80
    assert_eq!(d.header_size, 0x2000);
    assert_eq!(d.stored_pages, 0, "a triage dump stores no physical pages");
    assert!(d.virtual_memory && d.virtual_memory_error.is_none());
}

#[test]
fn bugcheck_fields() {
    let r = report();
    let b = &r.bugcheck;
    assert_eq!(b.code, Hex(0x1000_007e)); // README
    assert_eq!(
        b.name.as_deref(),
        Some("SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M")
    );
    assert_eq!(b.base_code, Hex(0x7e));
    assert!(!b.pool_or_memory);
    // u64s at 0x40..0x60.
    assert_eq!(
        b.params,
        [
            Hex(0xffffffff_c0000005),
            Hex(0xfffff804_8b58334c),
            Hex(0xffff8504_29891ee8),
            Hex(0xffff8504_29891720)
        ]
    );
    // README: the crash is in amdppm.sys. Its base 0xfffff8048b580000 and size 0x3b000 come
    // from its driver entry; 0xfffff8048b58334c - base = 0x334c. Param 1 is an NTSTATUS
    // (STATUS_ACCESS_VIOLATION), params 3-4 are stack addresses: no module.
    assert_eq!(
        b.params_symbolized,
        [None, Some("amdppm.sys+0x334c".to_string()), None, None]
    );
    // 0x7E: parameter 2 is the exception address (bug check reference).
    let f = b.faulting.as_ref().unwrap();
    assert_eq!(
        (f.address, f.from.as_str()),
        (Hex(0xfffff804_8b58334c), "param 2")
    );
    assert_eq!(f.module_offset.as_deref(), Some("amdppm.sys+0x334c"));
    assert_eq!(
        (f.symbol.as_deref(), f.named),
        (None, false),
        "no symbols looked up"
    );
    // The 0x7E page of the bug check reference: parameter 2 is the exception address, 3 and 4
    // the exception and context records.
    assert_eq!(b.name_source, Some(NameSource::Reference));
    let d = b.description.as_ref().expect("0x7E is described");
    assert!(d
        .page
        .ends_with("bug-check-0x7e--system-thread-exception-not-handled"));
    assert_eq!(d.selected_by, None);
    assert_eq!(
        d.params[0].meaning,
        "The exception code that was not handled"
    );
    assert_eq!(d.params[1].kind, ParamKind::Code);
    assert_eq!(
        d.params[1].module_offset.as_deref(),
        Some("amdppm.sys+0x334c")
    );
    assert_eq!(d.params[2].meaning, "The address of the exception record");
    assert_eq!(d.params[3].module_offset, None, "a stack address");
}

/// The header's context record (x64 CONTEXT at 0x348, winnt.h layout): hand read with Python's
/// struct, ContextFlags at 0x378 = 0x0010001f (CONTEXT_AMD64 | ALL), Rip at 0x440 =
/// 0xfffff8048b58334c, the same instruction as bugcheck parameter 2.
#[test]
fn context_record_instruction_pointer() {
    let dump = Dump::open(dump_path()).unwrap();
    let ip =
        analyzer::kernel::fault::context_instruction_pointer(dump.file_bytes(), dump.header().arch);
    assert_eq!(ip, Some(0xfffff804_8b58334c));
}

#[test]
fn kdbg_fields() {
    let r = report();
    let k = &r.kdbg;
    assert!(k.found && !k.decoded && k.error.is_none());
    assert_eq!(k.va, Some(Hex(0xfffff804_7c600b20)));
    assert_eq!(k.size, Some(0x380)); // Size at block+0x14; TRIAGE_DUMP.DebuggerDataSize 0x380
    let f = |n: &str| k.fields.get(n).copied();
    assert_eq!(f("KernBase"), Some(Hex(0xfffff804_7ba00000)));
    assert_eq!(
        f("PsLoadedModuleList"),
        Some(Hex(0xfffff804_7c62a390)),
        "agrees with the header"
    );
    assert_eq!(
        f("PsActiveProcessHead"),
        Some(Hex(0xfffff804_7c61e200)),
        "agrees with the header"
    );
    assert_eq!(
        f("MmPfnDatabase"),
        Some(Hex(0xfffff804_7c6fc500)),
        "agrees with the header"
    );
    assert_eq!(f("PoolTrackTable"), Some(Hex(0xfffff804_7c6168a8)));
    assert_eq!(f("NtBuildLab"), Some(Hex(0xfffff804_7c64c0a0)));
    assert_eq!(f("PteBase"), Some(Hex(0xfffffd80_00000000)));
}

#[test]
fn kernel_fields() {
    let r = report();
    let k = &r.kernel;
    assert_eq!(k.base, Some(Hex(0xfffff804_7ba00000)));
    assert_eq!(k.name.as_deref(), Some("ntoskrnl.exe"));
    assert_eq!(k.size, Some(0x1046000)); // driver entry +0x48; pefile SizeOfImage
                                         // The NUL-terminated string in the data block captured at NtBuildLab.
    assert_eq!(
        k.build_lab.as_deref(),
        Some("19041.1.amd64fre.vb_release.191206-1406")
    );
    // The kernel's debug directory page (0xfffff8047ba107a0) was not captured.
    assert_eq!(k.pdb, None);
}

#[test]
fn module_fields() {
    let r = report();
    assert_eq!(r.module_list.source, "triage-driver-list");
    assert_eq!(r.module_list.count, 151); // README
    assert!(r.module_list.complete);
    assert_eq!(r.modules.len(), 151);

    // First, second and last driver entries (DriverListOffset 0x10828, 0x90 bytes each).
    let m = &r.modules[0];
    assert_eq!(
        (m.name.as_str(), m.path.as_str()),
        ("ntoskrnl.exe", "\\SystemRoot\\system32\\ntoskrnl.exe")
    );
    assert_eq!((m.base, m.size), (Hex(0xfffff804_7ba00000), 0x1046000));
    assert_eq!(
        (m.timestamp, m.checksum),
        (Some(Hex(0xd8333e6)), Some(Hex(0xa5938c)))
    );
    let m = &r.modules[1];
    assert_eq!(
        (m.name.as_str(), m.path.as_str()),
        ("hal.dll", "\\SystemRoot\\system32\\hal.dll")
    );
    assert_eq!(
        (m.base, m.size, m.timestamp, m.checksum),
        (
            Hex(0xfffff804_79440000),
            0x6000,
            Some(Hex(0x1a7be8e9)),
            Some(Hex(0xce9f))
        )
    );
    assert!(m.pe.is_none() && m.pe_error.is_some() && m.pdb.is_none());
    let m = &r.modules[150];
    assert_eq!(
        (m.name.as_str(), m.base, m.size),
        ("rdpbus.sys", Hex(0xfffff804_8b680000), 0xe000)
    );

    // The crashing driver: its timestamp and size are the symbol-store key c9c030003b000.
    let amd: Vec<_> = r
        .modules
        .iter()
        .filter(|m| m.name == "amdppm.sys")
        .collect();
    assert_eq!(amd.len(), 1);
    let m = amd[0];
    assert_eq!(m.path, "\\SystemRoot\\System32\\drivers\\amdppm.sys");
    assert_eq!(m.base, Hex(0xfffff804_8b580000));
    assert_eq!(
        format!("{:x}{:x}", m.timestamp.unwrap().0, m.size),
        "c9c030003b000"
    );
    assert_eq!(m.checksum, Some(Hex(0x38e6b))); // entry +0x80 (LDR CheckSum)

    // Every module is a kernel-space range; names are non-empty.
    assert!(r
        .modules
        .iter()
        .all(|m| m.base.0 >= 0xffff8000_00000000 && m.size > 0 && !m.name.is_empty()));
}

/// The kernel's PE header page is captured: its fields as pefile 2024.8.26 reads them.
#[test]
fn kernel_pe_header() {
    let r = report();
    let pe = r.modules[0]
        .pe
        .as_ref()
        .expect("kernel header page is in a data block");
    assert_eq!(pe.machine, Hex(0x8664));
    assert_eq!(pe.machine_name.as_deref(), Some("x64"));
    assert_eq!(pe.timestamp, Hex(0xd8333e6));
    assert_eq!(pe.size_of_image, 0x1046000);
    assert_eq!(pe.checksum, Hex(0xa5938c));
    assert_eq!(pe.sections.len(), 33);
    let names: Vec<&str> = pe.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(&names[..4], [".rdata", ".pdata", ".idata", ".edata"]);
    assert!(names.contains(&"POOLCODE") && names.contains(&"PAGE") && names.contains(&"INIT"));
    assert_eq!(names[32], ".reloc");
    let s = &pe.sections[2];
    assert_eq!(
        (s.virtual_address, s.virtual_size, s.characteristics),
        (Hex(0x131000), 0x20c2, Hex(0x48000040))
    );
    // The import table (RVA in .idata) was not captured: present but unreadable.
    let imports = pe
        .imports
        .as_ref()
        .expect("the kernel has an import directory");
    assert!(!imports.complete && imports.dll_count == 0);
    assert!(pe.warnings.iter().any(|w| w.contains("imports")));
}

#[test]
fn warnings_name_what_is_missing() {
    let r = report();
    // Hand check of the data blocks: none covers these addresses held by the KDBG copy (the
    // other DEREF fields are 0 in this Windows 10 block).
    assert_eq!(
        r.warnings,
        [
            "PE headers not in the dump for 150 of 151 modules",
            "kernel variables not in the dump: MmPfnDatabase, PoolTrackTable, MmSystemRangeStart, \
             MmHighestUserAddress, MmSizeOfPagedPoolInBytes, MmPagedPoolCommit, MmUnloadedDrivers",
        ]
    );
    assert!(r.kdbg.values.is_empty());
}

/// Damaged copies of the real dump (random bytes overwritten anywhere after the dump header):
/// whatever opens must give a report without panicking, and serialize.
#[test]
fn corrupted_copies_never_panic() {
    let original = std::fs::read(dump_path()).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut opened = 0;
    for _ in 0..300 {
        let mut bytes = original.clone();
        for _ in 0..64 {
            let at = 0x2000 + (next() as usize) % (bytes.len() - 0x2000);
            bytes[at] = next() as u8;
        }
        if let Ok(dump) = Dump::from_bytes(bytes) {
            opened += 1;
            let k = read_kernel(&dump);
            let r = InspectReport::build("x", &dump, &k);
            serde_json::to_string(&r).unwrap();
        }
    }
    assert!(
        opened > 0,
        "no damaged copy opened: the test exercised nothing"
    );
}
