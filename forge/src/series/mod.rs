//! A series of dumps of one machine (`forge --series N --interval DURATION`): N dumps whose
//! system times are DURATION apart in one boot (same modules, same addresses, up time growing
//! with the clock), whose pool leaks at a planted rate (`growing-leak`) or holds steady
//! (`steady-state`); and the same machine's `poolmon.log` and `typeperf.csv` written from each
//! dump's truth ([`logs`]). `series.truth.json` states the planted rates.

pub mod clock_text;
pub mod growth;
pub mod logs;

use crate::system::Clock;
use crate::truth::hex;
use crate::{profiles, ForgeError, Options};
use growth::{Growth, GrowthScenario};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Dumps in one series: enough for any fit, few enough to forge in seconds each.
pub const MAX_SERIES: u32 = 64;
/// The interval's bounds: a minute to thirty days.
pub const MIN_INTERVAL_SECS: u64 = 60;
pub const MAX_INTERVAL_SECS: u64 = 30 * 86_400;

/// What series to forge.
#[derive(Debug, Clone)]
pub struct SeriesOptions {
    /// Profile, format, size, processors, corpus; `scenario` is `growing-leak` or
    /// `steady-state`.
    pub base: Options,
    pub count: u32,
    pub interval_secs: u64,
    /// The leak's planted rate (growing-leak); `None`: [`GrowthScenario::DEFAULT_BLOCKS_PER_STEP`]
    /// blocks per step.
    pub bytes_per_hour: Option<u64>,
}

/// `DURATION`: a number with `s`, `m`, `h` or `d` (`90m`, `1h`, `2d`), or seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The file of step `i` in `dir`.
pub fn dump_path(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("series-{i:02}.dmp"))
}

/// Forges the series into `dir` (created if missing); returns `series.truth.json`'s value.
pub fn forge_series(opts: &SeriesOptions, dir: &Path) -> Result<Value, ForgeError> {
    let spec = profiles::find(&opts.base.profile)
        .ok_or_else(|| ForgeError::UnknownProfile(opts.base.profile.clone()))?;
    let bad = ForgeError::BadSeries;
    if !(2..=MAX_SERIES).contains(&opts.count) {
        return Err(bad(format!("--series takes 2 to {MAX_SERIES} dumps")));
    }
    if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&opts.interval_secs) {
        return Err(bad("--interval takes 1m to 30d".into()));
    }
    let growth = match opts.base.scenario.as_str() {
        "growing-leak" => Growth::Leaking {
            blocks_per_step: blocks_per_step(opts),
        },
        "steady-state" => Growth::Steady,
        other => {
            return Err(bad(format!(
                "scenario {other:?}: a series is growing-leak or steady-state"
            )))
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| ForgeError::Io(dir.display().to_string(), e))?;
    let start = Clock::of(spec);
    let mut pools = Vec::new();
    let mut dumps = Vec::new();
    for i in 0..opts.count {
        let clock = start.later(u64::from(i) * opts.interval_secs);
        let scenario = GrowthScenario {
            growth,
            step: u64::from(i),
        };
        let out = dump_path(dir, i);
        let truth = crate::forge_with(&opts.base, &out, &scenario, Some(clock))?;
        let pool = truth.pool.clone().unwrap_or(Value::Null);
        dumps.push(json!({
            "file": out.file_name().map(|n| n.to_string_lossy().into_owned()),
            "step": i,
            "system_time": hex(clock.system_time),
            "system_time_utc": analyzer::report::time::filetime_to_rfc3339(clock.system_time),
            "leak_blocks": pool["series"]["leak_blocks"],
            "paged_in_use": pool["vm"]["paged_in_use"],
            "nonpaged_in_use": pool["vm"]["nonpaged_in_use"],
        }));
        pools.push((clock.system_time, pool));
    }
    let steps: Vec<logs::Step> = pools
        .iter()
        .map(|(t, p)| logs::Step {
            system_time: *t,
            pool: p,
            memory: opts.base.size,
        })
        .collect();
    logs::write_poolmon(&dir.join("poolmon.log"), &steps)?;
    logs::write_typeperf(&dir.join("typeperf.csv"), &steps)?;
    let truth = series_truth(opts, spec, start, growth, &pools, dumps);
    let path = dir.join("series.truth.json");
    let text =
        serde_json::to_vec_pretty(&truth).map_err(|e| ForgeError::Internal(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| ForgeError::Io(path.display().to_string(), e))?;
    Ok(truth)
}

/// Blocks per step for the asked rate, with a block of about 2 KiB (its exact size, header
/// and rounding included, is in the truth).
fn blocks_per_step(opts: &SeriesOptions) -> u64 {
    match opts.bytes_per_hour {
        Some(r) => {
            let per_step = r as f64 * opts.interval_secs as f64 / 3600.0;
            ((per_step / 2048.0).round() as u64).max(1)
        }
        None => GrowthScenario::DEFAULT_BLOCKS_PER_STEP,
    }
}

fn series_truth(
    opts: &SeriesOptions,
    spec: &profiles::ProfileSpec,
    start: Clock,
    growth: Growth,
    pools: &[(u64, Value)],
    dumps: Vec<Value>,
) -> Value {
    let block = pools
        .first()
        .and_then(|(_, p)| p["series"]["leak_block_bytes"].as_u64())
        .unwrap_or(0);
    let hours = opts.interval_secs as f64 / 3600.0;
    let leak = match growth {
        Growth::Leaking { blocks_per_step } => json!({
            "tag": "Leak",
            "pool": "paged",
            "driver": "leaky.sys",
            "block_bytes": block,
            "blocks_per_step": blocks_per_step,
            "jitter_blocks": growth::JITTER_BLOCKS,
            "bytes_per_hour": (blocks_per_step * block) as f64 / hours,
            "outstanding_per_hour": blocks_per_step as f64 / hours,
            "allocs_per_hour": (blocks_per_step + growth::LEAK_FREES_PER_STEP) as f64 / hours,
            "frees_per_hour": growth::LEAK_FREES_PER_STEP as f64 / hours,
        }),
        Growth::Steady => Value::Null,
    };
    json!({
        "schema": 1,
        "profile": spec.name,
        "format": opts.base.format,
        "scenario": opts.base.scenario,
        "count": opts.count,
        "interval_seconds": opts.interval_secs,
        "boot_time": hex(start.boot_time()),
        "boot_time_utc": analyzer::report::time::filetime_to_rfc3339(start.boot_time()),
        "leak": leak,
        "churn": {"tag": "Chrn", "pool": "paged", "level_blocks": growth::CHURN_LEVEL, "swing_blocks": growth::CHURN_SWING},
        "dumps": dumps,
        "logs": {
            "poolmon": "poolmon.log",
            "typeperf": "typeperf.csv",
            "host": logs::HOST,
            "zone": logs::ZONE,
            "bias_minutes": logs::BIAS_MINUTES,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Some(5400));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
