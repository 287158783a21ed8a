//! Each pool over time, once per kind of source (their figures are not the same measure: the
//! counters and `!vm` count pages, the tag tables bytes), so each is fitted on its own.

use super::input::{Counter, CounterLog, Source, SourceData};
use super::points::{chart, fit};
use super::rule::{hours_to_max, judge_bytes};
use super::tags::TagTable;
use super::timeline::{hours, Snap};
use crate::report::analysis::PoolName;
use crate::report::trend::PoolTrend;

const POOLS: [PoolName; 2] = [PoolName::Paged, PoolName::Nonpaged];

/// The pool's maximum from the latest dump that knows it.
pub fn max_from_dumps(sources: &[Source], used: &[bool], pool: PoolName) -> Option<u64> {
    sources
        .iter()
        .zip(used)
        .filter_map(|(s, &u)| match &s.data {
            SourceData::Dump(d) if u => Some(d),
            _ => None,
        })
        .filter_map(|d| {
            let m = d.pools.iter().find(|p| p.pool == pool)?.max?;
            Some((d.time_ms, m))
        })
        .max_by_key(|&(t, _)| t)
        .map(|(_, m)| m)
}

/// Pool trends from the snapshots (dumps' `!vm`, poolmon's header), the tags summed over
/// `tag_snaps` (those whose tag tables were read: `table`'s) and the counter logs.
pub fn pool_trends(
    sources: &[Source],
    snaps: &[Snap],
    tag_snaps: &[Snap],
    table: &TagTable,
    t0: i64,
    max_of: impl Fn(PoolName) -> Option<u64>,
) -> Vec<PoolTrend> {
    let mut out = Vec::new();
    for pool in POOLS {
        let max = max_of(pool);
        let dumps: Vec<(f64, f64)> = snaps
            .iter()
            .filter_map(|s| {
                let p = s.dump_pools?.iter().find(|p| p.pool == pool)?;
                Some((hours(s.time_ms, t0), p.in_use as f64))
            })
            .collect();
        push(&mut out, pool, "dumps", &dumps, None, max);
        let header: Vec<(f64, f64)> = snaps
            .iter()
            .filter_map(|s| {
                let h = s.header?;
                let v = if pool == PoolName::Paged {
                    h.paged_bytes
                } else {
                    h.nonpaged_bytes
                };
                Some((hours(s.time_ms, t0), v as f64))
            })
            .collect();
        push(&mut out, pool, "poolmon", &header, None, max);
        let (bytes, outstanding) = tag_sums(table, tag_snaps, t0, pool);
        push(&mut out, pool, "tags", &bytes, Some(&outstanding), max);
    }
    for s in sources {
        if let SourceData::Counters(c) = &s.data {
            counter_pools(&mut out, c, t0, &max_of);
        }
    }
    out
}

/// (hours, value) points of one series.
type Points = Vec<(f64, f64)>;

/// The tags' bytes and outstanding allocations in `pool`, summed per snapshot.
fn tag_sums(table: &TagTable, snaps: &[Snap], t0: i64, pool: PoolName) -> (Points, Points) {
    let mut bytes = vec![0.0; snaps.len()];
    let mut count = vec![0.0; snaps.len()];
    for (k, key) in table.keys.iter().enumerate() {
        if key.1 != pool {
            continue;
        }
        for (i, c) in table.cells[k].iter().enumerate() {
            if let Some(r) = c {
                bytes[i] += r.bytes as f64;
                count[i] += r.outstanding() as f64;
            }
        }
    }
    let at = |v: Vec<f64>| -> Points {
        snaps
            .iter()
            .zip(v)
            .map(|(s, v)| (hours(s.time_ms, t0), v))
            .collect()
    };
    if table.keys.iter().all(|k| k.1 != pool) {
        return (Vec::new(), Vec::new());
    }
    (at(bytes), at(count))
}

fn counter_pools(
    out: &mut Vec<PoolTrend>,
    c: &CounterLog,
    t0: i64,
    max_of: &impl Fn(PoolName) -> Option<u64>,
) {
    for (bytes_c, allocs_c) in [
        (Counter::PagedBytes, Counter::PagedAllocs),
        (Counter::NonpagedBytes, Counter::NonpagedAllocs),
    ] {
        let series = |counter: Counter| -> Vec<(f64, f64)> {
            c.system
                .iter()
                .find(|s| s.counter == counter)
                .map(|s| {
                    c.times
                        .iter()
                        .zip(&s.values)
                        .filter_map(|(&t, v)| v.map(|v| (hours(t, t0), v)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let bytes = series(bytes_c);
        let allocs = series(allocs_c);
        let allocs = (!allocs.is_empty()).then_some(allocs);
        let pool = bytes_c.pool();
        push(
            out,
            pool,
            "counters",
            &bytes,
            allocs.as_deref(),
            max_of(pool),
        );
    }
}

fn push(
    out: &mut Vec<PoolTrend>,
    pool: PoolName,
    source: &str,
    bytes: &[(f64, f64)],
    allocations: Option<&[(f64, f64)]>,
    max: Option<u64>,
) {
    if bytes.is_empty() {
        return;
    }
    let f = fit(bytes);
    let judgement = judge_bytes(Some(&f));
    out.push(PoolTrend {
        pool,
        source: source.to_string(),
        hours_to_max: judgement.growing().then(|| hours_to_max(&f, max)).flatten(),
        bytes: f,
        judgement,
        allocations: allocations.filter(|a| !a.is_empty()).map(fit),
        max,
        points: chart(bytes),
    });
}
