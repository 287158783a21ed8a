//! One dump upload as bytes arrive: [`ingest`] sniffs .gz / .zip, decompresses while
//! streaming, enforces the size and ratio limits and checks that the content is a kernel dump;
//! [`name`] cleans the name it is shown under. Blocking code with no async runtime: the service
//! (`pooltriage serve`) runs it on a blocking thread, and the fuzz targets call it directly.

pub mod ingest;
pub mod name;
pub mod spool;

/// Size limits of an upload (the service's `[limits]`, docs/api.md).
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_upload_bytes: u64,
    pub max_dump_bytes: u64,
    pub max_ratio: u64,
    pub ratio_floor_bytes: u64,
    /// Vendor symbol uploads: the upload as received, and each file in it (docs/api.md).
    pub max_symbol_bytes: u64,
}

/// The error an upload's reader fails with when the client went away or the request was
/// cancelled before the end: reported as such, never as a short dump or a bad archive.
#[derive(Debug, thiserror::Error)]
#[error("upload incomplete: {0}")]
pub struct Incomplete(pub String);
