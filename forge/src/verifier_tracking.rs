//! `verifier-tracking`: Driver Verifier's pool tracking is on for `vrfdrv.sys`, a vendor
//! driver with three untagged `ExAllocatePool` call sites (nonpaged, paged, and one large
//! enough for a big allocation) and one tagged site; its outstanding blocks are each tracked
//! with the return address after their site's `call`. `plaindrv.sys`, not verified, leaks
//! untagged nonpaged blocks too: they are not tracked. Every profile (XP keeps the tracking in
//! `PoolHash` arrays, the others in tracker pages: [`crate::verifier`]).
//!
//! Verified drivers' `ExAllocatePool` calls are thunked to the verifier, which passes its own
//! tag: XP SP1's `VerifierAllocatePool` uses `'parW'` ("Wrap" in memory); later kernels tag
//! them "None" (pooltag.txt: "None - nt!Vf - Call to ExAllocatePool without any pool tag").

use crate::pool::PoolKind;
use crate::pool_scenarios::background;
use crate::poolstate::{self, DriverLeak, PoolPlan};
use crate::scenario::Scenario;
use crate::system::{AllocSite, SiteCall, SiteSize, System, VendorCalls, VendorDriver};
use crate::truth::hex;
use crate::verifier::{self, Freed, Tracked, VerifiedImage};
use crate::ForgeError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const VERIFIED: &str = "vrfdrv.sys";
pub const UNVERIFIED: &str = "plaindrv.sys";

/// One of vrfdrv.sys's allocation sites and what it left.
struct Site {
    /// `None`: ExAllocatePool.
    tag: Option<[u8; 4]>,
    kind: PoolKind,
    /// Bytes asked for.
    request: u32,
    outstanding: u32,
    /// Allocated and freed since (their tracker entries are free again).
    freed: u32,
}

const fn site(tag: Option<[u8; 4]>, kind: PoolKind, request: u32, out: u32, freed: u32) -> Site {
    Site {
        tag,
        kind,
        request,
        outstanding: out,
        freed,
    }
}

/// Nonpaged, paged, one big enough for a big allocation, and one tagged site.
const SITES: [Site; 4] = [
    site(None, PoolKind::NonPaged, 0x180, 120, 3),
    site(None, PoolKind::Paged, 0x2f0, 40, 1),
    site(None, PoolKind::NonPaged, 0x7000, 2, 0),
    site(Some(*b"Vrfd"), PoolKind::NonPaged, 0x64, 9, 1),
];
/// plaindrv.sys: one untagged nonpaged site, 20 outstanding blocks.
const PLAIN: (u32, u32) = (0x140, 20);

pub struct VerifierTracking;

impl Scenario for VerifierTracking {
    fn name(&self) -> &'static str {
        "verifier-tracking"
    }
    fn description(&self) -> &'static str {
        "Driver Verifier tracks vrfdrv.sys's pool (untagged ExAllocatePool sites): every outstanding block with its caller; plaindrv.sys's untagged blocks are not tracked"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        let alloc_site = |tag, kind, size| AllocSite {
            tag,
            pool_type: u32::from(kind == PoolKind::Paged),
            size: SiteSize::Fixed(size),
        };
        vec![
            VendorDriver {
                name: VERIFIED,
                pdb: "vrfdrv.pdb",
                size: 0xa000,
                sites: SITES
                    .iter()
                    .map(|s| alloc_site(s.tag, s.kind, s.request))
                    .collect(),
                devices: Vec::new(),
            },
            VendorDriver {
                name: UNVERIFIED,
                pdb: "plaindrv.pdb",
                size: 0x8000,
                sites: vec![alloc_site(None, PoolKind::NonPaged, PLAIN.0)],
                devices: Vec::new(),
            },
        ]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan::default();
        background(sys, &mut plan)?;
        let vrf = calls(sys, VERIFIED)?;
        let plain = calls(sys, UNVERIFIED)?;
        let untagged = *if sys.spec.build < 6000 {
            b"Wrap"
        } else {
            b"None"
        };
        let (tracked, freed, plain_blocks) = allocate_all(sys, &vrf, untagged, &plain, &mut plan)?;
        let image = VerifiedImage {
            name: VERIFIED,
            base: vrf.base,
            size: u64::from(vrf.size),
        };
        let no_tag = SITES
            .iter()
            .filter(|s| s.tag.is_none())
            .map(|s| u64::from(s.outstanding + s.freed))
            .sum();
        let mut v = verifier::plant(sys, &image, &tracked, &freed, no_tag)?;
        v["untracked_drivers"] = json!([UNVERIFIED]);
        plan.drivers
            .push(DriverLeak::leaking(VERIFIED, vec![untagged, *b"Vrfd"]));
        plan.drivers
            .push(DriverLeak::leaking(UNVERIFIED, vec![*b"None"]));
        let mut pool = poolstate::finish(sys, &plan)?;
        annotate_blocks(&mut pool, &tracked, &plain_blocks);
        pool["verifier"] = v;
        Ok(Some(pool))
    }
}

