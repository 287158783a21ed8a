//! Parsers that take a path (PDB, ISF, CAB, the store's file checks, uploads written to a
//! temporary directory) get the fuzzer's bytes in a file of this process's own directory,
//! rewritten for every input.

use std::path::PathBuf;
use std::sync::OnceLock;

/// This process's scratch directory (removed by nobody: the OS's temp dir is for that).
pub fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("pooltriage-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

/// Writes `data` to `name` in a directory of this thread's own (tests run in parallel) and
/// returns the path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let d = dir().join(format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
    let _ = std::fs::create_dir_all(&d);
    let p = d.join(name);
    std::fs::write(&p, data).expect("writing the fuzz input to a temporary file");
    p
}
