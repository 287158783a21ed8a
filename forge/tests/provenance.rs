//! `untagged-two-drivers` (and shared-tag's owners) read back from the dump with the profile's
//! layouts, independently of the forge's bookkeeping:
//! - every call site in the truth is `FF 15` through the IAT slot that the image's import
//!   directory names for ExAllocatePool / ExAllocatePoolWithTag, bound to the kernel's export;
//!   the pool type and size immediates (or the `lea` of a computed size) are in the code;
//! - every owned block's header, and its evidence recomputed from the dump: `pointer` (a value
//!   into its owner's image or objects), `reachable` (a walk from the owner's .data and device
//!   extensions through readable blocks), `size` and `tag` (from the sites);
//! - orphans: a scan of every stored page for a 4/8-byte value inside any orphan block finds
//!   none, while every other owned block is pointed at;
//! - paged-out pages: the PTE is the profile's `_MMPTE_SOFTWARE` naming the paging file (whose
//!   `_MMPAGING_FILE` is planted) and offset, unswizzled with the kernel's InvalidPteMask; the
//!   transition page's PTE names a stored frame holding its blocks.

#[path = "support/reader.rs"]
mod reader;

use analyzer::symbols::{Field, Profile};
use forge::Options;
use reader::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn forge_scenario(profile: &str, scenario: &str, dir: &Path) -> (PathBuf, Value) {
    let out = dir.join(format!("{profile}-{scenario}.dmp"));
    let mut opts = Options::new(profile, "kernel-bitmap");
    opts.corpus = Some(corpus_dir());
    opts.size = 512 << 20;
    opts.scenario = scenario.to_string();
    forge::forge(&opts, &out).unwrap_or_else(|e| panic!("forge {profile} {scenario}: {e}"));
    let truth: Value =
        serde_json::from_slice(&std::fs::read(forge::truth_path(&out)).unwrap()).unwrap();
    (out, truth)
}

struct Ctx<'a> {
    r: &'a Reader,
    prof: Profile,
    truth: &'a Value,
    kbase: u64,
    p: u64,
}

impl Ctx<'_> {
    fn module(&self, name: &str) -> (u64, u64) {
        let m = self.truth["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no module {name}"));
        (hex(&m["base"]), m["size"].as_u64().unwrap())
    }
    fn value(&self, b: &[u8], at: usize) -> u64 {
        if self.p == 8 {
            u64_at(b, at)
        } else {
            u64::from(u32_at(b, at))
        }
    }
    /// The `(start, end)` ranges of a module's image, driver object and device objects.
    fn owner_ranges(&self, module: &str) -> Vec<(u64, u64)> {
        let (base, size) = self.module(module);
        let mut out = vec![(base, base + size)];
        for d in self.truth["driver_objects"].as_array().unwrap() {
            if d["module"] == module {
                let o = hex(&d["driver_object"]);
                out.push((o, o + self.prof.type_size("_DRIVER_OBJECT").unwrap()));
                for v in d["devices"].as_array().unwrap() {
                    let o = hex(&v["device_object"]);
                    out.push((o, o + self.prof.type_size("_DEVICE_OBJECT").unwrap()));
                }
            }
        }
        out
    }
    /// Aligned pointer-sized values of `len` bytes at `va` (readable ones).
    fn pointers(&self, va: u64, len: u64) -> Vec<u64> {
        let Some(b) = self.r.read(va, len as usize) else {
            return Vec::new();
        };
        (0..len as usize / self.p as usize)
            .map(|i| self.value(&b, i * self.p as usize))
            .collect()
    }
}

