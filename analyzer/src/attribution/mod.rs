//! Pool tags mapped to drivers, as `poolmon /g` does, from three kinds of evidence, each
//! mapping saying which: a pooltag file (the SDK's `pooltag.txt` or the user's), the built-in
//! table of common Windows tags ([`builtin`]), and the loaded drivers' own code: allocation
//! call sites whose tag reaches a pool allocator ([`sites`], through import slots, import
//! thunks and the driver's wrappers), else the tag as an immediate in any instruction, else as
//! bytes ([`scan`]).
//!
//! Allocators recognised ([`allocators`]): ExAllocatePool, ExAllocatePoolWithQuota (untagged:
//! 'None'), ExAllocatePoolWithTag, ...WithQuotaTag, ...WithTagPriority, ExAllocatePool2 and 3
//! (POOL_FLAGS), the lookaside list initialisations (ExInitializeNPagedLookasideList,
//! ExInitializePagedLookasideList, ExInitializeLookasideListEx) and
//! NdisAllocateMemoryWithTagPriority. ExAllocatePoolZero and the other `...Zero` /
//! `...Uninitialized` routines are inline wrappers in wdm.h, seen as the calls they make. The
//! framework's WdfMemoryCreate (through the WdfFunctions table) is not recognised.

pub mod allocators;
pub mod builtin;
pub mod dataflow;
mod flow;
mod globals;
pub mod image;
pub mod pooltag;
pub mod scan;
pub mod sites;
pub mod windows;
pub mod wrappers;

pub use allocators::{ImportUse, KnownData};
pub use dataflow::Origin;
pub use image::{scan_pe_file, ImageScan, ScanError};
pub use pooltag::{PoolTagEntry, PoolTagFile};
pub use scan::{AllocSite, Allocator, AllocatorKind, CodeRegion, TagHits};
pub use sites::{SiteKind, Via};

use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::pool::Tag;
use serde::{Deserialize, Serialize};
use sites::ModuleCode;
use std::collections::{BTreeMap, HashSet};

/// Where a mapping came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The driver's code passes the tag to a pool allocator call (directly, through an import
    /// thunk or one of its wrappers).
    DriverCodeAllocation,
    /// For the tag "None": the driver's code calls ExAllocatePool (which tags "None").
    DriverCallsUntaggedAllocator,
    /// The pooltag file.
    PoolTagFile,
    /// Our built-in table.
    BuiltIn,
    /// The driver's code holds the tag as an immediate that reaches no allocator call (a tag
    /// reference: ExFreePoolWithTag, a comparison, an argument of another function).
    DriverCodeImmediate,
    /// The tag's four bytes occur in the driver's code sections, in no instruction.
    DriverBytes,
    /// Provenance tied some of the tag's blocks to the module (evidence in the blocks: its
    /// size, pointers, reachability; docs/json.md "provenance").
    BlockProvenance,
}

/// One tag-to-binary mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// A module name (`leaky.sys`), `nt`, `nt!cm`, or `None` when the source names no binary.
    pub module: Option<String>,
    pub description: Option<String>,
    pub source: Source,
    /// Occurrences in the driver's code (driver evidence), 0 otherwise.
    pub count: u32,
    /// The pooltag file's line (1-based), for that source.
    pub line: Option<usize>,
    /// Driver code evidence: the address of the first instruction holding the tag.
    #[serde(serialize_with = "crate::pool::hex_opt")]
    pub address: Option<u64>,
}

/// What one module's code says about tags.
#[derive(Debug, Default)]
struct ModuleEvidence {
    name: String,
    /// Instruction evidence: the linear decode's, or the anchored decode's where it found more.
    hits: BTreeMap<Tag, TagHits>,
    /// Byte occurrences of candidate tags.
    bytes: BTreeMap<Tag, u32>,
    /// Untagged allocation sites (ExAllocatePool, ExAllocatePoolWithQuota).
    untagged_calls: u32,
    /// Every allocation call site found (bounded by [`MAX_SITES_PER_MODULE`]).
    sites: Vec<AllocSite>,
    /// More sites than kept.
    sites_truncated: bool,
}

/// Most call sites kept per module: enough to list every site of a real driver's few leaking
/// tags while a huge image (nt has thousands) stays bounded.
pub const MAX_SITES_PER_MODULE: usize = 512;

/// Collects evidence and answers "who uses this tag".
#[derive(Debug, Default)]
pub struct Attributor {
    pooltag: Option<PoolTagFile>,
    modules: Vec<ModuleEvidence>,
    /// Modules whose code could not be read at all, and pages missing from those that could.
    pub warnings: Vec<String>,
}

