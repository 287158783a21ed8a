//! Runs the analyzer on one dump in a child process: a dump that crashes, hangs or eats memory
//! takes down the child, never the service.
//!
//! The child is this same executable (`std::env::current_exe()`), so the analyzer that runs is
//! the one that was deployed. Limits:
//! - wall clock: the child is killed (SIGKILL) when the timeout expires;
//! - memory: `prlimit --data=BYTES` (util-linux) caps the child's heap (RLIMIT_DATA counts
//!   private writable mappings since Linux 4.7, not the read-only mapping of the dump, so a
//!   50 GB dump is still mapped whole). Without `prlimit` on PATH the child runs unlimited and
//!   a warning is logged once;
//! - lifetime: `setpriv --pdeathsig KILL` (util-linux) kills the child when the server dies,
//!   even by SIGKILL (the thread that spawned it is a runtime worker, alive as long as the
//!   server). No `unsafe` `pre_exec` is needed for any of these.
//!
//! Symbols: the child gets the service's symbol settings as flags (`--symbol-path` or
//! `--no-symbols`, `--isf-dir`, `--pooltag`) and none of the corresponding environment
//! variables, so what it uses is what the service was configured with. Its only network access
//! is the symbol store named by that path (the analyzer has no other network code); with
//! `--no-symbols` it also gets `POOLTRIAGE_OFFLINE=1`.
//!
//! Progress: with `POOLTRIAGE_PROGRESS=1` the analyzer writes `progress: <stage>` lines on
//! stderr as it enters each stage; they are read as they come ([`StderrLog`]) and reported
//! through a watch channel, and kept out of the failure reason.

use crate::config::SymbolConfig;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;

/// Largest report accepted from the child's stdout.
const MAX_REPORT_BYTES: u64 = 512 << 20;
/// Kept from the child's stderr for the failure reason.
const MAX_STDERR_BYTES: usize = 64 << 10;
/// A stderr line longer than this is cut (the rest of it is dropped).
const MAX_LINE_BYTES: usize = 4096;
/// Longest stage name taken from a `progress:` line.
const MAX_STAGE_LEN: usize = 40;

/// The analyzer command, before the symbol flags and the dump path: the whole pool analysis
/// (docs/json.md, analyze).
pub const ANALYZE_ARGS: &[&str] = &["analyze", "--json"];

/// The arguments after [`ANALYZE_ARGS`]: the symbol settings, then the dump. A tenant's
/// uploaded store (`vendor_store`, relative to the child's working directory, the data
/// directory) comes first in the symbol path, so its PDBs and images win over the public ones.
pub fn analyze_args(
    symbols: &SymbolConfig,
    vendor_store: Option<&Path>,
    dump: &Path,
) -> Vec<OsString> {
    let mut v: Vec<OsString> = Vec::new();
    let path = match (vendor_store, &symbols.symbol_path) {
        (Some(t), Some(p)) => Some(format!("{};{p}", t.display())),
        (Some(t), None) => Some(t.display().to_string()),
        (None, p) => p.clone(),
    };
    match path {
        Some(p) => v.extend(["--symbol-path".into(), p.into()]),
        None => v.push("--no-symbols".into()),
    }
    if let Some(d) = &symbols.isf_dir {
        v.extend(["--isf-dir".into(), d.into()]);
    }
    if let Some(f) = &symbols.pooltag {
        v.extend(["--pooltag".into(), f.into()]);
    }
    v.push(dump.into());
    v
}

/// The child's stderr, read as it comes: `progress: <stage>` lines give the stage, the other
/// lines are kept (the first [`MAX_STDERR_BYTES`]) for the failure reason, and the last
/// non-empty one is the reason itself.
#[derive(Debug, Default)]
pub struct StderrLog {
    /// The current, unfinished line (at most [`MAX_LINE_BYTES`]).
    partial: Vec<u8>,
    /// Bytes of the current line dropped beyond [`MAX_LINE_BYTES`].
    overflow: bool,
    pub kept: String,
    pub last_line: String,
}

