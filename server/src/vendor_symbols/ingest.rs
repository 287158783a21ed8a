//! What the sandboxed ingest child reads and writes: its limits (flags) and its answer (JSON
//! on stdout), shared by the child (`pooltriage symbols ingest`) and the server that reads it.

use analyzer::report::symbol_file::SymbolFileReport;
use serde::{Deserialize, Serialize};

/// Bounds on what one upload may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest file (a PDB or an image, decompressed).
    pub max_file_bytes: u64,
    /// Most files taken from one archive (entries beyond are refused).
    pub max_files: usize,
    /// Largest total of all files of one upload, decompressed.
    pub max_total_bytes: u64,
    /// Largest decompressed/compressed ratio of one entry (compression bomb guard)...
    pub max_ratio: u64,
    /// ...checked once an entry has produced this much.
    pub ratio_floor_bytes: u64,
}

/// How one file of the upload fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// Identified; the file is in the output directory.
    Ok,
    /// Not a PDB or image, unreadable, over a limit: `error` says why.
    Refused,
    /// A symbol store's own bookkeeping (`000Admin/`, `pingme.txt`, `index2.txt`...).
    Skipped,
}

/// One file of the upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestedFile {
    /// Its name in the archive (or the upload's file name for a single file).
    pub entry: String,
    pub status: EntryStatus,
    pub error: Option<String>,
    /// Its name in the output directory (for `ok`).
    pub file: Option<String>,
    /// Bytes (decompressed).
    pub size: u64,
    /// SHA-256 of the content, lower-case hex (for `ok`).
    pub sha256: Option<String>,
    /// Its identity read from the content (for `ok`).
    pub identity: Option<SymbolFileReport>,
}

/// The child's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutput {
    pub files: Vec<IngestedFile>,
}
