//! Function names from real PDBs, checked against readers nobody here wrote.

use analyzer::symbols::names::{FunctionNames, SymbolKind, Undecorate};
use analyzer::test_corpus::corpus_str;

fn amdppm_pdb() -> String {
    corpus_str("symstore/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
}

/// triage_x64.dmp crashed at amdppm.sys+0x334c (bugcheck 0x1000007E, parameter 2).
///
/// Expected from `llvm-pdbutil dump --publics --symbols --section-headers amdppm.pdb`
/// (Debian llvm 14.0.6): the module streams of this public PDB are stripped (one S_LPROC32,
/// RtlStringCopyWorkerW); .text is section 1 at RVA 0x1000; the publics around 0001:9036
/// (= RVA 0x334c) are `WriteIoMemRawEx` (function, 0001:8924 = RVA 0x32dc) and
/// `WriteIoMemRawHidden` (0001:9072 = RVA 0x3370). Hence WriteIoMemRawEx+0x70.
#[test]
fn amdppm_bugcheck_address_matches_llvm_pdbutil() {
    let names = FunctionNames::from_pdb(amdppm_pdb(), Undecorate::Auto).unwrap();
    assert!(!names.undecorated, "x64 PDB: names as stored");
    let hit = names.lookup(0x334c).unwrap();
    assert_eq!(hit.name, "WriteIoMemRawEx");
    assert_eq!(hit.rva, 0x32dc);
    assert_eq!(hit.offset, 0x70);
    assert_eq!(hit.kind, SymbolKind::PublicFunction);
    assert_eq!(
        names.name_at(0x334c).as_deref(),
        Some("WriteIoMemRawEx+0x70")
    );
    // Neighbours from the same llvm-pdbutil listing.
    assert_eq!(
        names.name_at(0x3370).as_deref(),
        Some("WriteIoMemRawHidden")
    );
    assert_eq!(
        names.name_at(0x336f).as_deref(),
        Some("WriteIoMemRawEx+0x93")
    );
    // 0001:49824 S_LPROC32 RtlStringCopyWorkerW, code size 83: the one procedure, with length.
    let p = names.lookup(0x1000 + 49824 + 10).unwrap();
    assert_eq!(
        (p.name, p.kind, p.len, p.offset),
        ("RtlStringCopyWorkerW", SymbolKind::Procedure, Some(83), 10)
    );
    // 959 S_PUB32 records in llvm-pdbutil's listing; 7 of them (`__guard_flags`, ...) are in
    // section 11, one past the 10 section headers: the absolute pseudo-section of constants,
    // not addresses. 952 publics + 1 procedure.
    assert_eq!(names.len(), 953);
    // Below the first symbol of the image (the headers) nothing is named.
    assert_eq!(names.lookup(0x10), None);
}

/// XP SP3 PAE kernel: an old PDB (DBI machine type 0) with decorated x86 publics.
/// llvm-pdbutil 14 crashes on it (segfault in `dump --publics`), so the expected RVAs are
/// those Volatility 3's pdbconv (volatility3 2.28.2, scripts/test.sh makes the ISF in
/// .cache/vol-symbols/windows/ntkrnlpa.pdb/) wrote: symbols.*.address with the linkage names
/// `_PoolTrackTable`, `_KeBugCheckEx@20`, `_ExAllocatePoolWithTag@12`, `_KiTrap0E`.
#[test]
fn xp_kernel_publics_match_pdbconv() {
    let names = FunctionNames::from_pdb(corpus_str("pdb/ntkrnlpa.pdb"), Undecorate::Auto).unwrap();
    assert!(
        names.undecorated,
        "machine type 0 with decorated names: x86 rules"
    );
    assert_eq!(names.rva_of("PoolTrackTable"), Some(546304));
    assert_eq!(names.rva_of("PoolBigPageTable"), Some(546292));
    assert_eq!(names.rva_of("KeBugCheckEx"), Some(138394));
    assert_eq!(names.rva_of("ExAllocatePoolWithTag"), Some(450176));
    assert_eq!(names.rva_of("ExFreePoolWithTag"), Some(448486));
    assert_eq!(names.rva_of("KiTrap0E"), Some(431184));
    assert_eq!(names.name_at(138394).as_deref(), Some("KeBugCheckEx"));
    assert_eq!(
        names.name_at(450176 + 0x25).as_deref(),
        Some("ExAllocatePoolWithTag+0x25")
    );
    // Decorated forms are gone.
    assert_eq!(names.rva_of("_KeBugCheckEx@20"), None);
}

/// Lookups are a binary search: a million of them over the kernel's table take well under a
/// second even in a debug build (a linear scan would take minutes).
#[test]
fn lookup_is_fast() {
    let names = FunctionNames::from_pdb(corpus_str("pdb/ntkrnlpa.pdb"), Undecorate::Auto).unwrap();
    assert!(names.len() > 5000, "{}", names.len());
    let t = std::time::Instant::now();
    let mut named = 0u32;
    for i in 0..1_000_000u32 {
        if names
            .lookup(i.wrapping_mul(2654435761) % 0x20_0000)
            .is_some()
        {
            named += 1;
        }
    }
    assert!(named > 900_000);
    assert!(t.elapsed().as_secs_f64() < 3.0, "{:?}", t.elapsed());
}

/// Every public of amdppm.pdb, as llvm-pdbutil (run here, not remembered) lists it, names its
/// own address with the same name. Section:offset pairs are turned into RVAs with the section
/// headers llvm-pdbutil prints from the same PDB.
#[test]
fn amdppm_every_public_agrees_with_llvm_pdbutil() {
    let tool = std::env::var("POOLTRIAGE_LLVM_PDBUTIL").unwrap_or_else(|_| "llvm-pdbutil".into());
    let out = std::process::Command::new(&tool)
        .args(["dump", "--publics", "--section-headers"])
        .arg(amdppm_pdb())
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} not runnable ({e}): scripts/test.sh installs Debian llvm")
        });
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "  SECTION HEADER #1" followed by "      1000 virtual address".
    let mut sections = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("SECTION HEADER #") {
            for l2 in lines.by_ref() {
                if let Some(va) = l2.trim().strip_suffix(" virtual address") {
                    sections.push(u32::from_str_radix(va.trim(), 16).unwrap());
                    break;
                }
            }
        }
    }
    assert_eq!(sections.len(), 10);
    // "S_PUB32 [size = 40] `Name`" then "flags = function, addr = 0001:9036" (decimal offset).
    let mut publics = Vec::new();
    let mut name: Option<String> = None;
    for l in text.lines() {
        if let Some(rest) = l.split("S_PUB32 ").nth(1) {
            name = rest.split('`').nth(1).map(str::to_string);
        } else if let (Some(n), Some(addr)) = (name.take(), l.split("addr = ").nth(1)) {
            let (sec, off) = addr.trim().split_once(':').unwrap();
            let (sec, off): (usize, u32) = (sec.parse().unwrap(), off.parse().unwrap());
            if let Some(va) = sec.checked_sub(1).and_then(|i| sections.get(i)) {
                publics.push((n, va + off));
            }
        }
    }
    assert_eq!(publics.len(), 952);
    let names = FunctionNames::from_pdb(amdppm_pdb(), Undecorate::Auto).unwrap();
    for (n, rva) in &publics {
        let hit = names.lookup(*rva).unwrap();
        assert_eq!(hit.offset, 0, "{n} at {rva:#x}: we say {hit:?}");
        // Several publics may share an address (folded identical functions); ours must be one of them.
        assert!(
            publics.iter().any(|(m, r)| r == rva && *m == hit.name),
            "{n} at {rva:#x}: we say {}",
            hit.name
        );
    }
    // And the bugcheck address: the nearest public at or below 0x334c in llvm-pdbutil's list.
    let best = publics
        .iter()
        .filter(|(_, r)| *r <= 0x334c)
        .max_by_key(|(_, r)| *r)
        .unwrap();
    assert_eq!((best.0.as_str(), best.1), ("WriteIoMemRawEx", 0x32dc));
}
