//! Pool scenarios: a system's ordinary pool use plus one story each, with the
//! tag tables, big page table and classic pool pages all consistent ([`crate::poolstate`]).
//!
//! Sizes are data bytes as a driver asks for them; the header is added by the pool region.

use crate::ownership::{site, Ledger};
use crate::pool::PoolKind;
use crate::poolstate::{self, DriverLeak, FreedBig, PoolPlan, SessionAlloc};
use crate::scenario::Scenario;
use crate::system::{AllocSite, System, VendorDriver};
use crate::ForgeError;
use serde_json::Value;

const PAGED: u32 = 1;
const NONPAGED: u32 = 0;

/// The paged maximum of the scenarios about a paged pool leak, as a percentage of the pages in
/// use: 102%, so 95-98% of it is in use, above `!vm`'s 95% ("Excessive Paged Pool Usage"), as
/// in the dumps customers send (forced when a pool is nearly exhausted). The forge plants
/// kilobytes where a real leak holds megabytes, so the maximum is the pool's use (a small
/// pool), not what the machine's memory would give ([`crate::maxima`]).
pub(crate) const FULL_PAGED_PERCENT: u64 = 102;
/// The same for nonpaged pool: 110%, about 90% in use, above `!vm`'s 80%.
pub(crate) const FULL_NONPAGED_PERCENT: u64 = 110;

pub(crate) fn alloc(
    sys: &mut System,
    kind: PoolKind,
    size: u64,
    tag: &[u8; 4],
) -> Result<u64, ForgeError> {
    match kind {
        PoolKind::Paged => sys.alloc_paged(size, tag),
        PoolKind::NonPaged => sys.alloc_nonpaged(size, tag),
    }
}

pub(crate) fn free(
    sys: &mut System,
    kind: PoolKind,
    size: u64,
    tag: &[u8; 4],
) -> Result<u64, ForgeError> {
    let System {
        machine,
        nonpaged,
        paged,
        ..
    } = sys;
    match kind {
        PoolKind::Paged => paged.free_block(machine, size, tag),
        PoolKind::NonPaged => nonpaged.free_block(machine, size, tag),
    }
}

/// The ordinary pool of a quiet system: common Windows tags, a few freed blocks, a few big
/// allocations (one freed), and a history of allocate/free pairs.
pub(crate) fn background(sys: &mut System, plan: &mut PoolPlan) -> Result<(), ForgeError> {
    use PoolKind::{NonPaged as N, Paged as P};
    let rows: &[(PoolKind, &[u8; 4], u64, u64)] = &[
        (N, b"Irp ", 0x1f0, 12),
        (P, b"NtfF", 0x170, 10),
        (N, b"Thre", 0x2f0, 8),
        (P, b"CM31", 0xf0, 16),
        (N, b"Even", 0x30, 20),
        (P, b"Toke", 0x270, 6),
        (N, b"File", 0xc8, 14),
        (P, b"MmSt", 0x90, 9),
    ];
    for round in 0..2 {
        for &(kind, tag, size, n) in rows {
            for i in 0..n / 2 {
                alloc(sys, kind, size + 0x10 * ((i + round) % 3), tag)?;
            }
        }
        // A freed block of some tags, as ExFreePool leaves it (PoolType 0, tag kept).
        free(sys, N, 0x30, b"Even")?;
        free(sys, P, 0xf0, b"CM31")?;
    }
    alloc(sys, P, 0x3000, b"MmSt")?;
    alloc(sys, P, 0x2400, b"CM31")?;
    alloc(sys, N, 0x2000, b"Irp ")?;
    // A freed big allocation still listed (Va bit 0): memory returned, entry kept.
    plan.freed_big.push(FreedBig {
        va: sys.nonpaged.base + 0x1000_0000,
        tag: *b"Mdl ",
        size: 0x5000,
        kind: N,
    });
    plan.history.extend([
        (*b"Irp ", N, 500),
        (*b"CM31", P, 1200),
        (*b"File", N, 300),
        (*b"Toke", P, 40),
    ]);
    plan.expansion_tags.push(*b"Toke");
    // Session paged pool of an interactive session: win32k's GDI and USER objects (counted in
    // the session's own tag table on Vista+; nothing on XP). 'Gla5' sits in the session's
    // expansion table.
    plan.session.extend([
        SessionAlloc {
            tag: *b"Gh05",
            count: 120,
            bytes: 0x190,
        },
        SessionAlloc {
            tag: *b"Uscu",
            count: 60,
            bytes: 0x110,
        },
        SessionAlloc {
            tag: *b"Usqm",
            count: 30,
            bytes: 0x90,
        },
        SessionAlloc {
            tag: *b"Gla5",
            count: 20,
            bytes: 0x80,
        },
    ]);
    plan.session_history
        .extend([(*b"Gh05", 400), (*b"Usqm", 50)]);
    plan.session_expansion_tags.push(*b"Gla5");
    Ok(())
}

