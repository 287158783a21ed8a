//! The verdict: one answer to "which driver is eating which pool", decided by a fixed,
//! documented rule over the report's own figures (tag tables, block walk, code evidence,
//! quota), never by scenario names. The same rule is written for users in docs/json.md
//! ("verdict").
//!
//! Definitions:
//! - A pool's *in use* is the `!vm` figure (`pools[].in_use`); without it, the sum of the tags'
//!   outstanding bytes in that pool.
//! - A *Windows module* is the kernel image, hal.dll, or a binary the built-in tag table names
//!   (ntfs.sys, fltmgr.sys, ...). A *Windows tag* is one the built-in table (or a pooltag-file
//!   line naming nt or hal) gives to Windows, or one only Windows modules' code allocates with.
//!   A Windows tag never makes a third-party driver the leaker: Windows allocates it on behalf
//!   of many callers.
//! - A tag's *owners* are the non-Windows modules whose own code passes it to an allocator
//!   (`driver-code-allocation`), or for "None" calls ExAllocatePool
//!   (`driver-calls-untagged-allocator`); failing those, a loaded module a pooltag-file line
//!   names (weaker evidence).
//!
//! Rule, in order:
//! 1. No tag figures at all (no tag tables and no blocks, e.g. a triage dump) ->
//!    `not-analyzable`.
//! 2. Driver candidate: rank the non-Windows drivers by the outstanding bytes of the owned tags
//!    in their row; take the first, and its largest owned tag T. The candidate's tags are its
//!    tags with the same owners as T. It is *significant* when its bytes in T's main pool are
//!    at least [`SIGNIFICANT_SHARE`] of that pool in use, or that pool is near exhaustion and T
//!    is its largest tag.
//! 3. Quota candidate: the process charged the most quota (ProcessBilled). It is *significant*
//!    when it holds at least [`QUOTA_DOMINANCE`] of all charged bytes and at least
//!    [`SIGNIFICANT_SHARE`] of the pool its charges are in.
//! 4. A significant quota candidate wins when there is no significant driver candidate, when
//!    its largest charged tag is one of the driver candidate's tags (the same story, told with
//!    the process), or when it holds more bytes -> `process-quota` (process, tag, the tag's
//!    owners).
//! 5. Else a significant driver candidate gives `untagged-leak` (T is "None"), `shared-tag` (T
//!    has several owners: all are named; call-site pool types and sizes that separate them are
//!    given as reasons) or `driver-leak`.
//!
//!    5a (checked before 5). Session candidate: the non-Windows driver whose owned tags hold
//!    the most of session pool (the session tag tables; session pool in use is the sum of
//!    every session tag's outstanding bytes, as no `!vm` figure is read for it). It is
//!    *significant* at [`SIGNIFICANT_SHARE`] of session pool, and wins unless a significant
//!    driver candidate holds at least as many bytes -> `driver-leak` (or `shared-tag` /
//!    `untagged-leak`) with `session: true`, `pool` the session pool's kind ("paged") and
//!    `share_of_pool` its share of session pool.
//!
//! 6. Else a pool near exhaustion ([`crate::report::analysis::near_exhaustion`]: WinDbg `!vm`'s
//!    thresholds, 80% nonpaged, 95% paged) whose largest
//!    tag has no owner (or is a Windows tag) -> `unattributed-tag`.
//! 7. Else `no-leak-found`, naming the largest owned tag (if any) and its share.
//!
//! Confidence: `high` when the share is at least [`HIGH_SHARE`] (or the pool is near
//! exhaustion) and the evidence is the driver's own code; `medium` from [`SIGNIFICANT_SHARE`];
//! one step lower (never below `low`) for each of: only a pooltag file ties the tag to the
//! driver; the owners cannot be separated (shared, several ExAllocatePool callers); the block
//! walk is complete but found none of the bytes; the symbols do not match the kernel; there
//! are no kernel symbols and the engine says part of the pool was not read for want of them;
//! the figures come from the block walk because the tag tables were unreadable.

use crate::attribution::{builtin, Source};
use crate::report::analysis::*;
use crate::report::pool::SymbolSource;
use std::collections::BTreeSet;

/// A driver (or process) holding this share of a pool is reported as the likely leaker.
/// Ordinary drivers each hold well under a few percent of a pool.
pub const SIGNIFICANT_SHARE: f64 = 0.10;
/// From this share on, confidence is high.
pub const HIGH_SHARE: f64 = 0.25;
/// One process holding this share of all quota-charged bytes "dominates" the charges.
pub const QUOTA_DOMINANCE: f64 = 0.5;

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
        reasons: vec![reason],
    }
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

/// The report's view used by the rule.
struct Ctx<'a> {
    r: &'a AnalysisReport,
    facts: &'a Facts,
    windows_modules: BTreeSet<String>,
}

impl<'a> Ctx<'a> {
    fn new(r: &'a AnalysisReport, facts: &'a Facts) -> Self {
        let mut windows_modules: BTreeSet<String> = ["nt", "hal.dll", "<any>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (_, b, _) in builtin::BUILT_IN {
            windows_modules.insert(b.to_ascii_lowercase());
        }
        if let Some(kb) = r.dump.kernel_base {
            for m in r.modules.iter().filter(|m| m.base == kb) {
                windows_modules.insert(m.name.to_ascii_lowercase());
            }
        }
        for m in r.modules.iter().filter(|m| m.windows.is_some()) {
            windows_modules.insert(m.name.to_ascii_lowercase());
        }
        Ctx {
            r,
            facts,
            windows_modules,
        }
    }

    fn is_windows_module(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        n == "<any>" || n.starts_with("nt!") || self.windows_modules.contains(&n)
    }

    fn in_use(&self, pool: PoolName) -> Option<u64> {
        match self.r.pools.iter().find(|p| p.pool == pool) {
            Some(g) if g.in_use > 0 => Some(g.in_use),
            _ => {
                let sum: u64 = self.r.tags.iter().map(|t| bytes_in(t, pool)).sum();
                (sum > 0).then_some(sum)
            }
        }
    }

    fn gauge(&self, pool: PoolName) -> Option<&PoolGauge> {
        self.r.pools.iter().find(|p| p.pool == pool)
    }

    fn near(&self, pool: PoolName) -> bool {
        self.gauge(pool).is_some_and(|g| g.near_exhaustion)
    }

