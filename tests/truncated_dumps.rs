//! Dumps cut short, as customers send them (the machine lost power while writing, the dump
//! file was too small, a copy or an upload broke off): read as far as they go, as WinDbg opens
//! them. A complete dump cut at 60% of its file and a kernel bitmap dump cut at 80%: every
//! command answers (exit 0); `analyze` says how much is missing in `dump.truncated`, a
//! warning and the verdict; pool pages past the end count as not in the dump.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, pooltriage_bin, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first `share` of `dump`'s bytes, as a new file.
fn cut(dump: &Path, share: f64, out: &Path) -> PathBuf {
    let bytes = std::fs::read(dump).unwrap();
    let keep = (bytes.len() as f64 * share) as usize;
    std::fs::write(out, &bytes[..keep]).unwrap();
    out.to_path_buf()
}

fn analyze(dump: &Path) -> Value {
    let out = run(
        Command::new(pooltriage_bin())
            .arg("analyze")
            .arg(dump)
            .args(["--json", "--isf-dir"])
            .arg(corpus().join("isf")),
        "pooltriage analyze",
    );
    serde_json::from_slice(&out).expect("JSON")
}

/// A 256 MiB 19041 machine with a tagged leak, in `format`: the dump and its truth.
fn forge(dir: &Path, format: &str) -> (PathBuf, Value) {
    let dump = dir.join(format!("{format}.dmp"));
    run(
        Command::new(pooltriage_bin())
            .env("POOLTRIAGE_CORPUS", corpus())
            .args(["forge", "--profile", "win10-19041-x64", "--format", format])
            .args(["--scenario", "leak-tagged", "--size", "268435456", "--out"])
            .arg(&dump),
        "pooltriage forge",
    );
    let truth = std::fs::read(format!("{}.truth.json", dump.display())).unwrap();
    (dump, serde_json::from_slice(&truth).unwrap())
}

/// The pages the dump header lists (the forge's truth).
fn listed(truth: &Value) -> u64 {
    truth["physical_pages_stored"]
        .as_u64()
        .expect("truth pages")
}

#[test]
fn cut_short_dumps_are_read_as_far_as_they_go() {
    let dir = tempfile::tempdir().unwrap();
    for (format, share) in [("full", 0.6), ("kernel-bitmap", 0.8)] {
        let (dump, truth) = forge(dir.path(), format);
        let short = cut(&dump, share, &dir.path().join(format!("{format}-cut.dmp")));
        let r = analyze(&short);
        let t = &r["dump"]["truncated"];
        let (in_file, all) = (t["pages_in_file"].as_u64(), t["pages_listed"].as_u64());
        assert_eq!(all, Some(listed(&truth)), "{format}: {t}");
        let in_file = in_file.unwrap();
        // Pages start after the header: a little under the share of them is in the file.
        let expect = (all.unwrap() as f64 * share) as u64;
        assert!(
            in_file <= expect && in_file + expect / 10 >= expect,
            "{format}: {t}"
        );
        let warned = r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("cut short"));
        assert!(warned, "{format}: {}", r["warnings"]);
        let v = &r["verdict"];
        assert!(
            v["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x.as_str().unwrap().contains("cut short")),
            "{format}: {v}"
        );
        // Every command answers.
        for cmd in ["inspect", "pool", "blocks"] {
            run(
                Command::new(pooltriage_bin())
                    .arg(cmd)
                    .arg(&short)
                    .arg("--json"),
                cmd,
            );
        }
        // The whole file reads as whole.
        assert!(analyze(&dump)["dump"]["truncated"].is_null(), "{format}");
    }
}
