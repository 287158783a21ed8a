//! `untagged-two-drivers`: two drivers of one vendor (acmefs.sys, a file system, and
//! acmeflt.sys, its filter) fill paged pool with ExAllocatePool blocks ('None') until it is
//! above 95% of its maximum; Windows' own NDIS.SYS and tcpip.sys allocate a few 'None' blocks
//! too. The tag cannot say who allocated what: the dump must. What it holds for that:
//! - code: each driver's ExAllocatePool call sites, distinct constant sizes per driver, one
//!   size (0x120) in both drivers, one site whose size is computed (`lea`), big (3-page)
//!   allocations in acmefs, tagged sites ('AcFs', 'AcFl') beside;
//! - live structures: LIST_ENTRY rings headed in each driver's .data, device extensions that
//!   point at blocks, a chain extension -> block -> block -> block, blocks that point back at
//!   their driver's image, DRIVER_OBJECT or DEVICE_OBJECT;
//! - leaks: orphans, blocks nothing points into, filled with text (never a value that could be
//!   a kernel pointer);
//! - trimmed pages ([`crate::pte`]): three pages of orphans paged out, one page of list
//!   entries in transition.
//!
//! The truth ([`crate::provenance_truth`]) gives every block of these modules its owner, call
//! site, orphan flag and evidence ([`crate::ownership`]).

use crate::code::{AllocSite, SiteRecord, SiteSize, VendorDriver};
use crate::ownership::Ledger;
use crate::pool_scenarios::background;
use crate::poolstate::{self, DriverLeak, PoolPlan};
use crate::scenario::Scenario;
use crate::system::System;
use crate::ForgeError;
use serde_json::Value;

const PAGED: u32 = 1;
const NONPAGED: u32 = 0;
/// The size both vendor drivers ask for.
pub const SHARED_SIZE: u32 = 0x120;
/// FILE_DEVICE_DISK_FILE_SYSTEM, FILE_DEVICE_UNKNOWN.
const DISK_FS: u32 = 8;
const UNKNOWN: u32 = 0x22;

pub struct UntaggedTwoDrivers;

fn untagged(pool_type: u32, size: u32) -> AllocSite {
    AllocSite::fixed(None, pool_type, size)
}

impl Scenario for UntaggedTwoDrivers {
    fn name(&self) -> &'static str {
        "untagged-two-drivers"
    }
    fn description(&self) -> &'static str {
        "acmefs.sys and acmeflt.sys (one vendor) fill paged pool with ExAllocatePool 'None' blocks (>95% used; NDIS/tcpip add a few): call sites, live lists, orphans, paged-out and transition pages; per-block owners in the truth"
    }
    fn drivers(&self) -> Vec<VendorDriver> {
        vec![
            VendorDriver {
                name: "acmefs.sys",
                pdb: "acmefs.pdb",
                size: 0x14000,
                sites: vec![
                    untagged(PAGED, 0x1a0),
                    untagged(PAGED, 0x2f0),
                    untagged(PAGED, SHARED_SIZE),
                    AllocSite {
                        tag: None,
                        pool_type: PAGED,
                        size: SiteSize::Computed { base: 0x40 },
                    },
                    untagged(PAGED, 0x3000),
                    AllocSite::fixed(Some(*b"AcFs"), PAGED, 0x90),
                ],
                devices: vec![("AcmeFs", 0x100, DISK_FS), ("AcmeFsCtl", 0x20, UNKNOWN)],
            },
            VendorDriver {
                name: "acmeflt.sys",
                pdb: "acmeflt.pdb",
                size: 0x12000,
                sites: vec![
                    untagged(PAGED, 0x260),
                    untagged(PAGED, SHARED_SIZE),
                    untagged(PAGED, 0x380),
                    AllocSite::fixed(Some(*b"AcFl"), NONPAGED, 0x60),
                ],
                devices: Vec::new(),
            },
            VendorDriver {
                name: "NDIS.SYS",
                pdb: "ndis.pdb",
                size: 0xd0000,
                sites: vec![untagged(NONPAGED, 0xb0)],
                devices: Vec::new(),
            },
            VendorDriver {
                name: "tcpip.sys",
                pdb: "tcpip.pdb",
                size: 0x200000,
                sites: vec![untagged(PAGED, 0x70)],
                devices: Vec::new(),
            },
        ]
    }
    fn plant(&self, sys: &mut System) -> Result<Option<Value>, ForgeError> {
        let mut plan = PoolPlan {
            paged_max_percent_of_use: Some(102),
            ..PoolPlan::default()
        };
        background(sys, &mut plan)?;
        let mut l = Ledger::default();
        let mut story = Story::default();
        acmefs(sys, &mut l, &mut story)?;
        acmeflt(sys, &mut l)?;
        inbox(sys, &mut l)?;
        plan.history
            .push((*b"None", crate::pool::PoolKind::Paged, 40));
        for m in ["acmefs.sys", "acmeflt.sys"] {
            plan.drivers.push(DriverLeak::leaking(m, vec![*b"None"]));
        }
        // The paging files the trimmed pages go to: nonpaged blocks like any other, so
        // planted before the pool's bookkeeping counts the blocks.
        story.paging_files = crate::pte::plant_paging_files(sys)?;
        let pool = poolstate::finish(sys, &plan)?;
        crate::provenance_truth::finish(sys, &l, &story, pool).map(Some)
    }
}

