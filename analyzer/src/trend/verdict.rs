//! The trend's answer, from the judged series: the fastest steadily growing tag (and its
//! driver), else a steadily growing pool (and whether any process accounts for it), else no
//! growth, or not enough data to say.

use super::rule::{MIN_POINTS, MIN_SPAN_HOURS};
use crate::report::trend::{
    PoolTrend, ProcessAccounting, TagTrend, TrendVerdict, TrendVerdictKind,
};

/// What the verdict is decided from.
pub struct Findings<'a> {
    pub tags: &'a [TagTrend],
    pub pools: &'a [PoolTrend],
    pub processes: &'a [ProcessAccounting],
    pub span_hours: f64,
    pub snapshots: usize,
    /// The latest dump's own verdict sentence.
    pub latest_dump: Option<&'a str>,
}

pub fn decide(f: &Findings) -> TrendVerdict {
    let mut v = if let Some(t) = f.tags.iter().find(|t| t.judgement.growing()) {
        tag_growth(t)
    } else if let Some(p) = growing_pool(f.pools) {
        pool_growth(p, f.processes)
    } else if enough_data(f) {
        no_growth(f)
    } else {
        insufficient(f)
    };
    for t in f
        .tags
        .iter()
        .filter(|t| t.judgement.growing())
        .skip(1)
        .take(4)
    {
        v.reasons.push(format!(
            "tag '{}' ({} pool{}) also grows steadily: {}/h (R² {:.3})",
            t.tag,
            t.pool.as_str(),
            drivers_clause(&t.drivers),
            bytes(t.bytes.slope_per_hour),
            t.bytes.r2.unwrap_or(0.0)
        ));
    }
    for a in f.processes {
        v.reasons.push(process_reason(a));
    }
    if let Some(s) = f.latest_dump {
        v.reasons.push(format!("the latest dump's analysis: {s}"));
    }
    v
}

fn tag_growth(t: &TagTrend) -> TrendVerdict {
    let fit = &t.bytes;
    let rate = format!(
        "grows steadily by {}/h in {} pool (R² {:.3}, {} points over {:.1} h; {} outstanding allocations/h)",
        bytes(fit.slope_per_hour),
        t.pool.as_str(),
        fit.r2.unwrap_or(0.0),
        fit.points,
        fit.span_hours,
        signed(t.outstanding.slope_per_hour),
    );
    let until = t
        .hours_to_max
        .map(|h| {
            format!(
                "; at this rate {} pool reaches its maximum in {:.1} h",
                t.pool.as_str(),
                h
            )
        })
        .unwrap_or_default();
    let (kind, sentence) = if t.drivers.is_empty() {
        (
            TrendVerdictKind::TagGrowth,
            format!("Tag '{}' {rate}{until}; no loaded driver is known to allocate it (run `pooltriage analyze` on the latest dump, or look the tag up in pooltag.txt).", t.tag),
        )
    } else {
        (
            TrendVerdictKind::DriverGrowth,
            format!(
                "{} leaks {} pool: its tag '{}' {rate}{until}.",
                t.drivers.join(" and "),
                t.pool.as_str(),
                t.tag
            ),
        )
    };
    TrendVerdict {
        kind,
        sentence,
        pool: Some(t.pool),
        tag: Some(t.tag.clone()),
        drivers: t.drivers.clone(),
        bytes_per_hour: Some(fit.slope_per_hour),
        r2: fit.r2,
        points: Some(fit.points),
        hours_to_max: t.hours_to_max,
        reasons: Vec::new(),
    }
}

/// The growing pool trend with the most points (counters sample most often).
fn growing_pool(pools: &[PoolTrend]) -> Option<&PoolTrend> {
    pools
        .iter()
        .filter(|p| p.judgement.growing())
        .max_by_key(|p| p.bytes.points)
}

fn pool_growth(p: &PoolTrend, processes: &[ProcessAccounting]) -> TrendVerdict {
    let who = processes
        .iter()
        .find(|a| a.pool == p.pool)
        .map(|a| match a.conclusion.as_str() {
            "no-process" => " and no process's pool quota grows with it: a driver leaks it".to_string(),
            "process" => format!(
                " and the processes' pool quota grows with it (most: {}): a process holds the leaked allocations",
                a.top.first().map_or("?", |t| t.process.as_str())
            ),
            _ => String::new(),
        })
        .unwrap_or_default();
    let until = p
        .hours_to_max
        .map(|h| format!("; at this rate it reaches its maximum in {h:.1} h"))
        .unwrap_or_default();
    TrendVerdict {
        kind: TrendVerdictKind::PoolGrowth,
        sentence: format!(
            "{} pool grows steadily by {}/h (R² {:.3}, {} points over {:.1} h, from {}){who}{until}; the inputs hold no tag figures that grow with it: take poolmon snapshots or dumps to find the tag.",
            capital(p.pool.as_str()),
            bytes(p.bytes.slope_per_hour),
            p.bytes.r2.unwrap_or(0.0),
            p.bytes.points,
            p.bytes.span_hours,
            p.source,
        ),
        pool: Some(p.pool),
        tag: None,
        drivers: Vec::new(),
        bytes_per_hour: Some(p.bytes.slope_per_hour),
        r2: p.bytes.r2,
        points: Some(p.bytes.points),
        hours_to_max: p.hours_to_max,
        reasons: Vec::new(),
    }
}

