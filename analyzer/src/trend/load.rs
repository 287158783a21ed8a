//! Reading a log file for a trend (the command line's side; the service passes its own
//! readers to the parsers): detect its kind from its content, then parse it.

use super::detect::{detect, DetectError, InputKind, DETECT_BYTES};
use super::error::ParseError;
use super::input::{Source, SourceData};
use std::io::Read;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Kind { path: String, source: DetectError },
    #[error("{path}: {source}")]
    Parse { path: String, source: ParseError },
}

/// The kind of the file at `path`.
pub fn kind_of(path: &Path) -> Result<InputKind, LoadError> {
    let name = path.display().to_string();
    let io = |source| LoadError::Io {
        path: name.clone(),
        source,
    };
    if path.is_dir() {
        return Err(io(std::io::Error::other("is a directory")));
    }
    let mut head = Vec::with_capacity(DETECT_BYTES);
    std::fs::File::open(path)
        .map_err(io)?
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    detect(&head).map_err(|source| LoadError::Kind {
        path: name.clone(),
        source,
    })
}

/// Reads a poolmon/poolsnap log or a counter log (`kind` from [`kind_of`]).
pub fn read_log(path: &Path, kind: InputKind) -> Result<Source, LoadError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: name.clone(),
        source,
    })?;
    let parse_err = |source| LoadError::Parse {
        path: name.clone(),
        source,
    };
    let data = match kind {
        InputKind::TagLog => SourceData::Tags(super::tagtable::parse(file).map_err(parse_err)?),
        InputKind::Counters => {
            SourceData::Counters(super::counters::parse(file).map_err(parse_err)?)
        }
        InputKind::Dump => {
            return Err(LoadError::Kind {
                path: name,
                source: DetectError::Unknown("a dump: read it with the dump analysis".into()),
            })
        }
    };
    Ok(Source { name, data })
}
