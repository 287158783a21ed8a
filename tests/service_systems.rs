//! Systems in the service, end to end over loopback (docs/api.md, "Systems"; docs/trend.md,
//! "The service"): a forged series of one machine (`pooltriage forge --series 3`: three dumps
//! an hour apart, its poolmon and typeperf logs, and `series.truth.json` with the planted leak)
//! is uploaded by one customer into system SQL01: the dumps with `system=` (one by each upload
//! route: the API, the resumable upload, the portal's form), the logs through
//! `POST /api/v1/systems/SQL01/logs`. Checked:
//! - the system's JSON: the dumps in the truth's time order, each with its verdict; both logs
//!   with their kinds; the trend's verdict names the truth's leaking driver and tag, and the
//!   tag's rate (bytes/h) is the truth's within 1%;
//! - another customer sees no system: the list is empty, the system, its page and its log
//!   delete answer 404 (not 403), also when naming the tenant; support sees it with `?tenant=`;
//! - bad system names are refused with 400 `bad_system` on every upload route; a file that is
//!   no log is 422 `not_a_log`, a poolmon log with a bad row 422 `bad_log` naming the line;
//!   the same log again is the same log (`duplicate`), and deleting it removes the file;
//! - the system page draws its charts (inline SVG) and the dump page links the system;
//!   rendered by Debian's headless Chromium in a 390 px frame, the page does not scroll
//!   sideways.
//!
//! Build the binary first (`cargo build -p pooltriage`); needs `chromium` (scripts/test.sh).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use harness::{corpus, pooltriage_bin, run};
use serde_json::Value;
use service::{Service, Token};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SERIES: usize = 3;

/// A forged series of one machine: three dumps an hour apart (256 MiB machine, ~40 MB each),
/// poolmon.log, typeperf.csv and series.truth.json.
fn forge_series(dir: &Path) -> Value {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env("POOLTRIAGE_CORPUS", corpus())
        .args([
            "forge",
            "--profile",
            "win10-19041-x64",
            "--format",
            "kernel-bitmap",
        ])
        .args(["--size", "268435456", "--scenario", "growing-leak"])
        .args(["--series", &SERIES.to_string(), "--interval", "1h", "--out"])
        .arg(dir);
    run(&mut cmd, "pooltriage forge --series");
    serde_json::from_slice(&std::fs::read(dir.join("series.truth.json")).expect("truth"))
        .expect("truth JSON")
}

/// A writable copy of the corpus ISF folder for the analyzer child (never a link into
/// ../shared): without the kernel's layouts the dumps' tag tables cannot be read.
fn copy_isf(to: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), &dest).unwrap();
            }
        }
    }
    let dir = to.join("isf");
    copy(&corpus().join("isf"), &dir);
    dir
}

/// (status, body text) of a GET with a token, whatever the status.
fn get_text(svc: &Service, token: &Token, path: &str) -> (u16, String) {
    let r = ureq::get(&svc.url(path))
        .timeout(Duration::from_secs(60))
        .set("Authorization", &token.0)
        .call();
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    (resp.status(), resp.into_string().expect("body"))
}

/// A dump through the resumable upload API (`system` in the create body), in one chunk;
/// returns the dump id.
fn resumable_upload(svc: &Service, token: &Token, body: &[u8], name: &str, system: &str) -> String {
    let create = serde_json::json!({ "filename": name, "size": body.len(), "system": system });
    let (code, up) = svc.call(
        token,
        "POST",
        "/api/v1/uploads",
        Some(create.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "{up}");
    let r = ureq::put(&svc.url(up["upload_url"].as_str().unwrap()))
        .timeout(Duration::from_secs(120))
        .set("Authorization", &token.0)
        .set("Upload-Offset", "0")
        .send_bytes(body)
        .expect("the chunk is taken");
    let done: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(done["complete"], true, "{done}");
    done["dump_id"].as_str().unwrap().to_string()
}

/// A form post without JavaScript (`multipart/form-data`, `fields` before the file): the
/// status and the redirect's target.
fn form_post(
    svc: &Service,
    token: &Token,
    path: &str,
    fields: &[(&str, &str)],
    file_name: &str,
    body: &[u8],
) -> (u16, Option<String>) {
    let b = "----systemsboundary";
    let mut form = Vec::new();
    for (k, v) in fields {
        form.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(body);
    form.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let r = agent
        .post(&svc.url(path))
        .timeout(Duration::from_secs(120))
        .set("Authorization", &token.0)
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={b}"),
        )
        .send_bytes(&form);
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {path}: {e}"),
    };
    (r.status(), r.header("Location").map(str::to_string))
}

