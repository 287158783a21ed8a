//! Resumable chunked uploads of `pooltriage serve` (`/api/v1/uploads`, docs/api.md) over real
//! HTTP on loopback: a chunk whose connection drops keeps exactly the bytes that arrived; a
//! server killed with SIGKILL in the middle of a chunk resumes at the last durable offset; the
//! finished upload goes through the same ingest as `POST /api/v1/dumps` (the stored dump's
//! SHA-256 is the file's, as computed by coreutils' `sha256sum`; a .gz is decompressed; the same
//! content gives the same dump), plus the rules: wrong offset 409, past the size 413, another
//! tenant 404, CSRF for session callers, the upload rate limit, expiry of abandoned uploads.
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{create_token, spawn_serve, ServeProcess};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TRIAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/dumps/triage_x64.dmp"
);

/// A running `pooltriage serve` (killed when dropped).
struct Service {
    child: ServeProcess,
    addr: SocketAddr,
}

fn serve(dir: &Path, env: &[(&str, &str)]) -> Service {
    let mut all = vec![
        ("POOLTRIAGE_UPLOAD_BURST", "100"),
        ("POOLTRIAGE_WORKERS", "1"),
    ];
    all.extend_from_slice(env);
    let (child, addr) = spawn_serve(dir, &all);
    Service { child, addr }
}

/// (status, headers we look at, JSON body) of a request, whatever the status.
struct Reply {
    status: u16,
    upload_offset: Option<u64>,
    body: Value,
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent
        .request(method, &format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(120));
    for (k, v) in headers {
        req = req.set(k, v);
    }
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
    let upload_offset = resp.header("upload-offset").and_then(|v| v.parse().ok());
    let text = resp.into_string().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    Reply {
        status,
        upload_offset,
        body,
    }
}

/// A bearer caller.
struct Client {
    addr: SocketAddr,
    auth: String,
}

