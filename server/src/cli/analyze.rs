//! `pooltriage analyze DUMP [--json] [--symbol-path P | --no-symbols] [--pooltag FILE] [--trend INPUT...]`: the
//! whole pool analysis and its answer, which driver is eating which pool and where in its code
//! it allocates (analyzer::analysis; JSON in docs/json.md, "`pooltriage analyze DUMP --json`").
//!
//! Exit codes as `pool`: 0 when a report was written (even one whose verdict is
//! `not-analyzable` or that lists errors), 2 when the dump cannot be read at all.

use super::pool_common::SymbolArgs;
use analyzer::analysis::progress::Stage;
use analyzer::analysis::verdict::human;
use analyzer::analysis::AnalysisOptions;
use analyzer::report::analysis::AnalysisReport;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Drivers and tags shown in the text report (the JSON has them all).
const TEXT_ROWS: usize = 15;

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// Print the JSON report (docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time budget in seconds for the drivers' PDB lookups (call-site function names).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub symbol_timeout: u64,
    /// Write `progress: <stage>` on stderr as each stage starts (docs/api.md lists the
    /// stages); also when the environment has `POOLTRIAGE_PROGRESS` (not `0`), as the
    /// service's workers set it.
    #[arg(long)]
    pub progress: bool,
    /// Other dumps, poolmon/poolsnap logs or typeperf CSVs of the same machine: the verdict is
    /// read again with the growth they show (docs/json.md, "verdict": growth).
    #[arg(long, value_name = "INPUT", num_args = 1..)]
    pub trend: Vec<PathBuf>,
    /// With --trend: the machine's offset from UTC (`+09:00`) for logs whose timestamps name
    /// no zone (default: the bias a typeperf log names).
    #[arg(
        long,
        value_name = "±HH:MM",
        allow_hyphen_values = true,
        requires = "trend"
    )]
    pub utc_offset: Option<String>,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

/// `progress: <stage>` on stderr, one whole line per write (the service reads it as it comes).
fn announce(stage: Stage) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("progress: {}\n", stage.as_str()).as_bytes());
}

