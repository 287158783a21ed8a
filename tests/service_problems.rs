//! Problems over the real service: five uploads of one leak (one forged dump, each copy with a
//! few bytes appended so each is its own content and its own analysis) from two customers make
//! one problem; each customer sees its own dumps and counts, support sees both; the corpus
//! triage dump makes a crash problem that only its customer sees. The workflow: customers may
//! not change a problem, support may (audited), and comments stay with support.
//!
//! The expected grouping comes from the forge's truth (the leaking driver) and the test's own
//! upload counts, not from the service's output.

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use serde_json::{json, Value};
use service::{triage_variant, Service, Token};
use std::time::Duration;

fn problems(svc: &Service, t: &Token) -> Vec<Value> {
    svc.get(t, "/api/v1/problems")["problems"]
        .as_array()
        .unwrap()
        .clone()
}

fn send(svc: &Service, t: &Token, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = body.to_string();
    let r = ureq::request(method, &svc.url(path))
        .set("Authorization", &t.0)
        .set("Content-Type", "application/json")
        .send_string(&bytes);
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let code = r.status();
    let text = r.into_string().unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn one_leak_from_two_customers_is_one_problem_with_a_workflow() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let isf = harness::corpus().join("isf");
    let svc = Service::start(
        dir.path(),
        &[
            ("POOLTRIAGE_WORKERS", "2"),
            ("POOLTRIAGE_ISF_DIR", isf.to_str().unwrap()),
        ],
    );
    let acme = Token::new(dir.path(), "acme", "customer");
    let globex = Token::new(dir.path(), "globex", "customer");
    let support = Token::new(dir.path(), "support", "support");

    let (leak, driver, tags) = harness::leak_dump_with_tags(work.path());
    let (leak, driver) = (std::fs::read(leak).unwrap(), driver.to_lowercase());
    assert!(!tags.is_empty(), "the forge's leak is tagged");
    let mut ids = Vec::new();
    for (i, who) in [&acme, &acme, &acme, &globex, &globex].iter().enumerate() {
        let mut copy = leak.clone();
        copy.extend_from_slice(format!("copy {i}").as_bytes());
        ids.push(svc.upload(who, &copy, &format!("?name=leak{i}.dmp")));
    }
    let crash = svc.upload(&acme, &triage_variant("problems"), "?name=bsod.dmp");
    for (i, id) in ids.iter().enumerate() {
        let who = if i < 3 { &acme } else { &globex };
        let v = svc.wait_finished(who, id, Duration::from_secs(300));
        assert_eq!(v["status"], "done", "{v}");
    }
    assert_eq!(
        svc.wait_finished(&acme, &crash, Duration::from_secs(120))["status"],
        "done"
    );

    // Each customer: the leak with its own counts; acme also the crash.
    let pool_of = |list: &[Value]| -> Value {
        let pools: Vec<&Value> = list.iter().filter(|p| p["kind"] == "pool").collect();
        assert_eq!(pools.len(), 1, "one leak, one problem: {list:?}");
        pools[0].clone()
    };
    let a = problems(&svc, &acme);
    let g = problems(&svc, &globex);
    let s = problems(&svc, &support);
    let (pa, pg, ps) = (pool_of(&a), pool_of(&g), pool_of(&s));
    assert_eq!(pa["id"], pg["id"]);
    assert_eq!(pa["id"], ps["id"]);
    assert!(pa["title"].as_str().unwrap().contains(&driver), "{pa}");
    assert_eq!(
        (pa["dumps"].as_i64(), pa["customers"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (pg["dumps"].as_i64(), pg["customers"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (ps["dumps"].as_i64(), ps["customers"].as_i64()),
        (Some(5), Some(2))
    );
    let crash_problem = a
        .iter()
        .find(|p| p["kind"] == "crash")
        .unwrap_or_else(|| panic!("the triage dump's crash is a problem: {a:?}"));
    assert!(
        !g.iter().any(|p| p["id"] == crash_problem["id"]),
        "another customer's crash is not listed"
    );
    let crash_id = crash_problem["id"].as_str().unwrap();
    let (code, _) = svc.call(
        &globex,
        "GET",
        &format!("/api/v1/problems/{crash_id}"),
        None,
    );
    assert_eq!(code, 404);

    facets_count_within_each_viewers_rights(
        &svc,
        (&acme, &globex, &support),
        (&pa, crash_problem),
        &driver,
        &tags,
    );

    // One problem's detail: only the caller's dumps; support's extras absent for customers.
    let id = pa["id"].as_str().unwrap().to_string();
    let detail = svc.get(&globex, &format!("/api/v1/problems/{id}"));
    let dumps = detail["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 2);
    assert!(dumps.iter().all(|d| d["tenant"] == "globex"));
    assert_eq!(detail["builds"], json!([19041]));
    assert!(detail.get("comments").is_none() && detail.get("events").is_none());
    assert!(detail["ticket_summary"]
        .as_str()
        .unwrap()
        .contains("Seen in 2 dump(s)"));

    // The workflow: customers may not; support may, and every change is audited.
    let path = format!("/api/v1/problems/{id}");
    let change = json!({ "status": "investigating", "ticket_url": "https://tickets.example/T-42" });
    assert_eq!(send(&svc, &acme, "PATCH", &path, change.clone()).0, 403);
    let bad = json!({ "status": "done" });
    assert_eq!(send(&svc, &support, "PATCH", &path, bad).0, 400);
    let (code, v) = send(&svc, &support, "PATCH", &path, change);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "investigating");
    let note = json!({ "body": "reproduced with driver 2.4.0" });
    let comments = format!("{path}/comments");
    assert_eq!(send(&svc, &globex, "POST", &comments, note.clone()).0, 403);
    assert_eq!(send(&svc, &support, "POST", &comments, note).0, 201);
    let seen = svc.get(&support, &path);
    let actions: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["status", "ticket_url", "comment"], "{seen}");
    assert_eq!(seen["comments"][0]["text"], "reproduced with driver 2.4.0");
    // The customer sees the status, not the comments.
    let mine = svc.get(&acme, &path);
    assert_eq!(mine["status"], "investigating");
    assert!(mine.get("comments").is_none());
    let (code, v) = svc.call(&acme, "GET", "/api/v1/problems?status=investigating", None);
    assert_eq!(
        (code, v["problems"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (code, _) = svc.call(&acme, "GET", "/api/v1/problems?status=bogus", None);
    assert_eq!(code, 400);

    // CSV for support: a header and one line per problem.
    let csv = ureq::get(&svc.url("/api/v1/problems.csv"))
        .set("Authorization", &support.0)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,kind,title,dumps,customers"));
    assert_eq!(lines.len(), 1 + s.len());

    // The pages follow the same rules.
    let page = |t: &Token, p: &str| match ureq::get(&svc.url(p)).set("Authorization", &t.0).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("{p}: {e}"),
    };
    let (code, html) = page(&globex, &format!("/problems/{id}"));
    assert_eq!(code, 200);
    assert!(html.contains(&driver) && !html.contains("id=\"workflow\""));
    let (code, html) = page(&support, &format!("/problems/{id}"));
    assert_eq!(code, 200);
    assert!(html.contains("id=\"workflow\"") && html.contains("reproduced with driver 2.4.0"));
    assert_eq!(page(&globex, &format!("/problems/{crash_id}")).0, 404);
    // The support dashboard leads with the open problems.
    let (code, dash) = page(&support, "/dashboard");
    assert_eq!(code, 200);
    assert!(dash.contains("id=\"open-problems\"") && dash.contains(&format!("/problems/{id}")));
    let (_, list) = page(&acme, "/problems");
    assert!(
        list.contains(&format!("/problems/{id}"))
            && list.contains(&format!("/problems/{crash_id}"))
    );
    // Facets on the page: each value a link that filters (keeping the other filters); the
    // active one removes its filter.
    let (code, list) = page(&acme, &format!("/problems?driver={driver}"));
    assert_eq!(code, 200);
    assert!(
        list.contains("<a href=\"/problems\" aria-current=\"true\""),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "href=\"/problems?status=new&#38;driver={driver}\""
        )),
        "{list}"
    );
    assert!(list.contains(&format!("/problems/{id}\"")));
    assert!(!list.contains(&format!("/problems/{crash_id}\"")));
    let (code, list) = page(&acme, "/problems?build=soon");
    assert_eq!(code, 200);
    assert!(
        list.contains("role=\"alert\"") && list.contains("soon"),
        "{list}"
    );
    // A search leads with the problems it matches; the dashboard follows its driver filter.
    let (code, dumps) = page(
        &globex,
        &format!("/dumps?driver={}", &driver[..driver.len() - 2]),
    );
    assert_eq!(code, 200);
    assert!(
        dumps.contains("id=\"matching-problems\"") && dumps.contains(&format!("/problems/{id}")),
        "{dumps}"
    );
    let (_, dumps) = page(&globex, "/dumps?driver=nosuchdriver");
    assert!(!dumps.contains("id=\"matching-problems\""));
    let (_, dash) = page(&support, &format!("/dashboard?driver={driver}"));
    let lead = dash.find("id=\"open-problems\"").expect("open problems");
    assert!(
        lead < dash.find("id=\"queue-health\"").unwrap(),
        "the dashboard leads with problems"
    );
    assert!(
        !dash.contains(&format!("/problems/{crash_id}\"")),
        "the crash names no {driver}"
    );
}

fn values(facet: &Value) -> Vec<(String, i64)> {
    facet
        .as_array()
        .unwrap_or_else(|| panic!("a facet is a list: {facet}"))
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_string(),
                v["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn count_of(facet: &Value, value: &str) -> Option<i64> {
    values(facet)
        .into_iter()
        .find(|(v, _)| v == value)
        .map(|(_, n)| n)
}

/// Facets: counts of problems per value, from the dumps each viewer may see; the filters.
fn facets_count_within_each_viewers_rights(
    svc: &Service,
    (acme, globex, support): (&Token, &Token, &Token),
    (leak, crash): (&Value, &Value),
    driver: &str,
    tags: &[String],
) {
    let crash_dump = svc.get(acme, "/api/v1/dumps?limit=100")["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["original_name"] == "bsod.dmp")
        .cloned();
    let list = |t: &Token, q: &str| svc.get(t, &format!("/api/v1/problems{q}"));
    let a = list(acme, "");
    let g = list(globex, "");
    // The leak: one problem for each viewer; the crash only in acme's and support's counts.
    assert_eq!(count_of(&a["facets"]["driver"], driver), Some(1), "{a}");
    assert_eq!(count_of(&g["facets"]["driver"], driver), Some(1), "{g}");
    for t in tags {
        assert_eq!(count_of(&g["facets"]["tag"], t), Some(1), "tag {t}: {g}");
    }
    // The leak was forged on 19041; the crash counts too when its dump is of that build.
    let crash_build = crash_dump.as_ref().and_then(|d| d["build"].as_i64());
    let on_19041 = 1 + i64::from(crash_build == Some(19041));
    assert_eq!(
        count_of(&a["facets"]["build"], "19041"),
        Some(on_19041),
        "{a}"
    );
    assert_eq!(count_of(&g["facets"]["build"], "19041"), Some(1), "{g}");
    assert_eq!(count_of(&a["facets"]["status"], "new"), Some(2), "{a}");
    assert_eq!(count_of(&g["facets"]["status"], "new"), Some(1), "{g}");
    // The crash's bug check: counted for acme, absent for globex (not its dump).
    let crash_code = crash_dump
        .as_ref()
        .and_then(|d| d["bugcheck"]["code"].as_str().map(str::to_string))
        .expect("the triage dump has a bug check");
    let leak_codes: Vec<String> = values(&g["facets"]["bugcheck"])
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    if !leak_codes.contains(&crash_code) {
        assert_eq!(
            count_of(&a["facets"]["bugcheck"], &crash_code),
            Some(1),
            "{a}"
        );
        assert_eq!(count_of(&g["facets"]["bugcheck"], &crash_code), None, "{g}");
        assert_eq!(
            list(globex, &format!("?bugcheck={crash_code}"))["problems"],
            json!([])
        );
    }
    // Filters: each keeps the problems that have the value.
    let ids = |v: &Value| -> Vec<String> {
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&list(acme, &format!("?driver={}", driver.to_uppercase()))),
        [leak["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&list(acme, &format!("?tag={}", service::enc(&tags[0])))),
        [leak["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&list(acme, &format!("?bugcheck={crash_code}"))),
        [crash["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&list(acme, "?build=19041&status=new")).len() as i64,
        on_19041
    );
    assert!(ids(&list(acme, "?build=7601")).is_empty());
    // A crash counts under the driver it happened in (the corpus dump crashed in amdppm.sys),
    // for the customer whose dump it is.
    assert_eq!(
        count_of(&a["facets"]["driver"], "amdppm.sys"),
        Some(1),
        "{a}"
    );
    assert_eq!(count_of(&g["facets"]["driver"], "amdppm.sys"), None, "{g}");
    assert_eq!(
        ids(&list(acme, "?driver=amdppm.sys")),
        [crash["id"].as_str().unwrap()]
    );
    // The driver facet still counts every driver when a driver is chosen (its own filter is
    // left out), while the status facet counts within it.
    let by_driver = list(support, &format!("?driver={driver}"));
    assert_eq!(
        count_of(&by_driver["facets"]["status"], "new"),
        Some(1),
        "{by_driver}"
    );
    assert_eq!(count_of(&by_driver["facets"]["driver"], driver), Some(1));
    // Invalid filters are refused with what is accepted.
    let (code, v) = svc.call(acme, "GET", "/api/v1/problems?build=soon", None);
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_filter")), "{v}");
    let csv = ureq::get(&svc.url(&format!("/api/v1/problems.csv?driver={driver}")))
        .set("Authorization", &support.0)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(csv.lines().count(), 2, "the CSV follows the filters: {csv}");
}
