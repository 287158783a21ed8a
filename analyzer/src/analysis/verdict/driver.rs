//! The verdicts about a driver: system pool (`driver-leak`, `untagged-leak`, `shared-tag`,
//! `largest-consumer`) and session pool.

use super::candidates::{DriverCandidate, SessionCandidate};
use super::context::Ctx;
use super::{common_downgrades, human, list, lower, pct, HIGH_SHARE};
use crate::report::analysis::*;

/// The call sites to name: those provenance tied the most bytes to, else the code's sites of
/// the tag. Returns how many there are and up to `max` of them as text.
pub(super) fn sites_text(d: &DriverReport, tag: &str, max: usize) -> (usize, String) {
    let from_blocks: Vec<String> = d
        .provenance
        .iter()
        .flat_map(|p| p.sites.iter())
        .filter(|s| s.tag == tag)
        .map(|s| {
            let name = d
                .call_sites
                .iter()
                .find(|c| c.call == Some(s.address))
                .and_then(|c| c.symbol.clone())
                .unwrap_or_else(|| s.offset.clone());
            format!(
                "{name} ({} in {} blocks)",
                human(s.blocks.bytes),
                s.blocks.count
            )
        })
        .collect();
    let names: Vec<String> = if from_blocks.is_empty() {
        d.call_sites
            .iter()
            .filter(|s| s.tag == tag)
            .map(|s| s.symbol.clone().unwrap_or_else(|| s.offset.clone()))
            .collect()
    } else {
        from_blocks
    };
    let more = if names.len() > max {
        format!(", and {} more", names.len() - max)
    } else {
        String::new()
    };
    let shown: Vec<String> = names.iter().take(max).cloned().collect();
    (names.len(), format!("{}{more}", shown.join(", ")))
}

/// "(12% of paged pool in use, 0.1% of its maximum)".
fn shares(share: Option<f64>, of_max: Option<f64>, pool: PoolName) -> String {
    match (share, of_max) {
        (Some(s), Some(m)) => format!(
            " ({} of {} pool in use, {} of its maximum)",
            pct(s),
            pool.as_str(),
            pct(m)
        ),
        (Some(s), None) => format!(" ({} of {} pool in use)", pct(s), pool.as_str()),
        _ => String::new(),
    }
}

/// What the pool's state says: the pressure a leak verdict rests on, or why there is none.
fn pool_state(c: &Ctx, p: Option<&Pressure>, pool: PoolName, share_of_max: Option<f64>) -> String {
    match p.map(|p| p.rule) {
        Some(PressureRule::NearExhaustion) => format!(
            "{} pool is near exhaustion ({} of its maximum in use)",
            pool.as_str(),
            c.gauge(pool)
                .and_then(|g| g.used_fraction)
                .map_or("?".into(), pct)
        ),
        Some(PressureRule::ShareOfMaximum) => format!(
            "that alone is {} of the {} pool's maximum",
            share_of_max.map_or("?".into(), pct),
            pool.as_str()
        ),
        None => format!(
            "{} pool is not under pressure ({} of its maximum in use), so one dump cannot show that it leaks: compare dumps or poolmon logs taken hours apart",
            pool.as_str(),
            c.gauge(pool)
                .and_then(|g| g.used_fraction)
                .map_or("an unknown share".into(), pct)
        ),
    }
}

/// How the candidate's bytes are tagged, for the sentence.
fn tag_phrase(d: &DriverCandidate) -> String {
    let t = &d.main.tag;
    if d.split() && t == "None" {
        "in untagged blocks ('None', from ExAllocatePool) that the dump ties to it".into()
    } else if d.split() {
        let others = &d.main.shared_with;
        if others.is_empty() {
            format!("in its share of tag '{t}'")
        } else {
            format!(
                "in its share of tag '{t}', which {} also allocate with",
                list(others)
            )
        }
    } else if d.rows.len() > 1 {
        let tags: Vec<String> = d.rows.iter().map(|r| format!("'{}'", r.tag)).collect();
        format!("under tags {}", tags.join(", "))
    } else {
        format!("under tag '{t}'")
    }
}