    /// Windows gives the tag to itself (built-in table, or a pooltag line naming nt/hal), or
    /// only Windows modules' code allocates with it.
    fn windows_tag(&self, t: &TagReport) -> bool {
        let named = t.owners.iter().any(|o| {
            matches!(o.source, Source::BuiltIn | Source::PoolTagFile)
                && o.module
                    .as_deref()
                    .is_some_and(|m| m != "<any>" && self.is_windows_module(m))
                && (o.source == Source::BuiltIn || is_nt_or_hal(o.module.as_deref().unwrap_or("")))
        });
        let code: Vec<&str> = t
            .owners
            .iter()
            .filter(|o| is_code(o.source))
            .filter_map(|o| o.module.as_deref())
            .collect();
        named || (!code.is_empty() && code.iter().all(|m| self.is_windows_module(m)))
    }

    /// The tag's non-Windows owners and whether the evidence is their code.
    fn owners(&self, t: &TagReport) -> (Vec<String>, bool) {
        if self.windows_tag(t) {
            return (Vec::new(), false);
        }
        let mut code: Vec<String> = t
            .owners
            .iter()
            .filter(|o| {
                is_code(o.source)
                    && (t.tag != "None" || o.source == Source::DriverCallsUntaggedAllocator)
            })
            .filter_map(|o| o.module.clone())
            .filter(|m| !self.is_windows_module(m))
            .collect();
        code.sort();
        code.dedup();
        if !code.is_empty() {
            return (code, true);
        }
        let mut named: Vec<String> = t
            .owners
            .iter()
            .filter(|o| o.source == Source::PoolTagFile)
            .filter_map(|o| o.module.clone())
            .filter(|m| !self.is_windows_module(m))
            .filter_map(|m| {
                self.r
                    .drivers
                    .iter()
                    .find(|d| d.module.eq_ignore_ascii_case(&m))
                    .map(|d| d.module.clone())
            })
            .collect();
        named.sort();
        named.dedup();
        (named, false)
    }

    fn tag(&self, name: &str) -> Option<&TagReport> {
        self.r.tags.iter().find(|t| t.tag == name)
    }

    /// The largest tag of a pool.
    fn top_tag(&self, pool: PoolName) -> Option<&TagReport> {
        self.r
            .tags
            .iter()
            .filter(|t| bytes_in(t, pool) > 0)
            .max_by(|a, b| {
                bytes_in(a, pool)
                    .cmp(&bytes_in(b, pool))
                    .then(b.tag.cmp(&a.tag))
            })
    }
}

fn is_nt_or_hal(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m == "nt"
        || m.starts_with("nt!")
        || m.starts_with("ntoskrnl")
        || m.starts_with("ntkrnl")
        || m.starts_with("hal")
}

fn is_code(s: Source) -> bool {
    matches!(
        s,
        Source::DriverCodeAllocation | Source::DriverCallsUntaggedAllocator
    )
}

fn bytes_in(t: &TagReport, pool: PoolName) -> u64 {
    match pool {
        PoolName::Paged => t.paged_bytes,
        PoolName::Nonpaged => t.nonpaged_bytes,
    }
}

fn total(t: &TagReport) -> u64 {
    t.paged_bytes.saturating_add(t.nonpaged_bytes)
}

fn main_pool(paged: u64, nonpaged: u64) -> PoolName {
    if nonpaged > paged {
        PoolName::Nonpaged
    } else {
        PoolName::Paged
    }
}

/// The driver candidate of rule 2.
struct DriverCandidate<'a> {
    driver: &'a DriverReport,
    owners: Vec<String>,
    code_evidence: bool,
    tags: Vec<&'a TagReport>,
    main: &'a TagReport,
    pool: PoolName,
    bytes: u64,
    pool_bytes: u64,
    share: Option<f64>,
    significant: bool,
}

fn driver_candidate<'a>(c: &'a Ctx<'a>) -> Option<DriverCandidate<'a>> {
    let mut best: Option<(u64, &DriverReport)> = None;
    for d in
        c.r.drivers
            .iter()
            .filter(|d| !c.is_windows_module(&d.module))
    {
        let owned: u64 = d
            .tags
            .iter()
            .filter(|dt| !dt.session)
            .filter_map(|dt| c.tag(&dt.tag))
            .filter(|t| c.owners(t).0.contains(&d.module))
            .map(total)
            .sum();
        if owned > 0
            && !best.is_some_and(|(b, bd)| owned < b || (owned == b && d.module >= bd.module))
        {
            best = Some((owned, d));
        }
    }
    let (_, driver) = best?;
    let owned: Vec<&TagReport> = driver
        .tags
        .iter()
        .filter(|dt| !dt.session)
        .filter_map(|dt| c.tag(&dt.tag))
        .filter(|t| c.owners(t).0.contains(&driver.module))
        .collect();
    let main = *owned
        .iter()
        .max_by(|a, b| total(a).cmp(&total(b)).then(b.tag.cmp(&a.tag)))?;
    let (owners, code_evidence) = c.owners(main);
    let tags: Vec<&TagReport> = owned
        .iter()
        .copied()
        .filter(|t| c.owners(t).0 == owners)
        .collect();
    let bytes: u64 = tags.iter().map(|t| total(t)).sum();
    let pool = main_pool(main.paged_bytes, main.nonpaged_bytes);
    let pool_bytes: u64 = tags.iter().map(|t| bytes_in(t, pool)).sum();
    let share = c.in_use(pool).map(|u| pool_bytes as f64 / u as f64);
    let top_of_pool = c.top_tag(pool).is_some_and(|t| t.tag == main.tag);
    let significant =
        share.is_some_and(|s| s >= SIGNIFICANT_SHARE) || (c.near(pool) && top_of_pool);
    Some(DriverCandidate {
        driver,
        owners,
        code_evidence,
        tags,
        main,
        pool,
        bytes,
        pool_bytes,
        share,
        significant,
    })
}

/// The session candidate of rule 5a: the driver owning the most session pool.
struct SessionCandidate<'a> {
    driver: &'a DriverReport,
    owners: Vec<String>,
    code_evidence: bool,
    tags: Vec<&'a TagReport>,
    main: &'a TagReport,
    pool: PoolName,
    bytes: u64,
    /// Session pool in use: every session tag's outstanding bytes.
    in_use: u64,
    share: f64,
    significant: bool,
}

