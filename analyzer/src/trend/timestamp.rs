//! Timestamps as the collection tools print them, to milliseconds since 1970-01-01 on the
//! wall clock they were written in (UTC for dumps, the machine's local time for logs; the
//! log's zone, when it says one, is applied by its parser).
//!
//! Forms read (docs/trend.md "Timestamps"):
//! - ISO 8601: `2021-03-10T13:51:09Z`, `2021-03-10 13:51:09.250`, `...+01:00`;
//! - PDH's CSV form `03/10/2021 13:51:09.250` (month first), and the user-locale forms a
//!   localized Windows prints in `%date% %time%` or typeperf: `10.03.2021 13:51:09,25`
//!   (day first with dots), `10/03/2021 ...` (day first with slashes: told from month first by
//!   the whole file, [`DateOrder::resolve`]), `2021/03/10 ...`;
//! - cmd's `%date%` with its weekday (`Wed 03/10/2021`) and `%time%`'s space-padded hour
//!   (` 9:05:07.12`), a 12-hour clock with `AM`/`PM`.

/// One parsed timestamp. Slash dates with both fields <= 12 keep both readings until the
/// file's [`DateOrder`] is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTime {
    /// Milliseconds since 1970-01-01 reading the date month first (or the only reading).
    pub month_first: Option<i64>,
    /// The same, day first; `None` when that reading is not a date.
    pub day_first: Option<i64>,
    /// The date said its order itself (ISO, year first, dotted day first).
    pub unambiguous: bool,
    /// Minutes east of UTC when the text names its offset (ISO `Z`, `+01:00`).
    pub utc_offset_minutes: Option<i32>,
}

impl ParsedTime {
    /// The reading under `order`.
    pub fn millis(&self, order: DateOrder) -> Option<i64> {
        match order {
            DateOrder::MonthFirst => self.month_first,
            DateOrder::DayFirst => self.day_first,
        }
    }

    /// The instant in UTC when the text carried its offset, else the wall-clock value.
    pub fn utc_millis(&self, order: DateOrder) -> Option<i64> {
        let m = self.millis(order)?;
        Some(m - i64::from(self.utc_offset_minutes.unwrap_or(0)) * 60_000)
    }
}

/// How a file writes `a/b/yyyy` dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    /// `MM/DD/YYYY`: PDH's CSV form and en-US.
    MonthFirst,
    /// `DD/MM/YYYY` (en-GB, fr-FR...) and every dotted date.
    DayFirst,
}

impl DateOrder {
    /// The order that reads every timestamp of a file: day first when some date only reads so
    /// (its first field is above 12), else month first (PDH's own form). `None` when the file
    /// holds dates that only read month first and others that only read day first.
    pub fn resolve<'a>(times: impl IntoIterator<Item = &'a ParsedTime>) -> Option<DateOrder> {
        let (mut month_only, mut day_only) = (false, false);
        for t in times {
            match (t.month_first.is_some(), t.day_first.is_some()) {
                (true, false) if !t.unambiguous => month_only = true,
                (false, true) => day_only = true,
                _ => {}
            }
        }
        match (month_only, day_only) {
            (true, true) => None,
            (false, true) => Some(DateOrder::DayFirst),
            _ => Some(DateOrder::MonthFirst),
        }
    }
}

/// Parses one timestamp; `None` when `text` is not one of the forms above.
pub fn parse(text: &str) -> Option<ParsedTime> {
    let t = text.trim();
    if t.len() > 64 {
        return None;
    }
    if let Some(p) = parse_iso(t) {
        return Some(p);
    }
    parse_local_forms(t)
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|±HH:MM]`.
fn parse_iso(t: &str) -> Option<ParsedTime> {
    let b = t.as_bytes();
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let y: i32 = t.get(0..4)?.parse().ok()?;
    let mo: u32 = t.get(5..7)?.parse().ok()?;
    let d: u32 = t.get(8..10)?.parse().ok()?;
    let rest = t.get(11..)?;
    let (clock, offset) = split_offset(rest)?;
    let ms = clock_millis(clock, None)?;
    let day = days_from_civil(y, mo, d)?;
    Some(ParsedTime {
        month_first: Some(day * 86_400_000 + ms),
        day_first: None,
        unambiguous: true,
        utc_offset_minutes: offset,
    })
}

/// Splits `HH:MM:SS.fffZ` / `...+01:00` into the clock and the offset in minutes.
fn split_offset(s: &str) -> Option<(&str, Option<i32>)> {
    if let Some(c) = s.strip_suffix('Z') {
        return Some((c, Some(0)));
    }
    if let Some(i) = s.rfind(['+', '-']) {
        let (c, off) = s.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        let mins = h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?;
        return Some((c, Some(sign * mins)));
    }
    Some((s, None))
}

/// `[Weekday] date time [AM|PM]` with the date's separators deciding its order.
fn parse_local_forms(t: &str) -> Option<ParsedTime> {
    let mut words: Vec<&str> = t.split_whitespace().collect();
    if words.len() > 4 {
        return None;
    }
    if words
        .first()
        .is_some_and(|w| w.chars().next().is_some_and(|c| c.is_alphabetic()))
    {
        words.remove(0);
    }
    let half = match words.last().map(|w| w.to_ascii_uppercase()) {
        Some(w) if w == "AM" => Some(false),
        Some(w) if w == "PM" => Some(true),
        _ => None,
    };
    if half.is_some() {
        words.pop();
    }
    let [date, clock] = words[..] else {
        return None;
    };
    let ms = clock_millis(clock, half)?;
    let (a, b, c, sep) = date_fields(date)?;
    let at = |y: i32, mo: u32, d: u32| days_from_civil(y, mo, d).map(|day| day * 86_400_000 + ms);
    let (month_first, day_first, unambiguous) = if a > 999 {
        (at(a as i32, b, c), None, true)
    } else if c > 999 && sep == '.' {
        (None, at(c as i32, b, a), true)
    } else if c > 999 {
        (at(c as i32, a, b), at(c as i32, b, a), false)
    } else {
        return None;
    };
    if month_first.is_none() && day_first.is_none() {
        return None;
    }
    Some(ParsedTime {
        month_first,
        day_first,
        unambiguous,
        utc_offset_minutes: None,
    })
}

/// `a/b/c`, `a.b.c` or `a-b-c` (numbers) and its separator.
fn date_fields(date: &str) -> Option<(u32, u32, u32, char)> {
    let sep = date.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let mut it = date.trim_end_matches('.').split(sep);
    let mut num = || -> Option<u32> {
        let s = it.next()?;
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let fields = (num()?, num()?, num()?, sep);
    it.next().is_none().then_some(fields)
}

/// `H:MM[:SS[(.|,)fff]]` to milliseconds after midnight, with a 12-hour `half` when given.
fn clock_millis(clock: &str, half_pm: Option<bool>) -> Option<i64> {
    let (hms, frac) = match clock.find(['.', ',']) {
        Some(i) => (&clock[..i], &clock[i + 1..]),
        None => (clock, ""),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let field = |s: &str, max: i64| -> Option<i64> {
        let v: i64 = (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()?;
        (v <= max).then_some(v)
    };
    let mut h = field(parts[0], 23)?;
    let m = field(parts[1], 59)?;
    let s = match parts.get(2) {
        Some(p) => field(p, 60)?,
        None => 0,
    };
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    match half_pm {
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(pm) => h = h % 12 + if pm { 12 } else { 0 },
        None => {}
    }
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` when it is not a date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i64> {
    if !(1601..=9999).contains(&y) {
        return None;
    }
    crate::report::time::checked_days_from_civil(i64::from(y), i64::from(m), i64::from(d))
}

