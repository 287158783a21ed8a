//! Least squares: the straight line through a series, how steep it is per hour and how well it
//! fits (R², the share of the series' variance the line explains).

use serde::{Deserialize, Serialize};

/// A line fitted to a series of (time, value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// Points fitted.
    pub points: usize,
    /// Hours from the first point to the last.
    pub span_hours: f64,
    /// The line's slope: value per hour.
    pub slope_per_hour: f64,
    /// R² (1 - residual / total sum of squares); `None` when the series does not vary at all
    /// (a flat line: nothing to explain).
    pub r2: Option<f64>,
    /// The first and last values observed.
    pub first: f64,
    pub last: f64,
    /// The line's value at the last point (where "the current rate" starts from).
    pub fitted_last: f64,
}

impl Fit {
    /// What the line grows by over the span.
    pub fn growth(&self) -> f64 {
        self.slope_per_hour * self.span_hours
    }
}

/// The fit of `points` (hours, value); `None` with fewer than two points or all at one time.
pub fn least_squares(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut stt, mut stv, mut svv) = (0.0, 0.0, 0.0);
    for &(t, v) in points {
        let (dt, dv) = (t - mean_t, v - mean_v);
        stt += dt * dt;
        stv += dt * dv;
        svv += dv * dv;
    }
    if stt <= 0.0 {
        return None;
    }
    let slope = stv / stt;
    let ss_res = points
        .iter()
        .map(|&(t, v)| {
            let e = v - (mean_v + slope * (t - mean_t));
            e * e
        })
        .sum::<f64>();
    let r2 = (svv > 0.0).then(|| (1.0 - ss_res / svv).clamp(0.0, 1.0));
    let (t0, t1) = (points[0].0, points[n - 1].0);
    Some(Fit {
        points: n,
        span_hours: t1 - t0,
        slope_per_hour: slope,
        r2,
        first: points[0].1,
        last: points[n - 1].1,
        fitted_last: mean_v + slope * (t1 - mean_t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line() {
        let pts: Vec<(f64, f64)> = (0..6)
            .map(|i| (i as f64 * 2.0, 100.0 + 50.0 * i as f64))
            .collect();
        let f = least_squares(&pts).unwrap();
        assert!((f.slope_per_hour - 25.0).abs() < 1e-9);
        assert_eq!(f.r2, Some(1.0));
        assert_eq!(f.span_hours, 10.0);
        assert!((f.fitted_last - 350.0).abs() < 1e-9);
        assert!((f.growth() - 250.0).abs() < 1e-9);
    }

    #[test]
    fn known_r2() {
        // y = 1, 3, 2, 4 at t = 0..3: slope 0.8, R² = 0.64 (by hand: SSres 1.8, SStot 5).
        let f = least_squares(&[(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)]).unwrap();
        assert!((f.slope_per_hour - 0.8).abs() < 1e-12);
        assert!((f.r2.unwrap() - 0.64).abs() < 1e-12);
    }

    #[test]
    fn degenerate() {
        assert!(least_squares(&[(1.0, 5.0)]).is_none());
        assert!(least_squares(&[(1.0, 5.0), (1.0, 6.0)]).is_none());
        let flat = least_squares(&[(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)]).unwrap();
        assert_eq!(flat.r2, None);
        assert_eq!(flat.slope_per_hour, 0.0);
    }
}
