//! The ingest child's work (`pooltriage symbols ingest`): an uploaded file, or every file of an
//! uploaded zip (a symstore tree included), written to the output directory and identified
//! from its content (`analyzer::symbols::identify`). This runs in the sandbox: a hostile
//! archive or PDB costs the child, bounded by the limits here and the runner's time and
//! memory limits, never the server.

use super::ingest::{EntryStatus, IngestLimits, IngestOutput, IngestedFile};
use analyzer::report::symbol_file::SymbolFileReport;
use analyzer::symbols::identify::identify;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Names of a symbol store's bookkeeping files, skipped in a zipped store.
const STORE_FILES: [&str; 6] = [
    "pingme.txt",
    "index2.txt",
    "refs.ptr",
    "file.ptr",
    "history.txt",
    "server.txt",
];

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot read the upload: {0}")]
    Io(#[from] io::Error),
    #[error("bad zip archive: {0}")]
    BadArchive(String),
    #[error("a single file needs its file name (the name it is stored under)")]
    NoName,
}

/// Unpacks `upload` into `out` (an empty directory). `name` is the upload's file name, used
/// for a single (not zipped) file.
pub fn unpack(
    upload: &Path,
    name: Option<&str>,
    out: &Path,
    limits: &IngestLimits,
) -> Result<IngestOutput, UnpackError> {
    let mut magic = Vec::new();
    File::open(upload)?.take(4).read_to_end(&mut magic)?;
    let files = if magic.starts_with(b"PK\x03\x04") || magic.starts_with(b"PK\x05\x06") {
        unzip(upload, out, limits)?
    } else {
        let name = name.ok_or(UnpackError::NoName)?;
        let len = std::fs::metadata(upload)?.len();
        let mut entry = new_entry(name.to_string(), len);
        if len > limits.max_file_bytes {
            refuse(&mut entry, over_limit(limits.max_file_bytes));
        } else {
            let mut src = File::open(upload)?;
            write_and_identify(&mut entry, &mut src, out, "0", limits.max_file_bytes)?;
        }
        vec![entry]
    };
    Ok(IngestOutput { files })
}

fn new_entry(entry: String, size: u64) -> IngestedFile {
    IngestedFile {
        entry,
        status: EntryStatus::Ok,
        error: None,
        file: None,
        size,
        sha256: None,
        identity: None,
    }
}

fn refuse(e: &mut IngestedFile, why: String) {
    e.status = EntryStatus::Refused;
    e.error = Some(why);
    e.file = None;
    e.sha256 = None;
    e.identity = None;
}

fn over_limit(max: u64) -> String {
    format!("larger than the limit of {max} bytes for one symbol file")
}

/// The last path component of an archive entry name (either separator).
fn base_name(entry: &str) -> &str {
    entry.rsplit(['/', '\\']).next().unwrap_or(entry)
}

/// Bookkeeping of a symbol store (symstore.exe's `000Admin/`, `pingme.txt`...).
fn is_store_file(entry: &str) -> bool {
    let lower = entry.to_ascii_lowercase();
    lower.starts_with("000admin/")
        || lower.contains("/000admin/")
        || STORE_FILES.contains(&base_name(&lower))
}

fn unzip(
    upload: &Path,
    out: &Path,
    limits: &IngestLimits,
) -> Result<Vec<IngestedFile>, UnpackError> {
    let bad = |e: zip::result::ZipError| UnpackError::BadArchive(e.to_string());
    let mut zip = zip::ZipArchive::new(File::open(upload)?).map_err(bad)?;
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut taken = 0usize;
    for i in 0..zip.len() {
        let mut z = zip.by_index(i).map_err(bad)?;
        if z.is_dir() {
            continue;
        }
        let mut entry = new_entry(z.name().to_string(), z.size());
        if is_store_file(z.name()) {
            entry.status = EntryStatus::Skipped;
            files.push(entry);
            continue;
        }
        taken += 1;
        let room = limits.max_total_bytes.saturating_sub(total);
        if taken > limits.max_files {
            refuse(
                &mut entry,
                format!("more than {} files in one upload", limits.max_files),
            );
        } else if z.size() > limits.max_file_bytes || z.size() > room {
            refuse(&mut entry, over_limit(limits.max_file_bytes.min(room)));
        } else {
            let compressed = z.compressed_size();
            let mut guarded = RatioGuard::new(&mut z, compressed, limits);
            let max = limits.max_file_bytes.min(room);
            write_and_identify(&mut entry, &mut guarded, out, &i.to_string(), max)?;
            total += entry.size;
        }
        files.push(entry);
    }
    Ok(files)
}

/// Copies `src` to `out/file` (at most `max` bytes, else refused), hashing it, then identifies
/// it under the entry's base name. A refused file is removed.
fn write_and_identify(
    entry: &mut IngestedFile,
    src: &mut dyn Read,
    out: &Path,
    file: &str,
    max: u64,
) -> Result<(), UnpackError> {
    let path = out.join(file);
    let copied = copy_hashed(src, &path, max);
    let (size, sha) = match copied {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            refuse(entry, e.to_string());
            return Ok(());
        }
    };
    entry.size = size;
    if size > max {
        let _ = std::fs::remove_file(&path);
        refuse(entry, over_limit(max));
        return Ok(());
    }
    match identify(&path, base_name(&entry.entry)) {
        Ok(id) => {
            entry.file = Some(file.to_string());
            entry.sha256 = Some(sha);
            entry.identity = Some(SymbolFileReport::from(&id));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            refuse(entry, e.to_string());
        }
    }
    Ok(())
}

/// Writes up to `max + 1` bytes of `src` to `path`; returns the bytes written and their hash.
fn copy_hashed(src: &mut dyn Read, path: &Path, max: u64) -> io::Result<(u64, String)> {
    let mut f = File::create(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    let mut limited = src.take(max.saturating_add(1));
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        f.write_all(chunk)?;
        size += n as u64;
    }
    let sha = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, sha))
}

/// Stops an entry whose output outgrows `max_ratio` times its compressed size.
struct RatioGuard<'a, R> {
    inner: &'a mut R,
    compressed: u64,
    produced: u64,
    limits: IngestLimits,
}

impl<'a, R: Read> RatioGuard<'a, R> {
    fn new(inner: &'a mut R, compressed: u64, limits: &IngestLimits) -> Self {
        RatioGuard {
            inner,
            compressed: compressed.max(1),
            produced: 0,
            limits: *limits,
        }
    }
}

impl<R: Read> Read for RatioGuard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        if self.produced > self.limits.ratio_floor_bytes
            && self.produced / self.compressed > self.limits.max_ratio
        {
            return Err(io::Error::other(format!(
                "decompressed data more than {} times its compressed size (compression bomb?)",
                self.limits.max_ratio
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
