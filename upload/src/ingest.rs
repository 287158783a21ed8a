//! Receives one upload: detects .gz / .zip by magic and decompresses while streaming, computes
//! the SHA-256 of the dump on the fly, enforces the size and ratio limits, checks early that
//! the content is a kernel dump, and writes it to a temporary file. Blocking code: runs on a
//! blocking thread, reads from the service's channel reader (or any `Read`).

use crate::UploadLimits;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tempfile::NamedTempFile;

/// Bytes of the decompressed stream handed to the dump header parser (an x64 header is 0x2000).
const HEADER_PROBE: usize = 0x2000;
const BUF: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zip,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zip => "zip",
        }
    }
}

/// A complete upload in a temporary file (deleted if dropped before the service stores it).
#[derive(Debug)]
pub struct Ingested {
    pub file: NamedTempFile,
    pub sha256: String,
    pub size: u64,
    pub received: u64,
    pub compression: Compression,
    pub original_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("upload larger than the limit of {limit} bytes")]
    UploadTooLarge { limit: u64 },
    #[error("decompressed dump larger than the limit of {limit} bytes")]
    DumpTooLarge { limit: u64 },
    #[error("decompressed data more than {ratio} times the size of the compressed upload (compression bomb?)")]
    Ratio { ratio: u64 },
    #[error("{0}")]
    NotADump(String),
    #[error("bad {format} archive: {reason}")]
    BadArchive {
        format: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Incomplete(String),
    #[error("storage: {0}")]
    Io(io::Error),
}

/// Marker errors carried inside `io::Error` through the decoders back to us.
#[derive(Debug, thiserror::Error)]
#[error("upload limit")]
struct UploadLimit;

impl IngestError {
    /// Classifies an I/O error from the read side: our own limit, a client that went away, a
    /// corrupt compressed stream, or a local storage failure.
    fn from_read(e: io::Error, compression: Compression, limits: &UploadLimits) -> IngestError {
        if let Some(inner) = e.get_ref() {
            if inner.is::<UploadLimit>() {
                return IngestError::UploadTooLarge {
                    limit: limits.max_upload_bytes,
                };
            }
            if let Some(i) = inner.downcast_ref::<crate::Incomplete>() {
                return IngestError::Incomplete(i.to_string());
            }
        }
        match compression {
            Compression::None => IngestError::Io(e),
            c => IngestError::BadArchive {
                format: c.as_str(),
                reason: e.to_string(),
            },
        }
    }
}

/// Counts bytes as received and stops at the upload limit.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > self.limit {
            return Err(io::Error::other(UploadLimit));
        }
        Ok(n)
    }
}

/// Streams `input` into a new temporary file in `tmp_dir`.
pub fn ingest(
    input: impl Read,
    tmp_dir: &Path,
    limits: &UploadLimits,
    original_name: Option<String>,
) -> Result<Ingested, IngestError> {
    let received = Arc::new(AtomicU64::new(0));
    let mut counted = Counted {
        inner: input,
        count: received.clone(),
        limit: limits.max_upload_bytes,
    };
    // Sniff the magic: read up to 4 bytes (network chunks can be tiny), then put them back.
    let mut magic = Vec::with_capacity(4);
    (&mut counted)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(|e| IngestError::from_read(e, Compression::None, limits))?;
    let compression = match magic.as_slice() {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'P', b'K', 3, 4] => Compression::Zip,
        _ => Compression::None,
    };
    let mut stream = io::Cursor::new(magic).chain(counted);
    let file = NamedTempFile::new_in(tmp_dir).map_err(IngestError::Io)?;
    match compression {
        Compression::None => write_out(
            &mut stream,
            file,
            compression,
            &received,
            limits,
            original_name,
        ),
        Compression::Gzip => {
            let mut gz = flate2::read::MultiGzDecoder::new(stream);
            write_out(&mut gz, file, compression, &received, limits, original_name)
        }
        Compression::Zip => {
            let bad = |reason: String| IngestError::BadArchive {
                format: "zip",
                reason,
            };
            let entry = loop {
                match zip::read::read_zipfile_from_stream(&mut stream) {
                    Ok(Some(e)) if e.is_dir() => continue,
                    Ok(Some(e)) => break e,
                    Ok(None) => return Err(bad("no file in the archive".into())),
                    Err(zip::result::ZipError::Io(e)) => {
                        return Err(IngestError::from_read(e, compression, limits))
                    }
                    Err(e) => return Err(bad(e.to_string())),
                }
            };
            if entry.compressed_size() == 0 && entry.size() == 0 {
                // A streamed zip (sizes only in a data descriptor after the data) cannot be
                // read front to back safely; such archives are rare for dumps.
                return Err(bad("the first entry has no sizes in its local header (streamed zip); upload the .dmp or a .gz".into()));
            }
            let name = Some(entry.name().to_string())
                .filter(|n| !n.is_empty())
                .or(original_name);
            let mut entry = entry;
            write_out(&mut entry, file, compression, &received, limits, name)
        }
    }
}

