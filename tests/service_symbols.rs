//! The service's analyses get kernel symbols (docs/api.md, "Symbols"), over
//! real HTTP on loopback and nothing else:
//! - `pooltriage serve --symbol-path srv*CACHE*http://127.0.0.1:PORT/` against a symbol store
//!   laid out as Microsoft's (`name/GUIDAGE/name`) that holds the real XP kernel PDB
//!   (corpus `pdb/ntkrnlpa.pdb`): a forged XP dump of that kernel is analysed with it (the
//!   block counts, verdict and leaked bytes equal the forge's truth; without the profile the
//!   big allocations are not found), the store is asked once, a second dump of the same
//!   kernel is served from the cache; two workers fetching at once leave one whole file;
//! - a symbol server that does not answer: the job is done (not failed), without a profile;
//! - `serve --isf-dir` with a copy of the corpus ISF folder: a Windows 10 19041 dump; with
//!   `--pooltag`, the operator's tag description in the report.
//!
//! No `POOLTRIAGE_ISF_DIR` reaches the service (removed from its environment). The store is a
//! small HTTP server in this file, because the test must see which files were asked for.
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use harness::{corpus, pooltriage_bin, Forged};
use serde_json::Value;
use service::{Service, Token};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const XP: &str = "xp-2600-x86pae";
const WIN10: &str = "win10-19041-x64";

/// A static symbol store over HTTP on loopback that records every path asked for.
struct SymbolServer {
    url: String,
    requests: Arc<Mutex<Vec<(String, u16)>>>,
}

impl SymbolServer {
    fn start(root: &Path) -> SymbolServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (root, log) = (root.clone(), log.clone());
                std::thread::spawn(move || serve_one(conn, &root, &log));
            }
        });
        SymbolServer {
            url: format!("http://{addr}"),
            requests,
        }
    }

    fn requests(&self) -> Vec<(String, u16)> {
        self.requests.lock().unwrap().clone()
    }
}

/// One request: GET of a file under `root` (200) or 404; the connection is then closed.
fn serve_one(mut conn: TcpStream, root: &Path, log: &Mutex<Vec<(String, u16)>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Only plain relative components: the test store is not a file server for anything else.
    let rel: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let safe = rel
        .iter()
        .all(|c| !c.is_empty() && *c != "." && *c != ".." && !c.contains('\\'));
    let body = if safe {
        std::fs::read(rel.iter().fold(root.to_path_buf(), |p, c| p.join(c))).ok()
    } else {
        None
    };
    let status = if body.is_some() { 200 } else { 404 };
    log.lock().unwrap().push((path, status));
    let body = body.unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Not Found" },
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
}

/// `name/KEY/name` of a PDB as Microsoft's server keys it: GUID in upper-case hex without
/// dashes, then the age in hex (docs/symbols.md, "Keys and store layout").
fn pdb_key_path(pdb: &Value) -> String {
    let name = pdb["name"].as_str().expect("truth kernel.pdb.name");
    let guid = pdb["guid"]
        .as_str()
        .unwrap()
        .replace('-', "")
        .to_uppercase();
    let age = pdb["age"].as_u64().unwrap();
    format!("{name}/{guid}{age:X}/{name}")
}

