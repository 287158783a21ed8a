//! Jobs report progress by stage (docs/api.md, "Status"): the analyzer child
//! writes `progress: <stage>` lines on stderr, the worker records the latest as the job's
//! `stage`, and `GET /api/v1/dumps/{id}` and the dump page show it while the job runs.
//!
//! - `stages_show_up_in_order_through_the_api_and_the_page`: a stand-in analyzer (the
//!   documented `POOLTRIAGE_ANALYZER` override) announces the documented stages, each held
//!   until the test has seen it through the API and the page (an acknowledgement file), so
//!   the test does not depend on how fast the machine is; it sees each of them, in order;
//! - `a_failed_job_keeps_its_stage_and_a_reason_without_progress_lines`: the stand-in fails
//!   with exit 2 after a progress line: the reason is its error line, the stage the last one
//!   announced;
//! - `the_real_analyzer_announces_every_stage`: `pooltriage analyze --progress` (and with
//!   `POOLTRIAGE_PROGRESS=1`, as the worker runs it) on a forged dump prints the stages in
//!   order; without either, no progress line.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use service::{triage_variant, Service, Token};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The stages `pooltriage analyze` announces, in order (docs/api.md, "Status").
const STAGES: [&str; 6] = [
    "opening-dump",
    "reading-kernel",
    "loading-symbols",
    "reading-pool",
    "attributing",
    "writing-report",
];

/// A stand-in analyzer: announces STAGES on stderr, with an ordinary stderr line after each,
/// and moves on when the file `$ACK_DIR/<stage>` exists (at most 60 s; without `ACK_DIR`,
/// after `$STAGE_SECS`); then prints a small JSON report. A dump whose last bytes are `FAIL`
/// makes it fail after the second stage: an error line, then one more progress line, exit 2.
fn write_stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("stand-in-analyzer.sh");
    let stages = STAGES.join(" ");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             for last; do :; done\n\
             n=0\n\
             for s in {stages}; do\n\
               echo \"progress: $s\" >&2\n\
               echo \"note: now in $s\" >&2\n\
               n=$((n+1))\n\
               if [ $n -eq 2 ] && [ \"$(tail -c 4 \"$last\")\" = FAIL ]; then\n\
                 echo 'error: planted failure' >&2\n\
                 echo 'progress: reading-pool' >&2\n\
                 exit 2\n\
               fi\n\
               if [ -n \"$ACK_DIR\" ]; then\n\
                 i=0; while [ ! -e \"$ACK_DIR/$s\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
               else\n\
                 sleep \"$STAGE_SECS\"\n\
               fi\n\
             done\n\
             echo '{{\"schema_version\": 1, \"kind\": \"stand-in\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The service with the stand-in; `ack_dir`: where the test acknowledges stages (else the
/// stand-in spends 2 s in each).
fn start(dir: &Path, stand_in: &Path, ack_dir: Option<&Path>) -> Service {
    let ack = ack_dir
        .map(|d| d.to_str().unwrap().to_string())
        .unwrap_or_default();
    Service::start(
        dir,
        &[
            ("POOLTRIAGE_ANALYZER", stand_in.to_str().unwrap()),
            ("POOLTRIAGE_WORKERS", "1"),
            ("STAGE_SECS", "2"),
            ("ACK_DIR", ack.as_str()),
        ],
    )
}

/// The stage the dump page shows in its live status (`<strong id="stage">`), if any.
fn page_stage(svc: &Service, token: &Token, id: &str) -> Option<String> {
    let html = ureq::get(&svc.url(&format!("/dumps/{id}")))
        .set("Authorization", &token.0)
        .call()
        .expect("dump page")
        .into_string()
        .unwrap();
    let doc = scraper::Html::parse_document(&html);
    let sel = scraper::Selector::parse("#stage").unwrap();
    let found = doc
        .select(&sel)
        .next()
        .map(|e| e.text().collect::<String>().trim().to_string());
    found
}