impl StderrLog {
    /// Takes a chunk of stderr; returns the last stage announced by the lines it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Option<String> {
        let mut stage = None;
        for &b in chunk {
            if b == b'\n' {
                if let Some(s) = self.end_line() {
                    stage = Some(s);
                }
            } else if self.partial.len() < MAX_LINE_BYTES {
                self.partial.push(b);
            } else {
                self.overflow = true;
            }
        }
        stage
    }

    /// Ends the input: an unterminated last line counts as a line.
    pub fn finish(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            None
        } else {
            self.end_line()
        }
    }

    fn end_line(&mut self) -> Option<String> {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        let overflow = self.overflow;
        self.partial.clear();
        self.overflow = false;
        let text = line.trim_end_matches('\r');
        if !overflow {
            if let Some(stage) = parse_progress(text) {
                return Some(stage.to_string());
            }
        }
        if self.kept.len() < MAX_STDERR_BYTES {
            let room = MAX_STDERR_BYTES - self.kept.len();
            let mut take = text.len().min(room);
            while !text.is_char_boundary(take) {
                take -= 1;
            }
            self.kept.push_str(text.get(..take).unwrap_or(""));
            self.kept.push('\n');
        }
        if !text.trim().is_empty() {
            self.last_line = text.trim().to_string();
        }
        None
    }
}

/// The stage of a `progress: <stage>` line: lower-case letters, digits and `-`, at most
/// [`MAX_STAGE_LEN`] characters (the stage goes into the database and the API as is).
pub fn parse_progress(line: &str) -> Option<&str> {
    let stage = line.strip_prefix("progress: ")?.trim();
    let ok = !stage.is_empty()
        && stage.len() <= MAX_STAGE_LEN
        && stage
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(stage)
}

#[derive(Debug)]
pub enum Outcome {
    /// The JSON report (validated as JSON).
    Report(String),
    /// The dump breaks the analyzer: do not retry.
    Broken(String),
    /// Might work next time (spawn failure, internal error).
    Transient(String),
    /// Killed by a signal we did not send (OOM killer, an operator): retried once only.
    Killed(String),
}

static WARNED_NO_PRLIMIT: AtomicBool = AtomicBool::new(false);

/// What one analysis child gets.
pub struct ChildSpec<'a> {
    /// Analyzer program; None = this executable.
    pub program: Option<&'a Path>,
    pub dump: &'a Path,
    pub work_dir: &'a Path,
    pub timeout: Duration,
    /// RLIMIT_DATA of the child; 0 = unlimited.
    pub memory_bytes: u64,
    pub symbols: &'a SymbolConfig,
    /// The tenant's vendor symbol store, searched first (relative to `work_dir`).
    pub vendor_store: Option<&'a Path>,
}

/// Runs one analysis; each stage the child announces is sent on `stage`.
pub async fn analyze(spec: ChildSpec<'_>, stage: watch::Sender<String>) -> Outcome {
    let mut cmd = match sandboxed(spec.program, spec.memory_bytes) {
        Ok(c) => c,
        Err(o) => return o,
    };
    cmd.args(ANALYZE_ARGS)
        .args(analyze_args(spec.symbols, spec.vendor_store, spec.dump))
        .current_dir(spec.work_dir);
    // No public symbol path: no network either (a vendor store is local).
    if spec.symbols.symbol_path.is_none() {
        cmd.env("POOLTRIAGE_OFFLINE", "1");
    }
    run_child(cmd, spec.timeout, stage, "analysis").await
}

/// What one symbol-ingest child gets (`pooltriage symbols ingest`, the sandbox where uploaded
/// PDBs and images are parsed).
pub struct IngestSpec<'a> {
    pub program: Option<&'a Path>,
    /// The upload, and an empty directory for the files it holds.
    pub upload: &'a Path,
    pub out: &'a Path,
    /// The upload's file name (a single file is stored under it).
    pub name: Option<&'a str>,
    pub limits: crate::vendor_symbols::ingest::IngestLimits,
    pub work_dir: &'a Path,
    pub timeout: Duration,
    pub memory_bytes: u64,
}

