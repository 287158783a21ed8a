//! The trend parsers on logs laid out as the tools print them (tests/fixtures/trend/README.md
//! says where each layout comes from), every bad input the parsers must name, and hostile
//! inputs. Expected figures come from how the fixtures were built (README), never from
//! pooltriage's own output.

use analyzer::report::analysis::PoolName;
use analyzer::report::trend::TrendVerdictKind;
use analyzer::trend::detect::{detect, DetectError, InputKind};
use analyzer::trend::error::ParseError;
use analyzer::trend::input::{Counter, CounterLog, Source, SourceData, TagLog, TagLogFormat};
use analyzer::trend::limits::{MAX_COLUMNS, MAX_LINE_BYTES};
use analyzer::trend::{analyze, counters, tagtable, TrendError, TrendOptions};
use std::io::Cursor;
use std::path::PathBuf;

const MIB: f64 = 1_048_576.0;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trend")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

fn tags(bytes: Vec<u8>) -> Result<TagLog, ParseError> {
    tagtable::parse(Cursor::new(bytes))
}

fn ctrs(bytes: Vec<u8>) -> Result<CounterLog, ParseError> {
    counters::parse(Cursor::new(bytes))
}

fn source(name: &str, data: SourceData) -> Source {
    Source {
        name: name.into(),
        data,
    }
}

fn opts() -> TrendOptions {
    TrendOptions {
        generator: "test".into(),
        utc_offset_minutes: None,
    }
}

/// 2021-03-10T00:00:00Z is Unix 1615334400.
const MAR10: i64 = 1_615_334_400_000;
const HOUR: i64 = 3_600_000;

#[test]
fn poolmon_n_with_mapped_driver() {
    let log = tags(fixture("poolmon_n_g.log")).unwrap();
    assert_eq!(detect(&fixture("poolmon_n_g.log")), Ok(InputKind::TagLog));
    assert_eq!(log.format, TagLogFormat::Poolmon);
    assert!(log.local_times);
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    assert_eq!(log.snapshots.len(), 6);
    for (h, s) in log.snapshots.iter().enumerate() {
        let t = MAR10 + 13 * HOUR + 51 * 60_000 + 9_250 + h as i64 * HOUR;
        assert_eq!(s.time_ms, t, "snapshot {h}");
        assert_eq!(s.rows.len(), 4);
        let leak = s.rows.iter().find(|r| r.tag == "Leak").unwrap();
        assert_eq!(leak.pool, PoolName::Paged);
        assert_eq!(leak.outstanding(), 256 * (1 + 2 * h as u64));
        assert_eq!(leak.bytes, 524_288 * (1 + 2 * h as u64));
        assert_eq!(leak.driver.as_deref(), Some("leaky.sys"));
        let pools = s.pools.unwrap();
        assert_eq!(pools.nonpaged_bytes, 85_000 * 1024);
        assert_eq!(pools.paged_bytes, (330_240 + 1024 * h as u64) * 1024);
    }
    let first = &log.snapshots[0].rows;
    assert_eq!(
        first[0].tag, "Io  ",
        "a tag with spaces is read by position"
    );
    assert_eq!(first[0].pool, PoolName::Nonpaged);
    assert_eq!(first[3].driver, None, "Unknown Driver names none");
}

#[test]
fn poolmon_alone_finds_the_leaking_driver() {
    let log = tags(fixture("poolmon_n_g.log")).unwrap();
    let r = analyze(&[source("pm", SourceData::Tags(log))], &opts()).unwrap();
    assert_eq!(
        r.verdict.kind,
        TrendVerdictKind::DriverGrowth,
        "{}",
        r.verdict.sentence
    );
    assert_eq!(r.verdict.drivers, ["leaky.sys"]);
    assert_eq!(r.verdict.tag.as_deref(), Some("Leak"));
    let rate = r.verdict.bytes_per_hour.unwrap();
    assert!((rate - MIB).abs() < 1e-6 * MIB, "{rate}");
    let leak = &r.tags[0];
    assert!((leak.outstanding.slope_per_hour - 512.0).abs() < 1e-6);
    assert!((leak.allocs_per_hour.unwrap() - 600.0).abs() < 1e-6);
    assert_eq!(leak.deltas.len(), 5);
    assert_eq!(
        (
            leak.deltas[0].allocs,
            leak.deltas[0].diff,
            leak.deltas[0].bytes
        ),
        (600, 512, 1 << 20)
    );
    assert!(r
        .tags
        .iter()
        .filter(|t| t.tag != "Leak")
        .all(|t| !t.judgement.growing()));
    let header = r
        .pools
        .iter()
        .find(|p| p.source == "poolmon" && p.pool == PoolName::Paged)
        .unwrap();
    assert!((header.bytes.slope_per_hour - MIB).abs() < 1.0);
}

