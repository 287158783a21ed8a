//! Driver Verifier pool tracking end to end: the forge's `verifier-tracking` scenario on every
//! profile, read back by `pooltriage blocks --json` (its `verifier` member, docs/json.md), and
//! compared with the truth file exactly: every tracked allocation's address, recorded size,
//! tag and caller, the kernel's counters. The tracked allocations must be blocks the pool walk
//! found, the unverified driver's blocks must not be tracked, and every caller must decode, in
//! the driver's image read out of the dump by kdmp-parser (x64) or Volatility 3 (x86), as the
//! return address right after a `call` through the import slot of the allocator the site uses
//! (GNU objdump: the import table from `-p`, the instruction from `-D`).
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, hx, image_from_dump, pooltriage_bin, run, OBJDUMP};
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
const SIZE: u64 = 268_435_456;

fn blocks_json(dump: &Path, profile: &str) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.arg("blocks").arg(dump).args(["--json", "--no-symbols"]);
    if profile.starts_with("xp") {
        cmd.arg("--symbols").arg(corpus().join("pdb/ntkrnlpa.pdb"));
    } else {
        cmd.arg("--isf-dir").arg(corpus().join("isf"));
    }
    serde_json::from_slice(&run(&mut cmd, "pooltriage blocks")).expect("blocks --json prints JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// (address, size, tag, caller) of a list of allocations (the reader's or the truth's).
fn allocations(list: &Value) -> BTreeSet<(u64, u64, String, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                hx(&a["address"]),
                n(&a["size"]),
                s(&a["tag"]).into(),
                hx(&a["caller"]),
            )
        })
        .collect()
}

/// The reader's `verifier` against the truth's `pool.verifier`, field by field.
fn check_tracking(v: &Value, t: &Value, ctx: &str) {
    assert_eq!(v["level"], t["level"], "{ctx}");
    assert_eq!(v["rule_classes"], t["rule_classes"], "{ctx}");
    assert_eq!(v["format"], t["format"], "{ctx}");
    assert_eq!(v["totals"], t["totals"], "{ctx}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{ctx}");
    let w = &v["work"];
    assert_eq!(w["stopped"], serde_json::json!([]), "{ctx}");
    assert_eq!(
        (n(&w["loops_detected"]), n(&w["pages_missing"])),
        (0, 0),
        "{ctx}"
    );
    let (got, want) = (
        v["drivers"].as_array().unwrap(),
        t["drivers"].as_array().unwrap(),
    );
    assert_eq!(got.len(), want.len(), "{ctx}: verified drivers");
    for (d, e) in got.iter().zip(want) {
        assert_eq!(d["name"], e["module"], "{ctx}");
        assert_eq!(
            (&d["image_base"], &d["image_size"]),
            (&e["image_base"], &e["image_size"])
        );
        assert_eq!(
            d["entry"], e["entry"],
            "{ctx}: the kernel's structure for the driver"
        );
        for (k, c) in d["counters"].as_object().unwrap() {
            assert_eq!(c, &e[k], "{ctx}: {k}");
        }
        let (a, b) = (allocations(&d["allocations"]), allocations(&e["entries"]));
        assert_eq!(
            a.len(),
            d["allocations"].as_array().unwrap().len(),
            "{ctx}: no duplicate"
        );
        assert_eq!(a, b, "{ctx}: tracked allocations");
        let bp = &d["back_pointers"];
        assert_eq!(
            (n(&bp["matching"]), n(&bp["mismatched"])),
            (a.len() as u64, 0)
        );
    }
}