/// Unpacks and identifies a symbol upload in a child with the analyses' limits: a hostile PDB
/// or archive makes the child fail, hang (killed at the timeout) or run out of memory, never
/// the server. `Outcome::Report` holds the child's JSON (`IngestOutput`).
pub async fn ingest_symbols(spec: IngestSpec<'_>) -> Outcome {
    let mut cmd = match sandboxed(spec.program, spec.memory_bytes) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let l = spec.limits;
    cmd.args(["symbols", "ingest", "--out"])
        .arg(spec.out)
        .args(["--max-file-bytes", &l.max_file_bytes.to_string()])
        .args(["--max-files", &l.max_files.to_string()])
        .args(["--max-total-bytes", &l.max_total_bytes.to_string()])
        .args(["--max-ratio", &l.max_ratio.to_string()])
        .args(["--ratio-floor-bytes", &l.ratio_floor_bytes.to_string()]);
    if let Some(n) = spec.name {
        cmd.arg("--name").arg(n);
    }
    cmd.arg(spec.upload).current_dir(spec.work_dir);
    let (stage, _) = watch::channel(String::new());
    run_child(cmd, spec.timeout, stage, "reading the symbol files").await
}

/// The child's command behind the sandbox tools: a chain of util-linux tools that each set
/// something on themselves and exec the next, `prlimit --data=N -- setpriv --pdeathsig KILL
/// -- PROGRAM`, with the environment's symbol settings removed.
fn sandboxed(program: Option<&Path>, memory_bytes: u64) -> Result<Command, Outcome> {
    let exe = match program {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| Outcome::Transient(format!("cannot find own executable: {e}")))?,
    };
    let mut chain: Vec<std::ffi::OsString> = Vec::new();
    if memory_bytes > 0 {
        if on_path("prlimit") {
            chain.extend([
                "prlimit".into(),
                format!("--data={memory_bytes}").into(),
                "--".into(),
            ]);
        } else if !WARNED_NO_PRLIMIT.swap(true, Ordering::Relaxed) {
            tracing::warn!("prlimit (util-linux) not found: analyses run without a memory limit");
        }
    }
    // Parent-death signal: if the server dies (even by SIGKILL), the child dies with it
    // instead of running on as an orphan whose result nobody will take.
    if on_path("setpriv") {
        chain.extend([
            "setpriv".into(),
            "--pdeathsig".into(),
            "KILL".into(),
            "--".into(),
        ]);
    }
    chain.push(exe.into_os_string());
    let Some((first, rest)) = chain.split_first() else {
        return Err(Outcome::Transient("empty analyzer command".into()));
    };
    let mut cmd = Command::new(first);
    cmd.args(rest)
        // The flags are the whole symbol configuration: nothing from the service's own
        // environment (`analyze` reads these as defaults) may add to it.
        .env_remove(analyzer::symbols::store::path::ENV_VAR)
        .env_remove("POOLTRIAGE_ISF_DIR")
        .env_remove("POOLTRIAGE_OFFLINE")
        .env("POOLTRIAGE_PROGRESS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

/// Runs a prepared child to its outcome within `timeout`, reading its stdout (the JSON) and its
/// stderr (progress lines on `stage`, the rest kept for the failure reason).
async fn run_child(
    mut cmd: Command,
    timeout: Duration,
    stage: watch::Sender<String>,
    what: &str,
) -> Outcome {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Transient(format!("cannot start the analyzer: {e}")),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Outcome::Transient("analyzer pipes missing".into());
    };
    let out_task = tokio::spawn(async move {
        let mut v = Vec::new();
        let r = stdout.take(MAX_REPORT_BYTES + 1).read_to_end(&mut v).await;
        r.map(|_| v)
    });
    let err_task = tokio::spawn(read_stderr(stderr, stage));
    let status = tokio::select! {
        s = child.wait() => s,
        _ = tokio::time::sleep(timeout) => {
            let _ = child.kill().await;
            out_task.abort();
            err_task.abort();
            return Outcome::Broken(format!("{what} exceeded the time limit of {} s", timeout.as_secs()));
        }
    };
    let stdout = out_task.await.ok().and_then(Result::ok).unwrap_or_default();
    let log = err_task.await.unwrap_or_default();
    let status = match status {
        Ok(s) => s,
        Err(e) => return Outcome::Transient(format!("waiting for the analyzer: {e}")),
    };
    // The last line too: the allocation failure message comes last, maybe past the kept part.
    let stderr = format!("{}\n{}", log.kept, log.last_line);
    classify(status, stdout, &stderr, log.last_line)
}