/// `pooltriage serve` with these flags, none of the symbol variables of the test's own
/// environment, one tenant token made beforehand.
fn serve(dir: &Path, flags: &[&str], workers: usize) -> Service {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--workers", &workers.to_string()])
        .args(flags)
        .env_remove("POOLTRIAGE_ISF_DIR")
        .env_remove("_NT_SYMBOL_PATH")
        .env_remove("POOLTRIAGE_SYMBOL_PATH")
        .env_remove("POOLTRIAGE_NO_SYMBOLS")
        .env_remove("POOLTRIAGE_ANALYZER")
        .env("POOLTRIAGE_UPLOAD_BURST", "1000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    harness::with_test_database(&mut cmd, dir);
    let mut child = cmd.spawn().expect("pooltriage serve starts");
    let addr = harness::listening_address(&mut child);
    Service {
        child: harness::ServeProcess(child),
        addr,
        dir: dir.to_path_buf(),
    }
}

/// The only leaking driver of a forged scenario and its leaked bytes, from the truth file.
fn leaker(f: &Forged) -> (String, u64) {
    let drivers = f.truth["pool"]["drivers"]
        .as_array()
        .expect("truth pool.drivers");
    assert_eq!(drivers.len(), 1, "one leaker in the truth");
    (
        drivers[0]["module"].as_str().unwrap().to_lowercase(),
        drivers[0]["leaked_bytes"].as_u64().unwrap(),
    )
}

fn forge_scenario(dir: &Path, profile: &str, scenario: &str) -> Forged {
    harness::forge_scenario(dir, profile, scenario, None).expect("the forge makes this scenario")
}

/// Uploads a dump and returns (id, its report) once done; a failed job fails the test.
fn analyse(svc: &Service, token: &Token, f: &Forged) -> (String, Value) {
    let id = svc.upload(token, &std::fs::read(&f.dump).unwrap(), "");
    let st = svc.wait_finished(token, &id, Duration::from_secs(300));
    assert_eq!(st["status"], "done", "{st}");
    assert_eq!(st["attempts"], 1, "{st}");
    let report = svc.get(token, &format!("/api/v1/dumps/{id}/report"));
    assert_eq!(report["kind"], "analysis", "{report}");
    (id, report)
}

/// The report's verdict names the truth's leaker and its per-driver bytes are the truth's.
fn assert_verdict_matches_truth(report: &Value, f: &Forged) {
    let (module, bytes) = leaker(f);
    assert_eq!(
        report["verdict"]["drivers"],
        serde_json::json!([module]),
        "{}",
        report["verdict"]
    );
    let row = report["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["module"].as_str().map(str::to_lowercase) == Some(module.clone()))
        .unwrap_or_else(|| panic!("no driver row for {module}"));
    assert_eq!(row["bytes"].as_u64(), Some(bytes), "{row}");
}

/// The profile's part of the evidence: the block walk found what the forge planted, big
/// allocations included (found through PoolBigPageTable, which only the symbols locate).
fn assert_blocks_match_truth(report: &Value, f: &Forged) {
    let counts = &f.truth["pool"]["block_counts"];
    // The truth lists the kinds of block the profile's pool has (classic on XP, segment heap
    // on Windows 10); an absent kind is 0.
    for kind in ["classic", "big", "lfh", "vs"] {
        let want = counts[kind].as_u64().unwrap_or(0);
        assert_eq!(
            report["blocks"][kind]["count"].as_u64(),
            Some(want),
            "{kind}: {}",
            report["blocks"]
        );
    }
    assert_ne!(
        counts["big"].as_u64().unwrap_or(0),
        0,
        "the truth has big allocations"
    );
    assert_eq!(report["blocks"]["complete"], true, "{}", report["blocks"]);
}

/// The files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A Microsoft-layout store with the real XP kernel PDB under the key of the forged kernel.
fn xp_store(work: &Path, truth: &Value) -> (PathBuf, String) {
    let store = work.join("store");
    let key = pdb_key_path(&truth["kernel"]["pdb"]);
    let dest = store.join(&key);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(corpus().join("pdb/ntkrnlpa.pdb"), &dest).unwrap();
    (store, key)
}

#[test]
fn kernel_pdb_from_a_loopback_symbol_server_then_from_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tagged = forge_scenario(work.path(), XP, "leak-tagged");
    let untagged = forge_scenario(work.path(), XP, "leak-untagged");
    assert_eq!(
        tagged.truth["kernel"]["pdb"], untagged.truth["kernel"]["pdb"],
        "both dumps run the same kernel"
    );
    let (store, key) = xp_store(work.path(), &tagged.truth);
    let server = SymbolServer::start(&store);
    let cache = work.path().join("cache");
    let sympath = format!("srv*{}*{}/", cache.display(), server.url);
    let token = Token::new(data.path(), "acme", "customer");
    let svc = serve(data.path(), &["--symbol-path", &sympath], 1);

    let (id, report) = analyse(&svc, &token, &tagged);
    let cached = cache.join(&key);
    assert_eq!(report["symbols"]["source"], "pdb", "{}", report["symbols"]);
    // Named inside its store, never by where the server keeps it.
    assert_eq!(report["symbols"]["path"], key.as_str());
    assert_eq!(report["symbols"]["matches_kernel"], true);
    assert_verdict_matches_truth(&report, &tagged);
    assert_blocks_match_truth(&report, &tagged);
    let kernel_requests = |s: &SymbolServer| -> Vec<(String, u16)> {
        s.requests()
            .into_iter()
            .filter(|(p, _)| p.to_lowercase().starts_with("/ntkrnlpa.pdb/"))
            .collect()
    };
    assert_eq!(
        kernel_requests(&server),
        [(format!("/{key}"), 200)],
        "the kernel PDB is asked for once, under Microsoft's key"
    );
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        std::fs::read(corpus().join("pdb/ntkrnlpa.pdb")).unwrap(),
        "the cache holds the PDB whole"
    );
    // The dump page says where the kernel's symbols came from.
    let page = ureq::get(&svc.url(&format!("/dumps/{id}")))
        .set("Authorization", &token.0)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        page.contains(&format!(
            "Kernel symbols: pdb {}",
            key.split_once('/').unwrap().1
        )),
        "dump page lacks the symbol source (<GUID><age>/ntkrnlpa.pdb of the store key {key})"
    );
    assert!(
        !page.contains(&cache.display().to_string()),
        "the dump page shows where the server keeps its symbol cache"
    );

    // Same kernel again: the cache answers, the server is not asked.
    let (_, report) = analyse(&svc, &token, &untagged);
    assert_eq!(report["symbols"]["source"], "pdb");
    assert_eq!(report["symbols"]["path"], key.as_str());
    assert_verdict_matches_truth(&report, &untagged);
    assert_eq!(kernel_requests(&server).len(), 1, "{:?}", server.requests());
}