fn session_candidate<'a>(c: &'a Ctx<'a>) -> Option<SessionCandidate<'a>> {
    let all = c.r.session_tags.as_ref()?;
    let in_use = all.iter().fold(0u64, |a, t| a.saturating_add(total(t)));
    if in_use == 0 {
        return None;
    }
    let mut best: Option<(u64, &DriverReport, Vec<&TagReport>)> = None;
    for d in
        c.r.drivers
            .iter()
            .filter(|d| !c.is_windows_module(&d.module))
    {
        let owned: Vec<&TagReport> = d
            .tags
            .iter()
            .filter(|dt| dt.session)
            .filter_map(|dt| all.iter().find(|t| t.tag == dt.tag))
            .filter(|t| c.owners(t).0.contains(&d.module))
            .collect();
        let bytes = owned.iter().fold(0u64, |a, t| a.saturating_add(total(t)));
        if bytes > 0
            && !best
                .as_ref()
                .is_some_and(|(b, bd, _)| bytes < *b || (bytes == *b && d.module >= bd.module))
        {
            best = Some((bytes, d, owned));
        }
    }
    let (_, driver, owned) = best?;
    let main = *owned
        .iter()
        .max_by(|a, b| total(a).cmp(&total(b)).then(b.tag.cmp(&a.tag)))?;
    let (owners, code_evidence) = c.owners(main);
    let tags: Vec<&TagReport> = owned
        .iter()
        .copied()
        .filter(|t| c.owners(t).0 == owners)
        .collect();
    let bytes = tags.iter().fold(0u64, |a, t| a.saturating_add(total(t)));
    let share = bytes as f64 / in_use as f64;
    Some(SessionCandidate {
        driver,
        owners,
        code_evidence,
        tags,
        main,
        pool: main_pool(main.paged_bytes, main.nonpaged_bytes),
        bytes,
        in_use,
        share,
        significant: share >= SIGNIFICANT_SHARE,
    })
}

/// The quota candidate of rule 3.
struct QuotaCandidate<'a> {
    process: &'a QuotaProcess,
    /// Tags charged to it, biggest first: (tag, bytes).
    tags: Vec<(&'a TagReport, u64)>,
    pool: PoolName,
    share: Option<f64>,
    dominance: f64,
    significant: bool,
}

fn quota_candidate<'a>(c: &'a Ctx<'a>) -> Option<QuotaCandidate<'a>> {
    let q = c.r.quota.as_ref()?;
    let process = q
        .processes
        .iter()
        .max_by(|a, b| a.bytes.cmp(&b.bytes).then(b.eprocess.cmp(&a.eprocess)))?;
    let charged: u64 = q.processes.iter().map(|p| p.bytes).sum();
    if process.bytes == 0 || charged == 0 {
        return None;
    }
    let mut tags: Vec<(&TagReport, u64)> =
        c.r.tags
            .iter()
            .filter_map(|t| {
                let b = t.blocks.as_ref()?;
                let share = b
                    .quota_processes
                    .iter()
                    .find(|s| s.eprocess == process.eprocess)?;
                Some((t, share.bytes))
            })
            .collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.tag.cmp(&b.0.tag)));
    let pool = tags
        .first()
        .and_then(|(t, _)| t.blocks.as_ref())
        .map_or(PoolName::Paged, |b| {
            main_pool(b.paged_bytes, b.nonpaged_bytes)
        });
    let share = c.in_use(pool).map(|u| process.bytes as f64 / u as f64);
    let dominance = process.bytes as f64 / charged as f64;
    let significant = dominance >= QUOTA_DOMINANCE && share.is_some_and(|s| s >= SIGNIFICANT_SHARE);
    Some(QuotaCandidate {
        process,
        tags,
        pool,
        share,
        dominance,
        significant,
    })
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
}

/// The verdict for a report whose other fields are filled in.
pub fn decide(r: &AnalysisReport, facts: &Facts) -> Verdict {
    let c = Ctx::new(r, facts);
    if r.tags.is_empty() {
        if r.dump.format == "triage" {
            let mut v = not_analyzable(
                "it is a triage (small memory) dump, which holds neither the pool tag tables nor pool pages".into(),
            );
            v.reasons.extend(faulting_reason(r));
            return v;
        }
        let walked =
            r.blocks.classic.count + r.blocks.big.count + r.blocks.lfh.count + r.blocks.vs.count;
        if walked == 0 {
            let why = facts.unread.clone().unwrap_or_else(|| {
                "neither the tag tables nor any pool block could be read".into()
            });
            if r.symbols.source == SymbolSource::None {
                return not_analyzable(format!(
                    "{why} (the kernel's symbols, through --symbol-path, --isf-dir or --symbols, may let it be read)"
                ));
            }
            return not_analyzable(why);
        }
    }
    let mut base_reasons = Vec::new();
    if r.bugcheck.pool_related {
        base_reasons.push(format!(
            "the bugcheck {} ({}) is about pool",
            r.bugcheck.code,
            r.bugcheck.name.as_deref().unwrap_or("unknown name")
        ));
    }
    for g in r.pools.iter().filter(|g| g.near_exhaustion) {
        base_reasons.push(format!(
            "{} pool is near exhaustion: {} in use of {} ({})",
            g.pool.as_str(),
            human(g.in_use),
            g.max.map_or("?".into(), human),
            g.used_fraction.map_or("?".into(), pct)
        ));
    }
    let dc = driver_candidate(&c);
    let qc = quota_candidate(&c);

    if let Some(q) = qc.as_ref().filter(|q| q.significant) {
        let same_story = dc.as_ref().is_some_and(|d| {
            q.tags
                .first()
                .is_some_and(|(t, _)| d.tags.iter().any(|dt| dt.tag == t.tag))
        });
        let wins = match dc.as_ref().filter(|d| d.significant) {
            None => true,
            Some(d) => same_story || q.process.bytes > d.bytes,
        };
        if wins {
            return process_quota(&c, q, base_reasons);
        }
    }
    // Rule 5a: a driver dominating session pool, unless a system-pool leak is larger.
    if let Some(s) = session_candidate(&c).filter(|s| s.significant) {
        if !dc
            .as_ref()
            .is_some_and(|d| d.significant && d.bytes >= s.bytes)
        {
            return session_verdict(&c, &s, base_reasons);
        }
    }
    if let Some(d) = dc.as_ref().filter(|d| d.significant) {
        return driver_verdict(&c, d, base_reasons);
    }
    for pool in [PoolName::Nonpaged, PoolName::Paged] {
        if !c.near(pool) {
            continue;
        }
        if let Some(t) = c.top_tag(pool) {
            if c.owners(t).0.is_empty() {
                return unattributed(&c, t, pool, base_reasons);
            }
        }
    }
    no_leak(&c, dc.as_ref(), qc.as_ref(), base_reasons)
}

fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn sites_text(d: &DriverReport, tag: &str, max: usize) -> (usize, String) {
    let sites: Vec<&CallSite> = d.call_sites.iter().filter(|s| s.tag == tag).collect();
    let shown: Vec<String> = sites
        .iter()
        .take(max)
        .map(|s| s.symbol.clone().unwrap_or_else(|| s.offset.clone()))
        .collect();
    let more = if sites.len() > max {
        format!(", and {} more", sites.len() - max)
    } else {
        String::new()
    };
    (sites.len(), format!("{}{more}", shown.join(", ")))
}

