//! Dump storage under the data directory:
//! - `tmp/<instance>/`: uploads being received by one running service instance (temporary
//!   files, deleted on drop); `tmp/<instance>.lock` is held locked (flock) while it runs;
//! - `dumps/<sha256>`: complete, decompressed dumps, named by content (deduplicated);
//! - `logs/<sha256>`: systems' pool logs (poolmon, poolsnap, counter CSV), stored the same way.
//!
//! A dump enters `dumps/` only by an atomic rename of a complete, fsynced file, so the directory
//! never holds a partial dump.
//!
//! Why one temporary folder per instance: several instances may share one data directory (scale
//! out on PostgreSQL, the data directory on a shared file system). Each removes what a killed
//! instance left behind when it starts, and must not remove the files of uploads that the
//! others are receiving at that moment. An instance's lock dies with its process (even by
//! SIGKILL), so a folder whose lock can be taken belongs to no running instance.

pub mod chunked;
pub use upload::{ingest, name};
pub mod private;
pub mod source;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A dump in `dumps/`, as its upload brought it.
#[derive(Debug, Clone)]
pub struct StoredDump {
    pub sha256: String,
    /// Bytes of the (decompressed) dump.
    pub size: u64,
    /// Bytes received (the .gz/.zip when compressed).
    pub received: u64,
    pub compression: &'static str,
    pub original_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    /// This instance's folder under `tmp/`.
    tmp: PathBuf,
    /// The lock that marks `tmp` as in use, held as long as any clone of this value lives.
    _lock: Arc<File>,
}

impl Storage {
    /// Creates the directories if needed, removes the temporary files of instances that are no
    /// longer running, and claims a temporary folder for this one.
    pub fn open(data_dir: &Path) -> io::Result<Storage> {
        let tmp_root = data_dir.join("tmp");
        std::fs::create_dir_all(data_dir.join("dumps"))?;
        std::fs::create_dir_all(data_dir.join("logs"))?;
        std::fs::create_dir_all(&tmp_root)?;
        remove_stale(&tmp_root)?;
        let (tmp, lock) = claim(&tmp_root)?;
        Ok(Storage {
            root: data_dir.to_path_buf(),
            tmp,
            _lock: Arc::new(lock),
        })
    }

    /// Where this instance receives uploads (on the same file system as `dumps/`, so a finished
    /// upload is moved into place by a rename).
    pub fn tmp_dir(&self) -> PathBuf {
        self.tmp.clone()
    }

    pub fn dumps_dir(&self) -> PathBuf {
        self.root.join("dumps")
    }