/// Every owned block: resident ones and those on paged-out pages.
fn owned(truth: &Value) -> Vec<&Value> {
    let pool = &truth["pool"];
    pool["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(
            pool["provenance"]["paged_out_blocks"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter(|b| b.get("owner").is_some())
        .collect()
}

/// Call sites: `FF 15` through the slot the import directory names for the import, bound to
/// the kernel's export, with the pool type and size in the code.
fn check_sites(c: &Ctx) -> usize {
    let mut n = 0;
    for m in c.truth["pool"]["provenance"]["modules"].as_array().unwrap() {
        let module = m["module"].as_str().unwrap();
        let (base, _) = c.module(module);
        let iat = imports(c, base);
        for s in m["sites"].as_array().unwrap() {
            let call = hex(&s["address"]);
            let code = c.r.read(call, 6).unwrap();
            assert_eq!(&code[..2], &[0xff, 0x15], "{module} {call:#x}: call [mem]");
            let slot = if c.p == 8 {
                (call + 6).wrapping_add(i64::from(i32::from_le_bytes(
                    code[2..6].try_into().unwrap(),
                )) as u64)
            } else {
                u64::from(u32_at(&code, 2))
            };
            assert_eq!(slot, hex(&s["iat_slot"]), "{module} {call:#x}: slot");
            let import = s["import"].as_str().unwrap();
            assert_eq!(
                iat.get(&slot).map(String::as_str),
                Some(import),
                "{module} {call:#x}"
            );
            let bound = c.r.ptr(slot);
            assert_eq!(
                bound,
                c.kbase + c.prof.global(import).unwrap(),
                "{import} binding"
            );
            assert_eq!(hex(&s["return_address"]), call + 6);
            check_immediates(c, s);
            n += 1;
        }
    }
    n
}

/// IAT slot -> imported name, from the image's import directory (ntoskrnl.exe).
fn imports(c: &Ctx, base: u64) -> BTreeMap<u64, String> {
    let h = c.r.read(base, 0x400).unwrap();
    let nt = u32_at(&h, 0x3c) as usize;
    let dirs = nt + 24 + if c.p == 8 { 112 } else { 96 };
    let rva = u64::from(u32_at(&h, dirs + 8));
    let d = c.r.read(base + rva, 20).unwrap();
    let name = c.r.read(base + u64::from(u32_at(&d, 12)), 12).unwrap();
    assert_eq!(&name, b"ntoskrnl.exe");
    let (ilt, iat) = (u64::from(u32_at(&d, 0)), u64::from(u32_at(&d, 16)));
    let mut out = BTreeMap::new();
    for i in 0.. {
        let hint = c.value(&c.r.read(base + ilt + i * c.p, c.p as usize).unwrap(), 0);
        if hint == 0 {
            break;
        }
        let raw = c.r.read(base + hint + 2, 32).unwrap();
        let end = raw.iter().position(|&b| b == 0).unwrap();
        out.insert(
            base + iat + i * c.p,
            String::from_utf8(raw[..end].to_vec()).unwrap(),
        );
    }
    out
}

/// The pool type and size the code passes: x64 `mov ecx, type` / `mov edx, size` (or `lea edx,
/// [rbx+rbx*2+..]`), x86 `push size` / `push type` (or `lea eax, [eax+eax*2+..]`).
fn check_immediates(c: &Ctx, s: &Value) {
    let f = c.r.read(hex(&s["function"]), 0x40).unwrap();
    let find = |pat: &[u8]| f.windows(pat.len()).any(|w| w == pat);
    let ty = s["pool_type_value"].as_u64().unwrap() as u32;
    let computed = if c.p == 8 {
        find(&[0x8d, 0x54, 0x5b])
    } else {
        find(&[0x8d, 0x44, 0x40])
    };
    match s["size"].as_u64() {
        Some(size) => {
            let size = (size as u32).to_le_bytes();
            let pat: Vec<u8> = if c.p == 8 {
                [&[0xba][..], &size].concat()
            } else {
                [&[0x68][..], &size].concat()
            };
            assert!(find(&pat), "{}: size immediate", s["address"]);
            assert!(!computed);
        }
        None => assert!(computed, "{}: computed size", s["address"]),
    }
    let pat: Vec<u8> = if c.p == 8 {
        [&[0xb9][..], &ty.to_le_bytes()].concat()
    } else {
        vec![0x6a, ty as u8]
    };
    assert!(find(&pat), "{}: pool type", s["address"]);
}

/// The block size a site's request gives (header added, rounded to it; big ones in pages).
fn site_block(c: &Ctx, size: u64, heap: bool) -> u64 {
    let h = c.prof.type_size("_POOL_HEADER").unwrap();
    let block = (size + h).div_ceil(h) * h;
    let big = if heap {
        block > 0xfe0
    } else {
        block > 0x1000 - h
    };
    if big {
        size.div_ceil(0x1000) * 0x1000
    } else {
        block
    }
}

/// Evidence recomputed from the dump for every owned block.
fn check_evidence(c: &Ctx) -> usize {
    let blocks = owned(c.truth);
    let heap = c.truth["build"].as_u64().unwrap() >= 18362;
    let sites: Vec<(String, String, String, Option<u64>)> = c.truth["pool"]["provenance"]
        ["modules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["sites"].as_array().unwrap().iter().map(move |s| {
                (
                    m["module"].as_str().unwrap().to_string(),
                    s["tag"].as_str().unwrap_or("None").to_string(),
                    s["pool_type"].as_str().unwrap().to_string(),
                    s["size"].as_u64(),
                )
            })
        })
        .collect();
    let reached = reachable(c, &blocks);
    for b in &blocks {
        let owner = b["owner"].as_str().unwrap();
        let (a, size) = (hex(&b["address"]), b["size"].as_u64().unwrap());
        let readable = c.r.read(a, size as usize).is_some();
        assert_eq!(readable, b.get("paged_out").is_none(), "{a:#x} readable");
        let tag = b["tag"].as_str().unwrap();
        let ranges = c.owner_ranges(owner);
        let pointer = c
            .pointers(a, size)
            .iter()
            .any(|v| ranges.iter().any(|&(s, e)| (s..e).contains(v)));
        let size_mods: BTreeSet<&str> = sites
            .iter()
            .filter(|s| {
                s.1 == tag
                    && s.2 == b["pool_type"]
                    && s.3.is_some_and(|n| site_block(c, n, heap) == size)
            })
            .map(|s| s.0.as_str())
            .collect();
        let tag_mods: BTreeSet<&str> = sites
            .iter()
            .filter(|s| s.1 == tag)
            .map(|s| s.0.as_str())
            .collect();
        let mut want = Vec::new();
        if readable && size_mods.len() == 1 && size_mods.contains(owner) {
            want.push("size");
        }
        if readable && pointer {
            want.push("pointer");
        }
        if reached.get(&a).is_some_and(|o| o == owner) {
            want.push("reachable");
        }
        if readable && tag_mods.len() == 1 {
            want.push("tag");
        }
        let got: Vec<&str> = b["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{a:#x} ({owner}, {size:#x} bytes) evidence");
    }
    blocks.len()
}

