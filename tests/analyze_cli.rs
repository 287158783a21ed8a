//! `pooltriage analyze --json` end to end: every profile × pool scenario the forge supports,
//! the verdict against the forge's truth (`pool.drivers`, the blocks it bills to a process, its
//! `!vm` figures), and every reported call site checked independently: the driver's image is
//! read out of the dump by kdmp-parser (PyPI, C++ core; x64 dumps) and GNU objdump decodes the
//! instruction at each reported address (x86 dumps: Volatility 3's layers read the image). The
//! real triage dump must give a report too.
//!
//! Expected values come from the truth file only (scenario names are not looked at), through
//! docs/json.md's verdict rule ([`verdict_rule`]: holdings, pressure from the truth's `vm`,
//! significance), mapped onto the contract of docs/json.md ("`pooltriage analyze DUMP --json`").
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/verdict_rule.rs"]
mod verdict_rule;

use harness::{corpus, hx, pooltriage_bin, python, run, script};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const PROFILES: [&str; 5] = [
    "xp-2600-x86pae",
    "win7-7601-x64",
    "win10-17763-x64",
    "win10-19041-x64",
    "server2022-20348-x64",
];
const SCENARIOS: [&str; 10] = [
    "leak-tagged",
    "leak-untagged",
    "shared-tag",
    "quota-leak",
    "nonpaged-exhaustion",
    "missing-pages",
    "busy-server",
    "baseline",
    "session-leak",
    "untagged-two-drivers",
];
/// Small machines keep the dumps small (busy-server: one block per 4 KiB, 64 Ki blocks).
const SIZE: u64 = 268_435_456;
const OBJDUMP: &str = "x86_64-w64-mingw32-objdump";

fn forge(dir: &Path, profile: &str, scenario: &str) -> Option<(std::path::PathBuf, Value)> {
    harness::forge_scenario(dir, profile, scenario, Some(SIZE)).map(|f| (f.dump, f.truth))
}

fn analyze(dump: &Path, profile: &str) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.arg("analyze")
        .arg(dump)
        .args(["--json", "--no-symbols"]);
    // The kernel's own symbols (not the drivers'): XP from its PDB, the others by GUID.
    if profile.starts_with("xp") {
        cmd.arg("--symbols").arg(corpus().join("pdb/ntkrnlpa.pdb"));
    } else {
        cmd.arg("--isf-dir").arg(corpus().join("isf"));
    }
    let r: Value = serde_json::from_slice(&run(&mut cmd, "pooltriage analyze"))
        .expect("analyze --json prints JSON");
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["kind"], "analysis");
    // The stored report deserializes into the contract's types (the service reads it back).
    let typed: analyzer::report::AnalysisReport =
        serde_json::from_value(r.clone()).expect("the report deserializes into AnalysisReport");
    assert_eq!(serde_json::to_value(&typed).unwrap(), r, "round trip");
    r
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| s(x).to_string())
        .collect()
}

/// The instruction objdump decodes at `addr` of `image` (loaded at `base`).
fn objdump_at(image: &Path, base: u64, addr: u64, bits64: bool) -> String {
    let out = run(
        Command::new(OBJDUMP)
            .args(["-D", "-b", "binary", "-m"])
            .arg(if bits64 { "i386:x86-64" } else { "i386" })
            .arg(format!("--adjust-vma={base:#x}"))
            .arg(format!("--start-address={addr:#x}"))
            .arg(format!("--stop-address={:#x}", addr + 15))
            .arg(image),
        "objdump",
    );
    let text = String::from_utf8_lossy(&out).to_string();
    let want = format!("{addr:x}:");
    text.lines()
        .find(|l| l.trim_start().starts_with(&want))
        .unwrap_or_else(|| panic!("objdump shows no instruction at {addr:#x}:\n{text}"))
        .to_string()
}

