//! Numbers and dates as the pages show them. Pure functions, tested here.

/// An integer with thousands separators: "1,234,567", "-42". Takes anything that prints as
/// an integer (templates pass references).
pub fn count(n: impl std::fmt::Display) -> String {
    let text = n.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", text.as_str()),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + text.len() / 3);
    out.push_str(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count in binary units, always two decimals: "1.18 MiB", "452.00 KiB", "512 bytes".
/// For chart labels, where the exact count does not fit; text uses [`bytes`].
pub fn bytes_short(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return if n == 1 {
            "1 byte".into()
        } else {
            format!("{n} bytes")
        };
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
    format!("{v:.2} {unit}")
}

/// A byte count exactly, then in binary units: "1,234,567 bytes (1.18 MiB)"; below a KiB just
/// "512 bytes".
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return bytes_short(n);
    }
    format!("{} bytes ({})", count(n), bytes_short(n))
}

/// Signed sizes from the database (never negative in practice).
pub fn bytes_i64(n: i64) -> String {
    bytes(u64::try_from(n).unwrap_or(0))
}

/// A fraction 0..1 as a percentage of `base`, one decimal: "12.3 % of nonpaged pool maximum";
/// "–" when unknown or not finite. Every percentage a page shows says what it is a share of.
pub fn percent(f: Option<f64>, base: &str) -> String {
    match f {
        Some(f) if f.is_finite() => {
            let p = f * 100.0;
            if p != 0.0 && p.abs() < 0.1 {
                format!("<0.1 % of {base}")
            } else {
                format!("{p:.1} % of {base}")
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
    Some(analyzer::report::time::checked_days_from_civil(y, m, d)? * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567u64), "1,234,567");
        assert_eq!(count(-1_234_567i64), "-1,234,567");
        // Templates pass references.
        let field = 12_345i64;
        let by_ref = &field;
        assert_eq!(count(by_ref), "12,345");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn bytes_exact_then_in_binary_units_with_two_decimals() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(1024), "1,024 bytes (1.00 KiB)");
        assert_eq!(bytes(1_234_567), "1,234,567 bytes (1.18 MiB)");
        assert_eq!(bytes(462_848), "462,848 bytes (452.00 KiB)");
        assert_eq!(bytes_short(64 << 20), "64.00 MiB");
        assert_eq!(bytes_short(u64::MAX), "16.00 EiB");
    }

    #[test]
    fn percentages() {
        let base = "nonpaged pool maximum";
        assert_eq!(
            percent(Some(0.123), base),
            "12.3 % of nonpaged pool maximum"
        );
        assert_eq!(percent(Some(0.0), base), "0.0 % of nonpaged pool maximum");
        assert_eq!(
            percent(Some(0.0001), base),
            "<0.1 % of nonpaged pool maximum"
        );
        assert_eq!(percent(None, base), "–");
        assert_eq!(percent(Some(f64::NAN), base), "–");
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
