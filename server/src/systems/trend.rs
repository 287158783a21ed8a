//! A system's trend, from what the service already stores: each analysed dump's report
//! (`analyzer::trend::dumps::DumpSnapshot::from_report`) and each log file, through the
//! analyzer's pure `analyzer::trend::analyze`. Computed on request rather than in a job:
//! no dump file is read again, so it costs a JSON parse per dump and a parse per log (bounded
//! by `crate::db::systems::MAX_DUMPS`/`MAX_LOGS` and the analyzer's own limits), and the
//! answer is always that of the files in the system now. Blocking: call it on a blocking
//! thread.

use crate::db::dumps::DumpRow;
use crate::db::systems::LogRow;
use analyzer::report::analysis::AnalysisReport;
use analyzer::report::trend::TrendReport;
use analyzer::trend::dumps::DumpSnapshot;
use analyzer::trend::input::{Source, SourceData};
use analyzer::trend::TrendOptions;
use std::path::PathBuf;

/// A dump of the system with what its report says.
#[derive(Debug, Clone)]
pub struct DumpEntry {
    pub row: DumpRow,
    /// The dump's SystemTime (UTC, RFC 3339), from its report.
    pub system_time: Option<String>,
    /// The single-dump verdict's kind and sentence, once analysed.
    pub verdict: Option<(String, String)>,
    time_ms: Option<i64>,
}

/// A log of the system and where its file is (a path under the data directory: never shown).
pub struct LogInput {
    pub row: LogRow,
    pub path: PathBuf,
}

/// The dumps in time order, and the trend of everything readable.
pub struct SystemTrend {
    pub dumps: Vec<DumpEntry>,
    pub trend: Option<TrendReport>,
    /// Why there is no trend (no input yet, inputs of two machines).
    pub trend_error: Option<String>,
    /// Inputs left out of the trend, each with its reason.
    pub skipped: Vec<String>,
}

/// `reports`: each dump with its stored report (None while it is not analysed).
pub fn compute(
    reports: Vec<(DumpRow, Option<String>)>,
    logs: Vec<LogInput>,
    utc_offset_minutes: Option<i32>,
) -> SystemTrend {
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    let mut dumps = Vec::new();
    for (row, json) in reports {
        let label = label(row.original_name.as_deref(), &row.id);
        let mut entry = DumpEntry {
            row,
            system_time: None,
            verdict: None,
            time_ms: None,
        };
        match json.as_deref().map(serde_json::from_str::<AnalysisReport>) {
            None => skipped.push(format!("{label}: not analysed ({})", entry.row.state)),
            Some(Err(_)) => skipped.push(format!("{label}: its report is not an analysis")),
            Some(Ok(r)) => {
                entry.system_time = r.dump.system_time.clone();
                entry.verdict = Some((kind_text(&r.verdict.kind), r.verdict.sentence.clone()));
                match DumpSnapshot::from_report(&r) {
                    Ok(s) => {
                        entry.time_ms = Some(s.time_ms);
                        sources.push(Source {
                            name: label,
                            data: SourceData::Dump(Box::new(s)),
                        });
                    }
                    Err(why) => skipped.push(format!("{label}: {why}")),
                }
            }
        }
        dumps.push(entry);
    }
    // Time order: by the dump's own clock, then (not analysed yet) by upload.
    dumps.sort_by_key(|d| (d.time_ms.unwrap_or(i64::MAX), d.row.created_at));
    for log in logs {
        let label = label(log.row.original_name.as_deref(), &log.row.id);
        match super::log::read(&log.path) {
            Ok(data) => sources.push(Source { name: label, data }),
            Err(e) => skipped.push(format!("{label}: {e}")),
        }
    }
    let opts = TrendOptions {
        generator: format!("pooltriage {}", env!("CARGO_PKG_VERSION")),
        utc_offset_minutes,
    };
    let (trend, trend_error) = if sources.is_empty() {
        (None, Some("no analysed dump and no log yet".to_string()))
    } else {
        match analyzer::trend::analyze(&sources, &opts) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    SystemTrend {
        dumps,
        trend,
        trend_error,
        skipped,
    }
}

/// How an input is named in the trend's sources and warnings: its file name and the start of
/// its id, which tells two uploads of one file name apart (never a path on the server).
fn label(original_name: Option<&str>, id: &str) -> String {
    match original_name {
        Some(n) => format!("{n} ({})", id.get(..8).unwrap_or(id)),
        None => id.to_string(),
    }
}

fn kind_text<T: serde::Serialize>(kind: &T) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
