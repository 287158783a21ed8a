//! Receives one upload: detects .gz / .zip by magic and decompresses while streaming, computes
//! the SHA-256 of the dump on the fly, enforces the size and ratio limits, checks early that
//! the content is a kernel dump, and writes it to a temporary file. Blocking code: runs on a
//! blocking thread, reads from a the service's channel reader (or any `BufRead`): a plain
//! dump is hashed straight from the chunks the socket delivered, while [`crate::spool`] writes
//! them to the file on a thread of its own.

use crate::spool::{Spool, SpoolError};
use crate::UploadLimits;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tempfile::NamedTempFile;

/// Bytes of the decompressed stream handed to the dump header parser (an x64 header is 0x2000).
const HEADER_PROBE: usize = 0x2000;
/// Decompressed output and file reads go through buffers of this size: large enough that a
/// call per buffer costs nothing next to hashing it.
const BUF: usize = 256 * 1024;

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

/// A complete upload in a temporary file (deleted if dropped before the service's `Storage::store`).
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
    #[error("decompressed data more than {ratio} times the size of the compressed upload past the first {floor} bytes (compression bomb?)")]
    Ratio { ratio: u64, floor: u64 },
    #[error("{0}")]
    NotADump(String),
    #[error("{0}")]
    NotALog(String),
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

impl From<SpoolError> for IngestError {
    fn from(e: SpoolError) -> Self {
        IngestError::Io(e.0)
    }
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

/// Counted as consumed; a chunk that would take the total past the limit is refused whole.
impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let seen = self.count.load(Ordering::Relaxed);
        let buf = self.inner.fill_buf()?;
        if seen + buf.len() as u64 > self.limit {
            return Err(io::Error::other(UploadLimit));
        }
        Ok(buf)
    }

    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// What an upload must be: checked on its first bytes (after decompression), so that a file
/// of the wrong kind is refused before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A kernel crash dump (the dump reader's header check).
    Dump,
    /// A pool log of a system: poolmon, poolsnap, typeperf/relog CSV or TSV (the trend
    /// analyzer's detection, `analyzer::trend::detect`).
    Log,
}

impl Expect {
    /// Bytes looked at before the check.
    fn probe_len(self) -> usize {
        match self {
            Expect::Dump => HEADER_PROBE,
            Expect::Log => analyzer::trend::detect::DETECT_BYTES,
        }
    }

    fn check(self, probe: &[u8]) -> Result<(), IngestError> {
        match self {
            Expect::Dump => check_header(probe),
            Expect::Log => check_log(probe),
        }
    }
}

/// Streams `input` (a dump) into a new temporary file in `tmp_dir`.
pub fn ingest(
    input: impl BufRead,
    tmp_dir: &Path,
    limits: &UploadLimits,
    original_name: Option<String>,
) -> Result<Ingested, IngestError> {
    ingest_expecting(input, tmp_dir, limits, original_name, Expect::Dump)
}

/// Streams `input` into a new temporary file in `tmp_dir`, refusing what is not `expect`.
pub fn ingest_expecting(
    input: impl BufRead,
    tmp_dir: &Path,
    limits: &UploadLimits,
    original_name: Option<String>,
    expect: Expect,
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
            expect,
        ),
        Compression::Gzip => {
            let gz = flate2::bufread::MultiGzDecoder::new(stream);
            let mut out = BufReader::with_capacity(BUF, gz);
            write_out(
                &mut out,
                file,
                compression,
                &received,
                limits,
                original_name,
                expect,
            )
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
            let mut out = BufReader::with_capacity(BUF, entry);
            write_out(&mut out, file, compression, &received, limits, name, expect)
        }
    }
}

/// Ingests a complete file already on disk (a finished resumable upload, see
/// the service's resumable uploads) through the same checks as a streamed upload. A plain dump is hashed in
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
    let mut input = BufReader::with_capacity(BUF, io::Cursor::new(magic).chain(rest));
    if !plain {
        return ingest_expecting(input, tmp_dir, limits, original_name, Expect::Dump);
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
        Expect::Dump,
    )
}

fn write_out(
    input: &mut dyn BufRead,
    file: NamedTempFile,
    compression: Compression,
    received: &AtomicU64,
    limits: &UploadLimits,
    original_name: Option<String>,
    expect: Expect,
) -> Result<Ingested, IngestError> {
    write_out_to(
        input,
        file,
        true,
        compression,
        received,
        limits,
        original_name,
        expect,
    )
}

