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
mod tests {
    use super::*;

    fn scan_corpus(name: &str) -> ImageScan {
        let path = crate::pool::testmem::corpus(&format!("drivers/{name}"));
        scan_pe_file(&std::fs::read(path).unwrap()).unwrap()
    }

    type Brief = (u64, String, Option<bool>, Option<u64>, &'static str);

    fn brief(s: &ImageScan) -> Vec<Brief> {
        s.sites
            .iter()
            .map(|x| {
                (
                    x.call,
                    x.tag.to_string(),
                    x.paged,
                    x.size,
                    x.callee.unwrap(),
                )
            })
            .collect()
    }

    /// usbnet.sys, read with GNU objdump (`x86_64-w64-mingw32-objdump -d` and `-p`: the IAT
    /// slots 0x1c0009280 ExAllocatePoolWithTag, 0x1c0009180 ExInitializeNPagedLookasideList,
    /// 0x1c0009040 NdisAllocateMemoryWithTagPriority):
    /// - 252c: `mov $Ueem,%r8d` at 250f, `mov 0x4c5e(%rip),%ecx` (the global 0x1c0007180),
    ///   `lea 0x18(%rbx),%esi; mov %esi,%edx` (rbx from memory);
    /// - 26f3: `mov 0x4a98(%rip),%ecx` (the global), `mov $0x1c0,%edx`, `mov $Ueem,%r8d`;
    /// - 2d44: `mov $0xe8,%edi; mov $Ueem,%r8d; mov %edi,%edx` (ecx from before a join);
    /// - bec1: `mov $Ueem,%r8d` at be52, `mov %r8d,0x28(%rsp)` (the lookaside's Tag), size at
    ///   0x20(%rsp) from a computed rax;
    /// - dfb3: `mov $0x5c0,%edx; mov $Ueem,%r8d` (NDIS: nonpaged).
    ///
    /// The global 0x1c0007180 holds 0 in .data (`objdump -s -j .data`) and the code writes it
    /// only with `mov %ebx,..` (ebx = 0 from `xor %ebx,%ebx` at 2c0f, on every path to 2c5e)
    /// and `mov $0x200,%ecx; mov %ecx,..` (NonPagedPoolNx): a default nonpaged pool type.
    /// The other 7 Ueem immediates reach no allocator (ExFreePoolWithTag and the like).
    #[test]
    fn usbnet_sites_match_objdump() {
        let s = scan_corpus("usbnet.sys");
        let ueem = |call, paged, size, callee| (call, "Ueem".to_string(), paged, size, callee);
        let tagged = "ExAllocatePoolWithTag";
        assert_eq!(
            brief(&s),
            [
                ueem(0x1c000252c, Some(false), None, tagged),
                ueem(0x1c00026f3, Some(false), Some(0x1c0), tagged),
                ueem(0x1c0002d44, None, Some(0xe8), tagged),
                ueem(
                    0x1c000bec1,
                    Some(false),
                    None,
                    "ExInitializeNPagedLookasideList"
                ),
                ueem(
                    0x1c000dfb3,
                    Some(false),
                    Some(0x5c0),
                    "NdisAllocateMemoryWithTagPriority"
                ),
            ]
        );
        assert_eq!(s.sites[3].address, 0x1c000be52);
        let h = s.tags[&Tag(*b"Ueem")];
        assert_eq!((h.alloc_argument, h.other_immediate), (5, 7));
        assert_eq!(s.tags[&Tag(*b"USBD")].alloc_argument, 0);
        assert_eq!(s.untagged_sites, 0);
    }

    /// usb2dbg.sys (objdump as above; ExAllocatePoolWithTag's slot is 0x1c0007138): 14 calls,
    /// each after `mov $UDbg,%r8d`. Among them 1099: `mov $0x40,%r15d` at 106b (kept across
    /// a call: r15 is callee-saved), `lea 0x22(%r15),%r12d; mov %r12d,%edx` (0x62) and
    /// `lea -0x3f(%r15),%ecx` (1, PagedPool); 8dc0: `xor %r15d,%r15d` at 8d85, then
    /// `lea 0x28(%r15),%r13d; mov %r13d,%edx` and `xor %ecx,%ecx`; 922c: `mov $0x28,%r14d;
    /// mov %r14d,%edx; xor %ecx,%ecx`. 25 UDbg immediates are ExFreePoolWithTag's and the like.
    #[test]
    fn usb2dbg_sites_match_objdump() {
        let s = scan_corpus("usb2dbg.sys");
        let calls: Vec<u64> = s.sites.iter().map(|x| x.call).collect();
        assert_eq!(
            calls,
            [
                0x1c0001099,
                0x1c00012ff,
                0x1c0001331,
                0x1c00016bf,
                0x1c000183e,
                0x1c0001872,
                0x1c0008439,
                0x1c0008469,
                0x1c00089ed,
                0x1c0008aa7,
                0x1c0008dc0,
                0x1c000922c,
                0x1c00092d3,
                0x1c000953c
            ]
        );
        assert!(s.sites.iter().all(|x| x.tag == Tag(*b"UDbg")));
        let at = |call| brief(&s).into_iter().find(|b| b.0 == call).unwrap();
        assert_eq!(
            (at(0x1c0001099).2, at(0x1c0001099).3),
            (Some(true), Some(0x62))
        );
        assert_eq!(
            (at(0x1c0008dc0).2, at(0x1c0008dc0).3),
            (Some(false), Some(0x28))
        );
        assert_eq!(
            (at(0x1c000922c).2, at(0x1c000922c).3),
            (Some(false), Some(0x28))
        );
        let h = s.tags[&Tag(*b"UDbg")];
        assert_eq!((h.alloc_argument, h.other_immediate), (14, 25));
    }
}
