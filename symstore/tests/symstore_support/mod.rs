//! Shared plumbing of the symbol store tests: the corpus store, the tools (python's static
//! file server, gcab, symstore), a fault-injecting HTTP server on 127.0.0.1, and a fast config.
//! Nothing here touches the network beyond loopback. A missing tool is a test FAILURE naming
//! `scripts/test.sh`, which installs it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use symstore::{StoreConfig, SymbolKey};

pub const SETUP_HINT: &str =
    "run scripts/test.sh (it installs python3 with the .venv, gcab and symstore)";

pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The real symbol store of the corpus (Microsoft's layout, amdppm.sys and amdppm.pdb).
pub fn corpus_store() -> PathBuf {
    let p = std::env::var_os("POOLTRIAGE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        })
        .join("symstore");
    assert!(
        p.is_dir(),
        "corpus symbol store not found at {}",
        p.display()
    );
    p
}

/// amdppm.sys as the corpus README identifies it: TimeDateStamp 0xC9C03000, SizeOfImage 0x3B000.
pub fn amdppm_sys() -> SymbolKey {
    SymbolKey::pe("amdppm.sys", 0xC9C0_3000, 0x3B000)
}

/// amdppm.pdb: GUID 1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3, age 1.
pub fn amdppm_pdb() -> SymbolKey {
    SymbolKey::pdb("amdppm.pdb", "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 1)
}

pub fn corpus_sys_bytes() -> Vec<u8> {
    std::fs::read(corpus_store().join("amdppm.sys/c9c030003b000/amdppm.sys"))
        .expect("corpus amdppm.sys")
}

pub fn corpus_pdb_bytes() -> Vec<u8> {
    std::fs::read(corpus_store().join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"))
        .expect("corpus amdppm.pdb")
}

/// A config for tests: short timeouts and backoff, no size limit surprises.
pub fn fast_config(cache: &Path) -> StoreConfig {
    StoreConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_secs(10),
        max_retries: 2,
        retry_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        breaker_threshold: 1000,
        default_cache_dir: cache.to_path_buf(),
        ..StoreConfig::default()
    }
}

/// The venv python (scripts/test.sh), else python3 on PATH.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("POOLTRIAGE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no python found (.venv/bin/python or python3): {SETUP_HINT}"
    );
    PathBuf::from("python3")
}

/// A tool on PATH, or a loud failure.
pub fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("`{name}` not found on PATH: {SETUP_HINT}"))
}

/// The `symstore` command of the venv (symstore on PyPI, pinned in tests/independent/requirements.txt).
pub fn symstore_tool() -> PathBuf {
    let py = python();
    let bin = py
        .parent()
        .map(|d| d.join("symstore"))
        .filter(|p| p.is_file());
    bin.unwrap_or_else(|| {
        panic!(
            "the symstore tool is not installed next to {}: {SETUP_HINT}",
            py.display()
        )
    })
}

/// Runs a command; panics with its output when it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} ({SETUP_HINT})"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Makes `out` (a cabinet holding `src` under its file name) with Debian's gcab, MSZIP.
pub fn gcab_compress(src: &Path, out: &Path) {
    run(Command::new(tool("gcab"))
        .arg("-c")
        .arg("-z")
        .arg("-n")
        .arg(out)
        .arg(src));
}

/// Python's `http.server` serving `dir` on 127.0.0.1 (an ephemeral port); killed on drop.
pub struct StaticServer {
    child: Child,
    pub port: u16,
}

impl StaticServer {
    pub fn start(dir: &Path) -> StaticServer {
        let mut child = Command::new(python())
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python http.server: {e} ({SETUP_HINT})"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("http.server prints its port");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner: {line:?}"));
        // Keep draining its stdout so it never blocks.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        StaticServer { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the fault server does for one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status with an empty body.
    Status(u16),
    /// 200 with this body; `content_length` as sent (None: no header, close-delimited).
    Body {
        body: Vec<u8>,
        content_length: Option<u64>,
        delay: Duration,
    },
    /// Accept, read the request, then say nothing for this long.
    Hang(Duration),
    /// Close the connection without a response.
    Drop,
    /// 302 to this location (Microsoft's server redirects to its blob storage).
    Redirect(String),
    /// Headers with Content-Length, then this many body bytes, then close.
    Truncated { content_length: u64, sent: usize },
    /// 200 without Content-Length, streaming this many bytes.
    Endless(u64),
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// A fault-injecting HTTP/1.1 server on 127.0.0.1 (std TcpListener, one thread per
/// connection), counting requests per path.
pub struct FaultServer {
    pub port: u16,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl FaultServer {
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (c, s) = (Arc::clone(&counts), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, c) = (Arc::clone(&handler), Arc::clone(&c));
                std::thread::spawn(move || serve(conn, &*h, &c));
            }
        });
        FaultServer { port, counts, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests seen for `path` (e.g. "/amdppm.pdb/KEY/amdppm.pdb").
    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, handler: &Handler, counts: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut conn = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        *counts.lock().unwrap().entry(path.clone()).or_default() += 1;
        let status_line = |code: u16| format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
        let result = match handler(&path) {
            Reply::Status(code) => conn.write_all(status_line(code).as_bytes()),
            Reply::Body {
                body,
                content_length,
                delay,
            } => {
                std::thread::sleep(delay);
                let mut head = "HTTP/1.1 200 OK\r\n".to_string();
                match content_length {
                    Some(n) => head.push_str(&format!("Content-Length: {n}\r\n\r\n")),
                    None => head.push_str("Connection: close\r\n\r\n"),
                }
                let r = conn
                    .write_all(head.as_bytes())
                    .and_then(|()| conn.write_all(&body));
                if content_length.is_none() {
                    return;
                }
                r
            }
            Reply::Hang(d) => {
                std::thread::sleep(d);
                return;
            }
            Reply::Drop => return,
            Reply::Redirect(to) => conn.write_all(
                format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            ),
            Reply::Truncated {
                content_length,
                sent,
            } => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {content_length}\r\n\r\n");
                let _ = conn
                    .write_all(head.as_bytes())
                    .and_then(|()| conn.write_all(&vec![b'M'; sent]));
                return;
            }
            Reply::Endless(n) => {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nMZ");
                let chunk = vec![0u8; 64 * 1024];
                let mut sent = 2u64;
                while sent < n {
                    if conn.write_all(&chunk).is_err() {
                        break;
                    }
                    sent += chunk.len() as u64;
                }
                return;
            }
        };
        if result.is_err() {
            return;
        }
    }
}
