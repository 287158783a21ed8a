//! Tag tables over time, from a poolmon or poolsnap log: timestamp lines, each followed by a
//! snapshot (header lines, the table header, rows). The collection script writes the
//! timestamp (`echo %date% %time%`, docs/trend.md); the tools themselves write none.
//!
//! Everything about a line that is not right is an error or a warning naming it: a table
//! without a timestamp before it, a tag twice in one snapshot (two runs under one timestamp),
//! a row that does not read (an error; a warning when it is the log's unterminated last line,
//! cut mid-line), timestamps out of order, gaps.

use super::cadence::gap_warnings;
use super::error::{ParseError, Warnings};
use super::input::{PoolTotals, TagLog, TagLogFormat, TagRow, TagSnapshot};
use super::limits::{MAX_SNAPSHOTS, MAX_TAGS_PER_SNAPSHOT, MAX_TAG_CELLS};
use super::text::{lines, Line};
use super::timestamp::{self, DateOrder, ParsedTime};
use super::{poolmon, poolsnap};
use crate::report::analysis::PoolName;
use std::collections::HashSet;
use std::io::Read;

/// The column of "Tag" when `line` starts a tag table: "Tag", then "Type", "Allocs", "Frees",
/// "Diff", "Bytes", "Per Alloc" in that order (either tool's spacing).
pub fn table_header_column(line: &str) -> Option<usize> {
    let col = line.find("Tag")?;
    if !line[..col].chars().all(|c| c == ' ') {
        return None;
    }
    let mut at = col;
    for word in [
        "Tag",
        "Type",
        "Allocs",
        "Frees",
        "Diff",
        "Bytes",
        "Per Alloc",
    ] {
        at += line[at..].find(word)? + word.len();
    }
    Some(line[..col].chars().count())
}

/// One snapshot being read.
struct Pending {
    line: usize,
    time: ParsedTime,
    table: Option<(usize, usize)>,
    rows: Vec<TagRow>,
    seen: HashSet<(String, PoolName)>,
    pools: Option<PoolTotals>,
    session: bool,
}

struct Reader {
    format: Option<TagLogFormat>,
    pending: Option<Pending>,
    /// The last table header (column, line): poolsnap writes it once per file, so later runs
    /// are rows straight after their timestamp.
    last_table: Option<(usize, usize)>,
    done: Vec<Pending>,
    cells: usize,
    warnings: Warnings,
}

/// Reads a poolmon or poolsnap log.
pub fn parse(input: impl Read + 'static) -> Result<TagLog, ParseError> {
    let mut text = lines(input)?;
    let mut r = Reader {
        format: None,
        pending: None,
        last_table: None,
        done: Vec::new(),
        cells: 0,
        warnings: Warnings::default(),
    };
    while let Some(line) = text.next_line()? {
        r.line(&line)?;
    }
    r.finish_pending();
    r.into_log()
}

impl Reader {
    fn line(&mut self, line: &Line) -> Result<(), ParseError> {
        let t = line.text.as_str();
        if t.trim().is_empty() {
            return Ok(());
        }
        if let Some(time) = timestamp::parse(t) {
            self.finish_pending();
            self.pending = Some(Pending {
                line: line.number,
                time,
                table: None,
                rows: Vec::new(),
                seen: HashSet::new(),
                pools: None,
                session: false,
            });
            return Ok(());
        }
        if let Some((col, format)) = table_header(t) {
            return self.table_header(line, col, format);
        }
        match self.pending.as_ref().and_then(|p| p.table) {
            Some((col, start)) => self.row(line, col, start),
            None => {
                if let Some((col, start)) = self.inherited_table(t) {
                    return self.row(line, col, start);
                }
                self.preamble(line);
                Ok(())
            }
        }
    }

    /// A row right after a timestamp, under the table header an earlier snapshot printed.
    fn inherited_table(&mut self, t: &str) -> Option<(usize, usize)> {
        let (col, start) = self.last_table?;
        let with_driver = self.format == Some(TagLogFormat::Poolmon);
        let p = self.pending.as_mut()?;
        parse_row(t, col, with_driver).ok()?;
        p.table = Some((col, start));
        Some((col, start))
    }

    fn table_header(
        &mut self,
        line: &Line,
        col: usize,
        format: TagLogFormat,
    ) -> Result<(), ParseError> {
        let malformed = |reason: String| ParseError::Malformed {
            line: line.number,
            reason,
        };
        if let Some(f) = self.format.filter(|f| *f != format) {
            return Err(malformed(format!(
                "a {} table in a {} log",
                format.as_str(),
                f.as_str()
            )));
        }
        self.format = Some(format);
        let Some(p) = self.pending.as_mut() else {
            return Err(malformed(
                "a snapshot without a timestamp line before it (write `echo %date% %time%` before each snapshot: docs/trend.md)".into(),
            ));
        };
        if let Some((_, start)) = p.table {
            return Err(malformed(format!(
                "a second table after the timestamp at line {} (the table at line {start} has one): each snapshot needs its own timestamp line",
                p.line
            )));
        }
        p.table = Some((col, line.number));
        self.last_table = p.table;
        Ok(())
    }