/// `v` without consecutive repeats.
fn runs(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if out.last() != Some(s) {
            out.push(s.clone());
        }
    }
    out
}

#[test]
fn stages_show_up_in_order_through_the_api_and_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let token = Token::new(dir.path(), "acme", "customer");
    let acks = tempfile::tempdir().unwrap();
    let svc = start(dir.path(), &write_stand_in(work.path()), Some(acks.path()));
    let id = svc.upload(&token, &triage_variant("progress"), "");
    let (mut api, mut page) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let st = svc.get(&token, &format!("/api/v1/dumps/{id}"));
        let stage = st["stage"].as_str().expect("stage").to_string();
        api.push(stage);
        if st["status"] == "done" || st["status"] == "failed" {
            break st;
        }
        if let Some(s) = page_stage(&svc, &token, &id) {
            // Seen through both: let the stand-in move on.
            if STAGES.contains(&s.as_str()) && api.last() == Some(&s) {
                std::fs::write(acks.path().join(&s), b"").unwrap();
            }
            page.push(s);
        }
        assert!(Instant::now() < deadline, "not done: {st}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["stage"], "done");
    assert!(done.get("error").is_none(), "{done}");
    let child = |v: &[String]| -> Vec<String> {
        runs(v)
            .into_iter()
            .filter(|s| STAGES.contains(&s.as_str()))
            .collect()
    };
    assert_eq!(child(&api), STAGES, "API stages seen: {:?}", runs(&api));
    assert_eq!(child(&page), STAGES, "page stages seen: {:?}", runs(&page));
    // Nothing but the service's own stages around them.
    for s in runs(&api) {
        assert!(
            STAGES.contains(&s.as_str())
                || ["queued", "starting", "analyzing", "storing", "done"].contains(&s.as_str()),
            "unexpected stage {s:?}"
        );
    }
}

#[test]
fn a_failed_job_keeps_its_stage_and_a_reason_without_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let token = Token::new(dir.path(), "acme", "customer");
    let svc = start(dir.path(), &write_stand_in(work.path()), None);
    let id = svc.upload(&token, &triage_variant("FAIL"), "");
    let st = svc.wait_finished(&token, &id, Duration::from_secs(60));
    assert_eq!(st["status"], "failed", "{st}");
    assert_eq!(st["error"], "planted failure", "{st}");
    assert_eq!(st["stage"], "reading-pool", "{st}");
    assert_eq!(st["attempts"], 1, "exit 2 is not retried: {st}");
}

#[test]
fn the_real_analyzer_announces_every_stage() {
    let work = tempfile::tempdir().unwrap();
    let f = harness::forge(work.path(), "xp-2600-x86pae", "kernel-bitmap", None);
    let run = |flag: Option<&str>, env: Option<&str>| -> (bool, Vec<String>) {
        let mut cmd = Command::new(harness::pooltriage_bin());
        cmd.args(["analyze", "--json", "--no-symbols"])
            .env_remove("POOLTRIAGE_PROGRESS")
            .env_remove("POOLTRIAGE_ISF_DIR")
            .current_dir(work.path());
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        if let Some(v) = env {
            cmd.env("POOLTRIAGE_PROGRESS", v);
        }
        let out = cmd.arg(&f.dump).output().unwrap();
        let stdout_is_json = serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok();
        let lines = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("progress:"))
            .map(|l| l.to_string())
            .collect();
        (out.status.success() && stdout_is_json, lines)
    };
    let expected: Vec<String> = STAGES.iter().map(|s| format!("progress: {s}")).collect();
    let (ok, lines) = run(Some("--progress"), None);
    assert!(ok, "analyze --progress failed");
    assert_eq!(lines, expected);
    let (ok, lines) = run(None, Some("1"));
    assert!(ok);
    assert_eq!(lines, expected);
    let (ok, lines) = run(None, None);
    assert!(ok);
    assert!(lines.is_empty(), "{lines:?}");
    let (_, lines) = run(None, Some("0"));
    assert!(lines.is_empty(), "{lines:?}");
}
