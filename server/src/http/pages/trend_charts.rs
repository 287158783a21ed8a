//! A trend report as line charts ([`super::svg::line_chart`]): the pool in use over time per
//! kind of source with its fitted line (one chart per pool, so that no source is left out
//! for want of colours), and the fastest-growing tags. Drawn inline on a system's page and
//! written as files by `pooltriage trend --svg`.

use super::svg::{line_chart, Line, Svg, MAX_LINES};
use analyzer::report::analysis::PoolName;
use analyzer::report::trend::{Fit, Point, TrendReport};

/// `pool`'s bytes in use over time, one line per kind of source.
pub fn pool_chart(r: &TrendReport, pool: PoolName) -> Svg {
    let lines: Vec<Line> = r
        .pools
        .iter()
        .filter(|p| p.pool == pool)
        .map(|p| line(&p.source, &p.points, &p.bytes))
        .collect();
    line_chart(
        &format!("{} pool in use over time", capitalised(pool.as_str())),
        &lines,
    )
}

/// Whether a chart of `pool` would draw anything.
pub fn has_pool(r: &TrendReport, pool: PoolName) -> bool {
    r.pools
        .iter()
        .any(|p| p.pool == pool && !p.points.is_empty())
}

/// The fastest-growing tags (up to [`MAX_LINES`]), bytes over time; `None` when no tag grows.
pub fn tags_chart(r: &TrendReport) -> Option<Svg> {
    let mut tags: Vec<_> = r
        .tags
        .iter()
        .filter(|t| t.bytes.slope_per_hour > 0.0)
        .collect();
    if tags.is_empty() {
        return None;
    }
    tags.sort_by(|a, b| b.bytes.slope_per_hour.total_cmp(&a.bytes.slope_per_hour));
    let lines: Vec<Line> = tags
        .iter()
        .take(MAX_LINES)
        .map(|t| {
            let who = if t.drivers.is_empty() {
                String::new()
            } else {
                format!(" {}", t.drivers.join(", "))
            };
            line(
                &format!("'{}' {}{who}", t.tag, t.pool.as_str()),
                &t.points,
                &t.bytes,
            )
        })
        .collect();
    Some(line_chart("Fastest-growing tags (bytes)", &lines))
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn line(label: &str, points: &[Point], fit: &Fit) -> Line {
    let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.hours, p.value)).collect();
    let h1 = pts.last().map_or(0.0, |p| p.0);
    let h0 = h1 - fit.span_hours;
    Line {
        label: label.to_string(),
        points: pts,
        fit: (fit.points >= 2).then_some([
            (h0, fit.fitted_last - fit.slope_per_hour * fit.span_hours),
            (h1, fit.fitted_last),
        ]),
    }
}
