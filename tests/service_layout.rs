//! Every page, as each role sees it, in a real browser at a phone's width (390 px) and a
//! desktop's (1400 px): nothing scrolls sideways and every piece of text has WCAG AA contrast,
//! measured from the rendered page by `tests/independent/browser_layout.py` (Debian's headless
//! Chromium over the DevTools protocol). The pages hold what customers really send: a forged
//! leak analysed with the corpus ISFs, the corpus triage dump (nothing to analyse), a dump whose
//! name is one long word, and filters a person mistyped.
//!
//! Also over plain HTTP: an unknown route answers a branded 404 page (JSON under `/api/`), the
//! favicon is served, the verdict is a heading, and the report JSON link shows only for a
//! finished analysis.
//!
//! Needs `chromium` (scripts/test.sh APT_PACKAGES) and the venv's websocket-client: missing, the
//! test FAILS.

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use harness::{python, script};
use serde_json::Value;
use service::{triage_variant, Service, Token};
use std::process::Command;
use std::time::Duration;

/// GET a page with a bearer token: (status, content type, body).
fn page(svc: &Service, token: &Token, path: &str) -> (u16, String, String) {
    let r = match ureq::get(&svc.url(path))
        .set("Authorization", &token.0)
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let ct = r.content_type().to_string();
    (r.status(), ct, r.into_string().unwrap())
}

#[test]
fn every_page_fits_a_phone_and_a_desktop_with_readable_text_for_every_role() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let isf = harness::corpus().join("isf");
    let isf = isf.to_str().unwrap();
    let svc = Service::start(
        dir.path(),
        &[("POOLTRIAGE_WORKERS", "1"), ("POOLTRIAGE_ISF_DIR", isf)],
    );
    let customer = Token::new(dir.path(), "acme", "customer");
    let support = Token::new(dir.path(), "support", "support");
    let admin = Token::new(dir.path(), "ops", "admin");

    let (leak, driver) = harness::leak_dump(work.path());
    let leak = std::fs::read(leak).unwrap();
    let leak_id = svc.upload(&customer, &leak, "?name=leak.dmp&system=web01");
    let long_name = format!("{}.dmp", "customer_server_memory_dump_".repeat(6));
    let triage_id = svc.upload(
        &customer,
        &triage_variant("layout"),
        &format!("?name={long_name}"),
    );
    for id in [&leak_id, &triage_id] {
        let v = svc.wait_finished(&customer, id, Duration::from_secs(240));
        assert_eq!(v["status"], "done", "{v}");
    }

    // Plain HTTP first: what the browser check cannot see.
    let (code, ct, html) = page(&svc, &customer, &format!("/dumps/{leak_id}"));
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/html"));
    assert!(
        html.contains("<h2 id=\"verdict\" class=\"sentence\">") && html.contains(&driver),
        "the verdict is a heading naming {driver}"
    );
    assert!(html.contains("report JSON") && html.contains("class=\"skip\""));
    numbers_are_written_for_people(&html);
    assert!(html.contains("aria-label=\"report sections\""));
    let (_, _, none) = page(&svc, &customer, &format!("/dumps/{leak_id}?tag=zzzz"));
    assert!(none.contains("0 of ") && none.contains("contain “zzzz”"));
    let (_, _, module) = page(
        &svc,
        &customer,
        &format!("/dumps/{leak_id}/drivers/{driver}"),
    );
    assert!(
        module.contains("id=\"seen-in\"") && module.contains("1 dump</a>"),
        "the module page says how many dumps it was seen in"
    );
    numbers_are_written_for_people(&module);
    let (_, _, triage) = page(&svc, &customer, &format!("/dumps/{triage_id}"));
    assert!(
        triage.contains("id=\"capture-help\"") && !triage.contains("id=\"tags\""),
        "a dump with nothing to analyse explains what to send, with no empty tables"
    );
    assert!(!triage.contains("Incomplete: 0 pool pages"));
    let (code, ct, html) = page(&svc, &customer, "/no/such/page");
    assert_eq!((code, ct.as_str()), (404, "text/html"));
    assert!(html.contains("Page not found"));
    let (code, _, body) = page(&svc, &customer, "/api/v1/no/such/route");
    assert_eq!(code, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "no_such_route"
    );
    let (code, ct, _) = page(&svc, &customer, "/favicon.ico");
    assert_eq!((code, ct.as_str()), (200, "image/svg+xml"));
    let (_, _, list) = page(&svc, &customer, "/dumps?status=bogus&from=notadate");
    assert!(list.contains("Unknown status") && list.contains("is not a date"));

    // The browser: every page, every role, two widths.
    let problem_page = svc.get(&customer, "/api/v1/problems")["problems"][0]["page_url"]
        .as_str()
        .expect("the leak is a problem")
        .to_string();
    let token_of = |t: &Token| t.0.trim_start_matches("Bearer ").to_string();
    let pages = [
        "/".to_string(),
        "/dumps".to_string(),
        "/dumps?status=bogus&from=notadate".to_string(),
        format!("/dumps/{leak_id}"),
        format!("/dumps/{leak_id}/drivers/{driver}"),
        format!("/dumps/{triage_id}"),
        "/symbols".to_string(),
        "/problems".to_string(),
        // Facets with one chosen, a filter that cannot apply, a sorted list, a search that
        // leads with problems, an unknown sort.
        format!("/problems?driver={driver}"),
        "/problems?status=bogus&build=soon".to_string(),
        "/dumps?sort=size&order=asc".to_string(),
        format!("/dumps?driver={}", &driver[..driver.len().min(4)]),
        "/dumps?sort=bogus".to_string(),
        "/systems".to_string(),
        "/systems/web01".to_string(),
        problem_page,
        "/no/such/page".to_string(),
    ];
    let mut cmd = Command::new(python());
    cmd.arg(script("browser_layout.py"))
        .args(["--base", &svc.url("")])
        .args(["--login", &format!("customer={}", token_of(&customer))])
        .args(["--login", &format!("support={}", token_of(&support))])
        .args(["--login", &format!("admin={}", token_of(&admin))])
        .args(["--support-path", "/dashboard"])
        .args(["--support-path", &format!("/dashboard?driver={driver}")]);
    for p in &pages {
        cmd.args(["--path", p]);
    }
    let out = cmd.output().expect("the venv python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "browser_layout.py printed no result ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        result["checked"].as_u64().unwrap_or(0) > 500,
        "text elements checked: {result}"
    );
    assert_eq!(
        result["problems"],
        Value::Array(vec![]),
        "layout or contrast problems"
    );
    assert!(out.status.success());
}

