//! Block provenance: which module allocated each pool block whose tag does not say, and
//! where. 'None' is every ExAllocatePool caller's tag; a tag several drivers' code allocates
//! with names none of them. For those blocks the owner comes from evidence in the dump (see
//! [`decide`]): Driver Verifier's records, the block's size against the modules' call sites,
//! pointers inside it, and chains of pointers from the modules' data and device extensions.
//! Blocks nothing live points to are *orphans*, the strongest single-dump sign of a leak.
//!
//! Two walks of the pool: the first (the analysis's own) indexes the blocks to examine
//! ([`Collector`]); the second reads every allocated block's contents for pointers
//! ([`refs`]). Memory stays bounded: the index and the pointers kept have limits, and the
//! report says when one was reached.

pub mod classify;
pub mod decide;
mod index;
pub mod modules;
pub mod objects;
pub mod refs;
mod sizes;
mod summary;

pub use decide::{Certainty, Decision, Evidence, EvidenceKind, SiteBasis};
pub use index::{Entry, MAX_INDEXED_BLOCKS};

use crate::attribution::Attributor;
use crate::kernel::KernelInfo;
use crate::pool::scan::PoolReader;
use crate::pool::verifier::VerifierTracking;
use crate::pool::{SeenBlock, Tag};
use crate::symbols::Profile;
use classify::{TagClass, TagClasses};
use decide::{Inputs, Site, Tracked};
use index::BlockIndex;
use modules::{writable_sections, ModuleMap};
use objects::{find_driver_objects, DriverObjects, DRIVER_TAG};
use refs::{ObjectRanges, RefScan};

/// The first walk's sink: indexes the blocks to examine and notes the driver and device
/// object blocks.
pub struct Collector<'a> {
    classes: TagClasses<'a>,
    modules: ModuleMap,
    index: BlockIndex,
    driver_blocks: Vec<(u64, u64)>,
    /// Driver Verifier's tracked allocations: (address the driver got, caller), sorted.
    tracked: Vec<(u64, u64)>,
}

impl<'a> Collector<'a> {
    pub fn new(
        attributor: &'a Attributor,
        kernel: &KernelInfo,
        verifier: Option<&VerifierTracking>,
    ) -> Self {
        let modules = ModuleMap::new(&kernel.modules.modules, kernel.kernel_base);
        let mut tracked: Vec<(u64, u64)> = verifier
            .iter()
            .flat_map(|v| v.drivers.iter())
            .flat_map(|d| d.allocations.iter())
            .map(|a| (a.address, a.caller))
            .collect();
        tracked.sort_unstable();
        Collector {
            classes: TagClasses::new(attributor, modules.names()),
            modules,
            index: BlockIndex::default(),
            driver_blocks: Vec::new(),
            tracked,
        }
    }

    /// The verifier's record of an allocation inside `[start, end)`: its caller.
    fn tracked_in(&self, start: u64, end: u64) -> Option<u64> {
        let i = self.tracked.partition_point(|&(a, _)| a < start);
        self.tracked
            .get(i)
            .filter(|&&(a, _)| a < end)
            .map(|&(_, caller)| caller)
    }

    pub fn add(&mut self, b: SeenBlock) {
        if !b.block.allocated {
            return;
        }
        let tag = b.block.tag.unprotected();
        if tag == DRIVER_TAG {
            self.driver_blocks.push((b.block.address, b.block.size));
        }
        match self.classes.class(tag) {
            TagClass::Ambiguous => self.index.push(&b, TagClass::Ambiguous),
            TagClass::Owned(m) if !self.modules.is_core(m) => {
                self.index.push(&b, TagClass::Owned(m))
            }
            // Verifier tracked it: examined whatever its tag (a verified driver's
            // ExAllocatePool blocks are tagged by the verifier's own wrapper on XP).
            _ if !self.tracked.is_empty()
                && self
                    .tracked_in(
                        b.block.address,
                        b.block.address.saturating_add(b.block.size),
                    )
                    .is_some() =>
            {
                self.index.push(&b, TagClass::Ambiguous)
            }
            _ => {}
        }
    }
}

/// What provenance found: a decision per examined block, and what limited the scan.
pub struct Provenance {
    index: BlockIndex,
    decisions: Vec<Decision>,
    modules: ModuleMap,
    pub driver_objects: Vec<DriverObjects>,
    pub limits: Limits,
}

/// What the scan could not see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Blocks to examine left out of the index (its limit was reached).
    pub blocks_left_out: u64,
    /// Pointers between examined blocks were dropped (their targets taken as live).
    pub pointers_dropped: bool,
    /// Pages of blocks and module sections that could not be read.
    pub unread_pages: u64,
    /// Allocated blocks whose contents were read.
    pub blocks_scanned: u64,
}

/// One examined block and its decision.
#[derive(Clone, Copy)]
pub struct BlockProvenance<'p> {
    provenance: &'p Provenance,
    pub entry: &'p Entry,
    pub decision: &'p Decision,
}

