//! Bad input: every malformed file must give `Err` with a one-line message naming the problem
//! (a file cut short in its page data opens instead, read as far as it goes, and says so),
//! never a panic, a hang or an allocation sized by a lying field. Inputs are built by hand
//! (dump_support), truncated at every structure boundary and swept over many lengths.

mod dump_support;

use analyzer::dump::{Dump, DumpError};
use dump_support::*;

fn err(bytes: Vec<u8>) -> DumpError {
    match Dump::from_bytes(bytes) {
        Ok(d) => panic!("expected an error, opened {d:?}"),
        Err(e) => e,
    }
}

fn one_line(e: &DumpError) -> String {
    let s = e.to_string();
    assert!(!s.is_empty() && !s.contains('\n'), "not one line: {s:?}");
    s
}

#[test]
fn empty_file() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let e = Dump::open(f.path()).unwrap_err();
    assert_eq!(one_line(&e), "empty file: not a kernel dump");
    assert_eq!(one_line(&err(Vec::new())), "empty file: not a kernel dump");
}

#[test]
fn missing_file_names_the_path() {
    let e = Dump::open("/nonexistent/x.dmp").unwrap_err();
    assert!(
        one_line(&e).starts_with("cannot read /nonexistent/x.dmp:"),
        "{e}"
    );
}

#[test]
fn user_mode_minidump() {
    let mut m = b"MDMP\x93\xa7\x00\x00".to_vec();
    m.resize(0x400, 0);
    assert_eq!(
        one_line(&err(m)),
        "not a kernel dump: user-mode minidump (MDMP)"
    );
    assert_eq!(
        one_line(&err(b"MDMP".to_vec())),
        "not a kernel dump: user-mode minidump (MDMP)"
    );
}

#[test]
fn short_header_is_truncated_with_sizes() {
    let mut b = header64(1, 0x8664);
    b.truncate(0x10);
    assert_eq!(
        one_line(&err(b)),
        "truncated: header needs 0x2000 bytes, file has 0x10"
    );
    let mut b = header32(1, true);
    b.truncate(0x800);
    assert_eq!(
        one_line(&err(b)),
        "truncated: header needs 0x1000 bytes, file has 0x800"
    );
}

#[test]
fn wrong_machine_and_dump_types() {
    let mut b = full64(&[(1, 1)]);
    put32(&mut b, 0x30, 0x14C);
    assert!(one_line(&err(b)).contains("MachineImageType 0x14c"));
    for (t, what) in [
        (0u32, "DumpType 0x0"),
        (3, "header-only"),
        (7, "automatic"),
        (0x45474150, "DumpType 0x45474150"),
    ] {
        let mut b = full64(&[(1, 1)]);
        put32(&mut b, 0xF98, t);
        let e = err(b);
        assert!(matches!(e, DumpError::Unsupported(_)));
        assert!(one_line(&e).contains(what), "{e}");
    }
}

/// Every valid hand-built dump ends exactly at its last structure, so every shorter length
/// must fail: structure boundaries first, then a sweep over all lengths.
fn truncation_sweep(name: &str, full: Vec<u8>, boundaries: &[usize]) -> usize {
    Dump::from_bytes(full.clone())
        .unwrap_or_else(|e| panic!("{name}: the untruncated file must open: {e}"));
    let mut lens: Vec<usize> = boundaries
        .iter()
        .flat_map(|&b| [b.saturating_sub(1), b, b + 1])
        .collect();
    lens.extend((0..full.len().min(0x2200)).step_by(3));
    lens.extend((0..full.len()).step_by(0x1FF));
    lens.push(full.len() - 1);
    lens.retain(|&l| l < full.len());
    // A cut in the headers is an error; a cut in the page data opens, read as far as it goes
    // (as WinDbg opens such dumps), and says how much is there.
    let mut opened = 0;
    for l in lens {
        match Dump::from_bytes(full[..l].to_vec()) {
            Err(e) => {
                one_line(&e);
            }
            Ok(d) => {
                let t = d
                    .truncation()
                    .unwrap_or_else(|| panic!("{name} cut at {l:#x}: opened as whole"));
                assert!(t.pages_in_file < t.pages_listed, "{name} at {l:#x}: {t:?}");
                let mut read = 0u64;
                d.for_each_stored_page(|_, _| read += 1);
                assert_eq!(read, t.pages_in_file, "{name} at {l:#x}");
                opened += 1;
            }
        }
    }
    opened
}

#[test]
fn truncation_full64() {
    let b = full64(&[(0x100, 3), (0x10, 2)]);
    let bounds = [
        4, 8, 0x30, 0x38, 0x88, 0x90, 0x98, 0xB8, 0xF98, 0x2000, 0x3000, 0x6000,
    ];
    assert!(truncation_sweep("full64", b, &bounds) > 0);
}

