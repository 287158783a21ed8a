//! Pool usage per pool descriptor, as `!vm` prints "PagedPool N Usage" (and "NonPagedPool N
//! Used" where there is more than one nonpaged pool).
//!
//! The kdexts `!vm` source (memory.c, as published in public repositories) walks
//! `nt!ExpPagedPoolDescriptor`, an array of `_POOL_DESCRIPTOR` pointers, for
//! `ExpNumberOfPagedPools + 1` entries (descriptor 0 and one per paged pool; a 4-processor 7601
//! machine's `!vm` prints "PagedPool 0" to "PagedPool 4"), and prints `TotalPages +
//! TotalBigPages` of each; nonpaged descriptors (`ExpNonPagedPoolDescriptor`,
//! `ExpNumberOfNonPagedPools` of them) only when there are several. The symbol files give the
//! counters: XP's `_POOL_DESCRIPTOR` has `TotalPages` and `TotalBigPages` (ULONG, +0x10/+0x14),
//! 7601's the same names (LONG, +0xc0/+0x48); 17763's keeps `PagesAllocated`,
//! `PagesDeallocated`, `BigPagesAllocated`, `BigPagesDeallocated` (ULONGLONG) instead, whose
//! differences are the pages in use. 19041 and 20348 have no pool descriptors (segment heap).

use super::vm_read::Vars;
use super::{hex, vm::Figure};
use crate::memory::PAGE_SIZE;
use serde::Serialize;

/// Most descriptors read per pool (Windows 7 x64 has at most 64 + 1 paged pools).
pub const MAX_DESCRIPTORS: u32 = 65;

const PD: &str = "_POOL_DESCRIPTOR";

/// One pool descriptor's pages in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolDescriptorUsage {
    /// The descriptor's index in the array (`!vm`'s "PagedPool N").
    pub index: u32,
    #[serde(serialize_with = "hex")]
    pub descriptor: u64,
    #[serde(flatten)]
    pub usage: Figure,
}

/// The paged pool descriptors (`ExpNumberOfPagedPools + 1`).
pub fn paged_descriptors(v: &Vars) -> Vec<PoolDescriptorUsage> {
    match v.ulong("ExpNumberOfPagedPools") {
        Some(n) if n < MAX_DESCRIPTORS => descriptors(v, "ExpPagedPoolDescriptor", n + 1),
        _ => Vec::new(),
    }
}

/// The nonpaged pool descriptors, when there is more than one.
pub fn nonpaged_descriptors(v: &Vars) -> Vec<PoolDescriptorUsage> {
    match v.ulong("ExpNumberOfNonPagedPools") {
        Some(n) if n > 1 && n <= MAX_DESCRIPTORS => descriptors(v, "ExpNonPagedPoolDescriptor", n),
        _ => Vec::new(),
    }
}

fn descriptors(v: &Vars, array: &str, count: u32) -> Vec<PoolDescriptorUsage> {
    let Some(base) = v.ctx.global(array) else {
        return Vec::new();
    };
    let ptr = u64::from(v.ctx.pointer_size);
    let mut out = Vec::new();
    for index in 0..count {
        let Some(desc) = v
            .mem
            .read_ptr(base + u64::from(index) * ptr)
            .ok()
            .filter(|&d| d != 0)
        else {
            continue;
        };
        if let Some((pages, fields)) = descriptor_pages(v, desc) {
            out.push(PoolDescriptorUsage {
                index,
                descriptor: desc,
                usage: Figure {
                    bytes: pages.saturating_mul(PAGE_SIZE),
                    source: format!("profile:{array}[{index}]->{fields}"),
                },
            });
        }
    }
    out
}

/// Pages in use of the descriptor at `desc`, and the fields they came from.
fn descriptor_pages(v: &Vars, desc: u64) -> Option<(u64, &'static str)> {
    let p = v.ctx.profile?;
    let u32_at = |f: &str| -> Option<u64> {
        let off = p.offset(PD, f)?;
        v.mem.read_u32(desc.checked_add(off)?).ok().map(u64::from)
    };
    let u64_at = |f: &str| -> Option<u64> {
        let off = p.offset(PD, f)?;
        v.mem.read_u64(desc.checked_add(off)?).ok()
    };
    if let (Some(small), Some(big)) = (u32_at("TotalPages"), u32_at("TotalBigPages")) {
        return Some((small + big, "TotalPages+TotalBigPages"));
    }
    let small = u64_at("PagesAllocated")?.wrapping_sub(u64_at("PagesDeallocated")?);
    let big = u64_at("BigPagesAllocated")?.wrapping_sub(u64_at("BigPagesDeallocated")?);
    Some((
        small.wrapping_add(big),
        "(PagesAllocated-PagesDeallocated)+(BigPagesAllocated-BigPagesDeallocated)",
    ))
}
