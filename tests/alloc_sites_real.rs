//! Allocation call sites of real drivers, held against readers nobody here wrote.
//!
//! - Two small kernel drivers compiled here from `tests/drivers/` (clang-14 and lld-14 from
//!   Debian: a real x64 driver and a real x86 one, with PDBs). Their source annotates every
//!   allocation (`site:` with its function, tag, size, pool, and the wrapper it goes through)
//!   and every tag constant that must not be one (`not-a-site:`). LLVM's `llvm-pdbutil` says
//!   where each function is; every site pooltriage reports must be an annotated one, in its
//!   function, and every annotation must be found.
//! - GNU objdump, read by `tests/independent/objdump_sites.py`: every call to an allocator
//!   import (through its slot or an import thunk) with the tag, size and pool type immediates
//!   it sees just before the call, and the tag immediates that reach no allocator. Every site
//!   the oracle sees a tag for must be reported with that tag and (where it sees them) that
//!   size and pool; no rejected immediate may be a site. Also for the corpus drivers
//!   usbnet.sys and usb2dbg.sys (no PDB).
//!
//! The drivers are built at test time into a temporary directory; nothing built is committed.
//! A missing tool fails the test and says to run scripts/test.sh, which installs them.

#[path = "independent/harness.rs"]
mod harness;

use analyzer::attribution::{scan_pe_file, AllocSite, ImageScan, Via};
use analyzer::pool::Tag;
use harness::{corpus, python, repo_root, run, script};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn drivers_dir() -> PathBuf {
    repo_root().join("tests/drivers")
}

/// A driver built from `tests/drivers/sites_{arch}.c` with its PDB.
struct Built {
    sys: PathBuf,
    pdb: PathBuf,
    source: PathBuf,
}

/// Builds the test driver for `arch` ("x64" or "x86") as docs/test-drivers.md describes.
fn build(dir: &Path, arch: &str) -> Built {
    let src = drivers_dir();
    let (machine, target, kill_at) = match arch {
        "x64" => ("i386:x86-64", "x86_64-pc-windows-msvc", None),
        _ => ("i386", "i686-pc-windows-msvc", Some("-k")),
    };
    let mut libs = Vec::new();
    for dll in ["ntoskrnl", "ndis"] {
        let lib = dir.join(format!("{dll}_{arch}.lib"));
        let mut cmd = Command::new("llvm-dlltool-14");
        cmd.args(kill_at).args(["-m", machine, "-d"]);
        cmd.arg(src.join(format!("{dll}_{arch}.def")))
            .arg("-l")
            .arg(&lib);
        run(&mut cmd, "llvm-dlltool-14");
        libs.push(lib);
    }
    let source = src.join(format!("sites_{arch}.c"));
    let obj = dir.join(format!("sites_{arch}.obj"));
    run(
        Command::new("clang-14")
            .arg(format!("--target={target}"))
            .args(["-g", "-gcodeview", "-O2", "-Wno-multichar", "-c"])
            .arg(&source)
            .arg("-o")
            .arg(&obj),
        "clang-14",
    );
    let sys = dir.join(format!("sites_{arch}.sys"));
    let pdb = dir.join(format!("sites_{arch}.pdb"));
    run(
        Command::new("lld-link-14")
            .args([
                "/nologo",
                "/driver",
                "/subsystem:native",
                "/entry:DriverEntry",
            ])
            .arg("/debug")
            .arg(format!("/pdb:{}", pdb.display()))
            .arg(format!("/out:{}", sys.display()))
            .arg(&obj)
            .args(&libs)
            .arg("/nodefaultlib"),
        "lld-link-14",
    );
    Built { sys, pdb, source }
}

/// The oracle's reading of a driver (tests/independent/objdump_sites.py).
fn oracle(sys: &Path) -> Value {
    let out = run(
        Command::new(python())
            .arg(script("objdump_sites.py"))
            .arg(sys),
        "objdump_sites.py",
    );
    serde_json::from_slice(&out).expect("objdump_sites.py prints JSON")
}

fn scan(sys: &Path) -> ImageScan {
    scan_pe_file(&std::fs::read(sys).unwrap()).expect("a PE driver")
}