/// Some series has enough points over enough time for the rule to judge.
fn enough_data(f: &Findings) -> bool {
    let judged = |j: super::rule::Judgement| !j.insufficient();
    f.tags.iter().any(|t| judged(t.judgement)) || f.pools.iter().any(|p| judged(p.judgement))
}

fn no_growth(f: &Findings) -> TrendVerdict {
    let mut reasons = Vec::new();
    if let Some(t) = f.tags.first() {
        reasons.push(format!(
            "the fastest-rising tag is '{}' ({} pool): {}/h, R² {}, judged {}",
            t.tag,
            t.pool.as_str(),
            bytes(t.bytes.slope_per_hour),
            t.bytes.r2.map_or("n/a".into(), |r| format!("{r:.3}")),
            t.judgement.as_str()
        ));
    }
    for p in f.pools {
        reasons.push(format!(
            "{} pool ({}): {}/h, R² {}, judged {}",
            p.pool.as_str(),
            p.source,
            bytes(p.bytes.slope_per_hour),
            p.bytes.r2.map_or("n/a".into(), |r| format!("{r:.3}")),
            p.judgement.as_str()
        ));
    }
    TrendVerdict {
        kind: TrendVerdictKind::NoGrowth,
        sentence: format!(
            "No growth: no pool and no tag grows steadily over the {:.1} h observed ({} snapshots).",
            f.span_hours, f.snapshots
        ),
        pool: None,
        tag: None,
        drivers: Vec::new(),
        bytes_per_hour: None,
        r2: None,
        points: None,
        hours_to_max: None,
        reasons,
    }
}

fn insufficient(f: &Findings) -> TrendVerdict {
    TrendVerdict {
        kind: TrendVerdictKind::InsufficientData,
        sentence: format!(
            "Not enough data to judge growth: {} snapshots over {:.1} h; the rule needs at least {MIN_POINTS} points over at least {MIN_SPAN_HOURS} h.",
            f.snapshots, f.span_hours
        ),
        pool: None,
        tag: None,
        drivers: Vec::new(),
        bytes_per_hour: None,
        r2: None,
        points: None,
        hours_to_max: None,
        reasons: Vec::new(),
    }
}

fn process_reason(a: &ProcessAccounting) -> String {
    let share = a
        .share
        .map_or("n/a".into(), |s| format!("{:.0}%", s * 100.0));
    match a.conclusion.as_str() {
        "no-process" => format!(
            "{} pool grows by {}/h ({}) and the processes' pool quota by {}/h ({share} of it): no process accounts for it, a driver",
            a.pool.as_str(),
            bytes(a.system.slope_per_hour),
            a.source,
            bytes(a.processes.map_or(0.0, |p| p.slope_per_hour))
        ),
        "process" => format!(
            "{} pool grows by {}/h ({}) and the processes' pool quota by {share} of it; fastest: {}",
            a.pool.as_str(),
            bytes(a.system.slope_per_hour),
            a.source,
            a.top.first().map_or("?", |t| t.process.as_str())
        ),
        other => format!(
            "{} pool ({}): {}/h, {other}",
            a.pool.as_str(),
            a.source,
            bytes(a.system.slope_per_hour)
        ),
    }
}

fn drivers_clause(d: &[String]) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(", {}", d.join(", "))
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn signed(v: f64) -> String {
    format!("{v:+.1}")
}

/// Bytes as people read them: "1.5 MiB", "-320 KiB".
pub fn bytes(v: f64) -> String {
    let a = v.abs();
    let (n, unit) = if a >= 1_073_741_824.0 {
        (v / 1_073_741_824.0, "GiB")
    } else if a >= 1_048_576.0 {
        (v / 1_048_576.0, "MiB")
    } else if a >= 1024.0 {
        (v / 1024.0, "KiB")
    } else {
        return format!("{v:.0} B");
    };
    format!("{n:.2} {unit}")
}