/// "YYYY-MM-DDTHH:MM:SSZ" of milliseconds since 1970 (for messages and reports).
pub fn format_millis(ms: i64) -> String {
    crate::report::time::unix_to_rfc3339(ms.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2021-03-10T13:51:09Z is Unix 1615384269 (`date -u -d @1615384269`).
    const T: i64 = 1_615_384_269_000;

    #[test]
    fn iso_forms() {
        let p = parse("2021-03-10T13:51:09Z").unwrap();
        assert_eq!(p.utc_millis(DateOrder::MonthFirst), Some(T));
        let p = parse("2021-03-10 14:51:09.250+01:00").unwrap();
        assert_eq!(p.utc_millis(DateOrder::MonthFirst), Some(T + 250));
        let p = parse("2021-03-10 13:51:09").unwrap();
        assert_eq!(p.utc_offset_minutes, None);
        assert_eq!(p.millis(DateOrder::DayFirst), None);
        assert_eq!(format_millis(T), "2021-03-10T13:51:09Z");
    }

    #[test]
    fn pdh_and_localized_forms() {
        let pdh = parse("03/10/2021 13:51:09.250").unwrap();
        assert_eq!(pdh.millis(DateOrder::MonthFirst), Some(T + 250));
        assert_eq!(pdh.millis(DateOrder::DayFirst), Some(T + 250 + day_shift()));
        let de = parse("10.03.2021 13:51:09,250").unwrap();
        assert!(de.unambiguous);
        assert_eq!(de.millis(DateOrder::DayFirst), Some(T + 250));
        let ja = parse("2021/03/10 13:51:09.250").unwrap();
        assert_eq!(ja.millis(DateOrder::MonthFirst), Some(T + 250));
        let cmd = parse("Wed 03/10/2021 13:51:09.25").unwrap();
        assert_eq!(cmd.millis(DateOrder::MonthFirst), Some(T + 250));
        let padded = parse("Wed 03/10/2021  9:05:07.12").unwrap();
        let nine = T - (13 * 3600 + 51 * 60 + 9) * 1000 + (9 * 3600 + 5 * 60 + 7) * 1000 + 120;
        assert_eq!(padded.millis(DateOrder::MonthFirst), Some(nine));
        let pm = parse("3/10/2021 1:51:09 PM").unwrap();
        assert_eq!(pm.millis(DateOrder::MonthFirst), Some(T));
    }

    /// 10 March read day first is 3 October: 207 days later.
    fn day_shift() -> i64 {
        207 * 86_400_000
    }

    #[test]
    fn order_resolution() {
        let a = parse("03/10/2021 00:00:00").unwrap();
        let b = parse("25/10/2021 00:00:00").unwrap();
        let c = parse("10/25/2021 00:00:00").unwrap();
        assert_eq!(DateOrder::resolve([&a]), Some(DateOrder::MonthFirst));
        assert_eq!(DateOrder::resolve([&a, &b]), Some(DateOrder::DayFirst));
        assert_eq!(DateOrder::resolve([&a, &c]), Some(DateOrder::MonthFirst));
        assert_eq!(DateOrder::resolve([&b, &c]), None);
    }

    #[test]
    fn not_timestamps() {
        for s in [
            "",
            "Tag  Type",
            "13:51:09",
            "2021-13-01 00:00:00",
            "02/10/2021 00:00:00x",
            "1/2/3 4:5:6",
            "99:00",
        ] {
            assert!(parse(s).is_none(), "{s}");
        }
        assert!(parse("02/30/2021 00:00:00").is_none());
        assert!(parse(" Memory:  260620K Avail:   96364K").is_none());
    }
}
