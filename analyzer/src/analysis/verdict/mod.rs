//! The verdict: one answer to "which driver is eating which pool", decided by a fixed,
//! documented rule over the report's own figures (tag tables, block walk, provenance, code
//! evidence, quota), never by scenario names. The same rule is written for users in
//! docs/json.md ("verdict").
//!
//! Definitions:
//! - A pool's *in use* and *maximum* are the `!vm` figures (`pools[]`); without them, in use
//!   is the sum of the tags' outstanding bytes in that pool and the maximum is unknown.
//! - A *Windows module* is the kernel image, the HAL, a module `modules[].windows` recognises
//!   (the inbox list), or a binary the built-in tag table names. A *Windows tag* is one the
//!   built-in table gives to Windows, or one only Windows modules' code allocates with. A
//!   pooltag-file line never makes a tag Windows' (Microsoft's pooltag.txt gives 'None' to
//!   nt!Vf) and never overrides code or block evidence.
//! - A driver's *holdings* are its rows in the drivers table: the whole of a tag only its code
//!   allocates with (tag tables), and its attributed share of a tag provenance split between
//!   modules ('None', a tag several drivers allocate with). The verdict, the drivers table and
//!   the tags' splits therefore always agree.
//! - A pool is *under pressure* when it is near exhaustion by WinDbg `!vm`'s rule (nonpaged
//!   above 80%, paged above 95% of its maximum), or when the named driver alone holds at least
//!   [`LEAK_SHARE_OF_MAXIMUM`] of its maximum. Only pressure (or, with several dumps, growth)
//!   lets a verdict say "leaker": one dump shows who holds pool, not that it grows.
//!
//! Rule, in order:
//! 1. No tag figures at all (no tag tables and no blocks, e.g. a triage dump) ->
//!    `not-analyzable`.
//! 2. Driver candidate: the non-Windows driver with the largest holdings; its pool is the one
//!    it holds more of. It is *significant* at [`SIGNIFICANT_SHARE`] of that pool in use, or
//!    when the pool is near exhaustion and its main tag is the pool's largest.
//! 3. Quota candidate: the process charged the most quota; *significant* when it holds at least
//!    [`QUOTA_DOMINANCE`] of all charged bytes and [`SIGNIFICANT_SHARE`] of its pool. It wins
//!    when there is no significant driver candidate, when its largest charged tag is the
//!    driver candidate's, or when it holds more bytes -> `process-quota`, naming the driver
//!    whose code allocates the charged tag first and the process as whom it is charged to.
//! 4. Session candidate (before 5): the non-Windows driver whose tags hold the most session
//!    pool; significant at [`SIGNIFICANT_SHARE`] of session pool, it wins unless a significant
//!    driver candidate holds at least as much.
//! 5. A significant driver candidate: under pressure -> `driver-leak` (its own tag),
//!    `untagged-leak` ('None'), `shared-tag` (a shared tag, split or not); without pressure ->
//!    `largest-consumer`, with the pool's state in the sentence.
//! 6. Else a pool near exhaustion whose largest tag has no third-party owner ->
//!    `unattributed-tag`.
//! 7. Else `no-leak-found`.
//!
//! Confidence: `largest-consumer` is `low` (no leak is shown). A leak verdict is `high` when
//! the evidence is the driver's own code or its blocks and the pool is near exhaustion or the
//! share is at least [`HIGH_SHARE`], else `medium`; one step lower (never below `low`) for
//! each of: a tag the dump cannot split between its owners; only a pooltag file ties the tag
//! to the driver; the block walk is complete but found none of the bytes; the symbols do not
//! match the kernel; no kernel symbols while part of the pool was not read for want of them;
//! the figures come from the block walk because the tag tables were unreadable; pool pages
//! are missing from the walk (paged out or not in the dump); the tag tables count far more
//! allocations than the walk found.

mod candidates;
mod context;
mod driver;
pub mod growth;
mod other;
#[cfg(test)]
mod tests;

use crate::report::analysis::*;
use crate::report::pool::SymbolSource;
use candidates::{driver_candidate, quota_candidate, session_candidate};
use context::Ctx;

