//! Webhooks of `pooltriage serve` over real HTTP on loopback (docs/api.md, "Webhooks"): a
//! receiver in this test answers 500 then 200; the event arrives twice with the same body and
//! delivery id, signed with HMAC-SHA256 under the configured secret (checked with Python's
//! `hmac`, an independent implementation); a pending delivery survives a SIGKILLed server;
//! `dump.failed` goes to the server-wide default; URLs off the allow-list are refused.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use serde_json::Value;
use service::{enc, triage_variant, wait_for, Service, Token};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "webhook-test-secret";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A minimal HTTP/1.1 receiver on loopback: records each request and answers with the next
/// status of `script` (the last one repeats).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(listener: TcpListener, script: Vec<u16>) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let status = *script.get(n).or(script.last()).unwrap_or(&200);
                if let Some(r) = handle(stream, status) {
                    g.lock().unwrap().push(r);
                }
            }
        });
        Receiver { port, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn handle(mut stream: TcpStream, status: u16) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    stream.write_all(reply.as_bytes()).ok()?;
    Some(Received {
        path,
        headers,
        body,
    })
}

/// HMAC-SHA256 of `body` under `key`, by Python's standard library (not our crate).
fn python_signature(key: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("body");
    std::fs::write(&f, body).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import hmac, hashlib, sys\n\
             print('sha256=' + hmac.new(sys.argv[1].encode(), open(sys.argv[2], 'rb').read(), hashlib.sha256).hexdigest())",
        )
        .arg(key)
        .arg(&f)
        .output()
        .expect("python3 is needed to check webhook signatures independently");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("POOLTRIAGE_WEBHOOK_SECRET", SECRET),
        // The receivers listen on ports the system picks: any port of loopback.
        ("POOLTRIAGE_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1:*"),
        ("POOLTRIAGE_WEBHOOK_RETRY_BASE_SECS", "1"),
        ("POOLTRIAGE_WEBHOOK_TIMEOUT_SECS", "5"),
        ("POOLTRIAGE_PUBLIC_URL", "https://triage.example.com/"),
    ];
    v.extend_from_slice(extra);
    v
}

fn deliveries(svc: &Service, token: &Token, id: &str) -> Vec<Value> {
    svc.get(token, &format!("/api/v1/dumps/{id}/webhooks"))["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn report_ready_is_signed_and_retried_after_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new(dir.path(), "acme", "customer");
    let receiver = Receiver::start(TcpListener::bind("127.0.0.1:0").unwrap(), vec![500, 200]);
    let svc = Service::start(dir.path(), &env_with(&[]));
    let hook = format!("http://127.0.0.1:{}/hook?ticket=42", receiver.port);
    let id = svc.upload(
        &token,
        &triage_variant("webhook"),
        &format!("?webhook_url={}", enc(&hook)),
    );
    let st = svc.wait_finished(&token, &id, Duration::from_secs(60));
    assert_eq!(st["status"], "done");
    let got = wait_for("two webhook requests", Duration::from_secs(30), || {
        let r = receiver.received();
        (r.len() >= 2).then_some(r)
    });
    // Delivered on the second attempt: the dispatcher stops there.
    let d = wait_for("delivery recorded", Duration::from_secs(10), || {
        let d = deliveries(&svc, &token, &id);
        (d.len() == 1 && d[0]["state"] == "delivered").then_some(d)
    });
    assert_eq!(d[0]["attempts"], 2, "{d:?}");
    assert_eq!(d[0]["last_status"], 200);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received().len(), 2, "no request after the 2xx");

    let (a, b) = (&got[0], &got[1]);
    assert_eq!(a.path, "/hook?ticket=42");
    assert_eq!(a.body, b.body, "a retry sends the same bytes");
    assert_eq!(
        a.header("X-Pooltriage-Delivery"),
        b.header("X-Pooltriage-Delivery")
    );
    assert_eq!(a.header("X-Pooltriage-Delivery"), d[0]["id"].as_str());
    assert_eq!(a.header("Content-Type"), Some("application/json"));
    assert_eq!(a.header("X-Pooltriage-Event"), Some("report.ready"));
    let sig = a
        .header("X-Pooltriage-Signature")
        .expect("signature header");
    assert_eq!(sig, python_signature(SECRET, &a.body));
    assert_ne!(sig, python_signature("another secret", &a.body));

    let e = a.json();
    assert_eq!(e["event"], "report.ready");
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["status"], "done");
    assert_eq!(e["sha256"], st["sha256"]);
    assert_eq!(
        e["report_url"],
        format!("https://triage.example.com/api/v1/dumps/{id}/report").as_str()
    );
    assert_eq!(
        e["page_url"],
        format!("https://triage.example.com/dumps/{id}").as_str()
    );
    // The report_url serves the report.
    let (code, _) = svc.call(&token, "GET", &format!("/api/v1/dumps/{id}/report"), None);
    assert_eq!(code, 200);
}