fn hx(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Paged or not, from a pool-type (or, for ExAllocatePool2/3, POOL_FLAGS) value, as wdm.h
/// defines them: POOL_TYPE bit 0 is paged; POOL_FLAG_PAGED 0x100, POOL_FLAG_NON_PAGED 0x40,
/// POOL_FLAG_NON_PAGED_EXECUTE 0x80.
fn paged_from_wdm(allocator: &str, v: u64) -> Option<bool> {
    if allocator.starts_with("ExAllocatePool2") || allocator.starts_with("ExAllocatePool3") {
        match (v & 0x100 != 0, v & 0xc0 != 0) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    } else {
        (v < 0x800).then_some(v & 1 == 1)
    }
}

/// What the comparison with the oracle counted.
#[derive(Debug, Default)]
struct OracleCheck {
    /// Allocator calls the oracle found.
    calls: usize,
    /// Of those, the ones whose tag it saw (each must be one of our sites).
    tagged: usize,
    /// Sizes and pool types it saw, checked against ours.
    values: usize,
    /// Rejected tag immediates (none may be a site).
    rejected: usize,
    /// Our sites at calls the oracle found without seeing their tag.
    beyond_window: usize,
}

/// Every site the oracle sees a tag for is ours, with the same tag, allocator, size and pool
/// where it sees them; no rejected immediate is a site; every site of ours that does not go
/// through a wrapper is at a call the oracle found.
fn check_against_oracle(name: &str, ours: &ImageScan, o: &Value) -> OracleCheck {
    let mut c = OracleCheck::default();
    let by_call: BTreeMap<u64, &AllocSite> = ours.sites.iter().map(|s| (s.call, s)).collect();
    let oracle_calls: Vec<u64> = o["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| hx(&s["call"]))
        .collect();
    for s in o["sites"].as_array().unwrap() {
        c.calls += 1;
        let call = hx(&s["call"]).unwrap();
        let allocator = s["allocator"].as_str().unwrap();
        let Some(tag) = s["tag"].as_str() else {
            c.beyond_window += usize::from(by_call.contains_key(&call));
            continue;
        };
        c.tagged += 1;
        let site = by_call
            .get(&call)
            .unwrap_or_else(|| panic!("{name}: oracle site {s} not reported"));
        assert_eq!(site.tag.to_string(), tag, "{name}: {s}");
        assert_eq!(site.callee, Some(allocator), "{name}: {s}");
        if let Some(insn) = hx(&s["tag_insn"]) {
            assert_eq!(site.address, insn, "{name}: tag instruction of {s}");
        }
        if let Some(size) = hx(&s["size"]) {
            assert_eq!(site.size, Some(size), "{name}: size of {s}");
            c.values += 1;
        }
        if let Some(pool) = hx(&s["pool"]) {
            assert_eq!(
                site.paged,
                paged_from_wdm(allocator, pool),
                "{name}: pool of {s}"
            );
            c.values += 1;
        }
    }
    for r in o["rejected"].as_array().unwrap() {
        c.rejected += 1;
        let at = hx(&r["address"]).unwrap();
        assert!(
            ours.sites.iter().all(|s| s.address != at),
            "{name}: rejected immediate {r} reported as a site"
        );
    }
    for s in &ours.sites {
        let wrapper = matches!(s.via, Some(Via::Wrapper(_)));
        assert!(
            wrapper || oracle_calls.contains(&s.call),
            "{name}: our site at {:#x} is at no allocator call objdump shows: {s:?}",
            s.call
        );
    }
    c
}

/// A function of the driver's PDB: name and [start, end).
type Function = (String, u64, u64);

/// The PDB's functions, at least ten.
fn pdb_functions(b: &Built, objdump: &str) -> Vec<Function> {
    let out = harness::pdb_functions(&b.sys, &b.pdb, objdump);
    assert!(
        out.len() >= 10,
        "llvm-pdbutil shows {} functions",
        out.len()
    );
    out
}

/// One `site:` annotation of the driver's source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    tag: String,
    size: Option<u64>,
    paged: Option<bool>,
    via: Option<String>,
}

/// The source's annotations: expected sites by function, and the tags that must not be sites.
fn annotations(source: &Path) -> (BTreeMap<String, Vec<Expected>>, Vec<String>) {
    let text = std::fs::read_to_string(source).unwrap();
    let mut sites: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    let mut not_sites = Vec::new();
    for line in text.lines() {
        let field = |tail: &str, key: &str| {
            tail.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
        };
        if let Some(tail) = line.split("/* site:").nth(1) {
            let e = Expected {
                tag: field(tail, "tag").unwrap(),
                size: field(tail, "size")
                    .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()),
                paged: field(tail, "pool").map(|p| p == "paged"),
                via: field(tail, "via"),
            };
            sites.entry(field(tail, "fn").unwrap()).or_default().push(e);
        } else if let Some(tail) = line.split("/* not-a-site:").nth(1) {
            not_sites.push(field(tail, "tag").unwrap());
        }
    }
    (sites, not_sites)
}

