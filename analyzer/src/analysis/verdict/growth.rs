//! The verdict with growth: a dump's verdict read again against a trend of the same machine
//! (other dumps, poolmon or counter logs: `pooltriage analyze DUMP --trend INPUT...`).
//!
//! One dump shows who holds pool; pressure is the only leak evidence it has. A tag that grows
//! steadily over hours (the trend's growth rule, analyzer::trend::rule) is the other: so
//! - `largest-consumer` whose tag (in its pool) grows steadily becomes the leak kind pressure
//!   would have given (`driver-leak`, `untagged-leak` for 'None', `shared-tag` for a tag several
//!   drivers allocate with), confidence `medium`, the rate and its fit in the sentence;
//! - a leak verdict whose tag grows steadily keeps its kind and gains the rate as a reason;
//! - a verdict whose tag was judged over enough points and hours and does not grow steadily
//!   says so in a reason; a leak verdict's confidence drops one step (pressure without growth
//!   may be a full cache, a workload peak);
//! - session-pool verdicts are left as they are: trends read system pool only.

use crate::report::analysis::{Confidence, Verdict, VerdictKind};
use crate::report::trend::{TagTrend, TrendReport};
use crate::trend::verdict::bytes;

/// Reads `v` again against `trend`; `split_tag` says whether the dump's provenance split the
/// verdict's tag between modules (a shared tag even when one driver is named).
pub fn apply_growth(v: &mut Verdict, trend: &TrendReport, split_tag: bool) {
    if v.session {
        return;
    }
    let (Some(pool), Some(tag)) = (v.pool, v.tags.first()) else {
        return;
    };
    let Some(t) = trend.tags.iter().find(|t| t.tag == *tag && t.pool == pool) else {
        return;
    };
    let leak_kind = matches!(
        v.kind,
        VerdictKind::DriverLeak | VerdictKind::UntaggedLeak | VerdictKind::SharedTag
    );
    if t.judgement.growing() {
        let rate = rate_text(t);
        if v.kind == VerdictKind::LargestConsumer {
            v.kind = if tag == "None" {
                VerdictKind::UntaggedLeak
            } else if v.drivers.len() > 1 || split_tag {
                VerdictKind::SharedTag
            } else {
                VerdictKind::DriverLeak
            };
            v.confidence = Confidence::Medium;
            let share = v
                .share_of_pool
                .map(|s| format!(" ({:.0}% of {} pool in use)", s * 100.0, pool.as_str()))
                .unwrap_or_default();
            v.sentence = format!(
                "{} {} the likely leaker: its tag '{tag}' {rate}; this dump shows it holding {} of {} pool{share}, with {} pool not yet under pressure.",
                v.drivers.join(" and "),
                if v.drivers.len() > 1 { "are" } else { "is" },
                super::human(v.bytes),
                pool.as_str(),
                pool.as_str()
            );
        }
        v.reasons
            .push(format!("growth (trend of the machine): tag '{tag}' {rate}"));
    } else if !t.judgement.insufficient() {
        v.reasons.push(format!(
            "growth (trend of the machine): tag '{tag}' does not grow steadily in {} pool over {:.1} h ({} points, {}/h, judged {})",
            pool.as_str(),
            t.bytes.span_hours,
            t.bytes.points,
            bytes(t.bytes.slope_per_hour),
            t.judgement.as_str()
        ));
        if leak_kind {
            v.confidence = match v.confidence {
                Confidence::High => Confidence::Medium,
                _ => Confidence::Low,
            };
        }
    }
}

fn rate_text(t: &TagTrend) -> String {
    let until = t
        .hours_to_max
        .map(|h| format!("; at this rate the pool reaches its maximum in {h:.1} h"))
        .unwrap_or_default();
    format!(
        "grows steadily by {}/h in {} pool (R² {:.3}, {} points over {:.1} h){until}",
        bytes(t.bytes.slope_per_hour),
        t.pool.as_str(),
        t.bytes.r2.unwrap_or(0.0),
        t.bytes.points,
        t.bytes.span_hours
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::analysis::PoolName;
    use crate::trend::rule::Judgement;
    use crate::trend::{analyze, tagtable, Source, SourceData, TrendOptions};

    /// The parser fixture's poolmon log: 'Leak' (leaky.sys) grows by 1 MiB/h in paged pool.
    fn trend() -> TrendReport {
        let log = include_bytes!("../../../tests/fixtures/trend/poolmon_n_g.log");
        let log = tagtable::parse(std::io::Cursor::new(log.to_vec())).expect("fixture reads");
        let sources = [Source {
            name: "poolmon.log".into(),
            data: SourceData::Tags(log),
        }];
        analyze(&sources, &TrendOptions::default()).expect("one machine")
    }

    fn verdict(kind: VerdictKind, confidence: Confidence) -> Verdict {
        let mut v = super::super::not_analyzable("x".into());
        v.kind = kind;
        v.confidence = confidence;
        v.pool = Some(PoolName::Paged);
        v.tags = vec!["Leak".into()];
        v.drivers = vec!["leaky.sys".into()];
        v.bytes = 6 << 20;
        v.reasons.clear();
        v
    }

    #[test]
    fn a_largest_consumer_that_grows_is_the_leaker() {
        let mut v = verdict(VerdictKind::LargestConsumer, Confidence::Low);
        apply_growth(&mut v, &trend(), false);
        assert_eq!(
            (v.kind, v.confidence),
            (VerdictKind::DriverLeak, Confidence::Medium)
        );
        assert!(
            v.sentence.starts_with(
                "leaky.sys is the likely leaker: its tag 'Leak' grows steadily by 1.00 MiB/h"
            ),
            "{}",
            v.sentence
        );
        assert_eq!(v.reasons.len(), 1);
        // A tag provenance split is a shared tag even with one driver named.
        let mut v = verdict(VerdictKind::LargestConsumer, Confidence::Low);
        apply_growth(&mut v, &trend(), true);
        assert_eq!(v.kind, VerdictKind::SharedTag);
    }

    #[test]
    fn a_tag_that_does_not_grow_lowers_a_leak_and_never_raises_a_consumer() {
        let mut t = trend();
        for tag in &mut t.tags {
            tag.judgement = Judgement::NotSteady;
        }
        let mut v = verdict(VerdictKind::DriverLeak, Confidence::High);
        apply_growth(&mut v, &t, false);
        assert_eq!(
            (v.kind, v.confidence),
            (VerdictKind::DriverLeak, Confidence::Medium)
        );
        assert!(
            v.reasons[0].contains("does not grow steadily"),
            "{:?}",
            v.reasons
        );
        let mut v = verdict(VerdictKind::LargestConsumer, Confidence::Low);
        apply_growth(&mut v, &t, false);
        assert_eq!(
            (v.kind, v.confidence),
            (VerdictKind::LargestConsumer, Confidence::Low)
        );
        // Too little data says nothing either way.
        for tag in &mut t.tags {
            tag.judgement = Judgement::TooShort;
        }
        let mut v = verdict(VerdictKind::DriverLeak, Confidence::High);
        apply_growth(&mut v, &t, false);
        assert_eq!(v.confidence, Confidence::High);
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn session_verdicts_are_left_alone() {
        let mut v = verdict(VerdictKind::LargestConsumer, Confidence::Low);
        v.session = true;
        apply_growth(&mut v, &trend(), false);
        assert_eq!(v.kind, VerdictKind::LargestConsumer);
    }
}
