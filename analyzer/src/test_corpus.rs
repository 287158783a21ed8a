//! The corpus the tests of every crate read: `$POOLTRIAGE_CORPUS` when set (the CI's and a checkout
//! elsewhere), else `shared/corpus` beside the repository.

use std::path::PathBuf;

/// `rel` inside the corpus.
pub fn corpus(rel: &str) -> PathBuf {
    std::env::var_os("POOLTRIAGE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        })
        .join(rel)
}

/// The same, as text (for APIs and messages that take a `&str`).
pub fn corpus_str(rel: &str) -> String {
    corpus(rel).to_string_lossy().into_owned()
}
