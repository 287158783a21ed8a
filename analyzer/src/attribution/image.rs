//! One image's tag evidence, from a PE file on disk or a module loaded in a dump: its import
//! slots (which hold an allocator or known kernel data, by the names in its import table), its
//! code sections, and what [`super::sites`] and [`super::scan`] find there.

use super::allocators::{import_use, ImportUse};
use super::scan::{self, TagHits};
use super::sites::{find_sites, AllocSite, ModuleCode, SiteScan};
use crate::kernel::{Import, PeError, PeFile, PeInfo};
use crate::memory::VirtualMemory;
use crate::pool::Tag;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most sites kept for a whole file (every tag).
pub const MAX_FILE_SITES: usize = 1 << 14;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("not a PE image: {0}")]
    Pe(#[from] PeError),
}

/// What a scan of one image found.
#[derive(Debug, Default)]
pub struct ImageScan {
    /// 32 or 64.
    pub bitness: u32,
    /// The image base the addresses are relative to (the file's preferred base, or the
    /// module's base in the dump).
    pub base: u64,
    /// Allocation call sites, in address order.
    pub sites: Vec<AllocSite>,
    /// More sites were found than kept.
    pub truncated: bool,
    /// Every printable tag immediate, with its allocation sites counted.
    pub tags: BTreeMap<Tag, TagHits>,
    /// Byte occurrences of the candidate tags in the code (file scans have none).
    pub bytes: BTreeMap<Tag, u32>,
    /// Untagged allocation sites (ExAllocatePool, ExAllocatePoolWithQuota) found.
    pub untagged_sites: u32,
    /// Code pages the dump does not hold.
    pub missing_pages: u64,
}

/// Every allocation call site and tag reference of a PE file (a driver on disk), at its
/// preferred image base. Globals are read with their initial values.
pub fn scan_pe_file(bytes: &[u8]) -> Result<ImageScan, ScanError> {
    let file = PeFile::new(bytes)?;
    let pe = file.info()?;
    Ok(scan_loaded(&file, file.base(), &pe, None, None))
}

/// The import slots of an image that hold something the scan understands, by the names in
/// its import table.
pub fn import_uses(base: u64, pe: &PeInfo) -> HashMap<u64, ImportUse> {
    let psize: u64 = if pe.is_64 { 8 } else { 4 };
    let mut out = HashMap::new();
    for dll in pe.imports.iter().flat_map(|i| i.dlls.iter()) {
        if dll.first_thunk == 0 {
            continue;
        }
        for (i, f) in dll.functions.iter().enumerate() {
            let Import::Name { name, .. } = f else {
                continue;
            };
            if let Some(u) = import_use(name) {
                let slot = base
                    .wrapping_add(u64::from(dll.first_thunk))
                    .wrapping_add(i as u64 * psize);
                out.insert(slot, u);
            }
        }
    }
    out
}

/// Scans an image mapped in `mem` at `base`. `fallback` says what a slot the import table does
/// not name holds (bound or unnamed imports); `candidates` restricts the kept sites to those
/// tags (and untagged ones) and enables the byte and anchored searches for them.
pub fn scan_loaded(
    mem: &dyn VirtualMemory,
    base: u64,
    pe: &PeInfo,
    fallback: Option<&dyn Fn(u64) -> Option<ImportUse>>,
    candidates: Option<(&HashSet<Tag>, usize)>,
) -> ImageScan {
    let uses = import_uses(base, pe);
    let imports = |slot: u64| {
        uses.get(&slot)
            .copied()
            .or_else(|| fallback.and_then(|f| f(slot)))
    };
    let read_u32 = |a: u64| mem.read_u32(a).ok();
    let (bitness, regions, missing) = scan::code_regions_from_memory(mem, base, pe);
    let code = ModuleCode {
        bitness,
        regions: &regions,
        imports: &imports,
        read_u32: &read_u32,
    };
    let mut out = scan_code(&code, candidates);
    out.base = base;
    out.missing_pages = missing;
    out
}

/// The evidence in one module's code: sites (kept: those of `candidates`' tags and untagged
/// ones, at most its bound; all when `None`), the immediate census with the anchored decode's
/// finds for candidates, and the candidates' byte occurrences.
pub fn scan_code(code: &ModuleCode, candidates: Option<(&HashSet<Tag>, usize)>) -> ImageScan {
    let (filter, max) = match candidates {
        Some((set, max)) => (Some(set), max),
        None => (None, MAX_FILE_SITES),
    };
    let mut tags = scan::scan(code.bitness, code.regions).tags;
    let mut bytes = BTreeMap::new();
    if let Some(set) = filter {
        let (anchored, b) = scan::anchored_all(code.bitness, code.regions, set);
        bytes = b;
        for (tag, a) in anchored {
            // The anchored decode's count where it sees more (the linear one was out of step).
            if tags
                .get(&tag)
                .is_none_or(|l| a.other_immediate > l.other_immediate)
            {
                tags.insert(tag, a);
            }
        }
    }
    let found = find_sites(code, filter, max);
    count_sites(&mut tags, &found);
    ImageScan {
        bitness: code.bitness,
        untagged_sites: found.counts.get(&super::UNTAGGED).copied().unwrap_or(0),
        sites: found.sites,
        truncated: found.truncated,
        tags,
        bytes,
        ..Default::default()
    }
}

/// Moves each tag's sites from "other immediate" to "allocation", and points `first` at its
/// first kept site.
fn count_sites(tags: &mut BTreeMap<Tag, TagHits>, found: &SiteScan) {
    for (&tag, &n) in &found.counts {
        if tag == super::UNTAGGED {
            continue;
        }
        let first = found.sites.iter().find(|s| s.tag == tag).map(|s| s.address);
        let h = tags.entry(tag).or_insert(TagHits {
            first: first.unwrap_or(0),
            ..TagHits::default()
        });
        h.alloc_argument = n;
        h.other_immediate = h.other_immediate.saturating_sub(n);
        if let Some(a) = first {
            h.first = a;
        }
    }
}

#[cfg(test)]
mod dev {
    #[test]
    #[ignore]
    fn print_sites() {
        let p = std::env::var("SITES_FILE").unwrap();
        let s = super::scan_pe_file(&std::fs::read(p).unwrap()).unwrap();
        for x in &s.sites {
            println!(
                "{:#x} call={:#x} {} {:?} paged={:?} size={:?} via={:?} {:?} tag_from={:?} size_from={:?} paged_from={:?}",
                x.address, x.call, x.tag, x.callee, x.paged, x.size, x.via, x.kind, x.tag_from, x.size_from, x.paged_from
            );
        }
        for (t, h) in &s.tags {
            println!("{t} {h:?}");
        }
    }
}
