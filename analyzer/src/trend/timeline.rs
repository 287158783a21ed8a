//! The inputs on one clock: every tag snapshot (a dump, a poolmon or poolsnap snapshot) in time
//! order, in UTC. Logs whose timestamps name no zone are the machine's local wall clock; they
//! are moved to UTC by the offset the caller gives, else by the bias a counter log of the
//! machine names, else left as they are (with a warning when other inputs are in UTC).

use super::dumps::DumpPool;
use super::input::{PoolTotals, Source, SourceData, TagRow};

/// One tag table at one instant.
#[derive(Clone, Copy)]
pub struct Snap<'a> {
    pub time_ms: i64,
    pub source: usize,
    pub rows: &'a [TagRow],
    /// Poolmon's header totals.
    pub header: Option<PoolTotals>,
    /// A dump's `!vm` figures.
    pub dump_pools: Option<&'a [DumpPool]>,
    /// Whether `rows` is a tag table read whole (false for a dump whose tag tables could not
    /// be read: only its pool figures count).
    pub tags_read: bool,
}

/// How a source's local times were moved to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOffset {
    /// Minutes east of UTC.
    pub minutes: i32,
    /// Where it came from: the caller, or a counter log's bias.
    pub from_counters: bool,
}

/// The offset for local-time logs: the caller's, else the first counter log's bias.
pub fn local_offset(sources: &[Source], given: Option<i32>) -> Option<LocalOffset> {
    if let Some(m) = given {
        return Some(LocalOffset {
            minutes: m,
            from_counters: false,
        });
    }
    sources.iter().find_map(|s| match &s.data {
        SourceData::Counters(c) => c.bias_minutes.map(|b| LocalOffset {
            minutes: -b,
            from_counters: true,
        }),
        _ => None,
    })
}

/// Every tag snapshot of the `used` dumps and of the tag logs, oldest first.
pub fn snaps<'a>(
    sources: &'a [Source],
    used: &[bool],
    offset: Option<LocalOffset>,
) -> Vec<Snap<'a>> {
    let shift = offset.map_or(0, |o| i64::from(o.minutes) * 60_000);
    let mut out = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        match &s.data {
            SourceData::Dump(d) if used[i] => out.push(Snap {
                time_ms: d.time_ms,
                source: i,
                rows: &d.rows,
                header: None,
                dump_pools: Some(&d.pools),
                tags_read: d.tags_read,
            }),
            SourceData::Tags(log) => {
                let delta = if log.local_times { shift } else { 0 };
                out.extend(log.snapshots.iter().map(|sn| Snap {
                    time_ms: sn.time_ms - delta,
                    source: i,
                    rows: &sn.rows,
                    header: sn.pools,
                    dump_pools: None,
                    tags_read: true,
                }));
            }
            _ => {}
        }
    }
    out.sort_by_key(|s| s.time_ms);
    out
}

/// The snapshots whose tag tables were read: the tag, driver and tag-sum series are fitted on
/// these alone.
pub fn tag_snaps<'a>(snaps: &[Snap<'a>]) -> Vec<Snap<'a>> {
    snaps.iter().filter(|s| s.tags_read).copied().collect()
}

/// Hours from `t0` to `ms`.
pub fn hours(ms: i64, t0: i64) -> f64 {
    (ms - t0) as f64 / 3_600_000.0
}
