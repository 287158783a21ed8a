//! Numbers and dates as the pages show them. Pure functions, tested here.

/// Bytes in binary units, 3 significant digits: "512 B", "1.50 KiB", "452 KiB", "3.2 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.2} {unit}")
    } else if v < 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// Signed sizes from the database (never negative in practice).
pub fn bytes_i64(n: i64) -> String {
    bytes(u64::try_from(n).unwrap_or(0))
}

/// A fraction 0..1 as a percentage, "12.3%"; "–" when unknown or not finite.
pub fn percent(f: Option<f64>) -> String {
    match f {
        Some(f) if f.is_finite() => {
            let p = f * 100.0;
            if p != 0.0 && p.abs() < 0.1 {
                "<0.1%".to_string()
            } else {
                format!("{p:.1}%")
            }
        }
        _ => "–".to_string(),
    }
}

/// Unix seconds as "2026-11-25 18:41 UTC".
pub fn datetime(unix: i64) -> String {
    let t = crate::db::rfc3339(unix);
    // "YYYY-MM-DDTHH:MM:SSZ" -> "YYYY-MM-DD HH:MM UTC"
    match (t.get(0..10), t.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => t,
    }
}

/// A duration in seconds as "42 s", "3 min", "2 h 5 min", "3 d 4 h".
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 86_400 {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    } else {
        format!("{} d {} h", s / 86_400, s % 86_400 / 3600)
    }
}

/// "YYYY-MM-DD" (an `<input type=date>` value) to the Unix seconds of its midnight UTC; `None`
/// for anything else (a bad filter is ignored, not an error page).
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: i64 = s.get(5..7)?.parse().ok()?;
    let d: i64 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(analyzer::report::time::days_from_civil(y, m, d) * 86_400)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(462_848), "452 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(Some(0.12)), "12.0%");
        assert_eq!(percent(Some(0.0)), "0.0%");
        assert_eq!(percent(Some(0.0001)), "<0.1%");
        assert_eq!(percent(None), "–");
        assert_eq!(percent(Some(f64::NAN)), "–");
    }

    #[test]
    fn dates_round_trip_with_the_database_clock() {
        // Values from `date -u -d 2026-11-25 +%s` and `date -u -d 2000-02-29 +%s`.
        assert_eq!(parse_date("2026-11-25"), Some(1_795_564_800));
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2001-02-29"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("2026-1-01"), None);
        assert_eq!(parse_date(""), None);
        assert_eq!(datetime(1_795_632_074), "2026-11-25 18:41 UTC");
    }

    #[test]
    fn ages() {
        assert_eq!(age(5), "5 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(7500), "2 h 5 min");
        assert_eq!(age(90_000), "1 d 1 h");
        assert_eq!(age(-3), "0 s");
    }
}
