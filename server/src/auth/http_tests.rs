//! The auth routes and extractors over real HTTP on loopback, with a stand-in dump route in place
//! of the service's API (which has its own end-to-end test in tests/service_auth.rs).

use super::store::{self, tests::memory_pool};
use super::*;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Stand-in for a dump route: dump ids name their tenant ("acme-1" belongs to "acme").
async fn dump(principal: Principal, Path(id): Path<String>) -> Result<String, AuthError> {
    let tenant = id.split_once('-').map(|(t, _)| t).unwrap_or("");
    if !can_see(&principal, tenant) {
        return Err(AuthError::NotFound);
    }
    Ok(format!("{id} for {}", principal.tenant))
}

async fn upload_with_permit(
    UploadPermit(principal, _): UploadPermit,
    body: axum::body::Bytes,
) -> String {
    format!("uploaded {} bytes by {}", body.len(), principal.token_id)
}

async fn form_post(
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<&'static str, AuthError> {
    #[derive(serde::Deserialize)]
    struct F {
        csrf: Option<String>,
    }
    let f: F =
        serde_urlencoded::from_bytes(&body).map_err(|e| AuthError::BadRequest(e.to_string()))?;
    csrf::check_form(&principal, f.csrf.as_deref())?;
    Ok("changed")
}

struct Server {
    addr: SocketAddr,
    pool: DbPool,
    _rt: tokio::runtime::Runtime,
}

fn start(config: AuthConfig) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (addr, pool) = rt.block_on(async {
        let pool = memory_pool().await;
        let state = AuthState::new(pool.clone(), config);
        let app = Router::new()
            .route("/api/v1/dumps/{id}", get(dump))
            .route("/api/v1/dumps", post(upload_with_permit))
            .route("/form", post(form_post))
            .merge(routes())
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, pool)
    });
    Server {
        addr,
        pool,
        _rt: rt,
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value a `Set-Cookie` of this reply gives cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .filter_map(|c| c.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end: a client small enough to see
/// every byte we send.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn token(s: &Server, tenant: &str, role: Role) -> store::NewToken {
    s._rt
        .block_on(store::create_token(
            &s.pool,
            tenant,
            role,
            "test",
            store::now_unix(),
        ))
        .unwrap()
}

#[test]
fn bearer_tokens_and_tenant_isolation() {
    let s = start(AuthConfig::default());
    let a = token(&s, "acme", Role::Customer);
    let b = token(&s, "globex", Role::Customer);
    let sup = token(&s, "internal", Role::Support);

    let r = request(s.addr, "GET", "/api/v1/dumps/acme-1", &[], "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/acme-1",
        &[("Authorization", &bearer("pt_nope"))],
        "",
    );
    assert_eq!(r.status, 401);

    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/acme-1",
        &[("Authorization", &bearer(&a.token))],
        "",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "acme-1 for acme"));
    // Another tenant's dump: 404 with the same body as a dump that does not exist.
    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/acme-1",
        &[("Authorization", &bearer(&b.token))],
        "",
    );
    assert_eq!(r.status, 404);
    let missing = request(
        s.addr,
        "GET",
        "/api/v1/dumps/globex-404",
        &[("Authorization", &bearer(&a.token))],
        "",
    );
    assert_eq!((missing.status, &missing.body), (404, &r.body));
    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/globex-1",
        &[("Authorization", &bearer(&sup.token))],
        "",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn admin_manages_tokens_and_revocation_is_immediate() {
    let s = start(AuthConfig::default());
    let admin = token(&s, "internal", Role::Admin);
    let sup = token(&s, "internal", Role::Support);
    let adm = bearer(&admin.token);
    let json = ("Content-Type", "application/json");

    let body = r#"{"tenant":"acme","role":"customer","name":"ticket bot"}"#;
    let r = request(
        s.addr,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &bearer(&sup.token)), json],
        body,
    );
    assert_eq!(r.status, 403, "support may not create tokens");
    let r = request(
        s.addr,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &adm), json],
        body,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let new_token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["role"], "customer");

    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/acme-1",
        &[("Authorization", &bearer(&new_token))],
        "",
    );
    assert_eq!(r.status, 200);

    let r = request(
        s.addr,
        "GET",
        "/api/v1/tokens",
        &[("Authorization", &adm)],
        "",
    );
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains(&new_token),
        "the list never shows a secret"
    );
    let list: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 3);

    let bad = r#"{"tenant":"a/b","role":"customer"}"#;
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &adm), json],
            bad
        )
        .status,
        400
    );
    let bad = r#"{"tenant":"acme","role":"root"}"#;
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &adm), json],
            bad
        )
        .status,
        422
    );

    let path = format!("/api/v1/tokens/{id}");
    assert_eq!(
        request(
            s.addr,
            "DELETE",
            &path,
            &[("Authorization", &bearer(&sup.token))],
            ""
        )
        .status,
        403
    );
    assert_eq!(
        request(s.addr, "DELETE", &path, &[("Authorization", &adm)], "").status,
        204
    );
    assert_eq!(
        request(s.addr, "DELETE", &path, &[("Authorization", &adm)], "").status,
        404
    );
    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/acme-1",
        &[("Authorization", &bearer(&new_token))],
        "",
    );
    assert_eq!(r.status, 401, "revoked token");
}

