//! Times as the collection tools print them on the forged machine's local clock.

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// A local wall-clock instant, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    pub millis: u64,
    /// 0 = Sunday.
    pub weekday: u64,
}

/// `filetime` (UTC) on a clock `bias_minutes` behind UTC (Windows' bias: UTC = local + bias).
pub fn local(filetime: u64, bias_minutes: i64) -> Civil {
    let unix_ms = (filetime - FILETIME_UNIX_EPOCH) / 10_000;
    let ms = unix_ms as i64 - bias_minutes * 60_000;
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000) as u64;
    let (year, month, day) = analyzer::report::time::civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: rem / 3_600_000,
        minute: rem / 60_000 % 60,
        second: rem / 1000 % 60,
        millis: rem % 1000,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u64,
    }
}

/// cmd's `%date% %time%` on an en-US machine: `Wed 03/10/2021 13:51:09.25`, the hour
/// space-padded (`%time%` prints ` 9:05:07.12`).
pub fn cmd_en_us(c: &Civil) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    format!(
        "{} {:02}/{:02}/{:04} {:>2}:{:02}:{:02}.{:02}",
        DAYS[c.weekday as usize],
        c.month,
        c.day,
        c.year,
        c.hour,
        c.minute,
        c.second,
        c.millis / 10
    )
}

/// PDH's CSV sample time: `03/10/2021 13:51:09.250`.
pub fn pdh(c: &Civil) -> String {
    format!(
        "{:02}/{:02}/{:04} {:02}:{:02}:{:02}.{:03}",
        c.month, c.day, c.year, c.hour, c.minute, c.second, c.millis
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        // 2021-03-10T13:51:09.250Z (Unix 1615384269) is a Wednesday.
        let ft = FILETIME_UNIX_EPOCH + 1_615_384_269_250 * 10_000;
        let utc = local(ft, 0);
        assert_eq!(cmd_en_us(&utc), "Wed 03/10/2021 13:51:09.25");
        assert_eq!(pdh(&utc), "03/10/2021 13:51:09.250");
        // Tokyo (bias -540): 22:51 the same day.
        assert_eq!(pdh(&local(ft, -540)), "03/10/2021 22:51:09.250");
        // Eastern (300): 08:51, space-padded in %time%.
        assert_eq!(cmd_en_us(&local(ft, 300)), "Wed 03/10/2021  8:51:09.25");
    }
}
