//! Text logs line by line, under [`MAX_LINE_BYTES`] and [`MAX_LINES`]: a line that never ends
//! (binary garbage, a million columns) is an error naming it, never read whole. UTF-16 logs
//! (PowerShell's `>` redirection writes UTF-16LE with a BOM) are decoded as they are read; a
//! UTF-8 BOM is dropped; other bytes that are not UTF-8 become U+FFFD.

use super::error::ParseError;
use super::limits::{MAX_LINES, MAX_LINE_BYTES};
use std::io::{BufRead, BufReader, Read};

/// One line: its 1-based number, its text without the line break, and whether it ended with
/// one (a last line without a break may be a log cut mid-line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
    pub terminated: bool,
}

/// Reads lines from a log under the bounds.
pub struct LineReader<R: BufRead> {
    inner: R,
    number: usize,
    buf: Vec<u8>,
}

/// Opens text from `reader`, decoding UTF-16 when it starts with a UTF-16 BOM.
pub fn lines(reader: impl Read + 'static) -> Result<LineReader<Box<dyn BufRead>>, ParseError> {
    let mut r = BufReader::new(reader);
    let head = r.fill_buf().map_err(|e| ParseError::Io(e.to_string()))?;
    let inner: Box<dyn BufRead> = match head {
        [0xFF, 0xFE, ..] => {
            r.consume(2);
            Box::new(BufReader::new(Utf16Reader::new(r, false)))
        }
        [0xFE, 0xFF, ..] => {
            r.consume(2);
            Box::new(BufReader::new(Utf16Reader::new(r, true)))
        }
        [0xEF, 0xBB, 0xBF, ..] => {
            r.consume(3);
            Box::new(r)
        }
        _ => Box::new(r),
    };
    Ok(LineReader {
        inner,
        number: 0,
        buf: Vec::new(),
    })
}

impl<R: BufRead> LineReader<R> {
    /// The next line, `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<Line>, ParseError> {
        self.buf.clear();
        let n = (&mut self.inner)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| ParseError::Io(e.to_string()))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.number > MAX_LINES {
            return Err(ParseError::TooManyLines { max: MAX_LINES });
        }
        let terminated = self.buf.last() == Some(&b'\n');
        if !terminated && self.buf.len() > MAX_LINE_BYTES {
            return Err(ParseError::LineTooLong {
                line: self.number,
                max: MAX_LINE_BYTES,
            });
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(Line {
            number: self.number,
            text: String::from_utf8_lossy(&self.buf).into_owned(),
            terminated,
        }))
    }
}

/// UTF-16 to UTF-8 as a byte stream, so the line reader's bounds hold for UTF-16 logs too.
struct Utf16Reader<R: Read> {
    inner: R,
    big_endian: bool,
    pending: Vec<u8>,
    done: bool,
}

impl<R: Read> Utf16Reader<R> {
    fn new(inner: R, big_endian: bool) -> Self {
        Utf16Reader {
            inner,
            big_endian,
            pending: Vec::new(),
            done: false,
        }
    }

    /// Decodes the next chunk of code units into `pending`.
    fn refill(&mut self) -> std::io::Result<()> {
        let mut raw = [0u8; 8192];
        let mut got = 0;
        while got < 2 {
            let n = self.inner.read(&mut raw[got..])?;
            if n == 0 {
                self.done = true;
                break;
            }
            got += n;
        }
        let even = got & !1;
        let units = raw[..even].chunks_exact(2).map(|c| {
            if self.big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        for ch in char::decode_utf16(units) {
            let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut b = [0u8; 4];
            self.pending
                .extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() && !self.done {
            self.refill()?;
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: Vec<u8>) -> Result<Vec<Line>, ParseError> {
        let mut r = lines(std::io::Cursor::new(bytes))?;
        let mut v = Vec::new();
        while let Some(l) = r.next_line()? {
            v.push(l);
        }
        Ok(v)
    }

    #[test]
    fn crlf_bom_and_unterminated_last_line() {
        let v = all(b"\xEF\xBB\xBFone\r\ntwo\nthree".to_vec()).unwrap();
        let texts: Vec<_> = v.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert!(v[1].terminated && !v[2].terminated);
        assert_eq!(v[2].number, 3);
    }

    #[test]
    fn utf16le_with_bom() {
        let mut b = vec![0xFF, 0xFE];
        for u in "Tag é\r\nx".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        let v = all(b).unwrap();
        assert_eq!(v[0].text, "Tag é");
        assert_eq!(v[1].text, "x");
    }

    #[test]
    fn endless_line_is_an_error_naming_it() {
        let mut b = b"short\n".to_vec();
        b.extend(std::iter::repeat_n(b'A', MAX_LINE_BYTES + 10));
        assert_eq!(
            all(b).unwrap_err(),
            ParseError::LineTooLong {
                line: 2,
                max: MAX_LINE_BYTES
            }
        );
    }
}