fn calls(sys: &System, name: &str) -> Result<VendorCalls, ForgeError> {
    sys.vendor_calls(name)
        .ok_or_else(|| ForgeError::Internal(format!("{name} was not built")))
}

/// What the scenario's drivers allocated: vrfdrv.sys's tracked and freed allocations, and
/// plaindrv.sys's blocks with their call.
type Allocated = (Vec<Tracked>, Vec<Freed>, Vec<(u64, SiteCall)>);

/// vrfdrv.sys's allocations through the verifier, plaindrv.sys's plain ones interleaved with
/// the first site's; freed ones counted in the tag tables' history.
fn allocate_all(
    sys: &mut System,
    vrf: &VendorCalls,
    untagged: [u8; 4],
    plain: &VendorCalls,
    plan: &mut PoolPlan,
) -> Result<Allocated, ForgeError> {
    let mut tracked = Vec::new();
    let mut freed = Vec::new();
    let mut plain_blocks = Vec::new();
    let mut plain_left = PLAIN.1;
    for (k, s) in SITES.iter().enumerate() {
        let (tag, kind, gone) = (s.tag.unwrap_or(untagged), s.kind, s.freed);
        let call = vrf.calls[k];
        for _ in 0..s.outstanding {
            tracked.push(verifier::allocate(
                sys,
                kind,
                u64::from(s.request),
                &tag,
                call,
            )?);
            if plain_left > 0 {
                plain_left -= 1;
                plain_blocks.push((plain_block(sys)?, plain.calls[0]));
            }
        }
        let charged = tracked.last().map_or(0, |t| t.charged);
        freed.extend((0..gone).map(|_| Freed {
            tag,
            charged,
            kind,
            call,
        }));
        if gone > 0 {
            plan.history.push((tag, kind, u64::from(gone)));
        }
    }
    for _ in 0..plain_left {
        plain_blocks.push((plain_block(sys)?, plain.calls[0]));
    }
    Ok((tracked, freed, plain_blocks))
}

/// One of plaindrv.sys's blocks (ExAllocatePool, not verified: "None"); its truth address.
fn plain_block(sys: &mut System) -> Result<u64, ForgeError> {
    sys.alloc_nonpaged(u64::from(PLAIN.0), b"None")?;
    sys.nonpaged
        .allocations
        .last()
        .map(|b| b.address)
        .ok_or_else(|| ForgeError::Internal("block not recorded".into()))
}

/// Marks the scenario drivers' blocks in the truth's `blocks`: `owner`, `site` (the call
/// instruction), `verifier` (tracked or not).
fn annotate_blocks(pool: &mut Value, tracked: &[Tracked], plain: &[(u64, SiteCall)]) {
    let mut owners: BTreeMap<String, (&str, u64, bool)> = BTreeMap::new();
    for t in tracked {
        owners.insert(hex(t.block), (VERIFIED, t.call.call, true));
    }
    for (block, call) in plain {
        owners.insert(hex(*block), (UNVERIFIED, call.call, false));
    }
    let Some(blocks) = pool["blocks"].as_array_mut() else {
        return;
    };
    for b in blocks {
        let Some(&(owner, site, verified)) = b["address"].as_str().and_then(|a| owners.get(a))
        else {
            continue;
        };
        b["owner"] = json!(owner);
        b["site"] = json!(hex(site));
        b["verifier"] = json!(verified);
    }
}