#[test]
fn a_pending_delivery_survives_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new(dir.path(), "acme", "customer");
    // A port nobody listens on yet: connections are refused until the receiver starts.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let hook = format!("http://127.0.0.1:{port}/later");
    let env = env_with(&[("POOLTRIAGE_WEBHOOK_MAX_ATTEMPTS", "50")]);
    let id = {
        let svc = Service::start(dir.path(), &env);
        let id = svc.upload(
            &token,
            &triage_variant("restart"),
            &format!("?webhook_url={}", enc(&hook)),
        );
        svc.wait_finished(&token, &id, Duration::from_secs(60));
        wait_for("a failed attempt", Duration::from_secs(30), || {
            let d = deliveries(&svc, &token, &id);
            (d[0]["state"] == "pending" && d[0]["attempts"].as_i64() >= Some(1)).then_some(())
        });
        id
        // Dropped: SIGKILL.
    };
    let receiver = Receiver::start(TcpListener::bind(("127.0.0.1", port)).unwrap(), vec![200]);
    let svc = Service::start(dir.path(), &env);
    let got = wait_for(
        "the delivery after restart",
        Duration::from_secs(60),
        || {
            let r = receiver.received();
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(got[0].json()["id"], id.as_str());
    assert_eq!(
        got[0].header("X-Pooltriage-Signature").unwrap(),
        python_signature(SECRET, &got[0].body)
    );
    wait_for("delivered", Duration::from_secs(10), || {
        (deliveries(&svc, &token, &id)[0]["state"] == "delivered").then_some(())
    });
}

#[test]
fn failed_dump_goes_to_the_default_webhook_and_bad_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new(dir.path(), "acme", "customer");
    let receiver = Receiver::start(TcpListener::bind("127.0.0.1:0").unwrap(), vec![204]);
    let default = format!("http://127.0.0.1:{}/default", receiver.port);
    // Loopback on the receiver's port only: another port of the same host is refused.
    let allowed = format!("127.0.0.1:{}", receiver.port);
    let svc = Service::start(
        dir.path(),
        &env_with(&[
            ("POOLTRIAGE_WEBHOOK_URL", default.as_str()),
            ("POOLTRIAGE_WEBHOOK_ALLOWED_HOSTS", allowed.as_str()),
        ]),
    );
    // A dump header and nothing else: accepted by the upload check, broken for the analyzer.
    let mut truncated = triage_variant("");
    truncated.truncate(0x2000);
    let id = svc.upload(&token, &truncated, "");
    let st = svc.wait_finished(&token, &id, Duration::from_secs(60));
    assert_eq!(st["status"], "failed", "{st}");
    let got = wait_for("dump.failed event", Duration::from_secs(30), || {
        let r = receiver.received();
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(got[0].path, "/default");
    assert_eq!(got[0].header("X-Pooltriage-Event"), Some("dump.failed"));
    // The operator's webhook URL (secrets may be in it) is not the customer's to read; support
    // sees it.
    let support = Token::new(dir.path(), "internal", "support");
    let seen_by = |t: &Token| {
        wait_for("delivery recorded", Duration::from_secs(10), || {
            let d = deliveries(&svc, t, &id);
            (d.len() == 1 && d[0]["state"] == "delivered").then(|| d[0].clone())
        })
    };
    let mine = seen_by(&token);
    assert!(mine["url"].is_null(), "{mine}");
    assert_eq!(mine["configured_by"], "operator", "{mine}");
    assert_eq!(seen_by(&support)["url"], default.as_str());
    let e = got[0].json();
    assert_eq!(
        (e["event"].as_str(), e["status"].as_str()),
        (Some("dump.failed"), Some("failed"))
    );
    assert_eq!(e["error"], st["error"]);
    assert!(e.get("verdict").is_none(), "{e}");

    // URLs an upload may not name: the answer comes before the body is stored.
    for bad in [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:1/x",
        "http://127.0.0.2/x",
        "http://127.0.0.1:6379/x",
        "http://127.0.0.1/x",
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/x",
        "not a url",
    ] {
        let (code, v) = svc.call(
            &token,
            "POST",
            &format!("/api/v1/dumps?webhook_url={}", enc(bad)),
            // Refused before the body is read: not even a dump is needed.
            Some(b"not a dump"),
        );
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("bad_webhook_url")),
            "{bad}: {v}"
        );
    }
    // As a form field (before `file`): refused when bad, used when good.
    let (code, v) = multipart(
        &svc,
        &token,
        "http://10.0.0.1/x",
        &triage_variant("form bad"),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("bad_webhook_url")),
        "{v}"
    );
    let listed = svc.get(&token, "/api/v1/dumps");
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "nothing stored: {listed}"
    );
    let own = format!("http://127.0.0.1:{}/own", receiver.port);
    let (code, v) = multipart(&svc, &token, &own, &triage_variant("form good"));
    assert_eq!(code, 201, "{v}");
    let form_id = v["id"].as_str().unwrap().to_string();
    svc.wait_finished(&token, &form_id, Duration::from_secs(60));
    // Its own URL and the server-wide default, once each.
    let got = wait_for("events of the form upload", Duration::from_secs(30), || {
        let r: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|r| r.json()["id"] == form_id.as_str())
            .collect();
        (r.len() >= 2).then_some(r)
    });
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/default", "/own"]);
    assert_no_tmp_left(dir.path());
}

