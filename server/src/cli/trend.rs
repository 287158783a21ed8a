//! `pooltriage trend INPUT... [--json] [--svg DIR]`: is pool growing? Dumps, poolmon/poolsnap
//! logs and typeperf/relog CSVs of one machine, in any mix, each recognised by its content
//! (analyzer::trend; docs/trend.md; JSON in docs/json.md "pooltriage trend").
//!
//! Exit codes: 0 when a report was written (whatever its verdict), 2 when an input cannot be
//! read or the inputs are not one machine (one line on stderr naming the file).

use super::pool_common::SymbolArgs;
use analyzer::analysis::AnalysisOptions;
use analyzer::report::analysis::AnalysisReport;
use analyzer::trend::detect::InputKind;
use analyzer::trend::dumps::DumpSnapshot;
use analyzer::trend::input::{Source, SourceData};
use analyzer::trend::{load, TrendOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TrendArgs {
    /// Dumps, poolmon or poolsnap logs, typeperf or relog CSV/TSV files of one machine.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Print the JSON report (docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write SVG charts (pool over time, the fastest-growing tags) into this directory.
    #[arg(long, value_name = "DIR")]
    pub svg: Option<PathBuf>,
    /// The machine's offset from UTC (`+09:00`, `-05:00`), for logs whose timestamps name no
    /// zone; default: the bias a typeperf log of the machine names.
    #[arg(long, value_name = "±HH:MM", allow_hyphen_values = true)]
    pub utc_offset: Option<String>,
    /// Time budget in seconds for the drivers' PDB lookups, per dump.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub symbol_timeout: u64,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

pub fn run(args: &TrendArgs) -> ExitCode {
    match trend(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn trend(args: &TrendArgs) -> Result<ExitCode, String> {
    let utc_offset_minutes = args.utc_offset.as_deref().map(parse_offset).transpose()?;
    let sources = args
        .inputs
        .iter()
        .map(|p| read(p, &args.symbols, args.symbol_timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = TrendOptions {
        generator: format!("pooltriage {}", env!("CARGO_PKG_VERSION")),
        utc_offset_minutes,
    };
    let report = analyzer::trend::analyze(&sources, &opts).map_err(|e| e.to_string())?;
    if let Some(dir) = &args.svg {
        super::trend_svg::write_all(dir, &report)?;
    }
    Ok(if args.json {
        super::pool_common::print_json(&report)
    } else {
        super::pool_common::print(&super::trend_text::text(&report))
    })
}

/// One input, by its content: a dump through the whole analysis, a log through its parser.
/// `analyze --trend` reads its inputs here too.
pub(super) fn read(
    path: &Path,
    symbols: &SymbolArgs,
    symbol_timeout: u64,
) -> Result<Source, String> {
    match load::kind_of(path).map_err(|e| e.to_string())? {
        InputKind::Dump => {
            let input = symbols.input_options()?;
            let opts = AnalysisOptions {
                scan_drivers: !symbols.no_scan,
                symbol_deadline: Some(Instant::now() + Duration::from_secs(symbol_timeout)),
                generator: format!("pooltriage {}", env!("CARGO_PKG_VERSION")),
            };
            let report = analyzer::analysis::run(path, &input, &opts, &mut |_| {})
                .map_err(|e| e.to_string())?;
            dump_source(path, &report)
        }
        kind => load::read_log(path, kind).map_err(|e| e.to_string()),
    }
}

/// A dump's analysis as a trend input.
pub(super) fn dump_source(path: &Path, report: &AnalysisReport) -> Result<Source, String> {
    let snap = DumpSnapshot::from_report(report).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        data: SourceData::Dump(Box::new(snap)),
    })
}

/// `+09:00`, `-05:30`, `+9`, `0` to minutes east of UTC.
pub(crate) fn parse_offset(s: &str) -> Result<i32, String> {
    let bad = || format!("--utc-offset {s:?}: write it as +HH:MM or -HH:MM");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+09:00"), Ok(540));
        assert_eq!(parse_offset("-05:30"), Ok(-330));
        assert_eq!(parse_offset("0"), Ok(0));
        assert!(parse_offset("+25:00").is_err());
        assert!(parse_offset("EST").is_err());
    }
}
