//! Series for the report: fitted, and thinned for charts.

use super::fit::{least_squares, Fit};
use crate::report::trend::Point;

/// Most points a chart series carries: a chart 600 pixels wide shows no more.
pub const MAX_CHART_POINTS: usize = 400;

/// The fit of `pts` (hours, value); a zero fit when it cannot be made (fewer than two points
/// or one instant), which the rule judges as too few points.
pub fn fit(pts: &[(f64, f64)]) -> Fit {
    least_squares(pts).unwrap_or(Fit {
        points: pts.len(),
        span_hours: 0.0,
        slope_per_hour: 0.0,
        r2: None,
        first: pts.first().map_or(0.0, |p| p.1),
        last: pts.last().map_or(0.0, |p| p.1),
        fitted_last: pts.last().map_or(0.0, |p| p.1),
    })
}

/// At most [`MAX_CHART_POINTS`], evenly picked, first and last kept.
pub fn chart(pts: &[(f64, f64)]) -> Vec<Point> {
    let n = pts.len();
    let pick = |i: usize| Point {
        hours: pts[i].0,
        value: pts[i].1,
    };
    if n <= MAX_CHART_POINTS {
        return (0..n).map(pick).collect();
    }
    (0..MAX_CHART_POINTS)
        .map(|k| pick(k * (n - 1) / (MAX_CHART_POINTS - 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_ends() {
        let pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, i as f64)).collect();
        let c = chart(&pts);
        assert_eq!(c.len(), MAX_CHART_POINTS);
        assert_eq!(c[0].value, 0.0);
        assert_eq!(c.last().unwrap().value, 9999.0);
        assert_eq!(fit(&pts[..1]).points, 1);
    }
}
