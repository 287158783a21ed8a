//! Calendar arithmetic, the one copy the workspace uses: Windows FILETIME and Unix seconds to
//! RFC 3339 UTC text, and days since 1970 to and from civil dates, without a date crate (a
//! dozen lines of integer arithmetic: Howard Hinnant's days_from_civil and its inverse, on the
//! proleptic Gregorian calendar).

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// "YYYY-MM-DDTHH:MM:SSZ" for a FILETIME at or after 1970, else `None` (a writer that left
/// the field zero or garbage should not produce a plausible-looking date).
pub fn filetime_to_rfc3339(ft: u64) -> Option<String> {
    let secs = ft.checked_sub(FILETIME_UNIX_EPOCH)? / 10_000_000;
    let secs = i64::try_from(secs).ok()?;
    let (y, _, _) = civil_from_days(secs.div_euclid(86_400));
    (y <= 9999).then(|| unix_to_rfc3339(secs))
}

/// "YYYY-MM-DDTHH:MM:SSZ" of Unix seconds.
pub fn unix_to_rfc3339(secs: i64) -> String {
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`m` 1..=12; not validated).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 of a date that exists: `None` for a month outside 1..=12 or a day
/// outside the month (`2026-02-30`, `2001-02-29`). Readers of dates from text check here.
pub fn checked_days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let len = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=len).contains(&d).then(|| days_from_civil(y, m, d))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        for days in [-719_468, -1, 0, 11_016, 18_331, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
        assert_eq!(unix_to_rfc3339(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(unix_to_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn only_dates_that_exist_are_checked_in() {
        // 2000-02-29 is Unix day 11016 (date -u -d 2000-02-29 +%s = 951782400).
        assert_eq!(checked_days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(checked_days_from_civil(2001, 2, 29), None);
        assert_eq!(checked_days_from_civil(1900, 2, 29), None);
        assert_eq!(checked_days_from_civil(2026, 4, 31), None);
        assert_eq!(checked_days_from_civil(2026, 12, 31), Some(20_818));
        assert_eq!(checked_days_from_civil(2026, 13, 1), None);
        assert_eq!(checked_days_from_civil(2026, 0, 1), None);
        assert_eq!(checked_days_from_civil(2026, 1, 0), None);
    }

    #[test]
    fn known_instants() {
        assert_eq!(
            filetime_to_rfc3339(FILETIME_UNIX_EPOCH).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        // 2000-02-29T12:34:56Z = Unix 951827696 (date -u -d @951827696).
        let ft = FILETIME_UNIX_EPOCH + 951_827_696 * 10_000_000;
        assert_eq!(
            filetime_to_rfc3339(ft).as_deref(),
            Some("2000-02-29T12:34:56Z")
        );
        // 2021-03-10T00:00:00Z = Unix 1615334400.
        let ft = FILETIME_UNIX_EPOCH + 1_615_334_400 * 10_000_000 + 9_999_999;
        assert_eq!(
            filetime_to_rfc3339(ft).as_deref(),
            Some("2021-03-10T00:00:00Z")
        );
        assert_eq!(filetime_to_rfc3339(0), None);
        assert_eq!(filetime_to_rfc3339(u64::MAX), None);
    }
}