fn share_text(share: Option<f64>, pool: PoolName) -> String {
    match share {
        Some(s) => format!(" ({} of {} pool in use)", pct(s), pool.as_str()),
        None => String::new(),
    }
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

/// How the owners' call sites line up with the pools (and block sizes) holding the tag's
/// bytes: a reason line per owner whose sites say something, and the owners whose sites
/// allocate from `pool`.
fn separation(
    c: &Ctx,
    t: &TagReport,
    owners: &[String],
    pool: PoolName,
) -> (Vec<String>, Vec<String>) {
    let mut reasons = Vec::new();
    let mut matching = Vec::new();
    for o in owners {
        let Some(d) = c.r.drivers.iter().find(|d| &d.module == o) else {
            continue;
        };
        let sites: Vec<&CallSite> = d.call_sites.iter().filter(|s| s.tag == t.tag).collect();
        let pools: BTreeSet<PoolName> = sites.iter().filter_map(|s| s.pool_type).collect();
        let sizes: BTreeSet<u64> = sites.iter().filter_map(|s| s.size).collect();
        if pools.is_empty() {
            continue;
        }
        if pools.contains(&pool) {
            matching.push(o.clone());
        }
        let matched_blocks: u64 = t.blocks.as_ref().map_or(0, |b| {
            b.sizes
                .iter()
                .filter(|sc| {
                    sizes.iter().any(|&s| {
                        sc.size >= s && sc.size <= s.saturating_add(0x40)
                            || sc.size == s.div_ceil(0x1000) * 0x1000
                    })
                })
                .map(|sc| sc.count)
                .sum()
        });
        let pools_s: Vec<&str> = pools.iter().map(|p| p.as_str()).collect();
        let sizes_s: Vec<String> = sizes.iter().map(|s| format!("{s:#x}")).collect();
        let mut line = format!(
            "{o}'s call sites allocate '{}' from {} pool{}",
            t.tag,
            pools_s.join(" and "),
            if sizes_s.is_empty() {
                String::new()
            } else {
                format!(" with size {}", sizes_s.join(", "))
            }
        );
        if matched_blocks > 0 {
            line.push_str(&format!(
                "; {matched_blocks} walked blocks have a matching size"
            ));
        }
        reasons.push(line);
    }
    (reasons, matching)
}

/// Rule 5a's verdict: session pool, named as such (`session` true).
fn session_verdict(c: &Ctx, s: &SessionCandidate, mut reasons: Vec<String>) -> Verdict {
    let t = s.main;
    let mut confidence = if s.share >= HIGH_SHARE {
        Confidence::High
    } else {
        Confidence::Medium
    };
    if !s.code_evidence {
        confidence = lower(confidence);
    }
    if s.owners.len() > 1 {
        confidence = lower(confidence);
    }
    if c.r.symbols.matches_kernel == Some(false) {
        confidence = lower(confidence);
    }
    let kind = if s.owners.len() > 1 {
        VerdictKind::SharedTag
    } else if t.tag == "None" {
        VerdictKind::UntaggedLeak
    } else {
        VerdictKind::DriverLeak
    };
    let pool_s = s.pool.as_str();
    let tag_names: Vec<String> = s.tags.iter().map(|t| t.tag.clone()).collect();
    let quoted: Vec<String> = tag_names.iter().map(|t| format!("'{t}'")).collect();
    let who = list(&s.owners);
    let (n, at) = sites_text(s.driver, &t.tag, 3);
    let sentence = if s.owners.len() == 1 {
        format!(
            "{who} is the likely leaker: {} of session {pool_s} pool is tagged {} ({} of session pool in use), and {who}'s own code allocates with that tag{}.",
            human(s.bytes),
            list(&quoted),
            pct(s.share),
            if n > 0 { format!(" (at {at})") } else { String::new() }
        )
    } else {
        format!(
            "{} of session {pool_s} pool is tagged {} ({} of session pool in use); the drivers whose code allocates with it are {who}.",
            human(s.bytes),
            list(&quoted),
            pct(s.share)
        )
    };
    let sessions = c.r.sessions.len().max(1);
    reasons.push(format!(
        "session pool is counted apart from system pool, in the session tag tables (ExpSessionPoolTrackTable and MM_SESSION_SPACE.PoolTrackTableExpansion): {} in use in {sessions} session{}",
        human(s.in_use),
        if sessions == 1 { "" } else { "s" }
    ));
    if n > 0 {
        reasons.push(format!(
            "{}'s code passes '{}' to an allocator ({n} call sites: {at})",
            s.driver.module, t.tag
        ));
    } else if !s.code_evidence {
        reasons.push(format!(
            "only a pool tag file ties '{}' to {}",
            t.tag,
            list(&s.owners)
        ));
    }
    match block_reason(t) {
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
        tags: tag_names,
        bytes: s.bytes,
        share_of_pool: Some(s.share),
        confidence,
        process: None,
        reasons,
    }
}

fn driver_verdict(c: &Ctx, d: &DriverCandidate, mut reasons: Vec<String>) -> Verdict {
    let t = d.main;
    let untagged = t.tag == "None";
    let mut confidence = if d.share.is_some_and(|s| s >= HIGH_SHARE) || c.near(d.pool) {
        Confidence::High
    } else {
        Confidence::Medium
    };
    let mut ev = Vec::new();
    let mut drivers = d.owners.clone();
    let tag_names: Vec<String> = d.tags.iter().map(|t| t.tag.clone()).collect();
    let kind;
    let sentence;
    let pool_s = d.pool.as_str();
    if untagged {
        kind = VerdictKind::UntaggedLeak;
        let (sep, matching) = separation(c, t, &d.owners, d.pool);
        if d.owners.len() > 1 {
            if matching.len() == 1 {
                drivers = matching.clone();
                ev.push(format!(
                    "{} loaded drivers call ExAllocatePool ({}); only {}'s calls ask for {pool_s} pool, where the bytes are",
                    d.owners.len(),
                    list(&d.owners),
                    matching[0]
                ));
            } else {
                ev.push(format!(
                    "{} loaded drivers call ExAllocatePool ({}): the untagged bytes cannot be split between them",
                    d.owners.len(),
                    list(&d.owners)
                ));
            }
            confidence = lower(confidence);
        }
        ev.extend(sep);
        let who = drivers.first().cloned().unwrap_or_default();
        let (n, at) = sites_text(d.driver, "None", 3);
        sentence = if drivers.len() == 1 {
            format!(
                "{who} is the likely leaker: {} of {pool_s} pool is untagged ('None', from ExAllocatePool){} and {who} is the loaded driver that calls ExAllocatePool{}.",
                human(d.pool_bytes),
                share_text(d.share, d.pool),
                if n > 0 { format!(" (at {at})") } else { String::new() }
            )
        } else {
            format!(
                "{} of {pool_s} pool is untagged ('None', from ExAllocatePool){}; the drivers that call ExAllocatePool are {}.",
                human(d.pool_bytes),
                share_text(d.share, d.pool),
                list(&drivers)
            )
        };
        if n > 0 {
            ev.insert(
                0,
                format!(
                    "{} calls ExAllocatePool, which tags its blocks 'None' ({n} call sites: {at})",
                    d.driver.module
                ),
            );
        } else {
            ev.insert(
                0,
                format!(
                    "{} imports and calls ExAllocatePool, which tags its blocks 'None'",
                    d.driver.module
                ),
            );
        }
    } else if d.owners.len() > 1 {
        kind = VerdictKind::SharedTag;
        confidence = lower(confidence);
        let (sep, matching) = separation(c, t, &d.owners, d.pool);
        ev.push(format!(
            "the tag '{}' is an allocation argument in the code of {} drivers: {}",
            t.tag,
            d.owners.len(),
            list(&d.owners)
        ));
        ev.extend(sep);
        if matching.len() == 1 {
            ev.push(format!(
                "only {}'s call sites allocate from {pool_s} pool, which holds most of the bytes: it is the more likely leaker",
                matching[0]
            ));
        }
        sentence = format!(
            "Tag '{}' holds {} of {pool_s} pool{} and is allocated by {} drivers ({}): one of them is the likely leaker{}.",
            t.tag,
            human(d.pool_bytes),
            share_text(d.share, d.pool),
            d.owners.len(),
            list(&d.owners),
            if matching.len() == 1 {
                format!(", most likely {} (its call sites allocate {pool_s} pool)", matching[0])
            } else {
                String::new()
            }
        );
    } else {
        kind = VerdictKind::DriverLeak;
        let who = &d.driver.module;
        let (n, at) = sites_text(d.driver, &t.tag, 3);
        if d.code_evidence {
            ev.push(format!(
                "the tag '{}' is an allocation argument in {who}'s code ({n} call site{}{})",
                t.tag,
                if n == 1 { "" } else { "s" },
                if n > 0 {
                    format!(": {at}")
                } else {
                    String::new()
                }
            ));
            ev.push(format!(
                "no other loaded module's code allocates with '{}', and it is not a Windows tag",
                t.tag
            ));
        } else {
            confidence = lower(confidence);
            ev.push(format!(
                "only the pooltag file ties '{}' to {who}: its code does not hold the tag as an allocation argument",
                t.tag
            ));
        }
        let tags_s = if d.tags.len() == 1 {
            format!("tag '{}'", t.tag)
        } else {
            format!(
                "tags {}",
                d.tags
                    .iter()
                    .map(|t| format!("'{}'", t.tag))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        sentence = format!(
            "{who} is the likely leaker: {} of {pool_s} pool under {tags_s}{}{}.",
            human(d.pool_bytes),
            share_text(d.share, d.pool),
            if n > 0 {
                format!(", allocated at {at}")
            } else {
                String::new()
            }
        );
    }
    ev.push(format!(
        "'{}' holds {} of paged and {} of nonpaged pool in {} outstanding allocations (tag tables)",
        t.tag,
        human(t.paged_bytes),
        human(t.nonpaged_bytes),
        t.paged_outstanding + t.nonpaged_outstanding
    ));
    match block_reason(t) {
        Some(b) => ev.push(b),
        None if c.r.blocks.complete => {
            confidence = lower(confidence);
            ev.push(format!(
                "the block walk is complete but found no '{}' block",
                t.tag
            ));
        }
        None => {}
    }
    common_downgrades(c, &mut confidence, &mut ev);
    ev.append(&mut reasons);
    Verdict {
        kind,
        sentence,
        pool: Some(d.pool),
        session: false,
        drivers,
        tags: tag_names,
        bytes: d.bytes,
        share_of_pool: d.share,
        confidence,
        process: None,
        reasons: ev,
    }
}

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
}

fn process_quota(c: &Ctx, q: &QuotaCandidate, mut reasons: Vec<String>) -> Verdict {
    let p = q.process;
    let name = p
        .name
        .clone()
        .unwrap_or_else(|| format!("the process at {}", p.eprocess));
    let pid = p.pid.map(|v| format!(" (pid {v})")).unwrap_or_default();
    let main = q.tags.first().map(|(t, _)| *t);
    let (drivers, code) = main.map(|t| c.owners(t)).unwrap_or_default();
    let mut confidence = if q.share.is_some_and(|s| s >= HIGH_SHARE) && code {
        Confidence::High
    } else {
        Confidence::Medium
    };
    let mut ev = vec![format!(
        "{name}{pid} is charged {} of pool quota in {} blocks: {} of all quota-charged bytes",
        human(p.bytes),
        p.blocks,
        pct(q.dominance)
    )];
    if let Some(t) = main {
        let charged = q.tags.first().map_or(0, |x| x.1);
        ev.push(format!("{} of it is tag '{}'", human(charged), t.tag));
        if drivers.is_empty() {
            ev.push(format!(
                "no loaded third-party driver's code allocates with '{}'",
                t.tag
            ));
        } else {
            let d = c.r.drivers.iter().find(|d| d.module == drivers[0]);
            let (n, at) = d
                .map(|d| sites_text(d, &t.tag, 3))
                .unwrap_or((0, String::new()));
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
    } else {
        confidence = lower(confidence);
    }
    common_downgrades(c, &mut confidence, &mut ev);
    ev.append(&mut reasons);
    let tag_s = main
        .map(|t| format!(", mostly tag '{}'", t.tag))
        .unwrap_or_default();
    let by = if drivers.is_empty() {
        String::new()
    } else {
        format!(" allocated by {}", list(&drivers))
    };
    Verdict {
        kind: VerdictKind::ProcessQuota,
        sentence: format!(
            "{name}{pid} is charged {} of {} pool quota{}{tag_s}{by}: the pool is being consumed on behalf of that process.",
            human(p.bytes),
            q.pool.as_str(),
            share_text(q.share, q.pool)
        ),
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
        reasons: ev,
    }
}

fn unattributed(c: &Ctx, t: &TagReport, pool: PoolName, mut reasons: Vec<String>) -> Verdict {
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
    ev.extend(block_reason(t));
    ev.append(&mut reasons);
    Verdict {
        kind: VerdictKind::UnattributedTag,
        sentence: format!(
            "{} pool{fill}; its largest user is tag '{}' with {}{}, which {}.",
            capitalize(pool.as_str()),
            t.tag,
            human(bytes),
            share_text(share, pool),
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
        reasons: ev,
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn no_leak(
    c: &Ctx,
    dc: Option<&DriverCandidate>,
    qc: Option<&QuotaCandidate>,
    mut reasons: Vec<String>,
) -> Verdict {
    let mut ev = Vec::new();
    let sentence = match dc {
        Some(d) => {
            ev.push(format!(
                "the largest driver-owned tag is '{}' ({}): {} of {} pool in use, under the {} threshold",
                d.main.tag,
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
                share_text(d.share, d.pool)
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
    ev.extend(faulting_reason(c.r));
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
        reasons: ev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::hex::Hex;

    fn report(
        tags: Vec<TagReport>,
        drivers: Vec<DriverReport>,
        pools: Vec<PoolGauge>,
    ) -> AnalysisReport {
        AnalysisReport {
            schema_version: 1,
            kind: "analysis".into(),
            generator: "test".into(),
            dump: AnalysisDump {
                format: "kernel-bitmap".into(),
                dump_type: 5,
                arch: "x64".into(),
                pae: false,
                build: 19041,
                processors: 2,
                system_time: None,
                file_size: 0,
                kernel_base: Some(Hex(0xfffff800_00000000)),
            },
            bugcheck: AnalysisBugcheck {
                code: Hex(0xe2),
                name: Some("MANUALLY_INITIATED_CRASH".into()),
                params: [Hex(0); 4],
                pool_related: false,
                faulting: None,
                name_source: None,
                description: None,
            },
            symbols: AnalysisSymbols {
                source: SymbolSource::Isf,
                path: None,
                guid: None,
                age: None,
                matches_kernel: Some(true),
            },
            verdict: not_analyzable("placeholder".into()),
            pools,
            drivers,
            tags,
            session_tags: None,
            sessions: Vec::new(),
            blocks: BlockTotals {
                complete: true,
                ..BlockTotals::default()
            },
            quota: None,
            modules: vec![AnalysisModule {
                name: "ntoskrnl.exe".into(),
                base: Hex(0xfffff800_00000000),
                size: 0x100000,
                timestamp: None,
                pdb: None,
                symbols: "not looked up".into(),
                windows: None,
            }],
            provenance: None,
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn owner(module: &str, source: Source) -> TagOwner {
        TagOwner {
            module: Some(module.into()),
            source,
            description: None,
        }
    }

    fn tag(name: &str, paged: u64, nonpaged: u64, owners: Vec<TagOwner>) -> TagReport {
        TagReport {
            tag: name.into(),
            paged_allocs: 10,
            paged_frees: 0,
            paged_bytes: paged,
            nonpaged_allocs: 10,
            nonpaged_frees: 0,
            nonpaged_bytes: nonpaged,
            paged_outstanding: if paged > 0 { 10 } else { 0 },
            nonpaged_outstanding: if nonpaged > 0 { 10 } else { 0 },
            owners,
            // The block walk agrees with the tag tables.
            blocks: Some(TagBlocks {
                count: 20,
                bytes: paged + nonpaged,
                paged_bytes: paged,
                nonpaged_bytes: nonpaged,
                ..TagBlocks::default()
            }),
        }
    }

    fn site(tag: &str, pool: Option<PoolName>, size: Option<u64>) -> CallSite {
        CallSite {
            address: Hex(0x1000),
            offset: "x+0x1000".into(),
            symbol: None,
            tag: tag.into(),
            kind: if tag == "None" {
                CallSiteKind::UntaggedAllocatorCall
            } else {
                CallSiteKind::TagArgument
            },
            pool_type: pool,
            size,
            callee: None,
        }
    }

    fn driver(
        module: &str,
        tags: &[(&str, u64, u64, Source)],
        sites: Vec<CallSite>,
    ) -> DriverReport {
        DriverReport {
            module: module.into(),
            base: None,
            size: None,
            path: None,
            paged_bytes: tags.iter().map(|t| t.1).sum(),
            nonpaged_bytes: tags.iter().map(|t| t.2).sum(),
            session_bytes: 0,
            bytes: tags.iter().map(|t| t.1 + t.2).sum(),
            allocations: 0,
            share_of_pool: None,
            tags: tags
                .iter()
                .map(|t| DriverTag {
                    tag: t.0.into(),
                    paged_bytes: t.1,
                    nonpaged_bytes: t.2,
                    allocations: 0,
                    evidence: t.3,
                    shared_with: Vec::new(),
                    session: false,
                })
                .collect(),
            call_sites: sites,
            call_sites_truncated: false,
            blocks: DriverBlocks::default(),
            provenance: None,
        }
    }

    fn gauge(pool: PoolName, in_use: u64, max: Option<u64>) -> PoolGauge {
        let used_fraction = max.map(|m| in_use as f64 / m as f64);
        PoolGauge {
            pool,
            in_use,
            max,
            commit: None,
            used_fraction,
            near_exhaustion: near_exhaustion(pool, in_use, max),
            source: "test".into(),
        }
    }

    const CODE: Source = Source::DriverCodeAllocation;

    #[test]
    fn empty_tables_are_not_analyzable_and_say_why() {
        let mut r = report(Vec::new(), Vec::new(), Vec::new());
        r.errors
            .push("tag tables: PoolTrackTable is unknown".into());
        let facts = Facts {
            unread: Some(r.errors[0].clone()),
            ..Facts::default()
        };
        let v = decide(&r, &facts);
        assert_eq!(v.kind, VerdictKind::NotAnalyzable);
        assert!(v.reasons[0].contains("PoolTrackTable"), "{:?}", v.reasons);
        r.dump.format = "triage".into();
        let v = decide(&r, &facts);
        assert_eq!(v.kind, VerdictKind::NotAnalyzable);
        assert!(v.sentence.contains("triage"), "{}", v.sentence);
        assert!(v.drivers.is_empty() && v.bytes == 0);
    }

    #[test]
    fn tables_read_but_missing_blocks_and_no_owner_is_no_leak() {
        // Tag tables read but nothing owned: no-leak-found, never a made-up driver.
        let tags = vec![tag("Abcd", 500_000, 0, vec![])];
        let mut r = report(
            tags,
            Vec::new(),
            vec![gauge(PoolName::Paged, 1_000_000, None)],
        );
        r.blocks.complete = false;
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::NoLeakFound);
        assert_eq!(v.confidence, Confidence::Low);
        assert!(v.drivers.is_empty());
    }

    #[test]
    fn a_third_party_tag_holding_a_big_share_is_a_driver_leak() {
        let tags = vec![
            tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)]),
            tag("Irp ", 0, 50_000, vec![owner("nt", Source::BuiltIn)]),
        ];
        let drivers = vec![driver(
            "leaky.sys",
            &[("Leak", 400_000, 0, CODE)],
            vec![site("Leak", Some(PoolName::Paged), Some(0x7f0))],
        )];
        let r = report(
            tags,
            drivers,
            vec![
                gauge(PoolName::Paged, 1_000_000, None),
                gauge(PoolName::Nonpaged, 100_000, None),
            ],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::DriverLeak);
        assert_eq!(v.drivers, ["leaky.sys"]);
        assert_eq!(v.tags, ["Leak"]);
        assert_eq!((v.bytes, v.pool), (400_000, Some(PoolName::Paged)));
        assert_eq!(v.share_of_pool, Some(0.4));
        assert_eq!(v.confidence, Confidence::High);
        assert!(
            v.sentence.starts_with("leaky.sys is the likely leaker"),
            "{}",
            v.sentence
        );
        assert!(v.sentence.contains("x+0x1000"), "{}", v.sentence);
    }

    #[test]
    fn below_the_threshold_nothing_stands_out() {
        let tags = vec![tag("Leak", 50_000, 0, vec![owner("leaky.sys", CODE)])];
        let drivers = vec![driver("leaky.sys", &[("Leak", 50_000, 0, CODE)], vec![])];
        let r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::NoLeakFound);
        assert!(v.sentence.contains("leaky.sys"), "{}", v.sentence);
        // Medium share: medium confidence.
        let tags = vec![tag("Leak", 150_000, 0, vec![owner("leaky.sys", CODE)])];
        let drivers = vec![driver("leaky.sys", &[("Leak", 150_000, 0, CODE)], vec![])];
        let r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
        let v = decide(&r, &Facts::default());
        assert_eq!(
            (v.kind, v.confidence),
            (VerdictKind::DriverLeak, Confidence::Medium)
        );
    }

    #[test]
    fn a_complete_walk_that_finds_none_of_the_bytes_lowers_confidence() {
        let mut t = tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)]);
        t.blocks = None;
        let drivers = vec![driver("leaky.sys", &[("Leak", 400_000, 0, CODE)], vec![])];
        let r = report(
            vec![t],
            drivers,
            vec![gauge(PoolName::Paged, 1_000_000, None)],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(
            (v.kind, v.confidence),
            (VerdictKind::DriverLeak, Confidence::Medium)
        );
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("found no 'Leak' block")),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn a_windows_tag_never_blames_a_third_party_driver() {
        // 'Irp ' is nt's (built-in table) even though vendor.sys's code also allocates it.
        let tags = vec![tag(
            "Irp ",
            0,
            900_000,
            vec![owner("vendor.sys", CODE), owner("nt", Source::BuiltIn)],
        )];
        let drivers = vec![driver("vendor.sys", &[("Irp ", 0, 900_000, CODE)], vec![])];
        let r = report(
            tags.clone(),
            drivers.clone(),
            vec![gauge(PoolName::Nonpaged, 1_000_000, None)],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::NoLeakFound);
        assert!(v.drivers.is_empty());
        // Near exhaustion: the Windows tag is named, no driver is.
        let r = report(
            tags,
            drivers,
            vec![gauge(PoolName::Nonpaged, 1_000_000, Some(1_050_000))],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::UnattributedTag);
        assert_eq!(
            (v.tags.clone(), v.drivers.len()),
            (vec!["Irp ".to_string()], 0)
        );
        assert_eq!(v.confidence, Confidence::Low);
    }

    #[test]
    fn nt_code_evidence_alone_makes_a_windows_tag() {
        let tags = vec![tag("Wxyz", 600_000, 0, vec![owner("ntoskrnl.exe", CODE)])];
        let drivers = vec![driver(
            "ntoskrnl.exe",
            &[("Wxyz", 600_000, 0, CODE)],
            vec![],
        )];
        let r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
        assert_eq!(decide(&r, &Facts::default()).kind, VerdictKind::NoLeakFound);
    }

    #[test]
    fn an_unowned_tag_filling_a_pool_is_unattributed() {
        let tags = vec![
            tag("Zzzz", 0, 900_000, vec![]),
            tag("Leak", 0, 20_000, vec![owner("a.sys", CODE)]),
        ];
        let drivers = vec![driver("a.sys", &[("Leak", 0, 20_000, CODE)], vec![])];
        let r = report(
            tags,
            drivers,
            vec![gauge(PoolName::Nonpaged, 950_000, Some(1_000_000))],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::UnattributedTag);
        assert_eq!(v.tags, ["Zzzz"]);
        assert_eq!(v.pool, Some(PoolName::Nonpaged));
        assert_eq!(v.confidence, Confidence::Medium);
    }

    #[test]
    fn shared_tags_name_every_owner_and_call_sites_separate_them() {
        let owners = vec![owner("a.sys", CODE), owner("b.sys", CODE)];
        let tags = vec![tag("Acme", 600_000, 100_000, owners)];
        let drivers = vec![
            driver(
                "a.sys",
                &[("Acme", 600_000, 100_000, CODE)],
                vec![site("Acme", Some(PoolName::Nonpaged), Some(0x200))],
            ),
            driver(
                "b.sys",
                &[("Acme", 600_000, 100_000, CODE)],
                vec![site("Acme", Some(PoolName::Paged), Some(0x600))],
            ),
        ];
        let r = report(
            tags,
            drivers,
            vec![
                gauge(PoolName::Paged, 1_000_000, None),
                gauge(PoolName::Nonpaged, 500_000, None),
            ],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::SharedTag);
        assert_eq!(v.drivers, ["a.sys", "b.sys"]);
        assert_eq!(v.bytes, 700_000);
        assert_eq!(v.confidence, Confidence::Medium);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("only b.sys's call sites allocate from paged pool")),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn untagged_bytes_go_to_the_exallocatepool_caller() {
        let none = vec![
            owner("u.sys", Source::DriverCallsUntaggedAllocator),
            owner("<any>", Source::BuiltIn),
        ];
        let tags = vec![tag("None", 0, 300_000, none)];
        let drivers = vec![driver(
            "u.sys",
            &[("None", 0, 300_000, Source::DriverCallsUntaggedAllocator)],
            vec![site("None", Some(PoolName::Nonpaged), Some(0x180))],
        )];
        let r = report(
            tags,
            drivers,
            vec![gauge(PoolName::Nonpaged, 500_000, None)],
        );
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::UntaggedLeak);
        assert_eq!(v.drivers, ["u.sys"]);
        assert_eq!(v.confidence, Confidence::High);
    }

    #[test]
    fn quota_dominated_by_one_process_names_the_process_and_the_driver() {
        let mut t = tag("QLek", 400_000, 0, vec![owner("q.sys", CODE)]);
        t.blocks = Some(TagBlocks {
            count: 50,
            bytes: 400_000,
            paged_bytes: 400_000,
            quota_bytes: 320_000,
            quota_processes: vec![QuotaShare {
                eprocess: Hex(0xe1),
                blocks: 40,
                bytes: 320_000,
            }],
            ..TagBlocks::default()
        });
        let drivers = vec![driver("q.sys", &[("QLek", 400_000, 0, CODE)], vec![])];
        let mut r = report(
            vec![t],
            drivers,
            vec![gauge(PoolName::Paged, 1_000_000, None)],
        );
        r.quota = Some(QuotaSummary {
            processes: vec![
                QuotaProcess {
                    pid: Some(3012),
                    name: Some("explorer.exe".into()),
                    eprocess: Hex(0xe1),
                    blocks: 40,
                    bytes: 320_000,
                },
                QuotaProcess {
                    pid: Some(4),
                    name: Some("System".into()),
                    eprocess: Hex(0xe2),
                    blocks: 1,
                    bytes: 1000,
                },
            ],
            uncharged_blocks: 0,
            uncharged_bytes: 0,
        });
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::ProcessQuota);
        assert_eq!(
            v.process.as_ref().and_then(|p| p.name.as_deref()),
            Some("explorer.exe")
        );
        assert_eq!(v.drivers, ["q.sys"]);
        assert_eq!(v.bytes, 320_000);
        // The same charges spread over several processes do not make a process verdict.
        if let Some(q) = r.quota.as_mut() {
            q.processes[1].bytes = 320_000;
            let mut third = q.processes[1].clone();
            third.eprocess = Hex(0xe3);
            q.processes.push(third);
        }
        assert_eq!(decide(&r, &Facts::default()).kind, VerdictKind::DriverLeak);
    }

    #[test]
    fn mismatched_symbols_and_pooltag_only_evidence_lower_confidence() {
        let tags = vec![tag(
            "Leak",
            400_000,
            0,
            vec![owner("leaky.sys", Source::PoolTagFile)],
        )];
        let drivers = vec![driver(
            "leaky.sys",
            &[("Leak", 400_000, 0, Source::PoolTagFile)],
            vec![],
        )];
        let mut r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
        r.symbols.matches_kernel = Some(false);
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::DriverLeak);
        assert_eq!(v.confidence, Confidence::Low);
    }

    #[test]
    fn figures_from_the_block_walk_alone_lower_confidence() {
        // Tag tables unreadable: the rows come from the block walk and the report warns so.
        let tags = vec![tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)])];
        let drivers = vec![driver("leaky.sys", &[("Leak", 400_000, 0, CODE)], vec![])];
        let mut r = report(tags, drivers, Vec::new());
        r.errors
            .push("tag tables: PoolTrackTable is unknown".into());
        r.warnings.push(
            "the tag tables could not be read: tag figures below come from the block walk (allocated blocks only)"
                .into(),
        );
        let facts = Facts {
            unread: Some(r.errors[0].clone()),
            figures_from_blocks: true,
            ..Facts::default()
        };
        let v = decide(&r, &facts);
        assert_eq!(v.kind, VerdictKind::DriverLeak);
        // No !vm figure: the share is of the tags' own sum in that pool.
        assert_eq!(v.share_of_pool, Some(1.0));
        assert_eq!(v.confidence, Confidence::Medium);
    }

    /// A display driver's tag holding most of session pool: named, with `session` set and the
    /// share of session pool; a larger system-pool leak still wins; session figures never feed
    /// the system-pool candidate.
    #[test]
    fn a_driver_dominating_session_pool_is_named_as_a_session_leak() {
        let system = vec![
            tag("Ntfx", 300_000, 0, vec![owner("ntfs.sys", Source::BuiltIn)]),
            tag("Irp ", 0, 200_000, vec![owner("nt", Source::BuiltIn)]),
        ];
        let mut disp = driver(
            "dispkmd.sys",
            &[],
            vec![site("DspK", Some(PoolName::Paged), Some(0x3f0))],
        );
        disp.session_bytes = 900_000;
        disp.bytes = 900_000;
        disp.tags.push(DriverTag {
            tag: "DspK".into(),
            paged_bytes: 900_000,
            nonpaged_bytes: 0,
            allocations: 900,
            evidence: CODE,
            shared_with: Vec::new(),
            session: true,
        });
        let mut r = report(
            system,
            vec![disp],
            vec![gauge(PoolName::Paged, 1_000_000, Some(1 << 30))],
        );
        r.session_tags = Some(vec![
            tag("DspK", 900_000, 0, vec![owner("dispkmd.sys", CODE)]),
            tag("Gh05", 100_000, 0, Vec::new()),
        ]);
        let v = decide(&r, &Facts::default());
        assert_eq!(v.kind, VerdictKind::DriverLeak, "{v:?}");
        assert!(v.session);
        assert_eq!(v.pool, Some(PoolName::Paged));
        assert_eq!(v.drivers, vec!["dispkmd.sys".to_string()]);
        assert_eq!(v.tags, vec!["DspK".to_string()]);
        assert_eq!(v.bytes, 900_000);
        // 900 000 of the session tags' 1 000 000 bytes.
        assert_eq!(v.share_of_pool, Some(0.9));
        assert_eq!(v.confidence, Confidence::High);
        assert!(v.sentence.contains("session paged pool"), "{}", v.sentence);

        // The same driver with a larger system-pool leak of another driver beside it.
        r.tags
            .push(tag("Leak", 2_000_000, 0, vec![owner("leaky.sys", CODE)]));
        r.drivers
            .push(driver("leaky.sys", &[("Leak", 2_000_000, 0, CODE)], vec![]));
        r.pools = vec![gauge(PoolName::Paged, 2_500_000, Some(1 << 30))];
        let v = decide(&r, &Facts::default());
        assert_eq!(
            (v.kind, v.session),
            (VerdictKind::DriverLeak, false),
            "{v:?}"
        );
        assert_eq!(v.drivers, vec!["leaky.sys".to_string()]);

        // Session pool spread thin (the driver holds under 10% of it): no session verdict.
        r.tags.pop();
        r.drivers.pop();
        if let Some(st) = r.session_tags.as_mut() {
            st[1].paged_bytes = 9_000_000;
        }
        let v = decide(&r, &Facts::default());
        assert!(!v.session, "{v:?}");
        assert_eq!(v.kind, VerdictKind::NoLeakFound, "{v:?}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(812), "812 bytes");
        assert_eq!(human(359_296), "351 KiB");
        assert_eq!(human(5_351_104), "5.1 MiB");
        assert_eq!(human(64 << 20), "64 MiB");
    }
}
