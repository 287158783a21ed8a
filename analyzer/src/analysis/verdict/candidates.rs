//! Who the verdict could be about: the third-party driver holding the most system pool, the
//! one holding the most session pool, the process charged the most quota; and whether the
//! pool each is in is under pressure.

use super::context::{main_pool, total, Ctx};
use super::{LEAK_SHARE_OF_MAXIMUM, QUOTA_DOMINANCE, SIGNIFICANT_SHARE};
use crate::attribution::Source;
use crate::report::analysis::*;

/// A driver and the rows of the drivers table it holds.
pub(super) struct DriverCandidate<'a> {
    pub driver: &'a DriverReport,
    /// Its rows, biggest first: its own tags, and its share of tags provenance split.
    pub rows: Vec<&'a DriverTag>,
    pub main: &'a DriverTag,
    /// The main tag's row in the tag tables.
    pub tag: Option<&'a TagReport>,
    /// The drivers the verdict names: this one, or every owner of a tag that could not be
    /// split between them.
    pub owners: Vec<String>,
    /// Its own code (or its blocks) ties it to the tag, not only a pooltag-file line.
    pub code_evidence: bool,
    pub pool: PoolName,
    /// Bytes of its rows in `pool`, and in both pools.
    pub pool_bytes: u64,
    pub bytes: u64,
    pub share: Option<f64>,
    pub share_of_max: Option<f64>,
    pub significant: bool,
    pub pressure: Option<Pressure>,
}

impl DriverCandidate<'_> {
    /// The main tag's figures are its attributed share of a split tag.
    pub fn split(&self) -> bool {
        self.main.attributed
    }
}

/// A row the driver holds alone: its share of a split tag, or a tag only its code (or, failing
/// code evidence anywhere, a pooltag-file line) ties to it.
fn held<'a>(c: &Ctx, d: &'a DriverReport, row: &'a DriverTag) -> bool {
    if row.attributed {
        return true;
    }
    let Some(t) = c.tag(&row.tag) else {
        return false;
    };
    let (owners, _) = c.owners(t);
    owners.len() == 1 && owners[0] == d.module && row.evidence != Source::BlockProvenance
}

/// A row of a tag several drivers' code allocates with that provenance could not split.
fn shared<'a>(c: &Ctx, d: &'a DriverReport, row: &'a DriverTag) -> bool {
    !row.attributed
        && c.tag(&row.tag)
            .is_some_and(|t| c.owners(t).0.len() > 1 && c.owners(t).0.contains(&d.module))
}

pub(super) fn driver_candidate<'a>(c: &'a Ctx<'a>) -> Option<DriverCandidate<'a>> {
    let pick = |d: &'a DriverReport| -> Option<(u64, Vec<&'a DriverTag>)> {
        let system = d.tags.iter().filter(|r| !r.session);
        let own: Vec<&DriverTag> = system.clone().filter(|r| held(c, d, r)).collect();
        let rows = if own.iter().any(|r| row_bytes(r) > 0) {
            own
        } else {
            system.filter(|r| shared(c, d, r)).collect()
        };
        let bytes = rows.iter().map(|r| row_bytes(r)).sum::<u64>();
        (bytes > 0).then_some((bytes, rows))
    };
    let (_, driver, mut rows) =
        c.r.drivers
            .iter()
            .filter(|d| !c.is_windows_module(&d.module))
            .filter_map(|d| pick(d).map(|(b, rows)| (b, d, rows)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.module.cmp(&a.1.module)))?;
    rows.sort_by(|a, b| row_bytes(b).cmp(&row_bytes(a)).then(a.tag.cmp(&b.tag)));
    let main = *rows.first()?;
    let tag = c.tag(&main.tag);
    let (all_owners, code) = tag.map(|t| c.owners(t)).unwrap_or_default();
    let owners = if main.attributed || all_owners.len() <= 1 {
        vec![driver.module.clone()]
    } else {
        all_owners
    };
    let paged: u64 = rows.iter().map(|r| r.paged_bytes).sum();
    let nonpaged: u64 = rows.iter().map(|r| r.nonpaged_bytes).sum();
    let pool = main_pool(paged, nonpaged);
    let pool_bytes = if pool == PoolName::Paged {
        paged
    } else {
        nonpaged
    };
    let share = c.in_use(pool).map(|u| pool_bytes as f64 / u as f64);
    let max = c.gauge(pool).and_then(|g| g.max);
    let share_of_max = max.map(|m| pool_bytes as f64 / m as f64);
    let top_of_pool = c.top_tag(pool).is_some_and(|t| t.tag == main.tag);
    let significant =
        share.is_some_and(|s| s >= SIGNIFICANT_SHARE) || (c.near(pool) && top_of_pool);
    Some(DriverCandidate {
        driver,
        main,
        tag,
        owners,
        code_evidence: code || main.attributed,
        pool,
        pool_bytes,
        bytes: paged.saturating_add(nonpaged),
        share,
        share_of_max,
        significant,
        pressure: pressure(c, pool, share_of_max),
        rows,
    })
}

