//! A `pooltriage serve` child for the end-to-end tests of search, statistics, webhooks and
//! retention (tests/service_search.rs, service_webhooks.rs, service_retention.rs): started on a
//! loopback port with tokens made beforehand, killed when dropped, and a small JSON client.
#![allow(dead_code)]

use super::harness::{create_token, spawn_serve, ServeProcess};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A running `pooltriage serve` (SIGKILLed when dropped).
pub struct Service {
    pub child: ServeProcess,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

/// A bearer token of one tenant and role.
#[derive(Clone)]
pub struct Token(pub String);

impl Token {
    pub fn new(dir: &Path, tenant: &str, role: &str) -> Token {
        Token(format!("Bearer {}", create_token(dir, tenant, role)))
    }
}

impl Service {
    /// Starts the service on `dir` with `env` (plus a large upload burst).
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Service {
        let mut env = env.to_vec();
        env.insert(0, ("POOLTRIAGE_UPLOAD_BURST", "1000"));
        let (child, addr) = spawn_serve(dir, &env);
        Service {
            child,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (status, JSON body or Null) of a request, whatever the status.
    pub fn call(
        &self,
        token: &Token,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let req = ureq::request(method, &self.url(path))
            .timeout(Duration::from_secs(60))
            .set("Authorization", &token.0);
        let r = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (status, v)
    }

    /// GET that must answer 200.
    pub fn get(&self, token: &Token, path: &str) -> Value {
        let (code, v) = self.call(token, "GET", path, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    /// Uploads `body` (raw); returns the dump id. `query` is appended to the URL (`?...`).
    pub fn upload(&self, token: &Token, body: &[u8], query: &str) -> String {
        let (code, v) = self.call(token, "POST", &format!("/api/v1/dumps{query}"), Some(body));
        assert!(code == 201 || code == 200, "upload: {code} {v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Polls a dump until it leaves queued/running; returns its status object.
    pub fn wait_finished(&self, token: &Token, id: &str, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.get(token, &format!("/api/v1/dumps/{id}"));
            if v["status"] == "done" || v["status"] == "failed" {
                return v;
            }
            assert!(
                start.elapsed() < within,
                "dump {id} not finished after {within:?}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Polls `check` every 100 ms until it returns Some, or panics with `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not after {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The corpus triage dump with `salt` appended: a valid dump header (the upload's check) and
/// a distinct SHA-256 per salt, so each upload is its own content.
pub fn triage_variant(salt: &str) -> Vec<u8> {
    let mut v = std::fs::read(super::harness::corpus().join("dumps/triage_x64.dmp"))
        .expect("corpus triage dump");
    v.extend_from_slice(salt.as_bytes());
    v
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
