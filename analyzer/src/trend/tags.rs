//! Per tag and per driver: each (tag, pool) over the snapshots, fitted and judged; the drivers'
//! tags summed. A tag absent from a snapshot has no outstanding bytes there (dump reports list
//! every tag with outstanding bytes; poolmon lists every tag the kernel tracks).

use super::input::{Source, SourceData, TagRow};
use super::points::{chart, fit};
use super::rule::{judge_bytes, judge_count};
use super::timeline::{hours, Snap};
use super::timestamp::format_millis;
use crate::report::analysis::PoolName;
use crate::report::trend::{Delta, DriverTrend, TagTrend};
use std::collections::BTreeMap;

/// Tags listed in the report: every growing one up to this many, then the fastest-rising
/// others up to [`MAX_TAGS_LISTED`] in all.
pub const MAX_TAGS_LISTED: usize = 25;
/// Snapshot-to-snapshot deltas kept per listed tag (the latest).
pub const MAX_DELTAS: usize = 48;

/// Every (tag, pool)'s cell per snapshot.
pub struct TagTable<'a> {
    pub keys: Vec<(String, PoolName)>,
    /// `cells[key][snap]`.
    pub cells: Vec<Vec<Option<&'a TagRow>>>,
}

impl<'a> TagTable<'a> {
    pub fn build(snaps: &[Snap<'a>]) -> TagTable<'a> {
        let mut index: BTreeMap<(String, PoolName), usize> = BTreeMap::new();
        for s in snaps {
            for r in s.rows {
                let n = index.len();
                index.entry((r.tag.clone(), r.pool)).or_insert(n);
            }
        }
        let mut keys = vec![(String::new(), PoolName::Paged); index.len()];
        for (k, &i) in &index {
            keys[i] = k.clone();
        }
        let mut cells = vec![vec![None; snaps.len()]; keys.len()];
        for (si, s) in snaps.iter().enumerate() {
            for r in s.rows {
                cells[index[&(r.tag.clone(), r.pool)]][si] = Some(r);
            }
        }
        TagTable { keys, cells }
    }

    /// (hours, value) of key `k` for every snapshot; absent cells count `absent`.
    pub fn series(
        &self,
        k: usize,
        snaps: &[Snap],
        t0: i64,
        value: impl Fn(&TagRow) -> u64,
    ) -> Vec<(f64, f64)> {
        snaps
            .iter()
            .zip(&self.cells[k])
            .map(|(s, c)| (hours(s.time_ms, t0), c.map_or(0, &value) as f64))
            .collect()
    }
}

/// The drivers of each tag: the latest dump's attribution, else the latest poolmon row's
/// Mapped_Driver.
pub fn tag_drivers(sources: &[Source], used: &[bool], table: &TagTable) -> Vec<Vec<String>> {
    let latest_dump = sources
        .iter()
        .zip(used)
        .filter_map(|(s, &u)| match &s.data {
            SourceData::Dump(d) if u => Some(d),
            _ => None,
        })
        .max_by_key(|d| d.time_ms);
    table
        .keys
        .iter()
        .zip(&table.cells)
        .map(|((tag, _), cells)| {
            latest_dump
                .and_then(|d| d.tag_drivers.get(tag).cloned())
                .or_else(|| {
                    cells
                        .iter()
                        .rev()
                        .find_map(|c| c.and_then(|r| r.driver.clone()))
                        .map(|d| vec![d])
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Every tag's trend, fastest-rising first; returns the listed ones and how many were not.
pub fn tag_trends(
    table: &TagTable,
    snaps: &[Snap],
    t0: i64,
    drivers: &[Vec<String>],
    max_of: impl Fn(PoolName) -> Option<u64>,
) -> (Vec<TagTrend>, usize) {
    let mut all: Vec<TagTrend> = (0..table.keys.len())
        .map(|k| one_tag(table, k, snaps, t0, &drivers[k], max_of(table.keys[k].1)))
        .collect();
    all.sort_by(|a, b| {
        b.judgement
            .growing()
            .cmp(&a.judgement.growing())
            .then(b.bytes.slope_per_hour.total_cmp(&a.bytes.slope_per_hour))
            .then(a.tag.cmp(&b.tag))
    });
    let total = all.len();
    all.truncate(MAX_TAGS_LISTED);
    for t in &mut all {
        let k = table
            .keys
            .iter()
            .position(|(tag, p)| *tag == t.tag && *p == t.pool)
            .unwrap_or(0);
        t.deltas = deltas(&table.cells[k], snaps);
        t.points = chart(&table.series(k, snaps, t0, |r| r.bytes));
    }
    let listed = all.len();
    (all, total - listed)
}

fn one_tag(
    table: &TagTable,
    k: usize,
    snaps: &[Snap],
    t0: i64,
    drivers: &[String],
    max: Option<u64>,
) -> TagTrend {
    let bytes = fit(&table.series(k, snaps, t0, |r| r.bytes));
    let outstanding = fit(&table.series(k, snaps, t0, TagRow::outstanding));
    let allocs: Vec<(f64, f64)> = snaps
        .iter()
        .zip(&table.cells[k])
        .filter_map(|(s, c)| c.map(|r| (hours(s.time_ms, t0), r.allocs as f64)))
        .collect();
    let allocs_fit = super::fit::least_squares(&allocs);
    let judgement = judge_bytes(Some(&bytes));
    TagTrend {
        tag: table.keys[k].0.clone(),
        pool: table.keys[k].1,
        drivers: drivers.to_vec(),
        hours_to_max: judgement
            .growing()
            .then(|| super::rule::hours_to_max(&bytes, max))
            .flatten(),
        bytes,
        judgement,
        outstanding_judgement: judge_count(Some(&outstanding)),
        outstanding,
        allocs_per_hour: allocs_fit.map(|f| f.slope_per_hour),
        deltas: Vec::new(),
        points: Vec::new(),
    }
}

/// poolmon's change columns between consecutive snapshots (the latest [`MAX_DELTAS`]). Of
/// several snapshots at one instant (a dump and the poolmon snapshot taken with it) the first
/// stands for that instant: a change between two views of one moment is no change.
fn deltas(cells: &[Option<&TagRow>], snaps: &[Snap]) -> Vec<Delta> {
    let v = |c: Option<&TagRow>, f: fn(&TagRow) -> u64| c.map_or(0, f) as i64;
    let mut instants: Vec<usize> = Vec::new();
    for (i, s) in snaps.iter().enumerate() {
        if instants
            .last()
            .is_none_or(|&p| snaps[p].time_ms < s.time_ms)
        {
            instants.push(i);
        }
    }
    let mut out: Vec<Delta> = instants
        .windows(2)
        .map(|w| {
            let (a, b) = (cells[w[0]], cells[w[1]]);
            Delta {
                from: format_millis(snaps[w[0]].time_ms),
                to: format_millis(snaps[w[1]].time_ms),
                allocs: v(b, |r| r.allocs) - v(a, |r| r.allocs),
                frees: v(b, |r| r.frees) - v(a, |r| r.frees),
                diff: v(b, TagRow::outstanding) - v(a, TagRow::outstanding),
                bytes: v(b, |r| r.bytes) - v(a, |r| r.bytes),
            }
        })
        .collect();
    if out.len() > MAX_DELTAS {
        out.drain(..out.len() - MAX_DELTAS);
    }
    out
}

/// Each driver's tags summed per pool, fastest-rising first.
pub fn driver_trends(
    table: &TagTable,
    snaps: &[Snap],
    t0: i64,
    drivers: &[Vec<String>],
) -> Vec<DriverTrend> {
    let mut groups: BTreeMap<(String, PoolName), Vec<usize>> = BTreeMap::new();
    for (k, ds) in drivers.iter().enumerate() {
        for d in ds {
            groups
                .entry((d.clone(), table.keys[k].1))
                .or_default()
                .push(k);
        }
    }
    let mut out: Vec<DriverTrend> = groups
        .into_iter()
        .map(|((driver, pool), ks)| {
            let mut sum = vec![0.0; snaps.len()];
            for &k in &ks {
                for (s, (_, v)) in sum.iter_mut().zip(table.series(k, snaps, t0, |r| r.bytes)) {
                    *s += v;
                }
            }
            let pts: Vec<(f64, f64)> = snaps
                .iter()
                .zip(sum)
                .map(|(s, v)| (hours(s.time_ms, t0), v))
                .collect();
            let bytes = fit(&pts);
            DriverTrend {
                driver,
                pool,
                tags: ks.iter().map(|&k| table.keys[k].0.clone()).collect(),
                judgement: judge_bytes(Some(&bytes)),
                bytes,
            }
        })
        .collect();
    out.sort_by(|a, b| b.bytes.slope_per_hour.total_cmp(&a.bytes.slope_per_hour));
    out
}