#[test]
fn poolmon_display_copy_drops_change_columns() {
    let log = tags(fixture("poolmon_display.log")).unwrap();
    assert!(!log.local_times, "ISO times with Z are UTC");
    assert_eq!(log.snapshots.len(), 5);
    assert_eq!(log.snapshots[1].time_ms, MAR10 + 15 * HOUR);
    let r = &log.snapshots[4].rows;
    assert_eq!(r[0].tag, "1MEM");
    assert_eq!(r[0].driver.as_deref(), Some("el90xbc5"));
    assert_eq!(
        (r[1].allocs, r[1].frees, r[1].bytes),
        (3400, 1096, 9 * 524_288)
    );
}

#[test]
fn poolsnap_header_once() {
    let log = tags(fixture("poolsnap.log")).unwrap();
    assert_eq!(log.format, TagLogFormat::Poolsnap);
    assert_eq!(log.snapshots.len(), 4);
    assert!(log
        .snapshots
        .iter()
        .all(|s| s.rows.len() == 2 && s.pools.is_none()));
    assert_eq!(log.snapshots[3].time_ms, MAR10 + 12 * HOUR);
    assert_eq!(log.snapshots[3].rows[1].bytes, 7 * 524_288);
}

#[test]
fn typeperf_en_us() {
    let log = ctrs(fixture("typeperf_en.csv")).unwrap();
    assert_eq!(detect(&fixture("typeperf_en.csv")), Ok(InputKind::Counters));
    assert_eq!(log.host.as_deref(), Some("SQL01"));
    assert_eq!(log.zone.as_deref(), Some("Eastern Standard Time"));
    assert_eq!(log.bias_minutes, Some(300));
    // 08:00:00.125 local + 300 minutes.
    assert_eq!(log.times[0], MAR10 + 13 * HOUR + 125);
    assert_eq!(log.times[7] - log.times[0], 7 * HOUR / 2);
    assert_eq!(log.system.len(), 4, "the four \\Memory pool counters");
    assert_eq!(
        log.processes.len(),
        3,
        "_Total, svchost#1, explorer; % Processor Time is not kept"
    );
    let paged = log
        .system
        .iter()
        .find(|s| s.counter == Counter::PagedBytes)
        .unwrap();
    assert_eq!(paged.values[1], Some(203_000_000.0));
    let explorer = log
        .processes
        .iter()
        .find(|p| p.instance.as_deref() == Some("explorer"))
        .unwrap();
    assert_eq!(explorer.values[2], None, "\" \" is no value");
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
}

#[test]
fn typeperf_localized_forms_read_the_same() {
    let en = ctrs(fixture("typeperf_en.csv")).unwrap();
    let de = ctrs(fixture("typeperf_de.csv")).unwrap();
    assert_eq!(de.bias_minutes, Some(-60));
    // 10.03.2021 08:00:00.125 in UTC+1 is 07:00:00.125Z.
    assert_eq!(de.times[0], MAR10 + 7 * HOUR + 125);
    assert_eq!(de.system, en.system, "decimal commas read as points");
    let gb = ctrs(fixture("typeperf_en_gb.csv")).unwrap();
    assert_eq!(
        gb.times[0],
        MAR10 + 8 * HOUR,
        "10/03/2021 read day first (a later 13/03 says so)"
    );
    assert_eq!(gb.times[3], MAR10 + 3 * 24 * HOUR + 8 * HOUR);
    let tsv = ctrs(fixture("relog.tsv")).unwrap();
    assert_eq!(tsv.bias_minutes, Some(-540));
    assert_eq!(
        tsv.times[0],
        MAR10 - HOUR,
        "08:00 in Tokyo is 23:00Z the day before"
    );
    assert_eq!(tsv.system[0].values[..6], en.system[0].values[..6]);
}

#[test]
fn counters_alone_say_no_process_accounts_for_it() {
    let log = ctrs(fixture("typeperf_en.csv")).unwrap();
    let r = analyze(&[source("tp", SourceData::Counters(log))], &opts()).unwrap();
    assert_eq!(
        r.verdict.kind,
        TrendVerdictKind::PoolGrowth,
        "{}",
        r.verdict.sentence
    );
    assert_eq!(r.verdict.pool, Some(PoolName::Paged));
    assert!((r.verdict.bytes_per_hour.unwrap() - 6_000_000.0).abs() < 1e-3);
    let a = r
        .processes
        .iter()
        .find(|a| a.pool == PoolName::Paged)
        .unwrap();
    assert_eq!(a.conclusion, "no-process");
    assert!((a.processes.unwrap().slope_per_hour - 2000.0).abs() < 1e-6);
    assert!(r
        .verdict
        .sentence
        .contains("no process's pool quota grows with it"));
}

// ---- bad inputs: each names its line ----

