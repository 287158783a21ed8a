//! The trend report (`pooltriage trend --json`): how pool and its tags grow over a series of
//! dumps and logs of one machine. Schema in docs/json.md "pooltriage trend".

use super::analysis::PoolName;
use super::hex::Hex;
pub use crate::trend::fit::Fit;
use crate::trend::rule::{Judgement, RuleConstants};
use serde::{Deserialize, Serialize};

pub const TREND_SCHEMA_VERSION: u32 = 1;
pub const TREND_KIND: &str = "trend";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendReport {
    pub schema_version: u32,
    /// `"trend"`.
    pub kind: String,
    pub generator: String,
    pub machine: TrendMachine,
    /// First and last instants of the inputs used, UTC.
    pub first: Option<String>,
    pub last: Option<String>,
    pub span_hours: f64,
    /// The growth rule's thresholds.
    pub rule: RuleConstants,
    pub verdict: TrendVerdict,
    pub sources: Vec<TrendSource>,
    pub pools: Vec<PoolTrend>,
    pub tags: Vec<TagTrend>,
    /// Tags whose fit was made but are not listed (only the fastest-growing are).
    pub tags_not_listed: usize,
    pub drivers: Vec<DriverTrend>,
    pub processes: Vec<ProcessAccounting>,
    pub warnings: Vec<String>,
}

/// What the inputs say about the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendMachine {
    /// The computer counter logs name.
    pub host: Option<String>,
    pub build: Option<u32>,
    pub arch: Option<String>,
    /// The kernel image (PDB name, GUID, age), from the dumps.
    pub kernel: Option<String>,
    pub kernel_base: Option<Hex>,
    pub boot_time: Option<String>,
}

/// One input and what was used of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendSource {
    pub name: String,
    /// `"dump"`, `"poolmon"`, `"poolsnap"`, `"counters"`.
    pub kind: String,
    /// Snapshots or samples read.
    pub samples: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    /// False for a dump of another boot (see warnings).
    pub used: bool,
    /// The computer it names (counter logs).
    pub host: Option<String>,
    /// Its timestamps had no zone and were shifted by this many minutes to UTC.
    pub utc_offset_minutes: Option<i32>,
    pub warnings: Vec<String>,
}

/// One point of a series, for charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Hours since the report's `first`.
    pub hours: f64,
    pub value: f64,
}

/// A pool over time, from one kind of source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolTrend {
    pub pool: PoolName,
    /// `"counters"` (\Memory\Pool ... Bytes), `"dumps"` (`!vm` in use), `"poolmon"` (its
    /// "Pool N/P" header) or `"tags"` (the sum of the tag tables' bytes).
    pub source: String,
    pub bytes: Fit,
    pub judgement: Judgement,
    /// Outstanding allocations (\Memory\Pool ... Allocs, or the tags' Diff summed).
    pub allocations: Option<Fit>,
    /// The pool's maximum, from the latest dump.
    pub max: Option<u64>,
    /// Hours until `max` at the fitted rate.
    pub hours_to_max: Option<f64>,
    pub points: Vec<Point>,
}

/// One tag in one pool over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagTrend {
    pub tag: String,
    pub pool: PoolName,
    /// Drivers the dumps' analysis (or poolmon's Mapped_Driver) ties to the tag.
    pub drivers: Vec<String>,
    pub bytes: Fit,
    pub judgement: Judgement,
    /// Outstanding allocations (Allocs - Frees) over time.
    pub outstanding: Fit,
    pub outstanding_judgement: Judgement,
    /// Allocations made per hour (Allocs over time; dumps and poolmon alike count them).
    pub allocs_per_hour: Option<f64>,
    pub hours_to_max: Option<f64>,
    /// Snapshot to snapshot, as poolmon's change columns.
    pub deltas: Vec<Delta>,
    pub points: Vec<Point>,
}

/// The change between two consecutive snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub from: String,
    pub to: String,
    pub allocs: i64,
    pub frees: i64,
    pub diff: i64,
    pub bytes: i64,
}

/// A driver's tags summed over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverTrend {
    pub driver: String,
    pub pool: PoolName,
    pub tags: Vec<String>,
    pub bytes: Fit,
    pub judgement: Judgement,
}

/// A pool's growth against what processes are charged (counter logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessAccounting {
    pub pool: PoolName,
    pub source: String,
    pub system: Fit,
    pub system_judgement: Judgement,
    /// The processes' pool quota summed (`_Total` when logged).
    pub processes: Option<Fit>,
    /// processes' slope / system's slope, when the system grows.
    pub share: Option<f64>,
    /// `"no-process"` (growth no process accounts for: a driver), `"process"` (one process's
    /// quota grows with it), `"not-growing"` or `"unknown"` (no process counters).
    pub conclusion: String,
    /// The fastest-growing processes.
    pub top: Vec<ProcessTrend>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessTrend {
    pub process: String,
    pub bytes: Fit,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendVerdict {
    pub kind: TrendVerdictKind,
    pub sentence: String,
    pub pool: Option<PoolName>,
    pub tag: Option<String>,
    pub drivers: Vec<String>,
    pub bytes_per_hour: Option<f64>,
    pub r2: Option<f64>,
    pub points: Option<usize>,
    pub hours_to_max: Option<f64>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrendVerdictKind {
    /// A tag a known driver allocates grows steadily: that driver leaks.
    DriverGrowth,
    /// A tag grows steadily; no driver is known for it.
    TagGrowth,
    /// A pool grows steadily; the inputs have no tag figures to say whose.
    PoolGrowth,
    /// Enough data, and nothing grows steadily.
    NoGrowth,
    /// Too few points or too short a span to say.
    InsufficientData,
}
