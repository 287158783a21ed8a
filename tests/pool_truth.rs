//! `pooltriage blocks --json` on forged dumps of every profile and pool scenario: the reader
//! (analyzer::pool, written by one engineer) against the forge's truth file (written by
//! another from the same corpus layouts). The two meet only in the truth's `pool` section,
//! mapped here onto the reader's own JSON (docs/json.md).
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{array, corpus, field, hx, pooltriage_bin, run, vol, vol_symbols};
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
const SCENARIOS: [&str; 7] = [
    "leak-tagged",
    "leak-untagged",
    "shared-tag",
    "quota-leak",
    "nonpaged-exhaustion",
    "missing-pages",
    "session-leak",
];

fn forge(dir: &Path, profile: &str, scenario: &str) -> Option<(std::path::PathBuf, Value)> {
    harness::forge_scenario(dir, profile, scenario, None).map(|f| (f.dump, f.truth))
}

fn blocks_json(dump: &Path, profile: &str) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.arg("blocks").arg(dump).arg("--json");
    // XP from its PDB, the others found by the kernel's GUID in the ISF folder.
    if profile.starts_with("xp") {
        cmd.arg("--symbols").arg(corpus().join("pdb/ntkrnlpa.pdb"));
    } else {
        cmd.arg("--isf-dir").arg(corpus().join("isf"));
    }
    serde_json::from_slice(&run(&mut cmd, "pooltriage blocks")).expect("blocks --json prints JSON")
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn pool_reader_matches_the_forge_truth_on_every_profile_and_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut session_checked = 0;
    let mut session_blocks_checked = 0;
    let mut session_big_checked = 0;
    for profile in PROFILES {
        for scenario in SCENARIOS {
            let Some((dump, truth)) = forge(dir.path(), profile, scenario) else {
                continue;
            };
            let t = field(&truth, "pool");
            let r = blocks_json(&dump, profile);
            let ctx = format!("{profile} {scenario}");
            assert_eq!(
                r["symbols"]["matches_kernel"], true,
                "{ctx}: the symbols must be the kernel's"
            );
            assert!(
                r["errors"].as_array().unwrap().is_empty(),
                "{ctx}: {}",
                r["errors"]
            );
            std::fs::remove_file(&dump).ok();

            // Tag statistics: every counter of every tag, summed over CPUs and expansion.
            const COUNTERS: [&str; 6] = [
                "paged_allocs",
                "paged_frees",
                "paged_bytes",
                "nonpaged_allocs",
                "nonpaged_frees",
                "nonpaged_bytes",
            ];
            let tags = |v: &Vec<Value>| -> BTreeMap<String, Vec<u64>> {
                v.iter()
                    .map(|x| (s(&x["tag"]), COUNTERS.iter().map(|c| n(&x[*c])).collect()))
                    .collect()
            };
            assert_eq!(
                tags(array(&r, "tags")),
                tags(array(t, "tags")),
                "{ctx}: tags"
            );

            // Session pool, apart: the session's table plus its expansion table, read through
            // a session process's page tables. Every Vista+ profile plants win32k rows; XP
            // keeps no session table, so there are none.
            if t["session_tags"].is_null() {
                assert!(
                    profile.starts_with("xp"),
                    "{ctx}: the forge planted no session pool"
                );
                assert!(
                    r["session_tags"].is_null(),
                    "{ctx}: session tags on XP: {}",
                    r["session_tags"]
                );
            } else {
                assert_eq!(
                    tags(array(&r, "session_tags")),
                    tags(array(t, "session_tags")),
                    "{ctx}: session tags"
                );
                let sessions = array(&r, "sessions");
                assert_eq!(sessions.len(), 1, "{ctx}: {sessions:?}");
                assert_eq!(
                    sessions[0]["session_id"], t["session"]["session_id"],
                    "{ctx}"
                );
                assert_eq!(
                    hx(&sessions[0]["mm_session_space"]),
                    hx(&t["session"]["mm_session_space"]),
                    "{ctx}"
                );
                session_checked += 1;
            }

            // Big allocations: the used ones listed, the freed ones not.
            let truth_big: BTreeSet<(u64, String, u64, String)> = array(t, "big_pages")
                .iter()
                .filter(|b| b["free"] == false)
                .map(|b| {
                    (
                        hx(&b["va"]),
                        s(&b["tag"]),
                        n(&b["size"]),
                        s(&b["pool_type"]),
                    )
                })
                .collect();
            let our_big: BTreeSet<(u64, String, u64, String)> =
                array(field(&r, "big_pages"), "entries")
                    .iter()
                    .map(|b| (hx(&b["va"]), s(&b["tag"]), n(&b["size"]), s(&b["pool"])))
                    .collect();
            assert_eq!(our_big, truth_big, "{ctx}: big pages");
            let freed = array(t, "big_pages")
                .iter()
                .filter(|b| b["free"] == true)
                .count() as u64;
            assert_eq!(
                n(&r["big_pages"]["free"]),
                freed,
                "{ctx}: freed big page slots"
            );
            // The session's own big page table (MM_SESSION_SPACE.PoolTrackBigPages), apart.
            let truth_session_big: BTreeSet<(u64, String, u64, String)> = t["session"]["big_pages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    (
                        hx(&b["va"]),
                        s(&b["tag"]),
                        n(&b["size"]),
                        s(&b["pool_type"]),
                    )
                })
                .collect();
            let our_session_big: BTreeSet<(u64, String, u64, String)> = r["session_big_pages"]
                ["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["pool_type"]["session"] == true)
                .map(|b| (hx(&b["va"]), s(&b["tag"]), n(&b["size"]), s(&b["pool"])))
                .collect();
            assert_eq!(
                our_session_big, truth_session_big,
                "{ctx}: session big pages"
            );
            if !truth_session_big.is_empty() {
                session_big_checked += 1;
            }

            // Every block: classic pages walked header by header, big allocations, and on 19H1+
            // the segment heap's LFH and VS blocks.
            type Row = (u64, u64, String, String, bool, String, Option<u64>);
            let segment_heap = array(t, "blocks")
                .iter()
                .any(|b| b["source"] == "lfh" || b["source"] == "vs");
            if segment_heap {
                let sh = field(&r, "segment_heap");
                assert!(n(&sh["heaps"]) > 0 && n(&sh["segments"]) > 0, "{ctx}: {sh}");
                assert_eq!(
                    n(&sh["segments_invalid"]) + n(&sh["subsegments_invalid"]),
                    0,
                    "{ctx}: {sh}"
                );
            }
            let truth_blocks: BTreeSet<Row> = array(t, "blocks")
                .iter()
                .map(|b| {
                    let billed = b.get("process_billed").filter(|v| !v.is_null()).map(hx);
                    (
                        hx(&b["address"]),
                        n(&b["size"]),
                        s(&b["tag"]),
                        s(&b["pool_type"]),
                        b["allocated"] == true,
                        s(&b["source"]),
                        billed,
                    )
                })
                .collect();
            let our_blocks: BTreeSet<Row> = array(&r, "blocks")
                .iter()
                .map(|b| {
                    let billed = Some(&b["billed_process"]).filter(|v| !v.is_null()).map(hx);
                    (
                        hx(&b["address"]),
                        n(&b["size"]),
                        s(&b["tag"]),
                        s(&b["pool"]),
                        b["allocated"] == true,
                        s(&b["source"]),
                        billed,
                    )
                })
                .collect();
            let missing: Vec<_> = truth_blocks.difference(&our_blocks).take(3).collect();
            let extra: Vec<_> = our_blocks.difference(&truth_blocks).take(3).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{ctx}: blocks missing {missing:x?} extra {extra:x?}"
            );
            assert_eq!(
                r["missing_pool_pages"], t["missing_pool_pages"],
                "{ctx}: missing pool pages"
            );
            // Session pool blocks (classic session pages before 19H1, the session's segment
            // heap from 19H1 on) carry the session bit;
            // a free block's header records no pool type, so allocated ones are compared.
            let session_of = |v: &Vec<Value>, flag: &dyn Fn(&Value) -> bool| -> BTreeSet<u64> {
                v.iter()
                    .filter(|b| b["allocated"] == true && flag(b))
                    .map(|b| hx(&b["address"]))
                    .collect()
            };
            let truth_session = session_of(array(t, "blocks"), &|b| b["session"] == true);
            let our_session =
                session_of(array(&r, "blocks"), &|b| b["pool_type"]["session"] == true);
            assert_eq!(our_session, truth_session, "{ctx}: session pool blocks");
            if !truth_session.is_empty() {
                session_blocks_checked += 1;
            }

            // !vm, where the forge sets the variables (XP and 7).
            if !t["vm"].is_null() {
                for k in [
                    "paged_in_use",
                    "paged_max",
                    "paged_commit",
                    "nonpaged_in_use",
                    "nonpaged_max",
                ] {
                    // A figure the kernel does not keep (Windows 10 has no paged commit) is
                    // null in the truth and must be absent from ours.
                    if t["vm"][k].is_null() {
                        assert!(r["vm"][k].is_null(), "{ctx}: vm.{k} is {}", r["vm"][k]);
                    } else {
                        assert_eq!(n(&r["vm"][k]["bytes"]), n(&t["vm"][k]), "{ctx}: vm.{k}");
                    }
                }
            }

            // Drivers: each leaking driver named with its tags and bytes. A module the reader
            // adds must share its code with a named one (the same base in the module list).
            let base_of = |name: &str| {
                array(&truth, "modules")
                    .iter()
                    .find(|m| m["name"] == name)
                    .map(|m| hx(&m["base"]))
            };
            let ours: BTreeMap<String, (Vec<String>, u64)> = array(&r, "drivers")
                .iter()
                .map(|d| {
                    (
                        s(&d["module"]),
                        (array(d, "tags").iter().map(s).collect(), n(&d["bytes"])),
                    )
                })
                .collect();
            let mut named_bases = BTreeSet::new();
            for d in array(t, "drivers") {
                let m = s(&d["module"]);
                let want = (
                    array(d, "tags").iter().map(s).collect::<Vec<_>>(),
                    n(&d["leaked_bytes"]),
                );
                assert_eq!(ours.get(&m), Some(&want), "{ctx}: driver {m} in {ours:?}");
                named_bases.insert(base_of(&m));
            }
            for m in ours.keys() {
                let named = array(t, "drivers")
                    .iter()
                    .any(|d| d["module"] == m.as_str());
                assert!(
                    named || named_bases.contains(&base_of(m)),
                    "{ctx}: {m} blamed without sharing a named driver's code"
                );
            }

            // Quota: the charged process by name, with the bytes of its blocks.
            let charged: u64 = array(t, "blocks")
                .iter()
                .filter(|b| b.get("process_billed").is_some_and(|v| !v.is_null()))
                .map(|b| n(&b["size"]))
                .sum();
            if charged > 0 {
                let q = array(field(&r, "quota"), "processes");
                assert_eq!(q.len(), 1, "{ctx}: {q:?}");
                assert_eq!(
                    (q[0]["name"].as_str(), n(&q[0]["bytes"])),
                    (Some("explorer.exe"), charged),
                    "{ctx}: quota"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        PROFILES.len() * SCENARIOS.len() - 2,
        "every profile and scenario but x86 quota-leak and session-leak"
    );
    assert_eq!(
        session_checked,
        (PROFILES.len() - 1) * SCENARIOS.len(),
        "session pool on every Vista+ profile and scenario"
    );
    assert_eq!(
        session_blocks_checked,
        4 * SCENARIOS.len(),
        "session pool blocks on 7601 and 17763 (classic session pages) and 19041 and 20348 (the \
         session segment heap, MM_SESSION_SPACE.HeapState), every scenario"
    );
    assert_eq!(
        session_big_checked, 4,
        "session big pages: session-leak on 7601, 17763, 19041 and 20348"
    );
}

