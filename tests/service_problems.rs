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

    let (leak, driver) = harness::leak_dump(work.path());
    let (leak, driver) = (std::fs::read(leak).unwrap(), driver.to_lowercase());
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
}