    /// Path of a stored dump. `sha256` is always our own lowercase hex digest, never client text.
    pub fn dump_path(&self, sha256: &str) -> PathBuf {
        self.dumps_dir().join(sha256)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Path of a stored log. `sha256` is always our own lowercase hex digest, never client text.
    pub fn log_path(&self, sha256: &str) -> PathBuf {
        self.logs_dir().join(sha256)
    }

    /// Moves a complete log upload into `logs/` as [`Storage::store`] moves a dump.
    pub fn store_log(&self, ingested: ingest::Ingested) -> io::Result<StoredDump> {
        self.store_in(&self.logs_dir(), ingested)
    }

    /// Removes a stored log (no error if it is already gone).
    pub fn remove_log(&self, sha256: &str) -> io::Result<()> {
        match std::fs::remove_file(self.log_path(sha256)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves a complete upload into place under its content name; returns what is known of it.
    pub fn store(&self, ingested: ingest::Ingested) -> io::Result<StoredDump> {
        self.store_in(&self.dumps_dir(), ingested)
    }

    /// Moves a complete upload into `dir` under its content name (an atomic rename of the
    /// fsynced file, then the directory fsynced: acknowledged only once durable).
    fn store_in(&self, dir: &Path, ingested: ingest::Ingested) -> io::Result<StoredDump> {
        let stored = StoredDump {
            sha256: ingested.sha256.clone(),
            size: ingested.size,
            received: ingested.received,
            compression: ingested.compression.as_str(),
            original_name: ingested.original_name.clone(),
        };
        let dest = dir.join(&ingested.sha256);
        // Same content already stored: keep that file, the temporary one is deleted on drop.
        if dest.is_file() {
            return Ok(stored);
        }
        ingested.file.persist(&dest).map_err(|e| e.error)?;
        // The rename is only durable once the directory is: the upload is acknowledged after.
        std::fs::File::open(dir)?.sync_all()?;
        Ok(stored)
    }

    /// Removes a stored dump (no error if it is already gone).
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dump_path(sha256)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Takes a new folder `tmp/<id>/` with its lock `tmp/<id>.lock`. The lock file is created and
/// locked under a temporary name and only then renamed into place, so [`remove_stale`] never
/// sees a lock file that is not yet locked.
fn claim(tmp_root: &Path) -> io::Result<(PathBuf, File)> {
    for _ in 0..16 {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let pending = tmp_root.join(format!(".{id}.lock.new"));
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&pending)?;
        match lock.try_lock() {
            Ok(()) => {}
            // Another instance's clean-up is testing this file: it will remove it.
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => return Err(e),
        }
        match std::fs::rename(&pending, tmp_root.join(format!("{id}.lock"))) {
            Ok(()) => {}
            // Removed by another instance's clean-up between our create and our lock.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        let dir = tmp_root.join(&id);
        std::fs::create_dir(&dir)?;
        return Ok((dir, lock));
    }
    Err(io::Error::other(
        "cannot claim a temporary folder under tmp/",
    ))
}

/// Removes what instances that are no longer running left in `tmp/`: each folder whose lock can
/// be taken (its instance died), folders without a lock file (a clean-up interrupted between
/// its two removals), and loose files (temporary files of versions before per-instance folders).
fn remove_stale(tmp_root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(tmp_root)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            if !tmp_root.join(format!("{name}.lock")).exists() {
                remove_dir(&path)?;
            }
            continue;
        }
        let id = name.strip_suffix(".lock").or_else(|| {
            name.strip_prefix('.')
                .and_then(|n| n.strip_suffix(".lock.new"))
        });
        let Some(id) = id else {
            remove_file(&path)?;
            continue;
        };
        let lock = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match lock.try_lock() {
            // Folder first, then its lock file: a folder never outlives its lock file unlocked.
            Ok(()) => {
                remove_dir(&tmp_root.join(id))?;
                remove_file(&path)?;
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(())
}

fn remove_dir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::Storage;
    use std::path::{Path, PathBuf};

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn an_instance_starting_keeps_the_running_ones_temporary_files() {
        let data = tempfile::tempdir().unwrap();
        let a = Storage::open(data.path()).unwrap();
        let receiving = a.tmp_dir().join("upload-in-progress");
        std::fs::write(&receiving, b"half a dump").unwrap();
        // A loose file as an older version left it.
        let old = data.path().join("tmp").join("tmpXYZ");
        std::fs::write(&old, b"x").unwrap();

        // A second instance on the same data directory (flock conflicts between two open files
        // even in one process, as between two processes).
        let b = Storage::open(data.path()).unwrap();
        assert_ne!(a.tmp_dir(), b.tmp_dir());
        assert!(receiving.is_file(), "b removed a's upload");
        assert!(!old.exists(), "a loose old temporary file was kept");

        // a stops (its lock is released): the next start removes its folder, not b's.
        let a_dir = a.tmp_dir();
        let b_file = b.tmp_dir().join("b-upload");
        std::fs::write(&b_file, b"y").unwrap();
        drop(a);
        let c = Storage::open(data.path()).unwrap();
        assert!(!a_dir.exists(), "a's folder outlived a");
        assert!(b_file.is_file(), "c removed b's upload");
        let mut left = files_under(&data.path().join("tmp"));
        left.sort();
        let mut want = vec![
            b_file,
            c.tmp_dir().with_extension("lock"),
            b.tmp_dir().with_extension("lock"),
        ];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn leftovers_of_an_interrupted_clean_up_are_removed() {
        let data = tempfile::tempdir().unwrap();
        let tmp = data.path().join("tmp");
        std::fs::create_dir_all(tmp.join("deadbeef")).unwrap();
        std::fs::write(tmp.join("deadbeef/part"), b"x").unwrap();
        std::fs::write(tmp.join(".cafe.lock.new"), b"").unwrap();
        let s = Storage::open(data.path()).unwrap();
        let mut left = files_under(&tmp);
        left.sort();
        assert_eq!(left, vec![s.tmp_dir().with_extension("lock")]);
    }
}
