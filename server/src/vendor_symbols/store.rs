//! The tenants' symbol stores on disk: `<data-dir>/vendor-symbols/<tenant>/`, each laid out as
//! Microsoft's (`name/KEY/name`), so the analyzer reads them as any local store on its symbol
//! path, and an operator can hand one to WinDbg.
//!
//! The analyzer child gets the store as a path relative to its working directory (the data
//! directory): the report then names `vendor-symbols/<tenant>`, not a server path, and the
//! same key works on every instance sharing the data directory, wherever it is mounted.

use analyzer::symbols::store::add::{add, AddOutcome, Transfer};
use analyzer::symbols::store::SymbolKey;
use std::io;
use std::path::{Path, PathBuf};

/// The folder under the data directory that holds every tenant's store.
pub const DIR: &str = "vendor-symbols";

/// A tenant's store, relative to the data directory. Tenant names are `A-Za-z0-9._-` (auth.md)
/// and so one path component, except `.` and `..` and other names starting with a dot: those
/// are spelt `_` + hex.
pub fn relative_dir(tenant: &str) -> PathBuf {
    let component = if tenant.starts_with('.') || tenant.is_empty() {
        let hex: String = tenant.bytes().map(|b| format!("{b:02x}")).collect();
        format!("_{hex}")
    } else {
        tenant.to_string()
    };
    Path::new(DIR).join(component)
}

/// Moves `src` (a file the ingest child identified) into the tenant's store under `key`.
pub fn place(data_dir: &Path, tenant: &str, key: &SymbolKey, src: &Path) -> io::Result<AddOutcome> {
    add(
        &data_dir.join(relative_dir(tenant)),
        key,
        src,
        Transfer::Move,
    )
}

/// Removes `name/KEY/name` from the tenant's store, and the directories it leaves empty.
pub fn remove(data_dir: &Path, tenant: &str, name: &str, key: &str) -> io::Result<()> {
    analyzer::symbols::store::check_name(name).map_err(io::Error::other)?;
    analyzer::symbols::store::check_name(key).map_err(io::Error::other)?;
    let root = data_dir.join(relative_dir(tenant));
    let key_dir = root.join(name).join(key);
    match std::fs::remove_file(key_dir.join(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // Not empty (another file there) or gone: either way nothing more to do.
    let _ = std::fs::remove_dir(&key_dir);
    let _ = std::fs::remove_dir(root.join(name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_directories_are_one_component() {
        assert_eq!(relative_dir("acme"), Path::new("vendor-symbols/acme"));
        assert_eq!(relative_dir(".."), Path::new("vendor-symbols/_2e2e"));
        assert_eq!(relative_dir(".x"), Path::new("vendor-symbols/_2e78"));
        assert_eq!(relative_dir("a.b-c_d"), Path::new("vendor-symbols/a.b-c_d"));
    }

    #[test]
    fn placed_files_are_removed_with_their_directories() {
        let data = tempfile::tempdir().unwrap();
        let src = data.path().join("f");
        std::fs::write(&src, b"MZ").unwrap();
        let key = SymbolKey::pe("drv.sys", 0x1234, 0x5000);
        let got = place(data.path(), "acme", &key, &src).unwrap();
        let want = data
            .path()
            .join("vendor-symbols/acme/drv.sys/000012345000/drv.sys");
        assert_eq!(got, AddOutcome::Added(want.clone()));
        remove(data.path(), "acme", "drv.sys", "000012345000").unwrap();
        assert!(!want.exists());
        assert!(!data.path().join("vendor-symbols/acme/drv.sys").exists());
        assert!(remove(data.path(), "acme", "../x", "k").is_err());
    }
}
