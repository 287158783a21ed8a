//! The conservative pointer scan: every pointer-sized, aligned value in the modules' writable
//! sections and in every allocated pool block is taken for a pointer, and checked against the
//! indexed blocks. What it finds, per indexed block:
//! - *live*: something that is not itself an indexed block holds a pointer into it (a
//!   module's data, a device extension, any other allocated block);
//! - *reach*: the module that pointer names: the module whose data holds it, whose device
//!   extension holds it, or whose own tag the holding block carries;
//! - *points to*: the module its own values point into (its image, not the kernel's or the
//!   HAL's), or whose driver or device objects it points at;
//! - and the pointers between indexed blocks (edges), for the chains decided later.
//!
//! A value is a pointer here only if it lands inside a block; a block pointing to itself (an
//! empty list head) does not count. What the scan cannot see is stated in docs/provenance.md:
//! pointers in registers, on stacks, in pages not in the dump, or stored encoded.

use super::classify::{TagClass, TagClasses};
use super::index::BlockIndex;
use super::modules::ModuleMap;
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::SeenBlock;

/// Most pointers kept between indexed blocks (8 bytes each: 128 MiB at the limit). Beyond,
/// every further target is taken as live, so no block is wrongly called an orphan.
pub const MAX_EDGES: usize = 16 << 20;

/// Which kind of holder named a block's module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The module's writable data (a global list head or pointer).
    ModuleData,
    /// One of the module's device extensions.
    DeviceExtension,
    /// A block whose tag only the module's code allocates with.
    OwnedBlock,
    /// A chain of indexed blocks from one of the above.
    Chain,
}

/// What the evidence of one kind says about a block's module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vote {
    /// The first module named (index into the module list).
    pub module: Option<u16>,
    pub via: Option<Via>,
    /// Another module was named too.
    pub conflict: bool,
}

impl Vote {
    pub fn add(&mut self, module: u16, via: Via) {
        match self.module {
            None => {
                self.module = Some(module);
                self.via = Some(via);
            }
            Some(m) if m != module => self.conflict = true,
            Some(_) => {}
        }
    }

    /// The module, when exactly one was named.
    pub fn decided(&self) -> Option<u16> {
        self.module.filter(|_| !self.conflict)
    }
}

/// What the scan found; vectors are indexed like the block index.
#[derive(Debug, Default)]
pub struct Refs {
    pub live: Vec<bool>,
    pub reach: Vec<Vote>,
    pub points_to: Vec<Vote>,
    pub edges: Vec<(u32, u32)>,
    pub edges_truncated: bool,
    /// Pages of blocks and sections that could not be read (their pointers are unseen).
    pub unread_pages: u64,
    /// Blocks whose contents were read.
    pub blocks_scanned: u64,
}

/// Pointers held in objects that tie them to a module: device extensions and the driver and
/// device objects themselves, as (start, end, module) sorted by start.
#[derive(Debug, Default)]
pub struct ObjectRanges {
    pub extensions: Vec<(u64, u64, u16)>,
    pub objects: Vec<(u64, u64, u16)>,
}

impl ObjectRanges {
    fn find(v: &[(u64, u64, u16)], address: u64) -> Option<u16> {
        let i = v.partition_point(|r| r.0 <= address);
        let r = v.get(i.checked_sub(1)?)?;
        (address < r.1).then_some(r.2)
    }
}

/// Runs the scan over module sections and blocks.
pub struct RefScan<'a> {
    pub index: &'a BlockIndex,
    pub modules: &'a ModuleMap,
    pub objects: &'a ObjectRanges,
    pub pointer_size: u8,
    pub refs: Refs,
    page: Vec<u8>,
    /// The values of one range that may be pool addresses (reused between ranges).
    values: Vec<(u64, u64)>,
}

impl<'a> RefScan<'a> {
    pub fn new(
        index: &'a BlockIndex,
        modules: &'a ModuleMap,
        objects: &'a ObjectRanges,
        pointer_size: u8,
    ) -> Self {
        let n = index.len();
        RefScan {
            index,
            modules,
            objects,
            pointer_size,
            refs: Refs {
                live: vec![false; n],
                reach: vec![Vote::default(); n],
                points_to: vec![Vote::default(); n],
                ..Refs::default()
            },
            page: vec![0u8; PAGE_SIZE as usize],
            values: Vec::new(),
        }
    }

    /// A module's writable section: its pointers make blocks live, and (unless the module is
    /// the kernel or the HAL, which point at everything) name the module.
    pub fn scan_section(&mut self, mem: &dyn VirtualMemory, module: u16, start: u64, size: u64) {
        let owner = (!self.modules.is_core(module)).then_some(module);
        self.scan_range(mem, start, size, false, &mut |scan, value, _| {
            if let Some(d) = scan.index.containing(value) {
                scan.refs.live[d] = true;
                if let Some(m) = owner {
                    scan.refs.reach[d].add(m, Via::ModuleData);
                }
            }
        });
    }