async fn read_stderr(
    mut stderr: tokio::process::ChildStderr,
    stage: watch::Sender<String>,
) -> StderrLog {
    let mut log = StderrLog::default();
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(s) = log.push(buf.get(..n).unwrap_or(&[])) {
                    stage.send_replace(s);
                }
            }
        }
    }
    if let Some(s) = log.finish() {
        stage.send_replace(s);
    }
    log
}

fn classify(
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: &str,
    last_line: String,
) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    // The allocator's abort message, and the dynamic loader's when the limit is below what
    // the analyzer needs to start at all (its data segment and libc's).
    let out_of_memory = [
        "memory allocation of",
        "out of memory",
        "cannot map zero-fill pages",
    ]
    .iter()
    .any(|m| stderr.contains(m));
    match status.code() {
        Some(0) => {
            if stdout.len() as u64 > MAX_REPORT_BYTES {
                return Outcome::Broken(format!("report larger than {MAX_REPORT_BYTES} bytes"));
            }
            match String::from_utf8(stdout) {
                Ok(s) if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() => {
                    Outcome::Report(s)
                }
                _ => Outcome::Broken(
                    "the analyzer printed something that is not a JSON report".into(),
                ),
            }
        }
        // Exit 2: bad input, with one line naming the problem.
        Some(2) => Outcome::Broken(strip_error(&last_line)),
        Some(code) if out_of_memory => {
            Outcome::Broken(format!("analysis exceeded the memory limit (exit {code})"))
        }
        Some(code) => Outcome::Transient(format!(
            "analyzer failed (exit {code}): {}",
            strip_error(&last_line)
        )),
        None => {
            let sig = status.signal().unwrap_or(0);
            if out_of_memory {
                Outcome::Broken("analysis exceeded the memory limit".into())
            } else {
                Outcome::Killed(format!("analyzer killed by signal {sig}"))
            }
        }
    }
}

fn strip_error(line: &str) -> String {
    let s = line.strip_prefix("error: ").unwrap_or(line);
    if s.is_empty() {
        "analyzer failed without a message".into()
    } else {
        s.chars().take(500).collect()
    }
}

