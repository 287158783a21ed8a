//! Receives a symbol upload's bytes into a temporary file: streamed with constant memory
//! (blocking code, fed through `crate::storage::source` like a dump upload), counted against
//! the symbol upload limit, nothing parsed. What the bytes are is the sandbox's business
//! ([`super::unpack`]).

use crate::storage::source::Incomplete;
use std::io::{self, Read, Write};
use std::path::Path;
use tempfile::NamedTempFile;

const BUF: usize = 64 * 1024;

/// A complete upload (deleted when dropped).
#[derive(Debug)]
pub struct Received {
    pub file: NamedTempFile,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("upload larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Incomplete(String),
    #[error("storage: {0}")]
    Io(io::Error),
}

/// Reads `input` to its end into a new temporary file in `tmp_dir`, at most `limit` bytes.
pub fn receive(mut input: impl Read, tmp_dir: &Path, limit: u64) -> Result<Received, ReceiveError> {
    let mut file = NamedTempFile::new_in(tmp_dir).map_err(ReceiveError::Io)?;
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(e)),
        };
        size += n as u64;
        if size > limit {
            return Err(ReceiveError::TooLarge { limit });
        }
        file.write_all(buf.get(..n).unwrap_or_default())
            .map_err(ReceiveError::Io)?;
    }
    file.as_file().sync_all().map_err(ReceiveError::Io)?;
    Ok(Received { file, size })
}

fn classify(e: io::Error) -> ReceiveError {
    match e.get_ref().and_then(|i| i.downcast_ref::<Incomplete>()) {
        Some(i) => ReceiveError::Incomplete(i.to_string()),
        None => ReceiveError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_land_whole_or_the_limit_stops_them() {
        let dir = tempfile::tempdir().unwrap();
        let got = receive(&b"0123456789"[..], dir.path(), 10).unwrap();
        assert_eq!(got.size, 10);
        assert_eq!(std::fs::read(got.file.path()).unwrap(), b"0123456789");
        drop(got);
        assert!(matches!(
            receive(&b"0123456789a"[..], dir.path(), 10),
            Err(ReceiveError::TooLarge { limit: 10 })
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
