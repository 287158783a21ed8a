//! The verdicts that are not about one driver's own pool: quota charged to a process, a pool
//! whose largest tag no one's code allocates with, and nothing standing out.

use super::candidates::{pressure, DriverCandidate, QuotaCandidate};
use super::context::{bytes_in, Ctx};
use super::driver::sites_text;
use super::{
    capitalize, common_downgrades, human, list, lower, pct, HIGH_SHARE, SIGNIFICANT_SHARE,
};
use crate::report::analysis::*;

/// Quota charged to one process. The leaker is the driver whose code allocates the charged
/// tag; the process is whom the pool is charged to: leaked quota-charged blocks keep it
/// referenced, so it lingers after it exits.
pub(super) fn process_quota(c: &Ctx, q: &QuotaCandidate, mut reasons: Vec<String>) -> Verdict {
    let p = q.process;
    let name = p
        .name
        .clone()
        .unwrap_or_else(|| format!("the process at {}", p.eprocess));
    let pid = p.pid.map(|v| format!(" (pid {v})")).unwrap_or_default();
    let main = q.tags.first().map(|(t, _)| *t);
    let (drivers, code) = main.map(|t| c.owners(t)).unwrap_or_default();
    let pool_s = q.pool.as_str();
    let press = pressure(c, q.pool, q.share_of_max);
    let leak = press.is_some() && !drivers.is_empty();
    let mut confidence = match (leak, code && q.share.is_some_and(|s| s >= HIGH_SHARE)) {
        (false, _) => Confidence::Low,
        (true, true) => Confidence::High,
        (true, false) => Confidence::Medium,
    };
    let charged = format!(
        "{} of {pool_s} pool{}",
        human(p.bytes),
        q.share
            .map(|s| format!(" ({} of {pool_s} pool in use)", pct(s)))
            .unwrap_or_default()
    );
    let tag_s = main.map(|t| format!("'{}'", t.tag)).unwrap_or_default();
    let sentence = match (drivers.is_empty(), leak) {
        (false, true) => format!(
            "{} is the likely leaker: its allocations of {tag_s} hold {charged}, charged to the quota of {name}{pid}; leaked quota-charged blocks keep {name} referenced.",
            list(&drivers)
        ),
        (false, false) => format!(
            "{}'s allocations of {tag_s} hold {charged}, charged to the quota of {name}{pid}; {pool_s} pool is not under pressure, so one dump cannot show a leak.",
            list(&drivers)
        ),
        (true, _) => format!(
            "{name}{pid} is charged {charged}{}: the pool is used on behalf of that process, and no loaded third-party driver's code allocates the charged tag.",
            main.map(|t| format!(", mostly tag '{}'", t.tag)).unwrap_or_default()
        ),
    };
    let mut ev = vec![format!(
        "{name}{pid} is charged {} of pool quota in {} blocks: {} of all quota-charged bytes; a block charged to a process keeps the process referenced until it is freed",
        human(p.bytes),
        p.blocks,
        pct(q.dominance)
    )];
    if let Some(t) = main {
        let charged = q.tags.first().map_or(0, |x| x.1);
        ev.push(format!("{} of it is tag '{}'", human(charged), t.tag));
        match c
            .r
            .drivers
            .iter()
            .find(|d| drivers.first() == Some(&d.module))
        {
            Some(d) => {
                let (n, at) = sites_text(d, &t.tag, 3);
                ev.push(format!(
                    "'{}' is an allocation argument in {}'s code{}",
                    t.tag,
                    list(&drivers),
                    if n > 0 {
                        format!(" ({at})")
                    } else {
                        String::new()
                    }
                ));
            }
            None => ev.push(format!(
                "no loaded third-party driver's code allocates with '{}'",
                t.tag
            )),
        }
    } else {
        confidence = lower(confidence);
    }
    common_downgrades(c, &mut confidence, &mut ev);
    ev.append(&mut reasons);
    Verdict {
        kind: VerdictKind::ProcessQuota,
        sentence,
        pool: Some(q.pool),
        session: false,
        drivers,
        tags: q.tags.iter().take(3).map(|(t, _)| t.tag.clone()).collect(),
        bytes: p.bytes,
        share_of_pool: q.share,
        confidence,
        process: Some(VerdictProcess {
            pid: p.pid,
            name: p.name.clone(),
            eprocess: p.eprocess,
        }),
        share_of_maximum: q.share_of_max,
        pressure: press,
        orphans: None,
        reasons: ev,
    }
}

