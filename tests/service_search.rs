//! Search and per-driver statistics of `pooltriage serve` over real HTTP on loopback
//! (docs/api.md, "List and search", "Per-driver statistics").
//!
//! Two sources of reports:
//! - `search_filters_pages_and_tenant_scoped_driver_stats`: the service's documented analyzer
//!   override (`POOLTRIAGE_ANALYZER`) points at a stub that prints a report this test wrote for
//!   that content. The expected figures (counts, sums, maxima, first/last seen) are computed
//!   here from those reports, not read back from the service;
//! - `forged_leaks_show_up_in_driver_stats`: the real analyzer on forged leak-tagged and
//!   leak-untagged dumps; the leaking drivers come from the forge's truth files.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use serde_json::{json, Value};
use service::{enc, triage_variant, Service, Token};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// A stub analyzer: prints `$STUB_REPORTS/<content sha256>.json` (the dump path's file name is
/// its SHA-256), waiting up to 20 s for the test to write it; with `<sha256>.fail` instead it
/// fails like a dump the analyzer cannot read (exit 2, one line on stderr).
fn write_stub(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stub-analyzer.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         for last; do :; done\n\
         f=\"$STUB_REPORTS/$(basename \"$last\").json\"\n\
         i=0\n\
         g=\"$STUB_REPORTS/$(basename \"$last\").fail\"\n\
         while [ ! -f \"$f\" ] && [ ! -f \"$g\" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n\
         if [ -f \"$g\" ]; then echo 'error: planted failure' >&2; exit 2; fi\n\
         exec cat \"$f\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An analysis report in the shape of the `analyze` contract.
fn analysis(verdict: &[&str], drivers: &[(&str, u64, u64)], bugcheck: (&str, &str)) -> Value {
    json!({
        "schema_version": 1, "kind": "analysis",
        "dump": { "format": "triage", "arch": "x64", "build": 19041 },
        "bugcheck": { "code": bugcheck.0, "name": bugcheck.1 },
        "verdict": {
            "kind": if verdict.is_empty() { "no-leak-found" } else { "driver-leak" },
            "sentence": format!("{} is the likely leaker", verdict.first().unwrap_or(&"nobody")),
            "pool": "paged", "drivers": verdict, "bytes": 1,
        },
        "drivers": drivers.iter().map(|(m, paged, nonpaged)| json!({
            "module": m, "paged_bytes": paged, "nonpaged_bytes": nonpaged, "bytes": paged + nonpaged,
        })).collect::<Vec<_>>(),
    })
}

struct Planted {
    tenant: &'static str,
    report: Value,
    id: String,
    created_at: String,
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Expected per-driver figures over `planted` (the dumps one caller sees).
fn expected_stats(planted: &[&Planted]) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let mut m: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for p in planted {
        // An `inspect` report has neither a verdict nor drivers.
        let verdict: BTreeSet<String> = p.report["verdict"]["drivers"]
            .as_array()
            .map_or(&[][..], |a| a.as_slice())
            .iter()
            .map(|d| d.as_str().unwrap().to_lowercase())
            .collect();
        let mut seen = BTreeSet::new();
        for d in p.report["drivers"]
            .as_array()
            .map_or(&[][..], |a| a.as_slice())
        {
            let name = d["module"].as_str().unwrap().to_lowercase();
            let bytes = d["bytes"].as_i64().unwrap();
            seen.insert(name.clone());
            let e = m.entry(name.clone()).or_default();
            e.0 += i64::from(verdict.contains(&name));
            e.1 += 1;
            e.2 += bytes;
            e.3 = e.3.max(bytes);
        }
        for v in verdict.difference(&seen) {
            let e = m.entry(v.clone()).or_default();
            e.0 += 1;
            e.1 += 1;
        }
    }
    m
}

fn stats_of(v: &Value) -> BTreeMap<String, (i64, i64, i64, i64)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["module"].as_str().unwrap().to_string(),
                (
                    d["verdict_dumps"].as_i64().unwrap(),
                    d["dumps"].as_i64().unwrap(),
                    d["total_bytes"].as_i64().unwrap(),
                    d["max_bytes"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn search_filters_pages_and_tenant_scoped_driver_stats() {
    let dir = tempfile::tempdir().unwrap();
    let stub_reports = dir.path().join("stub-reports");
    std::fs::create_dir_all(&stub_reports).unwrap();
    let stub = write_stub(dir.path());
    let support = Token::new(dir.path(), "internal", "support");
    let acme = Token::new(dir.path(), "acme", "customer");
    let globex = Token::new(dir.path(), "globex", "customer");
    let svc = Service::start(
        dir.path(),
        &[
            ("POOLTRIAGE_ANALYZER", stub.to_str().unwrap()),
            ("STUB_REPORTS", stub_reports.to_str().unwrap()),
        ],
    );

    let mut planted = [
        Planted {
            tenant: "acme",
            report: analysis(
                &["Leaky.sys"],
                &[("leaky.sys", 1000, 0), ("other.sys", 10, 5)],
                ("0xe2", "MANUALLY_INITIATED_CRASH"),
            ),
            id: String::new(),
            created_at: String::new(),
        },
        Planted {
            tenant: "acme",
            report: analysis(
                &["untagged.sys"],
                &[("untagged.sys", 0, 500), ("leaky.sys", 20, 0)],
                ("0x19", "BAD_POOL_HEADER"),
            ),
            id: String::new(),
            created_at: String::new(),
        },
        Planted {
            tenant: "globex",
            report: analysis(
                &["leaky.sys"],
                &[("leaky.sys", 3000, 0)],
                ("0x000000E2", "MANUALLY_INITIATED_CRASH"),
            ),
            id: String::new(),
            created_at: String::new(),
        },
        Planted {
            tenant: "globex",
            // A verdict driver that drivers[] does not list, and hostile-looking names.
            report: analysis(
                &["shy.sys"],
                &[("x' OR '1'='1", 7, 0), ("50%_off.sys", 8, 0)],
                ("0xc2", "BAD_POOL_CALLER"),
            ),
            id: String::new(),
            created_at: String::new(),
        },
        Planted {
            tenant: "acme",
            // An old-style `inspect` report: bugcheck, no verdict, no drivers.
            report: json!({
                "schema_version": 1, "dump": {"arch": "x64", "build": 19041},
                "bugcheck": {"code": "0x1000007e", "name": "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"},
                "modules": [], "kdbg": null,
            }),
            id: String::new(),
            created_at: String::new(),
        },
    ];
    for (i, p) in planted.iter_mut().enumerate() {
        // Upload times are whole seconds: one per second gives a known newest-first order.
        std::thread::sleep(Duration::from_millis(1100));
        let token = if p.tenant == "acme" { &acme } else { &globex };
        let (code, v) = svc.call(
            token,
            "POST",
            &format!("/api/v1/dumps?name=planted-{i}.dmp"),
            Some(&triage_variant(&format!("planted-{i}"))),
        );
        assert_eq!(code, 201, "{v}");
        let sha = v["sha256"].as_str().unwrap();
        std::fs::write(
            stub_reports.join(format!("{sha}.json")),
            p.report.to_string(),
        )
        .unwrap();
        p.id = v["id"].as_str().unwrap().to_string();
        let st = svc.wait_finished(token, &p.id, Duration::from_secs(60));
        assert_eq!(st["status"], "done", "{st}");
        p.created_at = st["created_at"].as_str().unwrap().to_string();
    }
    // One more that fails (the stub finds no report): status filter and a dump without summary.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, v) = svc.call(
        &acme,
        "POST",
        "/api/v1/dumps",
        Some(&triage_variant("no report")),
    );
    assert_eq!(code, 201, "{v}");
    std::fs::write(
        stub_reports.join(format!("{}.fail", v["sha256"].as_str().unwrap())),
        "",
    )
    .unwrap();
    let failing = v["id"].as_str().unwrap().to_string();
    let st = svc.wait_finished(&acme, &failing, Duration::from_secs(60));
    assert_eq!(st["status"], "failed", "{st}");
    assert!(st["verdict"].is_null() && st["bugcheck"].is_null(), "{st}");

    // The status object carries the summary.
    let st = svc.get(&acme, &format!("/api/v1/dumps/{}", planted[0].id));
    assert_eq!(st["verdict"]["kind"], "driver-leak");
    assert_eq!(st["verdict"]["drivers"], json!(["leaky.sys"]));
    assert_eq!(st["bugcheck"]["code"], "0xe2");
    assert_eq!(st["report_kind"], "analysis");
    assert_eq!(st["file_deleted"], false);
    let st = svc.get(&acme, &format!("/api/v1/dumps/{}", planted[4].id));
    assert_eq!(st["report_kind"], "inspect");
    assert!(st["verdict"].is_null());
    assert_eq!(
        st["bugcheck"]["name"],
        "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"
    );

    // Newest first; customers see only their tenant; support everything.
    let all: Vec<String> = planted.iter().rev().map(|p| p.id.clone()).collect();
    let mut all_with_failed = vec![failing.clone()];
    all_with_failed.extend(all.iter().cloned());
    assert_eq!(ids(&svc.get(&support, "/api/v1/dumps")), all_with_failed);
    let acme_ids: Vec<String> = all_with_failed
        .iter()
        .filter(|id| *id == &failing || planted.iter().any(|p| &p.id == *id && p.tenant == "acme"))
        .cloned()
        .collect();
    assert_eq!(ids(&svc.get(&acme, "/api/v1/dumps")), acme_ids);
    assert_eq!(
        ids(&svc.get(&support, "/api/v1/dumps?tenant=globex")),
        [planted[3].id.clone(), planted[2].id.clone()]
    );
    let (code, v) = svc.call(&acme, "GET", "/api/v1/dumps?tenant=globex", None);
    assert_eq!((code, v["code"].as_str()), (403, Some("forbidden")), "{v}");

    // Filters.
    let by = |token: &Token, q: &str| ids(&svc.get(token, &format!("/api/v1/dumps?{q}")));
    assert_eq!(
        by(&support, "driver=LEAKY.SYS"),
        [
            planted[2].id.clone(),
            planted[1].id.clone(),
            planted[0].id.clone()
        ]
    );
    assert_eq!(by(&globex, "driver=leaky.sys"), [planted[2].id.clone()]);
    assert_eq!(by(&support, "driver=shy.sys"), [planted[3].id.clone()]);
    assert_eq!(
        by(&support, &format!("driver={}", enc("x' OR '1'='1"))),
        [planted[3].id.clone()]
    );
    assert!(by(&support, &format!("driver={}", enc("' OR 1=1 --"))).is_empty());
    assert_eq!(
        by(&support, "bugcheck=E2"),
        [planted[2].id.clone(), planted[0].id.clone()]
    );
    assert_eq!(
        by(&support, "bugcheck=bad_pool_caller"),
        [planted[3].id.clone()]
    );
    assert_eq!(
        by(&support, "bugcheck=0x7e"),
        Vec::<String>::new(),
        "codes match whole"
    );
    assert_eq!(by(&support, "status=failed"), [failing.as_str()]);
    assert_eq!(by(&support, "status=done&tenant=acme").len(), 3);
    assert_eq!(by(&support, "q=untagged"), [planted[1].id.clone()]);
    assert_eq!(by(&support, "q=planted-3.DMP"), [planted[3].id.clone()]);
    assert_eq!(
        by(&support, &format!("q={}", enc("50%_"))),
        Vec::<String>::new()
    );
    assert_eq!(
        by(&support, &format!("q={}", enc("%"))),
        Vec::<String>::new()
    );
    let (code, v) = svc.call(&support, "GET", "/api/v1/dumps?status=lost", None);
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_status")));
    let (code, v) = svc.call(&support, "GET", "/api/v1/dumps?since=yesterday", None);
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_time")));
    let (code, _) = svc.call(&support, "GET", "/api/v1/dumps?cursor=1.x'y", None);
    assert_eq!(code, 400);
    // Time window: all of them were uploaded within this test, none tomorrow.
    let first = &planted[0].created_at;
    assert_eq!(by(&support, &format!("since={}", enc(first))).len(), 6);
    assert!(by(&support, "since=2100-01-01").is_empty());
    assert!(by(&support, &format!("until={}", enc(first))).is_empty());

    sorting_is_whitelisted_stable_and_paged(&svc, &support, &planted, &failing);

    // Driver-filtered items carry that driver's figures.
    let v = svc.get(&support, "/api/v1/dumps?driver=leaky.sys");
    let figures: Vec<(i64, bool)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["driver"]["bytes"].as_i64().unwrap(),
                i["driver"]["is_verdict"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(figures, [(3000, true), (20, false), (1000, true)]);

    // Keyset pages of 2 over the 6 dumps: every dump once, in order, then next_cursor null.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("/api/v1/dumps?limit=2&cursor={}", enc(c)),
            None => "/api/v1/dumps?limit=2".to_string(),
        };
        let v = svc.get(&support, &q);
        paged.extend(ids(&v));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all_with_failed);
    // A new upload does not shift the pages of a walk in progress.
    let v1 = svc.get(&support, "/api/v1/dumps?limit=3");
    let c = v1["next_cursor"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let (code, v) = svc.call(
        &acme,
        "POST",
        "/api/v1/dumps",
        Some(&triage_variant("newer")),
    );
    assert_eq!(code, 201, "{v}");
    std::fs::write(
        stub_reports.join(format!("{}.json", v["sha256"].as_str().unwrap())),
        planted[4].report.to_string(),
    )
    .unwrap();
    let newer = v["id"].as_str().unwrap().to_string();
    let v2 = svc.get(
        &support,
        &format!("/api/v1/dumps?limit=3&cursor={}", enc(&c)),
    );
    assert_eq!(ids(&v2), all_with_failed[3..6].to_vec());
    assert!(!ids(&v2).contains(&newer));

    // Per-driver statistics, as computed here from the planted reports.
    let all_p: Vec<&Planted> = planted.iter().collect();
    let acme_p: Vec<&Planted> = planted.iter().filter(|p| p.tenant == "acme").collect();
    let globex_p: Vec<&Planted> = planted.iter().filter(|p| p.tenant == "globex").collect();
    assert_eq!(
        stats_of(&svc.get(&support, "/api/v1/drivers")),
        expected_stats(&all_p)
    );
    assert_eq!(
        stats_of(&svc.get(&acme, "/api/v1/drivers")),
        expected_stats(&acme_p)
    );
    assert_eq!(
        stats_of(&svc.get(&globex, "/api/v1/drivers")),
        expected_stats(&globex_p)
    );
    assert_eq!(
        stats_of(&svc.get(&support, "/api/v1/drivers?tenant=globex")),
        expected_stats(&globex_p)
    );
    let (code, _) = svc.call(&acme, "GET", "/api/v1/drivers?tenant=globex", None);
    assert_eq!(code, 403);
    // Ordered by verdict count: leaky.sys (2 verdicts) first for support.
    let top = svc.get(&support, "/api/v1/drivers");
    assert_eq!(top["items"][0]["module"], "leaky.sys");
    assert_eq!(top["items"][0]["first_seen"], json!(planted[0].created_at));
    assert_eq!(top["items"][0]["last_seen"], json!(planted[2].created_at));

    // One driver: its figures and its dumps; 404 across tenants and for unknown/hostile names.
    let d = svc.get(&support, "/api/v1/drivers/LEAKY.SYS");
    assert_eq!(d["stats"]["dumps"], 3);
    assert_eq!(ids(&d).len(), 3);
    let d = svc.get(&acme, "/api/v1/drivers/leaky.sys");
    assert_eq!(
        (
            d["stats"]["dumps"].as_i64(),
            d["stats"]["total_bytes"].as_i64()
        ),
        (Some(2), Some(1020))
    );
    let (code, _) = svc.call(&acme, "GET", "/api/v1/drivers/shy.sys", None);
    assert_eq!(code, 404, "another tenant's driver is not visible");
    let d = svc.get(&globex, &format!("/api/v1/drivers/{}", enc("x' OR '1'='1")));
    assert_eq!(d["stats"]["total_bytes"], 7);
    let (code, _) = svc.call(
        &support,
        "GET",
        &format!("/api/v1/drivers/{}", enc("%")),
        None,
    );
    assert_eq!(code, 404);

    // Queue health: support only.
    let h = svc.get(&support, "/api/v1/queue");
    assert_eq!(h["failed"], 1, "{h}");
    assert!(h["done"].as_i64().unwrap() >= 5, "{h}");
    let (code, _) = svc.call(&acme, "GET", "/api/v1/queue", None);
    assert_eq!(code, 403);

    // Deleting a dump removes it from the statistics too.
    let (code, v) = svc.call(
        &globex,
        "DELETE",
        &format!("/api/v1/dumps/{}", planted[2].id),
        None,
    );
    assert_eq!(code, 204, "{v}");
    let rest: Vec<&Planted> = planted.iter().filter(|p| p.id != planted[2].id).collect();
    assert_eq!(
        stats_of(&svc.get(&support, "/api/v1/drivers")),
        expected_stats(&rest)
    );
}

/// Reports stored before the index existed are indexed at start (and only once).
#[test]
fn reports_are_backfilled_at_start() {
    // The service's own restart: a report stored, then its index rows removed by an older
    // server (simulated by python's sqlite3, an independent writer), then a restart.
    let dir = tempfile::tempdir().unwrap();
    let stub_reports = dir.path().join("stub-reports");
    std::fs::create_dir_all(&stub_reports).unwrap();
    let stub = write_stub(dir.path());
    let support = Token::new(dir.path(), "internal", "support");
    let env = [
        ("POOLTRIAGE_ANALYZER", stub.to_str().unwrap()),
        ("STUB_REPORTS", stub_reports.to_str().unwrap()),
    ];
    let report = analysis(
        &["leaky.sys"],
        &[("leaky.sys", 4096, 0)],
        ("0xe2", "MANUALLY_INITIATED_CRASH"),
    );
    let id = {
        let svc = Service::start(dir.path(), &env);
        let (code, v) = svc.call(
            &support,
            "POST",
            "/api/v1/dumps",
            Some(&triage_variant("backfill")),
        );
        assert_eq!(code, 201);
        std::fs::write(
            stub_reports.join(format!("{}.json", v["sha256"].as_str().unwrap())),
            report.to_string(),
        )
        .unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(
            svc.wait_finished(&support, &id, Duration::from_secs(60))["status"],
            "done"
        );
        id
    };
    let db = dir.path().join("pooltriage.db");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute('PRAGMA foreign_keys = ON')\n\
             c.execute('DELETE FROM report_summaries')\n\
             c.commit()\n\
             print(c.execute('SELECT COUNT(*) FROM report_drivers').fetchone()[0])\n",
        )
        .arg(&db)
        .output()
        .expect("python3 (sqlite3 module) is needed by this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    let svc = Service::start(dir.path(), &env);
    let st = service::wait_for("backfilled summary", Duration::from_secs(30), || {
        let st = svc.get(&support, &format!("/api/v1/dumps/{id}"));
        (!st["verdict"].is_null()).then_some(st)
    });
    assert_eq!(st["verdict"]["drivers"], json!(["leaky.sys"]));
    let top = svc.get(&support, "/api/v1/drivers");
    assert_eq!(stats_of(&top)["leaky.sys"], (1, 1, 4096, 4096));
}

/// The real analyzer on forged dumps: the leaking driver of each scenario (from its truth file)
/// is the verdict driver in the statistics, counted per tenant, with the truth's leaked bytes.
/// The kernel's layouts come from a copy of the corpus ISF folder (`POOLTRIAGE_ISF_DIR`, which
/// the analyzer child inherits from the service).
#[test]
fn forged_leaks_show_up_in_driver_stats() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let support = Token::new(dir.path(), "internal", "support");
    let acme = Token::new(dir.path(), "acme", "customer");
    let globex = Token::new(dir.path(), "globex", "customer");
    let forge = |scenario: &str| {
        let harness::Forged { dump, truth } =
            harness::forge_scenario(work.path(), "win10-19041-x64", scenario, None)
                .expect("the forge makes this scenario");
        let leakers: Vec<(String, i64)> = truth["pool"]["drivers"]
            .as_array()
            .expect("truth pool.drivers")
            .iter()
            .map(|d| {
                (
                    d["module"].as_str().unwrap().to_lowercase(),
                    d["leaked_bytes"].as_i64().expect("truth leaked_bytes"),
                )
            })
            .collect();
        (std::fs::read(&dump).unwrap(), leakers)
    };
    let (tagged, tagged_leakers) = forge("leak-tagged");
    let (untagged, untagged_leakers) = forge("leak-untagged");
    assert_eq!(tagged_leakers.len(), 1, "truth of leak-tagged: one leaker");
    assert_eq!(
        untagged_leakers.len(),
        1,
        "truth of leak-untagged: one leaker"
    );
    let (leaky, leaky_bytes) = tagged_leakers[0].clone();
    let (untag, untag_bytes) = untagged_leakers[0].clone();

    let isf = work.path().join("isf");
    copy_dir(&harness::corpus().join("isf"), &isf);
    let svc = Service::start(dir.path(), &[("POOLTRIAGE_ISF_DIR", isf.to_str().unwrap())]);
    let a1 = svc.upload(&acme, &tagged, "");
    let a2 = svc.upload(&acme, &untagged, "");
    let g1 = svc.upload(&globex, &tagged, "");
    for (t, id) in [(&acme, &a1), (&acme, &a2), (&globex, &g1)] {
        let st = svc.wait_finished(t, id, Duration::from_secs(300));
        assert_eq!(st["status"], "done", "{st}");
        assert_eq!(
            st["report_kind"], "analysis",
            "the worker must store `pooltriage analyze` reports: {st}"
        );
    }
    let verdict_of = |t: &Token, id: &str| -> Vec<String> {
        let st = svc.get(t, &format!("/api/v1/dumps/{id}"));
        st["verdict"]["drivers"]
            .as_array()
            .unwrap_or_else(|| panic!("no verdict: {st}"))
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(verdict_of(&acme, &a1), [leaky.as_str()]);
    assert_eq!(verdict_of(&acme, &a2), [untag.as_str()]);

    let verdicts = |t: &Token| -> BTreeMap<String, (i64, i64)> {
        let v = svc.get(t, "/api/v1/drivers");
        stats_of(&v)
            .into_iter()
            .filter(|(_, s)| s.0 > 0)
            .map(|(m, s)| (m, (s.0, s.1)))
            .collect()
    };
    assert_eq!(
        verdicts(&support),
        BTreeMap::from([(leaky.clone(), (2, 2)), (untag.clone(), (1, 1))])
    );
    assert_eq!(
        verdicts(&acme),
        BTreeMap::from([(leaky.clone(), (1, 1)), (untag.clone(), (1, 1))])
    );
    assert_eq!(verdicts(&globex), BTreeMap::from([(leaky.clone(), (1, 1))]));
    // The driver's outstanding bytes in each report are what the forge leaked.
    let all = stats_of(&svc.get(&support, "/api/v1/drivers"));
    assert_eq!(all[&leaky], (2, 2, 2 * leaky_bytes, leaky_bytes));
    assert_eq!(all[&untag], (1, 1, untag_bytes, untag_bytes));
    // Uploaded within the same second: compared as a set.
    let mut by_driver = ids(&svc.get(&support, &format!("/api/v1/dumps?driver={leaky}")));
    by_driver.sort();
    let mut expected = vec![g1.clone(), a1.clone()];
    expected.sort();
    assert_eq!(by_driver, expected);
}

/// Copies a folder tree (the corpus is read-only and never linked into: see the README).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Every page of `/api/v1/dumps?{q}` by keyset cursor, two at a time.
fn all_pages(svc: &Service, t: &Token, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/dumps?{q}&limit=2&cursor={}", enc(c)),
            None => format!("/api/v1/dumps?{q}&limit=2"),
        };
        let v = svc.get(t, &path);
        out.extend(ids(&v));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// `sort=` / `order=`: whitelisted columns, the id breaking ties in the same direction, keyset
/// pages in that order; the page's headers link to the sorts with `aria-sort`. The expected
/// orders come from what this test uploaded (names, sizes), not from the service.
fn sorting_is_whitelisted_stable_and_paged(
    svc: &Service,
    support: &Token,
    planted: &[Planted],
    failing: &str,
) {
    // (lower-case name or id, size, id) of every dump, from the uploads themselves.
    let mut rows: Vec<(String, usize, String)> = planted
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let size = triage_variant(&format!("planted-{i}")).len();
            (format!("planted-{i}.dmp"), size, p.id.clone())
        })
        .collect();
    rows.push((
        failing.to_lowercase(),
        triage_variant("no report").len(),
        failing.to_string(),
    ));
    rows.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    let by_name: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
    assert_eq!(
        all_pages(svc, support, "sort=name"),
        by_name,
        "names A to Z"
    );
    let mut by_name_desc = by_name.clone();
    by_name_desc.reverse();
    assert_eq!(
        all_pages(svc, support, "sort=name&order=desc"),
        by_name_desc
    );
    // Every upload has the same size: the id alone orders them, in the sort's direction.
    assert!(rows.iter().all(|r| r.1 == rows[0].1));
    let mut by_id: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
    by_id.sort();
    assert_eq!(all_pages(svc, support, "sort=size&order=asc"), by_id);
    by_id.reverse();
    assert_eq!(
        all_pages(svc, support, "sort=size"),
        by_id,
        "size: largest first"
    );
    for bad in ["sort=sha256", "sort=name&order=up", "sort=d.id%20DESC"] {
        let (code, v) = svc.call(support, "GET", &format!("/api/v1/dumps?{bad}"), None);
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("bad_sort")),
            "{bad}: {v}"
        );
    }
    let (code, _) = svc.call(
        support,
        "GET",
        "/api/v1/dumps?sort=size&cursor=big.abc",
        None,
    );
    assert_eq!(code, 400, "a cursor made for another order");

    // The page: sorted header marked, its link reverses; other headers keep the filters.
    let page = |q: &str| {
        ureq::get(&svc.url(&format!("/dumps?{q}")))
            .set("Authorization", &support.0)
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let html = page("status=done&sort=size&order=asc");
    assert!(
        html.contains(
            "aria-sort=\"ascending\"><a href=\"/dumps?status=done&#38;sort=size&#38;order=desc\""
        ),
        "{html}"
    );
    assert!(
        html.contains("href=\"/dumps?status=done&#38;sort=name&#38;order=asc\""),
        "{html}"
    );
    assert_eq!(html.matches("aria-sort=").count(), 1);
    let html = page("sort=sha256");
    assert!(
        html.contains("role=\"alert\">Cannot sort by \u{201c}sha256\u{201d}"),
        "{html}"
    );
}
