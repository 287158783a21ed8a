//! The spacing of a log's samples: gaps worth a warning, and durations as people read them.

/// An interval longer than this many times the log's median interval is a gap: one or two
/// missed collections are noise, three are a hole the reader should know the fit spans.
pub const GAP_FACTOR: i64 = 3;

/// One warning per gap, naming the line after it. `times` are ascending, `lines` aligned.
pub fn gap_warnings(times: &[i64], lines: &[usize]) -> Vec<String> {
    let mut steps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.len() < 2 {
        return Vec::new();
    }
    steps.sort_unstable();
    let median = steps[steps.len() / 2];
    if median <= 0 {
        return Vec::new();
    }
    times
        .windows(2)
        .zip(lines.windows(2))
        .filter(|(t, _)| t[1] - t[0] > GAP_FACTOR * median)
        .map(|(t, l)| {
            format!(
                "line {}: gap of {} after the sample at line {} (samples are {} apart)",
                l[1],
                duration(t[1] - t[0]),
                l[0],
                duration(median)
            )
        })
        .collect()
}

/// "2h 05m", "12m 30s", "45s", "3d 4h" for milliseconds.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gap() {
        let h = 3_600_000;
        let times = [0, h, 2 * h, 3 * h, 9 * h, 10 * h];
        let lines = [1, 10, 20, 30, 40, 50];
        let w = gap_warnings(&times, &lines);
        assert_eq!(
            w,
            ["line 40: gap of 6h 00m after the sample at line 30 (samples are 1h 00m apart)"]
        );
        assert!(gap_warnings(&times[..4], &lines[..4]).is_empty());
        assert_eq!(duration(90_061_000), "1d 1h");
        assert_eq!(duration(45_000), "45s");
    }
}