/// A multipart upload with a `webhook_url` field before the `file` field.
fn multipart(svc: &Service, token: &Token, hook: &str, dump: &[u8]) -> (u16, Value) {
    let boundary = "----pooltriage-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"webhook_url\"\r\n\r\n{hook}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.dmp\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(dump);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = ureq::post(&svc.url("/api/v1/dumps"))
        .set("Authorization", &token.0)
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send_bytes(&body);
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("multipart upload: {e}"),
    };
    let code = resp.status();
    (
        code,
        serde_json::from_str(&resp.into_string().unwrap()).unwrap(),
    )
}

fn assert_no_tmp_left(dir: &Path) {
    wait_for("temporary files removed", Duration::from_secs(10), || {
        harness::upload_temp_files(dir).is_empty().then_some(())
    });
}

/// A tenant's default webhook from the config file: only that tenant's dumps notify it, and
/// without a configured secret the signature uses the key the service wrote to
/// `<data dir>/webhook_secret`.
#[test]
fn tenant_default_from_the_config_file_signed_with_the_generated_key() {
    let dir = tempfile::tempdir().unwrap();
    let acme = Token::new(dir.path(), "acme", "customer");
    let globex = Token::new(dir.path(), "globex", "customer");
    let receiver = Receiver::start(TcpListener::bind("127.0.0.1:0").unwrap(), vec![200]);
    std::fs::write(
        dir.path().join("pooltriage.toml"),
        format!(
            "webhook_retry_base_secs = 1\n\
             webhook_tenant_urls = {{ acme = \"http://127.0.0.1:{}/acme\" }}\n",
            receiver.port
        ),
    )
    .unwrap();
    let svc = Service::start(dir.path(), &[]);
    let g = svc.upload(&globex, &triage_variant("globex"), "");
    let a = svc.upload(&acme, &triage_variant("acme"), "");
    svc.wait_finished(&globex, &g, Duration::from_secs(60));
    svc.wait_finished(&acme, &a, Duration::from_secs(60));
    let got = wait_for("acme's event", Duration::from_secs(30), || {
        let r = receiver.received();
        (!r.is_empty()).then_some(r)
    });
    std::thread::sleep(Duration::from_secs(2));
    let got_all = receiver.received();
    assert_eq!(got_all.len(), 1, "only acme's dump: {got_all:?}");
    assert_eq!(got[0].path, "/acme");
    assert_eq!(got[0].json()["id"], a.as_str());
    assert!(deliveries(&svc, &globex, &g).is_empty());
    let key = std::fs::read_to_string(dir.path().join("webhook_secret")).expect("generated key");
    assert_eq!(key.trim().len(), 64);
    assert_eq!(
        got[0].header("X-Pooltriage-Signature").unwrap(),
        python_signature(key.trim(), &got[0].body)
    );
}

