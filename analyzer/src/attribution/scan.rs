//! Evidence from drivers' code about tags, below the call sites of [`super::sites`]: the
//! census of every printable four-byte immediate (a tag constant in any instruction: a
//! comparison, ExFreePoolWithTag's argument, or an allocation's), the same found by an
//! anchored decode at each byte occurrence of a candidate tag, and the four bytes found
//! anywhere in the code (data, strings). An immediate is only a "tag reference"; it becomes an
//! allocation when [`super::sites`] sees it reach an allocator call.
//!
//! Code is decoded linearly, section by section, with iced-x86; a wrong start inside data
//! resynchronises within a few instructions, and only printable four-byte constants count.

pub use super::allocators::{allocator_named, Allocator, AllocatorKind, ALLOCATORS};
pub use super::sites::AllocSite;

use super::allocators::ImportUse;
use super::sites::{find_sites, ModuleCode};
use crate::kernel::{PeInfo, Section};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::Tag;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Largest executable section decoded (real drivers' are under a few MB).
pub const MAX_SECTION_BYTES: u64 = 64 << 20;
const IMAGE_SCN_CNT_CODE: u32 = 0x20;
const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;

/// Where a tag was seen in one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TagHits {
    /// Allocation call sites with this tag (an allocator call that the tag reaches). The
    /// census of [`scan`] leaves it 0; the attributor fills it from the sites.
    pub alloc_argument: u32,
    /// The constant in instructions that are not such a site's tag.
    pub other_immediate: u32,
    /// The first site's tag instruction, else the first instruction that holds the tag.
    #[serde(serialize_with = "crate::pool::hex")]
    pub first: u64,
}

/// A run of code bytes at a virtual address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRegion {
    pub address: u64,
    pub bytes: Vec<u8>,
}

/// What a linear decode of an image's code found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeScan {
    /// Every printable four-byte immediate, by tag (all counted as `other_immediate`).
    pub tags: BTreeMap<Tag, TagHits>,
    /// Memory operands of indirect calls (`call [mem]`: an import's IAT slot), with counts.
    pub indirect_calls: BTreeMap<u64, u32>,
}

/// The printable four-byte immediates of one instruction, with whether the instruction has the
/// shape of an allocation's tag argument (`mov r8d, imm32` on x64, `push imm32` on x86): an
/// anchored decode prefers that reading of the bytes.
pub(crate) fn immediates(
    bitness: u32,
    ins: &Instruction,
) -> impl Iterator<Item = (Tag, bool)> + '_ {
    (0..ins.op_count()).filter_map(move |i| {
        if !matches!(
            ins.op_kind(i),
            OpKind::Immediate32 | OpKind::Immediate32to64
        ) {
            return None;
        }
        let tag = Tag::from_u32(ins.immediate(i) as u32);
        if !tag.is_printable() || tag.0 == [b' '; 4] {
            return None;
        }
        let argument_like = match ins.mnemonic() {
            Mnemonic::Mov => i == 1 && matches!(ins.op0_register(), Register::R8D | Register::R8),
            Mnemonic::Push => bitness == 32,
            _ => false,
        };
        Some((tag, argument_like))
    })
}

fn add_hit(h: &mut BTreeMap<Tag, TagHits>, tag: Tag, ip: u64) {
    h.entry(tag)
        .or_insert(TagHits {
            first: ip,
            ..TagHits::default()
        })
        .other_immediate += 1;
}

/// Every printable four-byte immediate in `regions`, by tag.
pub fn scan_code(bitness: u32, regions: &[CodeRegion]) -> BTreeMap<Tag, TagHits> {
    scan(bitness, regions).tags
}

/// Linear decode of `regions`: immediates and indirect call targets.
pub fn scan(bitness: u32, regions: &[CodeRegion]) -> CodeScan {
    let mut out = CodeScan::default();
    let mut ins = Instruction::default();
    for r in regions {
        let mut d = Decoder::with_ip(bitness, &r.bytes, r.address, DecoderOptions::NONE);
        while d.can_decode() {
            d.decode_out(&mut ins);
            if ins.is_invalid() {
                continue;
            }
            for (tag, _) in immediates(bitness, &ins) {
                add_hit(&mut out.tags, tag, ins.ip());
            }
            if ins.mnemonic() == Mnemonic::Call
                && ins.op_count() == 1
                && ins.op0_kind() == OpKind::Memory
            {
                let target = if ins.is_ip_rel_memory_operand() {
                    Some(ins.ip_rel_memory_address())
                } else if ins.memory_base() == Register::None
                    && ins.memory_index() == Register::None
                {
                    Some(ins.memory_displacement64())
                } else {
                    None
                };
                if let Some(t) = target {
                    *out.indirect_calls.entry(t).or_insert(0) += 1;
                }
            }
        }
    }
    out
}

