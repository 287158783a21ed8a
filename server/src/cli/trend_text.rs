//! The trend report as text: the verdict first, then the pools, the tags as poolmon would
//! show their change, the drivers and the processes.

use analyzer::analysis::verdict::human;
use analyzer::report::trend::{Fit, TagTrend, TrendReport};
use analyzer::trend::verdict::bytes;
use std::fmt::Write as _;

/// Tags shown in the text (the JSON lists more).
const TEXT_TAGS: usize = 12;

pub fn text(r: &TrendReport) -> String {
    let mut s = String::new();
    let v = &r.verdict;
    let _ = writeln!(s, "{}", v.sentence);
    let _ = writeln!(s, "  verdict: {}", kind(&v.kind));
    for reason in &v.reasons {
        let _ = writeln!(s, "  - {reason}");
    }
    let _ = writeln!(
        s,
        "\nObserved {:.1} h, {} to {} ({} inputs); growth rule: >= {} points over >= {} h, R² >= {}, rise >= {}",
        r.span_hours,
        r.first.as_deref().unwrap_or("?"),
        r.last.as_deref().unwrap_or("?"),
        r.sources.len(),
        r.rule.min_points,
        r.rule.min_span_hours,
        r.rule.min_r2,
        human(r.rule.min_growth_bytes as u64)
    );
    sources(&mut s, r);
    pools(&mut s, r);
    tags(&mut s, r);
    drivers(&mut s, r);
    processes(&mut s, r);
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

fn kind(k: &analyzer::report::trend::TrendVerdictKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn fit(f: &Fit) -> String {
    format!(
        "{:>12}/h  R² {:>5}  {:>3} pts  {:>6.1} h",
        bytes(f.slope_per_hour),
        f.r2.map_or("n/a".into(), |r| format!("{r:.3}")),
        f.points,
        f.span_hours
    )
}

fn sources(s: &mut String, r: &TrendReport) {
    let _ = writeln!(s, "\nInputs");
    for src in &r.sources {
        let _ = writeln!(
            s,
            "  {:<9} {:>5} samples  {} .. {}{}  {}",
            src.kind,
            src.samples,
            src.first.as_deref().unwrap_or("?"),
            src.last.as_deref().unwrap_or("?"),
            if src.used { "" } else { "  NOT USED" },
            src.name
        );
        for w in &src.warnings {
            let _ = writeln!(s, "    warning: {w}");
        }
    }
}

fn pools(s: &mut String, r: &TrendReport) {
    let _ = writeln!(s, "\nPools (bytes in use over time)");
    for p in &r.pools {
        let _ = writeln!(
            s,
            "  {:<9} {:<9} {}  {}{}",
            p.pool.as_str(),
            p.source,
            fit(&p.bytes),
            p.judgement.as_str(),
            p.hours_to_max
                .map_or(String::new(), |h| format!(", maximum in {h:.1} h"))
        );
    }
}

fn tags(s: &mut String, r: &TrendReport) {
    let _ = writeln!(
        s,
        "\nTags, fastest-rising first (last change as poolmon shows it: Allocs, Frees, Diff, Bytes)"
    );
    for t in r.tags.iter().take(TEXT_TAGS) {
        let _ = writeln!(s, "  {}", tag_line(t));
    }
    if r.tags.len() > TEXT_TAGS || r.tags_not_listed > 0 {
        let _ = writeln!(
            s,
            "  ... {} more tags (--json lists {})",
            r.tags.len() - r.tags.len().min(TEXT_TAGS) + r.tags_not_listed,
            r.tags.len()
        );
    }
}

fn tag_line(t: &TagTrend) -> String {
    let last = t.deltas.last().map_or(String::new(), |d| {
        format!(
            "  ({:+} {:+} {:+} {:+})",
            d.allocs, d.frees, d.diff, d.bytes
        )
    });
    format!(
        "{:<4} {:<5} {}  {:<13}{}{}",
        t.tag,
        if t.pool.as_str() == "paged" {
            "Paged"
        } else {
            "Nonp"
        },
        fit(&t.bytes),
        t.judgement.as_str(),
        if t.drivers.is_empty() {
            String::new()
        } else {
            format!(" [{}]", t.drivers.join(", "))
        },
        last
    )
}

fn drivers(s: &mut String, r: &TrendReport) {
    if r.drivers.is_empty() {
        return;
    }
    let _ = writeln!(s, "\nDrivers (their tags summed)");
    for d in r.drivers.iter().take(TEXT_TAGS) {
        let _ = writeln!(
            s,
            "  {:<16} {:<8} {}  {}  tags {}",
            d.driver,
            d.pool.as_str(),
            fit(&d.bytes),
            d.judgement.as_str(),
            d.tags.join(", ")
        );
    }
}

fn processes(s: &mut String, r: &TrendReport) {
    for a in &r.processes {
        let _ = writeln!(
            s,
            "\nProcesses against {} pool ({}): system {}/h, processes' quota {}/h: {}",
            a.pool.as_str(),
            a.source,
            bytes(a.system.slope_per_hour),
            a.processes.map_or("?".into(), |p| bytes(p.slope_per_hour)),
            a.conclusion
        );
        for p in &a.top {
            let _ = writeln!(s, "  {:<20} {}", p.process, fit(&p.bytes));
        }
    }
}