/// Without the kernel's symbols the 19H1+ segment heap (ExPoolState, its layouts) cannot be
/// found: the report must say so rather than list a partial picture as the whole.
#[test]
fn blocks_without_symbols_say_the_segment_heap_was_not_walked() {
    let dir = tempfile::tempdir().unwrap();
    let (dump, truth) = forge(dir.path(), "win10-19041-x64", "leak-tagged").unwrap();
    assert!(array(field(&truth, "pool"), "blocks")
        .iter()
        .any(|b| b["source"] == "lfh"));
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env_remove("POOLTRIAGE_ISF_DIR")
        .arg("blocks")
        .arg(&dump)
        .arg("--json")
        .arg("--no-symbols");
    let r: Value = serde_json::from_slice(&run(&mut cmd, "pooltriage blocks")).unwrap();
    assert_eq!(r["symbols"]["source"], "none");
    assert!(r["segment_heap"].is_null());
    assert!(
        array(&r, "warnings")
            .iter()
            .any(|w| s(w).contains("segment heap") && s(w).contains("could not be walked")),
        "{}",
        r["warnings"]
    );
    assert!(array(&r, "blocks")
        .iter()
        .all(|b| b["source"] != "lfh" && b["source"] != "vs"));
}

/// Bad input to `pool` and `blocks`: exit code 2, nothing on stdout, one line on stderr.
#[test]
fn pool_and_blocks_bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.dmp");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.path().join("random.dmp");
    std::fs::write(
        &random,
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let e = empty.to_str().unwrap();
    let r = random.to_str().unwrap();
    let cases: [&[&str]; 6] = [
        &["pool", e],
        &["blocks", e, "--json"],
        &["pool", r, "--json"],
        &["pool", e, "--sort", "bogus"],
        &["blocks", e, "--tag", "toolong"],
        &["pool", e, "--symbols", "/nonexistent/ntkrnlmp.pdb"],
    ];
    for args in cases {
        let out = Command::new(pooltriage_bin()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// Without --symbols or an ISF folder, `pool` finds the kernel's PDB through the symbol path by
/// the kernel's CodeView identity, as WinDbg would: here a local store laid out as Microsoft's
/// (`ntkrnlpa.pdb/<GUID><age>/ntkrnlpa.pdb`) holding the corpus XP kernel PDB.
#[test]
fn pool_finds_the_kernel_pdb_through_the_symbol_path() {
    let dir = tempfile::tempdir().unwrap();
    let Some((dump, truth)) = forge(dir.path(), "xp-2600-x86pae", "leak-tagged") else {
        panic!("the forge refused xp-2600-x86pae leak-tagged");
    };
    let pdb = &truth["kernel"]["pdb"];
    let key = format!("{}{}", s(&pdb["guid"]).replace('-', ""), n(&pdb["age"]));
    let store = dir.path().join("store");
    let at = store.join("ntkrnlpa.pdb").join(&key);
    std::fs::create_dir_all(&at).unwrap();
    std::fs::copy(corpus().join("pdb/ntkrnlpa.pdb"), at.join("ntkrnlpa.pdb")).unwrap();
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env_remove("POOLTRIAGE_ISF_DIR")
        .env_remove("_NT_SYMBOL_PATH")
        .arg("pool")
        .arg(&dump)
        .arg("--json")
        .arg("--symbol-path")
        .arg(&store);
    let r: Value = serde_json::from_slice(&run(&mut cmd, "pooltriage pool")).unwrap();
    assert_eq!(r["symbols"]["source"], "pdb", "{}", r["symbols"]);
    let leak = array(&r, "tags")
        .iter()
        .find(|t| t["tag"] == "Leak")
        .cloned();
    assert!(
        leak.is_some(),
        "the planted tag is listed with the PDB's layouts"
    );
}

/// Without any symbols (`--no-symbols`, no ISF folder) the pool engine falls back on the
/// built-in table of kernel layouts (symbols::fallback) for POOL_HEADER and the tag tracker,
/// with PoolTrackTable and the pool ranges from the debugger data block. On the classic-pool
/// builds that is enough for the whole block walk: every classic block of the truth, exactly;
/// and the tags read from PoolTrackTable are the truth's (the expansion and per-CPU tables need
/// symbols, so their counts may be short, never over).
#[test]
fn without_symbols_the_built_in_layouts_walk_every_classic_block() {
    let dir = tempfile::tempdir().unwrap();
    for profile in ["xp-2600-x86pae", "win7-7601-x64", "win10-17763-x64"] {
        let (dump, truth) = forge(dir.path(), profile, "leak-tagged").unwrap();
        let t = field(&truth, "pool");
        let mut cmd = Command::new(pooltriage_bin());
        cmd.env_remove("POOLTRIAGE_ISF_DIR")
            .arg("blocks")
            .arg(&dump)
            .arg("--json")
            .arg("--no-symbols");
        let r: Value =
            serde_json::from_slice(&run(&mut cmd, "pooltriage blocks --no-symbols")).unwrap();
        assert_eq!(r["symbols"]["source"], "none", "{profile}");
        assert_eq!(r["layouts"]["pool_header"], "built-in", "{profile}");
        assert_eq!(r["layouts"]["tag_table"], "built-in", "{profile}");

        // System pool's classic blocks. Session pool pages are found through EPROCESS.Session
        // and MM_SESSION_SPACE, which need symbols: they are left out on both sides.
        let session_pool = t["session"]["paged_pool"].clone();
        let in_session = |a: u64| {
            !session_pool.is_null()
                && (hx(&session_pool["start"])
                    ..hx(&session_pool["start"]) + n(&session_pool["size"]))
                    .contains(&a)
        };
        type Blk = (u64, u64, String, bool);
        let classic = |v: &Vec<Value>| -> BTreeSet<Blk> {
            v.iter()
                .filter(|b| b["source"] == "classic" && !in_session(hx(&b["address"])))
                .map(|b| {
                    (
                        hx(&b["address"]),
                        n(&b["size"]),
                        s(&b["tag"]),
                        b["allocated"] == true,
                    )
                })
                .collect()
        };
        let truth_blocks = classic(array(t, "blocks"));
        assert!(
            !truth_blocks.is_empty(),
            "{profile}: the scenario plants classic blocks"
        );
        assert_eq!(
            classic(array(&r, "blocks")),
            truth_blocks,
            "{profile}: classic blocks"
        );

        let truth_tags: BTreeMap<String, &Value> =
            array(t, "tags").iter().map(|x| (s(&x["tag"]), x)).collect();
        let ours = array(&r, "tags");
        assert!(
            ours.iter().any(|x| x["tag"] == "Leak"),
            "{profile}: the leaking tag is read"
        );
        for x in ours {
            let tag = s(&x["tag"]);
            let want = truth_tags
                .get(&tag)
                .unwrap_or_else(|| panic!("{profile}: tag {tag:?} is not in the truth"));
            for c in [
                "paged_allocs",
                "paged_frees",
                "nonpaged_allocs",
                "nonpaged_frees",
            ] {
                assert!(
                    n(&x[c]) <= n(&want[c]),
                    "{profile} {tag} {c}: {} > truth {}",
                    x[c],
                    want[c]
                );
            }
        }
    }
}

/// busy-server (the one scenario that frees VS blocks; its truth has block counts instead of
/// a list): our blocks, counted by walk and state, equal the truth's `block_counts` exactly,
/// free VS blocks included (listed free, as `!pool` lists freed blocks).
#[test]
fn busy_server_block_counts_equal_the_truth_free_vs_blocks_included() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("busy.dmp");
    run(
        Command::new(pooltriage_bin())
            .env("POOLTRIAGE_CORPUS", corpus())
            .args([
                "forge",
                "--profile",
                "win10-19041-x64",
                "--format",
                "kernel-bitmap",
            ])
            .args([
                "--scenario",
                "busy-server",
                "--size",
                &(256u64 << 20).to_string(),
                "--out",
            ])
            .arg(&dump),
        "pooltriage forge busy-server",
    );
    let truth: Value =
        serde_json::from_slice(&std::fs::read(format!("{}.truth.json", dump.display())).unwrap())
            .unwrap();
    let want: BTreeMap<String, u64> = field(field(&truth, "pool"), "block_counts")
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), n(v)))
        .collect();
    assert!(
        want.get("vs_free").copied().unwrap_or(0) > 0,
        "the scenario frees VS blocks: {want:?}"
    );
    let r = blocks_json(&dump, "win10-19041-x64");
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for b in array(&r, "blocks") {
        let key = format!(
            "{}{}",
            s(&b["source"]),
            if b["allocated"] == true { "" } else { "_free" }
        );
        *got.entry(key).or_default() += 1;
    }
    assert_eq!(got, want, "blocks by walk and state");
}

