//! The scenarios of a dump series: one machine whose pool either leaks at a planted rate
//! (`growing-leak`) or holds steady (`steady-state`), seen at step `n` of the series.
//!
//! Both plant the quiet system's pool ([`crate::pool_scenarios`]) and a churning tag, `Chrn`,
//! whose count wanders around a fixed level from step to step (a workload, not a leak). On
//! `growing-leak`, leaky.sys's paged `Leak` blocks number [`INITIAL_BLOCKS`] plus
//! `blocks_per_step` for each step so far, give or take [`JITTER_BLOCKS`] (so that a fit is
//! not handed an exact line); `steady-state` keeps them at [`INITIAL_BLOCKS`]. What a step
//! plants is a function of its step alone: the series is deterministic.

use crate::pool::PoolKind;
use crate::pool_scenarios::{background, driver};
use crate::poolstate::{self, DriverLeak, PoolPlan};
use crate::rng::SplitMix64;
use crate::scenario::Scenario;
use crate::system::{AllocSite, System, VendorDriver};
use crate::ForgeError;
use serde_json::{json, Value};

/// Leak blocks at step 0.
pub const INITIAL_BLOCKS: u64 = 40;
/// At most this many blocks more or fewer than the line, per step (growing-leak only).
pub const JITTER_BLOCKS: u64 = 2;
/// The churning tag's level and swing (blocks of [`CHURN_SIZE`]).
pub const CHURN_LEVEL: u64 = 300;
pub const CHURN_SWING: u64 = 20;
/// Data bytes of one leaked block (leaky.sys's site).
pub const LEAK_SIZE: u64 = 0x7f0;
/// Data bytes of one churn block.
pub const CHURN_SIZE: u64 = 0x170;
/// Allocate/free pairs of the leak tag per step (the driver frees some of what it allocates).
pub const LEAK_FREES_PER_STEP: u64 = 25;

/// Which story the series tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// `Leak` grows by `blocks_per_step` each step.
    Leaking { blocks_per_step: u64 },
    /// Nothing grows.
    Steady,
}

/// One step of a series.
#[derive(Debug, Clone, Copy)]
pub struct GrowthScenario {
    pub growth: Growth,
    pub step: u64,
}

impl GrowthScenario {
    /// Blocks a leak adds per step when none is asked for (one step an hour: 1 024 blocks
    /// of 2 KiB, about 2 MiB/h).
    pub const DEFAULT_BLOCKS_PER_STEP: u64 = 1024;

    fn leak_blocks(&self) -> u64 {
        match self.growth {
            Growth::Leaking { blocks_per_step } => {
                let j = jitter(self.step, "leak", 2 * JITTER_BLOCKS + 1);
                INITIAL_BLOCKS + blocks_per_step * self.step + j - JITTER_BLOCKS
            }
            Growth::Steady => INITIAL_BLOCKS,
        }
    }
}

/// A deterministic draw in `0..n` for `step`.
fn jitter(step: u64, what: &str, n: u64) -> u64 {
    SplitMix64::from_str_seed(&format!("series/{what}/{step}")).below(n)
}

impl Scenario for GrowthScenario {
    fn name(&self) -> &'static str {
        match self.growth {
            Growth::Leaking { .. } => "growing-leak",
            Growth::Steady => "steady-state",
        }
    }
    fn description(&self) -> &'static str {
        match self.growth {
            Growth::Leaking { .. } => {
                "one dump of a series (--series N): leaky.sys's paged 'Leak' grows by a planted rate from dump to dump"
            }
            Growth::Steady => {
                "one dump of a series (--series N): pool churns but nothing grows (the flat machine)"
            }
        }
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![driver(
            "leaky.sys",
            "leaky.pdb",
            vec![AllocSite::fixed(Some(*b"Leak"), 1, LEAK_SIZE as u32)],
        )]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan::default();
        background(sys, &mut plan)?;
        let churn = CHURN_LEVEL + jitter(self.step, "churn", 2 * CHURN_SWING + 1) - CHURN_SWING;
        for _ in 0..churn {
            sys.alloc_paged(CHURN_SIZE, b"Chrn")?;
        }
        plan.history
            .push((*b"Chrn", PoolKind::Paged, 5000 + 700 * self.step));
        let leaked = self.leak_blocks();
        for _ in 0..leaked {
            sys.alloc_paged(LEAK_SIZE, b"Leak")?;
        }
        let block_bytes = block_bytes(sys)?;
        plan.history.push((
            *b"Leak",
            PoolKind::Paged,
            3 + LEAK_FREES_PER_STEP * self.step,
        ));
        // On steady-state leaky.sys holds its blocks as a working driver does.
        plan.drivers.push(DriverLeak {
            module: "leaky.sys".into(),
            tags: vec![*b"Leak"],
            leak: matches!(self.growth, Growth::Leaking { .. }),
        });
        let mut pool = poolstate::finish(sys, &plan)?;
        pool["series"] = json!({
            "step": self.step,
            "leak_blocks": leaked,
            "leak_block_bytes": block_bytes,
            "churn_blocks": churn,
        });
        Ok(Some(pool))
    }
}

/// The bytes the tag tables count for one `Leak` block (header and rounding included): every
/// one is the same size.
fn block_bytes(sys: &System) -> Result<u64, ForgeError> {
    let mut sizes = sys
        .paged
        .allocations
        .iter()
        .filter(|a| a.tag == *b"Leak" && a.allocated)
        .map(|a| a.size);
    let first = sizes
        .next()
        .ok_or_else(|| ForgeError::Internal("no Leak block planted".into()))?;
    if sizes.any(|s| s != first) {
        return Err(ForgeError::Internal(
            "Leak blocks of different sizes".into(),
        ));
    }
    Ok(first)
}
