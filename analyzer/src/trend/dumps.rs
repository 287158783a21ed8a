//! A crash dump as one snapshot of a trend: its analysis report's tag counters, pool figures,
//! time and identity. Built from the report alone ([`DumpSnapshot::from_report`]), so the
//! service can use the reports it stores.

use super::input::TagRow;
use super::timestamp::{self, DateOrder};
use crate::report::analysis::{AnalysisReport, PoolName};
use std::collections::BTreeMap;

/// What one dump contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpSnapshot {
    /// SystemTime, milliseconds since 1970 UTC.
    pub time_ms: i64,
    pub identity: DumpIdentity,
    /// System pool tags (session pool is left out: it is per session, and poolmon's default
    /// table is system pool).
    pub rows: Vec<TagRow>,
    /// Whether the analysis read the tag tables: a dump whose tags could not be read (no
    /// symbols, say) lists none, and its tags must not count as zero in a trend.
    pub tags_read: bool,
    /// `!vm`'s pool in use and maximum.
    pub pools: Vec<DumpPool>,
    /// The drivers whose code or blocks the analysis ties to each tag.
    pub tag_drivers: BTreeMap<String, Vec<String>>,
    /// The single-dump verdict's kind and sentence.
    pub verdict: (String, String),
}

/// Pool in use and its maximum in one dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpPool {
    pub pool: PoolName,
    pub in_use: u64,
    pub max: Option<u64>,
}

/// What tells one machine, and one boot of it, from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpIdentity {
    pub build: u32,
    pub arch: String,
    /// The kernel image: its PDB (name, GUID, age), else its timestamp and size.
    pub kernel: Option<String>,
    pub kernel_base: Option<u64>,
    /// SystemTime - SystemUpTime, milliseconds since 1970 UTC.
    pub boot_time_ms: Option<i64>,
    /// Loaded modules: name and base.
    pub modules: Vec<(String, u64)>,
}

impl DumpSnapshot {
    /// The snapshot of a dump's analysis; `Err` when the report has no system time (a trend
    /// needs to know when each dump was taken).
    pub fn from_report(r: &AnalysisReport) -> Result<DumpSnapshot, String> {
        let time_ms = r
            .dump
            .system_time
            .as_deref()
            .and_then(utc_millis)
            .ok_or("the dump header holds no system time")?;
        let tag_drivers = tag_drivers(r);
        let rows = r
            .tags
            .iter()
            .flat_map(|t| {
                let driver = tag_drivers.get(&t.tag).and_then(|d| d.first().cloned());
                [
                    (
                        PoolName::Paged,
                        t.paged_allocs,
                        t.paged_frees,
                        t.paged_bytes,
                    ),
                    (
                        PoolName::Nonpaged,
                        t.nonpaged_allocs,
                        t.nonpaged_frees,
                        t.nonpaged_bytes,
                    ),
                ]
                .into_iter()
                .filter(|&(_, a, f, b)| a != 0 || f != 0 || b != 0)
                .map(move |(pool, allocs, frees, bytes)| TagRow {
                    tag: t.tag.clone(),
                    pool,
                    allocs,
                    frees,
                    bytes,
                    driver: driver.clone(),
                })
            })
            .collect();
        Ok(DumpSnapshot {
            time_ms,
            identity: identity(r),
            tags_read: !r.tags.is_empty(),
            rows,
            pools: r
                .pools
                .iter()
                .map(|p| DumpPool {
                    pool: p.pool,
                    in_use: p.in_use,
                    max: p.max,
                })
                .collect(),
            tag_drivers,
            verdict: (
                serde_json::to_value(r.verdict.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                r.verdict.sentence.clone(),
            ),
        })
    }
}

/// "YYYY-MM-DDTHH:MM:SSZ" to milliseconds since 1970.
fn utc_millis(s: &str) -> Option<i64> {
    timestamp::parse(s)?.utc_millis(DateOrder::MonthFirst)
}

/// Each tag's drivers by the analysis' evidence (code, blocks), else its first named owner.
fn tag_drivers(r: &AnalysisReport) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &r.drivers {
        for t in d.tags.iter().filter(|t| !t.session) {
            let v = map.entry(t.tag.clone()).or_default();
            if !v.contains(&d.module) {
                v.push(d.module.clone());
            }
        }
    }
    for t in &r.tags {
        if let Some(m) = t.owners.iter().find_map(|o| o.module.clone()) {
            map.entry(t.tag.clone()).or_insert_with(|| vec![m]);
        }
    }
    map
}

fn identity(r: &AnalysisReport) -> DumpIdentity {
    let kernel_base = r.dump.kernel_base.map(|h| h.0);
    let kernel = r
        .modules
        .iter()
        .find(|m| Some(m.base.0) == kernel_base)
        .or(r.modules.first())
        .map(|m| match &m.pdb {
            Some(p) => format!("{} {} {}", p.name, p.guid, p.age),
            None => format!(
                "{} {:#x} {:#x}",
                m.name,
                m.timestamp.map(|t| t.0).unwrap_or(0),
                m.size
            ),
        });
    DumpIdentity {
        build: r.dump.build,
        arch: r.dump.arch.clone(),
        kernel,
        kernel_base,
        boot_time_ms: r.dump.boot_time.as_deref().and_then(utc_millis),
        modules: r
            .modules
            .iter()
            .map(|m| (m.name.clone(), m.base.0))
            .collect(),
    }
}
