//! `pooltriage trend` end to end on forged series (`pooltriage forge --series`): the growth it
//! reports for a planted leak is the series truth's rate within 1%, from dumps, from poolmon and
//! from typeperf alike; a flat machine gives "no growth"; inputs that are not one machine or
//! not a readable log are refused with a clear message.
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, pooltriage_bin, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small machine keeps each dump a few tens of MB and its analysis a few seconds.
const SIZE: &str = "268435456";
const PROFILE: &str = "win10-19041-x64";
const DUMPS: u32 = 4;

fn forge_series(dir: &Path, scenario: &str) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env("POOLTRIAGE_CORPUS", corpus())
        .args(["forge", "--profile", PROFILE, "--format", "kernel-bitmap"])
        .args(["--size", SIZE, "--scenario", scenario])
        .args(["--series", &DUMPS.to_string(), "--interval", "1h", "--out"])
        .arg(dir);
    run(&mut cmd, "pooltriage forge --series");
    let path = dir.join("series.truth.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dumps(dir: &Path) -> Vec<PathBuf> {
    (0..DUMPS)
        .map(|i| dir.join(format!("series-{i:02}.dmp")))
        .collect()
}

/// `pooltriage trend` with the kernel's symbols from the corpus ISFs.
fn trend(inputs: &[PathBuf], extra: &[&str]) -> std::process::Output {
    Command::new(pooltriage_bin())
        .arg("trend")
        .args(inputs)
        .args(["--no-symbols", "--isf-dir"])
        .arg(corpus().join("isf"))
        .args(extra)
        .output()
        .expect("pooltriage trend runs")
}

fn trend_json(inputs: &[PathBuf], extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = trend(inputs, &args);
    assert!(
        out.status.success(),
        "trend failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("trend --json prints JSON")
}

/// `pooltriage analyze DUMP --json`, with `--trend` inputs when given.
fn analyze_verdict(dump: &Path, trend_inputs: &[PathBuf]) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.arg("analyze")
        .arg(dump)
        .args(["--json", "--no-symbols", "--isf-dir"])
        .arg(corpus().join("isf"));
    if !trend_inputs.is_empty() {
        cmd.arg("--trend").args(trend_inputs);
        cmd.args(["--utc-offset", "+09:00"]);
    }
    let out = run(&mut cmd, "pooltriage analyze");
    let r: Value = serde_json::from_slice(&out).expect("analyze --json prints JSON");
    r["verdict"].clone()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn within_1pct(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= want.abs() * 0.01,
        "{what}: {got} is not within 1% of the truth's {want}"
    );
}

fn tag<'a>(r: &'a Value, name: &str, pool: &str) -> &'a Value {
    r["tags"]
        .as_array()
        .expect("tags[]")
        .iter()
        .find(|t| t["tag"] == name && t["pool"] == pool)
        .unwrap_or_else(|| panic!("no tag {name} in {pool} pool: {}", r["tags"]))
}

fn pool<'a>(r: &'a Value, name: &str, source: &str) -> &'a Value {
    r["pools"]
        .as_array()
        .expect("pools[]")
        .iter()
        .find(|p| p["pool"] == name && p["source"].as_str().is_some_and(|s| s.ends_with(source)))
        .unwrap_or_else(|| panic!("no {name} pool from {source}: {}", r["pools"]))
}

/// The least-squares slope per hour of the truth's own per-dump figures (an hour apart).
fn truth_slope(truth: &Value, field: &str) -> f64 {
    let ys: Vec<f64> = truth["dumps"]
        .as_array()
        .expect("dumps[]")
        .iter()
        .map(|d| f(&d[field]))
        .collect();
    let n = ys.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        sxy += (i as f64 - mx) * (y - my);
        sxx += (i as f64 - mx) * (i as f64 - mx);
    }
    sxy / sxx
}