/// Every allocation call site in `regions` for the tags in `tags` (and every untagged one):
/// the older entry point, kept for callers that only know which import slots hold which
/// allocator. It runs [`super::sites::find_sites`] without globals (a pool type read from a
/// global stays unknown). At most `max` sites; the flag says more were found.
pub fn alloc_sites(
    bitness: u32,
    regions: &[CodeRegion],
    tags: &HashSet<Tag>,
    allocator: &dyn Fn(u64) -> Option<Allocator>,
    max: usize,
) -> (Vec<AllocSite>, bool) {
    let imports = |slot: u64| allocator(slot).map(ImportUse::Allocator);
    let code = ModuleCode {
        bitness,
        regions,
        imports: &imports,
        read_u32: &|_| None,
    };
    let found = find_sites(&code, Some(tags), max);
    (found.sites, found.truncated)
}

/// Longest x86 instruction: an anchored decode starts at most this far before the tag.
const MAX_INSTRUCTION: usize = 15;

/// Instruction evidence for `tag` at each byte offset where its four bytes occur: see
/// [`anchored_all`]. Returns the hits and the number of byte occurrences.
pub fn anchored_hits(bitness: u32, regions: &[CodeRegion], tag: Tag) -> (Option<TagHits>, u32) {
    let (mut hits, bytes) = anchored_all(bitness, regions, &HashSet::from([tag]));
    (hits.remove(&tag), bytes.get(&tag).copied().unwrap_or(0))
}

/// For every byte offset where one of `candidates` occurs (one pass, a set lookup per
/// offset), an anchored decode: an instruction that starts up to 15 bytes before the
/// occurrence and ends exactly after it, with the tag as its immediate. This finds tag
/// constants that a linear decode misses when it is out of step (data or padding before a
/// function).
/// Returns the instruction hits and the byte-occurrence counts, by tag.
pub fn anchored_all(
    bitness: u32,
    regions: &[CodeRegion],
    candidates: &HashSet<Tag>,
) -> (BTreeMap<Tag, TagHits>, BTreeMap<Tag, u32>) {
    let mut hits = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    if candidates.is_empty() {
        return (hits, bytes);
    }
    let mut ins = Instruction::default();
    for r in regions {
        for (o, w) in r.bytes.windows(4).enumerate() {
            let tag = Tag([w[0], w[1], w[2], w[3]]);
            if !candidates.contains(&tag) {
                continue;
            }
            *bytes.entry(tag).or_insert(0u32) += 1;
            if let Some((ip, _)) = anchored_at(bitness, r, o, tag, &mut ins) {
                add_hit(&mut hits, tag, ip);
            }
        }
    }
    (hits, bytes)
}

/// The instruction that ends exactly after the tag's bytes at offset `o` of `r` and holds the
/// tag as its immediate: an allocation-argument reading when there is one (x64 `41 b8 imm32`
/// is `mov r8d, imm32`, while its last five bytes alone read as `mov eax, imm32`), else the
/// shortest other reading. Returns its address and whether it is an allocation argument.
fn anchored_at(
    bitness: u32,
    r: &CodeRegion,
    o: usize,
    tag: Tag,
    ins: &mut Instruction,
) -> Option<(u64, bool)> {
    let mut other = None;
    for back in 1..=MAX_INSTRUCTION.min(o) {
        let start = o - back;
        let Some(code) = r.bytes.get(start..o + 4) else {
            continue;
        };
        let mut d = Decoder::with_ip(
            bitness,
            code,
            r.address + start as u64,
            DecoderOptions::NONE,
        );
        d.decode_out(ins);
        if ins.is_invalid() || ins.len() != code.len() {
            continue;
        }
        if let Some((_, alloc)) = immediates(bitness, ins).find(|(t, _)| *t == tag) {
            if alloc {
                return Some((ins.ip(), true));
            }
            other.get_or_insert((ins.ip(), false));
        }
    }
    other
}

/// The instructions holding one of `tags` as an immediate, found by an anchored decode at
/// every byte occurrence (see [`anchored_all`]), with their tags: where a linear decode out of
/// step may have missed a site.
pub fn anchored_instructions(
    bitness: u32,
    regions: &[CodeRegion],
    tags: &HashSet<Tag>,
) -> Vec<(u64, Tag)> {
    let mut out = Vec::new();
    if tags.is_empty() {
        return out;
    }
    let mut ins = Instruction::default();
    for r in regions {
        for (o, w) in r.bytes.windows(4).enumerate() {
            let tag = Tag([w[0], w[1], w[2], w[3]]);
            if !tags.contains(&tag) {
                continue;
            }
            if let Some((ip, _)) = anchored_at(bitness, r, o, tag, &mut ins) {
                out.push((ip, tag));
            }
        }
    }
    out
}

