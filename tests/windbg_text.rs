//! `pooltriage pool` and `pooltriage blocks` text, laid out as WinDbg's `!vm`, `!poolused` and
//! `!poolfind` print them (docs/pool.md "WinDbg's layouts"), on forged dumps: each figure, row
//! and TOTAL against the forge's truth file, the `--pool` filter against the truth's blocks.
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{array, corpus, field, hx, pooltriage_bin, run};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The header of every `!poolused` table, as docs/pool.md gives it.
const HEADER: &str = " Tag     NP Allocs     NP Frees      NP Diff     NP Bytes NP Per Alloc     P Allocs      P Frees       P Diff      P Bytes  P Per Alloc\tOwner";

fn pooltriage(dump: &Path, profile: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args(args).arg(dump).arg("--no-symbols");
    if profile.starts_with("xp") {
        cmd.arg("--symbols").arg(corpus().join("pdb/ntkrnlpa.pdb"));
    } else {
        cmd.arg("--isf-dir").arg(corpus().join("isf"));
    }
    String::from_utf8(run(&mut cmd, "pooltriage")).expect("text output")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The ten numbers WinDbg's layout prints for a truth row: Allocs, Frees, Diff, Bytes, Per
/// Alloc (Bytes / Diff, 0 with nothing outstanding), nonpaged then paged.
fn expected(allocs_frees_bytes: [(u64, u64, u64); 2]) -> Vec<u64> {
    let mut v = Vec::new();
    for (a, f, b) in allocs_frees_bytes {
        let d = a - f;
        v.extend([a, f, d, b, b.checked_div(d).unwrap_or(0)]);
    }
    v
}

fn truth_rows(tags: &[Value]) -> BTreeMap<String, Vec<u64>> {
    tags.iter()
        .map(|t| {
            let c = |k: &str| n(&t[k]);
            let tag = t["tag"].as_str().unwrap().to_string();
            let np = (
                c("nonpaged_allocs"),
                c("nonpaged_frees"),
                c("nonpaged_bytes"),
            );
            let p = (c("paged_allocs"), c("paged_frees"), c("paged_bytes"));
            (tag, expected([np, p]))
        })
        .collect()
}

/// The sums of a truth table's counters, as its TOTAL row must print them.
fn truth_total(tags: &[Value]) -> Vec<u64> {
    let sum = |k: &str| tags.iter().map(|t| n(&t[k])).sum::<u64>();
    expected([
        (
            sum("nonpaged_allocs"),
            sum("nonpaged_frees"),
            sum("nonpaged_bytes"),
        ),
        (sum("paged_allocs"), sum("paged_frees"), sum("paged_bytes")),
    ])
}

/// One parsed table: rows in order (tag, numbers, owner) and the TOTAL numbers.
struct Table {
    rows: Vec<(String, Vec<u64>, String)>,
    total: Vec<u64>,
}

/// The table under the line starting with `title`.
fn table(text: &str, title: &str) -> Table {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(title)).skip(1);
    assert_eq!(lines.next(), Some(HEADER), "{title}: header");
    let nums = |s: &str| -> Vec<u64> {
        s.split_whitespace()
            .map(|x| x.parse().unwrap_or_else(|_| panic!("number {x:?}")))
            .collect()
    };
    let mut rows = Vec::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("TOTAL") {
            return Table {
                rows,
                total: nums(rest),
            };
        }
        let (cols, owner) = l.split_once('\t').expect("owner after a tab");
        assert_eq!(cols.len(), 5 + 10 * 13, "fixed columns: {l:?}");
        rows.push((cols[1..5].to_string(), nums(&cols[5..]), owner.to_string()));
    }
    panic!("{title}: no TOTAL row");
}

fn check_table(t: &Table, truth: &[Value], what: &str) {
    let want = truth_rows(truth);
    let got: BTreeMap<String, Vec<u64>> = t
        .rows
        .iter()
        .map(|(tag, v, _)| (tag.clone(), v.clone()))
        .collect();
    assert_eq!(got, want, "{what}: rows");
    assert_eq!(
        t.total,
        truth_total(truth),
        "{what}: TOTAL = the truth's sums"
    );
    let order: Vec<&String> = t.rows.iter().map(|r| &r.0).collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(order, sorted, "{what}: sorted by tag, WinDbg's default");
    for (tag, _, owner) in &t.rows {
        let unknown = format!("UNKNOWN pooltag '{tag}', please update pooltag.txt");
        assert!(
            owner == &unknown || owner.ends_with(']'),
            "{what}: owner of {tag:?}: {owner:?}"
        );
    }
}

/// `!poolused` rows, TOTAL and per-session tables against the truth; `!vm` lines against its
/// figures, with the "Excessive" line exactly where `!vm` prints it.
#[test]
fn poolused_and_vm_text_equal_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("xp-2600-x86pae", "nonpaged-exhaustion"),
        ("win7-7601-x64", "session-leak"),
        ("win7-7601-x64", "nonpaged-exhaustion"),
        ("win10-17763-x64", "session-leak"),
        ("win10-19041-x64", "session-leak"),
        ("server2022-20348-x64", "leak-tagged"),
    ];
    for (profile, scenario) in cases {
        let f = harness::forge_scenario(dir.path(), profile, scenario, None).expect("forged");
        let what = format!("{profile} {scenario}");
        let t = field(&f.truth, "pool");
        let text = pooltriage(&f.dump, profile, &["pool"]);
        let system = table(&text, "Pool tags (!poolused 1): sorting by Tag");
        check_table(&system, array(t, "tags"), &what);
        if let Some(st) = t["session_tags"].as_array() {
            let id = t["session"]["session_id"].as_u64().unwrap();
            let title = format!("Session pool tags (!poolused 9), session {id}:");
            check_table(&table(&text, &title), st, &format!("{what} session"));
        }
        check_vm(&text, &t["vm"], &what);
        std::fs::remove_file(&f.dump).ok();
    }
}

