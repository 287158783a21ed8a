//! Performance counter logs as typeperf and relog write them in CSV (`-f CSV`, the default)
//! or TSV: a header line `"(PDH-CSV 4.0) (Zone Name)(bias)","\\HOST\Object(Instance)\Counter",
//! ...`, then one line per sample: its time, then each counter's value.
//!
//! Sources: the Platform SDK's "Log File Formats" (PDH: "The fields of a record within a CSV
//! log file are delimited by double-quotes and commas ... The first line ... serves as the
//! header, providing information about the format of the file, the version of the PDH
//! interface used to create the log file, and the names and paths of each of the counters");
//! the typeperf and relog references (learn.microsoft.com/windows-server/administration/
//! windows-commands/typeperf, relog: `-f <CSV|TSV|BIN|SQL>`); counter paths
//! `\\Computer\Object(Instance)\Counter`; the Windows Server 2003 performance guide's sample
//! log: `"(PDH-CSV 4.0) (Eastern Daylight Time)(240)","\\SQL01\Memory\Pages/sec",...` then
//! `"09/08/2002 12:35:45.166","11.296813511113458",...`. The bias is Windows' time zone bias:
//! minutes added to local time for UTC (Eastern Daylight 240, Tokyo -540). A value typeperf
//! could not read is written `" "`.
//!
//! A localized Windows writes the sample time with the user's date order and the value with
//! the user's decimal separator (`"10.03.2021 13:51:09.250","12345,5"`): both are read
//! ([`super::timestamp`]; a decimal comma when a log's values have commas and no points).
//! Counter names are read in English only. A binary `.blg` log is not read: see
//! [`super::detect`].

use super::cadence::gap_warnings;
use super::csv::fields;
use super::error::{ParseError, Warnings};
use super::input::{Counter, CounterLog, CounterSeries};
use super::limits::{MAX_COLUMNS, MAX_COUNTER_SAMPLES};
use super::text::{lines, Line};
use super::timestamp::{self, DateOrder, ParsedTime};
use std::io::Read;

/// The first field of a PDH CSV/TSV header starts so.
pub const CSV_MAGIC: &str = "(PDH-CSV 4.0)";
pub const TSV_MAGIC: &str = "(PDH-TSV 4.0)";

/// A column the trend keeps: which series it feeds.
struct Column {
    index: usize,
    series: usize,
    process: bool,
}

/// The log being read.
struct Reader {
    sep: char,
    width: usize,
    columns: Vec<Column>,
    system: Vec<CounterSeries>,
    processes: Vec<CounterSeries>,
    times: Vec<ParsedTime>,
    lines: Vec<usize>,
    decimal: Decimal,
    warnings: Warnings,
}

/// What the log's values use for a decimal separator, and where it was first seen.
#[derive(Default)]
struct Decimal {
    point: Option<usize>,
    comma: Option<usize>,
}

/// Reads a typeperf/relog CSV or TSV log.
pub fn parse(input: impl Read + 'static) -> Result<CounterLog, ParseError> {
    let mut text = lines(input)?;
    let header = text
        .next_line()?
        .ok_or(ParseError::Empty("an empty file".into()))?;
    let (mut r, HeaderFacts { host, zone, bias }) = Reader::from_header(&header)?;
    while let Some(line) = text.next_line()? {
        r.sample(&line)?;
    }
    r.into_log(host, zone, bias)
}

/// What a log's header says of the machine: the one computer its counter paths name, its time
/// zone's name and bias.
struct HeaderFacts {
    host: Option<String>,
    zone: Option<String>,
    bias: Option<i32>,
}

impl Reader {
    fn from_header(line: &Line) -> Result<(Reader, HeaderFacts), ParseError> {
        let t = line.text.trim_start_matches('"');
        let sep = if t.starts_with(CSV_MAGIC) {
            ','
        } else if t.starts_with(TSV_MAGIC) {
            '\t'
        } else {
            return Err(ParseError::Malformed {
                line: 1,
                reason: format!("not a PDH CSV/TSV header (it starts {CSV_MAGIC} or {TSV_MAGIC})"),
            });
        };
        let f = fields(&line.text, sep).map_err(|columns| ParseError::TooManyColumns {
            line: 1,
            columns,
            max: MAX_COLUMNS,
        })?;
        let (zone, bias) = zone_and_bias(&f[0]);
        let mut r = Reader {
            sep,
            width: f.len(),
            columns: Vec::new(),
            system: Vec::new(),
            processes: Vec::new(),
            times: Vec::new(),
            lines: Vec::new(),
            decimal: Decimal::default(),
            warnings: Warnings::default(),
        };
        let host = r.pick_columns(&f[1..])?;
        Ok((r, HeaderFacts { host, zone, bias }))
    }