/// The tag ExAllocatePool gives its blocks.
pub const UNTAGGED: Tag = Tag(*b"None");

impl Attributor {
    pub fn new(pooltag: Option<PoolTagFile>) -> Self {
        Attributor {
            pooltag,
            ..Default::default()
        }
    }

    /// Adds one image's code (from a file, or read from the dump). `candidates` are the tags
    /// worth a byte search and an anchored decode (those of the tag tables); the linear decode
    /// reports every tag. `untagged_call` says whether an indirect call's memory operand is an
    /// import slot of ExAllocatePool.
    pub fn add_code(
        &mut self,
        module: &str,
        bitness: u32,
        regions: &[CodeRegion],
        candidates: &[Tag],
        untagged_call: &dyn Fn(u64) -> bool,
    ) {
        let allocator = |slot: u64| {
            untagged_call(slot).then_some(Allocator {
                kind: AllocatorKind::Untagged,
                name: "ExAllocatePool",
            })
        };
        self.add_code_with(module, bitness, regions, candidates, &allocator);
    }

    /// As [`Attributor::add_code`], with `allocator` saying which allocator (if any) a call's
    /// memory operand (an import slot) goes to. Without the image's data, a pool type read
    /// from a global stays unknown; [`Attributor::add_modules`] reads it.
    pub fn add_code_with(
        &mut self,
        module: &str,
        bitness: u32,
        regions: &[CodeRegion],
        candidates: &[Tag],
        allocator: &dyn Fn(u64) -> Option<Allocator>,
    ) {
        let imports = |slot: u64| allocator(slot).map(ImportUse::Allocator);
        let code = ModuleCode {
            bitness,
            regions,
            imports: &imports,
            read_u32: &|_| None,
        };
        let set: HashSet<Tag> = candidates.iter().copied().collect();
        let found = image::scan_code(&code, Some((&set, MAX_SITES_PER_MODULE)));
        self.push(module, found);
    }

    fn push(&mut self, module: &str, found: ImageScan) {
        self.modules.push(ModuleEvidence {
            name: module.to_string(),
            hits: found.tags,
            bytes: found.bytes,
            untagged_calls: found.untagged_sites,
            sites: found.sites,
            sites_truncated: found.truncated,
        });
    }

    /// Reads and scans the code of every loaded module that has PE headers in the dump.
    /// `ex_allocate_pool` is nt!ExAllocatePool's address, when the symbols give it.
    pub fn add_modules(
        &mut self,
        mem: &dyn VirtualMemory,
        modules: &[Module],
        candidates: &[Tag],
        ex_allocate_pool: Option<u64>,
    ) {
        let set: HashSet<Tag> = candidates.iter().copied().collect();
        let mut no_pe = 0usize;
        for m in modules {
            let Some(pe) = &m.pe else {
                no_pe += 1;
                continue;
            };
            // A slot the import table does not name (bound or unnamed imports) that holds
            // nt!ExAllocatePool's address.
            let fallback = |slot: u64| {
                ex_allocate_pool
                    .is_some_and(|a| mem.read_ptr(slot).ok() == Some(a))
                    .then_some(ImportUse::Allocator(Allocator {
                        kind: AllocatorKind::Untagged,
                        name: "ExAllocatePool",
                    }))
            };
            let found = image::scan_loaded(
                mem,
                m.base,
                pe,
                Some(&fallback),
                Some((&set, MAX_SITES_PER_MODULE)),
            );
            if found.missing_pages > 0 {
                self.warnings.push(format!(
                    "{}: {} code pages not in the dump",
                    m.name, found.missing_pages
                ));
            }
            self.push(&m.name, found);
        }
        if no_pe > 0 {
            self.warnings.push(format!(
                "PE headers not in the dump for {no_pe} of {} modules: their code was not scanned for tags",
                modules.len()
            ));
        }
    }

    /// The allocation call sites found in `module`'s code (address order), and whether more
    /// were found than kept. `None` when the module's code was not scanned.
    pub fn sites(&self, module: &str) -> Option<(&[AllocSite], bool)> {
        self.modules
            .iter()
            .find(|m| m.name == module)
            .map(|m| (&m.sites[..], m.sites_truncated))
    }

