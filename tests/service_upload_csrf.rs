//! `POST /api/v1/dumps`, `DELETE /api/v1/dumps/{id}` and CSRF (docs/auth.md): a caller
//! authenticated by the session cookie must show the session's CSRF token in `X-CSRF-Token`
//! (else a cross-site page could upload or delete as the user): without it 403, with it 201
//! (204 for the delete). A bearer caller needs none. Over real HTTP on
//! loopback; the session comes from the browser login (`/login` with a token), the CSRF token
//! from the page's `<meta name="csrf-token">`, as the portal's script reads it.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use service::{triage_variant, Service, Token};

/// `name=value` of a Set-Cookie header of the response, if set.
fn set_cookie(resp: &ureq::Response, name: &str) -> Option<String> {
    resp.all("set-cookie")
        .into_iter()
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.split_once('=').is_some_and(|(k, _)| k == name))
        .map(str::to_string)
}

fn status_of(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn session_callers_need_the_csrf_token_bearer_callers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let raw_token = harness::create_token(dir.path(), "acme", "customer");
    let svc = Service::start(dir.path(), &[]);
    let agent = ureq::AgentBuilder::new().redirects(0).build();

    // Browser login: the login form's double-submit cookie, then the session cookie.
    let login_page = agent.get(&svc.url("/login")).call().unwrap();
    let login_csrf = set_cookie(&login_page, "pt_login_csrf").expect("login csrf cookie");
    let value = login_csrf.split_once('=').unwrap().1.to_string();
    let resp = match agent
        .post(&svc.url("/login"))
        .set("Cookie", &login_csrf)
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&format!("token={raw_token}&csrf={value}"))
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("login: {e}"),
    };
    assert_eq!(resp.status(), 303, "login");
    let session = set_cookie(&resp, "pt_session").expect("session cookie");

    // The session's CSRF token, from the upload page.
    let html = agent
        .get(&svc.url("/"))
        .set("Cookie", &session)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let doc = scraper::Html::parse_document(&html);
    let sel = scraper::Selector::parse("meta[name=csrf-token]").unwrap();
    let csrf = doc
        .select(&sel)
        .next()
        .and_then(|m| m.value().attr("content"))
        .expect("csrf meta")
        .to_string();
    assert!(!csrf.is_empty(), "a session page carries the CSRF token");

    let dump = triage_variant("csrf");
    let upload = |headers: &[(&str, &str)], body: &[u8]| {
        let mut req = agent.post(&svc.url("/api/v1/dumps"));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        status_of(req.send_bytes(body))
    };
    // Session without the token, or with a wrong one: 403, nothing stored.
    let (code, body) = upload(&[("Cookie", &session)], &dump);
    assert_eq!(code, 403, "{body}");
    let wrong = "0".repeat(csrf.len());
    let (code, body) = upload(&[("Cookie", &session), ("X-CSRF-Token", &wrong)], &dump);
    assert_eq!(code, 403, "{body}");
    let bearer = Token(format!("Bearer {raw_token}"));
    let list = svc.get(&bearer, "/api/v1/dumps");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    // With the token: 201.
    let (code, body) = upload(&[("Cookie", &session), ("X-CSRF-Token", &csrf)], &dump);
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // DELETE is state-changing too: the session without the token is refused and the dump
    // stays; with it, 204.
    let delete = |headers: &[(&str, &str)]| {
        let mut req = agent.delete(&svc.url(&format!("/api/v1/dumps/{id}")));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        status_of(req.call())
    };
    let (code, body) = delete(&[("Cookie", &session)]);
    assert_eq!(code, 403, "{body}");
    let list = svc.get(&bearer, "/api/v1/dumps");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let (code, body) = delete(&[("Cookie", &session), ("X-CSRF-Token", &csrf)]);
    assert_eq!(code, 204, "{body}");
    // A bearer caller needs no CSRF token (another content, so a new dump: 201 again).
    let (code, body) = upload(
        &[("Authorization", &bearer.0)],
        &triage_variant("csrf-bearer"),
    );
    assert_eq!(code, 201, "{body}");
}
