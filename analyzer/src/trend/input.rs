//! The typed inputs of a trend: what each parser makes of a file, and what a dump's analysis
//! report gives. [`super::analyze`] takes these and nothing else, so the service can feed it
//! stored reports and uploaded logs without the command line's file handling.

use crate::report::analysis::PoolName;

/// One input: its name (a file path, an upload's id) and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub data: SourceData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceData {
    /// A crash dump's analysis ([`super::dumps::DumpSnapshot::from_report`]).
    Dump(Box<super::dumps::DumpSnapshot>),
    /// Tag tables over time: poolmon `-n` snapshots or poolsnap/memsnap `-p` logs.
    Tags(TagLog),
    /// Performance counters over time: typeperf or relog CSV/TSV.
    Counters(CounterLog),
}

/// Which tool printed a tag log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagLogFormat {
    /// `poolmon -n` (and poolmon's display, copied): columns Tag, Type, Allocs, Frees, Diff,
    /// Bytes, Per Alloc, and Mapped_Driver with `/g` or `/c`.
    Poolmon,
    /// poolsnap / `memsnap -p`: the narrower Tag, Type, Allocs, Frees, Diff, Bytes, Per Alloc.
    Poolsnap,
}

impl TagLogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TagLogFormat::Poolmon => "poolmon",
            TagLogFormat::Poolsnap => "poolsnap",
        }
    }
}

/// Tag tables at several times.
#[derive(Debug, Clone, PartialEq)]
pub struct TagLog {
    pub format: TagLogFormat,
    pub snapshots: Vec<TagSnapshot>,
    /// The timestamps carry no zone: they are the machine's local wall clock.
    pub local_times: bool,
    pub warnings: Vec<String>,
}

/// One tag table at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSnapshot {
    /// The line of its timestamp.
    pub line: usize,
    /// Milliseconds since 1970 (UTC, or local wall clock when the log's times are local).
    pub time_ms: i64,
    pub rows: Vec<TagRow>,
    /// Poolmon's "Pool N: ...K P: ...K" header figures, in bytes.
    pub pools: Option<PoolTotals>,
}

/// Pool in use as a snapshot's header (or a dump's `!vm` figures) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolTotals {
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
}

/// One tag in one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    /// The four characters as the tool prints them (trailing spaces kept: `"Io  "`).
    pub tag: String,
    pub pool: PoolName,
    pub allocs: u64,
    pub frees: u64,
    pub bytes: u64,
    /// The driver the tool (or the dump's attribution) names for the tag.
    pub driver: Option<String>,
}

impl TagRow {
    /// Allocations not freed (poolmon's Diff).
    pub fn outstanding(&self) -> u64 {
        self.allocs.saturating_sub(self.frees)
    }
}

/// Performance counters over time, one host.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterLog {
    /// The computer the counter paths name (`\\HOST\...`), `None` for local paths.
    pub host: Option<String>,
    /// The header's time zone name and bias (minutes to add to local time for UTC).
    pub zone: Option<String>,
    pub bias_minutes: Option<i32>,
    /// Sample times, milliseconds since 1970 UTC (local when the bias is unknown).
    pub times: Vec<i64>,
    /// The line of each sample.
    pub lines: Vec<usize>,
    /// `\Memory\...` pool counters.
    pub system: Vec<CounterSeries>,
    /// `\Process(name)\Pool Paged Bytes` / `Pool Nonpaged Bytes`.
    pub processes: Vec<CounterSeries>,
    pub warnings: Vec<String>,
}

/// One counter's values, aligned with [`CounterLog::times`]; `None` where the log has none.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSeries {
    pub counter: Counter,
    /// The process instance (`svchost#1`, `_Total`) for process counters.
    pub instance: Option<String>,
    pub values: Vec<Option<f64>>,
}

/// The counters a pool trend reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    /// `\Memory\Pool Paged Bytes`, `\Process(x)\Pool Paged Bytes`.
    PagedBytes,
    /// `\Memory\Pool Nonpaged Bytes`, `\Process(x)\Pool Nonpaged Bytes`.
    NonpagedBytes,
    /// `\Memory\Pool Paged Allocs`.
    PagedAllocs,
    /// `\Memory\Pool Nonpaged Allocs`.
    NonpagedAllocs,
}

impl Counter {
    /// Its name after the object, as Performance Monitor spells it in English.
    pub fn name(self) -> &'static str {
        match self {
            Counter::PagedBytes => "Pool Paged Bytes",
            Counter::NonpagedBytes => "Pool Nonpaged Bytes",
            Counter::PagedAllocs => "Pool Paged Allocs",
            Counter::NonpagedAllocs => "Pool Nonpaged Allocs",
        }
    }

    pub fn pool(self) -> PoolName {
        match self {
            Counter::PagedBytes | Counter::PagedAllocs => PoolName::Paged,
            Counter::NonpagedBytes | Counter::NonpagedAllocs => PoolName::Nonpaged,
        }
    }

    pub const ALL: [Counter; 4] = [
        Counter::PagedBytes,
        Counter::NonpagedBytes,
        Counter::PagedAllocs,
        Counter::NonpagedAllocs,
    ];
}
