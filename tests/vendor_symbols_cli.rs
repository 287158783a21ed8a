//! Vendor symbols from the command line, held against readers nobody here wrote
//! (docs/symbols.md, "Vendor symbols"):
//! - the test drivers of `tests/drivers/` compiled here with clang-14/lld-14 (x64 and x86,
//!   real PDBs with C13 line tables) go into a store with `pooltriage symbols add`, each under
//!   the key `llvm-readobj-14` (TimeDateStamp, SizeOfImage) and `llvm-pdbutil-14 dump
//!   --summary` (GUID, age) read from the files;
//! - `pooltriage symbols lookup IMAGE --sites` through that store names every allocation call
//!   site by the procedure `llvm-pdbutil-14 dump -symbols` says contains it, and gives the
//!   line `llvm-pdbutil-14 dump -l` has for the call instruction; `llvm-symbolizer-14
//!   --no-inlines` agrees on both;
//! - a PDB whose GUID is not the image's (another build of the same driver), put where the
//!   image's PDB belongs, is refused for that image: nothing is named;
//! - a file that is neither a PDB nor an image is refused (exit 2).
//!
//! Build the binary first (`cargo build -p pooltriage`). A missing tool fails the test and
//! says to run scripts/test.sh, which installs them.

#[path = "independent/harness.rs"]
mod harness;

use harness::{pooltriage_bin, repo_root, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Built {
    sys: PathBuf,
    pdb: PathBuf,
}

/// `tests/drivers/sites_{arch}.c` compiled with `opt` and linked as `name.sys` + `name.pdb`
/// (docs/test-drivers.md).
fn build(dir: &Path, arch: &str, opt: &str, name: &str) -> Built {
    let src = repo_root().join("tests/drivers");
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
    let obj = dir.join(format!("{name}.obj"));
    run(
        Command::new("clang-14")
            .arg(format!("--target={target}"))
            .args(["-g", "-gcodeview", opt, "-Wno-multichar", "-c"])
            .arg(src.join(format!("sites_{arch}.c")))
            .arg("-o")
            .arg(&obj),
        "clang-14",
    );
    let sys = dir.join(format!("{name}.sys"));
    let pdb = dir.join(format!("{name}.pdb"));
    run(
        Command::new("lld-link-14")
            .args([
                "/nologo",
                "/driver",
                "/subsystem:native",
                "/entry:DriverEntry",
                "/debug",
            ])
            .arg(format!("/pdb:{}", pdb.display()))
            .arg(format!("/out:{}", sys.display()))
            .arg(&obj)
            .args(&libs)
            .arg("/nodefaultlib"),
        "lld-link-14",
    );
    Built { sys, pdb }
}

fn tool(cmd: &str, args: &[&str], file: &Path) -> String {
    let out = run(Command::new(cmd).args(args).arg(file), cmd);
    String::from_utf8(out).expect("utf-8")
}

fn pooltriage(args: &[&str]) -> Output {
    Command::new(pooltriage_bin())
        .args(args)
        .output()
        .expect("pooltriage runs")
}

/// A `Name: value` field of llvm-readobj / llvm-pdbutil output.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
}

/// `0x...` inside a readobj value such as `2026-12-06 12:29:44 (0x6B155538)`, else decimal.
fn number(v: &str) -> u64 {
    match v.rsplit_once("(0x") {
        Some((_, h)) => u64::from_str_radix(h.trim_end_matches(')'), 16).unwrap(),
        None => v.strip_prefix("0x").map_or_else(
            || v.parse().unwrap(),
            |h| u64::from_str_radix(h, 16).unwrap(),
        ),
    }
}

/// The store keys as independent readers spell them: `name/GUIDAGE` and `name/TIMESTAMPsize`.
fn keys(b: &Built) -> (String, String, u64) {
    let summary = tool("llvm-pdbutil-14", &["dump", "--summary"], &b.pdb);
    let guid: String = field(&summary, "GUID")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    // The image's CodeView record carries the DBI age; a fresh link writes the same in both.
    let age = number(field(&summary, "Age"));
    let headers = tool("llvm-readobj-14", &["--file-headers"], &b.sys);
    let ts = number(field(&headers, "TimeDateStamp"));
    let size = number(field(&headers, "SizeOfImage"));
    let base = number(field(&headers, "ImageBase"));
    (format!("{guid}{age:X}"), format!("{ts:08X}{size:x}"), base)
}

/// Section virtual addresses, 1-based as the PDB numbers them.
fn section_vas(pdb: &Path) -> Vec<u64> {
    tool("llvm-pdbutil-14", &["dump", "--section-headers"], pdb)
        .lines()
        .filter(|l| l.trim_end().ends_with("virtual address"))
        .map(|l| u64::from_str_radix(l.split_whitespace().next().unwrap(), 16).unwrap())
        .collect()
}