/// A JSON request (PATCH, POST) with its Content-Type: (status, body or Null).
fn send_json(svc: &Service, token: &Token, method: &str, path: &str, body: &Value) -> u16 {
    let r = ureq::request(method, &svc.url(path))
        .set("Authorization", &token.0)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string());
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// A problem's workflow change is a signed `problem.updated` event with the old and new
/// status, the assignee and who made it, sent to the server-wide webhook only: the tenant's
/// own default webhook (which gets its dumps' events) does not get it, as a problem spans
/// tenants and its workflow is support's. A refused change and a change that changes nothing
/// send nothing.
#[test]
fn problem_updated_goes_to_the_server_wide_webhook_only() {
    let dir = tempfile::tempdir().unwrap();
    let acme = Token::new(dir.path(), "acme", "customer");
    let support = Token::new(dir.path(), "internal", "support");
    let receiver = Receiver::start(TcpListener::bind("127.0.0.1:0").unwrap(), vec![200]);
    let port = receiver.port;
    std::fs::write(
        dir.path().join("pooltriage.toml"),
        format!("webhook_tenant_urls = {{ acme = \"http://127.0.0.1:{port}/acme\" }}\n"),
    )
    .unwrap();
    let all = format!("http://127.0.0.1:{port}/all");
    let svc = Service::start(
        dir.path(),
        &env_with(&[("POOLTRIAGE_WEBHOOK_URL", all.as_str())]),
    );
    let id = svc.upload(&acme, &triage_variant("problem-event"), "");
    assert_eq!(
        svc.wait_finished(&acme, &id, Duration::from_secs(60))["status"],
        "done"
    );
    // The dump's report.ready reaches both webhooks: the tenant's is live.
    wait_for("report.ready at both", Duration::from_secs(30), || {
        (receiver.received().len() == 2).then_some(())
    });
    let list = svc.get(&support, "/api/v1/problems");
    let problem = list["problems"][0]["id"].as_str().expect("a crash problem");
    let path = format!("/api/v1/problems/{problem}");

    let change = serde_json::json!({ "status": "investigating", "assignee": "ana" });
    assert_eq!(send_json(&svc, &acme, "PATCH", &path, &change), 403);
    assert_eq!(send_json(&svc, &support, "PATCH", &path, &change), 200);
    // The same change again changes nothing: no event.
    assert_eq!(send_json(&svc, &support, "PATCH", &path, &change), 200);
    let event = wait_for("problem.updated", Duration::from_secs(30), || {
        receiver
            .received()
            .into_iter()
            .find(|r| r.header("X-Pooltriage-Event") == Some("problem.updated"))
    });
    assert_eq!(event.path, "/all");
    assert_eq!(
        event.header("X-Pooltriage-Signature").unwrap(),
        python_signature(SECRET, &event.body)
    );
    let e = event.json();
    assert_eq!(e["id"], problem);
    assert_eq!(
        (e["previous_status"].as_str(), e["status"].as_str()),
        (Some("new"), Some("investigating"))
    );
    assert_eq!(e["assignee"], "ana");
    assert_eq!(e["changed"], serde_json::json!(["status", "assignee"]));
    assert_eq!(e["actor"], "internal (support)");
    assert_eq!(
        e["delivery"],
        event.header("X-Pooltriage-Delivery").unwrap()
    );
    assert_eq!(
        e["page_url"],
        format!("https://triage.example.com/problems/{problem}")
    );
    std::thread::sleep(Duration::from_secs(2));
    let problem_events: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.header("X-Pooltriage-Event") == Some("problem.updated"))
        .collect();
    assert_eq!(problem_events.len(), 1, "{problem_events:?}");
    // Support sees how the delivery went; a customer may not list the operator's deliveries.
    let seen = svc.get(&support, &format!("{path}/webhooks"));
    assert_eq!(seen["items"][0]["state"], "delivered", "{seen}");
    assert_eq!(
        svc.call(&acme, "GET", &format!("{path}/webhooks"), None).0,
        403
    );
}