/// Ingests a complete file already on disk (a finished resumable upload, see
/// the service's `storage::chunked`) through the same checks as a streamed upload. A plain dump is hashed in
/// place and the returned [`Ingested`] owns `path` itself (no copy of a 10 GB file; it is
/// renamed into `dumps/` by `Storage::store`, or deleted if dropped); a .gz/.zip is decompressed
/// into a new temporary file in `tmp_dir` and `path` is left alone.
pub fn ingest_file(
    path: &Path,
    tmp_dir: &Path,
    limits: &UploadLimits,
    original_name: Option<String>,
) -> Result<Ingested, IngestError> {
    let mut input = std::fs::File::open(path).map_err(IngestError::Io)?;
    let len = input.metadata().map_err(IngestError::Io)?.len();
    if len > limits.max_upload_bytes {
        return Err(IngestError::UploadTooLarge {
            limit: limits.max_upload_bytes,
        });
    }
    let mut magic = Vec::with_capacity(4);
    (&mut input)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(IngestError::Io)?;
    let plain = !matches!(magic.as_slice(), [0x1f, 0x8b, ..] | [b'P', b'K', 3, 4]);
    let rest = input;
    let mut input = io::Cursor::new(magic).chain(rest);
    if !plain {
        return ingest(input, tmp_dir, limits, original_name);
    }
    let own = std::fs::File::open(path).map_err(IngestError::Io)?;
    let file = NamedTempFile::from_parts(
        own,
        tempfile::TempPath::try_from_path(path).map_err(IngestError::Io)?,
    );
    let received = AtomicU64::new(len);
    write_out_to(
        &mut input,
        file,
        false,
        Compression::None,
        &received,
        limits,
        original_name,
    )
}

fn write_out(
    input: &mut dyn Read,
    file: NamedTempFile,
    compression: Compression,
    received: &AtomicU64,
    limits: &UploadLimits,
    original_name: Option<String>,
) -> Result<Ingested, IngestError> {
    write_out_to(
        input,
        file,
        true,
        compression,
        received,
        limits,
        original_name,
    )
}

/// Reads `input` to its end: limits, header check, SHA-256; the bytes go to `file` unless the
/// input is `file` itself (`copy` false: a finished resumable upload, hashed in place).
fn write_out_to(
    input: &mut dyn Read,
    mut file: NamedTempFile,
    copy: bool,
    compression: Compression,
    received: &AtomicU64,
    limits: &UploadLimits,
    original_name: Option<String>,
) -> Result<Ingested, IngestError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut probe: Vec<u8> = Vec::with_capacity(HEADER_PROBE);
    let mut probed = false;
    let mut size: u64 = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IngestError::from_read(e, compression, limits)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        size += n as u64;
        if size > limits.max_dump_bytes {
            return Err(IngestError::DumpTooLarge {
                limit: limits.max_dump_bytes,
            });
        }
        if compression != Compression::None && size > limits.ratio_floor_bytes {
            let got = received.load(Ordering::Relaxed).max(1);
            if size / got > limits.max_ratio {
                return Err(IngestError::Ratio {
                    ratio: limits.max_ratio,
                });
            }
        }
        if !probed {
            let want = HEADER_PROBE - probe.len();
            probe.extend_from_slice(chunk.get(..want.min(n)).unwrap_or_default());
            if probe.len() == HEADER_PROBE {
                check_header(&probe)?;
                probed = true;
            }
        }
        hasher.update(chunk);
        if copy {
            file.write_all(chunk).map_err(IngestError::Io)?;
        }
    }
    if !probed {
        check_header(&probe)?;
    }
    file.as_file().sync_all().map_err(IngestError::Io)?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Ingested {
        file,
        sha256,
        size,
        received: received.load(Ordering::Relaxed),
        compression,
        original_name: crate::name::display_name(original_name),
    })
}

