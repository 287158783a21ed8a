//! A pooltag file adds descriptions; it never changes a verdict. Microsoft's own pooltag.txt
//! (the corpus copy, from the Windows SDK's debugger) gives 'None' to nt!Vf and many tags to
//! Windows binaries: passed as `--pooltag`, the verdict of every pool scenario must stay the
//! same (kind, pool, drivers, tags, confidence, bytes), on an x64 and an x86 profile.

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, forge_scenario, pooltriage_bin, run};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const SCENARIOS: [&str; 9] = [
    "leak-tagged",
    "leak-untagged",
    "shared-tag",
    "quota-leak",
    "nonpaged-exhaustion",
    "session-leak",
    "missing-pages",
    "untagged-two-drivers",
    "verifier-tracking",
];

fn verdict(dump: &Path, profile: &str, pooltag: bool) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.arg("analyze")
        .arg(dump)
        .args(["--json", "--no-symbols"]);
    if profile.starts_with("xp") {
        cmd.arg("--symbols").arg(corpus().join("pdb/ntkrnlpa.pdb"));
    } else {
        cmd.arg("--isf-dir").arg(corpus().join("isf"));
    }
    if pooltag {
        cmd.arg("--pooltag").arg(corpus().join("pooltag.txt"));
    }
    let r: Value = serde_json::from_slice(&run(&mut cmd, "pooltriage analyze")).unwrap();
    let v = &r["verdict"];
    serde_json::json!({
        "kind": v["kind"], "pool": v["pool"], "session": v["session"], "drivers": v["drivers"],
        "tags": v["tags"], "confidence": v["confidence"], "bytes": v["bytes"],
    })
}

#[test]
fn the_corpus_pooltag_file_changes_no_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    // Every scenario on Windows 10; on XP the ones about 'None' and a driver's own tag.
    let cases = SCENARIOS.iter().map(|s| ("win10-19041-x64", *s)).chain(
        ["leak-untagged", "untagged-two-drivers", "leak-tagged"]
            .into_iter()
            .map(|s| ("xp-2600-x86pae", s)),
    );
    for (profile, scenario) in cases {
        {
            let Some(f) = forge_scenario(dir.path(), profile, scenario, None) else {
                continue;
            };
            let without = verdict(&f.dump, profile, false);
            let with = verdict(&f.dump, profile, true);
            assert_eq!(with, without, "{profile} {scenario}");
            compared += 1;
            std::fs::remove_file(&f.dump).ok();
        }
    }
    assert!(compared >= 12, "only {compared} scenarios compared");
}
