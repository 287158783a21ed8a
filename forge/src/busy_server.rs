//! `busy-server`: a busy server's normal pool, no leak. Thousands of tags and one block per
//! 4 KiB of memory (sizes and tag frequencies skewed as on real systems: a few tags hold most
//! blocks), some freed blocks, a few hundred big allocations; and a third-party server driver,
//! acmesrv.sys, whose tag 'AcSv' is the server's largest (every eighth allocation, each on a
//! list its .data heads: live, not leaked). acmesrv.sys and Windows' NDIS.SYS both allocate
//! 'Ddk ' (the old DDK's default tag), each keeping its blocks on its own list.
//!
//! The pools stay far from their maxima: the maxima are what Windows gives the machine
//! ([`crate::maxima`]), and the allocations stop once either pool would hold
//! [`BUSY_SHARE_OF_MAXIMUM`] of its maximum (on 64-bit Windows a machine's pools never get
//! there; a 32-bit XP machine's 256 MB of nonpaged pool does, from about 8 GiB). So one dump of
//! it shows a largest consumer, never a leak.
//!
//! The truth's `blocks` list is left out (null; `block_counts` instead): it would be larger
//! than the pool itself; tags, big pages and the vm figures are exact, and `provenance.modules`
//! gives each module's blocks per call site.

use crate::maxima::{pool_maxima, PoolMaxima};
use crate::ownership::{block_size, site, Ledger};
use crate::pool::PoolKind;
use crate::pool_scenarios::{alloc, background, driver, free};
use crate::poolstate::{self, DriverLeak, PoolPlan};
use crate::scenario::Scenario;
use crate::system::{AllocSite, System, VendorDriver};
use crate::ForgeError;
use serde_json::Value;

pub struct BusyServer;

/// Tags of the busy server's Windows components.
pub const BUSY_TAGS: usize = 3000;
/// The most of a pool's maximum the busy server fills.
pub const BUSY_SHARE_OF_MAXIMUM: f64 = 0.35;
/// The server driver and its tag: every [`SERVER_EVERY`]th allocation.
pub const SERVER: &str = "acmesrv.sys";
pub const SERVER_TAG: [u8; 4] = *b"AcSv";
const SERVER_EVERY: u64 = 8;
const SERVER_SIZE: u32 = 0x1c0;
/// 'Ddk ' blocks of each module: (module, nonpaged size, count).
const DDK: [(&str, u32, usize); 2] = [(SERVER, 0x80, 40), ("NDIS.SYS", 0x140, 30)];
const PAGED: u32 = 1;
const NONPAGED: u32 = 0;

impl Scenario for BusyServer {
    fn name(&self) -> &'static str {
        "busy-server"
    }
    fn description(&self) -> &'static str {
        "a busy server's normal pool (3000 tags, one block per 4 KiB of --size up to 35% of a pool's maximum); acmesrv.sys's 'AcSv' is the largest tag, no leak; truth without the block list"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        let ddk = |size| AllocSite::fixed(Some(*b"Ddk "), NONPAGED, size);
        let mut ndis = driver("NDIS.SYS", "ndis.pdb", vec![ddk(DDK[1].1)]);
        ndis.size = 0xd0000;
        vec![
            driver(
                SERVER,
                "acmesrv.pdb",
                vec![
                    AllocSite::fixed(Some(SERVER_TAG), PAGED, SERVER_SIZE),
                    ddk(DDK[0].1),
                ],
            ),
            ndis,
        ]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            omit_blocks: true,
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        let tags = busy_tags(sys);
        let server = fill(sys, &tags)?;
        let head = crate::provenance::data_section(sys, SERVER)? + 0x80;
        sys.link_ring(head, &server.nodes)?;
        let ledger = ddk_lists(sys)?;
        for i in 0..300u64 {
            let (tag, kind, _) = tags[(i * 7) as usize % 40];
            let pages = 2 + sys.rng.next_u64() % 30;
            alloc(sys, kind, pages * 0x1000 - 0x10 * (i % 3), &tag)?;
        }
        for (i, (tag, kind, _)) in tags.iter().enumerate().take(500) {
            plan.history
                .push((*tag, *kind, 10 + (i as u64 * 37) % 2000));
        }
        plan.drivers
            .push(DriverLeak::holding(SERVER, vec![SERVER_TAG]));
        let mut pool = poolstate::finish(sys, &plan)?;
        crate::provenance_truth::annotate(sys, &ledger, &mut pool);
        let site = site(sys, SERVER, 0)?;
        crate::provenance_truth::add_site_blocks(&mut pool, &site, server.blocks, server.bytes);
        Ok(Some(pool))
    }
}