impl Client {
    fn new(addr: SocketAddr, token: &str) -> Client {
        Client {
            addr,
            auth: format!("Bearer {token}"),
        }
    }
    fn get(&self, path: &str) -> Reply {
        call(
            self.addr,
            "GET",
            path,
            &[("Authorization", &self.auth)],
            None,
        )
    }
    fn start(&self, filename: &str, size: u64) -> Reply {
        let body = json!({ "filename": filename, "size": size }).to_string();
        call(
            self.addr,
            "POST",
            "/api/v1/uploads",
            &[
                ("Authorization", &self.auth),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
    }
    fn put(&self, url: &str, offset: u64, chunk: &[u8]) -> Reply {
        let off = offset.to_string();
        call(
            self.addr,
            "PUT",
            url,
            &[("Authorization", &self.auth), ("Upload-Offset", &off)],
            Some(chunk),
        )
    }
    /// Sends `data[from..]` in chunks of `chunk`; returns the last answer.
    fn send_rest(&self, url: &str, data: &[u8], from: u64, chunk: usize) -> Reply {
        let mut offset = from as usize;
        loop {
            let end = (offset + chunk).min(data.len());
            let r = self.put(url, offset as u64, data.get(offset..end).unwrap());
            assert_eq!(r.status, 200, "PUT at {offset}: {}", r.body);
            assert_eq!(r.body["offset"], end as u64, "{}", r.body);
            assert_eq!(r.upload_offset, Some(end as u64));
            offset = end;
            if offset == data.len() {
                return r;
            }
        }
    }
    fn wait_done(&self, dump_id: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/api/v1/dumps/{dump_id}"));
            assert_eq!(r.status, 200, "{}", r.body);
            if r.body["status"] == "done" || r.body["status"] == "failed" {
                return r.body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "analysis not finished: {}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// SHA-256 by an independent implementation (GNU coreutils).
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils) runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A forged Windows 10 19041 kernel dump of a machine with `memory` bytes (about 35 MB for
/// 256 MiB); the forge's, only its bytes matter here.
fn forged(dir: &Path, size: u64) -> PathBuf {
    let profile = harness::profile_for_build(19041);
    harness::forge(dir, &profile, "kernel-bitmap", Some(size)).dump
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a PUT of `total` declared bytes by hand and sends only `data`; returns the open socket.
fn partial_put(
    addr: SocketAddr,
    auth: &str,
    url: &str,
    offset: u64,
    total: usize,
    data: &[u8],
) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT {url} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nUpload-Offset: {offset}\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    s.write_all(data).unwrap();
    s.flush().unwrap();
    s
}

#[test]
fn an_interrupted_upload_resumes_at_the_exact_offset_even_across_a_sigkill() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump_path = forged(work.path(), 256 << 20);
    let dump = std::fs::read(&dump_path).unwrap();
    let size = dump.len() as u64;
    let token = create_token(dir.path(), "acme", "customer");
    let svc = serve(dir.path(), &[]);
    let c = Client::new(svc.addr, &token);

    let r = c.start("C:\\dumps\\MEMORY.DMP", size);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let url = r.body["upload_url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/api/v1/uploads/{id}"));
    assert_eq!(r.body["offset"], 0);
    assert!(r.body["chunk_size"].as_u64().unwrap() > 0, "{}", r.body);

    // First chunk, then a wrong offset: 409 with the real one.
    let r = c.put(&url, 0, dump.get(..300_000).unwrap());
    assert_eq!(
        (r.status, r.body["offset"].as_u64()),
        (200, Some(300_000)),
        "{}",
        r.body
    );
    let r = c.put(&url, 0, dump.get(..1000).unwrap());
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["offset"], 300_000);
    assert_eq!(r.upload_offset, Some(300_000));

    // The connection drops in the middle of a chunk: the bytes that arrived are kept, exactly.
    let s = partial_put(
        svc.addr,
        &c.auth,
        &url,
        300_000,
        1_000_000,
        dump.get(300_000..800_000).unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let offset = poll("the interrupted chunk is recorded", || {
        let r = c.get(&url);
        assert_eq!(r.status, 200, "{}", r.body);
        (r.body["offset"] != 300_000).then(|| r.body["offset"].as_u64().unwrap())
    });
    assert_eq!(offset, 800_000, "every byte that arrived, no more");
    let r = c.get(&url);
    assert_eq!(r.body["complete"], false);
    assert_eq!(r.body["size"], size);
    assert_eq!(r.body["filename"], "MEMORY.DMP");

    // The server is SIGKILLed while a chunk streams in: bytes after the last durable offset
    // were never acknowledged; after the restart the upload continues from that offset.
    let mut svc = svc;
    let part = dir.path().join("uploads").join(&id);
    let s = partial_put(
        svc.addr,
        &c.auth,
        &url,
        800_000,
        4_000_000,
        dump.get(800_000..2_000_000).unwrap(),
    );
    poll("the chunk reaches the file", || {
        (std::fs::metadata(&part).unwrap().len() > 800_000).then_some(())
    });
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    drop(s);
    drop(svc);
    let svc = serve(dir.path(), &[]);
    let c = Client::new(svc.addr, &token);
    let r = c.get(&url);
    assert_eq!(r.status, 200, "{}", r.body);
    let resume = r.body["offset"].as_u64().unwrap();
    assert_eq!(resume, 800_000, "the last durable offset: {}", r.body);

    // The rest, in 3 MiB chunks; the last answer names the dump.
    let done = c.send_rest(&url, &dump, resume, 3 << 20);
    assert_eq!(done.body["complete"], true, "{}", done.body);
    let dump_id = done.body["dump_id"].as_str().unwrap().to_string();
    assert_eq!(done.body["page_url"], format!("/dumps/{dump_id}"));
    assert_eq!(done.body["status_url"], format!("/api/v1/dumps/{dump_id}"));
    let status = c.get(&format!("/api/v1/dumps/{dump_id}"));
    assert_eq!(
        status.body["sha256"],
        sha256sum(&dump_path),
        "{}",
        status.body
    );
    assert_eq!(status.body["size"], size);
    assert_eq!(status.body["original_name"], "MEMORY.DMP");
    // The stored file is the uploaded file, byte for byte; the upload's own file is gone.
    let stored = dir
        .path()
        .join("dumps")
        .join(status.body["sha256"].as_str().unwrap());
    assert_eq!(sha256sum(&stored), sha256sum(&dump_path));
    assert!(files_in(&dir.path().join("uploads")).is_empty());
    // The answer to the last chunk was lost? The same PUT again gets it again.
    let again = c.put(&url, size, b"");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["dump_id"], dump_id.as_str());
    let r = c.get(&url);
    assert_eq!(
        (r.body["complete"].as_bool(), r.body["dump_id"].as_str()),
        (Some(true), Some(dump_id.as_str()))
    );
    // And the analysis runs as for any upload.
    assert_eq!(c.wait_done(&dump_id)["status"], "done");
}

#[test]
fn a_long_chunk_is_made_durable_every_64_mib_while_it_streams() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A full-bitmap dump stores every page: about 256 MiB for a 256 MiB machine.
    let profile = harness::profile_for_build(19041);
    let dump_path = harness::forge(work.path(), &profile, "full-bitmap", Some(256 << 20)).dump;
    let dump = std::fs::read(&dump_path).unwrap();
    assert!(dump.len() > 100 << 20, "{}", dump.len());
    let token = create_token(dir.path(), "acme", "customer");
    let mut svc = serve(dir.path(), &[]);
    let c = Client::new(svc.addr, &token);
    let r = c.start("full.dmp", dump.len() as u64);
    let url = r.body["upload_url"].as_str().unwrap().to_string();

    // One PUT for the whole file; 80 MiB of it sent, the connection kept open.
    let s = partial_put(
        svc.addr,
        &c.auth,
        &url,
        0,
        dump.len(),
        dump.get(..80 << 20).unwrap(),
    );
    // The checkpoint (docs/api.md: every 64 MiB within a chunk) shows while the chunk streams.
    let durable = poll("a checkpoint within the chunk", || {
        let o = c.get(&url).body["offset"].as_u64().unwrap();
        (o > 0).then_some(o)
    });
    assert!(
        (64 << 20..=80 << 20).contains(&durable),
        "first checkpoint at {durable}"
    );
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    drop(s);
    drop(svc);
    let svc = serve(dir.path(), &[]);
    let c = Client::new(svc.addr, &token);
    assert_eq!(
        c.get(&url).body["offset"],
        durable,
        "the durable offset survives SIGKILL"
    );
    let done = c.send_rest(&url, &dump, durable, 64 << 20);
    let status = c.get(&format!(
        "/api/v1/dumps/{}",
        done.body["dump_id"].as_str().unwrap()
    ));
    assert_eq!(status.body["sha256"], sha256sum(&dump_path));
}

#[test]
fn chunked_uploads_follow_the_upload_rules() {
    let dir = tempfile::tempdir().unwrap();
    let acme = create_token(dir.path(), "acme", "customer");
    let other = create_token(dir.path(), "other", "customer");
    let support = create_token(dir.path(), "internal", "support");
    let svc = serve(dir.path(), &[("POOLTRIAGE_MAX_UPLOAD_BYTES", "3000000")]);
    let c = Client::new(svc.addr, &acme);
    let dump = std::fs::read(TRIAGE).expect("corpus triage dump");

    // The size limit is checked before a byte is sent.
    let r = c.start("big.dmp", 3_000_001);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["code"], "upload_too_large");
    let r = c.start("empty.dmp", 0);
    assert_eq!(r.status, 422, "{}", r.body);
    let r = call(
        svc.addr,
        "POST",
        "/api/v1/uploads",
        &[("Authorization", &c.auth)],
        Some(b"not json"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        call(svc.addr, "POST", "/api/v1/uploads", &[], Some(b"{}")).status,
        401
    );

    // A raw upload of the triage dump, then the same content gzipped in chunks: same dump.
    let raw = call(
        svc.addr,
        "POST",
        "/api/v1/dumps",
        &[("Authorization", &c.auth)],
        Some(&dump),
    );
    assert_eq!(raw.status, 201, "{}", raw.body);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&dump).unwrap();
    let gz = gz.finish().unwrap();
    let r = c.start("MEMORY.DMP.gz", gz.len() as u64);
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["upload_url"].as_str().unwrap().to_string();