/// Blocks the trimmed pages are chosen around.
#[derive(Debug, Default)]
pub struct Story {
    /// List-linked blocks: one of their pages goes into transition.
    pub listed: Vec<usize>,
    /// The paging files' truth.
    pub paging_files: Value,
}

/// The sites of `module`, in code order.
fn sites(sys: &System, module: &str) -> Vec<SiteRecord> {
    sys.sites
        .iter()
        .filter(|s| s.module == module)
        .cloned()
        .collect()
}

/// Fills a block's data with text (`"<module> <n> "` repeated): bytes 0x20-0x7E, never a
/// value in a kernel address range on x86 or x64.
fn fill(sys: &mut System, l: &Ledger, b: usize) -> Result<(), ForgeError> {
    let e = &l.entries[b];
    let header = e.data - e.block.address;
    let len = (e.block.size - header) as usize;
    let stem = e.owner.trim_end_matches(".sys").trim_end_matches(".SYS");
    let unit = format!("{stem} {b:04} ");
    let text: Vec<u8> = unit.bytes().cycle().take(len).collect();
    sys.machine.write(e.data, &text)
}

fn alloc_n(
    sys: &mut System,
    l: &mut Ledger,
    site: &SiteRecord,
    n: usize,
) -> Result<Vec<usize>, ForgeError> {
    let size = u64::from(site.size.unwrap_or(0x40));
    (0..n)
        .map(|_| {
            let b = l.alloc(sys, site, size)?;
            fill(sys, l, b)?;
            Ok(b)
        })
        .collect()
}

/// Zeroes the first `bytes` of a block's data (a LIST_ENTRY never inserted).
fn zero(sys: &mut System, l: &Ledger, b: usize, bytes: usize) -> Result<(), ForgeError> {
    sys.machine.write(l.entries[b].data, &vec![0u8; bytes])
}

/// A module's image base, .data (list heads at its start) and driver objects.
struct Owner {
    base: u64,
    data: u64,
    driver_object: u64,
    /// (device object, extension) of each device.
    devices: Vec<(u64, u64)>,
}

/// The start of a driver's .data section (where the forge puts its list heads).
pub fn data_section(sys: &System, module: &str) -> Result<u64, ForgeError> {
    owner(sys, module).map(|o| o.data)
}

/// The device extension of a driver's first device.
pub fn extension(sys: &System, module: &str) -> Result<u64, ForgeError> {
    owner(sys, module).map(|o| o.devices[0].1)
}

fn owner(sys: &System, module: &str) -> Result<Owner, ForgeError> {
    let m = sys
        .modules
        .iter()
        .find(|m| m.name == module)
        .ok_or_else(|| ForgeError::Internal(format!("no module {module}")))?;
    let d = sys
        .driver_objects
        .iter()
        .find(|d| d.module == module)
        .ok_or_else(|| ForgeError::Internal(format!("no driver object for {module}")))?;
    let (meta, _) = crate::pe::driver_sections(m.size);
    Ok(Owner {
        base: m.base,
        data: m.base + u64::from(meta) + 0x1000,
        driver_object: d.driver_object,
        devices: d
            .devices
            .iter()
            .map(|v| (v.device_object, v.extension))
            .collect(),
    })
}