/// A driver (or process) holding this share of a pool in use is significant: ordinary
/// drivers each hold well under a few percent of a pool.
pub const SIGNIFICANT_SHARE: f64 = 0.10;
/// From this share of the pool in use on, a leak verdict's confidence is high.
pub const HIGH_SHARE: f64 = 0.25;
/// One process holding this share of all quota-charged bytes "dominates" the charges.
pub const QUOTA_DOMINANCE: f64 = 0.5;
/// A single driver holding this share of a pool's *maximum* puts the pool under pressure by
/// itself: a quarter of everything the pool can ever hold, kept by one driver, is far beyond
/// what a working driver needs, and the rest of the system competes for what is left.
pub const LEAK_SHARE_OF_MAXIMUM: f64 = 0.25;
/// The walk finding fewer than this share of the allocations the tag tables count (with at
/// least [`WALK_SHORT_MIN`] counted) is a contradiction worth a warning.
pub const WALK_SHORT_SHARE: f64 = 0.5;
/// Below this many outstanding allocations the comparison says nothing.
pub const WALK_SHORT_MIN: u64 = 100;

/// What the verdict needs to know beyond the report's figures, as kinds rather than messages
/// (a reworded message never changes a verdict).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Why the tag tables could not be read: the report's error line, quoted when nothing
    /// about pool could be read.
    pub unread: Option<String>,
    /// Part of the pool was not read, or only partly, for want of the kernel's symbols.
    pub needs_symbols: bool,
    /// The tag figures come from the block walk: the tag tables could not be read.
    pub figures_from_blocks: bool,
    /// The tag tables count far more outstanding allocations than the walk found: (counted,
    /// found).
    pub walk_short: Option<(u64, u64)>,
}

/// A `not-analyzable` verdict with its reason.
pub fn not_analyzable(reason: String) -> Verdict {
    Verdict {
        kind: VerdictKind::NotAnalyzable,
        sentence: format!("This dump cannot show pool usage: {reason}."),
        pool: None,
        session: false,
        drivers: Vec::new(),
        tags: Vec::new(),
        bytes: 0,
        share_of_pool: None,
        confidence: Confidence::High,
        process: None,
        share_of_maximum: None,
        pressure: None,
        orphans: None,
        reasons: vec![reason],
    }
}

/// The verdict for a report whose other fields are filled in.
pub fn decide(r: &AnalysisReport, facts: &Facts) -> Verdict {
    let c = Ctx::new(r, facts);
    if r.tags.is_empty() {
        if let Some(mut v) = unanalyzable(r, facts) {
            // A cut-short file may be why: the missing part can hold what was needed.
            if let Some(t) = &r.dump.truncated {
                let detail = format!(
                    "dump file is cut short: it holds {} of the {} pages its header lists, and what is missing may be what this needed",
                    t.pages_in_file, t.pages_listed
                );
                v.sentence = format!("{} The {detail}.", v.sentence);
                v.reasons.insert(0, format!("the {detail}"));
            }
            return v;
        }
    }
    let base = base_reasons(r);
    let dc = driver_candidate(&c);
    let qc = quota_candidate(&c);
    if let Some(q) = qc.as_ref().filter(|q| q.significant) {
        let same_story = dc.as_ref().is_some_and(|d| {
            q.tags
                .first()
                .is_some_and(|(t, _)| d.rows.iter().any(|r| r.tag == t.tag))
        });
        let wins = match dc.as_ref().filter(|d| d.significant) {
            None => true,
            Some(d) => same_story || q.process.bytes > d.bytes,
        };
        if wins {
            return other::process_quota(&c, q, base);
        }
    }
    if let Some(s) = session_candidate(&c).filter(|s| s.significant) {
        if !dc
            .as_ref()
            .is_some_and(|d| d.significant && d.bytes >= s.bytes)
        {
            return driver::session_verdict(&c, &s, base);
        }
    }
    if let Some(d) = dc.as_ref().filter(|d| d.significant) {
        return driver::driver_verdict(&c, d, base);
    }
    for pool in [PoolName::Nonpaged, PoolName::Paged] {
        if !c.near(pool) {
            continue;
        }
        if let Some(t) = c.top_tag(pool) {
            if c.owners(t).0.is_empty() {
                return other::unattributed(&c, t, pool, base);
            }
        }
    }
    other::no_leak(&c, dc.as_ref(), qc.as_ref(), base)
}

/// Rule 1: nothing about pool could be read.
fn unanalyzable(r: &AnalysisReport, facts: &Facts) -> Option<Verdict> {
    if r.dump.format == "triage" {
        let mut v = not_analyzable(
            "it is a triage (small memory) dump, which holds neither the pool tag tables nor pool pages".into(),
        );
        v.reasons.extend(faulting_reason(r));
        return Some(v);
    }
    let walked =
        r.blocks.classic.count + r.blocks.big.count + r.blocks.lfh.count + r.blocks.vs.count;
    if walked > 0 {
        return None;
    }
    let why = facts
        .unread
        .clone()
        .unwrap_or_else(|| "neither the tag tables nor any pool block could be read".into());
    Some(if r.symbols.source == SymbolSource::None {
        not_analyzable(format!(
            "{why} (the kernel's symbols, through --symbol-path, --isf-dir or --symbols, may let it be read)"
        ))
    } else {
        not_analyzable(why)
    })
}

