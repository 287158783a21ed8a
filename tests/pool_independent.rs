//! Our pool reader (`pooltriage blocks --json`) against pool readers nobody here wrote, on forged
//! pool-scenario dumps:
//! - Volatility 3's `windows.bigpools` (PyPI, pinned in tests/independent/requirements.txt) with
//!   the corpus ISFs lists exactly the big allocations we list, on forged leak-tagged
//!   kernel-bitmap dumps of 7601, 17763, 19041 and 20348;
//! - Volatility 3's `windows.pslist` lists the process that the forged `quota-leak` dumps (same
//!   four builds) bill their quota blocks to, with the pid, name and EPROCESS the truth file
//!   gives, and our `pool --json` quota report names that same process with the truth's count;
//! - MemProcFS (PyPI `memprocfs`), which walks the Windows 10 19H1+ segment heap itself, lists the
//!   same LFH, VS and big blocks as we do on forged 19041 leak-tagged and shared-tag dumps.
//!
//! Expected values are the independent tool's output (the truth file is consulted only for the
//! quota check, to name the process billed and its blocks). Allowed
//! quirks (../shared/docs/independent-readers.md): Volatility prints integers in decimal,
//! pointers masked to 48 bits on some builds, tags without trailing spaces, and (with
//! `--show-free`) freed entries with Va bit 0 set, which we count in `big_pages.free` instead of
//! listing; MemProcFS gives LFH/VS addresses of the data after the 16-byte POOL_HEADER and sizes
//! without it, reports freed big-page entries as allocated, and does not report free VS chunks
//! (we list a free VS chunk whose block's POOL_HEADER is intact as a free block, as `!pool`
//! does: those are left out of the comparison and counted).
//!
//! Needs the venv and symbols dir of `scripts/test.sh` and a built `pooltriage` binary; a missing
//! tool fails the test. The external processes of one test run in parallel threads.

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, pooltriage_bin, python, run, script, vol, vol_symbols};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Volatility's JSON renderer masks some pointers to 48 bits: compare both sides masked.
const MASK48: u64 = (1 << 48) - 1;

/// The size of an x64 POOL_HEADER, which MemProcFS leaves out of LFH/VS addresses and sizes.
const POOL_HEADER: u64 = 16;

/// The x64 profiles whose kernels have a corpus ISF (Volatility 3 reads their dumps).
const ISF_PROFILES: [&str; 4] = [
    "win7-7601-x64",
    "win10-17763-x64",
    "win10-19041-x64",
    "server2022-20348-x64",
];

fn forge(dir: &Path, profile: &str, scenario: &str) -> PathBuf {
    let dump = dir.join(format!("{profile}-{scenario}.dmp"));
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env("POOLTRIAGE_CORPUS", corpus())
        .args(["forge", "--profile", profile, "--format", "kernel-bitmap"])
        .args(["--scenario", scenario, "--out"])
        .arg(&dump);
    // busy-server plants one block per 4 KiB of memory: 256 MiB gives ~65 000 blocks, among
    // them freed VS blocks (the one scenario that frees VS blocks).
    if scenario == "busy-server" {
        cmd.args(["--size", &(256u64 << 20).to_string()]);
    }
    run(&mut cmd, &format!("pooltriage forge {profile} {scenario}"));
    dump
}

/// Our reader: `pooltriage blocks DUMP --json --isf-dir corpus/isf` (docs/json.md).
fn our_blocks(dump: &Path) -> Value {
    let out = run(
        Command::new(pooltriage_bin())
            .arg("blocks")
            .arg(dump)
            .arg("--json")
            .arg("--isf-dir")
            .arg(corpus().join("isf")),
        "pooltriage blocks",
    );
    serde_json::from_slice(&out).expect("blocks --json prints JSON")
}