/// Rejects early what is not a kernel dump, with the dump reader's own one-line reason.
fn check_header(probe: &[u8]) -> Result<(), IngestError> {
    if probe.is_empty() {
        return Err(IngestError::NotADump(
            "empty upload: not a kernel dump".into(),
        ));
    }
    analyzer::dump::parse_header(probe)
        .map(|_| ())
        .map_err(|e| IngestError::NotADump(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/dumps/triage_x64.dmp"
    );

    fn limits() -> UploadLimits {
        UploadLimits {
            max_upload_bytes: 1 << 30,
            max_dump_bytes: 1 << 30,
            max_ratio: 100,
            ratio_floor_bytes: 1 << 20,
            max_symbol_bytes: 1 << 30,
        }
    }

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn raw_and_gzip_give_the_same_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        let dump = std::fs::read(CORPUS).unwrap();
        let raw = ingest(&dump[..], dir.path(), &limits(), None).unwrap();
        assert_eq!(raw.compression, Compression::None);
        assert_eq!(raw.sha256, sha(&dump));
        assert_eq!(raw.size, dump.len() as u64);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&dump).unwrap();
        let gz = gz.finish().unwrap();
        let unpacked = ingest(&gz[..], dir.path(), &limits(), None).unwrap();
        assert_eq!(unpacked.compression, Compression::Gzip);
        assert_eq!(unpacked.sha256, raw.sha256);
        assert_eq!(unpacked.received, gz.len() as u64);
        assert_eq!(std::fs::read(unpacked.file.path()).unwrap(), dump);
    }

    #[test]
    fn not_a_dump_is_named_by_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let e = ingest(&b"MDMP\x93\xa7\0\0 hello"[..], dir.path(), &limits(), None).unwrap_err();
        assert!(matches!(e, IngestError::NotADump(_)), "{e}");
        let e = ingest(&b""[..], dir.path(), &limits(), None).unwrap_err();
        assert!(matches!(e, IngestError::NotADump(_)), "{e}");
    }

    #[test]
    fn limits_stop_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let dump = std::fs::read(CORPUS).unwrap();
        let small = UploadLimits {
            max_upload_bytes: 100_000,
            ..limits()
        };
        assert!(matches!(
            ingest(&dump[..], dir.path(), &small, None),
            Err(IngestError::UploadTooLarge { limit: 100_000 })
        ));
        // A gzip bomb with a real header: header, then 64 MiB of zeros.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&dump[..HEADER_PROBE]).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(matches!(
            ingest(&bomb[..], dir.path(), &limits(), None),
            Err(IngestError::Ratio { ratio: 100 })
        ));
        let capped = UploadLimits {
            max_dump_bytes: 2 << 20,
            max_ratio: 1 << 20,
            ..limits()
        };
        assert!(matches!(
            ingest(&bomb[..], dir.path(), &capped, None),
            Err(IngestError::DumpTooLarge { .. })
        ));
        // Nothing left behind by the failures.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn zip_with(entries: &[(&str, zip::CompressionMethod, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, method, data) in entries {
            let opts = zip::write::SimpleFileOptions::default().compression_method(*method);
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_entries_stored_or_deflated_after_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let dump = std::fs::read(CORPUS).unwrap();
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            let z = zip_with(&[("dumps/", method, b""), ("dumps/MEMORY.DMP", method, &dump)]);
            let got = ingest(&z[..], dir.path(), &limits(), None).unwrap();
            assert_eq!(got.compression, Compression::Zip);
            assert_eq!(got.sha256, sha(&dump), "{method:?}");
            assert_eq!(got.original_name.as_deref(), Some("MEMORY.DMP"));
        }
        let empty = zip_with(&[("only-a-dir/", zip::CompressionMethod::Stored, b"")]);
        let e = ingest(&empty[..], dir.path(), &limits(), None).unwrap_err();
        assert!(
            matches!(e, IngestError::BadArchive { format: "zip", .. }),
            "{e}"
        );
    }

    #[test]
    fn a_file_on_disk_is_hashed_in_place_or_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let dump = std::fs::read(CORPUS).unwrap();
        // Plain: the returned file IS the given file (no copy), and nothing appears in tmp/.
        let part = dir.path().join("part");
        std::fs::write(&part, &dump).unwrap();
        let got = ingest_file(&part, &tmp, &limits(), Some("m.dmp".into())).unwrap();
        assert_eq!(got.sha256, sha(&dump));
        assert_eq!(
            (got.size, got.received),
            (dump.len() as u64, dump.len() as u64)
        );
        assert_eq!(got.file.path(), part.as_path());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        drop(got);
        assert!(!part.exists(), "dropped before being stored: removed");
        // Gzip: decompressed into tmp/, the given file untouched.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&dump).unwrap();
        std::fs::write(&part, gz.finish().unwrap()).unwrap();
        let got = ingest_file(&part, &tmp, &limits(), None).unwrap();
        assert_eq!(got.compression, Compression::Gzip);
        assert_eq!(got.sha256, sha(&dump));
        assert!(got.file.path().starts_with(&tmp));
        assert!(part.exists());
        // Same checks as a stream: not a dump, over the limit.
        std::fs::write(&part, b"MDMP\x93\xa7 not a kernel dump").unwrap();
        let e = ingest_file(&part, &tmp, &limits(), None).unwrap_err();
        assert!(matches!(e, IngestError::NotADump(_)), "{e}");
        std::fs::write(&part, &dump).unwrap();
        let small = UploadLimits {
            max_upload_bytes: 1000,
            ..limits()
        };
        let e = ingest_file(&part, &tmp, &small, None).unwrap_err();
        assert!(matches!(e, IngestError::UploadTooLarge { .. }), "{e}");
    }

    #[test]
    fn corrupt_gzip_is_a_bad_archive() {
        let dir = tempfile::tempdir().unwrap();
        let e = ingest(
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff][..],
            dir.path(),
            &limits(),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(e, IngestError::BadArchive { format: "gzip", .. }),
            "{e}"
        );
    }
}
