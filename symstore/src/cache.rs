//! The download cache: a directory in symbol-store layout (`name/KEY/name`, so WinDbg can use
//! it too). Files arrive through a temp file in the destination directory that is renamed into
//! place (atomic on one file system: another process sees the old state or the whole file).
//! Each hit sets the file's access time, and after a new file lands the least recently used
//! files are evicted until the cache fits its size limit. Our own state lives in `.pooltriage/`.

use std::fs::{self, File, FileTimes};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Our bookkeeping directory inside a cache (negative cache), never evicted or searched.
pub(crate) const STATE_DIR: &str = ".pooltriage";
/// Temp files older than this are leftovers of a killed process.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Depth of a two-tier store (`na/name/KEY/name`) plus one.
const MAX_DEPTH: usize = 5;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp file in the cache's `.pooltriage/tmp/` (same file system as the cache, so the final
/// rename is atomic; nothing is created under `name/KEY/` until a file really lands there).
/// Removed on drop unless installed.
pub(crate) struct TempFile {
    pub path: PathBuf,
    pub file: File,
    installed: bool,
}

impl TempFile {
    /// Creates `ROOT/.pooltriage/tmp/PID.N.tmp` (creating the directories).
    pub fn new_in(root: &Path) -> io::Result<TempFile> {
        let dir = root.join(STATE_DIR).join("tmp");
        fs::create_dir_all(&dir)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}.{n}.tmp", std::process::id()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempFile {
            path,
            file,
            installed: false,
        })
    }

    /// Flushes to disk and renames over `dest` (creating its directory).
    pub fn install(mut self, dest: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(&self.path, dest)?;
        self.installed = true;
        touch(dest);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Marks a cache file as just used (its access time, which eviction sorts by). Best effort:
/// a read-only cache still serves files.
pub(crate) fn touch(path: &Path) {
    if let Ok(f) = File::options()
        .write(true)
        .open(path)
        .or_else(|_| File::open(path))
    {
        let _ = f.set_times(FileTimes::new().set_accessed(SystemTime::now()));
    }
}

/// Copies `src` into `dest` (inside the cache `root`) through a temp file.
pub(crate) fn copy_in(src: &Path, root: &Path, dest: &Path) -> io::Result<()> {
    let mut tmp = TempFile::new_in(root)?;
    io::copy(&mut File::open(src)?, &mut tmp.file)?;
    tmp.install(dest)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EvictStats {
    pub files: u64,
    pub bytes: u64,
    pub evicted_files: u64,
    pub evicted_bytes: u64,
}

/// Temp files of killed processes (older than an hour; live downloads are younger).
fn remove_stale_temps(cache: &Path) {
    let Ok(rd) = fs::read_dir(cache.join(STATE_DIR).join("tmp")) else {
        return;
    };
    for e in rd.flatten() {
        let age = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| m.elapsed().ok());
        if age.is_some_and(|age| age > STALE_TEMP) {
            let _ = fs::remove_file(e.path());
        }
    }
}

struct Entry {
    path: PathBuf,
    size: u64,
    used: SystemTime,
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<Entry>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        if depth == 0 && name == STATE_DIR {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let path = e.path();
        if meta.is_dir() {
            walk(&path, depth + 1, out);
        } else if meta.is_file() {
            let used = meta
                .accessed()
                .or_else(|_| meta.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if name.to_string_lossy().ends_with(".tmp") && name.to_string_lossy().starts_with('.') {
                // Another process's download in progress, or a leftover.
                if meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP)
                {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            out.push(Entry {
                path,
                size: meta.len(),
                used,
            });
        }
    }
}

/// Evicts least recently used files until the cache holds at most `max_bytes`, never `keep`.
pub(crate) fn evict(cache: &Path, max_bytes: u64, keep: &Path) -> EvictStats {
    remove_stale_temps(cache);
    let mut files = Vec::new();
    walk(cache, 0, &mut files);
    let mut stats = EvictStats {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.size).sum(),
        ..EvictStats::default()
    };
    if stats.bytes <= max_bytes {
        return stats;
    }
    files.sort_by_key(|f| f.used);
    let mut total = stats.bytes;
    for f in files {
        if total <= max_bytes {
            break;
        }
        if f.path == keep {
            continue;
        }
        if fs::remove_file(&f.path).is_ok() {
            total -= f.size;
            stats.evicted_files += 1;
            stats.evicted_bytes += f.size;
            // Drop the KEY and name directories when they became empty.
            let mut dir = f.path.parent();
            while let Some(d) = dir {
                if d == cache || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
    }
    stats
}