    /// Keeps the pool counters' columns; returns the one host they all name.
    fn pick_columns(&mut self, paths: &[String]) -> Result<Option<String>, ParseError> {
        let mut host: Option<Option<String>> = None;
        for (i, path) in paths.iter().enumerate() {
            let Some(p) = CounterPath::parse(path) else {
                continue;
            };
            let Some((counter, process)) = p.pool_counter() else {
                continue;
            };
            match &host {
                Some(h) if *h != p.host => {
                    return Err(ParseError::TwoHosts {
                        line: 1,
                        first: h.clone().unwrap_or_else(|| "(local)".into()),
                        second: p.host.clone().unwrap_or_else(|| "(local)".into()),
                    })
                }
                Some(_) => {}
                None => host = Some(p.host.clone()),
            }
            let series = CounterSeries {
                counter,
                instance: process.then(|| p.instance.clone().unwrap_or_default()),
                values: Vec::new(),
            };
            let list = if process {
                &mut self.processes
            } else {
                &mut self.system
            };
            list.push(series);
            self.columns.push(Column {
                index: i + 1,
                series: list.len() - 1,
                process,
            });
        }
        match host {
            Some(h) => Ok(h),
            None => Err(ParseError::NoCounters(
                "no pool counters in the header: log \\Memory\\Pool Paged Bytes, \\Memory\\Pool Nonpaged Bytes (and Allocs) and \\Process(*)\\Pool Paged Bytes, \\Process(*)\\Pool Nonpaged Bytes, by their English names (docs/trend.md)".into(),
            )),
        }
    }

    fn sample(&mut self, line: &Line) -> Result<(), ParseError> {
        if line.text.trim().is_empty() {
            return Ok(());
        }
        let malformed = |reason: String| ParseError::Malformed {
            line: line.number,
            reason,
        };
        let f = fields(&line.text, self.sep).map_err(|columns| ParseError::TooManyColumns {
            line: line.number,
            columns,
            max: MAX_COLUMNS,
        })?;
        if f.len() != self.width {
            let reason = format!("{} fields where the header has {}", f.len(), self.width);
            if !line.terminated && f.len() < self.width {
                self.warnings.push(format!(
                    "line {}: the log ends mid-line ({reason}): that sample is ignored",
                    line.number
                ));
                return Ok(());
            }
            return Err(malformed(reason));
        }
        let time = timestamp::parse(&f[0])
            .ok_or_else(|| malformed(format!("'{}' is not a sample time", f[0])))?;
        let kept = (self.times.len() + 1) * self.columns.len();
        if kept > MAX_COUNTER_SAMPLES {
            return Err(ParseError::TooManySamples {
                max: MAX_COUNTER_SAMPLES,
            });
        }
        for c in &self.columns {
            let v = value(&f[c.index], line.number, &mut self.decimal).map_err(malformed)?;
            let list = if c.process {
                &mut self.processes
            } else {
                &mut self.system
            };
            list[c.series].values.push(v);
        }
        self.times.push(time);
        self.lines.push(line.number);
        Ok(())
    }

    fn into_log(
        mut self,
        host: Option<String>,
        zone: Option<String>,
        bias: Option<i32>,
    ) -> Result<CounterLog, ParseError> {
        if self.times.is_empty() {
            return Err(ParseError::Empty("a header and no samples".into()));
        }
        if let (Some(p), Some(c)) = (self.decimal.point, self.decimal.comma) {
            return Err(ParseError::Malformed {
                line: p.max(c),
                reason: format!(
                    "a decimal {} here but a decimal {} at line {}",
                    if c > p { "comma" } else { "point" },
                    if c > p { "point" } else { "comma" },
                    p.min(c)
                ),
            });
        }
        let times = self.resolve_times(bias)?;
        for w in gap_warnings(&times, &self.lines) {
            self.warnings.push(w);
        }
        if bias.is_none() {
            self.warnings
                .push("line 1: the header names no time zone bias: sample times are local".into());
        }
        Ok(CounterLog {
            host,
            zone,
            bias_minutes: bias,
            times,
            lines: self.lines,
            system: self.system,
            processes: self.processes,
            warnings: self.warnings.into_lines(),
        })
    }

