//! Scenarios: what a forged dump is about, beyond the base system every dump carries (kernel,
//! drivers, module and process lists). A scenario gets the built [`System`] before it is
//! written and may allocate pool, write kernel globals and map memory; what it returns becomes
//! the truth file's `pool` member.
//!
//! To add one: implement [`Scenario`] in a new file under `scenario/`-like naming, and add it to
//! [`registry`]. The pool-engine issue plugs its pool scenarios (tag tables, big pages, pool
//! pages) in here.

use crate::system::{System, VendorDriver};
use crate::ForgeError;

pub trait Scenario {
    /// The `--scenario` name.
    fn name(&self) -> &'static str;
    /// One line for `forge --list`.
    fn description(&self) -> &'static str;
    /// Third-party drivers the scenario needs loaded (built with the base system, so they are
    /// on the module list).
    fn drivers(&self) -> Vec<VendorDriver> {
        Vec::new()
    }
    /// True when the scenario leaves pages out of the dump, which only the kernel-bitmap
    /// format can (full formats hold every page of physical memory).
    fn kernel_bitmap_only(&self) -> bool {
        false
    }
    /// Plants the scenario's contents; returns the truth file's `pool` value (None = null).
    fn plant(&self, system: &mut System) -> Result<Option<serde_json::Value>, ForgeError>;
}

/// The base system only: no pool contents.
pub struct Baseline;

impl Scenario for Baseline {
    fn name(&self) -> &'static str {
        "baseline"
    }
    fn description(&self) -> &'static str {
        "the base system only: kernel, drivers, module and process lists; no pool contents"
    }
    fn plant(&self, _system: &mut System) -> Result<Option<serde_json::Value>, ForgeError> {
        Ok(None)
    }
}

/// Every scenario the forge knows, in `--list` order.
pub fn registry() -> Vec<Box<dyn Scenario>> {
    use crate::pool_scenarios::*;
    vec![
        Box::new(Baseline),
        Box::new(LeakTagged),
        Box::new(LeakUntagged),
        Box::new(SharedTag),
        Box::new(QuotaLeak),
        Box::new(NonpagedExhaustion),
        Box::new(crate::busy_server::BusyServer),
        Box::new(SessionLeak),
        Box::new(MissingPages),
        Box::new(crate::verifier_tracking::VerifierTracking),
        Box::new(crate::provenance::UntaggedTwoDrivers),
        Box::new(crate::crash::scenarios::CrashStack {
            variant: crate::crash::x64::Variant::Clean,
        }),
        Box::new(crate::crash::scenarios::CrashStack {
            variant: crate::crash::x64::Variant::Loop,
        }),
        Box::new(crate::crash::scenarios::CrashStack {
            variant: crate::crash::x64::Variant::OutsideModules,
        }),
        Box::new(crate::crash::scenarios::CrashStack {
            variant: crate::crash::x64::Variant::NoUnwindInfo,
        }),
        Box::new(crate::crash::scenarios::CrashStack {
            variant: crate::crash::x64::Variant::PageMissing,
        }),
        Box::new(crate::crash::scenarios::CrashStack {
            variant: crate::crash::x64::Variant::TrapFrame,
        }),
        Box::new(crate::crash::scenarios::UnloadedLeak),
        Box::new(crate::series::growth::GrowthScenario {
            growth: crate::series::growth::Growth::Leaking {
                blocks_per_step: crate::series::growth::GrowthScenario::DEFAULT_BLOCKS_PER_STEP,
            },
            step: 0,
        }),
        Box::new(crate::series::growth::GrowthScenario {
            growth: crate::series::growth::Growth::Steady,
            step: 0,
        }),
    ]
}

pub fn find(name: &str) -> Option<Box<dyn Scenario>> {
    registry().into_iter().find(|s| s.name() == name)
}