    /// One allocated block of the walk (any block, indexed or not).
    pub fn scan_block(&mut self, mem: &dyn VirtualMemory, b: &SeenBlock, classes: &mut TagClasses) {
        if !b.block.allocated {
            return;
        }
        let this = self.index.starting_at(b.block.address);
        let owned = match classes.class(b.block.tag) {
            TagClass::Owned(m) if !self.modules.is_core(m) => Some(m),
            _ => None,
        };
        self.refs.blocks_scanned += 1;
        let (start, size) = (b.block.address, b.block.size);
        self.scan_range(mem, start, size, this.is_some(), &mut |scan, value, at| {
            if let Some(s) = this {
                scan.note_points_to(s, value);
            }
            let Some(d) = scan.index.containing(value) else {
                return;
            };
            if Some(d) == this {
                return;
            }
            match this {
                Some(s) => scan.edge(s, d),
                None => {
                    scan.refs.live[d] = true;
                    if let Some(m) = ObjectRanges::find(&scan.objects.extensions, at) {
                        scan.refs.reach[d].add(m, Via::DeviceExtension);
                    } else if let Some(m) = owned {
                        scan.refs.reach[d].add(m, Via::OwnedBlock);
                    }
                }
            }
        });
    }

    /// An indexed block's own value: a pointer into a module's image (not the kernel's or
    /// the HAL's) or into its driver or device objects names that module.
    fn note_points_to(&mut self, s: usize, value: u64) {
        let module = self
            .modules
            .at(value)
            .filter(|&m| !self.modules.is_core(m))
            .or_else(|| ObjectRanges::find(&self.objects.objects, value));
        if let Some(m) = module {
            self.refs.points_to[s].add(m, Via::ModuleData);
        }
    }

    fn edge(&mut self, s: usize, d: usize) {
        if self.refs.edges.len() >= MAX_EDGES {
            // No room to decide liveness through this pointer later: take the target as live.
            self.refs.edges_truncated = true;
            self.refs.live[d] = true;
            return;
        }
        if let (Ok(s), Ok(d)) = (u32::try_from(s), u32::try_from(d)) {
            self.refs.edges.push((s, d));
        }
    }

    /// Calls `f(self, value, address_of_value)` for every non-zero aligned pointer-sized
    /// value of `[start, start + size)` that may point into an indexed block (`all_values`:
    /// every value); unreadable pages are counted and skipped.
    fn scan_range(
        &mut self,
        mem: &dyn VirtualMemory,
        start: u64,
        size: u64,
        all_values: bool,
        f: &mut dyn FnMut(&mut Self, u64, u64),
    ) {
        let mut page = std::mem::take(&mut self.page);
        let mut values = std::mem::take(&mut self.values);
        values.clear();
        let unread = for_each_pointer(
            mem,
            self.pointer_size,
            start,
            size,
            &mut page,
            &mut |v, at| {
                // Most values are not pool addresses: unless asked for all, only those in the
                // index's span are kept.
                if all_values || self.index.spans(v) {
                    values.push((v, at));
                }
            },
        );
        self.refs.unread_pages += unread;
        for &(v, at) in &values {
            f(self, v, at);
        }
        self.page = page;
        self.values = values;
    }
}

/// Calls `f(value, address_of_value)` for every non-zero, aligned, pointer-sized value of
/// `[start, start + size)`, reading page by page into `page` (a page-sized buffer). Returns
/// how many pages could not be read (skipped).
pub fn for_each_pointer(
    mem: &dyn VirtualMemory,
    pointer_size: u8,
    start: u64,
    size: u64,
    page: &mut [u8],
    f: &mut dyn FnMut(u64, u64),
) -> u64 {
    let ptr = u64::from(pointer_size);
    let end = start.saturating_add(size);
    let mut va = start.next_multiple_of(ptr);
    let mut unread = 0;
    while va < end {
        let n = (PAGE_SIZE - (va & (PAGE_SIZE - 1))).min(end - va) as usize;
        let Some(buf) = page.get_mut(..n) else {
            break;
        };
        if mem.read(va, buf).is_err() {
            unread += 1;
            va += n as u64;
            continue;
        }
        for (i, w) in buf.chunks_exact(ptr as usize).enumerate() {
            let value = if ptr == 4 {
                u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            } else {
                u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
            };
            if value != 0 {
                f(value, va + (i as u64) * ptr);
            }
        }
        va += n as u64;
    }
    unread
}