/// The code sections of a PE file on disk, and the bitness to decode them with.
pub fn code_regions_from_file(bytes: &[u8]) -> Result<(u32, Vec<CodeRegion>), String> {
    use object::{Object, ObjectSection, SectionKind};
    let file = object::File::parse(bytes).map_err(|e| format!("not a PE image: {e}"))?;
    let bitness = if file.is_64() { 64 } else { 32 };
    let mut regions = Vec::new();
    for s in file.sections() {
        if s.kind() != SectionKind::Text || s.size() > MAX_SECTION_BYTES {
            continue;
        }
        let data = s
            .data()
            .map_err(|e| format!("section {}: {e}", s.name().unwrap_or("?")))?;
        let len = data.len().min(s.size() as usize);
        regions.push(CodeRegion {
            address: s.address(),
            bytes: data[..len].to_vec(),
        });
    }
    Ok((bitness, regions))
}

/// The executable sections of a loaded image, read from the dump page by page; pages not in
/// the dump split a section into separate runs (and are counted).
pub fn code_regions_from_memory(
    mem: &dyn VirtualMemory,
    base: u64,
    pe: &PeInfo,
) -> (u32, Vec<CodeRegion>, u64) {
    let bitness = if pe.is_64 { 64 } else { 32 };
    let mut regions = Vec::new();
    let mut missing = 0u64;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for s in pe.sections.iter().filter(|s| is_code(s)) {
        let size = u64::from(s.virtual_size.max(s.raw_size)).min(MAX_SECTION_BYTES);
        let start = base.wrapping_add(u64::from(s.virtual_address));
        let mut run: Option<CodeRegion> = None;
        let mut off = 0u64;
        while off < size {
            let va = start.wrapping_add(off);
            let n = (PAGE_SIZE - (va & (PAGE_SIZE - 1))).min(size - off) as usize;
            match mem.read(va, &mut page[..n]) {
                Ok(()) => run
                    .get_or_insert_with(|| CodeRegion {
                        address: va,
                        bytes: Vec::new(),
                    })
                    .bytes
                    .extend_from_slice(&page[..n]),
                Err(_) => {
                    missing += 1;
                    regions.extend(run.take());
                }
            }
            off += n as u64;
        }
        regions.extend(run);
    }
    (bitness, regions, missing)
}

fn is_code(s: &Section) -> bool {
    s.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE) != 0
}