#[test]
fn growing_leak_rates_match_the_series_truth() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("leak");
    let truth = forge_series(&dir, "growing-leak");
    let leak = &truth["leak"];
    assert_eq!(leak["tag"], "Leak");

    // The dumps and the counter log, with SVG charts.
    let mut inputs = dumps(&dir);
    inputs.push(dir.join("typeperf.csv"));
    let svg = tmp.path().join("svg");
    let r = trend_json(&inputs, &["--svg", svg.to_str().expect("utf-8 path")]);
    assert_eq!(r["kind"], "trend");
    let v = &r["verdict"];
    assert_eq!(v["kind"], "driver-growth", "verdict: {v}");
    assert_eq!(v["tag"], "Leak");
    assert_eq!(v["drivers"], serde_json::json!(["leaky.sys"]));
    within_1pct(
        "verdict bytes/h",
        f(&v["bytes_per_hour"]),
        f(&leak["bytes_per_hour"]),
    );
    let t = tag(&r, "Leak", "paged");
    assert_eq!(t["judgement"], "steady-growth");
    within_1pct(
        "Leak bytes/h (dumps)",
        f(&t["bytes"]["slope_per_hour"]),
        f(&leak["bytes_per_hour"]),
    );
    within_1pct(
        "Leak outstanding/h (dumps)",
        f(&t["outstanding"]["slope_per_hour"]),
        f(&leak["outstanding_per_hour"]),
    );
    within_1pct(
        "Leak allocs/h (dumps)",
        f(&t["allocs_per_hour"]),
        f(&leak["allocs_per_hour"]),
    );
    assert!(f(&t["bytes"]["r2"]) > 0.99, "fit quality: {}", t["bytes"]);
    assert_eq!(
        t["deltas"].as_array().map(Vec::len),
        Some(DUMPS as usize - 1)
    );
    assert!(t["hours_to_max"].as_f64().is_some_and(|h| h > 0.0), "{t}");
    // The churning tag wanders but does not grow.
    assert_ne!(tag(&r, "Chrn", "paged")["judgement"], "steady-growth");

    let paged_rate = truth_slope(&truth, "paged_in_use");
    assert!(paged_rate > 0.0);
    for source in ["dumps", "counters"] {
        let p = pool(&r, "paged", source);
        within_1pct(
            &format!("paged pool ({source})"),
            f(&p["bytes"]["slope_per_hour"]),
            paged_rate,
        );
        assert_eq!(p["judgement"], "steady-growth");
    }
    let procs = r["processes"]
        .as_array()
        .expect("processes[]")
        .iter()
        .find(|a| a["pool"] == "paged")
        .expect("paged pool accounting");
    assert_eq!(procs["conclusion"], "no-process", "{procs}");

    // One machine, named by its dumps; 64-bit values as hex strings.
    let m = &r["machine"];
    assert_eq!(m["host"], "PTFORGE");
    assert!(
        m["kernel_base"]
            .as_str()
            .is_some_and(|s| s.starts_with("0x")),
        "{m}"
    );
    assert_eq!(m["boot_time"], truth["boot_time_utc"]);

    for name in ["pool-paged.svg", "pool-nonpaged.svg", "tags.svg"] {
        let text = std::fs::read_to_string(svg.join(name)).expect("chart written");
        assert!(
            text.contains("<svg") && text.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(text.contains("<polyline"), "{name} draws no line");
    }
    assert!(std::fs::read_to_string(svg.join("tags.svg"))
        .expect("tags.svg")
        .contains("Leak"));

    // poolmon alone: the same rate from its snapshots.
    let r = trend_json(&[dir.join("poolmon.log")], &["--utc-offset", "+09:00"]);
    let t = tag(&r, "Leak", "paged");
    within_1pct(
        "Leak bytes/h (poolmon)",
        f(&t["bytes"]["slope_per_hour"]),
        f(&leak["bytes_per_hour"]),
    );
    within_1pct(
        "paged pool (poolmon)",
        f(&pool(&r, "paged", "poolmon")["bytes"]["slope_per_hour"]),
        paged_rate,
    );
    assert_eq!(r["first"], truth["dumps"][0]["system_time_utc"]);

    // Text, on a mix: two dumps, the poolmon log and the counter log.
    let mixed = vec![
        dumps(&dir)[0].clone(),
        dumps(&dir)[3].clone(),
        dir.join("poolmon.log"),
        dir.join("typeperf.csv"),
    ];
    let out = trend(&mixed, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("leaky.sys leaks paged pool"), "{text}");
    assert!(
        text.contains("no process accounts for it, a driver"),
        "{text}"
    );
}

#[test]
fn flat_machine_shows_no_growth() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("flat");
    let truth = forge_series(&dir, "steady-state");
    assert!(truth["leak"].is_null());
    let mut inputs = dumps(&dir);
    inputs.push(dir.join("poolmon.log"));
    inputs.push(dir.join("typeperf.csv"));
    let r = trend_json(&inputs, &[]);
    assert_eq!(r["verdict"]["kind"], "no-growth", "{}", r["verdict"]);
    for t in r["tags"].as_array().expect("tags[]") {
        assert_ne!(t["judgement"], "steady-growth", "{t}");
    }
    for p in r["pools"].as_array().expect("pools[]") {
        assert_ne!(p["judgement"], "steady-growth", "{p}");
    }
    let leak = tag(&r, "Leak", "paged");
    assert!(f(&leak["bytes"]["slope_per_hour"]).abs() < 1.0, "{leak}");

    // The flat machine's largest consumer stays a consumer, and the verdict says it does not grow.
    let v = analyze_verdict(
        &dumps(&dir)[DUMPS as usize - 1],
        &[dir.join("poolmon.log"), dir.join("typeperf.csv")],
    );
    assert_eq!(v["kind"], "largest-consumer", "{v}");
    assert!(
        v["reasons"].as_array().expect("reasons").iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.contains("'Leak' does not grow steadily"))),
        "{v}"
    );
}

#[test]
fn bad_inputs_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // A Performance Monitor binary log: convert it with relog.
    let blg = tmp.path().join("pool.blg");
    std::fs::write(&blg, b"\x00\x01\x02\x03binary counter log\xff\xfe\x00\x00").expect("write");
    let out = trend(&[blg], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("relog") && err.contains("-f csv"), "{err}");

    // A poolmon log with a bad row: named by its line.
    let log = tmp.path().join("poolmon.log");
    std::fs::write(
        &log,
        "Wed 03/10/2021 22:51:09.00\r\n Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc\r\n\r\n Leak Paged         41         3       38    77824   2048\r\n Chrn Paged       many      5000      281   107904    384\r\n",
    )
    .expect("write");
    let out = trend(std::slice::from_ref(&log), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 5"), "{err}");

    // Dumps of two machines (two Windows builds): refused, both named.
    let mut two = Vec::new();
    for profile in ["win10-17763-x64", PROFILE] {
        let dump = tmp.path().join(format!("{profile}.dmp"));
        let mut cmd = Command::new(pooltriage_bin());
        cmd.env("POOLTRIAGE_CORPUS", corpus())
            .args(["forge", "--profile", profile, "--format", "kernel-bitmap"])
            .args(["--size", SIZE, "--out"])
            .arg(&dump);
        run(&mut cmd, "pooltriage forge");
        two.push(dump);
    }
    let out = trend(&two, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not the same machine") && err.contains("win10-17763-x64.dmp"),
        "{err}"
    );
}