/// Every tracked allocation is the data of a block the pool walk found (its POOL_HEADER, or
/// the big allocation's page), within that block; the truth marks that block as vrfdrv.sys's
/// and tracked. plaindrv.sys's blocks are found too, and none is tracked. Returns the blocks
/// matched.
fn check_blocks(r: &Value, truth: &Value, ctx: &str) -> usize {
    let found: BTreeMap<u64, &Value> = r["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (hx(&b["address"]), b))
        .collect();
    let owners: BTreeMap<u64, &Value> = truth["pool"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b.get("owner").is_some())
        .map(|b| (hx(&b["address"]), b))
        .collect();
    let tracked = &r["verifier"]["drivers"][0]["allocations"];
    let mut matched = 0;
    for a in tracked.as_array().unwrap() {
        let (addr, size) = (hx(&a["address"]), n(&a["size"]));
        let (&start, b) = found.range(..=addr).next_back().expect("a block below");
        assert!(
            addr + size <= start + n(&b["size"]),
            "{ctx}: {a} inside {b}"
        );
        assert_eq!(
            (b["tag"].clone(), b["allocated"].clone()),
            (a["tag"].clone(), true.into())
        );
        let o = owners
            .get(&start)
            .unwrap_or_else(|| panic!("{ctx}: block {start:#x} has no owner"));
        assert_eq!(
            (s(&o["owner"]), &o["verifier"]),
            ("vrfdrv.sys", &Value::Bool(true))
        );
        matched += 1;
    }
    let tracked_at: BTreeSet<u64> = tracked
        .as_array()
        .unwrap()
        .iter()
        .map(|a| hx(&a["address"]))
        .collect();
    let plain: Vec<_> = owners
        .values()
        .filter(|b| b["owner"] == "plaindrv.sys")
        .collect();
    assert_eq!(plain.len(), 20, "{ctx}");
    for b in plain {
        let at = hx(&b["address"]);
        assert_eq!(
            found.get(&at).map(|f| s(&f["tag"])),
            Some("None"),
            "{ctx}: {b}"
        );
        assert!(
            !tracked_at
                .iter()
                .any(|&t| t >= at && t < at + n(&b["size"])),
            "{ctx}: plaindrv.sys's block {at:#x} is tracked"
        );
        assert_eq!(b["verifier"], false);
    }
    matched
}

/// The driver's import address table slots by function, from objdump's reading of the
/// image's import directory (`First Thunk` of ntoskrnl.exe, members in order).
fn import_slots(image: &Path, base: u64, x64: bool) -> BTreeMap<String, u64> {
    let out = run(Command::new(OBJDUMP).arg("-p").arg(image), "objdump -p");
    let text = String::from_utf8_lossy(&out);
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("The Import Tables"));
    let row = lines.nth(3).expect("the import descriptor row");
    let first_thunk = u64::from_str_radix(row.split_whitespace().nth(5).unwrap(), 16).unwrap();
    let names = lines
        .skip_while(|l| !l.contains("Member-Name"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().last().unwrap().to_string());
    let slot = if x64 { 8 } else { 4 };
    names
        .enumerate()
        .map(|(i, f)| (f, base + first_thunk + i as u64 * slot))
        .collect()
}

/// Each caller is the address right after a 6-byte `call` through the allocator's slot:
/// ExAllocatePool for the untagged sites, ExAllocatePoolWithTag for the tagged one.
fn check_callers(dump: &Path, dir: &Path, truth: &Value, r: &Value, x64: bool) -> usize {
    let d = &r["verifier"]["drivers"][0];
    let (base, size) = (hx(&d["image_base"]), n(&d["image_size"]));
    let image = image_from_dump(dump, dir, base, size, x64);
    let slots = import_slots(&image, base, x64);
    let tagged: BTreeSet<String> = truth["pool"]["drivers"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(t).to_string())
        .filter(|t| t != "None" && t != "Wrap")
        .collect();
    let callers: BTreeMap<u64, String> = d["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (hx(&a["caller"]), s(&a["tag"]).to_string()))
        .collect();
    for (&caller, tag) in &callers {
        let text = String::from_utf8_lossy(&run(
            Command::new(OBJDUMP)
                .args(["-D", "-b", "binary", "-m"])
                .arg(if x64 { "i386:x86-64" } else { "i386" })
                .arg(format!("--adjust-vma={base:#x}"))
                .arg(format!("--start-address={:#x}", caller - 6))
                .arg(format!("--stop-address={:#x}", caller + 1))
                .arg(&image),
            "objdump -D",
        ))
        .to_string();
        let insn: Vec<&str> = text.lines().filter(|l| l.contains(":\t")).collect();
        assert_eq!(
            insn.len(),
            2,
            "a 6-byte instruction, then one at the caller:\n{text}"
        );
        assert!(
            insn[1].trim_start().starts_with(&format!("{caller:x}:")),
            "{text}"
        );
        let f = if tagged.contains(tag) {
            "ExAllocatePoolWithTag"
        } else {
            "ExAllocatePool"
        };
        let slot = slots[f];
        let want = if x64 {
            format!("# {slot:#x}")
        } else {
            format!("call   *{slot:#x}")
        };
        assert!(
            insn[0].contains("call   *") && insn[0].trim_end().ends_with(&want),
            "{caller:#x}: want a call through {f}'s slot {slot:#x}: {}",
            insn[0]
        );
    }
    callers.len()
}

#[test]
fn verifier_tracking_equals_the_truth_and_callers_follow_allocator_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (mut allocations, mut blocks, mut callers) = (0, 0, 0);
    for profile in PROFILES {
        let f = harness::forge_scenario(dir.path(), profile, "verifier-tracking", Some(SIZE))
            .unwrap_or_else(|| panic!("{profile}: the forge refused verifier-tracking"));
        let r = blocks_json(&f.dump, profile);
        assert_eq!(r["symbols"]["matches_kernel"], true, "{profile}");
        assert!(
            r["errors"].as_array().unwrap().is_empty(),
            "{profile}: {}",
            r["errors"]
        );
        let t = &f.truth["pool"]["verifier"];
        check_tracking(&r["verifier"], t, profile);
        allocations += t["drivers"][0]["entries"].as_array().unwrap().len();
        blocks += check_blocks(&r, &f.truth, profile);
        let x64 = f.truth["arch"] == "x64";
        callers += check_callers(&f.dump, dir.path(), &f.truth, &r, x64);
    }
    assert_eq!(allocations, 5 * 171);
    assert_eq!(blocks, allocations);
    assert_eq!(callers, 5 * 4, "four call sites per profile, each decoded");
}

/// Dumps of the other pool scenarios have the verifier off: no `verifier` member.
#[test]
fn without_verifier_tracking_there_is_no_verifier_member() {
    let dir = tempfile::tempdir().unwrap();
    for profile in ["xp-2600-x86pae", "win10-19041-x64"] {
        let f = harness::forge_scenario(dir.path(), profile, "leak-untagged", Some(SIZE)).unwrap();
        let r = blocks_json(&f.dump, profile);
        assert_eq!(r["verifier"], Value::Null, "{profile}");
        assert!(r["errors"].as_array().unwrap().is_empty(), "{profile}");
    }
}