fn finish(sys: &mut System, plan: PoolPlan) -> Result<Option<Value>, ForgeError> {
    poolstate::finish(sys, &plan).map(Some)
}

pub(crate) fn driver(name: &'static str, pdb: &'static str, sites: Vec<AllocSite>) -> VendorDriver {
    VendorDriver {
        name,
        pdb,
        size: 0xa000,
        sites,
        devices: Vec::new(),
    }
}

/// `leak-tagged`: leaky.sys leaks paged pool tagged "Leak".
pub struct LeakTagged;

impl Scenario for LeakTagged {
    fn name(&self) -> &'static str {
        "leak-tagged"
    }
    fn description(&self) -> &'static str {
        "leaky.sys leaks paged pool tagged 'Leak' (classic blocks and big allocations); the tag is an immediate in its code"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "leaky.sys",
            "leaky.pdb",
            vec![
                AllocSite::fixed(Some(*b"Leak"), PAGED, 0x7f0),
                AllocSite::fixed(Some(*b"Leak"), PAGED, 0x10000),
            ],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            paged_max_percent_of_use: Some(FULL_PAGED_PERCENT),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        for i in 0..48u64 {
            sys.alloc_paged(0x7f0 - 0x10 * (i % 4), b"Leak")?;
            if i % 12 == 0 {
                alloc(sys, PoolKind::Paged, 0x170, b"NtfF")?;
            }
        }
        for _ in 0..4 {
            sys.alloc_paged(0x10000, b"Leak")?;
        }
        plan.history.push((*b"Leak", PoolKind::Paged, 3));
        plan.drivers
            .push(DriverLeak::leaking("leaky.sys", vec![*b"Leak"]));
        finish(sys, plan)
    }
}

/// `leak-untagged`: untagged.sys leaks nonpaged pool through ExAllocatePool ("None"): 60
/// blocks of 0x180 and two of 32 KiB from its two call sites, nothing pointing at them, until
/// nonpaged pool is about 90% full. The truth names each block's owner and site.
pub struct LeakUntagged;

impl Scenario for LeakUntagged {
    fn name(&self) -> &'static str {
        "leak-untagged"
    }
    fn description(&self) -> &'static str {
        "untagged.sys leaks nonpaged pool through ExAllocatePool: blocks tagged 'None' (about 90% of nonpaged pool's maximum in use)"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "untagged.sys",
            "untagged.pdb",
            vec![
                AllocSite::fixed(None, NONPAGED, 0x180),
                AllocSite::fixed(None, NONPAGED, 0x8000),
            ],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            nonpaged_max_percent_of_use: Some(FULL_NONPAGED_PERCENT),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        let mut l = Ledger::default();
        for (index, size, count) in [(0, 0x180, 60), (1, 0x8000, 2)] {
            let s = site(sys, "untagged.sys", index)?;
            for _ in 0..count {
                l.alloc(sys, &s, size)?;
            }
        }
        plan.history.push((*b"None", PoolKind::NonPaged, 10));
        plan.drivers
            .push(DriverLeak::leaking("untagged.sys", vec![*b"None"]));
        let mut pool = poolstate::finish(sys, &plan)?;
        crate::provenance_truth::annotate(sys, &l, &mut pool);
        Ok(Some(pool))
    }
}