fn check_vm(text: &str, vm: &Value, what: &str) {
    for (label, key) in [
        ("NonPagedPool Usage:", "nonpaged_in_use"),
        ("NonPagedPool Max:", "nonpaged_max"),
        ("PagedPool Usage:", "paged_in_use"),
        ("PagedPool Maximum:", "paged_max"),
    ] {
        let Some(bytes) = vm[key].as_u64() else {
            continue;
        };
        let want = format!(
            "  {label:<22}{:>10}   ({:>10} Kb)  ",
            bytes / 4096,
            bytes / 1024
        );
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "{what}: no line {want:?} in\n{text}"
        );
    }
    for (pool, pct, line) in [
        (
            "nonpaged",
            80,
            "  ********** Excessive NonPaged Pool Usage *****",
        ),
        ("paged", 95, "  ********** Excessive Paged Pool Usage *****"),
    ] {
        let (Some(u), Some(m)) = (
            vm[format!("{pool}_in_use")].as_u64(),
            vm[format!("{pool}_max")].as_u64(),
        ) else {
            continue;
        };
        assert_eq!(
            text.lines().any(|l| l == line),
            u * 100 > m * pct,
            "{what}: {line}"
        );
    }
}

/// `--sort` keeps its values; `paged` orders by paged bytes, largest first.
#[test]
fn sort_paged_orders_by_paged_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let profile = "win7-7601-x64";
    let f = harness::forge_scenario(dir.path(), profile, "leak-tagged", None).unwrap();
    let text = pooltriage(&f.dump, profile, &["pool", "--sort", "paged"]);
    let t = table(
        &text,
        "Pool tags (!poolused 1): sorting by Paged Pool Consumed",
    );
    let bytes: Vec<u64> = t.rows.iter().map(|r| r.1[8]).collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    assert_eq!(t.rows[0].0, "Leak");
}

/// One `!poolfind` line: (address, size, previous size, allocated, tag, pool, session, source).
type Line = (u64, u64, Option<u64>, bool, String, String, bool, String);

fn parse_line(l: &str) -> Line {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let (addr, rest) = l.trim_start().split_once(" size: ").unwrap();
    let (size, rest) = rest.split_once(" previous size: ").unwrap();
    let (prev, rest) = rest.trim_start().split_once("  (").unwrap();
    let (state, rest) = rest.split_once(") ").unwrap();
    let tag = rest[..4].to_string();
    let mut words = rest[4..].split_whitespace();
    let pool = words.next().unwrap().to_string();
    let mut next = words.next().unwrap();
    let session = next == "session";
    if session {
        next = words.next().unwrap();
    }
    (
        hex(addr),
        hex(size.trim()),
        (prev != "-").then(|| hex(prev)),
        state == "Allocated",
        tag,
        pool,
        session,
        next.to_string(),
    )
}

/// `blocks --pool` lists the truth's blocks of that pool, each as `!poolfind` prints it; the
/// session blocks are marked.
#[test]
fn blocks_pool_filter_lists_the_truths_blocks_of_that_pool() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, scenario) in [
        ("xp-2600-x86pae", "leak-untagged"),
        ("win7-7601-x64", "session-leak"),
        ("win10-19041-x64", "session-leak"),
    ] {
        let f = harness::forge_scenario(dir.path(), profile, scenario, None).unwrap();
        let blocks = array(field(&f.truth, "pool"), "blocks");
        for pool in ["paged", "nonpaged", "session"] {
            let what = format!("{profile} {scenario} --pool {pool}");
            let text = pooltriage(&f.dump, profile, &["blocks", "--pool", pool]);
            let lines: Vec<Line> = text
                .lines()
                .filter(|l| l.starts_with("  0x"))
                .map(parse_line)
                .collect();
            let count_line = format!("{} blocks in {pool} pool", lines.len());
            assert!(text.contains(&count_line), "{what}: {count_line}");
            // Allocated blocks (a free block's header records no session bit).
            let ours: BTreeSet<(u64, u64, String)> = lines
                .iter()
                .filter(|l| l.3)
                .map(|l| (l.0, l.1, l.4.clone()))
                .collect();
            let want: BTreeSet<(u64, u64, String)> = blocks
                .iter()
                .filter(|b| b["allocated"] == true)
                .filter(|b| {
                    let session = b["session"] == true;
                    match pool {
                        "session" => session,
                        p => !session && b["pool_type"] == p,
                    }
                })
                .map(|b| {
                    let tag = unprotected(b["tag"].as_str().unwrap());
                    (hx(&b["address"]), n(&b["size"]), tag)
                })
                .collect();
            assert_eq!(ours, want, "{what}");
            for l in &lines {
                assert_eq!(l.6, pool == "session", "{what}: session marked: {l:?}");
                assert_eq!(l.2.is_none(), l.7 == "big", "{what}: previous size: {l:?}");
            }
        }
        std::fs::remove_file(&f.dump).ok();
    }
}

/// A tag as `!poolfind` prints it: the truth writes XP/7's protected tags (high bit of the last
/// byte set, e.g. the object manager's 'Dire') with that byte escaped, `Dir\\xe5`.
fn unprotected(tag: &str) -> String {
    if let Some((head, hex)) = tag.rsplit_once("\\x") {
        if let Ok(b) = u8::from_str_radix(hex, 16) {
            if b >= 0x80 {
                return format!("{head}{}", char::from(b & 0x7f));
            }
        }
    }
    tag.to_string()
}