    /// Every mapping for `tag`, strongest source first.
    pub fn mappings(&self, tag: Tag) -> Vec<Mapping> {
        let mut out = Vec::new();
        let driver = |module: &str, source, count, address| Mapping {
            module: Some(module.to_string()),
            description: None,
            source,
            count,
            line: None,
            address,
        };
        for m in &self.modules {
            if let Some(h) = m.hits.get(&tag) {
                let (source, count) = if h.alloc_argument > 0 {
                    (Source::DriverCodeAllocation, h.alloc_argument)
                } else {
                    (Source::DriverCodeImmediate, h.other_immediate)
                };
                out.push(driver(&m.name, source, count, Some(h.first)));
            } else if let Some(&n) = m.bytes.get(&tag) {
                out.push(driver(&m.name, Source::DriverBytes, n, None));
            }
            if tag == UNTAGGED && m.untagged_calls > 0 {
                out.push(driver(
                    &m.name,
                    Source::DriverCallsUntaggedAllocator,
                    m.untagged_calls,
                    None,
                ));
            }
        }
        if let Some(f) = &self.pooltag {
            for e in f.lookup(tag) {
                out.push(Mapping {
                    module: e.binary.clone(),
                    description: Some(e.description.clone()),
                    source: Source::PoolTagFile,
                    count: 0,
                    line: Some(e.line),
                    address: None,
                });
            }
        }
        if let Some((b, d)) = builtin::lookup(tag) {
            out.push(Mapping {
                module: Some(b.to_string()),
                description: Some(d.to_string()),
                source: Source::BuiltIn,
                count: 0,
                line: None,
                address: None,
            });
        }
        out.sort_by_key(|m| m.source);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_ranked_and_named() {
        let mut a = Attributor::new(Some(PoolTagFile::parse(
            "Leak - leaky.sys - leaks on purpose\nIrp  - nt - irps\n",
        )));
        let cands = [Tag(*b"Leak"), Tag(*b"None"), Tag(*b"Irp ")];
        let never = |_: u64| false;
        // leaky.sys: mov r8d, 'Leak'; call qword ptr [rip+0] -> slot 0x100c, which holds
        // ExAllocatePoolWithTag.
        let alloc = vec![0x41, 0xb8, b'L', b'e', b'a', b'k', 0xff, 0x15, 0, 0, 0, 0];
        a.add_code_with(
            "leaky.sys",
            64,
            &[CodeRegion {
                address: 0x1000,
                bytes: alloc,
            }],
            &cands,
            &|slot| {
                (slot == 0x100c).then(|| allocators::allocator_named("ExAllocatePoolWithTag"))?
            },
        );
        // free.sys: mov r8d, 'Leak' and no allocator call: a tag reference only.
        a.add_code(
            "free.sys",
            64,
            &[CodeRegion {
                address: 0x4000,
                bytes: vec![0x41, 0xb8, b'L', b'e', b'a', b'k', 0xc3],
            }],
            &cands,
            &never,
        );
        // 'None' as bytes in other.sys's code (no instruction).
        a.add_code(
            "other.sys",
            64,
            &[CodeRegion {
                address: 0x2000,
                bytes: vec![0xc3, b'N', b'o', b'n', b'e'],
            }],
            &cands,
            &never,
        );
        // untagged.sys: call qword ptr [rip+0] -> slot 0x3006, which holds ExAllocatePool.
        a.add_code(
            "untagged.sys",
            64,
            &[CodeRegion {
                address: 0x3000,
                bytes: vec![0xff, 0x15, 0, 0, 0, 0],
            }],
            &cands,
            &|t| t == 0x3006,
        );
        let m = a.mappings(Tag(*b"Leak"));
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.module.as_deref(), m.source, m.count, m.line, m.address))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("leaky.sys"),
                    Source::DriverCodeAllocation,
                    1,
                    None,
                    Some(0x1000)
                ),
                (Some("leaky.sys"), Source::PoolTagFile, 0, Some(1), None),
                (
                    Some("free.sys"),
                    Source::DriverCodeImmediate,
                    1,
                    None,
                    Some(0x4000)
                ),
            ]
        );
        let (sites, truncated) = a.sites("leaky.sys").unwrap();
        assert!(!truncated);
        assert_eq!(
            sites
                .iter()
                .map(|s| (s.address, s.call))
                .collect::<Vec<_>>(),
            [(0x1000, 0x1006)]
        );
        assert!(a.sites("free.sys").unwrap().0.is_empty());
        let none = a.mappings(UNTAGGED);
        let got: Vec<_> = none
            .iter()
            .map(|m| (m.module.as_deref(), m.source))
            .collect();
        assert_eq!(
            got,
            [
                (Some("untagged.sys"), Source::DriverCallsUntaggedAllocator),
                (Some("<any>"), Source::BuiltIn),
                (Some("other.sys"), Source::DriverBytes)
            ]
        );
        let irp = a.mappings(Tag(*b"Irp "));
        assert_eq!(
            irp.iter().map(|m| m.source).collect::<Vec<_>>(),
            [Source::PoolTagFile, Source::BuiltIn]
        );
    }
}