/// A dump through the portal's form (`POST /upload`, the `system` field before the file);
/// returns the dump id from the redirect.
fn portal_upload(svc: &Service, token: &Token, body: &[u8], name: &str, system: &str) -> String {
    let (code, to) = form_post(svc, token, "/upload", &[("system", system)], name, body);
    assert_eq!(code, 303);
    to.expect("Location")
        .strip_prefix("/dumps/")
        .expect("to the dump's page")
        .to_string()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The page rendered by headless Chromium in a 390 px wide frame (the page's own styles
/// inlined): (scrollWidth, clientWidth) of its document, and the first elements that reach
/// past its right edge outside a scroll box (for the failure message).
fn width_at_390(html: &str, css: &str, dir: &Path) -> (u64, u64, String) {
    let chromium =
        std::env::var("POOLTRIAGE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} missing: run scripts/test.sh (APT_PACKAGES has chromium)"
    );
    let page = html.replace(
        "<link rel=\"stylesheet\" href=\"/static/style.css\">",
        &format!("<style>{css}</style>"),
    );
    assert_ne!(page, html, "the page links /static/style.css");
    let escaped = page
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let frame = format!(
        "<!doctype html><html><body style=\"margin:0\"><iframe id=\"f\" style=\"width:390px;height:844px;border:0\" srcdoc=\"{escaped}\"></iframe>\
         <script>window.addEventListener('load', function () {{ var d = document.getElementById('f').contentDocument.documentElement; \
         var w = document.getElementById('f').contentWindow; \
         var clipped = function (e) {{ for (var p = e.parentElement; p; p = p.parentElement) {{ if (w.getComputedStyle(p).overflowX !== 'visible') return true; }} return false; }}; \
         var wide = Array.prototype.filter.call(d.querySelectorAll('body *'), function (e) {{ return e.getBoundingClientRect().right > d.clientWidth + 1 && !clipped(e); }}) \
           .slice(0, 6).map(function (e) {{ return e.tagName + '.' + e.className + ':' + (e.textContent || '').slice(0, 40).replace(/[^A-Za-z0-9 .:-]/g, ''); }}); \
         document.body.setAttribute('data-measure', d.scrollWidth + '/' + d.clientWidth + '/' + wide.join(' | ')); }});</script></body></html>"
    );
    let file = dir.join("frame.html");
    std::fs::write(&file, &frame).unwrap();
    let profile = dir.join("chromium-profile");
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let m = dom
        .split("data-measure=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "chromium measured nothing: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut parts = m.splitn(3, '/');
    let mut next = || parts.next().expect("two widths and the wide elements");
    let (a, b) = (next(), next());
    (a.parse().unwrap(), b.parse().unwrap(), next().to_string())
}

#[test]
fn a_systems_dumps_and_logs_trend_like_the_truth_and_stay_with_its_tenant() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let series = tmp.path().join("series");
    let truth = forge_series(&series);
    let leak = &truth["leak"];
    let isf = copy_isf(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let acme = Token::new(&data, "acme", "customer");
    let other = Token::new(&data, "other", "customer");
    let staff = Token::new(&data, "staff", "support");
    let isf_text = isf.display().to_string();
    let svc = Service::start(
        &data,
        &[
            ("POOLTRIAGE_ISF_DIR", isf_text.as_str()),
            ("POOLTRIAGE_WORKERS", "2"),
        ],
    );

    // Bad names, before a byte of the body is stored.
    let dump0 = std::fs::read(series.join("series-00.dmp")).unwrap();
    for (method, path, body) in [
        ("POST", "/api/v1/dumps?system=a%2Fb", &b"x"[..]),
        ("POST", "/api/v1/dumps?system=-lead", &b"x"[..]),
        (
            "POST",
            &format!("/api/v1/dumps?system={}", "x".repeat(65)),
            &b"x"[..],
        ),
        ("POST", "/api/v1/systems/bad%20name/logs", &b"x"[..]),
        (
            "POST",
            "/api/v1/uploads",
            &br#"{"filename":"a.dmp","size":10,"system":"a b"}"#[..],
        ),
    ] {
        let (code, v) = svc.call(&acme, method, path, Some(body));
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("bad_system")),
            "{path}: {v}"
        );
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("system name")),
            "{v}"
        );
    }

    // Three dumps into SQL01, uploaded out of time order, one by each upload route.
    let dump = |i: usize| std::fs::read(series.join(format!("series-{i:02}.dmp"))).unwrap();
    let ids = vec![
        (
            2,
            svc.upload(&acme, &dump(2), "?system=SQL01&name=series-02.dmp"),
        ),
        (
            0,
            resumable_upload(&svc, &acme, &dump0, "series-00.dmp", "SQL01"),
        ),
        (
            1,
            portal_upload(&svc, &acme, &dump(1), "series-01.dmp", " SQL01 "),
        ),
    ];

    // Logs: refused when not a log or not readable, stored once per content.
    let (code, v) = svc.call(
        &acme,
        "POST",
        "/api/v1/systems/SQL01/logs",
        Some(b"hello, world\n"),
    );
    assert_eq!((code, v["code"].as_str()), (422, Some("not_a_log")), "{v}");
    let (code, v) = svc.call(
        &acme,
        "POST",
        "/api/v1/systems/SQL01/logs",
        Some(&dump0[..8192]),
    );
    assert_eq!((code, v["code"].as_str()), (422, Some("not_a_log")), "{v}");
    let bad = "Wed 03/10/2021 22:51:09.00\r\n Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc\r\n\r\n Leak Paged         41         3       38    77824   2048\r\n Chrn Paged       many      5000      281   107904    384\r\n";
    let (code, v) = svc.call(
        &acme,
        "POST",
        "/api/v1/systems/SQL01/logs",
        Some(bad.as_bytes()),
    );
    assert_eq!((code, v["code"].as_str()), (422, Some("bad_log")), "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("line 5")),
        "{v}"
    );
    let poolmon = std::fs::read(series.join("poolmon.log")).unwrap();
    let typeperf = std::fs::read(series.join("typeperf.csv")).unwrap();
    let (code, first) = svc.call(
        &acme,
        "POST",
        "/api/v1/systems/SQL01/logs?name=poolmon.log",
        Some(&poolmon),
    );
    assert_eq!(code, 201, "{first}");
    assert_eq!(
        (first["kind"].as_str(), first["samples"].as_i64()),
        (Some("poolmon"), Some(SERIES as i64))
    );
    assert_eq!(first["duplicate"], false);
    let (code, again) = svc.call(
        &acme,
        "POST",
        "/api/v1/systems/SQL01/logs?name=poolmon.log",
        Some(&poolmon),
    );
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        (again["id"].clone(), again["duplicate"].clone()),
        (first["id"].clone(), Value::Bool(true))
    );
    let (code, counters) = svc.call(
        &acme,
        "POST",
        "/api/v1/systems/SQL01/logs?name=typeperf.csv",
        Some(&typeperf),
    );
    assert_eq!(
        (code, counters["kind"].as_str()),
        (201, Some("counters")),
        "{counters}"
    );

    // The system page's log form: the same log again is the same log.
    let (code, to) = form_post(
        &svc,
        &acme,
        "/systems/SQL01/logs",
        &[],
        "typeperf.csv",
        &typeperf,
    );
    assert_eq!((code, to.as_deref()), (303, Some("/systems/SQL01")));
    let (code, _) = form_post(&svc, &acme, "/systems/SQL01/logs", &[], "x.txt", b"hello\n");
    assert_eq!(code, 422, "not a log, through the form");

    for (_, id) in &ids {
        let s = svc.wait_finished(&acme, id, Duration::from_secs(300));
        assert_eq!(s["status"], "done", "{s}");
        assert_eq!(s["system"], "SQL01", "{s}");
    }

    // The list and the system.
    let list = svc.get(&acme, "/api/v1/systems");
    let systems = list["systems"].as_array().expect("systems[]");
    assert_eq!(systems.len(), 1, "{list}");
    assert_eq!(
        (
            systems[0]["name"].as_str(),
            systems[0]["dumps"].as_i64(),
            systems[0]["logs"].as_i64()
        ),
        (Some("SQL01"), Some(3), Some(2)),
        "{list}"
    );
    assert!(systems[0]["first_seen"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    let sys = svc.get(&acme, "/api/v1/systems/SQL01");
    let dumps = sys["dumps"].as_array().expect("dumps[]");
    let times: Vec<&str> = dumps
        .iter()
        .map(|d| d["system_time"].as_str().expect("system_time"))
        .collect();
    let want: Vec<&str> = truth["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["system_time_utc"].as_str().unwrap())
        .collect();
    assert_eq!(times, want, "dumps in time order");
    for (d, (i, id)) in dumps.iter().zip({
        let mut v = ids.clone();
        v.sort();
        v
    }) {
        assert_eq!(d["id"].as_str(), Some(id.as_str()), "series-{i:02}");
        assert!(
            d["verdict"]["sentence"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{d}"
        );
        assert_eq!(d["page_url"], format!("/dumps/{id}"));
    }
    let mut kinds: Vec<&str> = sys["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["counters", "poolmon"]);
    assert!(sys["trend_error"].is_null(), "{}", sys["trend_error"]);
    assert_eq!(sys["skipped"], serde_json::json!([]));
    let t = &sys["trend"];
    let v = &t["verdict"];
    assert_eq!(v["kind"], "driver-growth", "{v}");
    assert_eq!(v["tag"], leak["tag"]);
    assert_eq!(v["drivers"], serde_json::json!([leak["driver"]]));
    let tag = t["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tag"] == leak["tag"] && x["pool"] == leak["pool"])
        .expect("the leak's tag");
    assert_eq!(tag["judgement"], "steady-growth", "{tag}");
    let (got, want) = (
        f(&tag["bytes"]["slope_per_hour"]),
        f(&leak["bytes_per_hour"]),
    );
    assert!(
        (got - want).abs() <= want * 0.01,
        "{got} B/h is not within 1% of the truth's {want}"
    );
    let driver = t["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver"] == leak["driver"])
        .expect("the leaking driver");
    assert_eq!(driver["judgement"], "steady-growth", "{driver}");
    assert!(t["machine"]["kernel_base"]
        .as_str()
        .is_some_and(|s| s.starts_with("0x")));
    // No server path in the answer: inputs are named by their upload.
    let text = sys.to_string();
    assert!(
        !text.contains(&data.display().to_string()),
        "a server path leaked"
    );
    assert!(
        !text.contains(&series.display().to_string()),
        "a client path leaked"
    );

    // Another customer sees nothing, and cannot tell it exists.
    assert_eq!(
        svc.get(&other, "/api/v1/systems")["systems"],
        serde_json::json!([])
    );
    for path in ["/api/v1/systems/SQL01", "/api/v1/systems/SQL01?tenant=acme"] {
        let (code, v) = svc.call(&other, "GET", path, None);
        assert_eq!(
            (code, v["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {v}"
        );
    }
    let (code, _) = get_text(&svc, &other, "/systems/SQL01");
    assert_eq!(code, 404);
    let del = format!(
        "/api/v1/systems/SQL01/logs/{}",
        first["id"].as_str().unwrap()
    );
    let (code, _) = svc.call(&other, "DELETE", &del, None);
    assert_eq!(code, 404);
    // Its own SQL01 is another system.
    let (code, _) = svc.call(&other, "POST", "/api/v1/systems/SQL01/logs", Some(&poolmon));
    assert_eq!(code, 201);
    assert_eq!(
        svc.get(&other, "/api/v1/systems/SQL01")["dumps"],
        serde_json::json!([])
    );
    // Support sees every tenant's, naming the tenant.
    let all = svc.get(&staff, "/api/v1/systems");
    assert_eq!(all["systems"].as_array().map(Vec::len), Some(2), "{all}");
    let seen = svc.get(&staff, "/api/v1/systems/SQL01?tenant=acme");
    assert_eq!(seen["dumps"].as_array().map(Vec::len), Some(3));

    // The pages: charts drawn, dumps linked, the dump page links back.
    let (code, html) = get_text(&svc, &acme, "/systems/SQL01");
    assert_eq!(code, 200);
    assert!(
        html.matches("<svg class=\"lines\"").count() >= 3,
        "pool and tag charts"
    );
    assert!(html.contains("<polyline"));
    assert!(html.contains("id=\"log-form\" method=\"post\" action=\"/systems/SQL01/logs\""));
    assert!(html.contains(leak["driver"].as_str().unwrap()));
    for (_, id) in &ids {
        assert!(
            html.contains(&format!("href=\"/dumps/{id}\"")),
            "dump {id} linked"
        );
    }
    let (_, list_html) = get_text(&svc, &acme, "/systems");
    assert!(list_html.contains("href=\"/systems/SQL01\""));
    let (_, dump_html) = get_text(&svc, &acme, &format!("/dumps/{}", ids[0].1));
    assert!(dump_html.contains("id=\"system-link\" href=\"/systems/SQL01\""));
    let (_, css) = get_text(&svc, &acme, "/static/style.css");
    let (scroll, client, wide) = width_at_390(&html, &css, tmp.path());
    // 390 px less a vertical scroll bar, if the frame shows one.
    assert!(
        (350..=390).contains(&client),
        "the frame is 390 px wide: {client}"
    );
    assert!(
        scroll <= client,
        "the system page scrolls sideways at 390 px: {scroll} > {client}; too wide: {wide}"
    );

    // Deleting a log: gone from the system; its file goes with the tenant's last copy only.
    let sha = first["sha256"].as_str().unwrap().to_string();
    let (code, _) = svc.call(&acme, "DELETE", &del, None);
    assert_eq!(code, 204);
    let (code, _) = svc.call(&acme, "DELETE", &del, None);
    assert_eq!(code, 404);
    assert_eq!(
        svc.get(&acme, "/api/v1/systems/SQL01")["logs"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(
        data.join("logs").join(&sha).is_file(),
        "the other tenant's copy keeps the file"
    );
}