fn hex(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn blocks(report: &Value) -> &Vec<Value> {
    report["blocks"].as_array().unwrap_or_else(|| {
        panic!(
            "blocks --json has no blocks list: errors {}",
            report["errors"]
        )
    })
}

/// Runs `f` on every item in its own thread and returns the results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

// ----- Volatility 3 windows.bigpools ------------------------------------------------------------

/// (address masked to 48 bits, tag without trailing spaces, size, "paged"/"nonpaged")
type Big = (u64, String, u64, String);

/// `vol windows.bigpools --show-free`: (allocated entries, number of freed entries).
fn vol_bigpools(dump: &Path, cache: &Path) -> (BTreeSet<Big>, usize) {
    // A private cache per process (several run at once); Volatility needs it to exist.
    std::fs::create_dir_all(cache).expect("vol cache dir");
    let out = run(
        Command::new(vol())
            .args(["-q", "--offline", "-r", "json", "-s"])
            .arg(vol_symbols())
            .arg("--cache-path")
            .arg(cache)
            .arg("-f")
            .arg(dump)
            .args(["windows.bigpools", "--show-free"]),
        "vol windows.bigpools",
    );
    let rows: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "vol printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    let rows = rows.as_array().expect("vol JSON is a list");
    let mut allocated = BTreeSet::new();
    let mut freed = 0;
    for r in rows {
        let status = text(&r["Status"]);
        if status != "Allocated" {
            assert_eq!(status, "Free", "vol row status: {r}");
            freed += 1;
            continue;
        }
        let pool_type = text(&r["PoolType"]);
        let kind = if pool_type.starts_with("NonPaged") {
            "nonpaged"
        } else if pool_type.starts_with("Paged") {
            "paged"
        } else {
            pool_type.as_str()
        };
        allocated.insert((
            num(&r["Allocation"]) & MASK48,
            text(&r["Tag"]).trim_end_matches(' ').to_string(),
            num(&r["NumberOfBytes"]),
            kind.to_string(),
        ));
    }
    (allocated, freed)
}

/// Our big allocations: the `blocks` list's "big" entries, and `big_pages.free`.
fn our_bigpools(report: &Value) -> (BTreeSet<Big>, usize) {
    let ours = blocks(report)
        .iter()
        .filter(|b| b["source"] == "big")
        .map(|b| {
            assert_eq!(b["allocated"], true, "a listed big block is allocated: {b}");
            (
                hex(&b["address"]) & MASK48,
                text(&b["tag"]).trim_end_matches(' ').to_string(),
                num(&b["size"]),
                text(&b["pool_type"]["kind"]),
            )
        })
        .collect();
    let free = num(&report["big_pages"]["free"]) as usize;
    (ours, free)
}

#[test]
fn volatility_bigpools_lists_exactly_our_big_allocations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = ISF_PROFILES;
    let dumps: Vec<PathBuf> = profiles
        .iter()
        .map(|p| forge(dir.path(), p, "leak-tagged"))
        .collect();
    let results = parallel(&dumps, |dump| {
        let cache = dump.with_extension("vol-cache");
        (vol_bigpools(dump, &cache), our_bigpools(&our_blocks(dump)))
    });
    for (profile, ((vol_alloc, vol_free), (ours, our_free))) in profiles.iter().zip(results) {
        // Two empty lists would agree on nothing: the scenario plants big allocations.
        assert!(!ours.is_empty(), "{profile}: we list no big allocation");
        let vol_only: Vec<_> = vol_alloc.difference(&ours).collect();
        let ours_only: Vec<_> = ours.difference(&vol_alloc).collect();
        assert!(
            vol_only.is_empty() && ours_only.is_empty(),
            "{profile}: big allocations differ (numbers in hex)\n  volatility only: {vol_only:x?}\n  ours only: {ours_only:x?}"
        );
        eprintln!(
            "{profile}: {} big allocations and {vol_free} freed entries agree with Volatility",
            ours.len()
        );
        assert_eq!(
            vol_free, our_free,
            "{profile}: freed big-page entries (vol Status Free vs our big_pages.free)"
        );
    }
}

// ----- MemProcFS pool map -----------------------------------------------------------------------

/// (kind "big"/"lfh"/"vs", address, size, tag, allocated) as MemProcFS reports blocks.
type Mpfs = (String, u64, u64, String, bool);

/// The folders of the installed `memprocfs` and `leechcorepyc` packages, found without importing
/// them (their shared objects load only with LD_LIBRARY_PATH naming these folders).
fn mpfs_library_path() -> String {
    let out = run(
        Command::new(python()).args([
            "-c",
            "import importlib.util as u\n\
             print(':'.join(u.find_spec(m).submodule_search_locations[0] for m in ('leechcorepyc', 'memprocfs')))",
        ]),
        "locating the memprocfs and leechcorepyc packages",
    );
    String::from_utf8(out).expect("utf-8").trim().to_string()
}