/// Block address -> the owner whose .data or device extensions reach it through readable
/// blocks (pointers into a block's bytes count).
fn reachable(c: &Ctx, blocks: &[&Value]) -> BTreeMap<u64, String> {
    let spans: BTreeMap<u64, u64> = blocks
        .iter()
        .map(|b| (hex(&b["address"]), b["size"].as_u64().unwrap()))
        .collect();
    let hit = |v: u64| {
        spans
            .range(..=v)
            .next_back()
            .filter(|(a, s)| v < *a + *s)
            .map(|(a, _)| *a)
    };
    let mut out = BTreeMap::new();
    for d in c.truth["driver_objects"].as_array().unwrap() {
        let module = d["module"].as_str().unwrap();
        let (base, size) = c.module(module);
        let (meta, data_size) = data_section(c, base, size);
        let mut todo: Vec<u64> = c.pointers(base + meta, data_size);
        for v in d["devices"].as_array().unwrap() {
            todo.extend(c.pointers(hex(&v["extension"]), v["extension_size"].as_u64().unwrap()));
        }
        let mut seen = BTreeSet::new();
        while let Some(v) = todo.pop() {
            let Some(a) = hit(v) else { continue };
            if !seen.insert(a) {
                continue;
            }
            out.insert(a, module.to_string());
            todo.extend(c.pointers(a, spans[&a]));
        }
    }
    out
}

/// The .data section (rva, size) of a module, from its section table.
fn data_section(c: &Ctx, base: u64, _size: u64) -> (u64, u64) {
    let h = c.r.read(base, 0x1000).unwrap();
    let nt = u32_at(&h, 0x3c) as usize;
    let n = u16_at(&h, nt + 6) as usize;
    let opt = u16_at(&h, nt + 20) as usize;
    (0..n)
        .map(|i| nt + 24 + opt + 40 * i)
        .find(|&s| &h[s..s + 5] == b".data")
        .map(|s| (u64::from(u32_at(&h, s + 12)), u64::from(u32_at(&h, s + 8))))
        .expect(".data section")
}