fn edit(name: &str, f: impl FnOnce(&mut Vec<String>)) -> Vec<u8> {
    let t = text(name);
    let mut lines: Vec<String> = t.split("\r\n").map(str::to_string).collect();
    f(&mut lines);
    lines.join("\r\n").into_bytes()
}

fn malformed_line(e: ParseError) -> (usize, String) {
    match e {
        ParseError::Malformed { line, reason } => (line, reason),
        other => panic!("not Malformed: {other:?}"),
    }
}

#[test]
fn poolmon_bad_inputs() {
    // No timestamp before the first snapshot: its table header (line 4 once line 1 is gone).
    let e = tags(edit("poolmon_n_g.log", |l| {
        l.remove(0);
    }))
    .unwrap_err();
    let (line, reason) = malformed_line(e);
    assert_eq!(line, 4);
    assert!(reason.contains("without a timestamp line"), "{reason}");
    // Two runs under one timestamp: the second run's first line (line 12 once the second
    // timestamp is gone) is no row of the first table.
    let (line, reason) = malformed_line(
        tags(edit("poolmon_n_g.log", |l| {
            l.remove(11);
        }))
        .unwrap_err(),
    );
    assert_eq!(line, 12);
    assert!(
        reason.contains("a new snapshot without a timestamp line before it"),
        "{reason}"
    );
    // Two tables of rows under one timestamp (poolsnap's header is written once): a tag twice.
    let (line, reason) = malformed_line(
        tags(edit("poolsnap.log", |l| {
            l.remove(5);
        }))
        .unwrap_err(),
    );
    assert_eq!(line, 6);
    assert!(
        reason.contains("tag 'CM31' (paged) appears twice"),
        "{reason}"
    );
    // Out of order: the second snapshot an hour before the first.
    let e = tags(edit("poolmon_n_g.log", |l| {
        l[11] = "Wed 03/10/2021 12:51:09.25".into()
    }))
    .unwrap_err();
    assert!(
        matches!(e, ParseError::OutOfOrder { line: 12, .. }),
        "{e:?}"
    );
    // A gap: the last snapshot ten hours late.
    let log = tags(edit("poolmon_n_g.log", |l| {
        l[55] = "Thu 03/11/2021 04:51:09.25".into()
    }))
    .unwrap();
    assert!(
        log.warnings
            .iter()
            .any(|w| w.starts_with("line 56: gap of 11h 00m")),
        "{:?}",
        log.warnings
    );
    // Cut mid-row: the last row is a warning, the rest is read.
    let mut b = fixture("poolmon_n_g.log");
    let cut = String::from_utf8_lossy(&b).rfind(" Xyz1").unwrap() + 14;
    b.truncate(cut);
    let log = tags(b).unwrap();
    assert_eq!(log.snapshots.len(), 6);
    assert_eq!(log.snapshots[5].rows.len(), 3);
    assert!(
        log.warnings
            .iter()
            .any(|w| w.starts_with("line 65: the log ends mid-line")),
        "{:?}",
        log.warnings
    );
    // A row that does not read, in the middle.
    let (line, reason) = malformed_line(
        tags(edit("poolmon_n_g.log", |l| {
            l[7] = " Leak Paged      12x4   8  4  8192 2048".into()
        }))
        .unwrap_err(),
    );
    assert_eq!(line, 8);
    assert!(reason.contains("is not a number"), "{reason}");
    // A pool type that is not one.
    let (_, reason) = malformed_line(
        tags(edit("poolmon_n_g.log", |l| {
            l[7] = l[7].replace("Paged", "Huge ")
        }))
        .unwrap_err(),
    );
    assert!(reason.contains("'Huge' is not a pool type"), "{reason}");
}