/// A pool near exhaustion whose largest tag has no third-party owner.
pub(super) fn unattributed(
    c: &Ctx,
    t: &TagReport,
    pool: PoolName,
    mut reasons: Vec<String>,
) -> Verdict {
    let bytes = bytes_in(t, pool);
    let share = c.in_use(pool).map(|u| bytes as f64 / u as f64);
    let windows = c.windows_tag(t);
    let why = if windows {
        let who = t
            .owners
            .iter()
            .find_map(|o| o.module.clone())
            .unwrap_or_else(|| "Windows".into());
        format!(
            "'{}' is a Windows tag ({who}): which driver makes Windows allocate it cannot be told from the tag",
            t.tag
        )
    } else {
        format!(
            "no loaded driver's code allocates with '{}' and no pooltag entry names a loaded driver",
            t.tag
        )
    };
    let fill = c
        .gauge(pool)
        .and_then(|g| g.used_fraction)
        .map_or(String::new(), |f| format!(" is {} full", pct(f)));
    let mut ev = vec![why];
    ev.extend(super::block_reason(t));
    ev.append(&mut reasons);
    Verdict {
        kind: VerdictKind::UnattributedTag,
        sentence: format!(
            "{} pool{fill}; its largest user is tag '{}' with {}{}, which {}.",
            capitalize(pool.as_str()),
            t.tag,
            human(bytes),
            share
                .map(|s| format!(" ({} of {} pool in use)", pct(s), pool.as_str()))
                .unwrap_or_default(),
            if windows {
                "is a Windows component's tag, so the driver behind it cannot be named from the dump"
            } else {
                "no loaded driver's code allocates with"
            }
        ),
        pool: Some(pool),
        session: false,
        drivers: Vec::new(),
        tags: vec![t.tag.clone()],
        bytes,
        share_of_pool: share,
        confidence: if windows {
            Confidence::Low
        } else {
            Confidence::Medium
        },
        process: None,
        share_of_maximum: None,
        pressure: pressure(c, pool, None),
        orphans: None,
        reasons: ev,
    }
}

/// No significant candidate.
pub(super) fn no_leak(
    c: &Ctx,
    dc: Option<&DriverCandidate>,
    qc: Option<&QuotaCandidate>,
    mut reasons: Vec<String>,
) -> Verdict {
    let mut ev = Vec::new();
    let sentence = match dc {
        Some(d) => {
            ev.push(format!(
                "the largest driver-owned pool is {}'s: {} of {} pool in use, under the {} threshold",
                list(&d.owners),
                d.share.map_or("an unknown share".into(), pct),
                d.pool.as_str(),
                pct(SIGNIFICANT_SHARE)
            ));
            format!(
                "No driver stands out: the largest pool user attributable to a third-party driver is {} with {} of {} pool{}.",
                list(&d.owners),
                human(d.pool_bytes),
                d.pool.as_str(),
                d.share
                    .map(|s| format!(" ({} of {} pool in use)", pct(s), d.pool.as_str()))
                    .unwrap_or_default()
            )
        }
        None => {
            ev.push("no loaded third-party driver's code allocates with a tag that has outstanding bytes".into());
            "No driver stands out: no loaded third-party driver's code allocates with the tags that hold pool.".into()
        }
    };
    if let Some(q) = qc {
        ev.push(format!(
            "the process charged the most quota is {} with {} ({} of all charged bytes)",
            q.process.name.as_deref().unwrap_or("?"),
            human(q.process.bytes),
            pct(q.dominance)
        ));
    }
    for pool in [PoolName::Paged, PoolName::Nonpaged] {
        if let Some(t) = c.top_tag(pool) {
            ev.push(format!(
                "the largest {} pool tag is '{}' with {}",
                pool.as_str(),
                t.tag,
                human(bytes_in(t, pool))
            ));
        }
    }
    if !c.r.blocks.complete {
        ev.push(
            "the block walk is incomplete (pages missing from the dump or a walk skipped)".into(),
        );
    }
    ev.extend(super::faulting_reason(c.r));
    ev.append(&mut reasons);
    let confidence = if c.r.blocks.complete && !c.r.tags.is_empty() {
        Confidence::Medium
    } else {
        Confidence::Low
    };
    Verdict {
        kind: VerdictKind::NoLeakFound,
        sentence,
        pool: None,
        session: false,
        drivers: Vec::new(),
        tags: Vec::new(),
        bytes: 0,
        share_of_pool: None,
        confidence,
        process: None,
        share_of_maximum: None,
        pressure: None,
        orphans: None,
        reasons: ev,
    }
}