fn mpfs_pool(dump: &Path, lib_path: &str) -> BTreeSet<Mpfs> {
    let out = run(
        Command::new(python())
            .env("LD_LIBRARY_PATH", lib_path)
            .arg(script("mpfs_pool.py"))
            .arg(dump),
        "MemProcFS pool map (tests/independent/mpfs_pool.py)",
    );
    let rows: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "mpfs_pool.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    rows.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["kind"].to_string().trim_matches('"').to_string(),
                hex(&r["va"]),
                num(&r["size"]),
                text(&r["tag"]),
                r["allocated"].as_bool().expect("allocated is a bool"),
            )
        })
        .collect()
}

/// Our LFH, VS and big blocks in MemProcFS's terms (free VS blocks left out: MemProcFS does not
/// report free VS chunks). Session pool blocks are left out too: MemProcFS walks the heaps of
/// nt!ExPoolState and nt!PoolBigPageTable only, never a session's segment heap
/// (MM_SESSION_SPACE.HeapState) or big page table (docs/pool.md).
fn ours_as_mpfs(report: &Value) -> BTreeSet<Mpfs> {
    blocks(report)
        .iter()
        .filter(|b| !(b["source"] == "vs" && b["allocated"] == false))
        .filter(|b| b["pool_type"]["session"] != true)
        .filter_map(|b| {
            let source = text(&b["source"]);
            let (addr, size, tag) = (hex(&b["address"]), num(&b["size"]), text(&b["tag"]));
            let allocated = b["allocated"].as_bool().expect("allocated is a bool");
            match source.as_str() {
                "big" => Some((source, addr, size, tag, allocated)),
                "lfh" | "vs" => Some((
                    source,
                    addr + POOL_HEADER,
                    size - POOL_HEADER,
                    tag,
                    allocated,
                )),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn memprocfs_lists_our_segment_heap_and_big_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenarios = ["leak-tagged", "shared-tag", "busy-server"];
    let dumps: Vec<PathBuf> = scenarios
        .iter()
        .map(|s| forge(dir.path(), "win10-19041-x64", s))
        .collect();
    let lib_path = mpfs_library_path();
    let results = parallel(&dumps, |dump| {
        (mpfs_pool(dump, &lib_path), our_blocks(dump))
    });
    for (scenario, (theirs, report)) in scenarios.iter().zip(results) {
        let ours = ours_as_mpfs(&report);
        for kind in ["lfh", "vs", "big"] {
            assert!(
                ours.iter().any(|b| b.0 == kind),
                "19041 {scenario}: we list no {kind} block (the scenario plants them)"
            );
        }
        let ours_only: Vec<_> = ours.difference(&theirs).collect();
        // MemProcFS lists freed big-page entries as allocated; we count them in big_pages.free.
        let theirs_only: Vec<_> = theirs.difference(&ours).collect();
        let freed_big = theirs_only.iter().filter(|b| b.0 == "big" && b.4).count();
        let other: Vec<_> = theirs_only
            .iter()
            .filter(|b| !(b.0 == "big" && b.4))
            .collect();
        assert!(
            ours_only.is_empty() && other.is_empty(),
            "19041 {scenario}: blocks differ (numbers in hex)\n  MemProcFS only: {other:x?}\n  ours only: {ours_only:x?}"
        );
        let count = |k: &str| ours.iter().filter(|b| b.0 == k).count();
        let free_vs = blocks(&report)
            .iter()
            .filter(|b| b["source"] == "vs" && b["allocated"] == false)
            .count();
        if *scenario == "busy-server" {
            assert!(
                free_vs > 0,
                "19041 busy-server: we list no free VS block (the scenario frees some)"
            );
        }
        eprintln!(
            "19041 {scenario}: MemProcFS agrees on {} lfh, {} vs, {} big blocks (+{freed_big} freed big entries; \
             {free_vs} free VS blocks of ours it does not report)",
            count("lfh"),
            count("vs"),
            count("big")
        );
        assert_eq!(
            freed_big as u64,
            num(&report["big_pages"]["free"]),
            "19041 {scenario}: big entries MemProcFS adds ({theirs_only:x?}) vs our big_pages.free"
        );
    }
}

// ----- Volatility 3 windows.pslist on quota-leak dumps ------------------------------------------

/// `pooltriage pool DUMP --json --isf-dir corpus/isf` (docs/json.md).
fn our_pool(dump: &Path) -> Value {
    let out = run(
        Command::new(pooltriage_bin())
            .arg("pool")
            .arg(dump)
            .arg("--json")
            .arg("--isf-dir")
            .arg(corpus().join("isf")),
        "pooltriage pool",
    );
    serde_json::from_slice(&out).expect("pool --json prints JSON")
}

fn truth_of(dump: &Path) -> Value {
    let path = PathBuf::from(format!("{}.truth.json", dump.display()));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("forge wrote no truth file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `vol windows.pslist` rows.
fn vol_pslist(dump: &Path, cache: &Path) -> Vec<Value> {
    std::fs::create_dir_all(cache).expect("vol cache dir");
    let out = run(
        Command::new(vol())
            .args(["-q", "--offline", "-r", "json", "-s"])
            .arg(vol_symbols())
            .arg("--cache-path")
            .arg(cache)
            .arg("-f")
            .arg(dump)
            .arg("windows.pslist"),
        "vol windows.pslist",
    );
    let rows: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "vol printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    rows.as_array().expect("vol JSON is a list").clone()
}

/// The processes the truth bills quota blocks to: EPROCESS -> (pid, name, blocks, bytes).
fn billed_in_truth(truth: &Value) -> std::collections::BTreeMap<u64, (u64, String, u64, u64)> {
    let processes = truth["processes"].as_array().expect("truth processes");
    let mut billed = std::collections::BTreeMap::new();
    for b in truth["pool"]["blocks"]
        .as_array()
        .expect("truth pool.blocks")
    {
        let Some(eprocess) = b.get("process_billed") else {
            continue;
        };
        let eprocess = hex(eprocess);
        let entry = billed.entry(eprocess).or_insert_with(|| {
            let p = processes
                .iter()
                .find(|p| hex(&p["eprocess"]) == eprocess)
                .unwrap_or_else(|| {
                    panic!("truth bills {eprocess:#x}, which is no planted process")
                });
            (num(&p["pid"]), text(&p["name"]), 0, 0)
        });
        entry.2 += 1;
        entry.3 += num(&b["size"]);
    }
    billed
}

#[test]
fn volatility_pslist_lists_the_processes_billed_for_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = ISF_PROFILES;
    let dumps: Vec<PathBuf> = profiles
        .iter()
        .map(|p| forge(dir.path(), p, "quota-leak"))
        .collect();
    let results = parallel(&dumps, |dump| {
        let cache = dump.with_extension("vol-cache");
        (vol_pslist(dump, &cache), our_pool(dump), truth_of(dump))
    });
    for (profile, (rows, pool, truth)) in profiles.iter().zip(results) {
        let billed = billed_in_truth(&truth);
        // The scenario bills its blocks to a user process: an empty map would check nothing.
        assert!(!billed.is_empty(), "{profile}: the truth bills no block");
        let ours = pool["quota"]["processes"].as_array().unwrap_or_else(|| {
            panic!(
                "{profile}: pool --json has no quota.processes: {}",
                pool["quota"]
            )
        });
        assert_eq!(
            ours.len(),
            billed.len(),
            "{profile}: processes in our quota report {ours:?} vs billed in the truth {billed:x?}"
        );
        for (&eprocess, (pid, name, blocks, bytes)) in &billed {
            // Volatility walks PsActiveProcessHead itself; its JSON masks pointers to 48 bits.
            let row = rows
                .iter()
                .find(|r| num(&r["Offset(V)"]) & MASK48 == eprocess & MASK48)
                .unwrap_or_else(|| {
                    panic!("{profile}: windows.pslist has no EPROCESS {eprocess:#x} ({name}): {rows:?}")
                });
            assert_eq!(num(&row["PID"]), *pid, "{profile}: PID of {eprocess:#x}");
            assert_eq!(
                text(&row["ImageFileName"]),
                *name,
                "{profile}: ImageFileName of {eprocess:#x}"
            );
            let mine = ours
                .iter()
                .find(|p| hex(&p["eprocess"]) == eprocess)
                .unwrap_or_else(|| {
                    panic!("{profile}: our quota report lacks {eprocess:#x} ({name}): {ours:?}")
                });
            assert_eq!(
                num(&mine["pid"]),
                num(&row["PID"]),
                "{profile}: our pid vs vol"
            );
            assert_eq!(
                text(&mine["name"]),
                text(&row["ImageFileName"]),
                "{profile}: our process name vs vol"
            );
            assert_eq!(
                num(&mine["blocks"]),
                *blocks,
                "{profile}: blocks billed to {name}"
            );
            assert_eq!(
                num(&mine["bytes"]),
                *bytes,
                "{profile}: bytes billed to {name}"
            );
            eprintln!(
                "{profile}: Volatility lists {name} (pid {pid}, EPROCESS {eprocess:#x}); we bill it {blocks} blocks, {bytes} bytes"
            );
        }
    }
}
