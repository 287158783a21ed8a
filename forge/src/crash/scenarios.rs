//! The crash scenarios of `forge --scenario`: `crash-stack` (x64 unwind data, or an x86 EBP
//! chain on XP), its hostile variants and its trap-frame variant (0x8E), and `unloaded-leak`
//! (0xC4/0x62: a driver unloaded with pool allocations outstanding).

use super::unloaded::{self, Unloaded};
use super::x64::{self, Variant};
use super::{x86, CrashHeader, CrashTruth};
use crate::pool::PoolKind;
use crate::pool_scenarios::{alloc, background};
use crate::poolstate::{self, PoolPlan};
use crate::scenario::Scenario;
use crate::space::Paging;
use crate::system::{System, VendorDriver};
use crate::ForgeError;
use serde_json::Value;

/// DRIVER_VERIFIER_DETECTED_VIOLATION.
pub const BUGCHECK_C4: u32 = 0xc4;
/// Its parameter 1 for "a driver unloaded without freeing its pool allocations".
pub const C4_UNLOADED_WITH_POOL: u64 = 0x62;
/// The driver unloaded with pool outstanding, and its tag.
pub const LEAKER: &str = "leakflt.sys";
pub const LEAKER_TAG: [u8; 4] = *b"Lflt";
/// Blocks of each pool it leaves behind.
const LEAKED_PAGED: u64 = 24;
const LEAKED_NONPAGED: u64 = 9;

fn crash_driver() -> VendorDriver {
    VendorDriver {
        name: x64::DRIVER,
        pdb: x64::DRIVER_PDB,
        size: x64::DRIVER_SIZE,
        sites: Vec::new(),
        devices: Vec::new(),
    }
}

/// The crash-dump drivers Windows loads and unloads at boot, then `extra`: the unloaded list
/// of a machine up for a few hours. Addresses are in the driver area, clear of loaded images.
fn unloaded_list(sys: &System, extra: Option<&'static str>) -> Vec<Unloaded> {
    let area = sys.spec.plan.drivers + 0x0200_0000;
    let up = sys.clock.up_time / 10_000_000;
    let mut list = vec![
        Unloaded {
            name: "dump_storport.sys",
            start: area,
            size: 0xf000,
            seconds_before_crash: up - 9,
        },
        Unloaded {
            name: "dump_stornvme.sys",
            start: area + 0x20000,
            size: 0xa000,
            seconds_before_crash: up - 9,
        },
        Unloaded {
            name: "dump_dumpfve.sys",
            start: area + 0x40000,
            size: 0x14000,
            seconds_before_crash: up - 10,
        },
    ];
    if let Some(name) = extra {
        list.push(Unloaded {
            name,
            start: area + 0x80000,
            size: 0x19000,
            seconds_before_crash: 2,
        });
    }
    list
}

/// `crash-stack` and its hostile variants.
pub struct CrashStack {
    pub variant: Variant,
}

impl CrashStack {
    pub const ALL: [Variant; 6] = [
        Variant::Clean,
        Variant::Loop,
        Variant::OutsideModules,
        Variant::NoUnwindInfo,
        Variant::PageMissing,
        Variant::TrapFrame,
    ];
}

