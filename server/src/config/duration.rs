//! Durations in settings. The settings are named `*_secs` and have always taken whole seconds
//! (`job_timeout_secs = 600`, `POOLTRIAGE_JOB_TIMEOUT_SECS=600`); they also take humantime's
//! spelling (`"10m"`, `"1h 30m"`, `"500ms"`), which says the unit where it is written.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// A flag or environment value: whole seconds, or a humantime duration.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("{text}: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is neither whole seconds nor a duration like \"10m\": {e}"))
}

/// Written as whole seconds when it is whole (the form every existing file uses), else in
/// humantime's spelling, so that what is written reads back the same.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_nanos() == 0 {
        s.serialize_u64(d.as_secs())
    } else {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// Whole seconds as a TOML integer, or a string that [`parse`] takes.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Secs(u64),
        Text(String),
    }
    match Given::deserialize(d)? {
        Given::Secs(s) => Ok(Duration::from_secs(s)),
        Given::Text(t) => parse(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_and_humantime_both_parse() {
        assert_eq!(parse("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "-5", "ten", "5 parsecs", "99999999999999999999999"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_and_strings_read_and_round_trip() {
        #[derive(serde::Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "super")]
            d: Duration,
        }
        for (text, secs) in [
            ("d = 30", 30.0),
            ("d = \"2m\"", 120.0),
            ("d = \"1500ms\"", 1.5),
        ] {
            let t: T = toml::from_str(text).unwrap();
            assert_eq!(t.d.as_secs_f64(), secs, "{text}");
            let back: T = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(back, t);
        }
        assert!(toml::from_str::<T>("d = -1").is_err());
        assert!(toml::from_str::<T>("d = \"soon\"").is_err());
    }
}