/// (name, rva, length) of every procedure (`dump -symbols`, offsets in decimal).
fn procedures(pdb: &Path, vas: &[u64]) -> Vec<(String, u64, u64)> {
    let text = tool("llvm-pdbutil-14", &["dump", "-symbols"], pdb);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for w in lines.windows(2) {
        if !(w[0].contains("S_GPROC32") || w[0].contains("S_LPROC32")) {
            continue;
        }
        let name = w[0].split('`').nth(1).unwrap().to_string();
        let addr = w[1].split("addr = ").nth(1).unwrap();
        let (sec, rest) = addr.split_once(':').unwrap();
        let off: u64 = rest.split(',').next().unwrap().parse().unwrap();
        let len: u64 = w[1]
            .rsplit("code size = ")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        out.push((name, vas[sec.parse::<usize>().unwrap() - 1] + off, len));
    }
    out
}

/// One line block of `dump -l`: (start rva, end rva, [(rva, line)]).
type LineBlock = (u64, u64, Vec<(u64, u64)>);

/// Line blocks of `dump -l` (offsets in hex there).
fn line_blocks(pdb: &Path, vas: &[u64]) -> Vec<LineBlock> {
    let text = tool("llvm-pdbutil-14", &["dump", "-l"], pdb);
    let mut blocks: Vec<LineBlock> = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if t.contains("line/addr entries") {
            let range = t.split(',').next().unwrap();
            let (sec, span) = range.split_once(':').unwrap();
            let (a, b) = span.split_once('-').unwrap();
            let va = vas[sec.parse::<usize>().unwrap() - 1];
            let a = va + u64::from_str_radix(a, 16).unwrap();
            let b = va + u64::from_str_radix(b, 16).unwrap();
            blocks.push((a, b, Vec::new()));
        } else if let Some(last) = blocks.last_mut().filter(|_| t.contains('!')) {
            let (_, _, entries) = last;
            for e in t.split('!').map(str::trim).filter(|e| !e.is_empty()) {
                let mut it = e.split_whitespace();
                let line: u64 = it.next().unwrap().parse().unwrap();
                let off = u64::from_str_radix(it.next().unwrap(), 16).unwrap();
                entries.push((off, line));
            }
        }
    }
    // Entry offsets are section offsets: make them RVAs with the block's section.
    for (start, _, entries) in blocks.iter_mut() {
        let sec_va = vas.iter().copied().filter(|v| v <= start).max().unwrap();
        for e in entries.iter_mut() {
            e.0 += sec_va;
        }
    }
    blocks
}

/// The lines `dump -l` gives the instruction at `rva`: those of the greatest entry at or
/// before it in the block that contains it (several lines can share an address).
fn lines_at(blocks: &[LineBlock], rva: u64) -> Vec<u64> {
    let Some((_, _, entries)) = blocks.iter().find(|(a, b, _)| *a <= rva && rva <= *b) else {
        return Vec::new();
    };
    let Some(at) = entries.iter().map(|e| e.0).filter(|&a| a <= rva).max() else {
        return Vec::new();
    };
    entries.iter().filter(|e| e.0 == at).map(|e| e.1).collect()
}

/// llvm-symbolizer's (function, line) for `va`, outermost frame.
fn symbolizer(sys: &Path, va: u64) -> (String, u64) {
    let out = run(
        Command::new("llvm-symbolizer-14")
            .arg(format!("--obj={}", sys.display()))
            .arg("--no-inlines")
            .arg(format!("{va:#x}")),
        "llvm-symbolizer-14",
    );
    let text = String::from_utf8(out).unwrap();
    let mut l = text.lines();
    let func = l.next().unwrap().to_string();
    // "file:line:column"
    let mut parts = l.next().unwrap().rsplit(':');
    let line = parts.nth(1).unwrap().parse().unwrap();
    (func, line)
}

