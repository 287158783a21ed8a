//! Entry points for the fuzz targets (`fuzz/`) to parsers of untrusted bytes that are private to
//! the crate: the symbol store's CAB extraction, `file.ptr` and file identity checks. Each is a
//! thin call to the function the store itself uses, so a fuzz finding is a finding in that
//! code. Built only with the `fuzzing` feature; not part of the library's API.

use crate::{cab, ptr, verify, SymbolKey};
use std::fs::File;
use std::path::Path;

/// Extracts `want` (else the only file) from the cabinet at `path` as the store does for a
/// `.pd_`/`.sy_` file, into memory, at most `max_bytes`.
pub fn cab_extract(path: &Path, want: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    if !cab::is_cab(&mut f) {
        return Err("not a cabinet".into());
    }
    let mut out = Vec::new();
    cab::extract(&mut f, want, &mut out, max_bytes)?;
    Ok(out)
}

/// Parses a `file.ptr`'s content (relative targets resolve against `base`); the target as text.
pub fn file_ptr(content: &[u8], base: &Path) -> Result<String, String> {
    ptr::parse(content, base).map(|t| match t {
        ptr::PtrTarget::Path(p) => p.display().to_string(),
        ptr::PtrTarget::Url(u) => u,
    })
}

/// The store's checks of a file found on disk for `key`: magic, identity (PE TimeDateStamp and
/// SizeOfImage, PDB GUID and age), and whether it matches the key.
pub fn store_file_checks(key: &SymbolKey, path: &Path) -> bool {
    if let Ok(mut f) = File::open(path) {
        let _ = verify::check_magic(key, &mut f);
        let _ = verify::pe_identity(&mut f);
    }
    let _ = verify::pdb_identity(path);
    verify::matches_key(key, path)
}