/// Whether a tool is on PATH (looked up once per name).
fn on_path(tool: &'static str) -> bool {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static FOUND: Mutex<Option<HashMap<&'static str, bool>>> = Mutex::new(None);
    let look = || {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
    };
    match FOUND.lock() {
        Ok(mut guard) => *guard
            .get_or_insert_with(HashMap::new)
            .entry(tool)
            .or_insert_with(look),
        Err(_) => look(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exit(code: i32) -> std::process::ExitStatus {
        std::process::ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn progress_lines_give_stages_and_stay_out_of_the_reason() {
        let mut log = StderrLog::default();
        // Chunks split anywhere, even inside a line.
        assert_eq!(log.push(b"progress: open"), None);
        assert_eq!(log.push(b"ing-dump\nprogr"), Some("opening-dump".into()));
        assert_eq!(
            log.push(b"ess: reading-kernel\r\nwarning: x\nprogress: loading-symbols\n"),
            Some("loading-symbols".into()),
            "the last stage of a chunk wins"
        );
        // Not stages: a bad name, upper case, spaces, too long, another prefix. Kept as text.
        let long = format!("progress: {}\n", "a".repeat(MAX_STAGE_LEN + 1));
        for line in [
            "progress: Reading\n",
            "progress: two words\n",
            "progress:\n",
            long.as_str(),
            "  progress: reading-pool\n",
        ] {
            assert_eq!(log.push(line.as_bytes()), None, "{line:?}");
        }
        assert_eq!(
            log.push(b"progress: reading-pool\n"),
            Some("reading-pool".into())
        );
        assert_eq!(log.push(b"error: x.dmp: truncated"), None);
        assert_eq!(log.finish(), None);
        assert_eq!(log.last_line, "error: x.dmp: truncated");
        assert!(
            !log.kept.contains("opening-dump") && !log.kept.contains("\nprogress: reading-pool\n")
        );
        assert!(
            log.kept.starts_with("warning: x\nprogress: Reading\n"),
            "{:?}",
            log.kept
        );
        // An unterminated progress line at the end still counts.
        let mut log = StderrLog::default();
        log.push(b"progress: writing-report");
        assert_eq!(log.finish(), Some("writing-report".into()));
        assert_eq!(log.last_line, "");
        // A huge line is cut, and one that overflowed is never a stage.
        let mut log = StderrLog::default();
        let mut big = b"progress: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES * 3));
        big.push(b'\n');
        assert_eq!(log.push(&big), None);
        assert_eq!(log.last_line.len(), MAX_LINE_BYTES);
        // The kept text is bounded.
        let mut log = StderrLog::default();
        for _ in 0..(MAX_STDERR_BYTES / 10 + 10) {
            log.push(b"123456789\n");
        }
        assert!(log.kept.len() <= MAX_STDERR_BYTES + 1);
    }

    #[test]
    fn the_child_gets_the_symbol_settings_as_flags() {
        let dump = Path::new("dumps/ab");
        let none = SymbolConfig::default();
        assert_eq!(
            analyze_args(&none, None, dump),
            ["--no-symbols", "dumps/ab"]
        );
        // A tenant's store alone (no public path), and before the public path.
        let store = Path::new("vendor-symbols/acme");
        assert_eq!(
            analyze_args(&none, Some(store), dump),
            ["--symbol-path", "vendor-symbols/acme", "dumps/ab"]
        );
        let all = SymbolConfig {
            symbol_path: Some("srv*/d/symbols*http://127.0.0.1:1/".into()),
            isf_dir: Some("/isf".into()),
            pooltag: Some("/p.txt".into()),
        };
        assert_eq!(
            analyze_args(&all, Some(store), dump)[1],
            "vendor-symbols/acme;srv*/d/symbols*http://127.0.0.1:1/"
        );
        assert_eq!(
            analyze_args(&all, None, dump),
            [
                "--symbol-path",
                "srv*/d/symbols*http://127.0.0.1:1/",
                "--isf-dir",
                "/isf",
                "--pooltag",
                "/p.txt",
                "dumps/ab"
            ]
        );
    }

    #[test]
    fn exit_codes_map_to_outcomes() {
        assert!(matches!(
            classify(exit(0), b"{\"a\":1}".to_vec(), "", String::new()),
            Outcome::Report(_)
        ));
        assert!(matches!(
            classify(exit(0), b"{trunc".to_vec(), "", String::new()),
            Outcome::Broken(_)
        ));
        match classify(
            exit(2),
            vec![],
            "error: x.dmp: truncated: header\n",
            "error: x.dmp: truncated: header".into(),
        ) {
            Outcome::Broken(m) => assert_eq!(m, "x.dmp: truncated: header"),
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            classify(exit(1), vec![], "", String::new()),
            Outcome::Transient(_)
        ));
        // A limit too low for the loader: broken, not retried.
        assert!(matches!(
            classify(
                exit(127),
                vec![],
                "pooltriage: error while loading shared libraries: libc.so.6: cannot map zero-fill pages",
                String::new()
            ),
            Outcome::Broken(_)
        ));
        // SIGABRT after a failed allocation under the memory limit: broken, not retried.
        let abrt = std::process::ExitStatus::from_raw(6);
        assert!(matches!(
            classify(
                abrt,
                vec![],
                "memory allocation of 8 bytes failed",
                String::new()
            ),
            Outcome::Broken(_)
        ));
        assert!(matches!(
            classify(
                std::process::ExitStatus::from_raw(9),
                vec![],
                "",
                String::new()
            ),
            Outcome::Killed(_)
        ));
    }
}