/// Reads `input` to its end: limits, header check, SHA-256; the bytes go to `file` unless the
/// input is `file` itself (`copy` false: a finished resumable upload, hashed in place).
#[allow(clippy::too_many_arguments)]
fn write_out_to(
    input: &mut dyn BufRead,
    file: NamedTempFile,
    copy: bool,
    compression: Compression,
    received: &AtomicU64,
    limits: &UploadLimits,
    original_name: Option<String>,
    expect: Expect,
) -> Result<Ingested, IngestError> {
    let mut hasher = Sha256::new();
    let mut spool = spool_for(&file, copy)?;
    let mut probe = HeaderProbe::new(expect);
    let mut size: u64 = 0;
    loop {
        let chunk = match input.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IngestError::from_read(e, compression, limits)),
        };
        let n = chunk.len();
        size += n as u64;
        check_output(size, compression, received.load(Ordering::Relaxed), limits)?;
        probe.feed(chunk)?;
        hasher.update(chunk);
        if let Some(spool) = spool.as_mut() {
            spool.write(chunk)?;
        }
        input.consume(n);
    }
    probe.finish()?;
    if let Some(spool) = spool {
        spool.finish()?;
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

/// The writer of an upload's bytes to its file; none when the input is the file itself.
fn spool_for(file: &NamedTempFile, copy: bool) -> Result<Option<Spool>, IngestError> {
    if !copy {
        return Ok(None);
    }
    let handle = file.as_file().try_clone().map_err(IngestError::Io)?;
    Spool::new(handle).map(Some).map_err(IngestError::Io)
}

/// The limits on the output after `size` bytes of it, `received` bytes of the upload read.
fn check_output(
    size: u64,
    compression: Compression,
    received: u64,
    limits: &UploadLimits,
) -> Result<(), IngestError> {
    if size > limits.max_dump_bytes {
        return Err(IngestError::DumpTooLarge {
            limit: limits.max_dump_bytes,
        });
    }
    if compression != Compression::None {
        check_ratio(size, received, limits)?;
    }
    Ok(())
}

/// The first bytes of the output (as many as the expected kind needs), checked once they are in,
/// so that what is not a dump is refused before the rest is received.
struct HeaderProbe {
    expect: Expect,
    bytes: Vec<u8>,
    checked: bool,
}

impl HeaderProbe {
    fn new(expect: Expect) -> HeaderProbe {
        HeaderProbe {
            expect,
            bytes: Vec::with_capacity(expect.probe_len()),
            checked: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        if self.checked {
            return Ok(());
        }
        let want = self.expect.probe_len() - self.bytes.len();
        self.bytes
            .extend_from_slice(chunk.get(..want.min(chunk.len())).unwrap_or_default());
        if self.bytes.len() == self.expect.probe_len() {
            self.expect.check(&self.bytes)?;
            self.checked = true;
        }
        Ok(())
    }

    /// The end of the output: a dump shorter than the probe is checked as it is.
    fn finish(&self) -> Result<(), IngestError> {
        match self.checked {
            true => Ok(()),
            false => self.expect.check(&self.bytes),
        }
    }
}

/// The compression bomb guard: the ratio of the whole stream so far, decompressed bytes to bytes
/// received, once the output passes the floor. Judged over the whole stream rather than over a
/// recent window because a real dump's zero runs pack as tightly as a bomb (about 1000 to 1) and
/// may be any length; what differs is that a dump's page data, counted in, brings its ratio far
/// down, while a bomb stays near 1000x to its end (the service's `DEFAULT_MAX_RATIO`).
fn check_ratio(size: u64, received: u64, limits: &UploadLimits) -> Result<(), IngestError> {
    if size <= limits.ratio_floor_bytes || size / received.max(1) <= limits.max_ratio {
        return Ok(());
    }
    Err(IngestError::Ratio {
        ratio: limits.max_ratio,
        floor: limits.ratio_floor_bytes,
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

/// Rejects early what is not a pool log the trend reads (a dump, a `.blg`, another text),
/// with the analyzer's own reason.
fn check_log(probe: &[u8]) -> Result<(), IngestError> {
    use analyzer::trend::detect::{detect, InputKind};
    match detect(probe) {
        Ok(InputKind::TagLog | InputKind::Counters) => Ok(()),
        Ok(InputKind::Dump) => Err(IngestError::NotALog(
            "a crash dump: upload it as a dump (POST /api/v1/dumps with system=...)".into(),
        )),
        Err(e) => Err(IngestError::NotALog(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
            Err(IngestError::Ratio { ratio: 100, .. })
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

    #[test]
    fn the_ratio_is_judged_over_the_whole_stream_past_the_floor() {
        let limits = UploadLimits {
            ratio_floor_bytes: 128 << 20,
            ..limits()
        };
        // A dump opening with zero pages: 450x after 35 MiB of output, under the floor.
        assert!(check_ratio(35 << 20, (35 << 20) / 450, &limits).is_ok());
        // Past the floor with its page data counted in: 64x.
        assert!(check_ratio(129 << 20, (129 << 20) / 64, &limits).is_ok());
        // A bomb is still near 1000x there.
        assert!(matches!(
            check_ratio(129 << 20, (129 << 20) / 1000, &limits),
            Err(IngestError::Ratio { ratio: 100, floor }) if floor == 128 << 20
        ));
        assert!(check_ratio(129 << 20, 0, &limits).is_err());
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

    #[test]
    fn a_log_is_checked_by_the_trend_detection() {
        let dir = tempfile::tempdir().unwrap();
        let log = b"Wed 03/10/2021 13:51:09.25\r\n Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc\r\n Leak Paged  41  3  38  77824  2048\r\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(log).unwrap();
        let gz = gz.finish().unwrap();
        let got = ingest_expecting(&gz[..], dir.path(), &limits(), None, Expect::Log).unwrap();
        assert_eq!(got.size, log.len() as u64);
        assert_eq!(got.compression, Compression::Gzip);
        let dump = std::fs::read(CORPUS).unwrap();
        for bad in [&dump[..], &b"hello, world\n"[..], &b""[..]] {
            let e = ingest_expecting(bad, dir.path(), &limits(), None, Expect::Log).unwrap_err();
            assert!(matches!(e, IngestError::NotALog(_)), "{e}");
        }
        // A log is not a dump.
        let e = ingest(&log[..], dir.path(), &limits(), None).unwrap_err();
        assert!(matches!(e, IngestError::NotADump(_)), "{e}");
    }
}