#[test]
fn counter_log_bad_inputs() {
    // Cut mid-line: a warning naming it.
    let mut b = fixture("typeperf_en.csv");
    b.truncate(b.len() - 40);
    let log = ctrs(b).unwrap();
    assert_eq!(log.times.len(), 7);
    assert!(
        log.warnings
            .iter()
            .any(|w| w.starts_with("line 9: the log ends mid-line")),
        "{:?}",
        log.warnings
    );
    // A short row in the middle: an error.
    let (line, reason) = malformed_line(
        ctrs(edit("typeperf_en.csv", |l| {
            let cut = l[3].rfind(",\"").unwrap();
            l[3].truncate(cut);
        }))
        .unwrap_err(),
    );
    assert_eq!(line, 4);
    assert!(
        reason.contains("8 fields where the header has 9"),
        "{reason}"
    );
    // Out of order.
    let e = ctrs(edit("typeperf_en.csv", |l| {
        l[4] = l[4].replacen("09:30", "07:30", 1)
    }))
    .unwrap_err();
    assert!(matches!(e, ParseError::OutOfOrder { line: 5, .. }), "{e:?}");
    // A gap.
    let log = ctrs(edit("typeperf_en.csv", |l| {
        l[8] = l[8].replacen("11:30", "19:30", 1)
    }))
    .unwrap();
    assert!(
        log.warnings
            .iter()
            .any(|w| w.starts_with("line 9: gap of 8h 30m")),
        "{:?}",
        log.warnings
    );
    // Two machines in one log.
    let e = ctrs(edit("typeperf_en.csv", |l| {
        l[0] = l[0].replacen(
            r"\\SQL01\Memory\Pool Nonpaged Bytes",
            r"\\WEB02\Memory\Pool Nonpaged Bytes",
            1,
        )
    }))
    .unwrap_err();
    assert_eq!(
        e,
        ParseError::TwoHosts {
            line: 1,
            first: "SQL01".into(),
            second: "WEB02".into()
        }
    );
    // A decimal comma in a log of decimal points.
    let (line, reason) = malformed_line(
        ctrs(edit("typeperf_en.csv", |l| {
            l[5] = l[5].replace(".000000", ",000000")
        }))
        .unwrap_err(),
    );
    assert_eq!(line, 6);
    assert!(
        reason.contains("a decimal comma here but a decimal point at line 2"),
        "{reason}"
    );
    // No pool counters at all.
    let e = ctrs(b"\"(PDH-CSV 4.0) (UTC)(0)\",\"\\\\H\\Processor(_Total)\\% Processor Time\"\r\n\"03/10/2021 00:00:00.000\",\"1\"\r\n".to_vec()).unwrap_err();
    assert!(matches!(e, ParseError::NoCounters(_)), "{e:?}");
    // Another format handed to the counter parser.
    let (line, _) = malformed_line(ctrs(fixture("poolsnap.log")).unwrap_err());
    assert_eq!(line, 1);
}

#[test]
fn two_machines_in_two_logs() {
    let a = ctrs(fixture("typeperf_en.csv")).unwrap();
    let b = ctrs(edit("typeperf_en.csv", |l| {
        l[0] = l[0].replace("SQL01", "WEB02")
    }))
    .unwrap();
    let e = analyze(
        &[
            source("a.csv", SourceData::Counters(a)),
            source("b.csv", SourceData::Counters(b)),
        ],
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, TrendError::TwoMachines { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "a.csv and b.csv are not the same machine: their counters name computers SQL01 and WEB02"
    );
}

#[test]
fn other_formats_are_refused_by_content() {
    assert!(matches!(
        detect(b"Subject: hello\r\n\r\nworld"),
        Err(DetectError::Unknown(_))
    ));
    assert_eq!(detect(b"MDMP\x93\xa7\0\0"), Err(DetectError::UserDump));
    assert_eq!(detect(b"PAGEDU64"), Ok(InputKind::Dump));
    let e = tags(b"hello\nworld\n".to_vec()).unwrap_err();
    assert!(matches!(e, ParseError::Empty(_)), "{e:?}");
}

// ---- hostile inputs: bounded, an error, never a panic ----

#[test]
fn huge_line() {
    let mut b = b"Wed 03/10/2021 13:51:09.25\r\n".to_vec();
    b.extend(std::iter::repeat_n(b'7', MAX_LINE_BYTES + 1));
    assert_eq!(
        tags(b.clone()).unwrap_err(),
        ParseError::LineTooLong {
            line: 2,
            max: MAX_LINE_BYTES
        }
    );
    let mut c = fixture("typeperf_en.csv");
    c.extend(std::iter::repeat_n(b'"', MAX_LINE_BYTES * 2));
    assert_eq!(
        ctrs(c).unwrap_err(),
        ParseError::LineTooLong {
            line: 10,
            max: MAX_LINE_BYTES
        }
    );
}

#[test]
fn binary_garbage() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_eq!(detect(&garbage[..65536]), Err(DetectError::Binary));
    assert!(tags(garbage.clone()).is_err());
    assert!(ctrs(garbage).is_err());
}

#[test]
fn a_million_columns() {
    let mut header = String::from("\"(PDH-CSV 4.0) (UTC)(0)\"");
    header.push_str(
        &",\"\\\\H\\Memory\\Pool Paged Bytes\""
            .repeat(1_000_000)
            .chars()
            .take(MAX_LINE_BYTES - 100)
            .collect::<String>(),
    );
    let short = format!(
        "\"(PDH-CSV 4.0) (UTC)(0)\"{}\r\n",
        ",\"\"".repeat(1_000_000)
    );
    match ctrs(short.into_bytes()).unwrap_err() {
        ParseError::TooManyColumns {
            line: 1,
            columns,
            max,
        } => {
            assert_eq!(max, MAX_COLUMNS);
            assert!(columns > MAX_COLUMNS);
        }
        other => panic!("{other:?}"),
    }
    assert!(ctrs(header.into_bytes()).is_err());
}