    /// A line between a timestamp and its table: the pool totals, the pool's title.
    fn preamble(&mut self, line: &Line) {
        let t = line.text.as_str();
        match self.pending.as_mut() {
            Some(p) => {
                if let Some(totals) = poolmon::pool_totals(t) {
                    p.pools = Some(totals);
                }
                p.session |= poolmon::is_session_title(t);
            }
            None => self.warnings.push(format!(
                "line {}: not part of a snapshot (before the first timestamp line): ignored",
                line.number
            )),
        }
    }

    fn row(&mut self, line: &Line, col: usize, start: usize) -> Result<(), ParseError> {
        let t = line.text.trim_start();
        if t.starts_with("Total") || t.starts_with("TOTAL") {
            return Ok(());
        }
        let with_driver = self.format == Some(TagLogFormat::Poolmon);
        let (row, warning) = match parse_row(&line.text, col, with_driver) {
            Ok(r) => r,
            Err(reason) if !line.terminated => {
                self.warnings.push(format!(
                    "line {}: the log ends mid-line ({reason}): that row is ignored",
                    line.number
                ));
                return Ok(());
            }
            Err(reason) => {
                let hint = if poolmon::pool_totals(&line.text).is_some()
                    || line.text.contains("Memory:")
                {
                    " (a new snapshot without a timestamp line before it?)"
                } else {
                    ""
                };
                return Err(ParseError::Malformed {
                    line: line.number,
                    reason: format!("not a row of the table at line {start}: {reason}{hint}"),
                });
            }
        };
        if let Some(w) = warning {
            self.warnings.push(format!("line {}: {w}", line.number));
        }
        self.add_row(line.number, row)
    }

    fn add_row(&mut self, line: usize, row: TagRow) -> Result<(), ParseError> {
        // Rows are read only once a table header opened a snapshot; should that ever not
        // hold, the line is refused rather than the parser stopping.
        let Some(p) = self.pending.as_mut() else {
            return Err(ParseError::Malformed {
                line,
                reason: "a tag row outside any snapshot".into(),
            });
        };
        if !p.seen.insert((row.tag.clone(), row.pool)) {
            return Err(ParseError::Malformed {
                line,
                reason: format!(
                    "tag '{}' ({}) appears twice in the snapshot of line {}: each snapshot needs its own timestamp line",
                    row.tag,
                    row.pool.as_str(),
                    p.line
                ),
            });
        }
        if p.rows.len() >= MAX_TAGS_PER_SNAPSHOT {
            return Err(ParseError::TooManyRows {
                line,
                max: MAX_TAGS_PER_SNAPSHOT,
            });
        }
        self.cells += 1;
        if self.cells > MAX_TAG_CELLS {
            return Err(ParseError::TooManyRows {
                line,
                max: MAX_TAG_CELLS,
            });
        }
        p.rows.push(row);
        Ok(())
    }

    fn finish_pending(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if p.session {
            self.warnings.push(format!(
                "line {}: a session pool snapshot: only system pool is trended, ignored",
                p.line
            ));
        } else if p.table.is_none() || p.rows.is_empty() {
            self.warnings.push(format!(
                "line {}: a timestamp with no table rows after it: ignored",
                p.line
            ));
        } else {
            self.done.push(p);
        }
    }

    fn into_log(mut self) -> Result<TagLog, ParseError> {
        let Some(format) = self.format else {
            return Err(ParseError::Empty("no poolmon or poolsnap table".into()));
        };
        if self.done.is_empty() {
            return Err(ParseError::Empty(
                "no snapshot with rows and a timestamp".into(),
            ));
        }
        if self.done.len() > MAX_SNAPSHOTS {
            return Err(ParseError::TooManySnapshots { max: MAX_SNAPSHOTS });
        }
        let (times, local) = resolve_times(&self.done)?;
        check_order(&self.done, &times, &mut self.warnings)?;
        let lines: Vec<usize> = self.done.iter().map(|p| p.line).collect();
        for w in gap_warnings(&times, &lines) {
            self.warnings.push(w);
        }
        let snapshots = self
            .done
            .into_iter()
            .zip(times)
            .map(|(p, time_ms)| TagSnapshot {
                line: p.line,
                time_ms,
                rows: p.rows,
                pools: p.pools,
            })
            .collect();
        Ok(TagLog {
            format,
            snapshots,
            local_times: local,
            warnings: self.warnings.into_lines(),
        })
    }
}

/// Which table header `line` is.
fn table_header(line: &str) -> Option<(usize, TagLogFormat)> {
    poolmon::header_column(line)
        .map(|c| (c, TagLogFormat::Poolmon))
        .or_else(|| poolsnap::header_column(line).map(|c| (c, TagLogFormat::Poolsnap)))
}

