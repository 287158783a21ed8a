//! Fields of a PDH CSV or TSV line: each field in double quotes, separated by commas (CSV) or
//! tabs (TSV); a doubled quote inside a field is a quote. Unquoted fields are read as they
//! stand. At most [`MAX_COLUMNS`] fields.

use super::limits::MAX_COLUMNS;

/// The fields of `line`, or `Err(count)` when there are more than [`MAX_COLUMNS`].
pub fn fields(line: &str, sep: char) -> Result<Vec<String>, usize> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        if out.len() == MAX_COLUMNS {
            return Err(MAX_COLUMNS + 1 + line.matches(sep).count().saturating_sub(MAX_COLUMNS));
        }
        let mut f = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        f.push('"');
                    }
                    '"' => break,
                    c => f.push(c),
                }
            }
            // Anything between the closing quote and the separator is kept as written.
            while let Some(&c) = chars.peek() {
                if c == sep {
                    break;
                }
                f.push(c);
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == sep {
                    break;
                }
                f.push(c);
                chars.next();
            }
        }
        out.push(f);
        if chars.next().is_none() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_plain() {
        let v = fields(r#""a","b,c","",d,"e""f""#, ',').unwrap();
        assert_eq!(v, ["a", "b,c", "", "d", "e\"f"]);
        assert_eq!(fields("\"x\"\t\"1,5\"", '\t').unwrap(), ["x", "1,5"]);
    }

    #[test]
    fn a_million_columns_is_refused() {
        let line = ",".repeat(1_000_000);
        let n = fields(&line, ',').unwrap_err();
        assert!(n > MAX_COLUMNS);
    }
}