    // Another tenant cannot see or write it (404, as for a dump); support neither: an upload
    // belongs to its tenant. Ids that are not ours are 404 too.
    for token in [&other, &support] {
        let o = Client::new(svc.addr, token);
        assert_eq!(o.get(&url).status, 404);
        assert_eq!(o.put(&url, 0, gz.get(..100).unwrap()).status, 404);
    }
    assert_eq!(c.get("/api/v1/uploads/..%2F..%2Fpooltriage.db").status, 404);
    assert_eq!(
        c.get(&format!("/api/v1/uploads/{}", "0".repeat(32))).status,
        404
    );
    // No offset: 400.
    let r = call(
        svc.addr,
        "PUT",
        &url,
        &[("Authorization", &c.auth)],
        Some(b"x"),
    );
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (400, Some("missing_offset"))
    );
    // A chunk going past the declared size: 413, nothing of it kept. The server answers from
    // the Content-Length before reading the body and closes: a client still sending may see the
    // connection close (broken pipe) instead of the answer, as with any server that refuses early.
    let mut too_much = gz.clone();
    too_much.push(0);
    let r = ureq::put(&format!("http://{}{url}", svc.addr))
        .set("Authorization", &c.auth)
        .set("Upload-Offset", "0")
        .send_bytes(&too_much);
    match r {
        Err(ureq::Error::Status(413, r)) => {
            assert!(r.into_string().unwrap().contains("chunk_too_large"))
        }
        Err(ureq::Error::Transport(_)) => {}
        other => panic!("expected 413, got {:?}", other.map(|r| r.status())),
    }
    assert_eq!(c.get(&url).body["offset"], 0);
    // The same without a Content-Length (chunked transfer encoding): found while streaming.
    let streamed = ureq::put(&format!("http://{}{url}", svc.addr))
        .set("Authorization", &c.auth)
        .set("Upload-Offset", "0")
        .send(std::io::Cursor::new(too_much.clone()));
    match streamed {
        Err(ureq::Error::Status(413, r)) => {
            assert!(r.into_string().unwrap().contains("chunk_too_large"))
        }
        Err(ureq::Error::Transport(_)) => {}
        other => panic!("expected 413, got {:?}", other.map(|r| r.status())),
    }
    assert_eq!(c.get(&url).body["offset"], 0);
    assert_eq!(
        std::fs::metadata(
            dir.path()
                .join("uploads")
                .join(url.rsplit('/').next().unwrap())
        )
        .unwrap()
        .len(),
        0,
        "nothing of the refused chunk kept"
    );
    // The offset may also come as ?offset=N.
    let r = call(
        svc.addr,
        "PUT",
        &format!("{url}?offset=0"),
        &[("Authorization", &c.auth)],
        Some(gz.get(..1000).unwrap()),
    );
    assert_eq!(
        (r.status, r.body["offset"].as_u64()),
        (200, Some(1000)),
        "{}",
        r.body
    );
    let done = c.send_rest(&url, &gz, 1000, 100_000);
    assert_eq!(done.body["complete"], true, "{}", done.body);
    assert_eq!(
        done.body["dump_id"], raw.body["id"],
        "same content, same dump"
    );
    assert_eq!(done.body["duplicate"], true);
    let status = c.get(&format!(
        "/api/v1/dumps/{}",
        raw.body["id"].as_str().unwrap()
    ));
    assert_eq!(status.body["sha256"], sha256sum(Path::new(TRIAGE)));

    // Not a dump: refused when complete, with the reader's reason; the upload is failed.
    let junk = b"MDMP\x93\xa7\0\0 a user-mode minidump is not a kernel dump".repeat(10);
    let r = c.start("user.dmp", junk.len() as u64);
    let url = r.body["upload_url"].as_str().unwrap().to_string();
    let r = c.put(&url, 0, &junk);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["code"], "not_a_dump");
    let r = c.get(&url);
    assert_eq!(
        (r.body["state"].as_str(), r.body["code"].as_str()),
        (Some("failed"), Some("not_a_dump")),
        "{}",
        r.body
    );
    assert_eq!(c.put(&url, 0, b"x").status, 409);
    assert!(files_in(&dir.path().join("uploads")).is_empty());
    assert!(harness::upload_temp_files(dir.path()).is_empty());

    // The OpenAPI document describes the routes.
    let doc = c.get("/api/v1/openapi.json").body;
    for (path, method) in [
        ("/api/v1/uploads", "post"),
        ("/api/v1/uploads/{id}", "get"),
        ("/api/v1/uploads/{id}", "put"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "openapi lacks {method} {path}"
        );
    }
}