impl Scenario for CrashStack {
    fn name(&self) -> &'static str {
        match self.variant {
            Variant::Clean => "crash-stack",
            Variant::Loop => "crash-stack-loop",
            Variant::OutsideModules => "crash-stack-outside",
            Variant::NoUnwindInfo => "crash-stack-no-unwind",
            Variant::PageMissing => "crash-stack-cut",
            Variant::TrapFrame => "crash-stack-trap",
        }
    }
    fn description(&self) -> &'static str {
        match self.variant {
            Variant::Clean => "0x1000007E in crashy.sys: a worker thread's stack of nt and driver frames described by .pdata/.xdata (x64; an EBP chain on XP), context record in the header",
            Variant::Loop => "crash-stack whose unwind repeats a frame: ProcessItem returns into itself with its own frame pointer (x64); WorkerRoutine's saved EBP points back down at ProcessItem's frame (x86)",
            Variant::OutsideModules => "crash-stack whose WorkerRoutine returns to an address in no module",
            Variant::NoUnwindInfo => "crash-stack whose WorkerRoutine returns into acmeflt.sys, an image without .pdata (x64 only)",
            Variant::PageMissing => "crash-stack with the stack page of ExpWorkerThread's frame left out of the dump (kernel-bitmap)",
            Variant::TrapFrame => "crash-stack as 0x1000008E: the walk starts from the KTRAP_FRAME of parameter 3, the header's CONTEXT is empty",
        }
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![crash_driver()]
    }
    fn kernel_bitmap_only(&self) -> bool {
        self.variant == Variant::PageMissing
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let x86 = sys.spec.paging == Paging::X86Pae;
        if x86 && self.variant == Variant::NoUnwindInfo {
            return Err(ForgeError::ScenarioUnsupported {
                scenario: self.name().into(),
                profile: sys.spec.name.into(),
                reason: "x86 code has no .pdata to lack: the EBP chain needs none".into(),
            });
        }
        let (mut header, omit) = if x86 {
            x86::plant(sys, self.variant)?
        } else {
            x64::plant(sys, self.variant)?
        };
        if let Some(page) = omit {
            sys.machine.omit_page(page);
        }
        let list = unloaded_list(sys, None);
        header.truth.unloaded_drivers = unloaded::plant(sys, &list)?;
        sys.crash = Some(header);
        Ok(None)
    }
}

/// `unloaded-leak`: Driver Verifier's 0xC4/0x62 as leakflt.sys unloads with 33 blocks tagged
/// "Lflt" outstanding; MmUnloadedDrivers lists it last.
pub struct UnloadedLeak;

impl Scenario for UnloadedLeak {
    fn name(&self) -> &'static str {
        "unloaded-leak"
    }
    fn description(&self) -> &'static str {
        "0xC4/0x62: leakflt.sys unloaded leaving pool tagged 'Lflt'; MmUnloadedDrivers lists it with the boot-time dump_*.sys drivers"
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan::default();
        background(sys, &mut plan)?;
        for i in 0..LEAKED_PAGED {
            alloc(sys, PoolKind::Paged, 0x180 + 0x10 * (i % 3), &LEAKER_TAG)?;
        }
        for _ in 0..LEAKED_NONPAGED {
            alloc(sys, PoolKind::NonPaged, 0x60, &LEAKER_TAG)?;
        }
        plan.history.push((LEAKER_TAG, PoolKind::Paged, 40));
        let list = unloaded_list(sys, Some(LEAKER));
        let unloaded = unloaded::plant(sys, &list)?;
        // Parameter 2: the driver's name, a UNICODE_STRING Verifier keeps.
        let us = sys.type_size("_UNICODE_STRING")?;
        let name = sys.alloc_nonpaged(us + (LEAKER.len() as u64 + 1) * 2, b"Vfdr")?;
        sys.write_unicode_string(name, name + us, LEAKER)?;
        let leaked = LEAKED_PAGED + LEAKED_NONPAGED;
        sys.crash = Some(CrashHeader {
            code: BUGCHECK_C4,
            params: [C4_UNLOADED_WITH_POOL, name, 0, leaked],
            context: None,
            exception: None,
            truth: CrashTruth {
                frames: Vec::new(),
                stopped: None,
                stop_address: None,
                // The stack of this crash is not forged: no bucket to find.
                bucket: None,
                bucket_without_symbols: None,
                followup_module: None,
                trap_frame: None,
                unloaded_drivers: unloaded,
            },
        });
        let mut pool = poolstate::finish(sys, &plan)?;
        pool["unloaded_leaker"] = serde_json::json!({
            "name": LEAKER,
            "tag": String::from_utf8_lossy(&LEAKER_TAG),
            "blocks": leaked,
        });
        Ok(Some(pool))
    }
}
