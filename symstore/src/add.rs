//! Writes files into a local symbol store as `symstore.exe add` lays them out:
//! `name/KEY/name` (two-tier `na/name/KEY/name` when the store holds `index2.txt`), the key
//! read from the file beforehand (the caller (`analyzer::symbols::identify`)), never from its name.
//!
//! A file lands whole or not at all: it is written (or moved) to a temporary name in its key
//! directory and then hard-linked to its final name, which fails rather than replace a file
//! another writer put there first. A key already present is never overwritten: the same
//! content is a duplicate, different content under the same key is a conflict the caller
//! reports (a re-signed image keeps its TimeDateStamp and SizeOfImage).

use super::key::SymbolKey;
use super::local::child_ci;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// The file is now at this path.
    Added(PathBuf),
    /// The store already held the same bytes under this key, at this path.
    Duplicate(PathBuf),
    /// The store holds different bytes under this key, at this path (left as they are).
    Conflict(PathBuf),
}

impl AddOutcome {
    pub fn path(&self) -> &Path {
        match self {
            AddOutcome::Added(p) | AddOutcome::Duplicate(p) | AddOutcome::Conflict(p) => p,
        }
    }
}

/// Whether `src` is copied (the command line) or moved (the service's sandbox output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Copy,
    Move,
}

/// Puts `src` into the store at `root` under `key` (validated here: its name is one safe path
/// component).
pub fn add(root: &Path, key: &SymbolKey, src: &Path, how: Transfer) -> io::Result<AddOutcome> {
    key.validate().map_err(io::Error::other)?;
    let dir = key_dir(root, key)?;
    if let Some(existing) = child_ci(&dir, key.name()).filter(|p| p.is_file()) {
        return compare(src, existing);
    }
    let dest = dir.join(key.name());
    let tmp = dir.join(format!(".{}.{}.tmp", key.name(), uuid_like()));
    match how {
        Transfer::Copy => {
            fs::copy(src, &tmp)?;
        }
        Transfer::Move => fs::rename(src, &tmp)?,
    }
    File::open(&tmp)?.sync_all()?;
    let outcome = match fs::hard_link(&tmp, &dest) {
        Ok(()) => File::open(&dir)?
            .sync_all()
            .map(|()| AddOutcome::Added(dest)),
        // Another writer added the same key meanwhile: theirs stays.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => compare(&tmp, dest),
        Err(e) => Err(e),
    };
    fs::remove_file(&tmp)?;
    outcome
}

/// `root/[na/]name/KEY/`, made if needed; existing directories are reused whatever their case.
fn key_dir(root: &Path, key: &SymbolKey) -> io::Result<PathBuf> {
    fs::create_dir_all(root)?;
    let mut dir = root.to_path_buf();
    if child_ci(root, "index2.txt").is_some_and(|p| p.is_file()) {
        let prefix: String = key.name().chars().take(2).collect();
        dir = sub_ci(&dir, &prefix)?;
    }
    dir = sub_ci(&dir, key.name())?;
    sub_ci(&dir, &key.id())
}

fn sub_ci(dir: &Path, name: &str) -> io::Result<PathBuf> {
    if let Some(p) = child_ci(dir, name).filter(|p| p.is_dir()) {
        return Ok(p);
    }
    let p = dir.join(name);
    match fs::create_dir(&p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(p),
    }
}

/// Duplicate when `src` holds the bytes of `existing`, else conflict.
fn compare(src: &Path, existing: PathBuf) -> io::Result<AddOutcome> {
    if same_bytes(src, &existing)? {
        Ok(AddOutcome::Duplicate(existing))
    } else {
        Ok(AddOutcome::Conflict(existing))
    }
}

fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        if n != read_full(&mut fb, &mut bb)? || ba.get(..n) != bb.get(..n) {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A name no other writer picks: process id and a counter.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_under_their_key_once() {
        let store = tempfile::tempdir().unwrap();
        let src = store.path().join("in.pdb");
        fs::write(&src, b"Microsoft C/C++ MSF 7.00 fake").unwrap();
        let key = SymbolKey::pdb("drv.pdb", "0123456789ABCDEF0123456789ABCDEF", 1);
        let a = add(store.path(), &key, &src, Transfer::Copy).unwrap();
        let want = store
            .path()
            .join("drv.pdb/0123456789ABCDEF0123456789ABCDEF1/drv.pdb");
        assert_eq!(a, AddOutcome::Added(want.clone()));
        assert_eq!(fs::read(&want).unwrap(), fs::read(&src).unwrap());
        let again = add(store.path(), &key, &src, Transfer::Copy).unwrap();
        assert_eq!(again, AddOutcome::Duplicate(want.clone()));
        fs::write(&src, b"other bytes").unwrap();
        let other = add(store.path(), &key, &src, Transfer::Move).unwrap();
        assert_eq!(other, AddOutcome::Conflict(want.clone()));
        assert!(src.exists(), "a conflicting file is not moved");
        // Only the file: no temporary names left.
        let dir = want.parent().unwrap();
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    }

    #[test]
    fn two_tier_stores_and_existing_case_are_kept() {
        let store = tempfile::tempdir().unwrap();
        fs::write(store.path().join("index2.txt"), b"").unwrap();
        fs::create_dir_all(store.path().join("am/AMDPPM.SYS")).unwrap();
        let src = store.path().join("x");
        fs::write(&src, b"MZ").unwrap();
        let key = SymbolKey::pe("amdppm.sys", 0xC9C03000, 0x3b000);
        let got = add(store.path(), &key, &src, Transfer::Move).unwrap();
        assert_eq!(
            got,
            AddOutcome::Added(store.path().join("am/AMDPPM.SYS/C9C030003b000/amdppm.sys"))
        );
        assert!(!src.exists());
        let hostile = SymbolKey::pe("../x.sys", 1, 1);
        assert!(add(store.path(), &hostile, &src, Transfer::Copy).is_err());
    }
}