/// Every snapshot's time under the file's date order; whether they are local wall-clock times.
fn resolve_times(done: &[Pending]) -> Result<(Vec<i64>, bool), ParseError> {
    let order = DateOrder::resolve(done.iter().map(|p| &p.time)).ok_or(ParseError::Malformed {
        line: done[0].line,
        reason: "the timestamps' dates read neither all month first nor all day first".into(),
    })?;
    let zoned = done
        .iter()
        .filter(|p| p.time.utc_offset_minutes.is_some())
        .count();
    if zoned != 0 && zoned != done.len() {
        let p = done
            .iter()
            .find(|p| p.time.utc_offset_minutes.is_none())
            .unwrap_or(&done[0]);
        return Err(ParseError::Malformed {
            line: p.line,
            reason: "a timestamp without a time zone in a log whose other timestamps have one"
                .into(),
        });
    }
    let times = done
        .iter()
        .map(|p| {
            p.time.utc_millis(order).ok_or(ParseError::Malformed {
                line: p.line,
                reason: "the timestamp's date does not read in the log's date order".into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((times, zoned == 0))
}

/// Snapshots must go forward in time; two at the same time are kept with a warning.
fn check_order(done: &[Pending], times: &[i64], w: &mut Warnings) -> Result<(), ParseError> {
    for (i, pair) in times.windows(2).enumerate() {
        let line = done[i + 1].line;
        if pair[1] < pair[0] {
            return Err(ParseError::OutOfOrder {
                line,
                time: timestamp::format_millis(pair[1]),
                previous: timestamp::format_millis(pair[0]),
            });
        }
        if pair[1] == pair[0] {
            w.push(format!(
                "line {line}: the same time as the snapshot at line {}",
                done[i].line
            ));
        }
    }
    Ok(())
}

/// One table row: the tag under the header's "Tag" column, then Type, Allocs, Frees, Diff,
/// Bytes, Per Alloc (the display's `( n)` change columns dropped) and, for poolmon, the
/// Mapped_Driver text. Returns the row and a warning when Diff is not Allocs - Frees.
pub fn parse_row(
    line: &str,
    col: usize,
    with_driver: bool,
) -> Result<(TagRow, Option<String>), String> {
    let mut chars = line.char_indices().skip(col);
    let start = chars.next().map(|(i, _)| i).ok_or("no tag")?;
    let end = chars
        .nth(3)
        .map(|(i, _)| i)
        .ok_or("shorter than a tag and its type")?;
    let tag = line[start..end].to_string();
    let rest = drop_changes(&line[end..]);
    if !rest.starts_with(char::is_whitespace) {
        return Err(format!("'{}' is not a four-character tag", &line[start..]));
    }
    let mut fields = Fields { s: &rest, at: 0 };
    let pool = match fields.next().ok_or("no pool type")? {
        "Nonp" => PoolName::Nonpaged,
        "Paged" => PoolName::Paged,
        other => return Err(format!("'{other}' is not a pool type (Nonp or Paged)")),
    };
    let mut num = |name: &str| -> Result<i64, String> {
        let f = fields.next().ok_or(format!("no {name}"))?;
        f.parse::<i64>()
            .map_err(|_| format!("{name} '{f}' is not a number"))
    };
    let (allocs, frees, diff, bytes) = (num("Allocs")?, num("Frees")?, num("Diff")?, num("Bytes")?);
    num("Per Alloc")?;
    if allocs < 0 || frees < 0 || bytes < 0 {
        return Err("a negative count".into());
    }
    let driver = if with_driver {
        poolmon::mapped_driver(fields.rest())
    } else {
        None
    };
    let warning = (diff != allocs - frees).then(|| {
        format!("tag '{tag}': Diff {diff} is not Allocs {allocs} - Frees {frees}; Allocs and Frees are used")
    });
    let row = TagRow {
        tag,
        pool,
        allocs: allocs as u64,
        frees: frees as u64,
        bytes: bytes as u64,
        driver,
    };
    Ok((row, warning))
}

/// The text with poolmon's display change columns, `(   0)` / `( -12)`, replaced by spaces.
fn drop_changes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('(') {
        let tail = &rest[open + 1..];
        let close = tail.find(')');
        let inner = close.map(|c| tail[..c].trim());
        let numeric = inner.is_some_and(|t| {
            let t = t.strip_prefix('-').unwrap_or(t);
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
        });
        match (numeric, close) {
            (true, Some(c)) => {
                out.push_str(&rest[..open]);
                out.push(' ');
                rest = &tail[c + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whitespace-separated fields with the rest of the line still at hand.
struct Fields<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.s[self.at..];
        let start = rest.find(|c: char| !c.is_whitespace())?;
        let len = rest[start..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - start);
        self.at += start + len;
        Some(&rest[start..start + len])
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
}
