//! Pool scenarios (issue 4 item 7): a system's ordinary pool use plus one story each, with the
//! tag tables, big page table and classic pool pages all consistent ([`crate::poolstate`]).
//!
//! Sizes are data bytes as a driver asks for them; the header is added by the pool region.

use crate::pool::PoolKind;
use crate::poolstate::{self, DriverLeak, FreedBig, PoolPlan, SessionAlloc};
use crate::scenario::Scenario;
use crate::system::{AllocSite, System, VendorDriver};
use crate::ForgeError;
use serde_json::Value;

const PAGED: u32 = 1;
const NONPAGED: u32 = 0;

fn alloc(sys: &mut System, kind: PoolKind, size: u64, tag: &[u8; 4]) -> Result<u64, ForgeError> {
    match kind {
        PoolKind::Paged => sys.alloc_paged(size, tag),
        PoolKind::NonPaged => sys.alloc_nonpaged(size, tag),
    }
}

fn free(sys: &mut System, kind: PoolKind, size: u64, tag: &[u8; 4]) -> Result<u64, ForgeError> {
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
        let mut plan = PoolPlan::default();
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
        plan.drivers.push(DriverLeak {
            module: "leaky.sys".into(),
            tags: vec![*b"Leak"],
        });
        finish(sys, plan)
    }
}

/// `leak-untagged`: untagged.sys leaks nonpaged pool through ExAllocatePool ("None").
pub struct LeakUntagged;

impl Scenario for LeakUntagged {
    fn name(&self) -> &'static str {
        "leak-untagged"
    }
    fn description(&self) -> &'static str {
        "untagged.sys leaks nonpaged pool through ExAllocatePool: blocks tagged 'None'"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "untagged.sys",
            "untagged.pdb",
            vec![AllocSite::fixed(None, NONPAGED, 0x180)],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan::default();
        background(sys, &mut plan)?;
        for _ in 0..60 {
            sys.alloc_nonpaged(0x180, b"None")?;
        }
        for _ in 0..2 {
            sys.alloc_nonpaged(0x8000, b"None")?;
        }
        plan.history.push((*b"None", PoolKind::NonPaged, 10));
        plan.drivers.push(DriverLeak {
            module: "untagged.sys".into(),
            tags: vec![*b"None"],
        });
        finish(sys, plan)
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
        let mut plan = PoolPlan::default();
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
        plan.drivers.push(DriverLeak {
            module: "quotadrv.sys".into(),
            tags: vec![*b"QLek"],
        });
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
        plan.drivers.push(DriverLeak {
            module: "hogdrv.sys".into(),
            tags: vec![*b"Hog!"],
        });
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
        let mut plan = PoolPlan::default();
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
        plan.drivers.push(DriverLeak {
            module: "dispkmd.sys".into(),
            tags: vec![*b"DspK"],
        });
        finish(sys, plan)
    }
}

/// `busy-server`: a busy server's normal pool: thousands of tags and one block per 4 KiB of
/// memory (2 million for an 8 GiB dump), sizes and tag frequencies skewed as on real systems
/// (a few tags hold most blocks), some freed blocks, a few hundred big allocations. No driver
/// leaks. The truth's `blocks` list is left out (null; `block_counts` instead): it would be
/// larger than the pool itself; tags, big pages and the vm figures are exact.
pub struct BusyServer;

/// Tags of the busy server.
pub const BUSY_TAGS: usize = 3000;

impl Scenario for BusyServer {
    fn name(&self) -> &'static str {
        "busy-server"
    }
    fn description(&self) -> &'static str {
        "a busy server's normal pool: 3000 tags, one block per 4 KiB of --size (2 million at 8 GiB); truth without the block list"
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            omit_blocks: true,
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        // Tags: an upper-case letter then three of [A-Za-z0-9], deterministic, distinct.
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut seen = std::collections::BTreeSet::new();
        let mut tags: Vec<([u8; 4], PoolKind, u64)> = Vec::new();
        while tags.len() < BUSY_TAGS {
            let r = sys.rng.next_u64();
            let t = [
                CHARS[(r % 26) as usize],
                CHARS[((r >> 8) % 62) as usize],
                CHARS[((r >> 16) % 62) as usize],
                CHARS[((r >> 24) % 62) as usize],
            ];
            if &t == b"Free" || !seen.insert(t) {
                continue;
            }
            let kind = if (r >> 32).is_multiple_of(3) {
                PoolKind::NonPaged
            } else {
                PoolKind::Paged
            };
            // Typical sizes: mostly small; one tag in 40 allocates up to 2 KB.
            let size = if (r >> 40).is_multiple_of(40) {
                0x200 + ((r >> 44) % 0x600)
            } else {
                0x10 + ((r >> 44) % 0x170)
            };
            tags.push((t, kind, size & !0xf));
        }
        let blocks = sys.memory_size / 4096;
        let ln = ((BUSY_TAGS + 1) as f64).ln();
        for i in 0..blocks {
            // Log-uniform tag choice: tag k is picked with probability ~ 1/(k+1).
            let u = (sys.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let k = ((u * ln).exp() as usize)
                .saturating_sub(1)
                .min(BUSY_TAGS - 1);
            let (tag, kind, size) = tags[k];
            let jitter = (sys.rng.next_u64() % 4) * 0x10;
            let size = size.max(0x10) + jitter;
            if i % 50 == 49 {
                free(sys, kind, size, &tag)?;
            } else {
                alloc(sys, kind, size, &tag)?;
            }
        }
        for i in 0..300u64 {
            let (tag, kind, _) = tags[(i * 7) as usize % 40];
            let pages = 2 + sys.rng.next_u64() % 30;
            alloc(sys, kind, pages * 0x1000 - 0x10 * (i % 3), &tag)?;
        }
        for (i, (tag, kind, _)) in tags.iter().enumerate().take(500) {
            plan.history
                .push((*tag, *kind, 10 + (i as u64 * 37) % 2000));
        }
        finish(sys, plan)
    }
}

/// `missing-pages`: leak-tagged, but the dump writer did not capture three pool pages (those
/// holding NtfF blocks: classic pages, or one-page LFH subsegments on 19041/20348). Their
/// blocks are not in the truth's `blocks`; `missing_pool_pages` is 3; the tag tables still
/// count them. kernel-bitmap only.
pub struct MissingPages;

impl Scenario for MissingPages {
    fn name(&self) -> &'static str {
        "missing-pages"
    }
    fn description(&self) -> &'static str {
        "leak-tagged with three pool pages left out of the dump (kernel-bitmap only): missing_pool_pages = 3"
    }
    fn kernel_bitmap_only(&self) -> bool {
        true
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        LeakTagged.drivers()
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            omit_pages_of: Some((*b"NtfF", 3)),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        for i in 0..48u64 {
            sys.alloc_paged(0x7f0 - 0x10 * (i % 4), b"Leak")?;
            if i % 6 == 0 {
                alloc(sys, PoolKind::Paged, 0x170, b"NtfF")?;
            }
        }
        plan.drivers.push(DriverLeak {
            module: "leaky.sys".into(),
            tags: vec![*b"Leak"],
        });
        finish(sys, plan)
    }
}
