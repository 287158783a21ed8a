//! Pool tags mapped to drivers, as `poolmon /g` does, from three kinds of evidence, each
//! mapping saying which: a pooltag file (the SDK's `pooltag.txt` or the user's), the built-in
//! table of common Windows tags ([`builtin`]), and the loaded drivers' own code ([`scan`]:
//! the tag as an immediate operand, or as bytes).

pub mod builtin;
pub mod pooltag;
pub mod scan;

pub use pooltag::{PoolTagEntry, PoolTagFile};
pub use scan::{CodeRegion, TagHits};

use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::pool::Tag;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where a mapping came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The driver's code passes the tag to an allocation (`mov r8d, imm32` / `push imm32`).
    DriverCodeAllocation,
    /// The pooltag file.
    PoolTagFile,
    /// Our built-in table.
    BuiltIn,
    /// The driver's code holds the tag in another instruction.
    DriverCodeImmediate,
    /// The tag's four bytes occur in the driver's code sections.
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

/// Collects evidence and answers "who uses this tag".
#[derive(Debug, Default)]
pub struct Attributor {
    pooltag: Option<PoolTagFile>,
    /// Per module: immediate hits.
    code: Vec<(String, BTreeMap<Tag, TagHits>)>,
    /// Per module: its code bytes, kept only for the byte search of tags with no immediate.
    bytes: Vec<(String, Vec<CodeRegion>)>,
    /// Modules whose code could not be read at all, and pages missing from those that could.
    pub warnings: Vec<String>,
}

impl Attributor {
    pub fn new(pooltag: Option<PoolTagFile>) -> Self {
        Attributor { pooltag, ..Default::default() }
    }

    /// Adds one image's code (from a file, or read from the dump).
    pub fn add_code(&mut self, module: &str, bitness: u32, regions: Vec<CodeRegion>) {
        let hits = scan::scan_code(bitness, &regions);
        self.code.push((module.to_string(), hits));
        self.bytes.push((module.to_string(), regions));
    }

    /// Reads and scans the code of every loaded module that has PE headers in the dump.
    pub fn add_modules(&mut self, mem: &dyn VirtualMemory, modules: &[Module]) {
        let mut no_pe = 0usize;
        for m in modules {
            let Some(pe) = &m.pe else {
                no_pe += 1;
                continue;
            };
            let (bitness, regions, missing) = scan::code_regions_from_memory(mem, m.base, pe);
            if missing > 0 {
                self.warnings.push(format!("{}: {missing} code pages not in the dump", m.name));
            }
            self.add_code(&m.name, bitness, regions);
        }
        if no_pe > 0 {
            self.warnings.push(format!(
                "PE headers not in the dump for {no_pe} of {} modules: their code was not scanned for tags",
                modules.len()
            ));
        }
    }

    /// Every mapping for `tag`, strongest source first.
    pub fn mappings(&self, tag: Tag) -> Vec<Mapping> {
        let mut out = Vec::new();
        for (module, hits) in &self.code {
            if let Some(h) = hits.get(&tag) {
                let (source, count) = if h.alloc_argument > 0 {
                    (Source::DriverCodeAllocation, h.alloc_argument)
                } else {
                    (Source::DriverCodeImmediate, h.other_immediate)
                };
                out.push(Mapping { module: Some(module.clone()), description: None, source, count, line: None, address: Some(h.first) });
            }
        }
        if out.is_empty() {
            for (module, regions) in &self.bytes {
                let n: u32 = regions.iter().filter_map(|r| scan::byte_hits(&r.bytes, &[tag]).get(&tag).copied()).sum();
                if n > 0 {
                    out.push(Mapping {
                        module: Some(module.clone()),
                        description: None,
                        source: Source::DriverBytes,
                        count: n,
                        line: None,
                        address: None,
                    });
                }
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
        let mut a = Attributor::new(Some(PoolTagFile::parse("Leak - leaky.sys - leaks on purpose\nIrp  - nt - irps\n")));
        // mov r8d, 'Leak' in leaky.sys; 'Leak' as bytes in other.sys's code (no instruction).
        let mov_r8d = vec![0x41, 0xb8, b'L', b'e', b'a', b'k'];
        a.add_code("leaky.sys", 64, vec![CodeRegion { address: 0x1000, bytes: mov_r8d }]);
        a.add_code("other.sys", 64, vec![CodeRegion { address: 0x2000, bytes: vec![0xc3, b'N', b'o', b'n', b'e'] }]);
        let m = a.mappings(Tag(*b"Leak"));
        let got: Vec<_> = m.iter().map(|m| (m.module.as_deref(), m.source, m.count, m.line)).collect();
        assert_eq!(
            got,
            [(Some("leaky.sys"), Source::DriverCodeAllocation, 1, None), (Some("leaky.sys"), Source::PoolTagFile, 0, Some(1))]
        );
        let none = a.mappings(Tag(*b"None"));
        // Byte evidence is the weakest source: after the built-in table.
        assert_eq!(none.iter().map(|m| m.source).collect::<Vec<_>>(), [Source::BuiltIn, Source::DriverBytes]);
        assert_eq!(none[1].module.as_deref(), Some("other.sys"));
        let irp = a.mappings(Tag(*b"Irp "));
        assert_eq!(irp.iter().map(|m| m.source).collect::<Vec<_>>(), [Source::PoolTagFile, Source::BuiltIn]);
    }
}
