//! An uploaded pool log, read with the analyzer's own parsers (`analyzer::trend`): at upload,
//! so that a log the trend cannot read is refused then with the line it fails on (not found
//! out later on the system's page); at trend time, to feed [`super::trend`].

use analyzer::trend::detect::{detect, InputKind, DETECT_BYTES};
use analyzer::trend::input::SourceData;
use std::io::Read;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("{0}")]
    Kind(String),
    #[error("{0}")]
    Parse(String),
    #[error("cannot read the stored log: {0}")]
    Io(#[from] std::io::Error),
}

impl LogError {
    /// Whether the content is at fault (a 422 for the uploader), not the server.
    pub fn is_content(&self) -> bool {
        !matches!(self, LogError::Io(_))
    }
}

/// What a log holds, as recorded with it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFacts {
    /// `poolmon`, `poolsnap` or `counters`.
    pub kind: &'static str,
    pub samples: usize,
    /// First and last sample, Unix milliseconds (local wall clock for poolmon/poolsnap).
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

/// Reads the log at `path` (a stored file, never a client path).
pub fn read(path: &Path) -> Result<SourceData, LogError> {
    let mut head = Vec::with_capacity(DETECT_BYTES);
    std::fs::File::open(path)?
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut head)?;
    let kind = detect(&head).map_err(|e| LogError::Kind(e.to_string()))?;
    let file = std::fs::File::open(path)?;
    let parse = |e: analyzer::trend::ParseError| LogError::Parse(e.to_string());
    Ok(match kind {
        InputKind::TagLog => {
            SourceData::Tags(analyzer::trend::tagtable::parse(file).map_err(parse)?)
        }
        InputKind::Counters => {
            SourceData::Counters(analyzer::trend::counters::parse(file).map_err(parse)?)
        }
        InputKind::Dump => {
            return Err(LogError::Kind(
                "a crash dump: upload it as a dump (POST /api/v1/dumps with system=...)".into(),
            ))
        }
    })
}

/// The facts recorded with a log.
pub fn facts(data: &SourceData) -> LogFacts {
    match data {
        SourceData::Tags(t) => LogFacts {
            kind: t.format.as_str(),
            samples: t.snapshots.len(),
            first_ms: t.snapshots.first().map(|s| s.time_ms),
            last_ms: t.snapshots.last().map(|s| s.time_ms),
        },
        SourceData::Counters(c) => LogFacts {
            kind: "counters",
            samples: c.times.len(),
            first_ms: c.times.first().copied(),
            last_ms: c.times.last().copied(),
        },
        SourceData::Dump(d) => LogFacts {
            kind: "dump",
            samples: 1,
            first_ms: Some(d.time_ms),
            last_ms: Some(d.time_ms),
        },
    }
}
