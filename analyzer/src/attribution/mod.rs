//! Pool tags mapped to drivers, as `poolmon /g` does, from three kinds of evidence, each
//! mapping saying which: a pooltag file (the SDK's `pooltag.txt` or the user's), the built-in
//! table of common Windows tags ([`builtin`]), and the loaded drivers' own code ([`scan`]:
//! the tag as an immediate operand, or as bytes).

pub mod builtin;
pub mod pooltag;
pub mod scan;

pub use pooltag::{PoolTagEntry, PoolTagFile};
pub use scan::{AllocSite, Allocator, AllocatorKind, CodeRegion, TagHits};

use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::pool::Tag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a mapping came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The driver's code passes the tag to an allocation (`mov r8d, imm32` / `push imm32`).
    DriverCodeAllocation,
    /// For the tag "None": the driver's code calls ExAllocatePool (which tags "None").
    DriverCallsUntaggedAllocator,
    /// The pooltag file.
    PoolTagFile,
    /// Our built-in table.
    BuiltIn,
    /// The driver's code holds the tag in another instruction.
    DriverCodeImmediate,
    /// The tag's four bytes occur in the driver's code sections, in no instruction.
    DriverBytes,
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
    /// Calls through an import slot that holds ExAllocatePool.
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
    /// memory operand (an import slot) goes to: calls to ExAllocatePool count as untagged
    /// allocations, and every call site's pool type and size are decoded against it.
    pub fn add_code_with(
        &mut self,
        module: &str,
        bitness: u32,
        regions: &[CodeRegion],
        candidates: &[Tag],
        allocator: &dyn Fn(u64) -> Option<Allocator>,
    ) {
        let untagged_call =
            |slot: u64| allocator(slot).is_some_and(|a| a.kind == AllocatorKind::Untagged);
        let linear = scan::scan(bitness, regions);
        let mut ev = ModuleEvidence {
            name: module.to_string(),
            hits: linear.tags,
            ..Default::default()
        };
        let set: std::collections::HashSet<Tag> = candidates.iter().copied().collect();
        let (anchored, bytes) = scan::anchored_all(bitness, regions, &set);
        ev.bytes = bytes;
        let total = |h: &TagHits| h.alloc_argument + h.other_immediate;
        for (tag, a) in anchored {
            let better = match ev.hits.get(&tag) {
                Some(l) => total(&a) > total(l),
                None => true,
            };
            if better {
                ev.hits.insert(tag, a);
            }
        }
        ev.untagged_calls = linear
            .indirect_calls
            .iter()
            .filter(|(t, _)| untagged_call(**t))
            .map(|(_, n)| *n)
            .sum();
        let (mut sites, truncated) =
            scan::alloc_sites(bitness, regions, &set, allocator, MAX_SITES_PER_MODULE);
        sites.sort_by_key(|s| s.address);
        ev.sites = sites;
        ev.sites_truncated |= truncated;
        self.modules.push(ev);
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
        let mut no_pe = 0usize;
        for m in modules {
            let Some(pe) = &m.pe else {
                no_pe += 1;
                continue;
            };
            let slots = allocator_slots(m.base, pe);
            // An import slot named as an allocator in the module's import table, else (bound
            // or unnamed imports) a slot that holds nt!ExAllocatePool's address.
            let allocator = |slot: u64| {
                slots.get(&slot).copied().or_else(|| {
                    ex_allocate_pool
                        .is_some_and(|a| mem.read_ptr(slot).ok() == Some(a))
                        .then_some(Allocator {
                            kind: AllocatorKind::Untagged,
                            name: "ExAllocatePool",
                        })
                })
            };
            let (bitness, regions, missing) = scan::code_regions_from_memory(mem, m.base, pe);
            if missing > 0 {
                self.warnings
                    .push(format!("{}: {missing} code pages not in the dump", m.name));
            }
            self.add_code_with(&m.name, bitness, &regions, candidates, &allocator);
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

/// The import slots of a module that hold a pool allocator, by the names in its import table.
fn allocator_slots(
    base: u64,
    pe: &crate::kernel::PeInfo,
) -> std::collections::HashMap<u64, Allocator> {
    let psize: u64 = if pe.is_64 { 8 } else { 4 };
    let mut out = std::collections::HashMap::new();
    for dll in pe.imports.iter().flat_map(|i| i.dlls.iter()) {
        if dll.first_thunk == 0 {
            continue;
        }
        for (i, f) in dll.functions.iter().enumerate() {
            let crate::kernel::Import::Name { name, .. } = f else {
                continue;
            };
            if let Some(a) = scan::allocator_named(name) {
                let slot = base
                    .wrapping_add(u64::from(dll.first_thunk))
                    .wrapping_add(i as u64 * psize);
                out.insert(slot, a);
            }
        }
    }
    out
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
        // mov r8d, 'Leak' in leaky.sys; 'None' as bytes in other.sys's code (no instruction).
        let mov_r8d = vec![0x41, 0xb8, b'L', b'e', b'a', b'k'];
        a.add_code(
            "leaky.sys",
            64,
            &[CodeRegion {
                address: 0x1000,
                bytes: mov_r8d,
            }],
            &cands,
            &never,
        );
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
                (Some("leaky.sys"), Source::PoolTagFile, 0, Some(1), None)
            ]
        );
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