/// Scans every stored page for aligned 4/8-byte values inside owned blocks: none point into
/// an orphan, at least one into every other owned block.
fn check_orphans(c: &Ctx) -> usize {
    let blocks = owned(c.truth);
    let spans: BTreeMap<u64, (u64, bool)> = blocks
        .iter()
        .map(|b| {
            (
                hex(&b["address"]),
                (b["size"].as_u64().unwrap(), b["orphan"] == true),
            )
        })
        .collect();
    let mut hits: BTreeMap<u64, u64> = BTreeMap::new();
    let mut page = vec![0u8; 0x1000];
    for &off in c.r.pages.values() {
        use std::os::unix::fs::FileExt;
        c.r.file.read_exact_at(&mut page, off).unwrap();
        for i in 0..0x1000 / 4 {
            let v = if c.p == 8 {
                if i * 4 + 8 > 0x1000 {
                    continue;
                }
                u64_at(&page, i * 4)
            } else {
                u64::from(u32_at(&page, i * 4))
            };
            if let Some((&a, &(s, _))) = spans.range(..=v).next_back() {
                if v < a + s {
                    *hits.entry(a).or_default() += 1;
                }
            }
        }
    }
    let mut orphans = 0;
    for (a, (_, orphan)) in &spans {
        let n = hits.get(a).copied().unwrap_or(0);
        if *orphan {
            assert_eq!(n, 0, "orphan {a:#x}: {n} values in the dump point into it");
            orphans += 1;
        } else {
            assert!(
                n > 0,
                "owned block {a:#x} is not an orphan but nothing points at it"
            );
        }
    }
    orphans
}

fn bits(v: u64, f: Field) -> u64 {
    let len = f.bit_length.unwrap_or(64);
    let mask = if len >= 64 { u64::MAX } else { (1 << len) - 1 };
    (v >> f.bit_position.unwrap_or(0)) & mask
}

/// Paged-out and transition PTEs decoded with the profile's bitfields.
fn check_ptes(c: &Ctx) {
    let pv = &c.truth["pool"]["provenance"];
    let f = |t: &str, n: &str| c.prof.field(t, n).unwrap();
    let swizzle = c.prof.field("_MMPTE_SOFTWARE", "SwizzleBit");
    let mask = swizzle.map(|_| {
        let at = match c.prof.global("MiInvalidPteMask") {
            Some(rva) => c.kbase + rva,
            None => {
                c.kbase
                    + c.prof.global("MiState").unwrap()
                    + c.prof.offset("_MI_SYSTEM_INFORMATION", "Hardware").unwrap()
                    + c.prof
                        .offset("_MI_HARDWARE_STATE", "InvalidPteMask")
                        .unwrap()
            }
        };
        u64_at(&c.r.read(at, 8).unwrap(), 0)
    });
    let pages = pv["paged_out_pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    for p in pages {
        let va = hex(&p["va"]);
        let raw = c.r.pte(va).unwrap();
        assert_eq!(raw, hex(&p["pte"]));
        let t = "_MMPTE_SOFTWARE";
        let pte = match (swizzle, mask) {
            (Some(s), Some(m)) if bits(raw, s) == 0 => raw & !m,
            _ => raw,
        };
        assert_eq!(bits(pte, f(t, "Valid")), 0);
        assert_eq!(bits(pte, f(t, "Prototype")), 0);
        assert_eq!(bits(pte, f(t, "Transition")), 0);
        let file = bits(pte, f(t, "PageFileLow"));
        let offset = bits(pte, f(t, "PageFileHigh"));
        assert_eq!(
            (file, offset),
            (
                p["page_file"].as_u64().unwrap(),
                p["page_file_offset"].as_u64().unwrap()
            )
        );
        assert!(file != 0 && offset != 0);
        assert!(c.r.read(va, 1).is_none(), "{va:#x} is paged out");
        let (name, size) = paging_file(c, file);
        assert_eq!(name, "\\??\\D:\\pagefile.sys");
        assert!(offset < size);
    }
    for p in pv["transition_pages"].as_array().unwrap() {
        let va = hex(&p["va"]);
        let raw = c.r.pte(va).unwrap();
        assert_eq!(raw, hex(&p["pte"]));
        let t = "_MMPTE_TRANSITION";
        assert_eq!(
            (bits(raw, f(t, "Valid")), bits(raw, f(t, "Transition"))),
            (0, 1)
        );
        assert_eq!(bits(raw, f(t, "Prototype")), 0);
        let pfn = bits(raw & !mask.unwrap_or(0), f(t, "PageFrameNumber"));
        assert_eq!(pfn, hex(&p["pfn"]));
        assert!(
            c.r.pages.contains_key(&pfn),
            "the transition frame is in the dump"
        );
        let on_page: Vec<&Value> = c.truth["pool"]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["transition"] == true)
            .collect();
        assert!(on_page.iter().any(|b| b.get("owner").is_some()));
        for b in on_page {
            let a = hex(&b["address"]);
            assert_eq!(a & !0xfff, va);
            let raw = c.r.read(a, 8).unwrap();
            assert_eq!(tag_of(u32_at(&raw, 4)), b["tag"].as_str().unwrap());
        }
    }
}