/// Reasons every verdict carries: a pool bug check, pools near exhaustion.
fn base_reasons(r: &AnalysisReport) -> Vec<String> {
    let mut out = Vec::new();
    if r.bugcheck.pool_related {
        out.push(format!(
            "the bugcheck {} ({}) is about pool",
            r.bugcheck.code,
            r.bugcheck.name.as_deref().unwrap_or("unknown name")
        ));
    }
    for g in r.pools.iter().filter(|g| g.near_exhaustion) {
        out.push(format!(
            "{} pool is near exhaustion: {} in use of {} ({})",
            g.pool.as_str(),
            human(g.in_use),
            g.max.map_or("?".into(), human),
            g.used_fraction.map_or("?".into(), pct)
        ));
    }
    out
}

/// Downgrades every driver or quota verdict takes, with their reasons.
fn common_downgrades(c: &Ctx, confidence: &mut Confidence, ev: &mut Vec<String>) {
    if c.r.symbols.matches_kernel == Some(false) {
        *confidence = lower(*confidence);
        ev.push("the kernel symbols used do not match the dump's kernel".into());
    }
    if c.r.symbols.source == SymbolSource::None && (!c.r.errors.is_empty() || c.facts.needs_symbols)
    {
        *confidence = lower(*confidence);
        ev.push(
            "without the kernel's symbols part of the pool was not read (see warnings): the figures can be short"
                .into(),
        );
    }
    if c.facts.figures_from_blocks {
        *confidence = lower(*confidence);
        ev.push("the tag tables could not be read: the figures come from the block walk".into());
    }
    if c.r.blocks.missing_pool_pages > 0 {
        *confidence = lower(*confidence);
        ev.push(format!(
            "{} pool pages are not in the walk (paged out or not in the dump): their blocks are missing from the block figures and from provenance",
            c.r.blocks.missing_pool_pages
        ));
    }
    if let Some(t) = &c.r.dump.truncated {
        ev.push(format!(
            "the dump file is cut short: it holds {} of the {} pages its header lists{}",
            t.pages_in_file,
            t.pages_listed,
            if c.r.blocks.missing_pool_pages == 0 {
                "; no pool page the walks reached was past its end"
            } else {
                ""
            }
        ));
    }
    if let Some((counted, found)) = c.facts.walk_short {
        *confidence = lower(*confidence);
        ev.push(format!(
            "the tag tables count {counted} outstanding allocations but the block walk found {found} allocated blocks: part of the pool could not be walked"
        ));
    }
}

/// Where the crash itself happened, for verdicts that cannot name a pool user.
fn faulting_reason(r: &AnalysisReport) -> Option<String> {
    r.bugcheck.faulting.as_ref().map(|at| {
        format!(
            "the crash ({}) is about the instruction at {at}",
            r.bugcheck.name.as_deref().unwrap_or("unknown bugcheck")
        )
    })
}

fn block_reason(t: &TagReport) -> Option<String> {
    let b = t.blocks.as_ref()?;
    let mut parts = Vec::new();
    for (name, cb) in [
        ("classic", b.classic),
        ("big", b.big),
        ("LFH", b.lfh),
        ("VS", b.vs),
    ] {
        if cb.count > 0 {
            parts.push(format!("{} {name}", cb.count));
        }
    }
    Some(format!(
        "the block walk found {} allocated '{}' blocks ({}): {}",
        b.count,
        t.tag,
        human(b.bytes),
        parts.join(", ")
    ))
}

/// "812 bytes", "351 KiB", "5.1 MiB".
pub fn human(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes < KIB {
        format!("{bytes} bytes")
    } else if bytes < 10 * MIB {
        if bytes >= MIB {
            format!("{:.1} MiB", bytes as f64 / MIB as f64)
        } else {
            format!("{} KiB", (bytes + KIB / 2) / KIB)
        }
    } else {
        format!("{} MiB", (bytes + MIB / 2) / MIB)
    }
}

fn pct(f: f64) -> String {
    let p = f * 100.0;
    if p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{}%", p.round() as u64)
    }
}

fn lower(c: Confidence) -> Confidence {
    match c {
        Confidence::High => Confidence::Medium,
        _ => Confidence::Low,
    }
}

fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