/// The module's image (base..base+size) read from the dump by kdmp-parser (x64) or by
/// Volatility 3's crash-dump and Intel PAE layers (x86: kdmp-parser reads 64-bit dumps only).
fn image_from_dump(dump: &Path, dir: &Path, base: u64, size: u64, x64: bool) -> std::path::PathBuf {
    let addrs = dir.join("addrs.txt");
    let list: String = (0..size.div_ceil(0x1000))
        .map(|i| format!("{:#x}\n", base + i * 0x1000))
        .collect();
    std::fs::write(&addrs, list).unwrap();
    let out = run(
        Command::new(python())
            .arg(script(if x64 {
                "kdmp_read.py"
            } else {
                "vol_virt_read.py"
            }))
            .arg(dump)
            .arg(&addrs),
        "read the driver image",
    );
    let v: Value = serde_json::from_slice(&out).expect("kdmp_read.py prints JSON");
    let mut image = Vec::new();
    for r in v["reads"].as_array().unwrap() {
        match r["page"].as_str() {
            Some(h) => image.extend(
                (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()),
            ),
            None => image.extend_from_slice(&[0u8; 0x1000]),
        }
    }
    let path = dir.join(format!("{base:x}.img"));
    std::fs::write(&path, image).unwrap();
    path
}

/// Every call site of the named drivers: the instruction at its address, decoded by objdump
/// from that address on, is `mov $TAG,%r8d` / `push $TAG` or a `call` through memory.
fn check_call_sites(
    dump: &Path,
    dir: &Path,
    r: &Value,
    drivers: &BTreeSet<String>,
    x64: bool,
) -> usize {
    let mut checked = 0;
    for d in r["drivers"].as_array().unwrap() {
        if !drivers.contains(s(&d["module"])) {
            continue;
        }
        let sites = d["call_sites"].as_array().unwrap();
        assert!(!sites.is_empty(), "{}: no call site", d["module"]);
        let (base, size) = (hx(&d["base"]), d["size"].as_u64().unwrap());
        let image = image_from_dump(dump, dir, base, size, x64);
        for c in sites {
            let addr = hx(&c["address"]);
            assert_eq!(
                s(&c["offset"]),
                format!("{}+{:#x}", s(&d["module"]), addr - base)
            );
            let line = objdump_at(&image, base, addr, x64);
            match s(&c["kind"]) {
                "tag-argument" => {
                    let t = s(&c["tag"]).as_bytes();
                    let imm = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                    let want = if x64 {
                        format!("mov    $0x{imm:x},%r8d")
                    } else {
                        format!("push   $0x{imm:x}")
                    };
                    assert!(
                        line.contains(&want),
                        "{}: want {want:?}, objdump: {line}",
                        d["module"]
                    );
                }
                "untagged-allocator-call" => {
                    assert_eq!(s(&c["tag"]), "None");
                    assert!(
                        line.contains("call   *"),
                        "{}: want an indirect call, objdump: {line}",
                        d["module"]
                    );
                }
                k => panic!("unknown call-site kind {k}"),
            }
            checked += 1;
        }
    }
    checked
}

/// Decoded pool types and sizes agree with the truth's blocks: a block of the site's tag whose
/// size fits the requested size (plus header and rounding; big allocations are whole pages)
/// lies in the pool the site asks for, and every driver has a decoded site that such blocks
/// fit. (A site need not have outstanding blocks: some scenarios do not call every site.)
fn check_decoded_arguments(
    what: &str,
    r: &Value,
    truth: &Value,
    drivers: &BTreeSet<String>,
) -> usize {
    let Some(blocks) = truth["pool"]["blocks"].as_array() else {
        return 0;
    };
    let mut checked = 0;
    for d in r["drivers"].as_array().unwrap() {
        if !drivers.contains(s(&d["module"])) {
            continue;
        }
        let mut fitting_sites = 0;
        for c in d["call_sites"].as_array().unwrap() {
            let (Some(pool), Some(size)) = (c["pool_type"].as_str(), c["size"].as_u64()) else {
                continue;
            };
            let fits =
                |z: u64| (size..=size + 0x40).contains(&z) || z == size.div_ceil(0x1000) * 0x1000;
            let fitting: Vec<&Value> = blocks
                .iter()
                .filter(|b| {
                    b["allocated"] == true
                        && b["tag"] == c["tag"]
                        && (!b["owner"].is_string() || b["owner"] == d["module"])
                        && b["size"].as_u64().is_some_and(fits)
                })
                .collect();
            for b in &fitting {
                assert_eq!(
                    b["pool_type"], pool,
                    "{what}: {}: site {c} vs truth block {b}",
                    d["module"]
                );
            }
            if !fitting.is_empty() {
                fitting_sites += 1;
                checked += 1;
            }
        }
        assert!(
            fitting_sites > 0,
            "{what}: {}: no decoded call site fits a truth block",
            d["module"]
        );
    }
    checked
}

