//! Dump storage under the data directory:
//! - `tmp/`: uploads being received (temporary files, deleted on drop and at start);
//! - `dumps/<sha256>`: complete, decompressed dumps, named by content (deduplicated).
//!
//! A dump enters `dumps/` only by an atomic rename of a complete, fsynced file, so the directory
//! never holds a partial dump.

pub mod chunked;
pub mod ingest;
pub mod source;

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    /// Creates the directories if needed and removes temporary files left by a killed server.
    pub fn open(data_dir: &Path) -> io::Result<Storage> {
        let s = Storage {
            root: data_dir.to_path_buf(),
        };
        std::fs::create_dir_all(s.dumps_dir())?;
        std::fs::create_dir_all(s.tmp_dir())?;
        for entry in std::fs::read_dir(s.tmp_dir())? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(s)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn dumps_dir(&self) -> PathBuf {
        self.root.join("dumps")
    }

    /// Path of a stored dump. `sha256` is always our own lowercase hex digest, never client text.
    pub fn dump_path(&self, sha256: &str) -> PathBuf {
        self.dumps_dir().join(sha256)
    }

    /// Moves a complete upload into place under its content name.
    pub fn store(&self, ingested: ingest::Ingested) -> io::Result<()> {
        let dest = self.dump_path(&ingested.sha256);
        // Same content already stored: keep that file, the temporary one is deleted on drop.
        if dest.is_file() {
            return Ok(());
        }
        ingested.file.persist(&dest).map_err(|e| e.error)?;
        // The rename is only durable once the directory is: the upload is acknowledged after.
        std::fs::File::open(self.dumps_dir())?.sync_all()?;
        Ok(())
    }

    /// Removes a stored dump (no error if it is already gone).
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dump_path(sha256)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
