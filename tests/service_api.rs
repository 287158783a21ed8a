//! The dump API of `pooltriage serve` over real HTTP on loopback: uploads (raw, gzip, zip,
//! multipart), dedupe by content, the analyzer's report, hostile uploads (not a dump, too large,
//! zip bomb, truncated body), a highly compressible dump against a bomb of its size, 20 uploads
//! at once, analyzer failures, and a server killed with
//! SIGKILL in the middle of a job.
//!
//! Expected report values come from the corpus README (triage_x64.dmp: build 19041, bugcheck
//! 0x1000007E, 16 CPUs), not from our own output.
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{create_token, pooltriage_bin, spawn_serve, upload_temp_files, ServeProcess};
use serde_json::Value;
use std::io::{Read, Write};
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
    /// `Authorization` header value of an admin token made before the start.
    auth: String,
}

impl Service {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Service {
        let token = create_token(dir, "acme", "admin");
        let mut env = env.to_vec();
        env.insert(0, ("POOLTRIAGE_UPLOAD_BURST", "100"));
        let (child, addr) = spawn_serve(dir, &env);
        Service {
            child,
            addr,
            auth: format!("Bearer {token}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (status, JSON body) of a request, whatever the status.
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        let req = ureq::request(method, &self.url(path))
            .timeout(Duration::from_secs(60))
            .set("Authorization", &self.auth);
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
        let text = resp.into_string().unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (status, v)
    }

    fn upload(&self, body: &[u8]) -> (u16, Value) {
        self.call("POST", "/api/v1/dumps", Some(body))
    }

    /// Polls a dump until it leaves queued/running.
    fn wait_finished(&self, id: &str, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (code, v) = self.call("GET", &format!("/api/v1/dumps/{id}"), None);
            assert_eq!(code, 200, "{v}");
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

/// An admin token (auth is H5's: `pooltriage tokens create`, also with the service running).
fn triage() -> Vec<u8> {
    std::fs::read(TRIAGE).expect("corpus triage dump")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn zip_of(parts: &[&[u8]], repeat_last: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    w.start_file("memory.dmp", opts).unwrap();
    for p in parts {
        w.write_all(p).unwrap();
    }
    if let Some(last) = parts.last() {
        for _ in 0..repeat_last {
            w.write_all(last).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn hex(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn upload_analyse_and_read_the_report_in_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let dump = triage();

    let (code, created) = svc.upload(&dump);
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status_url"], format!("/api/v1/dumps/{id}"));

    let status = svc.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["size"], dump.len() as u64);

    let (code, report) = svc.call("GET", &format!("/api/v1/dumps/{id}/report"), None);
    assert_eq!(code, 200);
    assert_eq!(report["dump"]["build"], 19041, "corpus README: build 19041");
    assert_eq!(
        hex(&report["bugcheck"]["code"]),
        0x1000_007E,
        "corpus README: bugcheck 0x1000007E"
    );
    assert_eq!(report["dump"]["processors"], 16, "corpus README: 16 CPUs");

    // The same content again, raw, gzipped, zipped, or as a multipart form: the same dump.
    for (what, body) in [
        ("raw", dump.clone()),
        ("gzip", gzip(&dump)),
        ("zip", zip_of(&[&dump], 0)),
    ] {
        let (code, again) = svc.upload(&body);
        assert_eq!(code, 200, "{what}: {again}");
        assert_eq!(again["id"], id.as_str(), "{what}");
    }
    let boundary = "----pooltriage-test-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"MEMORY.DMP.gz\"\r\nContent-Type: application/gzip\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&gzip(&dump));
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = ureq::post(&svc.url("/api/v1/dumps"))
        .set("Authorization", &svc.auth)
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send_bytes(&form)
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    assert_eq!(v["id"], id.as_str());

    // One stored file, named by content; the list shows one dump.
    assert_eq!(files_in(&dir.path().join("dumps")).len(), 1);
    let (_, list) = svc.call("GET", "/api/v1/dumps", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // The OpenAPI document names every route.
    let (code, doc) = svc.call("GET", "/api/v1/openapi.json", None);
    assert_eq!(code, 200);
    for p in [
        "/api/v1/dumps",
        "/api/v1/dumps/{id}",
        "/api/v1/dumps/{id}/report",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }

    // Delete: gone from the API and from the disk.
    let (code, _) = svc.call("DELETE", &format!("/api/v1/dumps/{id}"), None);
    assert_eq!(code, 204);
    assert_eq!(svc.call("GET", &format!("/api/v1/dumps/{id}"), None).0, 404);
    assert_eq!(
        svc.call("GET", &format!("/api/v1/dumps/{id}/report"), None)
            .0,
        404
    );
    assert!(files_in(&dir.path().join("dumps")).is_empty());
}

#[test]
fn hostile_uploads_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let dump = triage();

    // Not a dump: 422 with the reader's message.
    let (code, v) =
        svc.upload(b"MDMP\x93\xa7\0\0this is a user-mode minidump, not a kernel dump............");
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["code"], "not_a_dump");
    assert!(
        v["error"].as_str().unwrap().contains("not a kernel dump"),
        "{v}"
    );
    let (code, v) = svc.upload(&gzip(b"just some text"));
    assert_eq!(code, 422, "{v}");

    // Zip bomb: a real dump header, then 256 MiB of zeros (~250 KB compressed).
    let zeros = vec![0u8; 1 << 20];
    let bomb = zip_of(&[dump.get(..0x2000).unwrap(), &zeros], 255);
    assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
    let (code, v) = svc.upload(&bomb);
    assert_eq!(code, 413, "{v}");
    assert_eq!(v["code"], "compression_ratio", "{v}");

    // A truncated body: Content-Length promises the whole dump, the client sends a third and
    // closes the socket.
    let mut s = TcpStream::connect(svc.addr).unwrap();
    write!(
        s,
        "POST /api/v1/dumps HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        svc.auth,
        dump.len()
    )
    .unwrap();
    s.write_all(dump.get(..dump.len() / 3).unwrap()).unwrap();
    s.flush().unwrap();
    // The upload is in progress (its temporary file exists) before the client goes away...
    let start = Instant::now();
    while upload_temp_files(dir.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "upload never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    // ...and is cleaned up after.
    let start = Instant::now();
    while !upload_temp_files(dir.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "temporary file left: {:?}",
            upload_temp_files(dir.path())
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Nothing stored, nothing queued, no temporary file left.
    let (_, list) = svc.call("GET", "/api/v1/dumps", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    assert!(files_in(&dir.path().join("dumps")).is_empty());
    assert!(
        upload_temp_files(dir.path()).is_empty(),
        "{:?}",
        upload_temp_files(dir.path())
    );
}

#[test]
fn size_limit_answers_413_with_or_without_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[("POOLTRIAGE_MAX_UPLOAD_BYTES", "100000")]);
    let dump = triage();

    // Declared length: refused before the body is read. Sent by hand: the server answers
    // before the client has finished writing, which a plain client may report as a write error.
    let mut s = TcpStream::connect(svc.addr).unwrap();
    write!(
        s,
        "POST /api/v1/dumps HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        svc.auth,
        dump.len()
    )
    .unwrap();
    let _ = s.write_all(dump.get(..200_000).unwrap());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("upload_too_large"), "{answer}");

    // Chunked, no length: stopped while streaming.
    let resp = ureq::post(&svc.url("/api/v1/dumps"))
        .set("Authorization", &svc.auth)
        .send(std::io::Cursor::new(dump.clone()));
    match resp {
        Err(ureq::Error::Status(413, r)) => {
            assert!(r.into_string().unwrap().contains("upload_too_large"))
        }
        Err(ureq::Error::Transport(t)) => panic!("transport error instead of 413: {t}"),
        other => panic!("expected 413, got {:?}", other.map(|r| r.status())),
    }
    assert!(files_in(&dir.path().join("dumps")).is_empty());
    assert!(upload_temp_files(dir.path()).is_empty());
}

#[test]
fn twenty_uploads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[("POOLTRIAGE_WORKERS", "2")]);
    let dump = triage();
    // Ten distinct contents (the dump with a different trailer) and ten copies of one.
    let bodies: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            let mut b = dump.clone();
            if i < 10 {
                b.extend(vec![i; usize::from(i) + 1]);
            }
            b
        })
        .collect();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| {
                let svc = &svc;
                scope.spawn(move || {
                    let (code, v) = svc.upload(b);
                    assert!(code == 201 || code == 200, "{code} {v}");
                    v["id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 11, "10 variants + 1 shared content");
    assert!(
        ids.get(10..)
            .unwrap()
            .iter()
            .all(|id| Some(id) == ids.get(10)),
        "identical uploads share one id"
    );
    for id in &distinct {
        let v = svc.wait_finished(id, Duration::from_secs(120));
        assert_eq!(v["status"], "done", "{v}");
    }
}

/// Pids of live processes whose command line mentions `dir`.
fn processes_running(dir: &Path) -> Vec<u32> {
    let needle = dir.to_str().unwrap().as_bytes().to_vec();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Zombies (state Z) are dead already.
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'));
            !zombie && cmd.windows(needle.len()).any(|w| w == needle.as_slice())
        })
        .collect()
}

/// A stand-in analyzer that takes its time, then runs the real one.
fn slow_analyzer(dir: &Path, secs: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("slow-analyzer-{secs}.sh"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nsleep {secs}\nexec '{}' \"$@\"\n",
            pooltriage_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_server_killed_mid_job_finishes_the_job_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let analyzer = slow_analyzer(scripts.path(), 3);
    let analyzer = analyzer.to_str().unwrap();
    let env = [
        ("POOLTRIAGE_ANALYZER", analyzer),
        ("POOLTRIAGE_JOB_LEASE_SECS", "2"),
        ("POOLTRIAGE_WORKERS", "1"),
    ];
    let mut svc = Service::start(dir.path(), &env);
    let (code, v) = svc.upload(&triage());
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Wait until the job runs, then SIGKILL the server.
    let start = Instant::now();
    while svc.call("GET", &format!("/api/v1/dumps/{id}"), None).1["status"] != "running" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "job never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // "running" is recorded just before the analyzer child is spawned: give it a moment.
    let start = Instant::now();
    while processes_running(scripts.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the analyzer runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    drop(svc);
    // The analyzer dies with the server (parent-death signal), no orphan left running.
    let start = Instant::now();
    while !processes_running(scripts.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_millis(1500), // well before the stand-in's 3 s sleep ends
            "orphaned analyzer: {:?}",
            processes_running(scripts.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let svc = Service::start(dir.path(), &env);
    let v = svc.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(
        v["attempts"], 2,
        "claimed once before the kill, once after: {v}"
    );
    let (code, report) = svc.call("GET", &format!("/api/v1/dumps/{id}/report"), None);
    assert_eq!(code, 200);
    assert_eq!(report["dump"]["build"], 19041);
}

#[test]
fn a_dump_that_breaks_the_analyzer_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let slow = slow_analyzer(scripts.path(), 30);
    let svc = Service::start(
        dir.path(),
        &[
            ("POOLTRIAGE_ANALYZER", slow.to_str().unwrap()),
            ("POOLTRIAGE_JOB_TIMEOUT_SECS", "1"),
        ],
    );
    let dump = triage();

    // Header valid (accepted at upload), body cut short: the analyzer exits 2 naming the problem.
    // Here it is killed first by the 1 s time limit.
    let (code, v) = svc.upload(dump.get(..0x3000).unwrap());
    assert_eq!(code, 201, "{v}");
    let v = svc.wait_finished(v["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("time limit"), "{v}");
    let (code, r) = svc.call(
        "GET",
        &format!("/api/v1/dumps/{}/report", v["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(code, 409, "{r}");
    assert_eq!(r["status"], "failed");
    drop(svc);

    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let (code, v) = svc.upload(dump.get(..0x3000).unwrap());
    assert_eq!(code, 201, "{v}");
    let v = svc.wait_finished(v["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("truncated"), "{v}");
    // Written for the customer: no server path (the analyzer named the dump `dumps/<sha256>`).
    let error = v["error"].as_str().unwrap();
    assert!(
        !error.contains("dumps/") && !error.contains(&*dir.path().to_string_lossy()),
        "{v}"
    );
    assert_eq!(v["attempts"], 1, "bad input is not retried: {v}");
}

#[test]
fn sigterm_stops_gracefully_and_the_interrupted_job_keeps_its_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let analyzer = slow_analyzer(scripts.path(), 3);
    let env = [
        ("POOLTRIAGE_ANALYZER", analyzer.to_str().unwrap()),
        ("POOLTRIAGE_WORKERS", "1"),
    ];
    let mut svc = Service::start(dir.path(), &env);
    let (code, v) = svc.upload(&triage());
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while svc.call("GET", &format!("/api/v1/dumps/{id}"), None).1["status"] != "running" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "job never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = svc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = svc.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    drop(svc);

    // Back in the queue without spending an attempt: the restart's claim is attempt 1.
    let svc = Service::start(dir.path(), &env);
    let v = svc.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
}

#[test]
fn an_analyzer_killed_by_a_signal_is_retried_once_then_the_dump_fails() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let killer = scripts.path().join("killed.sh");
    std::fs::write(&killer, "#!/bin/sh\nkill -KILL $$\n").unwrap();
    std::fs::set_permissions(&killer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc = Service::start(
        dir.path(),
        &[("POOLTRIAGE_ANALYZER", killer.to_str().unwrap())],
    );
    let (code, v) = svc.upload(&triage());
    assert_eq!(code, 201, "{v}");
    let v = svc.wait_finished(v["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("signal 9") && error.contains("twice"), "{v}");
}

#[test]
fn tenants_get_their_own_id_for_the_same_content_and_share_the_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let out = Command::new(pooltriage_bin())
        .args([
            "tokens",
            "create",
            "--tenant",
            "other",
            "--role",
            "customer",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let customer = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    let dump = triage();

    let (code, v) = svc.upload(&dump);
    assert_eq!(code, 201, "{v}");
    let admin_id = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        svc.wait_finished(&admin_id, Duration::from_secs(60))["status"],
        "done"
    );

    let resp = ureq::post(&svc.url("/api/v1/dumps"))
        .set("Authorization", &customer)
        .send_bytes(&gzip(&dump))
        .unwrap();
    assert_eq!(resp.status(), 201, "a new dump for this tenant");
    let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    let customer_id = v["id"].as_str().unwrap().to_string();
    assert_ne!(customer_id, admin_id);
    // Already analysed: done at once, same report.
    let status: Value = serde_json::from_str(
        &ureq::get(&svc.url(&format!("/api/v1/dumps/{customer_id}")))
            .set("Authorization", &customer)
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "done", "{status}");
    // The customer cannot see the admin tenant's dump.
    match ureq::get(&svc.url(&format!("/api/v1/dumps/{admin_id}")))
        .set("Authorization", &customer)
        .call()
    {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("expected 404, got {:?}", other.map(|r| r.status())),
    }
    // Deleting one tenant's dump keeps the other's file and report.
    assert_eq!(
        svc.call("DELETE", &format!("/api/v1/dumps/{admin_id}"), None)
            .0,
        204
    );
    let r = ureq::get(&svc.url(&format!("/api/v1/dumps/{customer_id}/report")))
        .set("Authorization", &customer)
        .call()
        .unwrap();
    let report: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(report["dump"]["build"], 19041);
    assert_eq!(files_in(&dir.path().join("dumps")).len(), 1);
}

/// A forged 19041 busy server of 1 GiB, kernel-bitmap (a 133 MiB file).
fn forge_busy_server(work: &Path) -> PathBuf {
    let dump = work.join("forged.dmp");
    let out = Command::new(pooltriage_bin())
        .args([
            "forge",
            "--profile",
            "win10-19041-x64",
            "--format",
            "kernel-bitmap",
            "--scenario",
            "busy-server",
            "--size",
            "1073741824",
            "--out",
        ])
        .arg(&dump)
        .env(
            "POOLTRIAGE_CORPUS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "forge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dump
}

#[test]
fn an_analysis_over_the_memory_limit_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // A forged busy server (the forge is ours, but only its size matters here): with the
    // kernel's layouts (the corpus ISF) the analysis walks the segment heap and ties blocks to
    // modules, which needs more than 16 MB of heap; the analyzer itself starts in about 1 MB.
    // So an 8 MB limit is what fails it.
    let dump = forge_busy_server(work.path());
    let isf = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/isf");
    let svc = Service::start(
        dir.path(),
        &[
            ("POOLTRIAGE_ISF_DIR", isf),
            ("POOLTRIAGE_JOB_MEMORY_BYTES", "8000000"),
        ],
    );
    let (code, v) = svc.upload(&std::fs::read(&dump).unwrap());
    assert_eq!(code, 201, "{v}");
    let v = svc.wait_finished(v["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("memory limit"), "{v}");
    assert_eq!(v["attempts"], 1, "not retried: {v}");
}

/// Counts the compressed bytes the decoder pulls, as the server counts bytes received.
struct Pulled<'a> {
    inner: &'a [u8],
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Read for Pulled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The highest running ratio (decompressed / compressed bytes so far) of a .gz once its output
/// passes `floor`: what the bomb guard judged when it looked at the running ratio from 16 MiB.
fn running_ratio_peak(gz: &[u8], floor: u64) -> u64 {
    let pulled = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut dec = flate2::read::MultiGzDecoder::new(Pulled {
        inner: gz,
        count: pulled.clone(),
    });
    let (mut buf, mut out, mut peak) = (vec![0u8; 64 << 10], 0u64, 0u64);
    loop {
        let n = dec.read(&mut buf).unwrap() as u64;
        if n == 0 {
            return peak;
        }
        out += n;
        if out > floor {
            peak = peak.max(out / pulled.get().max(1));
        }
    }
}

#[test]
fn a_highly_compressible_dump_is_accepted_and_a_bomb_of_its_size_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dump = std::fs::read(forge_busy_server(work.path())).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&dump).unwrap();
    let gz = gz.finish().unwrap();
    // The dump opens with 33 MiB of zero pages: the running ratio from 16 MiB on peaks far
    // above 100 (the guard refused this upload when it judged that), while the whole stream
    // is about 60x.
    let peak = running_ratio_peak(&gz, 16 << 20);
    assert!(peak > 100, "running ratio peaks at only {peak}x");
    let overall = dump.len() / gz.len();
    assert!(overall < 100, "{overall}x overall");

    let svc = Service::start(dir.path(), &[]);
    let (code, v) = svc.upload(&gz);
    assert_eq!(code, 201, "gzip, {} bytes, peak {peak}x: {v}", gz.len());
    assert_eq!(v["size"], dump.len() as u64, "{v}");
    let sha = v["sha256"].as_str().unwrap().to_string();
    let stored = std::fs::read(dir.path().join("dumps").join(&sha)).unwrap();
    assert!(
        stored == dump,
        "the stored dump differs from the one compressed"
    );
    // The same dump as a zip (deflate): the same content.
    let (code, v) = svc.upload(&zip_of(&[&dump], 0));
    assert_eq!(code, 200, "zip: {v}");
    assert_eq!(v["sha256"], sha.as_str(), "{v}");

    // A bomb of the same size (the dump's header, then zeros) is refused.
    let mut bomb = dump.get(..0x2000).unwrap().to_vec();
    bomb.resize(dump.len(), 0);
    let (code, v) = svc.upload(&gzip(&bomb));
    assert_eq!(code, 413, "{v}");
    assert_eq!(v["code"], "compression_ratio", "{v}");
}
