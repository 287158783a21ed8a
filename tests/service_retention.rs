//! Retention of `pooltriage serve` over real HTTP on loopback (docs/api.md, "Retention"): a dump
//! younger than `retention_days` keeps its file; once older (the sweep's clock moved ahead with
//! the documented test knob `--retention-clock-offset-secs`) the file goes, the report stays
//! readable byte for byte and the API says "dump file deleted by retention"; a new upload of the
//! same content brings the file back; DELETE removes the dump, its report and its file.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use service::{triage_variant, wait_for, Service, Token};
use std::time::Duration;

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn old_dump_files_go_reports_stay_and_delete_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Token::new(dir.path(), "acme", "admin");
    let other = Token::new(dir.path(), "globex", "customer");
    let dumps = dir.path().join("dumps");
    let one_day = [
        ("POOLTRIAGE_RETENTION_DAYS", "1"),
        ("POOLTRIAGE_RETENTION_INTERVAL_SECS", "1"),
    ];

    // Retention of 1 day, real clock: a fresh dump keeps its file over several sweeps.
    let (id, sha, report) = {
        let svc = Service::start(dir.path(), &one_day);
        let id = svc.upload(&admin, &triage_variant("retention"), "");
        let st = svc.wait_finished(&admin, &id, Duration::from_secs(60));
        assert_eq!(st["status"], "done", "{st}");
        let sha = st["sha256"].as_str().unwrap().to_string();
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(files_in(&dumps), [sha.as_str()], "a day-young file is kept");
        let st = svc.get(&admin, &format!("/api/v1/dumps/{id}"));
        assert_eq!(st["file_deleted"], false);
        let (code, report) = svc.call(&admin, "GET", &format!("/api/v1/dumps/{id}/report"), None);
        assert_eq!(code, 200);
        (id, sha, report)
    };

    // Two days later (the sweep's clock ahead by 2 days): the file goes, the report stays.
    let two_days = (2 * 86_400).to_string();
    let mut env = one_day.to_vec();
    env.push(("POOLTRIAGE_RETENTION_CLOCK_OFFSET_SECS", two_days.as_str()));
    let svc = Service::start(dir.path(), &env);
    wait_for(
        "the file deleted by retention",
        Duration::from_secs(30),
        || files_in(&dumps).is_empty().then_some(()),
    );
    let st = svc.get(&admin, &format!("/api/v1/dumps/{id}"));
    assert_eq!(st["file_deleted"], true, "{st}");
    assert_eq!(st["file_note"], "dump file deleted by retention");
    assert!(st["file_deleted_at"].is_string(), "{st}");
    assert_eq!(st["status"], "done");
    let (code, again) = svc.call(&admin, "GET", &format!("/api/v1/dumps/{id}/report"), None);
    assert_eq!(code, 200);
    assert_eq!(again, report, "the report is kept as it was");
    let listed = svc.get(&admin, "/api/v1/dumps");
    assert_eq!(listed["items"][0]["file_deleted"], true);
    assert_eq!(
        svc.get(&admin, "/api/v1/queue")["files_deleted_by_retention"],
        1
    );

    drop(svc);

    // Back on the real clock. Another tenant uploads the same content: the file is stored
    // again and the mark goes (for every upload of that content).
    let svc = Service::start(dir.path(), &one_day);
    let id2 = svc.upload(&other, &triage_variant("retention"), "");
    assert_ne!(id2, id);
    let st = svc.get(&admin, &format!("/api/v1/dumps/{id}"));
    assert_eq!(st["file_deleted"], false, "{st}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(files_in(&dumps), [sha.as_str()], "young again: kept");
    // Deleting one of two uploads of a content keeps the file and the report.
    let (code, _) = svc.call(&other, "DELETE", &format!("/api/v1/dumps/{id2}"), None);
    assert_eq!(code, 204);
    assert_eq!(files_in(&dumps), [sha.as_str()]);
    let (code, _) = svc.call(&admin, "GET", &format!("/api/v1/dumps/{id}/report"), None);
    assert_eq!(code, 200);

    // DELETE on request: the dump, its report and everything about it.
    let (code, _) = svc.call(&admin, "DELETE", &format!("/api/v1/dumps/{id}"), None);
    assert_eq!(code, 204);
    let (code, _) = svc.call(&admin, "GET", &format!("/api/v1/dumps/{id}/report"), None);
    assert_eq!(code, 404);
    let (code, _) = svc.call(&admin, "GET", &format!("/api/v1/dumps/{id}"), None);
    assert_eq!(code, 404);
    assert!(svc.get(&admin, "/api/v1/dumps")["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        svc.get(&admin, "/api/v1/queue")["files_deleted_by_retention"],
        0
    );
    assert!(
        files_in(&dumps).is_empty(),
        "the last upload's file goes with it"
    );
}

/// Without `retention_days` nothing is deleted, however old (the knob alone changes nothing).
#[test]
fn no_retention_keeps_files() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Token::new(dir.path(), "acme", "admin");
    let svc = Service::start(
        dir.path(),
        &[
            ("POOLTRIAGE_RETENTION_INTERVAL_SECS", "1"),
            ("POOLTRIAGE_RETENTION_CLOCK_OFFSET_SECS", "100000000"),
        ],
    );
    let id = svc.upload(&admin, &triage_variant("keep"), "");
    svc.wait_finished(&admin, &id, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(files_in(&dir.path().join("dumps")).len(), 1);
    assert_eq!(
        svc.get(&admin, &format!("/api/v1/dumps/{id}"))["file_deleted"],
        false
    );
}