/// Runs the pointer scan (the second walk of `reader`) and decides every examined block.
pub fn trace(
    reader: &PoolReader,
    kernel: &KernelInfo,
    profile: Option<&Profile>,
    mut collector: Collector,
    attributor: &Attributor,
) -> Provenance {
    collector.index.seal();
    let mem = reader.memory();
    let bases: Vec<u64> = kernel.modules.modules.iter().map(|m| m.base).collect();
    let driver_objects = find_driver_objects(
        mem,
        profile,
        &collector.modules,
        &bases,
        &collector.driver_blocks,
    );
    let objects = object_ranges(&driver_objects, profile);
    let pointer_size = reader.context().pointer_size;
    let mut scan = RefScan::new(&collector.index, &collector.modules, &objects, pointer_size);
    // Nothing to examine (a pool only Windows allocates from): no pointer can matter, and the
    // second walk, which reads every block's contents, is skipped.
    if !collector.index.is_empty() {
        for (i, m) in kernel.modules.modules.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { break };
            for (start, size) in writable_sections(m) {
                scan.scan_section(mem, i, start, size);
            }
        }
        let classes = &mut collector.classes;
        reader.walk(&mut |b| scan.scan_block(mem, &b, classes));
    }
    let refs = scan.refs;
    let sites = sites(attributor, &collector.modules);
    let tracked = tracked(&collector, &sites);
    let header = if pointer_size == 8 { 16 } else { 8 };
    let decisions = decide::decide(
        &Inputs {
            index: &collector.index,
            sites: &sites,
            header,
            tracked: &tracked,
        },
        &refs,
    );
    Provenance {
        limits: Limits {
            blocks_left_out: collector.index.left_out,
            pointers_dropped: refs.edges_truncated,
            unread_pages: refs.unread_pages,
            blocks_scanned: refs.blocks_scanned,
        },
        index: collector.index,
        decisions,
        modules: collector.modules,
        driver_objects,
    }
}

impl Provenance {
    /// Every examined block with its decision, in address order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockProvenance<'_>> {
        self.index
            .entries()
            .iter()
            .zip(&self.decisions)
            .map(|(entry, decision)| BlockProvenance {
                provenance: self,
                entry,
                decision,
            })
    }

    /// The examined block that starts at `address`.
    pub fn block_at(&self, address: u64) -> Option<BlockProvenance<'_>> {
        let i = self.index.starting_at(address)?;
        Some(BlockProvenance {
            provenance: self,
            entry: &self.index.entries()[i],
            decision: &self.decisions[i],
        })
    }

    /// The module name of an index into the module list.
    pub fn module_name(&self, m: u16) -> &str {
        self.modules.name(m)
    }

    pub fn examined(&self) -> usize {
        self.index.len()
    }
}

/// Device extensions, and the driver and device objects, by module.
fn object_ranges(drivers: &[DriverObjects], profile: Option<&Profile>) -> ObjectRanges {
    let driver_size = profile
        .and_then(|p| p.type_size("_DRIVER_OBJECT"))
        .unwrap_or(0);
    let device_size = profile
        .and_then(|p| p.type_size("_DEVICE_OBJECT"))
        .unwrap_or(0);
    let mut r = ObjectRanges::default();
    for d in drivers {
        r.objects
            .push((d.driver_object, d.driver_object + driver_size, d.module));
        for &(dev, ext, ext_size) in &d.devices {
            r.objects.push((dev, dev + device_size, d.module));
            if ext != 0 && ext_size > 0 {
                r.extensions.push((ext, ext + ext_size, d.module));
            }
        }
    }
    r.objects.sort_unstable();
    r.extensions.sort_unstable();
    r
}

/// Verifier's record for each indexed block: the module holding the caller, and the call site
/// right before the caller (the recorded address is the return address).
fn tracked(collector: &Collector, sites: &[Site]) -> Vec<Option<Tracked>> {
    collector
        .index
        .entries()
        .iter()
        .map(|e| {
            let caller = collector.tracked_in(e.address, e.end())?;
            let module = collector.modules.at(caller)?;
            let site = sites
                .iter()
                .filter(|s| {
                    s.module == module && s.call < caller && caller - s.call <= MAX_CALL_BYTES
                })
                .max_by_key(|s| s.call)
                .map(|s| s.address);
            Some(Tracked { module, site })
        })
        .collect()
}

/// The longest x86 instruction: a call ends at most this far after it starts.
const MAX_CALL_BYTES: u64 = 15;

/// Every module's allocation call sites, as provenance matches them.
fn sites(attributor: &Attributor, modules: &ModuleMap) -> Vec<Site> {
    let mut out = Vec::new();
    for (i, name) in modules.names().iter().enumerate() {
        let Ok(module) = u16::try_from(i) else { break };
        let Some((sites, _)) = attributor.sites(name) else {
            continue;
        };
        out.extend(sites.iter().map(|s| Site {
            module,
            address: s.call,
            call: s.call,
            tag: if s.untagged_call {
                classify::UNTAGGED
            } else {
                Tag::from_u32(s.tag.as_u32()).unprotected()
            },
            paged: s.paged,
            size: s.size,
        }));
    }
    out
}

#[cfg(test)]
mod tests;
