//! Is pool growing? Pool and its tags over time, from several crash dumps of one machine,
//! poolmon or poolsnap snapshots and Performance Monitor counter logs, in any mix
//! (docs/trend.md).
//!
//! One dump shows who holds pool; only a series shows who leaks it. The inputs are parsed
//! into typed [`input::Source`]s (one parser per format: [`tagtable`] with [`poolmon`] and
//! [`poolsnap`], [`counters`]; a dump's analysis report through [`dumps`]), then
//! [`analyze`] — a pure function, no I/O — checks they are one machine and one boot
//! ([`machine`]), puts them on one clock ([`timeline`]), fits every tag, driver, pool and
//! process series by least squares ([`fit`]), judges each by the growth rule ([`rule`]) and
//! decides ([`verdict`]). [`detect`] and [`load`] are the command line's file side.

pub mod cadence;
pub mod counters;
pub mod csv;
pub mod detect;
pub mod dumps;
pub mod error;
pub mod fit;
pub mod input;
pub mod limits;
pub mod load;
pub mod machine;
mod points;
pub mod poolmon;
mod pools;
pub mod poolsnap;
mod processes;
pub mod rule;
mod tags;
pub mod tagtable;
pub mod text;
pub mod timeline;
pub mod timestamp;
pub mod verdict;

pub use error::{ParseError, TrendError};
pub use input::{Source, SourceData};

use crate::report::hex::Hex;
use crate::report::trend::*;
use input::TagLogFormat;
use timeline::LocalOffset;
use timestamp::format_millis;

/// How to analyse, beyond the inputs.
#[derive(Debug, Clone, Default)]
pub struct TrendOptions {
    /// The generator string ("pooltriage 0.1.0").
    pub generator: String,
    /// Minutes east of UTC of the machine's clock, for logs whose timestamps name no zone.
    pub utc_offset_minutes: Option<i32>,
}

/// The trend of `sources`. `Err` when they are not one machine or there are none; a series
/// too short to judge is an `insufficient-data` verdict, not an error.
pub fn analyze(sources: &[Source], opts: &TrendOptions) -> Result<TrendReport, TrendError> {
    if sources.is_empty() {
        return Err(TrendError::NoInput);
    }
    let mut warnings = Vec::new();
    let used = check_machine(sources, &mut warnings)?;
    let offset = timeline::local_offset(sources, opts.utc_offset_minutes);
    warn_local_times(sources, offset, &mut warnings);
    let snaps = timeline::snaps(sources, &used, offset);
    let (t0, t1) = span(sources, &snaps);
    warn_unread_tags(sources, &used, &mut warnings);
    let tag_snaps = timeline::tag_snaps(&snaps);
    let table = tags::TagTable::build(&tag_snaps);
    if table.keys.len().saturating_mul(tag_snaps.len()) > limits::MAX_TAG_CELLS * 4 {
        return Err(TrendError::Unusable {
            name: "the inputs".into(),
            reason: format!(
                "{} tags x {} snapshots is more than this trend holds",
                table.keys.len(),
                tag_snaps.len()
            ),
        });
    }
    let max_of = |pool| pools::max_from_dumps(sources, &used, pool);
    let drivers = tags::tag_drivers(sources, &used, &table);
    let (tag_list, tags_not_listed) = tags::tag_trends(&table, &tag_snaps, t0, &drivers, max_of);
    let driver_list = tags::driver_trends(&table, &tag_snaps, t0, &drivers);
    let pool_list = pools::pool_trends(sources, &snaps, &tag_snaps, &table, t0, max_of);
    let process_list = processes::accounting(sources);
    let span_hours = timeline::hours(t1, t0);
    let verdict = verdict::decide(&verdict::Findings {
        tags: &tag_list,
        pools: &pool_list,
        processes: &process_list,
        span_hours,
        snapshots: snaps.len(),
        latest_dump: latest_dump(sources, &used).map(|d| d.verdict.1.as_str()),
    });
    Ok(TrendReport {
        schema_version: TREND_SCHEMA_VERSION,
        kind: TREND_KIND.to_string(),
        generator: opts.generator.clone(),
        machine: machine_of(sources, &used),
        first: (t1 >= t0 && t0 != i64::MAX).then(|| format_millis(t0)),
        last: (t1 >= t0 && t0 != i64::MAX).then(|| format_millis(t1)),
        span_hours: if t1 >= t0 { span_hours } else { 0.0 },
        rule: rule::RULE,
        verdict,
        sources: summaries(sources, &used, offset),
        pools: pool_list,
        tags: tag_list,
        tags_not_listed,
        drivers: driver_list,
        processes: process_list,
        warnings,
    })
}

/// Which dumps to use (the latest boot's), after checking every input is one machine.
fn check_machine(sources: &[Source], warnings: &mut Vec<String>) -> Result<Vec<bool>, TrendError> {
    let dumps: Vec<(usize, &dumps::DumpSnapshot)> = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.data {
            SourceData::Dump(d) => Some((i, d.as_ref())),
            _ => None,
        })
        .collect();
    let ids: Vec<(&str, &dumps::DumpIdentity, i64)> = dumps
        .iter()
        .map(|(i, d)| (sources[*i].name.as_str(), &d.identity, d.time_ms))
        .collect();
    let check = machine::check_dumps(&ids)?;
    warnings.extend(check.warnings);
    let hosts: Vec<(&str, &str)> = sources
        .iter()
        .filter_map(|s| match &s.data {
            SourceData::Counters(c) => c.host.as_deref().map(|h| (s.name.as_str(), h)),
            _ => None,
        })
        .collect();
    machine::check_hosts(&hosts)?;
    let mut used = vec![true; sources.len()];
    for (k, (i, _)) in dumps.iter().enumerate() {
        used[*i] = check.kept.contains(&k);
    }
    Ok(used)
}