/// The page without the analyzer's own prose (the verdict sentence, its reasons, the
/// report's warnings): report text the page quotes as the analyzer wrote it (docs/json.md),
/// not numbers the page writes.
fn without_report_prose(html: &str) -> String {
    const PROSE: [(&str, &str); 3] = [
        ("class=\"sentence\">", "</"),
        ("class=\"reasons\">", "</ul>"),
        ("<section id=\"warnings\">", "</section>"),
    ];
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    loop {
        let next = PROSE
            .iter()
            .filter_map(|(start, end)| rest.find(start).map(|i| (i, start.len(), *end)))
            .min();
        let Some((i, len, end)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i + len]);
        let after = &rest[i + len..];
        rest = &after[after.find(end).unwrap_or(after.len())..];
    }
}

/// Numbers as every page must write them: a percentage says what it is a share of
/// (`12.3 % of paged pool maximum`), a byte count is exact with thousands separators, then in
/// binary units with two decimals (`1,234,567 bytes (1.18 MiB)`); the unit part is recomputed
/// here from the exact count.
fn numbers_are_written_for_people(html: &str) {
    let html = &without_report_prose(html);
    for (i, _) in html.match_indices('%') {
        let after = &html[i + 1..];
        // Percent-encoding in links (`%2F`) is no percentage.
        if after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit) {
            continue;
        }
        let before = html[..i].trim_end_matches(' ');
        if !before.ends_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let context = &html[i.saturating_sub(20)..(i + 30).min(html.len())];
        assert!(html[..i].ends_with(' '), "a space before %: {context}");
        assert!(
            after.starts_with(" of "),
            "a percentage names its base: {context}"
        );
    }
    let mut sizes = 0;
    for (i, m) in html.match_indices(" bytes (") {
        let digits: String = html[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .collect::<Vec<char>>()
            .into_iter()
            .rev()
            .collect();
        let groups: Vec<&str> = digits.split(',').collect();
        assert!(
            groups.len() > 1
                && (1..=3).contains(&groups[0].len())
                && groups[1..].iter().all(|g| g.len() == 3),
            "thousands separators: {digits:?}"
        );
        let exact: f64 = digits.replace(',', "").parse().unwrap();
        let rest = &html[i + m.len()..];
        let unit = &rest[..rest.find(')').expect("closing parenthesis")];
        let (value, suffix) = unit.split_once(' ').expect("value and unit");
        let power = ["KiB", "MiB", "GiB", "TiB"]
            .iter()
            .position(|u| *u == suffix)
            .unwrap_or_else(|| panic!("a binary unit: {unit}"));
        let decimals = value.split_once('.').map(|(_, d)| d.len());
        assert_eq!(decimals, Some(2), "two decimals: {unit}");
        let expected = exact / 1024f64.powi(power as i32 + 1);
        assert!(
            (value.parse::<f64>().unwrap() - expected).abs() <= 0.005 + 1e-9,
            "{digits} bytes is {expected:.4} {suffix}, not {value}"
        );
        sizes += 1;
    }
    assert!(sizes > 0, "the page shows sizes");
}
