//! `shared-tag`: two drivers of one vendor both allocate with 'Acme' (acmenet.sys nonpaged,
//! acmestor.sys paged), so the tag alone cannot say which leaks (both images hold the
//! immediate). The dump can: acmenet.sys keeps its blocks on a list headed in its .data (live),
//! acmestor.sys keeps its 24 KiB buffer in its device extension and has lost the rest (orphans).
//! The truth names the owner, call site and evidence of every 'Acme' block
//! ([`crate::ownership`]).

use crate::ownership::{site, Ledger};
use crate::pool::PoolKind;
use crate::pool_scenarios::{background, driver};
use crate::poolstate::{self, DriverLeak, PoolPlan};
use crate::scenario::Scenario;
use crate::system::{AllocSite, System, VendorDriver};
use crate::ForgeError;
use serde_json::Value;

const PAGED: u32 = 1;
const NONPAGED: u32 = 0;

pub struct SharedTag;

impl Scenario for SharedTag {
    fn name(&self) -> &'static str {
        "shared-tag"
    }
    fn description(&self) -> &'static str {
        "acmenet.sys and acmestor.sys share the tag 'Acme' (paged and nonpaged); both images hold it"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![
            driver(
                "acmenet.sys",
                "acmenet.pdb",
                vec![AllocSite::fixed(Some(*b"Acme"), NONPAGED, 0x200)],
            ),
            driver(
                "acmestor.sys",
                "acmestor.pdb",
                vec![
                    AllocSite::fixed(Some(*b"Acme"), PAGED, 0x600),
                    AllocSite::fixed(Some(*b"Acme"), PAGED, 0x6000),
                ],
            ),
        ]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        // acmestor.sys's paged share is the larger: paged pool is the one nearly exhausted.
        let mut plan = PoolPlan {
            paged_max_percent_of_use: Some(crate::pool_scenarios::FULL_PAGED_PERCENT),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        let mut l = Ledger::default();
        let net = site(sys, "acmenet.sys", 0)?;
        let list: Vec<usize> = (0..30)
            .map(|_| l.alloc(sys, &net, 0x200))
            .collect::<Result<_, _>>()?;
        let stor = site(sys, "acmestor.sys", 0)?;
        for _ in 0..25 {
            l.alloc(sys, &stor, 0x600)?;
        }
        let buffer = l.alloc(sys, &site(sys, "acmestor.sys", 1)?, 0x6000)?;
        let head = crate::provenance::data_section(sys, "acmenet.sys")? + 0x40;
        l.list(sys, "acmenet.sys", head, &list)?;
        let ext = crate::provenance::extension(sys, "acmestor.sys")?;
        l.root(sys, "acmestor.sys", ext, buffer)?;
        plan.history.push((*b"Acme", PoolKind::NonPaged, 100));
        // Both modules hold the tag; leaked_bytes is the tag's total for each (not split).
        plan.drivers
            .push(DriverLeak::leaking("acmenet.sys", vec![*b"Acme"]));
        plan.drivers
            .push(DriverLeak::leaking("acmestor.sys", vec![*b"Acme"]));
        let mut pool = poolstate::finish(sys, &plan)?;
        crate::provenance_truth::annotate(sys, &l, &mut pool);
        Ok(Some(pool))
    }
}