/// No independent tool reads session pool tag tables (Volatility 3 reads no tag tracker table
/// at all, its poolscanner tells only paged/nonpaged/free; MemProcFS reads the big page table
/// and the segment heap). What one can check independently is the session wiring our session
/// reader starts from: Volatility 3's `windows.sessions` follows each EPROCESS.Session to
/// MM_SESSION_SPACE.SessionId with the corpus ISF; the sessions it reports must be the ones
/// whose tables we read (session-leak, every Vista+ profile).
#[test]
fn volatility_sessions_name_the_sessions_whose_tables_we_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("vol-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mut checked = 0;
    for profile in PROFILES.iter().filter(|p| !p.starts_with("xp")) {
        let (dump, _) =
            forge(dir.path(), profile, "session-leak").expect("session-leak forges on Vista+");
        let out = run(
            Command::new(vol())
                .args(["-q", "--offline", "-r", "json", "-s"])
                .arg(vol_symbols())
                .arg("--cache-path")
                .arg(&cache)
                .arg("-f")
                .arg(&dump)
                .arg("windows.sessions"),
            "vol windows.sessions",
        );
        let rows: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "vol printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        });
        let vol_ids: BTreeSet<u64> = rows
            .as_array()
            .expect("vol JSON is a list")
            .iter()
            .filter_map(|r| r["Session ID"].as_u64())
            .collect();
        let r = blocks_json(&dump, profile);
        let ours: BTreeSet<u64> = array(&r, "sessions")
            .iter()
            .map(|x| x["session_id"].as_u64().expect("session id read"))
            .collect();
        assert!(
            !vol_ids.is_empty(),
            "{profile}: Volatility found no session"
        );
        assert_eq!(ours, vol_ids, "{profile}: sessions");
        std::fs::remove_file(&dump).ok();
        checked += 1;
    }
    assert_eq!(checked, 4);
}
