//! The upload portal in a real browser: Debian's headless Chromium, driven over the DevTools
//! protocol by `tests/independent/browser_upload.py`, signs in with a token on /login, opens `/`,
//! drops a forged dump on `#drop-zone` (a real drag and drop: Chromium makes the File and fires
//! the drop events), and must land on `/dumps/{id}` showing the report. Then the same while the
//! server is killed (SIGKILL) and restarted in the middle of the upload: `static/upload.js`
//! must resume from the server's offset and the stored dump must be the file, byte for byte.
//!
//! Expected values come from the forge's truth file (the leaking driver, which the page's
//! one-sentence verdict must name) and from coreutils' `sha256sum` of the file. The service gets
//! a copy of the corpus kernel ISFs (`POOLTRIAGE_ISF_DIR`, inherited by the analyzer child). Needs `chromium` (scripts/test.sh APT_PACKAGES) and the venv's
//! websocket-client (tests/independent/requirements.txt): missing, the test FAILS.

#[path = "independent/harness.rs"]
mod harness;

use harness::{create_token, pooltriage_bin, python, script, spawn_serve, ServeProcess};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The service's environment: one worker, and the corpus kernel ISFs (a copy) for the analyzer
/// child, which inherits the environment (`POOLTRIAGE_ISF_DIR`, `pooltriage analyze --isf-dir`):
/// without the kernel's layouts the pool cannot be read and the verdict names no driver.
fn env(isf: &Path) -> Vec<(String, String)> {
    vec![
        ("POOLTRIAGE_WORKERS".into(), "1".into()),
        ("POOLTRIAGE_ISF_DIR".into(), isf.display().to_string()),
        // No symbol server (serve's default is Microsoft's): tests use no network.
        ("POOLTRIAGE_NO_SYMBOLS".into(), "true".into()),
    ]
}

/// A writable copy of the corpus ISF folder (never a link into ../shared).
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
    copy(&harness::corpus().join("isf"), &dir);
    dir
}

/// `pooltriage serve` again on the address a previous instance had (the browser's page and
/// cookie belong to that origin).
fn serve_at(dir: &Path, addr: SocketAddr, env: &[(String, String)]) -> ServeProcess {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = ServeProcess(cmd.spawn().expect("pooltriage serve starts"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("listening on http://{addr}"),
        "restart"
    );
    child
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A forged 19041 leak-tagged dump (256 MiB machine, a ~36 MB file) and its leaking driver,
/// from the truth file.
fn leak_dump(dir: &Path) -> (PathBuf, String) {
    let profile = harness::profile_for_build(19041);
    let mut cmd = Command::new(pooltriage_bin());
    let dump = dir.join("leak.dmp");
    cmd.env("POOLTRIAGE_CORPUS", harness::corpus())
        .args(["forge", "--profile", &profile, "--format", "kernel-bitmap"])
        .args(["--scenario", "leak-tagged", "--size", "268435456", "--out"])
        .arg(&dump);
    harness::run(&mut cmd, "pooltriage forge");
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.truth.json", dump.display())).unwrap(),
    )
    .unwrap();
    let driver = truth["pool"]["drivers"][0]["module"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "truth names no leaking driver: {}",
                truth["pool"]["drivers"]
            )
        })
        .to_string();
    (dump, driver)
}

/// The browser driver, running; its JSON lines arrive on the channel.
struct Browser {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Drop for Browser {
    /// SIGTERM first, so the driver kills Chromium (its process group) before it exits; SIGKILL
    /// after 10 s (Chromium then dies of its parent-death signal).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn start(addr: SocketAddr, token: &str, file: &Path, extra: &[&str]) -> Browser {
        let mut child = Command::new(python())
            .arg(script("browser_upload.py"))
            .args([
                "--base",
                &format!("http://{addr}"),
                "--token",
                token,
                "--file",
            ])
            .arg(file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the venv python runs");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "raw", "line": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the event `name`; an `error` event or the driver's end fails the test.
    fn wait(&mut self, name: &str, within: Duration) -> Value {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let v = match self.lines.recv_timeout(left) {
                Ok(v) => v,
                Err(e) => panic!(
                    "no {name:?} from the browser ({e}); events so far: {:#?}",
                    self.seen
                ),
            };
            self.seen.push(v.clone());
            assert_ne!(
                v["event"], "error",
                "browser: {v}; events: {:#?}",
                self.seen
            );
            if v["event"] == name {
                return v;
            }
        }
    }

    fn finish(mut self) -> Value {
        let done = self.wait("done", Duration::from_secs(240));
        let status = self.child.wait().unwrap();
        // The driver's own check: every --expect / --verdict was on the page.
        let rest: Vec<Value> = self.lines.try_iter().collect();
        assert!(status.success(), "browser driver failed: {rest:?}; {done}");
        done
    }
}

fn dump_id_of(url: &str, addr: SocketAddr) -> String {
    let prefix = format!("http://{addr}/dumps/");
    let id = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("the browser is not on a dump page: {url}"));
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{url}"
    );
    id.to_string()
}

