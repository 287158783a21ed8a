//! `trend --svg DIR`: the trend as SVG line charts, hand-written as the service's pages draw
//! theirs (server/src/http/pages/svg.rs: every label escaped): `pool-paged.svg` and
//! `pool-nonpaged.svg`, the pool in use over time per kind of source with its fitted line (one
//! chart per pool, so that no source is left out for want of colours), and `tags.svg`, the
//! fastest-growing tags.

use crate::http::pages::svg::{line_chart, standalone, Line, MAX_LINES};
use analyzer::report::analysis::PoolName;
use analyzer::report::trend::{Fit, Point, TrendReport};
use std::path::Path;

pub fn write_all(dir: &Path, r: &TrendReport) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for pool in [PoolName::Paged, PoolName::Nonpaged] {
        let lines: Vec<Line> = r
            .pools
            .iter()
            .filter(|p| p.pool == pool)
            .map(|p| line(&p.source, &p.points, &p.bytes))
            .collect();
        write(
            dir,
            &format!("pool-{}.svg", pool.as_str()),
            &format!("{} pool in use over time", capitalised(pool.as_str())),
            &lines,
        )?;
    }
    let mut tags: Vec<_> = r
        .tags
        .iter()
        .filter(|t| t.bytes.slope_per_hour > 0.0)
        .collect();
    tags.sort_by(|a, b| b.bytes.slope_per_hour.total_cmp(&a.bytes.slope_per_hour));
    let tags: Vec<Line> = tags
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
    write(dir, "tags.svg", "Fastest-growing tags (bytes)", &tags)
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

fn write(dir: &Path, name: &str, title: &str, lines: &[Line]) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, standalone(&line_chart(title, lines)))
        .map_err(|e| format!("{}: {e}", path.display()))
}
