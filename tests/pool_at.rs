//! `pooltriage pool-at DUMP ADDRESS` (WinDbg's `!pool ADDRESS` with the owner) on forged
//! untagged-two-drivers dumps: the block holding an address inside a block, its page's
//! neighbours laid end to end as `!pool` lists them, the owner and orphan flag the truth gives,
//! and the pointers to a live block (the truth's list and device-extension roots) found.

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, forge_scenario, hx, pooltriage_bin};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn pool_at(dump: &Path, profile: &str, address: &str, json: bool) -> (i32, String) {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.arg("pool-at")
        .arg(dump)
        .arg(address)
        .arg("--no-symbols");
    if json {
        cmd.arg("--json");
    }
    if profile.starts_with("xp") {
        cmd.arg("--symbols").arg(corpus().join("pdb/ntkrnlpa.pdb"));
    } else {
        cmd.arg("--isf-dir").arg(corpus().join("isf"));
    }
    let out = cmd.output().expect("pooltriage runs");
    let text = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).to_string()
    } else {
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    (out.status.code().unwrap_or(-1), text)
}

fn json_at(dump: &Path, profile: &str, address: u64) -> Value {
    let (code, text) = pool_at(dump, profile, &format!("{address:x}"), true);
    assert_eq!(code, 0, "{text}");
    serde_json::from_str(&text).expect("pool-at --json prints JSON")
}

/// The truth's first owned block of `module` with the given orphan flag and the given
/// source kind (classic pages show the neighbours laid end to end).
fn pick<'a>(truth: &'a Value, module: &str, orphan: bool) -> &'a Value {
    truth["pool"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["owner"] == module
                && b["orphan"] == orphan
                && b["allocated"] == true
                && b["source"] != "big"
                && b["transition"] != true
        })
        .unwrap_or_else(|| panic!("no {module} block with orphan {orphan}"))
}

#[test]
fn pool_at_names_the_owner_the_neighbours_and_the_references() {
    let dir = tempfile::tempdir().unwrap();
    for profile in ["xp-2600-x86pae", "win10-19041-x64"] {
        let f = forge_scenario(dir.path(), profile, "untagged-two-drivers", None).unwrap();
        let what = profile;
        // A live block: an address inside it finds it.
        let live = pick(&f.truth, "acmefs.sys", false);
        let start = hx(&live["address"]);
        let r = json_at(&f.dump, profile, start + 0x18);
        assert_eq!(r["kind"], "pool-at");
        let b = &r["block"];
        assert_eq!(hx(&b["address"]), start, "{what}: {b}");
        assert_eq!(b["size"], live["size"], "{what}");
        assert_eq!(b["contains"], true);
        assert_eq!(b["owner"]["module"], "acmefs.sys", "{what}: {b}");
        assert_eq!(b["owner"]["orphan"], false, "{what}: {b}");
        let refs = r["references"].as_array().unwrap();
        assert!(!refs.is_empty(), "{what}: a live block has references");
        for x in refs {
            let v = hx(&x["value"]);
            assert!(
                v >= start && v < start + live["size"].as_u64().unwrap(),
                "{what}: {x}"
            );
        }
        assert_eq!(
            r["content"]["hex"].as_str().unwrap().len(),
            0x40 * 2,
            "{what}"
        );
        // The page's blocks, in order; on XP's classic pages they lie end to end.
        let page = r["page"].as_array().unwrap();
        assert!(
            page.iter().filter(|p| p["contains"] == true).count() == 1,
            "{what}"
        );
        for w in page.windows(2) {
            let (a, b) = (hx(&w[0]["address"]), hx(&w[1]["address"]));
            assert!(a < b, "{what}: page out of order");
            if profile.starts_with("xp") {
                assert_eq!(
                    a + w[0]["size"].as_u64().unwrap(),
                    b,
                    "{what}: gap in a classic page"
                );
                assert_eq!(w[1]["previous_size"], w[0]["size"], "{what}");
            }
        }
        // An orphan: nothing points to it.
        let orphan = pick(&f.truth, "acmefs.sys", true);
        let r = json_at(&f.dump, profile, hx(&orphan["address"]));
        assert_eq!(
            r["block"]["owner"]["orphan"], true,
            "{what}: {}",
            r["block"]
        );
        assert_eq!(r["references"].as_array().unwrap().len(), 0, "{what}");
        // The text is !pool's: the page line, the starred block, the owner line.
        let (code, text) = pool_at(&f.dump, profile, &format!("0x{start:x}"), false);
        assert_eq!(code, 0, "{text}");
        assert!(text.starts_with("Pool page "), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("*{start:x} size:"))),
            "{text}"
        );
        assert!(text.contains("Owner: acmefs.sys"), "{text}");
        std::fs::remove_file(&f.dump).ok();
    }
}

#[test]
fn a_bad_address_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = forge_scenario(dir.path(), "win10-19041-x64", "leak-tagged", None).unwrap();
    for bad in ["", "zz", "0x", "1ffffffffffffffff"] {
        let (code, text) = pool_at(&f.dump, "win10-19041-x64", bad, false);
        assert_eq!(code, 2, "{bad:?}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "{bad:?}: {text}");
    }
    // An address in no pool block is an answer, not an error.
    let r = json_at(&f.dump, "win10-19041-x64", 0x1000);
    assert!(r["block"].is_null());
}
