//! `pooltriage inspect` with symbols, end to end: the corpus symbol store served over loopback
//! by a plain static file server (Python's `http.server`, nothing of ours), the real triage dump,
//! and the small-dump flow WinDbg uses: amdppm.sys's image fetched by (TimeDateStamp,
//! SizeOfImage), its CodeView record read, then its PDB, then the bugcheck's faulting address
//! named by function. Then the same with the server gone: answered from the cache.
//!
//! Expected function: `llvm-pdbutil dump --publics --section-headers amdppm.pdb` (Debian llvm
//! 14.0.6) lists the public `WriteIoMemRawEx` at 0001:8924 (RVA 0x32dc, .text at 0x1000) and the
//! next one, `WriteIoMemRawHidden`, at RVA 0x3370; the bugcheck's parameter 2 is amdppm.sys+0x334c
//! (corpus README), so WinDbg's name is `amdppm!WriteIoMemRawEx+0x70`.
//! (analyzer/tests/names_pdb.rs runs llvm-pdbutil itself and compares every public.)

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, pooltriage_bin, python};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXPECTED: &str = "amdppm!WriteIoMemRawEx+0x70";

/// `python -m http.server` on an ephemeral loopback port, serving `dir`; killed on drop.
struct StaticServer {
    child: Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let mut child = Command::new(python())
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python http.server starts");
        // "Serving HTTP on 127.0.0.1 port 43117 (http://127.0.0.1:43117/) ..."
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server banner");
        let port: u16 = line
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the server banner {line:?}"));
        // The access log (stderr): which paths were asked for and answered.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        StaticServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn inspect(symbol_path: &str, cwd: &Path, json: bool) -> (Value, String) {
    let dump = corpus().join("dumps/triage_x64.dmp");
    let mut cmd = Command::new(pooltriage_bin());
    cmd.current_dir(cwd)
        .arg("inspect")
        .arg(&dump)
        .arg("--symbol-path")
        .arg(symbol_path);
    cmd.env_remove("_NT_SYMBOL_PATH");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("pooltriage runs");
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = if json {
        serde_json::from_str(&text).expect("JSON")
    } else {
        Value::Null
    };
    (v, text)
}

fn module<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()
}

/// The checks both runs share: amdppm found, the PDB key read from the image, the faulting
/// address and parameter 2 named by function.
fn check_named(report: &Value) {
    let s = &module(report, "amdppm.sys")["symbols"];
    assert_eq!(s["status"], "found", "{s}");
    assert_eq!(
        s["pdb_key_from"], "image",
        "the triage dump has no PE headers for amdppm: {s}"
    );
    // The key in the corpus store's path: amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31.
    assert_eq!(s["pdb"]["name"], "amdppm.pdb");
    assert_eq!(s["pdb"]["guid"], "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3");
    assert_eq!(s["pdb"]["age"], 1);
    let b = &report["bugcheck"];
    assert_eq!(b["faulting"]["address"], "0xfffff8048b58334c");
    assert_eq!(b["faulting"]["from"], "param 2");
    assert_eq!(b["faulting"]["symbol"], EXPECTED);
    assert_eq!(b["faulting"]["named"], true);
    assert_eq!(b["params_named"][1], EXPECTED);
    assert_eq!(b["params_named"][0], Value::Null);
    // Only amdppm is in the store.
    let found = report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["symbols"]["status"] == "found")
        .count();
    assert_eq!(found, 1);
    assert_eq!(report["symbol_summary"]["found"], 1);
}

#[test]
fn triage_dump_named_through_pe_then_pdb_over_http_then_from_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut server = StaticServer::start(&corpus().join("symstore"));
    let symbol_path = format!("srv*{}*{}", cache.display(), server.url);

    let t = Instant::now();
    let (report, _) = inspect(&symbol_path, tmp.path(), true);
    check_named(&report);
    let s = &module(&report, "amdppm.sys")["symbols"];
    assert_eq!(s["source"], server.url.as_str(), "{s}");
    assert_eq!(s["image_source"], server.url.as_str(), "{s}");
    assert_eq!(report["symbol_path"], symbol_path.as_str());
    assert!(report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["symbols"]["status"] != "download failed"));
    eprintln!("with the server: {:?}", t.elapsed());

    // The static server really served the image and then the PDB (its access log, 200s).
    let log = server.requests();
    let served = |needle: &str| {
        log.iter()
            .any(|l| l.contains(needle) && l.contains("\" 200 "))
    };
    assert!(served("/amdppm.sys/"), "image not served: {log:#?}");
    assert!(
        served("/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"),
        "pdb not served: {log:#?}"
    );
    // ... and the cache holds both, in symbol-store layout.
    assert!(cache
        .join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
        .is_file());
    let pdb_path = s["pdb_path"].as_str().unwrap();
    assert!(Path::new(pdb_path).starts_with(&cache), "{pdb_path}");

    // The text summary says the same.
    let (_, text) = inspect(&symbol_path, tmp.path(), false);
    assert!(
        text.lines()
            .any(|l| l.contains("faulting") && l.contains(EXPECTED)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("amdppm.sys") && l.contains("found")),
        "{text}"
    );

    // Server gone: the cache answers, quickly (connection refused is not retried forever).
    server.stop();
    let t = Instant::now();
    let (report, _) = inspect(&symbol_path, tmp.path(), true);
    let elapsed = t.elapsed();
    check_named(&report);
    let s = &module(&report, "amdppm.sys")["symbols"];
    assert_eq!(
        s["source"],
        cache.display().to_string().as_str(),
        "answered from the cache: {s}"
    );
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    eprintln!("server gone: {elapsed:?}");
}