pub(super) fn driver_verdict(c: &Ctx, d: &DriverCandidate, mut reasons: Vec<String>) -> Verdict {
    let leak = d.pressure.is_some();
    let pool_s = d.pool.as_str();
    let unsplit = d.owners.len() > 1;
    let kind = match (leak, d.main.tag == "None", unsplit || d.split()) {
        (false, _, _) => VerdictKind::LargestConsumer,
        (true, true, _) => VerdictKind::UntaggedLeak,
        (true, false, true) => VerdictKind::SharedTag,
        (true, false, false) => VerdictKind::DriverLeak,
    };
    let state = pool_state(c, d.pressure.as_ref(), d.pool, d.share_of_max);
    let figures = format!(
        "{} of {pool_s} pool{}",
        human(d.pool_bytes),
        shares(d.share, d.share_of_max, d.pool)
    );
    let (n, at) = sites_text(d.driver, &d.main.tag, 3);
    let sites = if n > 0 {
        format!(", allocated at {at}")
    } else {
        String::new()
    };
    let sentence = if unsplit {
        format!(
            "Tag '{}' holds {figures} and is allocated by {} drivers ({}), whose blocks the dump does not tell apart; {state}.",
            d.main.tag,
            d.owners.len(),
            list(&d.owners)
        )
    } else if leak {
        format!(
            "{} is the likely leaker: it holds {figures} {}{sites}; {state}.",
            d.driver.module,
            tag_phrase(d)
        )
    } else {
        format!(
            "{} is the largest consumer of {pool_s} pool: {figures} {}{sites}. {}.",
            d.driver.module,
            tag_phrase(d),
            super::capitalize(&state)
        )
    };
    let mut confidence = match (leak, d.code_evidence) {
        (false, _) => Confidence::Low,
        (true, true) if c.near(d.pool) || d.share.is_some_and(|s| s >= HIGH_SHARE) => {
            Confidence::High
        }
        (true, _) => Confidence::Medium,
    };
    if unsplit {
        confidence = lower(confidence);
    }
    let mut ev = evidence(c, d, &mut confidence);
    common_downgrades(c, &mut confidence, &mut ev);
    ev.append(&mut reasons);
    Verdict {
        kind,
        sentence,
        pool: Some(d.pool),
        session: false,
        drivers: d.owners.clone(),
        tags: d.rows.iter().map(|r| r.tag.clone()).collect(),
        bytes: d.pool_bytes,
        share_of_pool: d.share,
        confidence,
        process: None,
        share_of_maximum: d.share_of_max,
        pressure: d.pressure.clone(),
        orphans: d
            .driver
            .provenance
            .as_ref()
            .map(|p| p.orphans)
            .filter(|o| o.count > 0),
        reasons: ev,
    }
}

/// The reasons behind a driver verdict, one sentence each.
fn evidence(c: &Ctx, d: &DriverCandidate, confidence: &mut Confidence) -> Vec<String> {
    let mut ev = Vec::new();
    let t = &d.main.tag;
    let who = &d.driver.module;
    let (n, at) = sites_text(d.driver, t, 5);
    match (t.as_str(), d.split(), d.owners.len() > 1) {
        (_, _, true) => {
            ev.push(format!(
                "the tag '{t}' is an allocation argument in the code of {} drivers: {}; the dump does not tie its blocks to one of them",
                d.owners.len(),
                list(&d.owners)
            ));
            ev.extend(separation(c, t, &d.owners, d.pool));
        }
        ("None", _, _) => ev.push(format!(
            "{who} calls ExAllocatePool, which tags its blocks 'None'{}",
            if n > 0 { format!(" ({n} call sites: {at})") } else { String::new() }
        )),
        (_, true, _) => ev.push(format!(
            "'{t}' is an allocation argument in {who}'s code{} and in {}'s",
            if n > 0 { format!(" ({at})") } else { String::new() },
            list(&d.main.shared_with)
        )),
        _ if d.code_evidence => ev.push(format!(
            "the tag '{t}' is an allocation argument in {who}'s code{}; no other loaded module's code allocates with it, and it is not a Windows tag",
            if n > 0 { format!(" ({n} call sites: {at})") } else { String::new() }
        )),
        _ => {
            *confidence = lower(*confidence);
            ev.push(format!(
                "only the pooltag file ties '{t}' to {who}: its code does not hold the tag as an allocation argument"
            ));
        }
    }
    if let Some(p) = d.driver.provenance.as_ref().filter(|_| d.split()) {
        ev.push(provenance_reason(who, t, p));
    }
    if let Some(o) = d
        .driver
        .provenance
        .as_ref()
        .map(|p| p.orphans)
        .filter(|o| o.count > 0)
    {
        ev.push(format!(
            "{} of its blocks ({}) are orphans: nothing the dump holds points to them, as a leak leaves them",
            o.count,
            human(o.bytes)
        ));
    }
    if let Some(tag) = d.tag {
        ev.push(format!(
            "'{}' holds {} of paged and {} of nonpaged pool in {} outstanding allocations (tag tables)",
            tag.tag,
            human(tag.paged_bytes),
            human(tag.nonpaged_bytes),
            tag.paged_outstanding + tag.nonpaged_outstanding
        ));
        match super::block_reason(tag) {
            Some(b) => ev.push(b),
            None if c.r.blocks.complete => {
                *confidence = lower(*confidence);
                ev.push(format!(
                    "the block walk is complete but found no '{}' block",
                    tag.tag
                ));
            }
            None => {}
        }
    }
    ev
}

