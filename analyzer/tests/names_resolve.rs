//! The PE-then-PDB flow (`symbols::resolve`) on local stores built from the corpus: each branch
//! (CodeView in the dump, image fetched by timestamp/size, mismatched files, hostile names, no
//! key) and the names it gives. Expected names: llvm-pdbutil 14.0.6 for amdppm.pdb (see
//! names_pdb.rs), Volatility 3's pdbconv for the XP kernel.

use analyzer::kernel::pe::{CodeView, PeInfo};
use analyzer::kernel::Module;
use analyzer::symbols::resolve::{
    resolve_module, resolve_modules, CodeViewOrigin, ResolveOptions, SymbolState, Symbolizer,
};
use analyzer::symbols::store::{StoreConfig, SymbolPath, SymbolStore};
use analyzer::test_corpus::corpus;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const AMDPPM_BASE: u64 = 0xfffff804_8b580000;

fn corpus_store() -> PathBuf {
    corpus("symstore")
}

fn store(path: &str, data: &Path) -> SymbolStore {
    SymbolStore::new(
        SymbolPath::parse(path).unwrap(),
        StoreConfig::with_data_dir(data),
    )
}

/// As the triage dump's driver list gives amdppm.sys: no PE headers, timestamp and size only.
fn amdppm_triage() -> Module {
    Module {
        name: "amdppm.sys".into(),
        path: "\\SystemRoot\\System32\\drivers\\amdppm.sys".into(),
        base: AMDPPM_BASE,
        size: 0x3b000,
        timestamp: Some(0xc9c03000),
        checksum: Some(0x38e6b),
        ldr_entry: None,
        pe: None,
        pe_error: Some("not in the dump".into()),
    }
}

fn pe_with(machine: u16, timestamp: u32, size: u32, codeview: Option<CodeView>) -> PeInfo {
    PeInfo {
        machine,
        timestamp,
        size_of_image: size,
        checksum: 0,
        image_base: 0,
        entry_point: 0,
        is_64: machine != 0x14c,
        sections: Vec::new(),
        imports: None,
        codeview,
        warnings: Vec::new(),
    }
}

fn copy_to(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(src, dst).unwrap();
}

#[test]
fn triage_module_image_then_pdb_then_names() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(&corpus_store().display().to_string(), tmp.path());
    let m = amdppm_triage();
    let st = resolve_module(&s, &m);
    assert_eq!(st.status, SymbolState::Found, "{st:?}");
    assert_eq!(st.codeview_from, Some(CodeViewOrigin::Image));
    assert_eq!(st.machine, Some(0x8664));
    let cv = st.codeview.as_ref().unwrap();
    assert_eq!(
        (cv.pdb_name(), cv.guid.as_str(), cv.age),
        ("amdppm.pdb", "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 1)
    );
    assert!(st.image.as_ref().unwrap().ends_with("amdppm.sys"));
    assert!(st
        .pdb
        .as_ref()
        .unwrap()
        .ends_with("1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"));
    assert_eq!(
        st.source.as_deref(),
        Some(corpus_store().display().to_string().as_str())
    );

    let mods = [m];
    let statuses = [st];
    let mut names = Symbolizer::new(&mods, &statuses, None);
    let n = names.name(AMDPPM_BASE + 0x334c).unwrap();
    assert_eq!(
        (n.symbol.as_str(), n.named),
        ("amdppm!WriteIoMemRawEx+0x70", true)
    );
    assert_eq!(n.module_offset, 0x334c);
    assert_eq!(
        names.name(AMDPPM_BASE + 0x3370).unwrap().symbol,
        "amdppm!WriteIoMemRawHidden"
    );
    // Headers of the image: before any symbol.
    let h = names.name(AMDPPM_BASE + 0x10).unwrap();
    assert_eq!((h.symbol.as_str(), h.named), ("amdppm+0x10", false));
}

#[test]
fn codeview_from_the_dump_goes_straight_to_the_pdb() {
    let tmp = tempfile::tempdir().unwrap();
    // A store with only the PDB: the image is never needed.
    let only_pdb = tmp.path().join("store");
    let key = "amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb";
    copy_to(&corpus_store().join(key), &only_pdb.join(key));
    let s = store(&only_pdb.display().to_string(), tmp.path());
    let mut m = amdppm_triage();
    let cv = CodeView {
        pdb_path: "amdppm.pdb".into(),
        guid: "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3".into(),
        age: 1,
        format: "RSDS",
    };
    m.pe = Some(pe_with(0x8664, 0xc9c03000, 0x3b000, Some(cv)));
    let st = resolve_module(&s, &m);
    assert_eq!(st.status, SymbolState::Found, "{st:?}");
    assert_eq!(st.codeview_from, Some(CodeViewOrigin::Dump));
    assert_eq!(st.image, None);
}

