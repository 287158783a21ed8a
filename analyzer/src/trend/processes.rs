//! System pool against the processes' pool quota (counter logs): growth no process accounts
//! for is a driver's (Microsoft's guidance for pool leaks: when pool grows and no process's
//! Pool Paged/Nonpaged Bytes grow with it, the leak is in a driver).

use super::input::{Counter, CounterLog, CounterSeries, Source, SourceData};
use super::points::fit;
use super::rule::judge_bytes;
use super::timeline::hours;
use crate::report::trend::{ProcessAccounting, ProcessTrend};

/// Processes whose summed pool quota grows at half the system's rate or more carry the growth
/// (quota-charged allocations leaked through a process's handles); below that, most of it is
/// charged to no process: a driver's.
pub const PROCESS_SHARE: f64 = 0.5;

/// Processes listed per pool.
pub const TOP_PROCESSES: usize = 5;

/// One accounting per counter log and pool.
pub fn accounting(sources: &[Source]) -> Vec<ProcessAccounting> {
    let mut out = Vec::new();
    for s in sources {
        if let SourceData::Counters(c) = &s.data {
            for counter in [Counter::PagedBytes, Counter::NonpagedBytes] {
                if let Some(a) = one_pool(c, counter, &s.name) {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn one_pool(c: &CounterLog, counter: Counter, name: &str) -> Option<ProcessAccounting> {
    let system = c.system.iter().find(|s| s.counter == counter)?;
    let system_fit = fit(&points(c, system));
    let system_judgement = judge_bytes(Some(&system_fit));
    let procs: Vec<&CounterSeries> = c
        .processes
        .iter()
        .filter(|p| p.counter == counter)
        .collect();
    let total = procs
        .iter()
        .find(|p| p.instance.as_deref() == Some("_Total"));
    let each: Vec<&CounterSeries> = procs
        .iter()
        .copied()
        .filter(|p| p.instance.as_deref() != Some("_Total"))
        .collect();
    let processes = match total {
        Some(t) => Some(fit(&points(c, t))),
        None if !each.is_empty() => Some(fit(&summed(c, &each))),
        None => None,
    };
    let share = processes
        .filter(|_| system_fit.slope_per_hour > 0.0)
        .map(|p| p.slope_per_hour / system_fit.slope_per_hour);
    let conclusion = match (system_judgement.growing(), share) {
        (false, _) => "not-growing",
        (true, None) => "unknown",
        (true, Some(s)) if s < PROCESS_SHARE => "no-process",
        (true, Some(_)) => "process",
    };
    let mut top: Vec<ProcessTrend> = each
        .iter()
        .map(|p| ProcessTrend {
            process: p.instance.clone().unwrap_or_default(),
            bytes: fit(&points(c, p)),
        })
        .collect();
    top.sort_by(|a, b| b.bytes.slope_per_hour.total_cmp(&a.bytes.slope_per_hour));
    top.truncate(TOP_PROCESSES);
    Some(ProcessAccounting {
        pool: counter.pool(),
        source: name.to_string(),
        system: system_fit,
        system_judgement,
        processes,
        share,
        conclusion: conclusion.to_string(),
        top,
    })
}

/// (hours since the log's first sample, value) where the log has one.
fn points(c: &CounterLog, s: &CounterSeries) -> Vec<(f64, f64)> {
    let t0 = c.times.first().copied().unwrap_or(0);
    c.times
        .iter()
        .zip(&s.values)
        .filter_map(|(&t, v)| v.map(|v| (hours(t, t0), v)))
        .collect()
}

/// The processes' values summed per sample (a process without a value there counts 0).
fn summed(c: &CounterLog, each: &[&CounterSeries]) -> Vec<(f64, f64)> {
    let t0 = c.times.first().copied().unwrap_or(0);
    c.times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let v: f64 = each.iter().filter_map(|p| p.values[i]).sum();
            (hours(t, t0), v)
        })
        .collect()
}