pub use crate::shared_tag::SharedTag;

/// `quota-leak`: blocks charged to a user process (explorer.exe) through ProcessBilled:
/// Windows 8+ stores EPROCESS ^ ExpPoolQuotaCookie ^ header address, Windows 7 the EPROCESS.
pub struct QuotaLeak;

impl Scenario for QuotaLeak {
    fn name(&self) -> &'static str {
        "quota-leak"
    }
    fn description(&self) -> &'static str {
        "quotadrv.sys leaks quota-charged paged pool 'QLek' billed to explorer.exe (x64 profiles)"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "quotadrv.sys",
            "quotadrv.pdb",
            vec![AllocSite::fixed(Some(*b"QLek"), PAGED | 8, 0x300)],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        if sys.ptr_size() != 8 {
            return Err(ForgeError::ScenarioUnsupported {
                scenario: self.name().into(),
                profile: sys.spec.name.into(),
                reason: "x86 pool headers have no ProcessBilled; use an x64 profile".into(),
            });
        }
        let mut plan = PoolPlan {
            paged_max_percent_of_use: Some(FULL_PAGED_PERCENT),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        let eprocess = sys
            .processes
            .iter()
            .find(|p| p.name == "explorer.exe")
            .map(|p| p.eprocess)
            .ok_or_else(|| ForgeError::Internal("no explorer.exe".into()))?;
        let cookie = match sys.global("ExpPoolQuotaCookie") {
            Ok(at) => {
                let c = sys.rng.next_u64() | 1;
                sys.machine.write_u64(at, c)?;
                Some(c)
            }
            Err(_) => None,
        };
        let encode = move |header: u64| match cookie {
            Some(c) => eprocess ^ c ^ header,
            None => eprocess,
        };
        for _ in 0..40 {
            let System { machine, paged, .. } = &mut *sys;
            paged.alloc_quota(machine, 0x300, b"QLek", eprocess, &encode)?;
        }
        // Charged to nobody: a driver's own allocations.
        for _ in 0..10 {
            sys.alloc_paged(0x300, b"QLek")?;
        }
        plan.drivers
            .push(DriverLeak::leaking("quotadrv.sys", vec![*b"QLek"]));
        finish(sys, plan)
    }
}

/// `nonpaged-exhaustion`: hogdrv.sys has taken nearly all nonpaged pool.
pub struct NonpagedExhaustion;

impl Scenario for NonpagedExhaustion {
    fn name(&self) -> &'static str {
        "nonpaged-exhaustion"
    }
    fn description(&self) -> &'static str {
        "hogdrv.sys holds nonpaged pool 'Hog!' until 97% of the maximum is in use (!vm variables on XP/7, nt!MiState on 17763+)"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "hogdrv.sys",
            "hogdrv.pdb",
            vec![
                AllocSite::fixed(Some(*b"Hog!"), NONPAGED, 0xf00),
                AllocSite::fixed(Some(*b"Hog!"), NONPAGED, 0x40000),
            ],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan::default();
        background(sys, &mut plan)?;
        for _ in 0..300 {
            sys.alloc_nonpaged(0xf00, b"Hog!")?;
        }
        for _ in 0..16 {
            sys.alloc_nonpaged(0x40000, b"Hog!")?;
        }
        plan.history.push((*b"Hog!", PoolKind::NonPaged, 20));
        plan.nonpaged_max_percent_of_use = Some(103);
        plan.drivers
            .push(DriverLeak::leaking("hogdrv.sys", vec![*b"Hog!"]));
        finish(sys, plan)
    }
}

/// `session-leak`: dispkmd.sys, a display driver, leaks session paged pool (PagedPoolSession)
/// tagged 'DspK': counted in the session's own tag table, apart from system pool. Vista+
/// profiles only (XP keeps no session tag table).
pub struct SessionLeak;

/// PagedPoolSession: PagedPool | the session bit (0x20).
const PAGED_SESSION: u32 = 0x21;

