//! What can go wrong when fetching a symbol file, and the one-word status each outcome has in
//! reports (`inspect` shows it per module).

use thiserror::Error;

/// Why a [`super::SymbolStore::fetch`] did not produce a file.
///
/// `Clone` because concurrent requests for the same key share one fetch and each gets the
/// result. Messages are one line; `status()` is the short word reports use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchError {
    /// No entry of the symbol path has the file (every answer was "not there").
    #[error("not found (tried {})", tried.join("; "))]
    NotFound { tried: Vec<String> },
    /// A file was there but is not what it claims to be: a broken CAB, an unreadable
    /// `file.ptr`, an HTML page where a PDB was expected.
    #[error("{what}: malformed: {reason}")]
    Malformed { what: String, reason: String },
    /// The server failed (5xx, dropped connection, refused) after all retries, or its host is
    /// being skipped by the circuit breaker.
    #[error("{url}: download failed: {reason}")]
    DownloadFailed { url: String, reason: String },
    /// Connect, read or total timeout.
    #[error("{url}: timed out: {reason}")]
    TimedOut { url: String, reason: String },
    /// The file (or its decompressed content) exceeds `StoreConfig::max_download_bytes`.
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// A module or PDB name (written by whoever made the dump) that could escape the cache or
    /// the URL: path separators, `..`, drive letters, NUL or control characters, absurd length;
    /// or a key that is not hex.
    #[error("refusing symbol name {name}: {reason}")]
    HostileName { name: String, reason: String },
    /// The cache directory cannot be written.
    #[error("{path}: cache error: {reason}")]
    Cache { path: String, reason: String },
    /// The symbol path string cannot be parsed.
    #[error("bad symbol path: {0}")]
    BadSymbolPath(String),
}

impl FetchError {
    /// The short status reports show: "not found", "malformed", "download failed",
    /// "timed out", "too large", "hostile name", "cache error", "bad symbol path".
    pub fn status(&self) -> &'static str {
        match self {
            FetchError::NotFound { .. } => "not found",
            FetchError::Malformed { .. } => "malformed",
            FetchError::DownloadFailed { .. } => "download failed",
            FetchError::TimedOut { .. } => "timed out",
            FetchError::TooLarge { .. } => "too large",
            FetchError::HostileName { .. } => "hostile name",
            FetchError::Cache { .. } => "cache error",
            FetchError::BadSymbolPath(_) => "bad symbol path",
        }
    }

    pub(crate) fn cache(path: &std::path::Path, e: impl std::fmt::Display) -> FetchError {
        FetchError::Cache {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn malformed(
        what: impl std::fmt::Display,
        reason: impl std::fmt::Display,
    ) -> FetchError {
        FetchError::Malformed {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}
