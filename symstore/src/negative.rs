//! Negative cache: "this server does not have this file", remembered for a while in the cache
//! directory (`.pooltriage/miss/<hash>`), so that a second run (or a second process) does not
//! ask Microsoft again for the 140 third-party drivers of a dump. Only clean "not there"
//! answers (404/410) are remembered; failures are the circuit breaker's business.

use super::cache::{TempFile, STATE_DIR};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// FNV-1a, 64-bit: a file name that is stable across processes and Rust versions.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn record_path(cache: &Path, source: &str, index: &str) -> (PathBuf, String) {
    let id = format!("{source}\n{}", index.to_ascii_lowercase());
    (
        cache
            .join(STATE_DIR)
            .join("miss")
            .join(format!("{:016x}", fnv1a(&id))),
        id,
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// True when `source` said "not there" for `index` less than `ttl` ago.
pub(crate) fn is_missing(cache: &Path, source: &str, index: &str, ttl: Duration) -> bool {
    if ttl.is_zero() {
        return false;
    }
    let (path, id) = record_path(cache, source, index);
    let Ok(text) = fs::read_to_string(&path) else {
        return false;
    };
    let Some((created, rest)) = text.split_once('\n') else {
        return false;
    };
    let Ok(created) = created.trim().parse::<u64>() else {
        return false;
    };
    if rest != id {
        return false; // hash collision or damaged record
    }
    let age = now_secs().saturating_sub(created);
    if age < ttl.as_secs().max(1) {
        true
    } else {
        let _ = fs::remove_file(&path);
        false
    }
}

/// Remembers a miss (best effort: an unwritable cache just means asking again).
pub(crate) fn record_miss(cache: &Path, source: &str, index: &str, ttl: Duration) {
    if ttl.is_zero() {
        return;
    }
    let (path, id) = record_path(cache, source, index);
    if let Ok(mut tmp) = TempFile::new_in(cache) {
        if write!(tmp.file, "{}\n{id}", now_secs()).is_ok() {
            let _ = tmp.install(&path);
        }
    }
}

/// Forgets a miss (the file turned up).
pub(crate) fn clear(cache: &Path, source: &str, index: &str) {
    let _ = fs::remove_file(record_path(cache, source, index).0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miss_is_remembered_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(60);
        assert!(!is_missing(dir.path(), "http://h", "a.pdb/K/a.pdb", ttl));
        record_miss(dir.path(), "http://h", "a.pdb/K/a.pdb", ttl);
        assert!(is_missing(dir.path(), "http://h", "A.PDB/K/A.PDB", ttl));
        assert!(!is_missing(
            dir.path(),
            "http://other",
            "a.pdb/K/a.pdb",
            ttl
        ));
        // Same record read with a shorter TTL by another process: expired.
        assert!(!is_missing(
            dir.path(),
            "http://h",
            "a.pdb/K/a.pdb",
            Duration::ZERO
        ));
        let (path, id) = record_path(dir.path(), "http://h", "a.pdb/K/a.pdb");
        fs::write(&path, format!("{}\n{id}", now_secs() - 120)).unwrap();
        assert!(!is_missing(dir.path(), "http://h", "a.pdb/K/a.pdb", ttl));
        assert!(!path.exists(), "an expired record is removed");
        record_miss(dir.path(), "http://h", "a.pdb/K/a.pdb", ttl);
        clear(dir.path(), "http://h", "a.pdb/K/a.pdb");
        assert!(!is_missing(dir.path(), "http://h", "a.pdb/K/a.pdb", ttl));
    }
}