/// What the owners' call sites say about a tag the dump could not split: the pools and sizes
/// each asks for, and which of them asks for the pool holding the bytes.
fn separation(c: &Ctx, tag: &str, owners: &[String], pool: PoolName) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut matching = Vec::new();
    for o in owners {
        let Some(d) = c.r.drivers.iter().find(|d| &d.module == o) else {
            continue;
        };
        let sites: Vec<&CallSite> = d.call_sites.iter().filter(|s| s.tag == tag).collect();
        let pools: std::collections::BTreeSet<PoolName> =
            sites.iter().filter_map(|s| s.pool_type).collect();
        let sizes: std::collections::BTreeSet<u64> = sites.iter().filter_map(|s| s.size).collect();
        if pools.is_empty() {
            continue;
        }
        if pools.contains(&pool) {
            matching.push(o.clone());
        }
        let pools_s: Vec<&str> = pools.iter().map(|p| p.as_str()).collect();
        let sizes_s: Vec<String> = sizes.iter().map(|s| format!("{s:#x}")).collect();
        reasons.push(format!(
            "{o}'s call sites allocate '{tag}' from {} pool{}",
            pools_s.join(" and "),
            if sizes_s.is_empty() {
                String::new()
            } else {
                format!(" with size {}", sizes_s.join(", "))
            }
        ));
    }
    if let [one] = &matching[..] {
        reasons.push(format!(
            "only {one}'s call sites allocate from {} pool, which holds most of the bytes",
            pool.as_str()
        ));
    }
    reasons
}

/// "its 60 'None' blocks (87 KiB) were tied to it by: size 60, reachable 40".
fn provenance_reason(
    who: &str,
    tag: &str,
    p: &crate::report::provenance::DriverProvenance,
) -> String {
    let kinds: Vec<String> = p
        .evidence
        .iter()
        .map(|e| {
            let name = serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{name} {}", e.count)
        })
        .collect();
    format!(
        "provenance tied {} blocks ({}) of '{tag}' and its other tags to {who} by: {} (certainty high {}, medium {}, low {})",
        p.blocks.count,
        human(p.blocks.bytes),
        kinds.join(", "),
        p.high.count,
        p.medium.count,
        p.low.count
    )
}

pub(super) fn session_verdict(c: &Ctx, s: &SessionCandidate, mut reasons: Vec<String>) -> Verdict {
    let t = s.main;
    let leak = s.pressure.is_some();
    let mut confidence = match (leak, s.share >= HIGH_SHARE) {
        (false, _) => Confidence::Low,
        (true, true) => Confidence::High,
        (true, false) => Confidence::Medium,
    };
    if !s.code_evidence || s.owners.len() > 1 {
        confidence = lower(confidence);
    }
    if c.r.symbols.matches_kernel == Some(false) {
        confidence = lower(confidence);
    }
    let kind = match (leak, s.owners.len() > 1, t.tag == "None") {
        (false, _, _) => VerdictKind::LargestConsumer,
        (true, true, _) => VerdictKind::SharedTag,
        (true, false, true) => VerdictKind::UntaggedLeak,
        (true, false, false) => VerdictKind::DriverLeak,
    };
    let pool_s = s.pool.as_str();
    let quoted: Vec<String> = s.tags.iter().map(|t| format!("'{}'", t.tag)).collect();
    let who = list(&s.owners);
    let (n, at) = sites_text(s.driver, &t.tag, 3);
    let sites = if n > 0 {
        format!(" (at {at})")
    } else {
        String::new()
    };
    let state = pool_state(c, s.pressure.as_ref(), PoolName::Paged, None);
    let held = format!(
        "{} of session {pool_s} pool is tagged {} ({} of session pool in use)",
        human(s.bytes),
        list(&quoted),
        pct(s.share)
    );
    let sentence = match (s.owners.len(), leak) {
        (1, true) => format!(
            "{who} is the likely leaker: {held}, and {who}'s own code allocates with that tag{sites}; {state}."
        ),
        (1, false) => format!(
            "{who} is the largest consumer of session pool: {held}, and {who}'s own code allocates with that tag{sites}. {}.",
            super::capitalize(&state)
        ),
        _ => format!("{held}; the drivers whose code allocates with it are {who}; {state}."),
    };
    let sessions = c.r.sessions.len().max(1);
    reasons.insert(
        0,
        format!(
            "session pool is counted apart from system pool, in the session tag tables (ExpSessionPoolTrackTable and MM_SESSION_SPACE.PoolTrackTableExpansion): {} in use in {sessions} session{}",
            human(s.in_use),
            if sessions == 1 { "" } else { "s" }
        ),
    );
    if n > 0 {
        reasons.push(format!(
            "{}'s code passes '{}' to an allocator ({n} call sites: {at})",
            s.driver.module, t.tag
        ));
    } else if !s.code_evidence {
        reasons.push(format!("only a pool tag file ties '{}' to {who}", t.tag));
    }
    match super::block_reason(t) {
        Some(b) => reasons.push(b),
        None => reasons.push(
            "the block walk found no session pool block of the tag (each session's classic pool pages before 19H1, its segment heap from MM_SESSION_SPACE.HeapState after): these figures are the session tag tables' counters"
                .into(),
        ),
    }
    Verdict {
        kind,
        sentence,
        pool: Some(s.pool),
        session: true,
        drivers: s.owners.clone(),
        tags: s.tags.iter().map(|t| t.tag.clone()).collect(),
        bytes: s.bytes,
        share_of_pool: Some(s.share),
        confidence,
        process: None,
        share_of_maximum: None,
        pressure: s.pressure.clone(),
        orphans: None,
        reasons,
    }
}