impl Scenario for SessionLeak {
    fn name(&self) -> &'static str {
        "session-leak"
    }
    fn description(&self) -> &'static str {
        "dispkmd.sys (a display driver) leaks session paged pool 'DspK' (session tag table, session pool blocks and big pages; not on XP)"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "dispkmd.sys",
            "dispkmd.pdb",
            vec![AllocSite::fixed(Some(*b"DspK"), PAGED_SESSION, 0x3f0)],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        if sys.profile.global("ExpSessionPoolTrackTable").is_none() {
            return Err(ForgeError::ScenarioUnsupported {
                scenario: self.name().into(),
                profile: sys.spec.name.into(),
                reason: "this kernel keeps no session tag table (ExpSessionPoolTrackTable); use a Vista+ profile".into(),
            });
        }
        // Session pool is paged pool: its pressure is paged pool's.
        let mut plan = PoolPlan {
            paged_max_percent_of_use: Some(FULL_PAGED_PERCENT),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        plan.session.push(SessionAlloc {
            tag: *b"DspK",
            count: 900,
            bytes: 0x400,
        });
        // Three surfaces larger than a page: big session allocations, in the session's own big
        // page table (7601/17763 classic session pool and 19041/20348 session segment heap).
        plan.session.push(SessionAlloc {
            tag: *b"DspK",
            count: 3,
            bytes: 0x3000,
        });
        plan.session_history.push((*b"DspK", 75));
        plan.drivers
            .push(DriverLeak::leaking("dispkmd.sys", vec![*b"DspK"]));
        finish(sys, plan)
    }
}

/// `missing-pages`: leak-tagged, but the dump writer did not capture three pool pages (those
/// holding NtfF blocks: classic pages, or one-page LFH subsegments on 19041/20348), and the
/// memory manager had paged out one page of leaked blocks (leaky.sys also leaks 16 small
/// 'Leak' blocks from a third site, so that a classic page or an LFH subsegment holds only
/// them on every profile). The missing pages' blocks are not in the truth's `blocks`;
/// `missing_pool_pages` is 4 (three not captured, one paged out); the paged-out page's blocks are in
/// `provenance.paged_out_blocks` ([`crate::trim`]); the tag tables still count them all.
/// kernel-bitmap only.
pub struct MissingPages;

/// Pages of leaked blocks paged out in `missing-pages`.
pub const MISSING_PAGES_PAGED_OUT: usize = 1;

impl Scenario for MissingPages {
    fn name(&self) -> &'static str {
        "missing-pages"
    }
    fn description(&self) -> &'static str {
        "leak-tagged with three pool pages left out of the dump (kernel-bitmap only): three pool pages not captured and one page of leaked blocks paged out: missing_pool_pages = 4"
    }
    fn kernel_bitmap_only(&self) -> bool {
        true
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        let mut d = LeakTagged.drivers();
        d[0].sites
            .push(AllocSite::fixed(Some(*b"Leak"), PAGED, 0x1f0));
        d
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            omit_pages_of: Some((*b"NtfF", 3)),
            paged_max_percent_of_use: Some(FULL_PAGED_PERCENT),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        for i in 0..48u64 {
            sys.alloc_paged(0x7f0 - 0x10 * (i % 4), b"Leak")?;
            if i % 6 == 0 {
                alloc(sys, PoolKind::Paged, 0x170, b"NtfF")?;
            }
        }
        for _ in 0..16 {
            sys.alloc_paged(0x1f0, b"Leak")?;
        }
        plan.drivers
            .push(DriverLeak::leaking("leaky.sys", vec![*b"Leak"]));
        // The paging file the page goes to: nonpaged blocks, planted before the bookkeeping.
        let paging_files = crate::pte::plant_paging_files(sys)?;
        let mut pool = poolstate::finish(sys, &plan)?;
        crate::trim::page_out_tag(
            sys,
            &mut pool,
            "Leak",
            MISSING_PAGES_PAGED_OUT,
            paging_files,
        )?;
        Ok(Some(pool))
    }
}