#[test]
fn truncation_full32() {
    let b = full32(&[(1, 2), (9, 1)], true);
    let bounds = [0x20, 0x5C, 0x64, 0x6C, 0xF88, 0x1000, 0x3000];
    assert!(truncation_sweep("full32", b, &bounds) > 0);
}

#[test]
fn truncation_bitmap() {
    let b = bmp64(b"SDMP", 4096, &[0, 7, 64, 4095]);
    let bounds = [0x2000, 0x2008, 0x2020, 0x2030, 0x2038, 0x2038 + 512, 0x3000];
    assert!(truncation_sweep("bmp64", b, &bounds) > 0);
    let b = bmp64(b"FDMP", 100, &[99]);
    assert!(truncation_sweep("bmp64 full", b, &[0x2038, 0x2038 + 13, 0x3000]) > 0);
}

#[test]
fn truncation_summary() {
    let b = summary32(1024, &[1, 1000]);
    let bounds = [0x1000, 0x1014, 0x1020, 0x1020 + 128, 0x2000];
    assert!(truncation_sweep("summary32", b, &bounds) > 0);
}

#[test]
fn truncation_rdmp() {
    let b = rdmp64(8, &[(0x30, 2)]);
    let bounds = [0x2000, 0x2010, 0x2020, 0x2030, 0x2040, 0x3000];
    assert!(truncation_sweep("rdmp", b, &bounds) > 0);
}

#[test]
fn truncation_triage_synthetic() {
    let blob = [1u8; 0x40];
    let b = triage64(
        &[("a.sys", 0xFFFF_F800_0000_0000, 0x1000, 1, 2)],
        &[(0xFFFF_F800_0000_0000, &blob)],
    );
    truncation_sweep("triage64", b, &[0x2000, 0x2040, 0x2080, 0x2080 + 0x90]);
}

#[test]
fn truncation_real_triage_dump() {
    let full = std::fs::read(analyzer::test_corpus::corpus("dumps/triage_x64.dmp")).unwrap();
    // The triage writer's SizeOfDump (TRIAGE_DUMP +4) and the corpus file's own structures
    // (header 0x2000, TRIAGE_DUMP 0x80): any cut before SizeOfDump loses something.
    let size_of_dump = u32::from_le_bytes(full[0x2004..0x2008].try_into().unwrap()) as usize;
    assert!(size_of_dump <= full.len());
    let mut lens = vec![
        0,
        1,
        7,
        8,
        0x1FFF,
        0x2000,
        0x207F,
        0x2080,
        size_of_dump - 4,
        size_of_dump - 1,
    ];
    lens.extend((0..size_of_dump).step_by(0x3F1));
    for l in lens {
        one_line(&err(full[..l].to_vec()));
    }
}

#[test]
fn random_bytes_never_panic() {
    // xorshift64*: deterministic, no dependency.
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut opened = 0;
    for i in 0..600 {
        let len = (next() % 0x5000) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Two thirds get a valid signature and a plausible DumpType so the deeper parsers run.
        if i % 3 != 0 && b.len() >= 0x2000 {
            b[..8].copy_from_slice(if i % 2 == 0 { b"PAGEDU64" } else { b"PAGEDUMP" });
            let types = [1u32, 2, 4, 5, 6, 8, 9, 10];
            let t = types[(next() % types.len() as u64) as usize];
            if i % 2 == 0 {
                put32(&mut b, 0x30, 0x8664);
                put32(&mut b, 0xF98, t);
            } else {
                put32(&mut b, 0x20, 0x14C);
                put32(&mut b, 0xF88, t);
            }
        }
        match Dump::from_bytes(b) {
            Err(e) => {
                one_line(&e);
            }
            Ok(d) => {
                opened += 1;
                for pfn in d.stored_pfns().take(64) {
                    assert!(d.physical().page(pfn).is_some());
                }
                if let Ok(m) = d.kernel_memory() {
                    let _ = m.read_u64(0xFFFF_F800_0000_0000);
                }
            }
        }
    }
    // Random garbage opening as a dump would mean our checks accept anything.
    assert!(opened < 10, "{opened} random files opened");
}

#[test]
fn run_table_past_eof() {
    let mut b = full64(&[(0, 2)]);
    put64(&mut b, 0xA0, 0x10_0000); // run claims a million pages
    put64(&mut b, 0x90, 0x10_0000);
    // Opened and read as far as the file goes: the run's pages past its end are not stored.
    let d = Dump::from_bytes(b).expect("a short file opens");
    let t = d.truncation().expect("reported as cut short");
    assert_eq!((t.pages_in_file, t.pages_listed), (2, 0x10_0000));
}