fn api_get(addr: SocketAddr, token: &str, path: &str) -> Value {
    let r = ureq::get(&format!("http://{addr}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

#[test]
fn chromium_drops_a_dump_on_the_portal_and_lands_on_its_report() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (dump, driver) = leak_dump(work.path());
    let token = create_token(dir.path(), "acme", "customer");
    let env = env(&copy_isf(work.path()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_svc, addr) = spawn_serve(dir.path(), &env_ref);

    let mut b = Browser::start(
        addr,
        &token,
        &dump,
        &["--verdict", &driver, "--timeout", "180"],
    );
    b.wait("logged_in", Duration::from_secs(60));
    b.wait("dropped", Duration::from_secs(30));
    let page = b.wait("page", Duration::from_secs(120));
    let id = dump_id_of(page["url"].as_str().unwrap(), addr);
    let done = b.finish();
    // The report's one-sentence verdict names the driver the forge made leak.
    let verdict = done["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.contains(&driver) && verdict.contains("leak"),
        "the verdict names {driver}: {verdict:?}; page: {}",
        done["text"]
    );

    // The dump the browser landed on is this tenant's, and it is the dropped file.
    let status = api_get(addr, &token, &format!("/api/v1/dumps/{id}"));
    assert_eq!(status["sha256"], sha256sum(&dump), "{status}");
    assert_eq!(status["original_name"], "leak.dmp");
    assert_eq!(status["status"], "done", "{status}");
    // It came through the resumable upload API (its file is gone once complete).
    assert!(std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn the_browser_upload_resumes_after_the_server_is_killed_mid_upload() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (dump, driver) = leak_dump(work.path());
    let size = std::fs::metadata(&dump).unwrap().len();
    let token = create_token(dir.path(), "acme", "customer");
    let env = env(&copy_isf(work.path()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (svc, addr) = spawn_serve(dir.path(), &env_ref);

    // 4 MB/s: the ~36 MB upload takes ~9 s, long enough to kill the server in the middle.
    let mut b = Browser::start(
        addr,
        &token,
        &dump,
        &[
            "--throttle",
            "4000000",
            "--verdict",
            &driver,
            "--timeout",
            "180",
        ],
    );
    b.wait("dropped", Duration::from_secs(90));
    // Wait until the first chunk is durable on the server, then SIGKILL it mid-upload.
    let uploads = dir.path().join("uploads");
    let start = Instant::now();
    let (upload_id, offset) = loop {
        let id = std::fs::read_dir(&uploads)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .next();
        // The file is made just before the upload's row: 404 for a moment.
        let found = id.and_then(|id| {
            let r = ureq::get(&format!("http://{addr}/api/v1/uploads/{id}"))
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .ok()?;
            let u: Value = serde_json::from_str(&r.into_string().ok()?).ok()?;
            Some((id, u["offset"].as_u64()?))
        });
        if let Some((id, offset)) = found.filter(|f| f.1 > 0) {
            break (id, offset);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "upload never progressed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(offset < size, "killed before the end ({offset} of {size})");
    drop(svc); // SIGKILL
    std::thread::sleep(Duration::from_millis(500));
    let svc = serve_at(dir.path(), addr, &env);
    let resumed = api_get(addr, &token, &format!("/api/v1/uploads/{upload_id}"));
    assert!(resumed["offset"].as_u64().unwrap() >= offset, "{resumed}");
    assert_eq!(resumed["complete"], false);

    let page = b.wait("page", Duration::from_secs(180));
    let id = dump_id_of(page["url"].as_str().unwrap(), addr);
    // The browser saw the connection fail and said it would resume.
    assert!(
        b.seen
            .iter()
            .any(|e| e["status"].as_str().is_some_and(|s| s.contains("resuming"))),
        "no resume shown: {:#?}",
        b.seen
    );
    let done = b.finish();
    assert!(
        done["verdict"]
            .as_str()
            .unwrap_or_default()
            .contains(&driver),
        "{done}"
    );
    let status = api_get(addr, &token, &format!("/api/v1/dumps/{id}"));
    assert_eq!(
        status["sha256"],
        sha256sum(&dump),
        "the stored dump is the file: {status}"
    );
    let u = api_get(addr, &token, &format!("/api/v1/uploads/{upload_id}"));
    assert_eq!(
        (u["complete"].as_bool(), u["dump_id"].as_str()),
        (Some(true), Some(id.as_str())),
        "one upload, resumed: {u}"
    );
    drop(svc);
}

#[test]
fn the_file_picker_and_submit_button_upload_through_the_script_too() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (dump, driver) = leak_dump(work.path());
    let token = create_token(dir.path(), "acme", "customer");
    let env = env(&copy_isf(work.path()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_svc, addr) = spawn_serve(dir.path(), &env_ref);
    let mut b = Browser::start(
        addr,
        &token,
        &dump,
        // Throttled to ~2 s so the progress is seen whatever the machine's speed.
        &[
            "--via",
            "picker",
            "--throttle",
            "20000000",
            "--verdict",
            &driver,
            "--timeout",
            "180",
        ],
    );
    let page = b.wait("page", Duration::from_secs(120));
    let id = dump_id_of(page["url"].as_str().unwrap(), addr);
    // The script took over the form (chunked upload with progress), not the plain multipart post.
    assert!(
        b.seen.iter().any(|e| e["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Uploading leak.dmp"))),
        "no progress from upload.js: {:#?}",
        b.seen
    );
    b.finish();
    let status = api_get(addr, &token, &format!("/api/v1/dumps/{id}"));
    assert_eq!(status["sha256"], sha256sum(&dump));
}