fn warn_local_times(sources: &[Source], offset: Option<LocalOffset>, warnings: &mut Vec<String>) {
    let absolute = sources.iter().any(|s| match &s.data {
        SourceData::Tags(t) => !t.local_times,
        _ => true,
    });
    for s in sources {
        let SourceData::Tags(t) = &s.data else {
            continue;
        };
        if !t.local_times {
            continue;
        }
        match offset {
            Some(o) if o.from_counters => warnings.push(format!(
                "{}: its timestamps name no time zone: read in the counter log's zone (UTC{:+}:{:02})",
                s.name,
                o.minutes / 60,
                o.minutes.abs() % 60
            )),
            None if absolute => warnings.push(format!(
                "{}: its timestamps name no time zone and none is known: read as UTC (give the machine's offset with --utc-offset)",
                s.name
            )),
            _ => {}
        }
    }
}

/// A used dump whose tag tables could not be read adds its pool figures only: say so, since
/// its tags are then missing from the tag series.
fn warn_unread_tags(sources: &[Source], used: &[bool], warnings: &mut Vec<String>) {
    for (s, &u) in sources.iter().zip(used) {
        if let SourceData::Dump(d) = &s.data {
            if u && !d.tags_read {
                // The dump's own analysis knows why (a triage dump holds no tag tables at all);
                // otherwise missing symbols are the usual cause.
                warnings.push(if d.verdict.0 == "not-analyzable" {
                    format!("{}: {} Only its pool figures are used.", s.name, d.verdict.1)
                } else {
                    format!(
                        "{}: its tag tables could not be read (the kernel's symbols, through --symbol-path, --isf-dir or --symbols, may let them be read): only its pool figures are used",
                        s.name
                    )
                });
            }
        }
    }
}

/// The first and last instants of everything used.
fn span(sources: &[Source], snaps: &[timeline::Snap]) -> (i64, i64) {
    let mut times: Vec<i64> = snaps.iter().map(|s| s.time_ms).collect();
    for s in sources {
        if let SourceData::Counters(c) = &s.data {
            times.extend(c.times.first());
            times.extend(c.times.last());
        }
    }
    (
        times.iter().copied().min().unwrap_or(i64::MAX),
        times.iter().copied().max().unwrap_or(i64::MIN),
    )
}

fn latest_dump<'a>(sources: &'a [Source], used: &[bool]) -> Option<&'a dumps::DumpSnapshot> {
    sources
        .iter()
        .zip(used)
        .filter_map(|(s, &u)| match &s.data {
            SourceData::Dump(d) if u => Some(d.as_ref()),
            _ => None,
        })
        .max_by_key(|d| d.time_ms)
}

fn machine_of(sources: &[Source], used: &[bool]) -> TrendMachine {
    let d = latest_dump(sources, used).map(|d| &d.identity);
    let host = sources.iter().find_map(|s| match &s.data {
        SourceData::Counters(c) => c.host.clone(),
        _ => None,
    });
    TrendMachine {
        host,
        build: d.map(|d| d.build),
        arch: d.map(|d| d.arch.clone()),
        kernel: d.and_then(|d| d.kernel.clone()),
        kernel_base: d.and_then(|d| d.kernel_base).map(Hex),
        boot_time: d.and_then(|d| d.boot_time_ms).map(format_millis),
    }
}

fn summaries(sources: &[Source], used: &[bool], offset: Option<LocalOffset>) -> Vec<TrendSource> {
    sources
        .iter()
        .zip(used)
        .map(|(s, &u)| {
            let (kind, times, host, warnings, local): (&str, Vec<i64>, _, _, bool) = match &s.data {
                SourceData::Dump(d) => ("dump", vec![d.time_ms], None, Vec::new(), false),
                SourceData::Tags(t) => (
                    match t.format {
                        TagLogFormat::Poolmon => "poolmon",
                        TagLogFormat::Poolsnap => "poolsnap",
                    },
                    t.snapshots.iter().map(|x| x.time_ms).collect(),
                    None,
                    t.warnings.clone(),
                    t.local_times,
                ),
                SourceData::Counters(c) => (
                    "counters",
                    c.times.clone(),
                    c.host.clone(),
                    c.warnings.clone(),
                    false,
                ),
            };
            let shift = if local {
                offset.map(|o| o.minutes)
            } else {
                None
            };
            let to_utc = |ms: i64| ms - i64::from(shift.unwrap_or(0)) * 60_000;
            TrendSource {
                name: s.name.clone(),
                kind: kind.to_string(),
                samples: times.len(),
                first: times.first().map(|&t| format_millis(to_utc(t))),
                last: times.last().map(|&t| format_millis(to_utc(t))),
                used: u,
                host,
                utc_offset_minutes: shift,
                warnings,
            }
        })
        .collect()
}