fn acmefs(sys: &mut System, l: &mut Ledger, story: &mut Story) -> Result<(), ForgeError> {
    let m = "acmefs.sys";
    let s = sites(sys, m);
    let o = owner(sys, m)?;
    let p = u64::from(sys.ptr_size());
    let ext = o.devices[0].1;
    // S0: 16 entries on the list headed at .data+0x40, 8 leaked (never inserted).
    let s0 = alloc_n(sys, l, &s[0], 24)?;
    l.list(sys, m, o.data + 0x40, &s0[..16])?;
    for &b in &s0[16..] {
        zero(sys, l, b, 0x10)?;
    }
    story.listed.extend_from_slice(&s0[..16]);
    // S1: the extension's first slot heads a chain; 11 more slots point at records (every
    // third of them points back at the device object); 8 leaked, 4 of those with a callback
    // into the driver's code.
    let s1 = alloc_n(sys, l, &s[1], 20)?;
    l.root(sys, m, ext, s1[0])?;
    for (i, &b) in s1[1..12].iter().enumerate() {
        l.root(sys, m, ext + (1 + i as u64) * p, b)?;
        if i % 3 == 0 {
            l.point_to_owner(sys, b, 0x18, o.devices[0].0)?;
        }
    }
    for &b in &s1[12..16] {
        l.point_to_owner(sys, b, 0x18, o.base + 0x1000)?;
    }
    // S2 (the size acmeflt asks for too): 50 leaked, the last 10 with a pointer into .data.
    let s2 = alloc_n(sys, l, &s[2], 50)?;
    for &b in &s2[40..] {
        l.point_to_owner(sys, b, 0x18, o.data + 0x80)?;
    }
    // S3 (computed size 3n + 0x40, n = 1..10): two on the chain, the rest leaked, five of
    // those with a callback pointer.
    let mut s3 = Vec::new();
    for i in 0..18u64 {
        let n = 1 + sys.rng.below(10);
        let b = l.alloc(sys, &s[3], 3 * n + 0x40)?;
        fill(sys, l, b)?;
        if (2..7).contains(&i) {
            l.point_to_owner(sys, b, 0x18, o.base + 0x1040)?;
        }
        s3.push(b);
    }
    l.link(sys, s1[0], 0x10, s3[0])?;
    l.link(sys, s3[0], 0x10, s3[1])?;
    // S4: four 12 KiB buffers, S5: six tagged records pointing at the driver object; all in
    // the extension's later slots.
    let s4 = alloc_n(sys, l, &s[4], 4)?;
    let s5 = alloc_n(sys, l, &s[5], 6)?;
    for (i, &b) in s4.iter().chain(&s5).enumerate() {
        l.root(sys, m, ext + (12 + i as u64) * p, b)?;
    }
    for &b in &s5 {
        l.point_to_owner(sys, b, 0x10, o.driver_object)?;
    }
    Ok(())
}

fn acmeflt(sys: &mut System, l: &mut Ledger) -> Result<(), ForgeError> {
    let m = "acmeflt.sys";
    let s = sites(sys, m);
    let o = owner(sys, m)?;
    let p = u64::from(sys.ptr_size());
    let ext = o.devices[0].1;
    // F0: 12 on the list at .data+0x40, 4 leaked.
    let f0 = alloc_n(sys, l, &s[0], 16)?;
    l.list(sys, m, o.data + 0x40, &f0[..12])?;
    for &b in &f0[12..] {
        zero(sys, l, b, 0x10)?;
    }
    // F1 (the shared size): 10 leaked, 4 with a pointer into the image.
    let f1 = alloc_n(sys, l, &s[1], 10)?;
    for &b in &f1[..4] {
        l.point_to_owner(sys, b, 0x18, o.base + 0x1000)?;
    }
    // F2: eight records in the extension; F3 ('AcFl', nonpaged): four more, each pointing at
    // the device object.
    let f2 = alloc_n(sys, l, &s[2], 8)?;
    let f3 = alloc_n(sys, l, &s[3], 4)?;
    for (i, &b) in f2.iter().chain(&f3).enumerate() {
        l.root(sys, m, ext + i as u64 * p, b)?;
    }
    for &b in &f3 {
        l.point_to_owner(sys, b, 0x10, o.devices[0].0)?;
    }
    Ok(())
}

/// NDIS.SYS: six nonpaged blocks on a list in its .data, each pointing into its .data;
/// tcpip.sys: five paged blocks in the Tcp device's extension.
fn inbox(sys: &mut System, l: &mut Ledger) -> Result<(), ForgeError> {
    let s = sites(sys, "NDIS.SYS");
    let o = owner(sys, "NDIS.SYS")?;
    let n0 = alloc_n(sys, l, &s[0], 6)?;
    l.list(sys, "NDIS.SYS", o.data + 0x40, &n0)?;
    for &b in &n0 {
        l.point_to_owner(sys, b, 0x10, o.data + 0x100)?;
    }
    let s = sites(sys, "tcpip.sys");
    let o = owner(sys, "tcpip.sys")?;
    let p = u64::from(sys.ptr_size());
    let t0 = alloc_n(sys, l, &s[0], 5)?;
    for (i, &b) in t0.iter().enumerate() {
        l.root(sys, "tcpip.sys", o.devices[0].1 + i as u64 * p, b)?;
    }
    Ok(())
}
