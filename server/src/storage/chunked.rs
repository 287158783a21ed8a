//! The files of resumable chunked uploads: `<data-dir>/uploads/<id>`, one append-only file per
//! upload session (the session itself is a row of `uploads`, `crate::db::uploads`).
//!
//! Not under `tmp/`, which is emptied at every start: these files must survive a restart, since
//! surviving one is their purpose. The durable resume point is the row's `received`; the file
//! may be longer (bytes written after the last checkpoint by a server that was then killed) and
//! is cut back to `received` before anything is appended, so the file always continues exactly
//! where the client is told to resume.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct ChunkFiles {
    dir: PathBuf,
}

/// The file holds fewer bytes than the database says were made durable: the disk lost data
/// (or someone edited the data directory). The upload cannot continue exactly.
#[derive(Debug, thiserror::Error)]
#[error("upload file holds {have} bytes, fewer than the {expected} recorded")]
pub struct LostBytes {
    pub have: u64,
    pub expected: u64,
}

/// Upload ids are ours (`uuid` simple form: 32 lowercase hex digits). Anything else in a URL is
/// refused before it gets near a path.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ChunkFiles {
    /// Creates `<data_dir>/uploads` if needed.
    pub fn open(data_dir: &Path) -> io::Result<ChunkFiles> {
        let c = ChunkFiles {
            dir: data_dir.join("uploads"),
        };
        std::fs::create_dir_all(&c.dir)?;
        Ok(c)
    }

    /// Path of an upload's file; `None` for an id that is not one of ours.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        valid_id(id).then(|| self.dir.join(id))
    }

    /// Creates the empty file of a new upload and makes its directory entry durable, so the
    /// upload's row never outlives its file across a power loss.
    pub fn create(&self, id: &str) -> io::Result<()> {
        let path = self.path(id).ok_or_else(|| bad_id(id))?;
        File::create(path)?.sync_all()?;
        File::open(&self.dir)?.sync_all()
    }

    /// Opens an upload's file for appending at `offset`, the durable resume point: bytes past it
    /// (never acknowledged) are cut off first.
    pub fn open_at(&self, id: &str, offset: u64) -> io::Result<File> {
        let path = self.path(id).ok_or_else(|| bad_id(id))?;
        let file = OpenOptions::new().write(true).open(path)?;
        let have = file.metadata()?.len();
        if have < offset {
            return Err(io::Error::other(LostBytes {
                have,
                expected: offset,
            }));
        }
        if have > offset {
            file.set_len(offset)?;
        }
        let mut file = file;
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
        Ok(file)
    }

    /// Removes an upload's file (no error if it is already gone).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        let Some(path) = self.path(id) else {
            return Ok(());
        };
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every file that belongs to no receiving upload (left by an upload that completed
    /// or expired while the server was being killed). Returns how many went.
    ///
    /// `keep` was read from the database at `listed_at`, while this server (or another
    /// instance on the same data directory) already takes uploads, and an upload's file is
    /// made before its row: a file modified since `listed_at` may belong to an upload that
    /// `keep` could not know of, so it stays.
    pub fn remove_orphans(
        &self,
        keep: &HashSet<String>,
        listed_at: SystemTime,
    ) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            let recent = meta.modified().map_or(true, |m| m >= listed_at);
            if meta.is_file() && !keep.contains(&name) && !recent {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn bad_id(id: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not an upload id: {id:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn ids_are_checked_before_any_path_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let c = ChunkFiles::open(dir.path()).unwrap();
        assert!(c.path(ID).is_some());
        for bad in [
            "../x",
            "",
            "0123456789ABCDEF0123456789abcdef",
            &format!("{ID}0"),
        ] {
            assert!(c.path(bad).is_none(), "{bad}");
        }
        assert!(c.create("../../etc/passwd").is_err());
    }

    #[test]
    fn appends_resume_at_the_durable_offset_and_cut_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let c = ChunkFiles::open(dir.path()).unwrap();
        c.create(ID).unwrap();
        let mut f = c.open_at(ID, 0).unwrap();
        f.write_all(b"hello world").unwrap();
        drop(f);
        // Only 5 bytes were recorded as durable: resuming there drops " world".
        let mut f = c.open_at(ID, 5).unwrap();
        f.write_all(b"!!").unwrap();
        drop(f);
        assert_eq!(std::fs::read(c.path(ID).unwrap()).unwrap(), b"hello!!");
        // The database claims more than the file has: refused, not papered over.
        let e = c.open_at(ID, 100).unwrap_err();
        assert!(e.get_ref().is_some_and(|i| i.is::<LostBytes>()), "{e}");
        // Orphans go, kept ids stay; a file made after the ids were listed stays too.
        let other = "f".repeat(32);
        c.create(&other).unwrap();
        let keep: HashSet<String> = [ID.to_string()].into();
        let before = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(c.remove_orphans(&keep, before).unwrap(), 0);
        assert!(c.path(&other).unwrap().exists());
        let after = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert_eq!(c.remove_orphans(&keep, after).unwrap(), 1);
        assert!(c.path(ID).unwrap().exists());
        c.remove(ID).unwrap();
        c.remove(ID).unwrap();
    }
}
