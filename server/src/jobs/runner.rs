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

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Largest report accepted from the child's stdout.
const MAX_REPORT_BYTES: u64 = 512 << 20;
/// Kept from the child's stderr for the failure reason.
const MAX_STDERR_BYTES: u64 = 64 << 10;

/// The analyzer command, before the dump path: the whole pool analysis (docs/json.md, analyze).
pub const ANALYZE_ARGS: &[&str] = &["analyze", "--json", "--no-symbols"];

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

pub async fn analyze(
    program: Option<&Path>,
    dump: &Path,
    work_dir: &Path,
    timeout: Duration,
    memory_bytes: u64,
) -> Outcome {
    let exe = match program {
        Some(p) => p.to_path_buf(),
        None => match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return Outcome::Transient(format!("cannot find own executable: {e}")),
        },
    };
    // The command line is a chain of util-linux tools that each set something on themselves and
    // exec the next: `prlimit --data=N -- setpriv --pdeathsig KILL -- ANALYZER ARGS`.
    let mut program: Vec<std::ffi::OsString> = Vec::new();
    if memory_bytes > 0 {
        if on_path("prlimit") {
            program.extend([
                "prlimit".into(),
                format!("--data={memory_bytes}").into(),
                "--".into(),
            ]);
        } else if !WARNED_NO_PRLIMIT.swap(true, Ordering::Relaxed) {
            tracing::warn!("prlimit (util-linux) not found: analyses run without a memory limit");
        }
    }
    // Parent-death signal: if the server dies (even by SIGKILL), the analyzer dies with it
    // instead of running on as an orphan whose result nobody will take.
    if on_path("setpriv") {
        program.extend([
            "setpriv".into(),
            "--pdeathsig".into(),
            "KILL".into(),
            "--".into(),
        ]);
    }
    program.push(exe.into_os_string());
    let Some((first, rest)) = program.split_first() else {
        return Outcome::Transient("empty analyzer command".into());
    };
    let mut cmd = Command::new(first);
    cmd.args(rest);
    cmd.args(ANALYZE_ARGS)
        .arg(dump)
        .current_dir(work_dir)
        .env("POOLTRIAGE_OFFLINE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
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
    let err_task = tokio::spawn(async move {
        let mut v = Vec::new();
        let _ = stderr.take(MAX_STDERR_BYTES).read_to_end(&mut v).await;
        v
    });
    let status = tokio::select! {
        s = child.wait() => s,
        _ = tokio::time::sleep(timeout) => {
            let _ = child.kill().await;
            out_task.abort();
            err_task.abort();
            return Outcome::Broken(format!("analysis exceeded the time limit of {} s", timeout.as_secs()));
        }
    };
    let stdout = out_task.await.ok().and_then(Result::ok).unwrap_or_default();
    let stderr = err_task.await.unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let last_line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    let status = match status {
        Ok(s) => s,
        Err(e) => return Outcome::Transient(format!("waiting for the analyzer: {e}")),
    };
    classify(status, stdout, &stderr, last_line)
}

fn classify(
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: &str,
    last_line: String,
) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let out_of_memory = stderr.contains("memory allocation of") || stderr.contains("out of memory");
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