    /// Sample times in UTC (local + bias), checked to go forward.
    fn resolve_times(&mut self, bias: Option<i32>) -> Result<Vec<i64>, ParseError> {
        let order = DateOrder::resolve(&self.times).ok_or(ParseError::Malformed {
            line: self.lines[0],
            reason: "the sample times' dates read neither all month first nor all day first".into(),
        })?;
        let shift = i64::from(bias.unwrap_or(0)) * 60_000;
        let mut out = Vec::with_capacity(self.times.len());
        for (t, &line) in self.times.iter().zip(&self.lines) {
            let ms = t.millis(order).ok_or(ParseError::Malformed {
                line,
                reason: "the sample time's date does not read in the log's date order".into(),
            })? + shift;
            if let Some(&prev) = out.last() {
                if ms < prev {
                    return Err(ParseError::OutOfOrder {
                        line,
                        time: timestamp::format_millis(ms),
                        previous: timestamp::format_millis(prev),
                    });
                }
                if ms == prev {
                    self.warnings.push(format!(
                        "line {line}: the same time as the sample before it"
                    ));
                }
            }
            out.push(ms);
        }
        Ok(out)
    }
}

/// `(PDH-CSV 4.0) (Tokyo Standard Time)(-540)` -> the zone's name and its bias.
fn zone_and_bias(first: &str) -> (Option<String>, Option<i32>) {
    let rest = first.get(CSV_MAGIC.len()..).unwrap_or("").trim();
    let Some(open) = rest.find('(') else {
        return (None, None);
    };
    let Some(close) = rest.rfind(")(") else {
        return (None, None);
    };
    if close <= open {
        return (None, None);
    }
    let zone = rest[open + 1..close].to_string();
    let bias = rest[close + 2..].trim_end_matches(')').trim().parse().ok();
    (Some(zone), bias)
}

/// A value: empty or blank is none; a decimal comma is a decimal point.
fn value(field: &str, line: usize, d: &mut Decimal) -> Result<Option<f64>, String> {
    let f = field.trim();
    if f.is_empty() {
        return Ok(None);
    }
    let normal = if f.contains(',') && !f.contains('.') {
        d.comma.get_or_insert(line);
        f.replace(',', ".")
    } else {
        if f.contains('.') {
            d.point.get_or_insert(line);
        }
        f.to_string()
    };
    match normal.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("'{field}' is not a counter value")),
    }
}

/// `\\HOST\Object(Instance)\Counter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterPath {
    pub host: Option<String>,
    pub object: String,
    pub instance: Option<String>,
    pub counter: String,
}

impl CounterPath {
    pub fn parse(path: &str) -> Option<CounterPath> {
        let (host, rest) = match path.strip_prefix("\\\\") {
            Some(r) => {
                let i = r.find('\\')?;
                (Some(r[..i].to_string()), &r[i..])
            }
            None => (None, path),
        };
        let rest = rest.strip_prefix('\\')?;
        let cut = rest.rfind('\\')?;
        let (obj, counter) = (&rest[..cut], &rest[cut + 1..]);
        let (object, instance) = match obj.find('(') {
            Some(i) if obj.ends_with(')') => {
                (&obj[..i], Some(obj[i + 1..obj.len() - 1].to_string()))
            }
            _ => (obj, None),
        };
        Some(CounterPath {
            host,
            object: object.to_string(),
            instance,
            counter: counter.to_string(),
        })
    }

    /// The pool counter this path is, and whether it is a process's.
    fn pool_counter(&self) -> Option<(Counter, bool)> {
        let c = Counter::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(&self.counter))?;
        if self.object.eq_ignore_ascii_case("Memory") && self.instance.is_none() {
            Some((c, false))
        } else if self.object.eq_ignore_ascii_case("Process")
            && self.instance.is_some()
            && matches!(c, Counter::PagedBytes | Counter::NonpagedBytes)
        {
            Some((c, true))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = CounterPath::parse(r"\\SQL01\Process(svchost#1)\Pool Paged Bytes").unwrap();
        assert_eq!(p.host.as_deref(), Some("SQL01"));
        assert_eq!(p.object, "Process");
        assert_eq!(p.instance.as_deref(), Some("svchost#1"));
        assert_eq!(p.pool_counter(), Some((Counter::PagedBytes, true)));
        let m = CounterPath::parse(r"\Memory\Pool Nonpaged Allocs").unwrap();
        assert_eq!(m.host, None);
        assert_eq!(m.pool_counter(), Some((Counter::NonpagedAllocs, false)));
        assert!(CounterPath::parse("(PDH-CSV 4.0)").is_none());
    }

    #[test]
    fn zones() {
        assert_eq!(
            zone_and_bias("(PDH-CSV 4.0) (Eastern Daylight Time)(240)"),
            (Some("Eastern Daylight Time".into()), Some(240))
        );
        assert_eq!(
            zone_and_bias("(PDH-CSV 4.0) (Tokyo Standard Time)(-540)"),
            (Some("Tokyo Standard Time".into()), Some(-540))
        );
        assert_eq!(zone_and_bias("(PDH-CSV 4.0)"), (None, None));
    }
}