fn row_bytes(r: &DriverTag) -> u64 {
    r.paged_bytes.saturating_add(r.nonpaged_bytes)
}

/// The pool is under pressure: near exhaustion by `!vm`'s rule, or the driver alone holds at
/// least [`LEAK_SHARE_OF_MAXIMUM`] of its maximum.
pub(super) fn pressure(c: &Ctx, pool: PoolName, share_of_max: Option<f64>) -> Option<Pressure> {
    let g = c.gauge(pool)?;
    let rule = if g.near_exhaustion {
        PressureRule::NearExhaustion
    } else if share_of_max.is_some_and(|s| s >= LEAK_SHARE_OF_MAXIMUM) {
        PressureRule::ShareOfMaximum
    } else {
        return None;
    };
    Some(Pressure {
        rule,
        pool,
        in_use: g.in_use,
        max: g.max,
        used_fraction: g.used_fraction,
    })
}

/// The driver holding the most session pool.
pub(super) struct SessionCandidate<'a> {
    pub driver: &'a DriverReport,
    pub owners: Vec<String>,
    pub code_evidence: bool,
    pub tags: Vec<&'a TagReport>,
    pub main: &'a TagReport,
    pub pool: PoolName,
    pub bytes: u64,
    /// Session pool in use: every session tag's outstanding bytes.
    pub in_use: u64,
    pub share: f64,
    pub significant: bool,
    /// Session pool is carved from paged pool: paged pool's pressure.
    pub pressure: Option<Pressure>,
}

pub(super) fn session_candidate<'a>(c: &'a Ctx<'a>) -> Option<SessionCandidate<'a>> {
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
        pressure: pressure(c, PoolName::Paged, None),
    })
}

/// The process charged the most quota.
pub(super) struct QuotaCandidate<'a> {
    pub process: &'a QuotaProcess,
    /// Tags charged to it, biggest first: (tag, bytes).
    pub tags: Vec<(&'a TagReport, u64)>,
    pub pool: PoolName,
    pub share: Option<f64>,
    pub share_of_max: Option<f64>,
    pub dominance: f64,
    pub significant: bool,
}

pub(super) fn quota_candidate<'a>(c: &'a Ctx<'a>) -> Option<QuotaCandidate<'a>> {
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
    let share_of_max = c
        .gauge(pool)
        .and_then(|g| g.max)
        .map(|m| process.bytes as f64 / m as f64);
    let dominance = process.bytes as f64 / charged as f64;
    let significant = dominance >= QUOTA_DOMINANCE && share.is_some_and(|s| s >= SIGNIFICANT_SHARE);
    Some(QuotaCandidate {
        process,
        tags,
        pool,
        share,
        share_of_max,
        dominance,
        significant,
    })
}