/// The Windows components' tags: (tag, pool, typical size); an upper-case letter then three of
/// [A-Za-z0-9], deterministic, distinct.
fn busy_tags(sys: &mut System) -> Vec<([u8; 4], PoolKind, u64)> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut seen = std::collections::BTreeSet::new();
    let mut tags = Vec::new();
    while tags.len() < BUSY_TAGS {
        let r = sys.rng.next_u64();
        let t = [
            CHARS[(r % 26) as usize],
            CHARS[((r >> 8) % 62) as usize],
            CHARS[((r >> 16) % 62) as usize],
            CHARS[((r >> 24) % 62) as usize],
        ];
        if &t == b"Free" || t == SERVER_TAG || !seen.insert(t) {
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
    tags
}

/// What is left of each pool's share of its maximum, in bytes.
struct Budget {
    nonpaged: u64,
    paged: u64,
}

impl Budget {
    fn new(m: PoolMaxima) -> Self {
        let share = |max: u64| (max as f64 * BUSY_SHARE_OF_MAXIMUM) as u64;
        Budget {
            nonpaged: share(m.nonpaged),
            paged: share(m.paged),
        }
    }

    /// Takes `bytes` from the pool's budget; false when it does not have them.
    fn take(&mut self, kind: PoolKind, bytes: u64) -> bool {
        let left = match kind {
            PoolKind::Paged => &mut self.paged,
            PoolKind::NonPaged => &mut self.nonpaged,
        };
        let ok = *left >= bytes;
        *left = left.saturating_sub(bytes);
        ok
    }
}

/// The server driver's blocks: their data addresses (list entries), count and bytes.
#[derive(Default)]
struct ServerBlocks {
    nodes: Vec<u64>,
    blocks: u64,
    bytes: u64,
}

/// One block per 4 KiB of memory, until a pool's budget runs out: every eighth the server
/// driver's, the others a Windows tag picked log-uniformly (tag k with probability ~
/// 1/(k+1)), one in fifty freed.
fn fill(sys: &mut System, tags: &[([u8; 4], PoolKind, u64)]) -> Result<ServerBlocks, ForgeError> {
    let mut budget = Budget::new(pool_maxima(sys.spec, sys.memory_size));
    let mut server = ServerBlocks::default();
    let ln = ((BUSY_TAGS + 1) as f64).ln();
    for i in 0..sys.memory_size / 4096 {
        if i % SERVER_EVERY == 3 {
            let size = u64::from(SERVER_SIZE);
            let bytes = block_size(sys, PoolKind::Paged, size);
            if !budget.take(PoolKind::Paged, bytes) {
                break;
            }
            server.nodes.push(sys.alloc_paged(size, &SERVER_TAG)?);
            server.blocks += 1;
            server.bytes += bytes;
            continue;
        }
        let u = (sys.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let k = ((u * ln).exp() as usize)
            .saturating_sub(1)
            .min(BUSY_TAGS - 1);
        let (tag, kind, size) = tags[k];
        let size = size.max(0x10) + (sys.rng.next_u64() % 4) * 0x10;
        if !budget.take(kind, block_size(sys, kind, size)) {
            break;
        }
        if i % 50 == 49 {
            free(sys, kind, size, &tag)?;
        } else {
            alloc(sys, kind, size, &tag)?;
        }
    }
    Ok(server)
}

/// Each module's 'Ddk ' blocks, on a list headed at its .data + 0x40.
fn ddk_lists(sys: &mut System) -> Result<Ledger, ForgeError> {
    let mut l = Ledger::default();
    for (module, size, count) in DDK {
        let index = usize::from(module == SERVER);
        let s = site(sys, module, index)?;
        let blocks: Vec<usize> = (0..count)
            .map(|_| l.alloc(sys, &s, u64::from(size)))
            .collect::<Result<_, _>>()?;
        let head = crate::provenance::data_section(sys, module)? + 0x40;
        l.list(sys, module, head, &blocks)?;
    }
    Ok(l)
}
