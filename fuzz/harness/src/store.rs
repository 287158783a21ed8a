//! The symbol store's own files and the pooltag file: a compressed `.pd_` (a cabinet), a
//! `file.ptr`, and `pooltag.txt`.

use analyzer::attribution::pooltag::PoolTagFile;
use analyzer::pool::Tag;
use std::path::Path;

/// The input is a `ntkrnlmp.pd_` as a server or a store share hands it out.
pub fn cab(data: &[u8]) {
    let path = crate::tmp::file("ntkrnlmp.pd_", data);
    let _ = analyzer::fuzzing::cab_extract(&path, "ntkrnlmp.pdb", 1 << 20);
}

/// The input is a `file.ptr`.
pub fn file_ptr(data: &[u8]) {
    let _ = analyzer::fuzzing::file_ptr(data, Path::new("/store/ntkrnlmp.pdb/0123ABCD1"));
}

/// The input is a `pooltag.txt` (as text, the way the analyzer reads it: lossy UTF-8), then
/// looked up as a report does.
pub fn pooltag(data: &[u8]) {
    let f = PoolTagFile::parse(&String::from_utf8_lossy(data));
    for t in [*b"Proc", *b"Afd ", *b"AfdB", *b"\0\0\0\0"] {
        let _ = f.lookup(Tag(t));
    }
}
