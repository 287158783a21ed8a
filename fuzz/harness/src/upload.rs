//! A dump upload as the service receives it: raw, .gz or .zip, sniffed, decompressed while
//! streaming, bounded, its header checked. Limits are small so that a decompression bomb is
//! stopped by the code's own limits within the fuzzer's memory.

use upload::ingest::ingest;
use upload::UploadLimits;

const LIMITS: UploadLimits = UploadLimits {
    max_upload_bytes: 1 << 20,
    max_dump_bytes: 4 << 20,
    max_ratio: 100,
    ratio_floor_bytes: 64 << 10,
    max_symbol_bytes: 1 << 20,
};

pub fn upload(data: &[u8]) {
    let dir = crate::tmp::dir().join("uploads");
    let _ = std::fs::create_dir_all(&dir);
    // Dropping the result deletes the temporary file.
    let _ = ingest(data, &dir, &LIMITS, Some("MEMORY.DMP".into()));
}