/// Browser login (`GET /login` for the double-submit value, `POST /login` with the token);
/// returns the session cookie's value.
fn login(addr: SocketAddr, token: &str) -> String {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let page = agent.get(&format!("http://{addr}/login")).call().unwrap();
    let login_csrf = page
        .all("set-cookie")
        .iter()
        .filter_map(|c| c.split(';').next()?.strip_prefix("pt_login_csrf="))
        .next()
        .expect("login csrf cookie")
        .to_string();
    let resp = agent
        .post(&format!("http://{addr}/login"))
        .set("Cookie", &format!("pt_login_csrf={login_csrf}"))
        .send_form(&[("token", token), ("csrf", &login_csrf)])
        .unwrap();
    assert_eq!(resp.status(), 303);
    resp.all("set-cookie")
        .iter()
        .filter_map(|c| c.split(';').next()?.strip_prefix("pt_session="))
        .find(|v| !v.is_empty())
        .expect("session cookie")
        .to_string()
}

/// The session's CSRF token as the portal page gives it to upload.js (`<meta name="csrf-token">`).
fn page_csrf(addr: SocketAddr, session: &str) -> String {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let html = agent
        .get(&format!("http://{addr}/"))
        .set("Cookie", &format!("pt_session={session}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let needle = "name=\"csrf-token\" content=\"";
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("no csrf-token meta on /: {html}"));
    let rest = html.get(at + needle.len()..).unwrap();
    rest.get(..rest.find('"').unwrap()).unwrap().to_string()
}

#[test]
fn session_callers_need_the_csrf_header_and_starts_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let svc = serve(
        dir.path(),
        &[
            ("POOLTRIAGE_UPLOAD_BURST", "2"),
            ("POOLTRIAGE_UPLOADS_PER_MINUTE", "0.01"),
        ],
    );
    let session = login(svc.addr, &token);
    let csrf = page_csrf(svc.addr, &session);
    assert_eq!(csrf.len(), 64, "{csrf}");
    let cookie = format!("pt_session={session}");
    let body = json!({ "filename": "a.dmp", "size": 1000 }).to_string();

    // Without the header (a cross-site form could send the cookie): 403, nothing started.
    let r = call(
        svc.addr,
        "POST",
        "/api/v1/uploads",
        &[("Cookie", &cookie)],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let wrong = "0".repeat(64);
    let r = call(
        svc.addr,
        "POST",
        "/api/v1/uploads",
        &[("Cookie", &cookie), ("X-CSRF-Token", &wrong)],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let ok = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let r = call(
        svc.addr,
        "POST",
        "/api/v1/uploads",
        &ok,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["upload_url"].as_str().unwrap().to_string();
    // Chunks need it too; reads do not.
    let r = call(
        svc.addr,
        "PUT",
        &url,
        &[("Cookie", &cookie), ("Upload-Offset", "0")],
        Some(b"abc"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call(svc.addr, "GET", &url, &[("Cookie", &cookie)], None);
    assert_eq!((r.status, r.body["offset"].as_u64()), (200, Some(0)));
    let mut h = ok.to_vec();
    h.push(("Upload-Offset", "0"));
    let r = call(svc.addr, "PUT", &url, &h, Some(b"abc"));
    assert_eq!(
        (r.status, r.body["offset"].as_u64()),
        (200, Some(3)),
        "{}",
        r.body
    );

    // Burst of 2: the second start passes, the third is 429 with Retry-After; chunks of an
    // upload already started are not counted.
    let r = call(
        svc.addr,
        "POST",
        "/api/v1/uploads",
        &ok,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        svc.addr,
        "POST",
        "/api/v1/uploads",
        &ok,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    for i in 0..5u64 {
        let off = (3 + i).to_string();
        let mut h = ok.to_vec();
        h.push(("Upload-Offset", &off));
        let r = call(svc.addr, "PUT", &url, &h, Some(b"x"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn abandoned_uploads_expire_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let svc = serve(dir.path(), &[("POOLTRIAGE_UPLOAD_EXPIRY_SECS", "6")]);
    let c = Client::new(svc.addr, &token);
    let r = c.start("a.dmp", 1_000_000);
    let url = r.body["upload_url"].as_str().unwrap().to_string();
    assert_eq!(c.put(&url, 0, &[7u8; 5000]).status, 200);
    assert_eq!(files_in(&dir.path().join("uploads")).len(), 1);
    // Idle for longer than the expiry (checked every second): row and file gone. Six seconds
    // leave the start and the first PUT time enough on a loaded machine (2 s did not, once).
    let start = Instant::now();
    while c.get(&url).status != 404 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "upload never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "expired too early: {:?} after the last PUT",
        start.elapsed()
    );
    assert!(files_in(&dir.path().join("uploads")).is_empty());
    assert_eq!(c.put(&url, 5000, b"x").status, 404);
}