pub fn run(args: &AnalyzeArgs) -> ExitCode {
    let progress_on = args.progress
        || std::env::var("POOLTRIAGE_PROGRESS").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut progress = |stage: Stage| {
        if progress_on {
            announce(stage)
        }
    };
    let opts = AnalysisOptions {
        scan_drivers: !args.symbols.no_scan,
        symbol_deadline: Some(Instant::now() + Duration::from_secs(args.symbol_timeout)),
        generator: format!("pooltriage {}", env!("CARGO_PKG_VERSION")),
    };
    let report = args.symbols.input_options().and_then(|input| {
        analyzer::analysis::run(&args.dump, &input, &opts, &mut progress).map_err(|e| e.to_string())
    });
    let mut report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.trend.is_empty() {
        if let Err(e) = with_growth(args, &mut report) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    progress(Stage::WritingReport);
    if args.json {
        return super::pool_common::print_json(&report);
    }
    super::pool_common::print(&text(&report))
}

/// `--trend`: the trend of this dump with the other inputs, and the verdict read again with
/// it (analyzer::analysis::verdict::growth).
fn with_growth(args: &AnalyzeArgs, report: &mut AnalysisReport) -> Result<(), String> {
    let utc_offset_minutes = args
        .utc_offset
        .as_deref()
        .map(super::trend::parse_offset)
        .transpose()?;
    let mut sources = vec![super::trend::dump_source(&args.dump, report)?];
    for p in &args.trend {
        sources.push(super::trend::read(p, &args.symbols, args.symbol_timeout)?);
    }
    let opts = analyzer::trend::TrendOptions {
        generator: format!("pooltriage {}", env!("CARGO_PKG_VERSION")),
        utc_offset_minutes,
    };
    let trend = analyzer::trend::analyze(&sources, &opts).map_err(|e| e.to_string())?;
    let split = report.verdict.tags.first().is_some_and(|tag| {
        report
            .provenance
            .as_ref()
            .is_some_and(|p| p.tags.iter().any(|s| s.tag == *tag && s.modules.len() > 1))
    });
    analyzer::analysis::verdict::growth::apply_growth(&mut report.verdict, &trend, split);
    report
        .warnings
        .extend(trend.warnings.iter().map(|w| format!("trend: {w}")));
    Ok(())
}

/// A tag provenance split between modules, as the drivers table credits it:
/// "acmefs.sys 74 KiB, acmeflt.sys 18 KiB, 9 KiB unattributed (blocks)".
fn split_text(r: &AnalysisReport, tag: &str) -> Option<String> {
    let split = r.provenance.as_ref()?.tags.iter().find(|s| s.tag == tag)?;
    let mut parts: Vec<String> = split
        .modules
        .iter()
        .map(|m| format!("{} {}", m.module, human(m.bytes)))
        .collect();
    if split.unattributed.count > 0 {
        parts.push(format!("{} unattributed", human(split.unattributed.bytes)));
    }
    Some(format!("{} (blocks)", parts.join(", ")))
}

/// The text report: the verdict first (what a ticket needs), then the evidence.
/// The faulting instruction by function and line when symbols named it, else module+offset;
/// says so when the module's PDB has no line information.
fn crash_line(r: &AnalysisReport) -> Option<String> {
    let b = &r.bugcheck;
    let at = b.faulting.as_deref()?;
    let Some(symbol) = &b.faulting_symbol else {
        return Some(at.to_string());
    };
    let module = at.rsplit_once('+').map_or(at, |(m, _)| m);
    let no_lines = r
        .modules
        .iter()
        .any(|m| m.name == module && m.line_info == Some(false));
    Some(match (&b.faulting_source, no_lines) {
        (Some(l), _) => format!("{symbol} ({})", l.short()),
        (None, true) => format!("{symbol} (the PDB carries no line information)"),
        (None, false) => symbol.clone(),
    })
}

pub fn text(r: &AnalysisReport) -> String {
    let mut s = String::new();
    let v = &r.verdict;
    let _ = writeln!(s, "{}", v.sentence);
    let _ = writeln!(
        s,
        "  verdict: {} (confidence {})",
        v.kind.as_str(),
        serde_json::to_value(v.confidence)
            .ok()
            .and_then(|c| c.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    if let Some(p) = &v.process {
        let _ = writeln!(
            s,
            "  process: {} pid {} EPROCESS {}",
            p.name.as_deref().unwrap_or("?"),
            p.pid.map_or("?".into(), |p| p.to_string()),
            p.eprocess
        );
    }
    for reason in &v.reasons {
        let _ = writeln!(s, "  - {reason}");
    }
    let _ = writeln!(s);
    let d = &r.dump;
    let _ = writeln!(
        s,
        "Dump:     {} {} build {}, bugcheck {} {}",
        d.format,
        d.arch,
        d.build,
        r.bugcheck.code,
        r.bugcheck.name.as_deref().unwrap_or("")
    );
    let sym = match (&r.symbols.path, r.symbols.matches_kernel) {
        (Some(p), Some(false)) => format!("{} {p} (DOES NOT match the kernel)", r.symbols.source),
        (Some(p), _) => format!("{} {p}", r.symbols.source),
        (None, _) => "none: debugger data block and built-in layouts".into(),
    };
    let _ = writeln!(s, "Symbols:  {sym}");
    if let Some(at) = crash_line(r) {
        let _ = writeln!(s, "Crash:    {at}");
    }
    let _ = writeln!(s);
    if let Some(c) = &r.crash {
        let _ = writeln!(s, "{}", super::crash_text::stack_section(c));
    }
    let _ = writeln!(s, "Pools");
    if r.pools.is_empty() {
        let _ = writeln!(s, "  not read");
    }
    for p in &r.pools {
        let _ = writeln!(
            s,
            "  {:<9} {:>12} in use{}{}{}",
            p.pool.as_str(),
            human(p.in_use),
            p.max.map_or(String::new(), |m| format!(" of {}", human(m))),
            p.used_fraction
                .map_or(String::new(), |f| format!(" ({:.0}%)", f * 100.0)),
            if p.near_exhaustion {
                "  NEAR EXHAUSTION"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Drivers (code that allocates with tags holding pool)");
    if r.drivers.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for dr in r.drivers.iter().take(TEXT_ROWS) {
        let tags: Vec<String> = dr.tags.iter().map(|t| format!("'{}'", t.tag)).collect();
        let _ = writeln!(
            s,
            "  {:<20} {:>12} paged {:>12} nonpaged{} {:>7} outstanding  {}",
            dr.module,
            human(dr.paged_bytes),
            human(dr.nonpaged_bytes),
            if dr.session_bytes > 0 {
                format!(" {:>12} session", human(dr.session_bytes))
            } else {
                String::new()
            },
            dr.allocations,
            tags.join(" ")
        );
        for c in dr.call_sites.iter().take(8) {
            let _ = writeln!(
                s,
                "      {} {}{}  '{}'{}{}{}",
                c.address,
                c.symbol.as_deref().unwrap_or(&c.offset),
                c.source
                    .as_ref()
                    .map_or(String::new(), |l| format!(" ({})", l.short())),
                c.tag,
                c.callee
                    .as_deref()
                    .map_or(String::new(), |f| format!(" -> {f}")),
                c.pool_type
                    .map_or(String::new(), |p| format!(" {}", p.as_str())),
                c.size.map_or(String::new(), |z| format!(" size {z:#x}"))
            );
        }
        if dr.call_sites.len() > 8 || dr.call_sites_truncated {
            let _ = writeln!(s, "      ... {} call sites in all", dr.call_sites.len());
        }
    }
    if r.drivers.len() > TEXT_ROWS {
        let _ = writeln!(
            s,
            "  ... {} drivers in all (--json lists them)",
            r.drivers.len()
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Top tags");
    if r.tags.is_empty() {
        let _ = writeln!(s, "  not read");
    }
    for t in r.tags.iter().take(TEXT_ROWS) {
        let who = split_text(r, &t.tag).unwrap_or_else(|| {
            t.owners
                .first()
                .map(|o| {
                    let src = serde_json::to_value(o.source)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{} [{src}]", o.module.as_deref().unwrap_or("?"))
                })
                .unwrap_or_default()
        });
        let _ = writeln!(
            s,
            "  {:<6} {:>12} paged {:>12} nonpaged {:>7} outstanding  {who}",
            t.tag,
            human(t.paged_bytes),
            human(t.nonpaged_bytes),
            t.paged_outstanding + t.nonpaged_outstanding
        );
    }
    // Session pool apart (summed over the sessions read), as `!poolused 8` shows it.
    if let Some(st) = &r.session_tags {
        let total: u64 = st
            .iter()
            .map(|t| t.paged_bytes.saturating_add(t.nonpaged_bytes))
            .sum();
        let _ = writeln!(
            s,
            "\nSession pool tags ({} in use, {} session(s))",
            human(total),
            r.sessions.len().max(1)
        );
        for t in st.iter().take(TEXT_ROWS) {
            let who = t
                .owners
                .first()
                .map(|o| o.module.as_deref().unwrap_or("?").to_string())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<6} {:>12} paged {:>12} nonpaged {:>7} outstanding  {who}",
                t.tag,
                human(t.paged_bytes),
                human(t.nonpaged_bytes),
                t.paged_outstanding + t.nonpaged_outstanding
            );
        }
    }
    let b = &r.blocks;
    let _ = writeln!(
        s,
        "\nBlocks: {} classic, {} big, {} LFH, {} VS allocated; {} free; {} pool pages missing{}",
        b.classic.count,
        b.big.count,
        b.lfh.count,
        b.vs.count,
        b.free_blocks,
        b.missing_pool_pages,
        if b.complete { "" } else { " (walk incomplete)" }
    );
    if let Some(q) = &r.quota {
        for p in q.processes.iter().take(5) {
            let _ = writeln!(
                s,
                "Quota:  {} pid {} {} in {} blocks",
                p.name.as_deref().unwrap_or("?"),
                p.pid.map_or("?".into(), |v| v.to_string()),
                human(p.bytes),
                p.blocks
            );
        }
    }
    if !r.warnings.is_empty() || !r.errors.is_empty() {
        let _ = writeln!(s);
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    for e in &r.errors {
        let _ = writeln!(s, "not read: {e}");
    }
    s
}