fn tag_of(v: u32) -> String {
    v.to_le_bytes()
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

/// (PageFileName, Size in pages) of paging file `n`.
fn paging_file(c: &Ctx, n: u64) -> (String, u64) {
    let list = match c.prof.global("MmPagingFile") {
        Some(rva) => c.kbase + rva,
        None => {
            c.kbase
                + c.prof.global("MiSystemPartition").unwrap()
                + c.prof.offset("_MI_PARTITION", "Vp").unwrap()
                + c.prof
                    .offset("_MI_VISIBLE_PARTITION", "PagingFile")
                    .unwrap()
        }
    };
    let pf = c.r.ptr(list + n * c.p);
    let name = unicode(
        c.r,
        &c.prof,
        pf + c.prof.offset("_MMPAGING_FILE", "PageFileName").unwrap(),
    );
    (
        name,
        c.r.ptr(pf + c.prof.offset("_MMPAGING_FILE", "Size").unwrap()),
    )
}

fn check_provenance(profile: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, truth) = forge_scenario(profile, "untagged-two-drivers", dir.path());
    let r = Reader::open(&path);
    let c = Ctx {
        r: &r,
        prof: profile_of(&truth),
        truth: &truth,
        kbase: hex(&truth["kernel"]["base"]),
        p: if r.x64 { 8 } else { 4 },
    };
    let vm = &truth["pool"]["vm"];
    let (used, max) = (
        vm["paged_in_use"].as_u64().unwrap(),
        vm["paged_max"].as_u64().unwrap(),
    );
    assert!(
        used * 100 > max * 95 && used <= max,
        "{profile}: paged {used} of {max}"
    );
    let sites = check_sites(&c);
    let blocks = check_evidence(&c);
    let orphans = check_orphans(&c);
    check_ptes(&c);
    eprintln!("{profile}: {sites} call sites, {blocks} owned blocks, {orphans} orphans checked");
    assert!(sites >= 11 && blocks > 150 && orphans > 50);
}

#[test]
fn untagged_two_drivers_xp() {
    check_provenance("xp-2600-x86pae");
}

#[test]
fn untagged_two_drivers_7601() {
    check_provenance("win7-7601-x64");
}

#[test]
fn untagged_two_drivers_17763() {
    check_provenance("win10-17763-x64");
}

#[test]
fn untagged_two_drivers_19041() {
    check_provenance("win10-19041-x64");
}

#[test]
fn untagged_two_drivers_20348() {
    check_provenance("server2022-20348-x64");
}

/// shared-tag: acmenet.sys's blocks are on the list headed in its .data, acmestor.sys's 0x600
/// blocks are orphans; evidence and orphans recomputed as above.
#[test]
fn shared_tag_owners() {
    for profile in ["xp-2600-x86pae", "win10-19041-x64"] {
        let dir = tempfile::tempdir().unwrap();
        let (path, truth) = forge_scenario(profile, "shared-tag", dir.path());
        let r = Reader::open(&path);
        let c = Ctx {
            r: &r,
            prof: profile_of(&truth),
            truth: &truth,
            kbase: hex(&truth["kernel"]["base"]),
            p: if r.x64 { 8 } else { 4 },
        };
        let acme: Vec<&Value> = truth["pool"]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["tag"] == "Acme" && b["allocated"] == true)
            .collect();
        assert!(
            acme.iter().all(|b| b.get("owner").is_some()),
            "{profile}: every Acme block owned"
        );
        assert_eq!(
            acme.iter().filter(|b| b["owner"] == "acmenet.sys").count(),
            30
        );
        assert_eq!(acme.iter().filter(|b| b["orphan"] == true).count(), 25);
        check_sites(&c);
        check_evidence(&c);
        check_orphans(&c);
    }
}