/// Nothing reachable and nothing cached: every module gets a status, the report still comes
/// out (exit 0), and the faulting address is still given as module+offset.
#[test]
fn unreachable_server_is_a_status_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let symbol_path = format!(
        "srv*{}*http://127.0.0.1:{port}",
        tmp.path().join("cache").display()
    );
    let t = Instant::now();
    let (report, _) = inspect(&symbol_path, tmp.path(), true);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let statuses: Vec<&str> = report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["symbols"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 151);
    assert!(
        statuses.iter().all(|s| *s == "download failed"),
        "{statuses:?}"
    );
    let f = &report["bugcheck"]["faulting"];
    assert_eq!(f["symbol"], "amdppm+0x334c");
    assert_eq!(f["named"], false);
    assert_eq!(f["module_offset"], "amdppm.sys+0x334c");
}

/// The same two files published by the `symstore` PyPI tool (which computes the keys itself,
/// `amdppm.sys/C9C030003b000` and `amdppm.pdb/1C19FDDB...1`, and writes its 000Admin files),
/// served over loopback, and then read as a plain local directory: the same answer.
#[test]
fn store_written_by_the_symstore_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let symstore_tool = python().parent().unwrap().join("symstore");
    let c = corpus().join("symstore");
    let out = Command::new(&symstore_tool)
        .arg(&store)
        .arg(c.join("amdppm.sys/c9c030003b000/amdppm.sys"))
        .arg(c.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} not runnable ({e}): scripts/test.sh installs it",
                symstore_tool.display()
            )
        });
    assert!(
        out.status.success(),
        "symstore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        store.join("000Admin").is_dir(),
        "symstore wrote its admin directory"
    );

    let server = StaticServer::start(&store);
    let cache = tmp.path().join("cache");
    let (report, _) = inspect(
        &format!("srv*{}*{}", cache.display(), server.url),
        tmp.path(),
        true,
    );
    check_named(&report);
    assert_eq!(
        module(&report, "amdppm.sys")["symbols"]["source"],
        server.url.as_str()
    );

    // A plain directory entry in symbol-store layout: found in place, no cache involved.
    let (report, _) = inspect(&store.display().to_string(), tmp.path(), true);
    check_named(&report);
    let s = &module(&report, "amdppm.sys")["symbols"];
    assert_eq!(s["source"], store.display().to_string().as_str(), "{s}");
    assert!(
        s["pdb_path"]
            .as_str()
            .is_some_and(|p| Path::new(p).starts_with(&store)),
        "{s}"
    );
}

/// A server that accepts connections and never answers: the first lookups time out, the host
/// is then skipped (circuit breaker), and inspect still finishes in bounded time with the
/// statuses saying so.
#[test]
fn stalled_server_times_out_then_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            held.push(conn); // never read, never answered, never closed
        }
    });
    let symbol_path = format!(
        "srv*{}*http://127.0.0.1:{port}",
        tmp.path().join("cache").display()
    );
    let t = Instant::now();
    let (report, _) = inspect(&symbol_path, tmp.path(), true);
    let elapsed = t.elapsed();
    eprintln!("stalled server: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(90), "{elapsed:?}");
    let summary = &report["symbol_summary"];
    assert!(summary["timed out"].as_u64().unwrap_or(0) >= 1, "{summary}");
    let total: u64 = summary
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 151);
    assert!(summary.get("found").is_none(), "{summary}");
    assert_eq!(
        report["bugcheck"]["faulting"]["module_offset"],
        "amdppm.sys+0x334c"
    );
}
