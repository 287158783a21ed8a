//! Auth of `pooltriage serve` over real HTTP on loopback: tokens made with `pooltriage tokens
//! create` before the service starts, tenant isolation on the dump API (another tenant's dump is
//! 404 and absent from its list; support sees every tenant), token management by an admin,
//! revocation, browser login, and the per-token upload rate limit.
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{create_token, spawn_serve, ServeProcess};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const TRIAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/dumps/triage_x64.dmp"
);

/// A running `pooltriage serve` (killed when dropped).
struct Service {
    /// Held for its drop: the service stops with the test.
    _process: ServeProcess,
    addr: SocketAddr,
}

fn serve(dir: &Path, env: &[(&str, &str)]) -> Service {
    let mut env = env.to_vec();
    env.insert(0, ("POOLTRIAGE_WORKERS", "1"));
    let (child, addr) = spawn_serve(dir, &env);
    Service {
        _process: child,
        addr,
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end (chunked bodies decoded).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (401, 429) and close before reading a large body: not an error here.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..eol])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

fn auth(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

fn get(svc: &Service, path: &str, token: &str) -> Reply {
    let (k, v) = auth(token);
    request(svc.addr, "GET", path, &[(k, &v)], b"")
}

fn upload(svc: &Service, token: &str, body: &[u8]) -> Reply {
    let (k, v) = auth(token);
    request(
        svc.addr,
        "POST",
        "/api/v1/dumps?name=triage_x64.dmp",
        &[(k, &v), ("Content-Type", "application/octet-stream")],
        body,
    )
}

fn list_ids(svc: &Service, token: &str) -> Vec<String> {
    let r = get(svc, "/api/v1/dumps?limit=500", token);
    assert_eq!(r.status, 200);
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tenants_roles_tokens_sessions_and_rate_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // Tokens made before the service has ever run: the CLI creates and migrates the database.
    let admin = create_token(&dir, "internal", "admin");
    let support = create_token(&dir, "internal", "support");
    let acme = create_token(&dir, "acme", "customer");
    let globex = create_token(&dir, "globex", "customer");
    let limited = create_token(&dir, "acme", "customer");

    let svc = serve(
        &dir,
        &[
            ("POOLTRIAGE_UPLOAD_BURST", "3"),
            ("POOLTRIAGE_UPLOADS_PER_MINUTE", "1"),
        ],
    );
    let dump = std::fs::read(TRIAGE).unwrap();

    // No token, a malformed one, an unknown one: 401.
    assert_eq!(
        request(svc.addr, "GET", "/api/v1/dumps", &[], b"").status,
        401
    );
    assert_eq!(
        request(svc.addr, "POST", "/api/v1/dumps", &[], b"MZ").status,
        401
    );
    assert_eq!(get(&svc, "/api/v1/dumps", "pt_nope").status, 401);
    let unknown = format!("pt_{}", "0".repeat(64));
    let r = get(&svc, "/api/v1/dumps", &unknown);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    // Tenant A uploads.
    let r = upload(&svc, &acme, &dump);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let a_id = r.json()["id"].as_str().unwrap().to_string();
    let a_path = format!("/api/v1/dumps/{a_id}");
    assert_eq!(get(&svc, &a_path, &acme).status, 200);

    // Tenant B: A's dump does not exist for it, in every verb, and the answer is the same as for
    // an id that exists nowhere.
    let b_view = get(&svc, &a_path, &globex);
    assert_eq!(b_view.status, 404);
    let nowhere = get(
        &svc,
        "/api/v1/dumps/00000000000000000000000000000000",
        &globex,
    );
    assert_eq!((nowhere.status, &nowhere.body), (404, &b_view.body));
    assert_eq!(get(&svc, &format!("{a_path}/report"), &globex).status, 404);
    let (k, v) = auth(&globex);
    assert_eq!(
        request(svc.addr, "DELETE", &a_path, &[(k, &v)], b"").status,
        404
    );
    assert!(!list_ids(&svc, &globex).contains(&a_id));

    // B uploads the same bytes: its own dump id, invisible to A.
    let r = upload(&svc, &globex, &dump);
    assert_eq!(r.status, 201);
    let b_id = r.json()["id"].as_str().unwrap().to_string();
    assert_ne!(a_id, b_id);
    assert_eq!(list_ids(&svc, &globex), vec![b_id.clone()]);
    assert_eq!(list_ids(&svc, &acme), vec![a_id.clone()]);
    assert_eq!(
        get(&svc, &format!("/api/v1/dumps/{b_id}"), &acme).status,
        404
    );

    // Support and admin see both tenants.
    for t in [&support, &admin] {
        let ids = list_ids(&svc, t);
        assert!(ids.contains(&a_id) && ids.contains(&b_id), "{ids:?}");
        assert_eq!(get(&svc, &a_path, t).status, 200);
    }

    // Token management: admin only; the new token works until revoked, then 401.
    let json = ("Content-Type", "application/json");
    let body = br#"{"tenant":"acme","role":"customer","name":"ticket system"}"#;
    for t in [&acme, &support] {
        let (k, v) = auth(t);
        assert_eq!(
            request(svc.addr, "POST", "/api/v1/tokens", &[(k, &v), json], body).status,
            403
        );
    }
    let (k, v) = auth(&admin);
    let r = request(svc.addr, "POST", "/api/v1/tokens", &[(k, &v), json], body);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    let new_token = created["token"].as_str().unwrap().to_string();
    let new_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(get(&svc, &a_path, &new_token).status, 200);
    let listed = get(&svc, "/api/v1/tokens", &admin);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["tokens"].as_array().unwrap().len(), 6);
    assert!(!String::from_utf8_lossy(&listed.body).contains(&new_token));
    assert_eq!(
        request(
            svc.addr,
            "DELETE",
            &format!("/api/v1/tokens/{new_id}"),
            &[(k, &v)],
            b""
        )
        .status,
        204
    );
    assert_eq!(get(&svc, &a_path, &new_token).status, 401);

    // Browser login with a token: the session cookie reads the dump API like the token.
    let page = request(svc.addr, "GET", "/login", &[], b"");
    assert_eq!(page.status, 200);
    let login_csrf = page.set_cookie("pt_login_csrf").unwrap();
    let cookie = format!("pt_login_csrf={login_csrf}");
    let form = format!("token={acme}&csrf={login_csrf}");
    let r = request(
        svc.addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        form.as_bytes(),
    );
    assert_eq!(r.status, 303);
    let session = format!("pt_session={}", r.set_cookie("pt_session").unwrap());
    assert_eq!(
        request(svc.addr, "GET", &a_path, &[("Cookie", &session)], b"").status,
        200
    );
    assert_eq!(
        request(
            svc.addr,
            "GET",
            &format!("/api/v1/dumps/{b_id}"),
            &[("Cookie", &session)],
            b""
        )
        .status,
        404
    );

    // Upload rate limit: 3 at once, then 429 with Retry-After (1 a minute: about 60 s).
    // (Same tenant, same bytes as A's upload: 200 with A's dump id, which still counts.)
    for _ in 0..3 {
        let r = upload(&svc, &limited, &dump);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["id"], a_id.as_str());
    }
    // Refused before the body is read (a small body: not a dump, which would be 422 if it got through).
    let r = upload(&svc, &limited, b"not a dump");
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((50..=60).contains(&wait), "Retry-After {wait}");
    // Other tokens are not affected.
    assert_eq!(upload(&svc, &globex, &dump).status, 200);
}