#[test]
fn upload_rate_limit_answers_429_with_retry_after() {
    let s = start(AuthConfig {
        upload_rate: RateLimit {
            burst: 2,
            per_minute: 1.0,
        },
        ..AuthConfig::default()
    });
    let a = token(&s, "acme", Role::Customer);
    let b = token(&s, "acme", Role::Customer);
    let h = bearer(&a.token);
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/api/v1/dumps",
            &[("Authorization", &h)],
            ""
        )
        .status,
        200
    );
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/api/v1/dumps",
            &[("Authorization", &h)],
            ""
        )
        .status,
        200
    );
    let r = request(
        s.addr,
        "POST",
        "/api/v1/dumps",
        &[("Authorization", &h)],
        "",
    );
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((58..=60).contains(&wait), "one upload a minute: {wait}");
    // Another token has its own bucket; an unauthenticated upload is 401, not 429.
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/api/v1/dumps",
            &[("Authorization", &bearer(&b.token))],
            ""
        )
        .status,
        200
    );
    assert_eq!(
        request(s.addr, "POST", "/api/v1/dumps", &[], "").status,
        401
    );
}

#[test]
fn browser_login_session_csrf_and_logout() {
    let s = start(AuthConfig::default());
    let a = token(&s, "acme", Role::Customer);
    let form = ("Content-Type", "application/x-www-form-urlencoded");

    let page = request(s.addr, "GET", "/login", &[], "");
    assert_eq!(page.status, 200);
    let login_csrf = page.cookie(csrf::LOGIN_COOKIE).unwrap();
    assert!(page
        .body
        .contains(&format!("name=\"csrf\" value=\"{login_csrf}\"")));
    let cookie_hdr = format!("{}={login_csrf}", csrf::LOGIN_COOKIE);

    // Without the double-submit cookie (a cross-site form): refused.
    let r = request(
        s.addr,
        "POST",
        "/login",
        &[form],
        &format!("token={}&csrf={login_csrf}", a.token),
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("sign-in form has expired") && r.body.contains("name=\"csrf\""));
    assert!(r.cookie(cookie::SESSION_COOKIE).is_none());
    // Wrong token: the form again, 401, no session.
    let r = request(
        s.addr,
        "POST",
        "/login",
        &[form, ("Cookie", &cookie_hdr)],
        &format!("token=pt_x&csrf={login_csrf}"),
    );
    assert_eq!(r.status, 401);
    assert!(r.cookie(cookie::SESSION_COOKIE).is_none());

    let r = request(
        s.addr,
        "POST",
        "/login",
        &[form, ("Cookie", &cookie_hdr)],
        &format!("token={}&csrf={login_csrf}", a.token),
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let set = r
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("pt_session="))
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"),
        "{set}"
    );
    let session = r.cookie(cookie::SESSION_COOKIE).unwrap();
    let sess_hdr = format!("{}={session}", cookie::SESSION_COOKIE);

    // The cookie authenticates like the token.
    let r = request(
        s.addr,
        "GET",
        "/api/v1/dumps/acme-1",
        &[("Cookie", &sess_hdr)],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        request(
            s.addr,
            "GET",
            "/api/v1/dumps/globex-1",
            &[("Cookie", &sess_hdr)],
            ""
        )
        .status,
        404
    );

    // A form POST with the session needs the session's CSRF secret.
    let secret: String = s
        ._rt
        .block_on(sqlx::query_scalar("SELECT csrf FROM sessions").fetch_one(&s.pool))
        .unwrap();
    let r = request(
        s.addr,
        "POST",
        "/form",
        &[form, ("Cookie", &sess_hdr)],
        "csrf=wrong",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        request(s.addr, "POST", "/form", &[form, ("Cookie", &sess_hdr)], "").status,
        403
    );
    let r = request(
        s.addr,
        "POST",
        "/form",
        &[form, ("Cookie", &sess_hdr)],
        &format!("csrf={secret}"),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "changed"));
    // A bearer request needs none.
    let r = request(
        s.addr,
        "POST",
        "/form",
        &[form, ("Authorization", &bearer(&a.token))],
        "",
    );
    assert_eq!(r.status, 200);

    // Logout needs the CSRF secret too, then the cookie is dead.
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/logout",
            &[form, ("Cookie", &sess_hdr)],
            ""
        )
        .status,
        403
    );
    let r = request(
        s.addr,
        "POST",
        "/logout",
        &[form, ("Cookie", &sess_hdr)],
        &format!("csrf={secret}"),
    );
    assert_eq!(r.status, 303);
    assert!(r
        .cookies()
        .iter()
        .any(|c| c.starts_with("pt_session=;") && c.contains("Max-Age=0")));
    assert_eq!(
        request(
            s.addr,
            "GET",
            "/api/v1/dumps/acme-1",
            &[("Cookie", &sess_hdr)],
            ""
        )
        .status,
        401
    );
}

#[test]
fn secure_cookies_when_configured() {
    let s = start(AuthConfig {
        secure_cookies: true,
        ..AuthConfig::default()
    });
    let page = request(s.addr, "GET", "/login", &[], "");
    assert!(
        page.cookies().iter().all(|c| c.ends_with("; Secure")),
        "{:?}",
        page.cookies()
    );
}