/// Each scenario driver's `drivers[].bytes` (paged + nonpaged + session) against its holdings
/// by the rule: its own tags whole, its share of 'None' or a shared tag between the truth's
/// blocks with evidence (less 5%) and all it holds in the dump.
fn check_driver_bytes(what: &str, r: &Value, truth: &Value) {
    let ours: BTreeMap<String, u64> = r["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (s(&d["module"]).to_string(), d["bytes"].as_u64().unwrap()))
        .collect();
    for (m, h) in verdict_rule::holdings(&truth["pool"]) {
        let want = h.total();
        let got = ours.get(&m).copied().unwrap_or(0);
        assert!(
            want.contains(got),
            "{what}: {m} holds {got} bytes, the truth {}..={} ({want:?})",
            want.min(),
            want.max()
        );
    }
}

/// The verdict against the rule's: drivers, session, tags, the process of a quota verdict,
/// the pool and bytes, the pressure; a driver the forge did not make leak is never a leaker.
fn check_verdict(what: &str, v: &Value, truth: &Value, want: &verdict_rule::Expected) {
    assert_eq!(
        strings(&v["drivers"]),
        want.drivers,
        "{what}: verdict drivers: {v}"
    );
    assert_eq!(
        v["session"].as_bool(),
        Some(want.session),
        "{what}: verdict session: {v}"
    );
    assert!(
        strings(&v["tags"]).iter().any(|t| want.tags.contains(t)),
        "{what}: {v}"
    );
    if let Some(p) = want.process {
        assert_eq!(hx(&v["process"]["eprocess"]), p, "{what}: {v}");
        let tp = truth["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| hx(&x["eprocess"]) == p)
            .expect("the truth lists the billed process");
        assert_eq!(v["process"]["pid"], tp["pid"], "{what}");
        assert_eq!(v["process"]["name"], tp["name"], "{what}");
        return;
    }
    assert!(v["process"].is_null(), "{what}: {v}");
    assert_eq!(v["pool"].as_str(), want.pool, "{what}: verdict pool: {v}");
    let bytes = want.bytes.expect("a driver verdict has bytes");
    let got = v["bytes"].as_u64().unwrap();
    assert!(
        bytes.contains(got),
        "{what}: verdict bytes {got}, the truth {bytes:?}"
    );
    assert_eq!(
        v["pressure"]["rule"].as_str(),
        want.pressure,
        "{what}: verdict pressure: {v}"
    );
    if want.kind == "largest-consumer" {
        assert_eq!(v["confidence"], "low", "{what}: {v}");
    }
    let not_leaking = truth["pool"]["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["leak"] == false && want.drivers.contains(s(&d["module"])));
    if not_leaking {
        assert!(
            matches!(s(&v["kind"]), "largest-consumer" | "no-leak-found"),
            "{what}: a driver that leaks nothing is called a leaker: {v}"
        );
    }
}

/// !vm: near exhaustion exactly where WinDbg's !vm says "Excessive ... Pool Usage" for the
/// truth's figures (nonpaged above 4/5 of its maximum, paged above 95%), and the verdict is
/// about that pool.
fn check_vm(what: &str, r: &Value, truth: &Value) {
    let vm = &truth["pool"]["vm"];
    for (pool, pct) in [("nonpaged", 80u64), ("paged", 95)] {
        let (Some(u), Some(m)) = (
            vm[format!("{pool}_in_use")].as_u64(),
            vm[format!("{pool}_max")].as_u64(),
        ) else {
            continue;
        };
        let near = r["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool"] == pool)
            .map(|p| p["near_exhaustion"].as_bool().unwrap());
        assert_eq!(
            near,
            Some(u * 100 > m * pct),
            "{what}: {pool} near_exhaustion"
        );
        assert_eq!(
            near,
            Some(verdict_rule::near(&truth["pool"], pool)),
            "{what}"
        );
        if near == Some(true) {
            assert_eq!(r["verdict"]["pool"], pool, "{what}");
        }
    }
}

/// One profile's scenarios; returns (analyses, call sites checked by objdump, decoded
/// arguments checked against the truth).
fn check_profile(profile: &str) -> (usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut checked_sites = 0;
    let mut checked_args = 0;
    let mut runs = 0;
    for scenario in SCENARIOS {
        let Some((dump, truth)) = forge(dir.path(), profile, scenario) else {
            continue;
        };
        let what = format!("{profile} {scenario}");
        let r = analyze(&dump, profile);
        runs += 1;
        let v = &r["verdict"];
        let want = verdict_rule::expected(&truth);
        if truth["pool"].is_null() {
            // No pool planted at all: nothing to blame, and the report says why.
            assert!(
                matches!(s(&v["kind"]), "no-leak-found" | "not-analyzable"),
                "{what}: {v}"
            );
            assert!(v["drivers"].as_array().unwrap().is_empty(), "{what}: {v}");
            assert!(!v["reasons"].as_array().unwrap().is_empty(), "{what}");
            continue;
        }
        assert_eq!(s(&v["kind"]), want.kind, "{what}: {v}");
        assert!(!s(&v["sentence"]).is_empty());
        check_driver_bytes(&what, &r, &truth);
        if want.kind == "no-leak-found" {
            assert!(v["drivers"].as_array().unwrap().is_empty(), "{what}: {v}");
            continue;
        }
        check_verdict(&what, v, &truth, &want);
        check_vm(&what, &r, &truth);
        checked_sites += check_call_sites(
            &dump,
            dir.path(),
            &r,
            &want.drivers,
            !profile.starts_with("xp"),
        );
        // Session pool blocks are planted on classic-pool builds only (7601, 17763); on
        // 19041/20348 the truth has session tag counts only, no block to compare a site with.
        let has_blocks = truth["pool"]["blocks"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| want.tags.contains(s(&b["tag"]))));
        if !want.session || has_blocks {
            checked_args += check_decoded_arguments(&what, &r, &truth, &want.drivers);
        }
        std::fs::remove_file(&dump).ok();
    }
    (runs, checked_sites, checked_args)
}

#[test]
fn analyze_gives_the_truths_verdict_on_every_profile_and_scenario() {
    // One thread per profile: forging and analysing are independent (and CPU-bound).
    let results: Vec<(usize, usize, usize)> = std::thread::scope(|sc| {
        let handles: Vec<_> = PROFILES
            .iter()
            .map(|p| sc.spawn(move || check_profile(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a profile's checks failed"))
            .collect()
    });
    let runs: usize = results.iter().map(|r| r.0).sum();
    let checked_sites: usize = results.iter().map(|r| r.1).sum();
    let checked_args: usize = results.iter().map(|r| r.2).sum();
    assert_eq!(
        runs, 48,
        "5 profiles x 10 scenarios, quota-leak and session-leak not on x86"
    );
    assert!(
        checked_sites >= 20,
        "only {checked_sites} call sites checked with objdump"
    );
    assert!(
        checked_args >= 20,
        "only {checked_args} decoded arguments checked"
    );
}

#[test]
fn the_real_triage_dump_gives_a_report_that_says_why_it_cannot_answer() {
    let dump = corpus().join("dumps/triage_x64.dmp");
    let out = Command::new(pooltriage_bin())
        .arg("analyze")
        .arg(&dump)
        .args(["--json", "--no-symbols"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // corpus README: build 19041, bugcheck 0x1000007E, 16 processors.
    assert_eq!(r["dump"]["build"], 19041);
    assert_eq!(hx(&r["bugcheck"]["code"]), 0x1000_007e);
    assert_eq!(r["dump"]["processors"], 16);
    assert_eq!(r["dump"]["format"], "triage");
    // corpus README: the crash is in amdppm.sys.
    assert!(
        s(&r["bugcheck"]["faulting"]).starts_with("amdppm.sys+0x"),
        "{}",
        r["bugcheck"]
    );
    let v = &r["verdict"];
    assert!(
        matches!(s(&v["kind"]), "not-analyzable" | "no-leak-found"),
        "{v}"
    );
    assert!(s(&v["sentence"]).contains("triage"), "{v}");
    assert!(!v["reasons"].as_array().unwrap().is_empty());
    assert!(!r["modules"].as_array().unwrap().is_empty());
    // Text output leads with the verdict sentence.
    let out = Command::new(pooltriage_bin())
        .arg("analyze")
        .arg(&dump)
        .arg("--no-symbols")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().next(), v["sentence"].as_str());
}

#[test]
fn a_file_that_is_not_a_dump_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("not.dmp");
    std::fs::write(&f, b"this is not a crash dump at all, just text").unwrap();
    let out = Command::new(pooltriage_bin())
        .arg("analyze")
        .arg(&f)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not.dmp"));
}

/// Service mode on an older kernel: no kernel symbols at all. ExAllocatePool callers are still
/// found by the import names in the driver's own import table, and the verdict says the figures
/// can be short (the engine reads only part of the pool without symbols).
#[test]
fn without_kernel_symbols_the_exallocatepool_caller_is_still_named() {
    let dir = tempfile::tempdir().unwrap();
    let (dump, truth) = forge(dir.path(), "win7-7601-x64", "leak-untagged").expect("forged");
    let out = Command::new(pooltriage_bin())
        .env_remove("POOLTRIAGE_ISF_DIR")
        .env_remove("_NT_SYMBOL_PATH")
        .arg("analyze")
        .arg(&dump)
        .args(["--json", "--no-symbols"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["symbols"]["source"], "none");
    let v = &r["verdict"];
    let leakers: BTreeSet<String> = truth["pool"]["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(&d["module"]).to_string())
        .collect();
    assert_eq!(s(&v["kind"]), "untagged-leak", "{v}");
    assert_eq!(strings(&v["drivers"]), leakers, "{v}");
    assert_ne!(v["confidence"], "high", "{v}");
    let d = r["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| leakers.contains(s(&d["module"])))
        .expect("the leaking driver has a row");
    let calls: Vec<&Value> = d["call_sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "untagged-allocator-call")
        .collect();
    assert!(!calls.is_empty(), "{d}");
    assert!(calls.iter().all(|c| c["callee"] == "ExAllocatePool"), "{d}");
}

/// Busy servers with much memory: their pools far below the maxima Windows gives such a
/// machine, and the largest consumer (acmesrv.sys, the truth's driver that leaks nothing) never
/// called a leaker. The maxima are the documented ones (docs/forge.md "Pool maxima"): XP with
/// 32 GiB, Microsoft's limits for 32-bit XP (256 MB nonpaged, 490 MB paged); Windows 7 x64 with
/// 4 GiB, nonpaged pool 75% of RAM and paged pool the commit limit (RAM plus the 2.5 GiB of
/// paging files) under 128 GB. (A 64-bit busy server holds one block per 4 KiB of RAM: larger
/// machines are bench/provenance.sh's.)
#[test]
fn busy_servers_are_far_from_their_maxima_and_name_no_leaker() {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    let cases = [
        ("xp-2600-x86pae", 32 * GIB, 256 * MIB, 490 * MIB),
        ("win7-7601-x64", 4 * GIB, 3 * GIB, 4 * GIB + 2560 * MIB),
    ];
    std::thread::scope(|sc| {
        for (profile, ram, nonpaged_max, paged_max) in cases {
            sc.spawn(move || busy_server(profile, ram, nonpaged_max, paged_max));
        }
    });
}

fn busy_server(profile: &str, ram: u64, nonpaged_max: u64, paged_max: u64) {
    let dir = tempfile::tempdir().unwrap();
    let f = harness::forge_scenario(dir.path(), profile, "busy-server", Some(ram)).expect("forged");
    let r = analyze(&f.dump, profile);
    let vm = &f.truth["pool"]["vm"];
    assert_eq!(vm["nonpaged_max"], nonpaged_max, "{profile}: {vm}");
    assert_eq!(vm["paged_max"], paged_max, "{profile}: {vm}");
    for p in r["pools"].as_array().unwrap() {
        let pool = s(&p["pool"]);
        assert_eq!(p["max"], vm[format!("{pool}_max")], "{profile}: {p}");
        assert_eq!(p["in_use"], vm[format!("{pool}_in_use")], "{profile}: {p}");
        let used = p["used_fraction"].as_f64().unwrap();
        assert!(
            used < 0.5,
            "{profile}: {pool} pool {used:.3} of its maximum: {p}"
        );
        assert_eq!(p["near_exhaustion"], false, "{profile}: {p}");
    }
    assert_eq!(r["pools"].as_array().unwrap().len(), 2, "{profile}");
    let v = &r["verdict"];
    let want = verdict_rule::expected(&f.truth);
    assert_eq!(want.kind, "largest-consumer", "{profile}: {want:?}");
    assert_eq!(s(&v["kind"]), want.kind, "{profile}: {v}");
    assert_eq!(strings(&v["drivers"]), want.drivers, "{profile}: {v}");
    assert!(v["pressure"].is_null(), "{profile}: {v}");
    assert!(!s(&v["sentence"]).contains("leaker"), "{profile}: {v}");
    eprintln!(
        "{profile} 32 GiB busy-server: {} blocks; {}",
        r["blocks"]["classic"]["count"],
        s(&v["sentence"])
    );
}
