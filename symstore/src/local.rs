//! Local stores: a directory in symbol-store layout (`name/KEY/name`, two-tier
//! `na/name/KEY/name` when `index2.txt` is present) or a flat directory (`DIR/name`, accepted
//! only when its identity matches the key). Names match case-insensitively, as on Windows.

use super::error::FetchError;
use super::key::{compressed_name, SymbolKey};
use super::ptr::{self, PtrTarget, MAX_PTR_BYTES};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most directory entries scanned for a case-insensitive match (a store's top level can be
/// large, but not unbounded).
const MAX_SCAN: usize = 1_000_000;

/// What a store holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The file itself.
    Plain(PathBuf),
    /// `name.pd_`: a cabinet to decompress.
    Compressed(PathBuf),
    /// `file.ptr` and where it points.
    Pointer { ptr: PathBuf, target: PtrTarget },
}

fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!a.is_ascii() && a.to_lowercase() == b.to_lowercase())
}

/// `dir/name`, or the entry of `dir` whose name equals `name` ignoring case.
pub(crate) fn child_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if fs::symlink_metadata(&exact).is_ok() {
        return Some(exact);
    }
    fs::read_dir(dir)
        .ok()?
        .take(MAX_SCAN)
        .flatten()
        .find(|e| e.file_name().to_str().is_some_and(|n| same_name(n, name)))
        .map(|e| e.path())
}

fn file_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    child_ci(dir, name).filter(|p| p.is_file())
}

/// The `name/KEY` directory of `key` in the store at `root`, if present.
fn key_dir(root: &Path, key: &SymbolKey) -> Option<PathBuf> {
    let name = key.name();
    let mut dir = root.to_path_buf();
    if file_ci(root, "index2.txt").is_some() {
        // Two-tier: the first two characters of the file name.
        let prefix: String = name.chars().take(2).collect();
        dir = child_ci(&dir, &prefix)?;
    }
    let dir = child_ci(&dir, name)?;
    child_ci(&dir, &key.id()).filter(|p| p.is_dir())
}

/// Looks `key` up in the store at `root`: the plain file, then `name.pd_`, then `file.ptr`.
/// The key must have been validated (its name is one safe path component).
pub(crate) fn find_in_store(root: &Path, key: &SymbolKey) -> Result<Option<Found>, FetchError> {
    let Some(dir) = key_dir(root, key) else {
        return Ok(None);
    };
    if let Some(p) = file_ci(&dir, key.name()) {
        return Ok(Some(Found::Plain(p)));
    }
    if let Some(p) = file_ci(&dir, &compressed_name(key.name())) {
        return Ok(Some(Found::Compressed(p)));
    }
    if let Some(p) = file_ci(&dir, "file.ptr") {
        let mut content = Vec::new();
        fs::File::open(&p)
            .and_then(|f| f.take(MAX_PTR_BYTES + 1).read_to_end(&mut content))
            .map_err(|e| FetchError::malformed(p.display(), e))?;
        if content.len() as u64 > MAX_PTR_BYTES {
            return Err(FetchError::malformed(
                p.display(),
                "file.ptr larger than 4 KiB",
            ));
        }
        let target =
            ptr::parse(&content, &dir).map_err(|e| FetchError::malformed(p.display(), e))?;
        return Ok(Some(Found::Pointer { ptr: p, target }));
    }
    Ok(None)
}

/// A flat directory: `dir/name` when its PE or PDB identity is the key's.
pub(crate) fn find_flat(dir: &Path, key: &SymbolKey) -> Option<PathBuf> {
    file_ci(dir, key.name()).filter(|p| super::verify::matches_key(key, p))
}
