//! When growth counts as evidence of a leak.
//!
//! A series *grows steadily* when all of these hold (each threshold a constant below, with its
//! reason):
//! 1. at least [`MIN_POINTS`] points;
//! 2. spanning at least [`MIN_SPAN_HOURS`];
//! 3. its least-squares slope is positive and the line explains at least [`MIN_R2`] of its
//!    variance (R²);
//! 4. the line rises by at least [`MIN_GROWTH_BYTES`] over the span (for byte series).
//!
//! Anything else is "no growth" with the first condition it fails, so a flat machine, a noisy
//! one and a short observation each say why.

use super::fit::Fit;
use serde::{Deserialize, Serialize};

/// Two points always lie on a line and three often nearly do; four or more lining up with
/// R² >= 0.8 by chance is unlikely for a series that does not grow.
pub const MIN_POINTS: usize = 4;

/// Microsoft's own leak procedure with PoolMon samples "approximately every half-hour for at
/// least two hours" (PoolMon Examples, Example 3): shorter observations see start-up and
/// workload swings, not leaks.
pub const MIN_SPAN_HOURS: f64 = 2.0;

/// The line must explain at least 80% of the series' variance: a leak grows steadily; a cache
/// that fills and trims, or a workload burst, does not.
pub const MIN_R2: f64 = 0.8;

/// A rise of less than 1 MiB over the whole observation exhausts no pool (the smallest
/// nonpaged pool maximum of a supported kernel is tens of MiB): too small to call a leak, even
/// when steady. A slow leak passes once observed long enough.
pub const MIN_GROWTH_BYTES: f64 = 1_048_576.0;

/// Why a series counts as growing, or the first rule it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Judgement {
    /// All four conditions hold.
    SteadyGrowth,
    TooFewPoints,
    TooShort,
    /// The slope is zero or negative.
    NotGrowing,
    /// Positive slope, R² under [`MIN_R2`] (or a flat series with no variance).
    NotSteady,
    /// Steady but under [`MIN_GROWTH_BYTES`] over the span.
    TooSmall,
}

impl Judgement {
    pub fn growing(self) -> bool {
        self == Judgement::SteadyGrowth
    }

    /// The judgement on too little data, which says nothing either way.
    pub fn insufficient(self) -> bool {
        matches!(self, Judgement::TooFewPoints | Judgement::TooShort)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::SteadyGrowth => "steady-growth",
            Judgement::TooFewPoints => "too-few-points",
            Judgement::TooShort => "too-short",
            Judgement::NotGrowing => "not-growing",
            Judgement::NotSteady => "not-steady",
            Judgement::TooSmall => "too-small",
        }
    }
}

/// Judges a byte series.
pub fn judge_bytes(fit: Option<&Fit>) -> Judgement {
    judge(fit, MIN_GROWTH_BYTES)
}

/// Judges a count series (outstanding allocations): the same rule without the size floor.
pub fn judge_count(fit: Option<&Fit>) -> Judgement {
    judge(fit, 0.0)
}

fn judge(fit: Option<&Fit>, min_growth: f64) -> Judgement {
    let Some(f) = fit else {
        return Judgement::TooFewPoints;
    };
    if f.points < MIN_POINTS {
        Judgement::TooFewPoints
    } else if f.span_hours < MIN_SPAN_HOURS {
        Judgement::TooShort
    } else if f.slope_per_hour <= 0.0 {
        Judgement::NotGrowing
    } else if f.r2.is_none_or(|r| r < MIN_R2) {
        Judgement::NotSteady
    } else if f.growth() < min_growth {
        Judgement::TooSmall
    } else {
        Judgement::SteadyGrowth
    }
}

/// Hours until `max` at the fit's rate, from the line's value at its last point; `None` when
/// the series does not grow or the maximum is unknown.
pub fn hours_to_max(fit: &Fit, max: Option<u64>) -> Option<f64> {
    let max = max? as f64;
    (fit.slope_per_hour > 0.0).then(|| ((max - fit.fitted_last) / fit.slope_per_hour).max(0.0))
}

/// The rule's constants, as the report states them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RuleConstants {
    pub min_points: usize,
    pub min_span_hours: f64,
    pub min_r2: f64,
    pub min_growth_bytes: f64,
}

pub const RULE: RuleConstants = RuleConstants {
    min_points: MIN_POINTS,
    min_span_hours: MIN_SPAN_HOURS,
    min_r2: MIN_R2,
    min_growth_bytes: MIN_GROWTH_BYTES,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trend::fit::least_squares;

    fn series(values: &[f64], step_h: f64) -> Fit {
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 * step_h, *v))
            .collect();
        least_squares(&pts).unwrap()
    }

    #[test]
    fn each_condition() {
        let mib = 1_048_576.0;
        let grow = [0.0, mib, 2.0 * mib, 3.0 * mib];
        assert_eq!(
            judge_bytes(Some(&series(&grow, 1.0))),
            Judgement::SteadyGrowth
        );
        assert_eq!(
            judge_bytes(Some(&series(&grow[..3], 1.0))),
            Judgement::TooFewPoints
        );
        assert_eq!(judge_bytes(Some(&series(&grow, 0.5))), Judgement::TooShort);
        let down = [3.0 * mib, 2.0 * mib, mib, 0.0];
        assert_eq!(
            judge_bytes(Some(&series(&down, 1.0))),
            Judgement::NotGrowing
        );
        let noisy = [0.0, 4.0 * mib, 0.0, 4.0 * mib, 0.5 * mib];
        assert_eq!(
            judge_bytes(Some(&series(&noisy, 1.0))),
            Judgement::NotSteady
        );
        let small = [0.0, 1000.0, 2000.0, 3000.0];
        assert_eq!(judge_bytes(Some(&series(&small, 1.0))), Judgement::TooSmall);
        assert_eq!(
            judge_count(Some(&series(&small, 1.0))),
            Judgement::SteadyGrowth
        );
        let flat = [5.0, 5.0, 5.0, 5.0];
        assert_eq!(
            judge_bytes(Some(&series(&flat, 1.0))),
            Judgement::NotGrowing
        );
        assert_eq!(judge_bytes(None), Judgement::TooFewPoints);
    }

    #[test]
    fn time_to_max() {
        let f = series(&[0.0, 10.0, 20.0, 30.0], 1.0);
        assert_eq!(hours_to_max(&f, Some(130)), Some(10.0));
        assert_eq!(hours_to_max(&f, None), None);
        assert_eq!(hours_to_max(&f, Some(10)), Some(0.0));
    }
}