/// How many times each of `tags` occurs as four raw bytes anywhere in `bytes`.
pub fn byte_hits(bytes: &[u8], tags: &[Tag]) -> BTreeMap<Tag, u32> {
    let mut out = BTreeMap::new();
    for t in tags {
        let n = bytes.windows(4).filter(|w| *w == t.0).count() as u32;
        if n > 0 {
            out.insert(*t, n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_driver(name: &str) -> BTreeMap<Tag, TagHits> {
        let bytes =
            std::fs::read(crate::pool::testmem::corpus(&format!("drivers/{name}"))).unwrap();
        let (bitness, regions) = code_regions_from_file(&bytes).unwrap();
        assert_eq!(bitness, 64);
        scan_code(bitness, &regions)
    }

    fn census(m: &BTreeMap<Tag, TagHits>) -> Vec<(String, u32)> {
        m.iter()
            .map(|(t, h)| (t.to_string(), h.alloc_argument + h.other_immediate))
            .collect()
    }

    /// Expected values from GNU objdump (Debian binutils-mingw-w64-x86-64):
    /// `x86_64-w64-mingw32-objdump -d usbnet.sys`, counting `$0xXXXXXXXX,` operands whose four
    /// bytes are printable: Ueem (0x6d656555) 12 times, USBD (0x44425355) once.
    #[test]
    fn usbnet_tags_match_objdump() {
        let m = scan_driver("usbnet.sys");
        assert_eq!(
            census(&m),
            [("USBD".to_string(), 1), ("Ueem".to_string(), 12)]
        );
        // The census alone never says "allocation": that takes a call (see `sites`).
        assert!(m.values().all(|h| h.alloc_argument == 0));
    }

    /// objdump on usb2dbg.sys: UDbg (0x67624455) 39 times, NAME (0x454d414e) once.
    #[test]
    fn usb2dbg_tags_match_objdump() {
        let m = scan_driver("usb2dbg.sys");
        assert_eq!(
            census(&m),
            [("NAME".to_string(), 1), ("UDbg".to_string(), 39)]
        );
    }

    /// A loaded image read from memory: only executable sections, split where a page is
    /// missing from the dump, and the tag on a present page still found.
    #[test]
    fn code_from_memory_skips_missing_pages() {
        use crate::pool::testmem::Image;
        let base = 0xffff_f800_0100_0000_u64;
        let mut img = Image::new(8);
        // .text: 3 pages at +0x1000; the middle one is mapped but not in the dump.
        img.write(base + 0x1000, &[0x41, 0xb8, b'L', b'e', b'a', b'k', 0xc3]);
        img.missing(base + 0x2000);
        img.write(base + 0x3000, &[0xc3]);
        // .data (not executable) holds the tag too: not code.
        img.write(base + 0x4000, b"Data");
        let sec = |name: &str, va: u32, size: u32, ch: u32| Section {
            name: name.into(),
            virtual_address: va,
            virtual_size: size,
            raw_size: size,
            raw_offset: va,
            characteristics: ch,
        };
        let pe = PeInfo {
            machine: 0x8664,
            timestamp: 0,
            size_of_image: 0x5000,
            checksum: 0,
            image_base: base,
            entry_point: 0x1000,
            is_64: true,
            sections: vec![
                sec(".text", 0x1000, 0x3000, 0x6000_0020),
                sec(".data", 0x4000, 0x1000, 0xc000_0040),
            ],
            imports: None,
            codeview: None,
            warnings: Vec::new(),
        };
        let (bitness, regions, missing) = code_regions_from_memory(img.memory(), base, &pe);
        assert_eq!((bitness, missing), (64, 1));
        let runs: Vec<_> = regions
            .iter()
            .map(|r| (r.address - base, r.bytes.len()))
            .collect();
        assert_eq!(runs, [(0x1000, 0x1000), (0x3000, 0x1000)]);
        let hits = scan_code(bitness, &regions);
        assert_eq!(
            hits.get(&Tag(*b"Leak"))
                .map(|h| (h.other_immediate, h.first)),
            Some((1, base + 0x1000))
        );
        assert!(!hits.contains_key(&Tag(*b"Data")));
    }

    #[test]
    fn x86_immediates_and_bytes() {
        // push 0x6b61654c ("Leak"); mov eax, 0x6b61654c; push 0x00000010 (not printable)
        let code = [
            0x68, 0x4c, 0x65, 0x61, 0x6b, 0xb8, 0x4c, 0x65, 0x61, 0x6b, 0x68, 0x10, 0, 0, 0,
        ];
        let m = scan_code(
            32,
            &[CodeRegion {
                address: 0x1000,
                bytes: code.to_vec(),
            }],
        );
        assert_eq!(census(&m), [("Leak".to_string(), 2)]);
        assert_eq!(m[&Tag(*b"Leak")].first, 0x1000);
        assert_eq!(
            byte_hits(&code, &[Tag(*b"Leak"), Tag(*b"None")])
                .into_iter()
                .collect::<Vec<_>>(),
            [(Tag(*b"Leak"), 2)]
        );
    }

    /// A linear decode thrown out of step by an odd run of zero bytes swallows `push 'Acme'`
    /// (`00 68` decodes as `add [eax+..], ch`); the anchored decode still finds it.
    #[test]
    fn anchored_decode_recovers_desynchronised_immediates() {
        let mut code = vec![0xc3];
        code.extend_from_slice(&[0u8; 0xff]);
        code.extend_from_slice(&[
            0x68, b'A', b'c', b'm', b'e', 0x68, 0x10, 0, 0, 0, 0x6a, 0, 0xff, 0x15, 0, 0x20, 0, 0,
            0xc3,
        ]);
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: code,
        }];
        let tag = Tag(*b"Acme");
        assert_eq!(
            scan_code(32, &regions).get(&tag),
            None,
            "linear decode misses it"
        );
        let (h, bytes) = anchored_hits(32, &regions, tag);
        assert_eq!(
            (h.map(|h| (h.other_immediate, h.first)), bytes),
            (Some((1, 0x1100)), 1)
        );
        assert_eq!(
            anchored_instructions(32, &regions, &HashSet::from([tag])),
            [(0x1100, tag)]
        );
        // The indirect call through [0x2000] is recorded.
        assert_eq!(scan(32, &regions).indirect_calls.get(&0x2000), Some(&1));
    }

    #[test]
    fn anchored_decode_reads_41_b8_as_mov_r8d() {
        // `41 b8 'Leak'` after a byte that hides it from the linear decode.
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: vec![0x48, 0x41, 0xb8, b'L', b'e', b'a', b'k', 0xc3],
        }];
        let (h, _) = anchored_hits(64, &regions, Tag(*b"Leak"));
        assert_eq!(h.map(|h| h.first), Some(0x1001));
    }
}