/// Our sites, function by function, equal the source's annotations; the annotated non-sites
/// are tag references only. Returns the number of sites checked.
fn check_against_source(name: &str, b: &Built, ours: &ImageScan, objdump: &str) -> usize {
    let functions = pdb_functions(b, objdump);
    let fn_at = |a: u64| {
        functions
            .iter()
            .find(|f| (f.1..f.2).contains(&a))
            .map(|f| f.0.clone())
    };
    let (mut expected, not_sites) = annotations(&b.source);
    let mut got: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for s in &ours.sites {
        let f =
            fn_at(s.call).unwrap_or_else(|| panic!("{name}: site {s:?} in no function of the PDB"));
        let via = match s.via {
            Some(Via::Wrapper(w)) => Some(fn_at(w).expect("the wrapper is a PDB function")),
            _ => None,
        };
        got.entry(f).or_default().push(Expected {
            tag: s.tag.to_string(),
            size: s.size,
            paged: s.paged,
            via,
        });
    }
    for v in expected.values_mut().chain(got.values_mut()) {
        v.sort();
    }
    assert_eq!(
        got, expected,
        "{name}: sites by function (ours, then the source's)"
    );
    for t in not_sites {
        let tag = Tag::from_text(&t).unwrap();
        let h = ours
            .tags
            .get(&tag)
            .unwrap_or_else(|| panic!("{name}: {t} not seen"));
        assert_eq!(h.alloc_argument, 0, "{name}: {t} must not be an allocation");
        assert!(h.other_immediate > 0, "{name}: {t} is a tag reference");
    }
    ours.sites.len()
}

fn check_built(arch: &str, objdump: &str) -> (usize, usize, OracleCheck) {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path(), arch);
    let ours = scan(&b.sys);
    let name = format!("sites_{arch}.sys");
    let from_source = check_against_source(&name, &b, &ours, objdump);
    let o = oracle(&b.sys);
    let c = check_against_oracle(&name, &ours, &o);
    (ours.sites.len(), from_source, c)
}

#[test]
fn compiled_x64_driver_sites_match_its_source_pdb_and_objdump() {
    let (ours, from_source, c) = check_built("x64", "x86_64-w64-mingw32-objdump");
    eprintln!("sites_x64.sys: {ours} sites, all annotated in the source; objdump: {c:?}");
    assert_eq!(from_source, 19);
    assert!(c.tagged >= 15 && c.values >= 20 && c.rejected >= 2, "{c:?}");
}

#[test]
fn compiled_x86_driver_sites_match_its_source_pdb_and_objdump() {
    let (ours, from_source, c) = check_built("x86", "i686-w64-mingw32-objdump");
    eprintln!("sites_x86.sys: {ours} sites, all annotated in the source; objdump: {c:?}");
    assert_eq!(from_source, 14);
    assert!(c.tagged >= 12 && c.values >= 15 && c.rejected >= 1, "{c:?}");
}

#[test]
fn corpus_drivers_sites_match_objdump() {
    for (name, sites, tagged) in [("usbnet.sys", 5, 4), ("usb2dbg.sys", 14, 14)] {
        let path = corpus().join("drivers").join(name);
        let ours = scan(&path);
        let c = check_against_oracle(name, &ours, &oracle(&path));
        eprintln!("{name}: {} sites; objdump: {c:?}", ours.sites.len());
        assert_eq!(
            (ours.sites.len(), c.tagged),
            (sites, tagged),
            "{name}: {c:?}"
        );
    }
}