#[test]
fn run_table_count_mismatch_and_overlap() {
    let mut b = full64(&[(0, 2)]);
    put64(&mut b, 0x90, 3);
    assert!(one_line(&err(b)).contains("NumberOfPages 0x3 but the runs hold 0x2"));
    let b = full64(&[(0, 2), (1, 1)]);
    assert!(one_line(&err(b)).contains("overlap"));
}

#[test]
fn absurd_counts() {
    // NumberOfRuns far beyond the header's 700-byte run area.
    let mut b = full64(&[(0, 1)]);
    put32(&mut b, 0x88, 0xFFFF_FFF0);
    assert!(one_line(&err(b)).contains("NumberOfRuns 4294967280 exceeds the 42"));
    // "PAGE" filler as run count.
    let mut b = full32(&[(0, 1)], false);
    put32(&mut b, 0x64, 0x4547_4150);
    assert!(one_line(&err(b)).contains("PhysicalMemoryBlock is not set"));
    // Bitmap of 2^36 pages (8 GiB of bitmap) in a tiny file.
    let mut b = bmp64(b"SDMP", 64, &[1]);
    put64(&mut b, 0x2030, 1 << 36);
    assert!(one_line(&err(b)).starts_with("truncated: bitmap needs"));
    // Bitmap of 2^60 pages: refused before any arithmetic on it.
    let mut b = bmp64(b"SDMP", 64, &[1]);
    put64(&mut b, 0x2030, 1 << 60);
    assert!(one_line(&err(b)).contains("bitmap claims"));
    // TotalPresentPages lies.
    let mut b = bmp64(b"SDMP", 64, &[1]);
    put64(&mut b, 0x2028, 1 << 40);
    assert!(one_line(&err(b)).contains("set bits"));
    // FirstPage past EOF.
    let mut b = bmp64(b"FDMP", 64, &[1]);
    put64(&mut b, 0x2020, u64::MAX - 0x10);
    one_line(&err(b));
    // Triage: driver count, block count, name length.
    let blob = [1u8; 8];
    let t = triage64(&[("a.sys", 0, 0x1000, 1, 2)], &[(0x1000, &blob)]);
    let mut b = t.clone();
    put32(&mut b, 0x2034, u32::MAX);
    assert!(one_line(&err(b)).starts_with("truncated: triage driver list needs"));
    let mut b = t.clone();
    put32(&mut b, 0x207C, u32::MAX);
    assert!(one_line(&err(b)).starts_with("truncated: triage data blocks needs"));
    let mut b = t.clone();
    let name_off = u32::from_le_bytes(b[0x2080..0x2084].try_into().unwrap()) as usize;
    put32(&mut b, name_off, u32::MAX);
    assert!(one_line(&err(b)).contains("claims 4294967295 characters"));
    let mut b = t.clone();
    let valid = u32::from_le_bytes(b[0x2008..0x200C].try_into().unwrap()) as usize;
    b[valid..valid + 4].copy_from_slice(b"XXXX");
    assert!(one_line(&err(b)).contains("no \"TRGD\" marker"));
    // RDMP: inconsistent metadata, and huge consistent metadata past EOF.
    let mut b = rdmp64(9, &[(0x30, 1)]);
    put64(&mut b, 0x2010, 0x1000);
    assert!(one_line(&err(b)).contains("does not match FirstPageOffset"));
    let mut b = rdmp64(9, &[(0x30, 1)]);
    put64(&mut b, 0x2010, 0xFFFF_FFFF_0000_0000);
    put64(&mut b, 0x2018, 0xFFFF_FFFF_0000_0000 + 0x2020);
    put64(&mut b, 0x2040, 0x31); // no zero terminator: ranges run to EOF
                                 // Page data that starts far past the end, which RequiredDumpSpace does not
                                 // account for: misread metadata, not a file cut short.
    assert!(one_line(&err(b)).contains("RequiredDumpSpace"));
}

#[test]
fn foreign_signatures() {
    let mut b = vec![0u8; 0x3000];
    b[..4].copy_from_slice(b"\x7fELF");
    assert!(one_line(&err(b.clone())).contains("ELF"));
    b[..8].copy_from_slice(b"PAGEXXXX");
    assert!(one_line(&err(b.clone())).contains("unknown validity tag"));
    b[..8].copy_from_slice(b"\x01\x02\x03\x04\x05\x06\x07\x08");
    assert_eq!(
        one_line(&err(b)),
        "not a kernel dump: unknown signature 01 02 03 04 05 06 07 08"
    );
}