#[test]
fn two_workers_fetching_the_same_pdb_leave_one_whole_file() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tagged = forge_scenario(work.path(), XP, "leak-tagged");
    let untagged = forge_scenario(work.path(), XP, "leak-untagged");
    let (store, key) = xp_store(work.path(), &tagged.truth);
    let server = SymbolServer::start(&store);
    // The default cache (`srv**URL`): under the data directory.
    let sympath = format!("srv**{}", server.url);
    let token = Token::new(data.path(), "acme", "customer");
    let svc = serve(data.path(), &["--symbol-path", &sympath], 2);
    let ids: Vec<String> = [&tagged, &untagged]
        .iter()
        .map(|f| svc.upload(&token, &std::fs::read(&f.dump).unwrap(), ""))
        .collect();
    // The default cache (`<data>/symbols`): named inside it, as any store.
    let cached = format!("symbols/{key}");
    for (id, f) in ids.iter().zip([&tagged, &untagged]) {
        let st = svc.wait_finished(&token, id, Duration::from_secs(300));
        assert_eq!(st["status"], "done", "{st}");
        let report = svc.get(&token, &format!("/api/v1/dumps/{id}/report"));
        assert_eq!(report["symbols"]["source"], "pdb", "{}", report["symbols"]);
        assert_eq!(report["symbols"]["path"], key.as_str());
        assert_verdict_matches_truth(&report, f);
    }
    let asked = server
        .requests()
        .iter()
        .filter(|(p, s)| *p == format!("/{key}") && *s == 200)
        .count();
    assert!((1..=2).contains(&asked), "{:?}", server.requests());
    assert_eq!(
        std::fs::read(data.path().join(&cached)).unwrap(),
        std::fs::read(corpus().join("pdb/ntkrnlpa.pdb")).unwrap()
    );
    // No temp file left behind, and only the one PDB in the cache besides our state.
    let symbols = data.path().join("symbols");
    let stray: Vec<PathBuf> = files_under(&symbols)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let pdbs: Vec<PathBuf> = files_under(&symbols)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pdb"))
        .collect();
    assert_eq!(pdbs, [symbols.join(&key)]);
}

#[test]
fn an_unreachable_symbol_server_does_not_fail_the_job() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tagged = forge_scenario(work.path(), XP, "leak-tagged");
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sympath = format!(
        "srv*{}*http://127.0.0.1:{port}/",
        work.path().join("cache").display()
    );
    let token = Token::new(data.path(), "acme", "customer");
    let svc = serve(data.path(), &["--symbol-path", &sympath], 1);
    let (_, report) = analyse(&svc, &token, &tagged);
    // Without the profile: the built-in layouts, the leaker still named (the tag tables and
    // the classic blocks need no symbols), the big allocations not found.
    assert_eq!(report["symbols"]["source"], "none", "{}", report["symbols"]);
    assert_verdict_matches_truth(&report, &tagged);
    assert_eq!(report["blocks"]["big"]["count"], 0);
    assert_ne!(
        tagged.truth["pool"]["block_counts"]["big"], 0,
        "the truth has big allocations the profile would have found"
    );
}

#[test]
fn isf_dir_flag_gives_the_windows_10_profile() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tagged = forge_scenario(work.path(), WIN10, "leak-tagged");
    let isf = work.path().join("isf");
    copy_dir(&corpus().join("isf"), &isf);
    // The operator's pooltag file (`Tag - binary - description`): its description is shown.
    let pooltag = work.path().join("pooltag.txt");
    std::fs::write(
        &pooltag,
        "Leak - leaky.sys - the operator's own description\n",
    )
    .unwrap();
    let token = Token::new(data.path(), "acme", "customer");
    let svc = serve(
        data.path(),
        &[
            "--isf-dir",
            isf.to_str().unwrap(),
            "--no-symbols",
            "--pooltag",
            pooltag.to_str().unwrap(),
        ],
        1,
    );
    let (_, report) = analyse(&svc, &token, &tagged);
    let leak = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "Leak")
        .expect("tag Leak in the report");
    assert!(
        leak["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["source"] == "pool-tag-file"
                && o["description"] == "the operator's own description"),
        "{leak}"
    );
    assert_eq!(report["symbols"]["source"], "isf", "{}", report["symbols"]);
    // Named inside the ISF directory, never by where the server keeps it.
    let path = report["symbols"]["path"].as_str().unwrap();
    assert!(
        Path::new(path).is_relative() && isf.join(path).is_file(),
        "{path}"
    );
    assert_verdict_matches_truth(&report, &tagged);
    assert_blocks_match_truth(&report, &tagged);
}

/// Copies a folder tree (the corpus is read-only and never linked into).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