#[test]
fn mismatched_files_are_malformed() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    // The amdppm image filed under another module's key (timestamp 0x11111111).
    copy_to(
        &corpus_store().join("amdppm.sys/c9c030003b000/amdppm.sys"),
        &bad.join("amdppm.sys/111111113b000/amdppm.sys"),
    );
    // The amdppm PDB filed under another GUID.
    copy_to(
        &corpus_store().join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"),
        &bad.join("amdppm.pdb/00000000000000000000000000000ABC1/amdppm.pdb"),
    );
    let s = store(&bad.display().to_string(), tmp.path());
    let mut m = amdppm_triage();
    m.timestamp = Some(0x11111111);
    let st = resolve_module(&s, &m);
    assert_eq!(st.status, SymbolState::Malformed, "{st:?}");
    assert!(
        st.error.as_deref().unwrap().contains("do not match"),
        "{st:?}"
    );

    let mut m = amdppm_triage();
    m.pe = Some(pe_with(
        0x8664,
        0xc9c03000,
        0x3b000,
        Some(CodeView {
            pdb_path: "amdppm.pdb".into(),
            guid: "00000000-0000-0000-0000-000000000ABC".into(),
            age: 1,
            format: "RSDS",
        }),
    ));
    let st = resolve_module(&s, &m);
    assert_eq!(st.status, SymbolState::Malformed, "{st:?}");
    assert!(st.error.as_deref().unwrap().contains("GUID"), "{st:?}");
}

#[test]
fn missing_hostile_and_keyless_modules() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(&corpus_store().display().to_string(), tmp.path());
    let mut other = amdppm_triage();
    other.timestamp = Some(0x12345678);
    assert_eq!(resolve_module(&s, &other).status, SymbolState::NotFound);

    let mut none = amdppm_triage();
    none.timestamp = None;
    let st = resolve_module(&s, &none);
    assert_eq!(st.status, SymbolState::NoKey);

    for evil in [
        "..\\..\\..\\windows\\amdppm.sys",
        "../../amdppm.sys",
        "C:amdppm.sys",
        "amd\0ppm.sys",
    ] {
        let mut m = amdppm_triage();
        m.name = evil.into();
        let st = resolve_module(&s, &m);
        assert_eq!(st.status, SymbolState::HostileName, "{evil:?}: {st:?}");
    }
    // A hostile PDB name in a CodeView record.
    let mut m = amdppm_triage();
    m.pe = Some(pe_with(
        0x8664,
        1,
        2,
        Some(CodeView {
            pdb_path: "..".into(),
            guid: "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3".into(),
            age: 1,
            format: "RSDS",
        }),
    ));
    assert_eq!(resolve_module(&s, &m).status, SymbolState::HostileName);
    // Nothing was written outside the data dir.
    assert!(!tmp.path().parent().unwrap().join("amdppm.sys").exists());
}

/// The XP SP3 PAE kernel, its CodeView record as the dump's image holds it, the PDB in a local
/// store: x86 names as WinDbg shows them (`nt!KeBugCheckEx`). RVAs: Volatility 3's pdbconv
/// (`_KeBugCheckEx@20` at 138394, `_ExAllocatePoolWithTag@12` at 450176).
#[test]
fn xp_kernel_names_are_undecorated() {
    let tmp = tempfile::tempdir().unwrap();
    let st_dir = tmp.path().join("store");
    copy_to(
        &corpus("pdb/ntkrnlpa.pdb"),
        &st_dir.join("ntkrnlpa.pdb/30B5FB31AE7E4ACAABA750AA241FF3311/ntkrnlpa.pdb"),
    );
    let s = store(
        &format!(
            "cache*{};{}",
            tmp.path().join("c").display(),
            st_dir.display()
        ),
        tmp.path(),
    );
    let base = 0x804d_7000u64;
    let m = Module {
        name: "ntkrnlpa.exe".into(),
        path: String::new(),
        base,
        size: 0x20_0000,
        timestamp: None,
        checksum: None,
        ldr_entry: None,
        pe: Some(pe_with(
            0x14c,
            0x4802_5b0e,
            0x20_0000,
            Some(CodeView {
                pdb_path: "ntkrnlpa.pdb".into(),
                guid: "30B5FB31-AE7E-4ACA-ABA7-50AA241FF331".into(),
                age: 1,
                format: "RSDS",
            }),
        )),
        pe_error: None,
    };
    let mods = [m];
    let statuses = resolve_modules(&s, &mods, ResolveOptions::default());
    assert_eq!(statuses[0].status, SymbolState::Found, "{:?}", statuses[0]);
    let mut names = Symbolizer::new(&mods, &statuses, Some(base));
    assert_eq!(names.name(base + 138394).unwrap().symbol, "nt!KeBugCheckEx");
    assert_eq!(
        names.name(base + 450176 + 0x25).unwrap().symbol,
        "nt!ExAllocatePoolWithTag+0x25"
    );
}

/// Modules not started before the deadline are "timed out" without a request.
#[test]
fn deadline_bounds_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(&corpus_store().display().to_string(), tmp.path());
    let mods = vec![amdppm_triage(); 20];
    let past = ResolveOptions {
        workers: 4,
        deadline: Some(Instant::now() - Duration::from_millis(1)),
    };
    let st = resolve_modules(&s, &mods, past);
    assert!(st.iter().all(|s| s.status == SymbolState::TimedOut));
    let st = resolve_modules(&s, &mods, ResolveOptions::default());
    assert_eq!(st.len(), 20);
    assert!(st.iter().all(|s| s.status == SymbolState::Found));
}
