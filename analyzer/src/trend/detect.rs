//! What a trend input is, from its first bytes (never its name): a crash dump, a poolmon or
//! poolsnap log, a typeperf/relog CSV or TSV; anything else is refused with what it looks
//! like. Performance Monitor's binary `.blg` logs are not read (no maintained reader exists
//! for the format, which Microsoft does not document): `relog FILE.blg -f csv -o FILE.csv`
//! turns one into the CSV read here.

use super::counters::{CSV_MAGIC, TSV_MAGIC};
use super::tagtable::table_header_column;
use thiserror::Error;

/// Bytes looked at.
pub const DETECT_BYTES: usize = 64 * 1024;

/// What an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A kernel crash dump (its header's "PAGE" signature): read by the dump analysis.
    Dump,
    /// poolmon `-n` or poolsnap/memsnap `-p` snapshots.
    TagLog,
    /// typeperf/relog PDH CSV or TSV.
    Counters,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DetectError {
    #[error("an empty file")]
    Empty,
    #[error("a binary file that is not a kernel dump; a Performance Monitor binary log (.blg) is read once converted: relog FILE -f csv -o FILE.csv")]
    Binary,
    #[error("a user-mode minidump (MDMP): a trend needs kernel dumps")]
    UserDump,
    #[error(
        "neither a kernel dump, a poolmon/poolsnap log nor a typeperf/relog CSV (it starts: {0:?})"
    )]
    Unknown(String),
}

/// The kind of the input whose first bytes are `head` (up to [`DETECT_BYTES`]).
pub fn detect(head: &[u8]) -> Result<InputKind, DetectError> {
    if head.is_empty() {
        return Err(DetectError::Empty);
    }
    if head.starts_with(b"PAGE") {
        return Ok(InputKind::Dump);
    }
    if head.starts_with(b"MDMP") {
        return Err(DetectError::UserDump);
    }
    let text = decode(head).ok_or(DetectError::Binary)?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let bare = first.trim_start_matches(['"', '\u{feff}']);
    if bare.starts_with(CSV_MAGIC) || bare.starts_with(TSV_MAGIC) {
        return Ok(InputKind::Counters);
    }
    if text.lines().any(|l| table_header_column(l).is_some()) {
        return Ok(InputKind::TagLog);
    }
    Err(DetectError::Unknown(first.chars().take(60).collect()))
}

/// The head as text: UTF-16 with a BOM decoded, else bytes with no NUL and mostly UTF-8.
fn decode(head: &[u8]) -> Option<String> {
    let utf16 = |be: bool| {
        let units = head[2..].chunks_exact(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect::<String>()
    };
    let text = match head {
        [0xFF, 0xFE, ..] => utf16(false),
        [0xFE, 0xFF, ..] => utf16(true),
        _ if head.contains(&0) => return None,
        _ => String::from_utf8_lossy(head).into_owned(),
    };
    let bad = text
        .chars()
        .filter(|&c| c == char::REPLACEMENT_CHARACTER || (c.is_control() && !c.is_whitespace()))
        .count();
    (bad * 20 <= text.chars().count()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(detect(b"PAGEDU64\x0f\0\0\0"), Ok(InputKind::Dump));
        assert_eq!(
            detect(b"\"(PDH-CSV 4.0) (UTC)(0)\",\"\\\\H\\Memory\\Pool Paged Bytes\"\r\n"),
            Ok(InputKind::Counters)
        );
        let log = b"Wed 03/10/2021 13:51:09.25\r\n Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc\r\n";
        assert_eq!(detect(log), Ok(InputKind::TagLog));
        assert_eq!(detect(b""), Err(DetectError::Empty));
        assert_eq!(detect(b"MDMP\x93\xa7"), Err(DetectError::UserDump));
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(detect(&garbage), Err(DetectError::Binary));
        assert!(matches!(
            detect(b"hello, world\n"),
            Err(DetectError::Unknown(_))
        ));
    }
}