fn lookup(sys: &Path, store: &Path) -> (i32, Value) {
    let out = pooltriage(&[
        "symbols",
        "lookup",
        &sys.display().to_string(),
        "--sites",
        "--json",
        "--symbol-path",
        &store.display().to_string(),
    ]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn hex(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Every site of the driver named by its procedure and line, as three other readers say.
fn check_sites(arch: &str, b: &Built, store: &Path, base: u64) -> usize {
    let stem = b.sys.file_stem().unwrap().to_string_lossy().into_owned();
    let (code, v) = lookup(&b.sys, store);
    assert_eq!(code, 0, "{arch}: {v}");
    assert_eq!(v["symbols"]["status"], "found");
    assert_eq!(v["symbols"]["line_info"], true);
    let vas = section_vas(&b.pdb);
    let procs = procedures(&b.pdb, &vas);
    let blocks = line_blocks(&b.pdb, &vas);
    let sites = v["sites"].as_array().unwrap();
    // The sources annotate 24 (x64) and 18 (x86) allocation statements, some reached through
    // one wrapper's call site: at least 10 sites each (tests/alloc_sites_real.rs checks which).
    assert!(sites.len() >= 10, "{arch}: {} sites", sites.len());
    for s in sites {
        let (rva, call) = (hex(&s["rva"]), hex(&s["call"]));
        let (name, start, _) = procs
            .iter()
            .find(|(_, a, len)| *a <= rva && rva < a + len)
            .unwrap_or_else(|| panic!("{arch}: no procedure holds {rva:#x}"));
        let want = match rva - start {
            0 => format!("{stem}!{name}"),
            off => format!("{stem}!{name}+{off:#x}"),
        };
        assert_eq!(s["symbol"], want, "{arch} {s}");
        let line = s["source"]["line"]
            .as_u64()
            .unwrap_or_else(|| panic!("{arch}: no line: {s}"));
        let expected = lines_at(&blocks, call);
        assert!(
            expected.contains(&line),
            "{arch} {s}: dump -l says {expected:?}"
        );
        assert!(s["source"]["file"]
            .as_str()
            .unwrap()
            .ends_with(&format!("sites_{arch}.c")));
        let (func, sym_line) = symbolizer(&b.sys, base + call);
        assert_eq!(
            (func.as_str(), sym_line),
            (name.as_str(), line),
            "{arch} {s}"
        );
    }
    sites.len()
}

fn add(store: &Path, files: &[&Path]) -> (i32, Value) {
    let mut args = vec!["symbols".to_string(), "add".into(), "--json".into()];
    args.push(store.display().to_string());
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = Command::new(pooltriage_bin()).args(&args).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), v)
}

#[test]
fn compiled_drivers_are_named_with_function_and_line_through_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["x64", "x86"] {
        let b = build(dir.path(), arch, "-O2", &format!("drv_{arch}"));
        let (pdb_key, sys_key, base) = keys(&b);
        let store = dir.path().join(format!("store_{arch}"));
        let (code, v) = add(&store, &[&b.sys, &b.pdb]);
        assert_eq!(code, 0, "{v}");
        let stem = format!("drv_{arch}");
        let want = [
            store.join(format!("{stem}.sys/{sys_key}/{stem}.sys")),
            store.join(format!("{stem}.pdb/{pdb_key}/{stem}.pdb")),
        ];
        for (r, path) in v["results"].as_array().unwrap().iter().zip(&want) {
            assert_eq!(r["status"], "added", "{r}");
            assert_eq!(r["path"], path.display().to_string());
            assert!(path.is_file());
        }
        assert_eq!(
            add(&store, &[&b.pdb]).1["results"][0]["status"],
            "duplicate"
        );
        let n = check_sites(arch, &b, &store, base);
        eprintln!("{arch}: {n} call sites named with function and line");
    }
}

#[test]
fn a_pdb_of_another_build_is_refused_for_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(dir.path(), "x64", "-O2", "drv");
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let b = build(&other, "x64", "-O1", "drv");
    let (a_key, _, _) = keys(&a);
    let (b_key, _, _) = keys(&b);
    assert_ne!(a_key, b_key, "two builds, two GUIDs");
    // The other build's PDB where the image's belongs.
    let store = dir.path().join("store");
    let slot = store.join(format!("drv.pdb/{a_key}"));
    std::fs::create_dir_all(&slot).unwrap();
    std::fs::copy(&b.pdb, slot.join("drv.pdb")).unwrap();
    let (code, v) = lookup(&a.sys, &store);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["symbols"]["status"], "malformed", "{v}");
    let e = v["symbols"]["error"].as_str().unwrap();
    assert!(e.contains("does not match"), "{e}");
    assert!(v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["symbol"].is_null()));
    // Added with `symbols add`, it lands under its own key: the image does not find it.
    let store2 = dir.path().join("store2");
    let (code, v) = add(&store2, &[&b.pdb]);
    assert_eq!(code, 0, "{v}");
    assert!(store2.join(format!("drv.pdb/{b_key}/drv.pdb")).is_file());
    let (code, v) = lookup(&a.sys, &store2);
    assert_eq!(
        (code, v["symbols"]["status"].as_str()),
        (1, Some("not found"))
    );
}

#[test]
fn a_file_that_is_neither_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("nt.lib");
    std::fs::write(&lib, b"!<arch>\nan import library").unwrap();
    let (code, v) = add(&dir.path().join("store"), &[&lib]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["results"][0]["status"], "refused");
    assert!(v["results"][0]["error"]
        .as_str()
        .unwrap()
        .contains("neither a PDB nor a PE image"));
    assert!(!dir.path().join("store").join("nt.lib").exists());
}
