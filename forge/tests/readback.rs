//! Reads forged dumps back with a tiny reader written here from the format description
//! (/work/shared/docs/windows-internals.md), not through the analyzer, and checks them against
//! the truth file and the profile's symbols.
//!
//! Needs the corpus at ../shared/corpus (symbols); a missing corpus file fails the test.

#[path = "support/reader.rs"]
mod reader;

use analyzer::symbols::Profile;
use forge::{Options, DEFAULT_SIZE};
use reader::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn forge_one(profile: &str, format: &str, dir: &Path) -> (PathBuf, Value) {
    let out = dir.join(format!("{profile}-{format}.dmp"));
    let mut opts = Options::new(profile, format);
    opts.corpus = Some(corpus_dir());
    opts.size = 512 << 20;
    forge::forge(&opts, &out).unwrap_or_else(|e| panic!("forge {profile} {format}: {e}"));
    let truth: Value =
        serde_json::from_slice(&std::fs::read(forge::truth_path(&out)).unwrap()).unwrap();
    (out, truth)
}

fn check(profile: &str, format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, truth) = forge_one(profile, format, dir.path());
    let prof = profile_of(&truth);
    let r = Reader::open(&path);
    let sext = |v: u64| {
        if !r.x64 && v & 0x8000_0000 != 0 {
            v | 0xffff_ffff_0000_0000
        } else {
            v
        }
    };

    // Header against truth.
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        truth["file_size"].as_u64().unwrap()
    );
    assert_eq!(r.dtb, hex(&truth["directory_table_base"]));
    let (build, dt, bug, kdbg_hdr, plm, pah, machine, procs, systime) = if r.x64 {
        let h = &r.header;
        (
            u32_at(h, 0xc),
            u32_at(h, 0xf98),
            u32_at(h, 0x38),
            u64_at(h, 0x80),
            u64_at(h, 0x20),
            u64_at(h, 0x28),
            u32_at(h, 0x30),
            u32_at(h, 0x34),
            u64_at(h, 0xfa8),
        )
    } else {
        let h = &r.header;
        assert_eq!(h[0x5c], 1, "PaeEnabled");
        (
            u32_at(h, 0xc),
            u32_at(h, 0xf88),
            u32_at(h, 0x28),
            u64::from(u32_at(h, 0x60)),
            u64::from(u32_at(h, 0x18)),
            u64::from(u32_at(h, 0x1c)),
            u32_at(h, 0x20),
            u32_at(h, 0x24),
            u64_at(h, 0xfc0),
        )
    };
    assert_eq!(u64::from(build), truth["build"].as_u64().unwrap());
    assert_eq!(u64::from(dt), truth["dump_type"].as_u64().unwrap());
    assert_eq!(bug, 0xe2);
    assert_eq!(kdbg_hdr, hex(&truth["kdbg"]));
    assert_eq!(plm, hex(&truth["ps_loaded_module_list"]));
    assert_eq!(pah, hex(&truth["ps_active_process_head"]));
    assert_eq!(machine, if r.x64 { 0x8664 } else { 0x14c });
    assert_eq!(u64::from(procs), truth["processors"].as_u64().unwrap());
    assert_eq!(systime, hex(&truth["system_time"]));
    let stored = if format == "kernel-bitmap" {
        r.pages.len() as u64
    } else {
        truth["physical_pages_stored"].as_u64().unwrap()
    };
    assert_eq!(stored, truth["physical_pages_stored"].as_u64().unwrap());

    // Page tables: the self-map, and the kernel base translates to a PE image.
    let kbase = hex(&truth["kernel"]["base"]);
    if r.x64 {
        let pml4: Vec<u64> = (0..512)
            .map(|i| r.phys_u64(r.dtb + i * 8).unwrap())
            .collect();
        let selfs: Vec<usize> = (0..512)
            .filter(|&i| pml4[i] & 1 == 1 && pml4[i] & 0x000f_ffff_ffff_f000 == r.dtb)
            .collect();
        assert_eq!(selfs.len(), 1, "exactly one self-map entry");
        assert!((0x100..0x1ff).contains(&selfs[0]));
        assert!(
            pml4.iter().all(|e| e & 1 == 0 || e & 0x80 == 0),
            "no large-page bit in the PML4"
        );
        let kernel_half = pml4[256..].iter().filter(|e| *e & 1 == 1).count();
        assert!(kernel_half >= 6, "{kernel_half} kernel-half PML4 entries");
        assert!(pml4[..256].iter().filter(|e| **e == 0).count() > 0x40);
        assert!(pml4[256..].iter().filter(|e| **e == 0).count() > 0x40);
        assert!((0x150000..0x2a0000).contains(&r.dtb));
        // KUSER_SHARED_DATA at its fixed address.
        let k = r.read(0xffff_f780_0000_0000 + 0x26c, 4).unwrap();
        assert!([6, 10].contains(&u32_at(&k, 0)));
    } else {
        // PAE: PDPT followed by its four page directories; PD3 maps PD0..PD3 at entries 0..3.
        for i in 0..4u64 {
            assert_eq!(
                r.phys_u64(r.dtb + i * 8).unwrap() & !0xfff,
                r.dtb + (i + 1) * 0x1000
            );
            assert_eq!(
                r.phys_u64(r.dtb + 0x4000 + i * 8).unwrap() & 0x000f_ffff_ffff_f000,
                r.dtb + (i + 1) * 0x1000
            );
        }
        let k = r.read(0xffdf_0000 + 0x26c, 4).unwrap();
        assert_eq!(u32_at(&k, 0), 5);
    }
    // Low memory 0x1000-0xFF000 is never stored (no trampoline pattern there).
    assert!((1..0xff).all(|pfn| format != "kernel-bitmap" || !r.pages.contains_key(&pfn)));

    // Kernel image: MZ, PE, CodeView GUID/age/name of the profile, POOLCODE, export name.
    let mz = r.read(kbase, 0x1000).unwrap();
    assert_eq!(&mz[0..2], b"MZ");
    let pe = u32_at(&mz, 0x3c) as usize;
    assert_eq!(&mz[pe..pe + 4], b"PE\0\0");
    let opt = pe + 24;
    let dirs = opt + if r.x64 { 112 } else { 96 };
    let nsec = u16_at(&mz, pe + 6) as usize;
    let secs = opt + u16_at(&mz, pe + 20) as usize;
    let names: Vec<String> = (0..nsec)
        .map(|i| {
            String::from_utf8_lossy(&mz[secs + 40 * i..secs + 40 * i + 8])
                .trim_end_matches('\0')
                .to_string()
        })
        .collect();
    assert!(names.contains(&"POOLCODE".to_string()), "{names:?}");
    let size_of_image = u32_at(&mz, opt + 56);
    assert_eq!(
        u64::from(size_of_image),
        truth["kernel"]["size"].as_u64().unwrap()
    );
    let dbg = u64::from(u32_at(&mz, dirs + 6 * 8));
    let dd = r.read(kbase + dbg, 28).unwrap();
    assert_eq!(u32_at(&dd, 12), 2);
    let rsds = r
        .read(kbase + u64::from(u32_at(&dd, 20)), u32_at(&dd, 16) as usize)
        .unwrap();
    assert_eq!(&rsds[0..4], b"RSDS");
    assert_eq!(rsds[4..20], prof.guid_bytes().unwrap());
    assert_eq!(u32_at(&rsds, 20), prof.age);
    assert_eq!(&rsds[24..rsds.len() - 1], prof.pdb_name.as_bytes());
    let exp = u64::from(u32_at(&mz, dirs));
    let ed = r.read(kbase + exp, 40).unwrap();
    let ename = r.read(kbase + u64::from(u32_at(&ed, 12)), 12).unwrap();
    assert_eq!(&ename, b"ntoskrnl.exe");
    let nnames = u32_at(&ed, 24) as u64;
    let name_rvas = r
        .read(kbase + u64::from(u32_at(&ed, 32)), (nnames * 4) as usize)
        .unwrap();
    let exported: Vec<String> = (0..nnames as usize)
        .map(|i| {
            let s = r
                .read(kbase + u64::from(u32_at(&name_rvas, 4 * i)), 40)
                .unwrap();
            String::from_utf8_lossy(&s[..s.iter().position(|b| *b == 0).unwrap()]).to_string()
        })
        .collect();
    for e in [
        "PsInitialSystemProcess",
        "PsLoadedModuleList",
        "KeNumberProcessors",
        "MmSystemRangeStart",
        "NtBuildLab",
        "NtBuildNumber",
    ] {
        assert!(exported.iter().any(|x| x == e), "{e} not exported");
    }
    let mut sorted = exported.clone();
    sorted.sort();
    assert_eq!(sorted, exported, "export names sorted");

    // Globals at their real RVAs.
    let g = |n: &str| kbase + prof.global(n).unwrap();
    assert_eq!(g("KdDebuggerDataBlock"), hex(&truth["kdbg"]));
    assert_eq!(g("PsLoadedModuleList"), plm);
    assert_eq!(g("PsActiveProcessHead"), pah);
    let kd = r.read(g("KdDebuggerDataBlock"), 0x270).unwrap();
    assert_eq!(&kd[0x10..0x14], b"KDBG");
    assert_eq!(u64_at(&kd, 0x18), sext(kbase));
    assert_eq!(u64_at(&kd, 0x48), sext(plm));
    assert_eq!(u64_at(&kd, 0x50), sext(pah));
    let lab_ptr = u64_at(&kd, 0x208) & if r.x64 { u64::MAX } else { 0xffff_ffff };
    assert_eq!(lab_ptr, g("NtBuildLab"));
    let lab = r.read(lab_ptr, 8).unwrap();
    assert!(lab.starts_with(truth["build"].to_string().as_bytes()));

    // Module list: the real _LDR_DATA_TABLE_ENTRY layout, a closed ring, as in the truth.
    let links = prof
        .offset("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks")
        .unwrap();
    let entries = walk(&r, plm, links);
    let mods = truth["modules"].as_array().unwrap();
    assert_eq!(entries.len(), mods.len());
    for (e, m) in entries.iter().zip(mods) {
        let base = r.ptr(e + prof.offset("_LDR_DATA_TABLE_ENTRY", "DllBase").unwrap());
        assert_eq!(base, hex(&m["base"]));
        let size = u32_at(
            &r.read(
                e + prof.offset("_LDR_DATA_TABLE_ENTRY", "SizeOfImage").unwrap(),
                4,
            )
            .unwrap(),
            0,
        );
        assert_eq!(u64::from(size), m["size"].as_u64().unwrap());
        assert_eq!(
            unicode(
                &r,
                &prof,
                e + prof.offset("_LDR_DATA_TABLE_ENTRY", "BaseDllName").unwrap()
            ),
            m["name"].as_str().unwrap()
        );
        assert_eq!(
            unicode(
                &r,
                &prof,
                e + prof.offset("_LDR_DATA_TABLE_ENTRY", "FullDllName").unwrap()
            ),
            m["path"].as_str().unwrap()
        );
        // Every page of every image is readable, and each image starts with MZ.
        let img = r.read(base, size as usize).expect("whole image readable");
        assert_eq!(&img[0..2], b"MZ");
    }

    // Process list.
    let apl = prof.offset("_EPROCESS", "ActiveProcessLinks").unwrap();
    let eps = walk(&r, pah, apl);
    let procs_t = truth["processes"].as_array().unwrap();
    assert!(eps.len() >= 11);
    assert_eq!(eps.len(), procs_t.len());
    let esize = prof.type_size("_EPROCESS").unwrap() as usize;
    for (ep, t) in eps.iter().zip(procs_t) {
        assert_eq!(*ep, hex(&t["eprocess"]));
        let body = r.read(*ep, esize).expect("whole EPROCESS readable");
        let pid = r.ptr(ep + prof.offset("_EPROCESS", "UniqueProcessId").unwrap());
        let ppid = r.ptr(
            ep + prof
                .offset("_EPROCESS", "InheritedFromUniqueProcessId")
                .unwrap(),
        );
        assert_eq!(
            (pid, ppid),
            (t["pid"].as_u64().unwrap(), t["ppid"].as_u64().unwrap())
        );
        let n = prof.offset("_EPROCESS", "ImageFileName").unwrap() as usize;
        let name = &body[n..n + 15];
        let name =
            String::from_utf8_lossy(&name[..name.iter().position(|b| *b == 0).unwrap_or(15)])
                .to_string();
        assert_eq!(name, t["name"].as_str().unwrap());
        let dtb = r.ptr(ep + prof.offset("_KPROCESS", "DirectoryTableBase").unwrap());
        assert_eq!(dtb, hex(&t["directory_table_base"]));
    }
    assert_eq!(procs_t[0]["pid"], 4);
    assert!(procs_t
        .iter()
        .any(|p| p["name"] == "smss.exe" && p["ppid"] == 4));
    assert_eq!(
        r.ptr(g("PsInitialSystemProcess")),
        hex(&procs_t[0]["eprocess"])
    );

    // Every mapped range of the truth is readable (first and last byte of each page).
    for m in truth["mapped"].as_array().unwrap() {
        let va = hex(&m["va"]);
        let size = m["size"].as_u64().unwrap();
        let mut a = va;
        while a < va + size {
            assert!(
                r.read(a, 1).is_some() && r.read(a + 0xfff, 1).is_some(),
                "mapped {a:#x} unreadable"
            );
            a += 0x1000;
        }
    }
}

#[test]
fn xp_sp3_pae_full() {
    check("xp-2600-x86pae", "full");
}
#[test]
fn xp_sp3_pae_kernel_bitmap() {
    check("xp-2600-x86pae", "kernel-bitmap");
}
#[test]
fn win7_7601_full_bitmap() {
    check("win7-7601-x64", "full-bitmap");
}
#[test]
fn win10_17763_kernel_bitmap() {
    check("win10-17763-x64", "kernel-bitmap");
}
#[test]
fn win10_19041_full() {
    check("win10-19041-x64", "full");
}
#[test]
fn win10_19041_kernel_bitmap() {
    check("win10-19041-x64", "kernel-bitmap");
}
#[test]
fn server2022_20348_full() {
    check("server2022-20348-x64", "full");
}

#[test]
fn same_arguments_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (pa, _) = forge_one("win10-17763-x64", "kernel-bitmap", a.path());
    let (pb, _) = forge_one("win10-17763-x64", "kernel-bitmap", b.path());
    assert!(std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap());
    assert_eq!(
        std::fs::read(forge::truth_path(&pa)).unwrap(),
        std::fs::read(forge::truth_path(&pb)).unwrap()
    );
}

/// A 16 GiB complete dump is a sparse file written in seconds.
#[test]
fn sixteen_gib_full_dump_is_sparse_and_fast() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.dmp");
    let mut opts = Options::new("win10-17763-x64", "full");
    opts.corpus = Some(corpus_dir());
    opts.size = 16 << 30;
    let t = std::time::Instant::now();
    let truth = forge::forge(&opts, &out).unwrap();
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    let md = std::fs::metadata(&out).unwrap();
    assert!(md.len() > 15 << 30);
    assert!(
        md.blocks() * 512 < 256 << 20,
        "not sparse: {} bytes allocated",
        md.blocks() * 512
    );
    assert_eq!(truth.file_size, md.len());
    // The high run (above 4 GiB) is in the run table.
    let r = Reader::open(&out);
    assert!(r.pages.contains_key(&0x100000));
    let _ = DEFAULT_SIZE;
}

#[test]
fn bad_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.dmp");
    let mut o = Options::new("win10-17763-x64", "full");
    o.corpus = Some(corpus_dir());
    o.size = 1 << 20;
    assert!(matches!(
        forge::forge(&o, &out),
        Err(forge::ForgeError::BadSize(_))
    ));
    let mut o = Options::new("xp-2600-x86pae", "full");
    o.corpus = Some(corpus_dir());
    o.processors = 33;
    assert!(matches!(
        forge::forge(&o, &out),
        Err(forge::ForgeError::BadProcessors(33, 32))
    ));
    let mut o = Options::new("nope", "full");
    o.corpus = Some(corpus_dir());
    assert!(matches!(
        forge::forge(&o, &out),
        Err(forge::ForgeError::UnknownProfile(_))
    ));
    let mut o = Options::new("win10-17763-x64", "triage");
    o.corpus = Some(corpus_dir());
    assert!(matches!(
        forge::forge(&o, &out),
        Err(forge::ForgeError::UnknownFormat(_))
    ));
    let mut o = Options::new("win10-17763-x64", "full");
    o.corpus = Some(dir.path().to_path_buf());
    let e = forge::forge(&o, &out).unwrap_err();
    assert!(matches!(e, forge::ForgeError::CorpusMissing { .. }), "{e}");
    assert!(e.to_string().contains("--corpus"));
}

// ---------------------------------------------------------------------------------------------
// Pool scenarios: read the pool bookkeeping back with the raw layouts of windows-internals.md
// (headers) and the profile's offsets (tables), and check it against the truth's `pool`.

fn forge_scenario(profile: &str, scenario: &str, dir: &Path) -> (PathBuf, Value) {
    let out = dir.join(format!("{profile}-{scenario}.dmp"));
    let mut opts = Options::new(profile, "kernel-bitmap");
    opts.corpus = Some(corpus_dir());
    opts.size = 512 << 20;
    opts.scenario = scenario.to_string();
    opts.processors = 3;
    forge::forge(&opts, &out).unwrap_or_else(|e| panic!("forge {profile} {scenario}: {e}"));
    let truth: Value =
        serde_json::from_slice(&std::fs::read(forge::truth_path(&out)).unwrap()).unwrap();
    (out, truth)
}

/// A tag as the truth spells it: printable ASCII as is, other bytes as `\xNN`.
fn tag_of(v: u32) -> String {
    v.to_le_bytes()
        .iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

/// The tag the tag tables count for a block's tag: PROTECTED_POOL (bit 31, XP/7 object tags
/// such as 'Dri\xf6') cleared.
fn tracked(tag: &str) -> String {
    match tag
        .strip_prefix(&tag[..3])
        .and_then(|t| t.strip_prefix("\\x"))
    {
        Some(hex) if tag.len() == 7 => {
            let b = u8::from_str_radix(hex, 16).unwrap() & 0x7f;
            format!("{}{}", &tag[..3], b as char)
        }
        _ => tag.to_string(),
    }
}

/// Sums the counters of one tracker table into `totals` (tag -> [pa, pf, pb, na, nf, nb]).
fn sum_tracker(
    r: &Reader,
    prof: &Profile,
    table: u64,
    entries: u64,
    totals: &mut BTreeMap<String, [u64; 6]>,
) {
    let size = prof.type_size("_POOL_TRACKER_TABLE").unwrap();
    let raw = r
        .read(table, (entries * size) as usize)
        .expect("tag table readable");
    // Field widths: the x86 table is all 32-bit; x64 counts are 32-bit on 7601 (allocs/frees),
    // 64-bit from Windows 10 on; bytes are 64-bit on x64.
    let width = |f: &str| -> usize {
        let o = prof.offset("_POOL_TRACKER_TABLE", f).unwrap();
        let next = prof.types["_POOL_TRACKER_TABLE"]
            .fields
            .values()
            .map(|x| x.offset)
            .filter(|&x| x > o)
            .min()
            .unwrap_or(size);
        (next - o).min(8) as usize
    };
    let get = |e: &[u8], f: &str| -> u64 {
        let o = prof.offset("_POOL_TRACKER_TABLE", f).unwrap() as usize;
        let mut b = [0u8; 8];
        b[..width(f)].copy_from_slice(&e[o..o + width(f)]);
        u64::from_le_bytes(b)
    };
    for e in raw.chunks(size as usize) {
        let key = u32_at(e, 0);
        if key == 0 {
            continue;
        }
        let t = totals.entry(tag_of(key)).or_default();
        for (i, f) in [
            "PagedAllocs",
            "PagedFrees",
            "PagedBytes",
            "NonPagedAllocs",
            "NonPagedFrees",
            "NonPagedBytes",
        ]
        .iter()
        .enumerate()
        {
            t[i] += get(e, f);
        }
    }
}

fn check_pool(profile: &str, scenario: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, truth) = forge_scenario(profile, scenario, dir.path());
    let r = Reader::open(&path);
    let prof = profile_of(&truth);
    let kbase = hex(&truth["kernel"]["base"]);
    let pool = &truth["pool"];
    let g = |n: &str| kbase + prof.global(n).unwrap_or_else(|| panic!("{n}"));

    // Tag tables: every per-CPU table plus the expansion table, summed.
    let mut totals = BTreeMap::new();
    let size = r.ptr(g("PoolTrackTableSize"));
    assert_eq!(size, 2048);
    match prof.global("ExPoolTagTables") {
        Some(rva) => {
            let cpus = truth["processors"].as_u64().unwrap();
            for cpu in 0..cpus {
                let t = r.ptr(kbase + rva + cpu * 8);
                if cpu == 0 {
                    assert_eq!(
                        t,
                        r.ptr(g("PoolTrackTable")),
                        "ExPoolTagTables[0] == PoolTrackTable"
                    );
                }
                sum_tracker(&r, &prof, t, size, &mut totals);
            }
            let x = r.ptr(g("PoolTrackTableExpansion"));
            assert_ne!(x, 0, "the scenario puts a tag in the expansion table");
            sum_tracker(
                &r,
                &prof,
                x,
                r.ptr(g("PoolTrackTableExpansionSize")),
                &mut totals,
            );
        }
        None => sum_tracker(&r, &prof, r.ptr(g("PoolTrackTable")), size, &mut totals),
    }
    let truth_tags: BTreeMap<String, [u64; 6]> = pool["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap();
            (
                t["tag"].as_str().unwrap().to_string(),
                [
                    n("paged_allocs"),
                    n("paged_frees"),
                    n("paged_bytes"),
                    n("nonpaged_allocs"),
                    n("nonpaged_frees"),
                    n("nonpaged_bytes"),
                ],
            )
        })
        .collect();
    assert_eq!(
        totals, truth_tags,
        "{profile} {scenario}: tag tables vs truth"
    );

    // Blocks: outstanding bytes per tag in the truth's blocks (and those on paged-out pages,
    // which the tag tables still count) equal the tag's bytes.
    let mut bytes: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    let paged_out = pool["provenance"]["paged_out_blocks"].as_array();
    for b in pool["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(paged_out.into_iter().flatten())
    {
        if b["allocated"].as_bool().unwrap() {
            let i = if b["pool_type"] == "paged" { 0 } else { 1 };
            bytes
                .entry(tracked(b["tag"].as_str().unwrap()))
                .or_default()[i] += b["size"].as_u64().unwrap();
        }
    }
    // (Blocks on pages left out of the dump are not listed, so the sums differ there.)
    if pool["missing_pool_pages"] == 0 {
        for (tag, t) in &truth_tags {
            assert_eq!(
                bytes.get(tag).copied().unwrap_or_default(),
                [t[2], t[5]],
                "{tag}: block bytes vs tag bytes"
            );
        }
    }

    // Classic pages: walk each page's header chain from its start to its end; every block is
    // the truth's, and every truth block is on a walked page.
    let x64 = r.x64;
    let unit: u64 = if x64 { 16 } else { 8 };
    let classic: BTreeMap<u64, &Value> = pool["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] == "classic")
        .map(|b| (hex(&b["address"]), b))
        .collect();
    let pages: std::collections::BTreeSet<u64> = classic.keys().map(|a| a & !0xfff).collect();
    let mut seen = 0;
    for page in pages {
        let raw = r.read(page, 0x1000).expect("pool page stored");
        let mut off = 0u64;
        let mut prev = 0u64;
        while off < 0x1000 {
            let o = off as usize;
            let (prev_size, block_size, pool_type) = if x64 {
                (
                    u64::from(raw[o]),
                    u64::from(raw[o + 2]),
                    u64::from(raw[o + 3]),
                )
            } else {
                let w0 = u16_at(&raw, o);
                let w1 = u16_at(&raw, o + 2);
                (
                    u64::from(w0 & 0x1ff),
                    u64::from(w1 & 0x1ff),
                    u64::from(w1 >> 9),
                )
            };
            assert_eq!(prev_size, prev, "{page:#x}+{off:#x}: PreviousSize");
            assert!(block_size > 0, "{page:#x}+{off:#x}: BlockSize 0");
            let b = classic
                .get(&(page + off))
                .unwrap_or_else(|| panic!("{page:#x}+{off:#x} not in the truth"));
            assert_eq!(b["size"].as_u64().unwrap(), block_size * unit);
            assert_eq!(b["tag"].as_str().unwrap(), tag_of(u32_at(&raw, o + 4)));
            assert_eq!(
                b["allocated"].as_bool().unwrap(),
                pool_type & 7 != 0,
                "{page:#x}+{off:#x}: PoolType {pool_type}"
            );
            if pool_type != 0 {
                // Volatility's rules: XP nonpaged odd; Vista+ paged odd.
                let paged = if truth["build"].as_u64().unwrap() < 6000 {
                    pool_type % 2 == 0
                } else {
                    pool_type % 2 == 1
                };
                assert_eq!(b["pool_type"] == "paged", paged, "{page:#x}+{off:#x}");
            }
            if let Some(billed) = b.get("process_billed") {
                let stored = u64_at(&raw, o + 8);
                let cookie = prof.global("ExpPoolQuotaCookie").map(|c| r.ptr(kbase + c));
                let eprocess = match cookie {
                    Some(c) => stored ^ c ^ (page + off),
                    None => stored,
                };
                assert_eq!(eprocess, hex(billed));
                assert!(truth["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| hex(&p["eprocess"]) == eprocess));
            }
            seen += 1;
            prev = block_size;
            off += block_size * unit;
        }
        assert_eq!(off, 0x1000, "{page:#x}: chain ends at the page end");
    }
    assert_eq!(seen, classic.len());

    // Segment-heap blocks (19041, 20348): each starts with a POOL_HEADER covering it exactly;
    // quota blocks decode to a planted EPROCESS.
    let cookie = prof.global("ExpPoolQuotaCookie").map(|c| r.ptr(kbase + c));
    for b in pool["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] == "lfh" || b["source"] == "vs")
    {
        let a = hex(&b["address"]);
        let raw = r.read(a, 16).expect("heap block readable");
        assert_eq!(
            u64::from(raw[2]) * 16,
            b["size"].as_u64().unwrap(),
            "{a:#x}: BlockSize"
        );
        assert_eq!(
            tag_of(u32_at(&raw, 4)),
            b["tag"].as_str().unwrap(),
            "{a:#x}: tag"
        );
        assert_eq!(
            raw[3] & 7 != 0,
            b["allocated"].as_bool().unwrap(),
            "{a:#x}: PoolType"
        );
        if let Some(billed) = b.get("process_billed") {
            let e = u64_at(&raw, 8) ^ cookie.unwrap_or(0) ^ if cookie.is_some() { a } else { 0 };
            assert_eq!(e, hex(billed));
        }
    }
    if truth["build"].as_u64().unwrap() >= 18362 {
        let session = &pool["session"]["mm_session_space"];
        let walked = walk_segment_heap(&r, &prof, kbase, session.as_str().map(|_| hex(session)));
        let mut want: Vec<(u64, u64, String, bool, &str)> = pool["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["source"] == "lfh" || (b["source"] == "vs" && b["allocated"] == true))
            .map(|b| {
                (
                    hex(&b["address"]),
                    b["size"].as_u64().unwrap(),
                    b["tag"].as_str().unwrap().to_string(),
                    b["allocated"].as_bool().unwrap(),
                    if b["source"] == "lfh" { "lfh" } else { "vs" },
                )
            })
            .collect();
        want.sort();
        assert!(!want.is_empty());
        let extra: Vec<_> = walked
            .iter()
            .filter(|b| !want.contains(b))
            .take(5)
            .collect();
        let missing: Vec<_> = want
            .iter()
            .filter(|b| !walked.contains(b))
            .take(5)
            .collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "segment heap walk vs truth: walked but not in the truth {extra:x?}, in the truth but not walked {missing:x?}"
        );
    }

    // Big page table: page aligned, a multiple of 0x1000 entries, the truth's entries exactly.
    let table = r.ptr(g("PoolBigPageTable"));
    let n = r.ptr(g("PoolBigPageTableSize"));
    assert_eq!(table & 0xfff, 0);
    assert_eq!(n % 0x1000, 0);
    let esize = prof.type_size("_POOL_TRACKER_BIG_PAGES").unwrap();
    let raw = r.read(table, (n * esize) as usize).unwrap();
    let mut got = Vec::new();
    for e in raw.chunks(esize as usize) {
        let key = u32_at(
            e,
            prof.offset("_POOL_TRACKER_BIG_PAGES", "Key").unwrap() as usize,
        );
        if key == 0 {
            continue;
        }
        let va = if x64 {
            u64_at(e, 0)
        } else {
            u64::from(u32_at(e, 0))
        };
        let size = match prof.offset("_POOL_TRACKER_BIG_PAGES", "NumberOfBytes") {
            Some(o) => u64_at(e, o as usize),
            None => u64::from(u32_at(e, 8)) * 0x1000,
        };
        got.push((va & !1, tag_of(key), size, va & 1 == 1));
    }
    got.sort();
    let mut want: Vec<(u64, String, u64, bool)> = pool["big_pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                hex(&b["va"]),
                b["tag"].as_str().unwrap().to_string(),
                b["size"].as_u64().unwrap(),
                b["free"].as_bool().unwrap(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want, "big page table vs truth");

    // The leaking driver's code holds its tag as an immediate (x64 `mov r8d, imm32`, x86 `push imm32`).
    for d in pool["drivers"].as_array().unwrap() {
        let m = truth["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == d["module"])
            .expect("driver loaded");
        let code = r.read(hex(&m["base"]) + 0x1000, 0x1000).unwrap();
        for tag in d["tags"].as_array().unwrap() {
            let t = tag.as_str().unwrap().as_bytes();
            if t == b"None" {
                continue;
            }
            let mut pat = if x64 { vec![0x41, 0xb8] } else { vec![0x68] };
            pat.extend_from_slice(t);
            assert!(
                code.windows(pat.len()).any(|w| w == pat),
                "{}: tag immediate",
                d["module"]
            );
        }
        assert!(d["leaked_bytes"].as_u64().unwrap() > 0);
    }
}

/// Walks the segment heap from nt!ExPoolState the way Windows lays it out (and MemProcFS /
/// PoolViewer decode it), written here from those encodings: heaps of PoolNode[0], page
/// segments from SegContexts[0].SegmentListHead (signature check), range descriptors (11 LFH,
/// 15 VS), LFH blocks by the decoded BlockOffsets and 2-bit bitmap (present = header non-zero),
/// VS chunks by their decoded headers (allocated ones). Returns (header address, size, tag,
/// allocated, "lfh"|"vs"), sorted.
/// `session_space`: the forged session's MM_SESSION_SPACE, whose `HeapState` ->
/// `_EX_HEAP_SESSION_STATE.PagedHeap` is one more heap (19H1+ session pool).
fn walk_segment_heap(
    r: &Reader,
    prof: &Profile,
    kbase: u64,
    session_space: Option<u64>,
) -> Vec<(u64, u64, String, bool, &'static str)> {
    let o = |t: &str, f: &str| prof.offset(t, f).unwrap_or_else(|| panic!("{t}.{f}"));
    let state = kbase + prof.global("ExPoolState").unwrap();
    let globals = r.ptr(state);
    let key = u64_at(&r.read(globals, 16).unwrap(), 0);
    let lfh_key = u64_at(&r.read(globals, 16).unwrap(), 8);
    let pools = u32_at(
        &r.read(state + o("_EX_POOL_HEAP_MANAGER_STATE", "NumberOfPools"), 4)
            .unwrap(),
        0,
    );
    assert!((1..=64).contains(&pools));
    let node = state + o("_EX_POOL_HEAP_MANAGER_STATE", "PoolNode");
    let mut out = Vec::new();
    let mut heaps: Vec<u64> = (0..4u64)
        .map(|i| r.ptr(node + o("_EX_HEAP_POOL_NODE", "Heaps") + i * 8))
        .collect();
    if let Some(ss) = session_space {
        let state = r.ptr(ss + o("_MM_SESSION_SPACE", "HeapState"));
        if state != 0 {
            heaps.push(r.ptr(state + o("_EX_HEAP_SESSION_STATE", "PagedHeap")));
        }
    }
    for heap in heaps {
        if heap == 0 {
            continue;
        }
        assert_eq!(heap & 0xfff, 0);
        assert_eq!(
            u32_at(&r.read(heap + 16, 4).unwrap(), 0),
            0xddee_ddee,
            "heap signature"
        );
        let ctx = heap + o("_SEGMENT_HEAP", "SegContexts");
        let first = u64::from(
            r.read(ctx + o("_HEAP_SEG_CONTEXT", "FirstDescriptorIndex"), 1)
                .unwrap()[0],
        );
        let shift = r
            .read(ctx + o("_HEAP_SEG_CONTEXT", "UnitShift"), 1)
            .unwrap()[0];
        assert_eq!(shift, 12);
        let head = ctx + o("_HEAP_SEG_CONTEXT", "SegmentListHead");
        for seg in walk(r, head, 0) {
            let sig = u64_at(&r.read(seg + 16, 8).unwrap(), 0) ^ key ^ seg ^ 0xa2e6_4ead_a2e6_4ead;
            // The kernel checks the decoded signature against the segment context it walks from.
            assert_eq!(sig, ctx, "segment {seg:#x} signature");
            let dsize = prof.type_size("_HEAP_PAGE_RANGE_DESCRIPTOR").unwrap();
            let mut unit = first;
            while unit < 256 {
                let d = r.read(seg + unit * dsize, dsize as usize).unwrap();
                let flags = d[o("_HEAP_PAGE_RANGE_DESCRIPTOR", "RangeFlags") as usize];
                let units = u64::from(d[o("_HEAP_PAGE_RANGE_DESCRIPTOR", "UnitSize") as usize]);
                if units == 0 {
                    unit += 1;
                    continue;
                }
                let va = seg + (unit << 12);
                let Some(raw) = r.read(va, (units << 12) as usize) else {
                    // Not in the dump (the missing-pages scenario): nothing to list.
                    unit += units;
                    continue;
                };
                if flags == 11 {
                    let enc = u32_at(&raw, o("_HEAP_LFH_SUBSEGMENT", "BlockOffsets") as usize)
                        ^ (lfh_key as u32)
                        ^ ((va as u32) >> 12);
                    let (bs, firstb) = (u64::from(enc & 0xffff), u64::from(enc >> 16));
                    let bitmap = o("_HEAP_LFH_SUBSEGMENT", "BlockBitmap") as usize;
                    for b in 0..(raw.len() as u64 - firstb) / bs {
                        let at = (firstb + b * bs) as usize;
                        if u64_at(&raw, at) == 0 {
                            continue;
                        }
                        let bits = (raw[bitmap + (b / 4) as usize] >> ((b % 4) * 2)) & 3;
                        out.push((
                            va + at as u64,
                            bs,
                            tag_of(u32_at(&raw, at + 4)),
                            bits == 1,
                            "lfh",
                        ));
                    }
                } else if flags == 15 {
                    let size = u16_at(&raw, o("_HEAP_VS_SUBSEGMENT", "Size") as usize);
                    let sign =
                        u16_at(&raw, o("_HEAP_VS_SUBSEGMENT", "Signature") as usize) & 0x7fff;
                    assert_eq!(size, sign ^ 0x2bed, "VS subsegment signature");
                    let mut off = 0x30u64;
                    while off + 0x30 < raw.len() as u64 {
                        let bits = u64_at(&raw, off as usize) ^ (va + off) ^ key;
                        let chunk = ((bits >> 16) & 0xffff) << 4;
                        assert!(
                            chunk >= 16 && off + chunk <= raw.len() as u64,
                            "VS chunk at {:#x}",
                            va + off
                        );
                        if (bits >> 48) & 1 == 1 {
                            let h = (off + 16) as usize;
                            out.push((
                                va + off + 16,
                                chunk - 16,
                                tag_of(u32_at(&raw, h + 4)),
                                true,
                                "vs",
                            ));
                        }
                        off += chunk;
                    }
                }
                unit += units;
            }
        }
    }
    out.sort();
    out
}

#[test]
fn pool_leak_tagged_19041_segment_heap() {
    check_pool("win10-19041-x64", "leak-tagged");
}

#[test]
fn pool_leak_tagged_xp() {
    check_pool("xp-2600-x86pae", "leak-tagged");
}
#[test]
fn pool_leak_tagged_7601() {
    check_pool("win7-7601-x64", "leak-tagged");
}
#[test]
fn pool_leak_untagged_17763() {
    check_pool("win10-17763-x64", "leak-untagged");
}
#[test]
fn pool_quota_leak_19041() {
    check_pool("win10-19041-x64", "quota-leak");
}
#[test]
fn pool_shared_tag_20348() {
    check_pool("server2022-20348-x64", "shared-tag");
}
#[test]
fn pool_untagged_two_drivers_xp_and_19041() {
    check_pool("xp-2600-x86pae", "untagged-two-drivers");
    check_pool("win10-19041-x64", "untagged-two-drivers");
}

#[test]
fn pool_nonpaged_exhaustion_7601_sets_vm() {
    check_pool("win7-7601-x64", "nonpaged-exhaustion");
    let dir = tempfile::tempdir().unwrap();
    let (_, truth) = forge_scenario("win7-7601-x64", "nonpaged-exhaustion", dir.path());
    let vm = &truth["pool"]["vm"];
    let (used, max) = (
        vm["nonpaged_in_use"].as_u64().unwrap(),
        vm["nonpaged_max"].as_u64().unwrap(),
    );
    assert!(used * 100 >= max * 95 && used <= max, "{used} of {max}");
}

/// busy-server (truth without the block list): thousands of tags, tag tables (grown past 2048
/// entries) summed over CPUs equal the truth, the segment heap walk finds as many LFH and VS
/// blocks as the truth counts, the big page table equals the truth's.
#[test]
fn pool_busy_server_19041() {
    let dir = tempfile::tempdir().unwrap();
    let (path, truth) = forge_scenario("win10-19041-x64", "busy-server", dir.path());
    let r = Reader::open(&path);
    let prof = profile_of(&truth);
    let kbase = hex(&truth["kernel"]["base"]);
    let pool = &truth["pool"];
    assert!(pool["blocks"].is_null());
    let g = |n: &str| kbase + prof.global(n).unwrap();
    let size = r.ptr(g("PoolTrackTableSize"));
    assert!(size >= 6000 && size.is_power_of_two(), "{size}");
    let mut totals = BTreeMap::new();
    for cpu in 0..truth["processors"].as_u64().unwrap() {
        sum_tracker(
            &r,
            &prof,
            r.ptr(g("ExPoolTagTables") + cpu * 8),
            size,
            &mut totals,
        );
    }
    sum_tracker(
        &r,
        &prof,
        r.ptr(g("PoolTrackTableExpansion")),
        r.ptr(g("PoolTrackTableExpansionSize")),
        &mut totals,
    );
    assert!(totals.len() >= 3000, "{} tags", totals.len());
    let truth_tags: BTreeMap<String, [u64; 6]> = pool["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap();
            (
                t["tag"].as_str().unwrap().to_string(),
                [
                    n("paged_allocs"),
                    n("paged_frees"),
                    n("paged_bytes"),
                    n("nonpaged_allocs"),
                    n("nonpaged_frees"),
                    n("nonpaged_bytes"),
                ],
            )
        })
        .collect();
    assert_eq!(totals, truth_tags);
    // block_counts count the session's segment heap blocks too; the tags' bytes are system
    // pool's only.
    let session = &pool["session"]["mm_session_space"];
    let walked = walk_segment_heap(&r, &prof, kbase, session.as_str().map(|_| hex(session)));
    let system = walk_segment_heap(&r, &prof, kbase, None);
    let counts = &pool["block_counts"];
    let n = |k: &str| counts[k].as_u64().unwrap_or(0);
    assert_eq!(
        walked.iter().filter(|b| b.4 == "lfh").count() as u64,
        n("lfh") + n("lfh_free")
    );
    assert_eq!(
        walked.iter().filter(|b| b.4 == "vs").count() as u64,
        n("vs")
    );
    assert!(n("lfh") + n("vs") + n("big") > 60_000);
    // Outstanding bytes of the walked blocks plus big allocations equal the tags' bytes.
    let heap_bytes: u64 = system.iter().filter(|b| b.3).map(|b| b.1).sum();
    let big_bytes: u64 = pool["big_pages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["free"] == false)
        .map(|b| b["size"].as_u64().unwrap())
        .sum();
    let tag_bytes: u64 = truth_tags.values().map(|t| t[2] + t[5]).sum();
    assert_eq!(heap_bytes + big_bytes, tag_bytes);
}

/// missing-pages: the three pool pages are mapped but not stored, their blocks are not in the
/// truth, and everything else still holds; the truth's `missing_pool_pages` counts them and the
/// paged-out page (docs/json.md: committed pool pages the dump cannot show).
#[test]
fn pool_missing_pages_7601_and_19041() {
    for profile in ["win7-7601-x64", "win10-19041-x64"] {
        check_pool(profile, "missing-pages");
        let dir = tempfile::tempdir().unwrap();
        let (path, truth) = forge_scenario(profile, "missing-pages", dir.path());
        let paged_out = truth["pool"]["provenance"]["paged_out_pages"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(
            paged_out, 1,
            "{profile}: one page of leaked blocks paged out"
        );
        assert_eq!(truth["pool"]["missing_pool_pages"], 3 + paged_out);
        let r = Reader::open(&path);
        for b in truth["pool"]["blocks"].as_array().unwrap() {
            assert!(
                r.read(hex(&b["address"]), 16).is_some(),
                "listed block {} unreadable",
                b["address"]
            );
        }
        let blocks = truth["pool"]["blocks"].as_array().unwrap();
        let listed_ntff = blocks
            .iter()
            .filter(|b| b["tag"] == "NtfF" && b["allocated"] == true)
            .count() as u64;
        let t = truth["pool"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == "NtfF")
            .unwrap();
        let outstanding = t["paged_allocs"].as_u64().unwrap() - t["paged_frees"].as_u64().unwrap();
        assert!(
            listed_ntff < outstanding,
            "{profile}: {listed_ntff} NtfF blocks listed of {outstanding}"
        );
        // Every truth-mapped page is stored; in the paged pool (classic pages, or the paged
        // segment heap at +0x3000_0000) exactly three pages translate but are not stored.
        for m in truth["mapped"].as_array().unwrap() {
            for i in 0..m["size"].as_u64().unwrap() / 0x1000 {
                assert!(r.read(hex(&m["va"]) + i * 0x1000, 1).is_some());
            }
        }
        let base = forge::profiles::find(profile).unwrap().plan.paged_pool;
        let area = if profile.starts_with("win10-19041") {
            base + 0x3000_0000
        } else {
            base
        };
        let absent = (0..0x2000u64)
            .map(|i| area + i * 0x1000)
            .filter(|&p| r.translate(p).is_some() && r.read(p, 1).is_none())
            .count();
        assert_eq!(
            absent, 3,
            "{profile}: pool pages mapped but absent from the dump"
        );
    }
    // Full formats store every page: the scenario is refused there.
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new("win7-7601-x64", "full");
    o.corpus = Some(corpus_dir());
    o.size = 512 << 20;
    o.scenario = "missing-pages".into();
    let e = forge::forge(&o, &dir.path().join("x.dmp"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("kernel-bitmap"), "{e}");
}

/// No two planted modules share address space: scenario drivers are placed after the system
/// drivers on every profile (they once landed on hal.dll's base on builds whose session-driver
/// area lies below the driver area).
#[test]
fn scenario_drivers_do_not_overlap_other_modules() {
    let dir = tempfile::tempdir().unwrap();
    for profile in [
        "xp-2600-x86pae",
        "win7-7601-x64",
        "win10-19041-x64",
        "server2022-20348-x64",
    ] {
        let out = dir.path().join(format!("{profile}.dmp"));
        let mut opts = Options::new(profile, "kernel-bitmap");
        opts.corpus = Some(corpus_dir());
        opts.scenario = "shared-tag".to_string();
        let truth = forge::forge(&opts, &out).unwrap_or_else(|e| panic!("forge {profile}: {e}"));
        let truth: Value = serde_json::to_value(&truth).unwrap();
        let mut spans: Vec<(u64, u64, String)> = truth["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    hex(&m["base"]),
                    m["size"].as_u64().unwrap(),
                    m["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            spans.iter().any(|s| s.2 == "acmenet.sys"),
            "{profile}: scenario driver planted"
        );
        spans.sort();
        for w in spans.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "{profile}: {} overlaps {}",
                w[0].2,
                w[1].2
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driver Verifier pool tracking (`verifier-tracking`): the kernel's structures read back with
// the profile's offsets and checked against the truth's `pool.verifier` and `pool.blocks`.

/// (VirtualAddress, NumberOfBytes, Tag, CallingAddress) of the `_VI_POOL_ENTRY` at `e`.
fn pool_entry(r: &Reader, prof: &Profile, e: u64) -> (u64, u64, String, u64) {
    let f = |n: &str| {
        e + prof.offset("_VI_POOL_ENTRY", "InUse").unwrap()
            + prof.offset("_VI_POOL_ENTRY_INUSE", n).unwrap()
    };
    let tag = u32_at(&r.read(f("Tag"), 4).unwrap(), 0);
    (
        r.ptr(f("VirtualAddress")),
        r.ptr(f("NumberOfBytes")),
        tag_of(tag),
        r.ptr(f("CallingAddress")),
    )
}

/// XP: the verified driver's `_MI_VERIFIER_DRIVER_ENTRY` on MiSuspectDriverList and its
/// PoolHash slots in use (top bit set, not the 0xFFFFFFFF end marker); each allocation's
/// `{ListIndex, Verifier}` names its slot and the entry; the free list covers the other slots.
fn xp_tracked(r: &Reader, prof: &Profile, kb: u64, d: &Value) -> Vec<(u64, u64, String, u64)> {
    const E: &str = "_MI_VERIFIER_DRIVER_ENTRY";
    let o = |f: &str| prof.offset(E, f).unwrap();
    let head = kb + prof.global("MiSuspectDriverList").unwrap();
    let entries = walk(r, head, o("Links"));
    assert_eq!(entries.len(), 2, "the driver and one never loaded");
    let flags: Vec<u32> = entries
        .iter()
        .map(|&e| u32_at(&r.read(e + o("Flags"), 4).unwrap(), 0))
        .collect();
    assert_eq!(flags, [0, 1]);
    let e = entries[1];
    assert_eq!(hex(&d["entry"]), e);
    assert_eq!(
        u32_at(&r.read(e + o("Signature"), 4).unwrap(), 0),
        0x9876_1940
    );
    assert_eq!(unicode(r, prof, e + o("BaseName")), "vrfdrv.sys");
    assert_eq!(r.ptr(e + o("StartAddress")), hex(&d["image_base"]));
    assert_eq!(
        r.ptr(e + o("EndAddress")),
        hex(&d["image_base"]) + d["image_size"].as_u64().unwrap()
    );
    let hash = r.ptr(e + o("PoolHash"));
    let size = u64::from(u32_at(&r.read(e + o("PoolHashSize"), 4).unwrap(), 0));
    assert_eq!(hash, hex(&d["pool_hash"]["address"]));
    let mut out = Vec::new();
    for i in 0..size {
        let slot = hash + i * 16;
        let first = r.ptr(slot);
        if first & 0x8000_0000 == 0 || first == 0xffff_ffff {
            continue;
        }
        let a = pool_entry(r, prof, slot);
        let bp = r.read(a.0 + a.1 - 8, 8).unwrap();
        assert_eq!(
            (u32_at(&bp, 0) as u64, u32_at(&bp, 4) as u64),
            (i, e),
            "back-pointer"
        );
        out.push(a);
    }
    let mut free = 0;
    let mut next = u32_at(&r.read(e + o("PoolHashFree"), 4).unwrap(), 0);
    while next != 0xffff_ffff {
        free += 1;
        assert!(free <= size, "free list loops");
        next = u32_at(&r.read(hash + u64::from(next) * 16, 4).unwrap(), 0);
    }
    assert_eq!(free + out.len() as u64, size, "every slot free or in use");
    out
}

/// Vista+: ViTargetDriversAvl's one table -> the driver's node (image range, VerifiedData),
/// the suspect entry's name, the tracker pages on PoolPageHeaders (newest first, 'Vepp' big
/// pages with the header), entries in use (even NumberOfBytes) with back-pointers, and the
/// free entries on PoolTrackers.
fn vista_tracked(
    r: &Reader,
    prof: &Profile,
    kb: u64,
    d: &Value,
    pool: &Value,
) -> Vec<(u64, u64, String, u64)> {
    let off = |t: &str, f: &str| prof.offset(t, f).unwrap();
    let tree = kb + prof.global("ViTargetDriversAvl").unwrap();
    let tables = r.ptr(tree + off("_VF_AVL_TREE", "Tables"));
    let n = u32_at(
        &r.read(tree + off("_VF_AVL_TREE", "TablesNo"), 4).unwrap(),
        0,
    );
    assert_eq!(n, 1);
    let node = r.ptr(tables + off("_RTL_BALANCED_LINKS", "RightChild"));
    let count = off("_RTL_AVL_TABLE", "NumberGenericTableElements");
    assert_eq!(u32_at(&r.read(tables + count, 4).unwrap(), 0), 1);
    let t = node + prof.type_size("_RTL_BALANCED_LINKS").unwrap();
    let tn = t
        + off("_VF_TARGET_DRIVER", "TreeNode")
        + prof.offset("_VF_AVL_TREE_NODE_EX", "Base").unwrap_or(0);
    assert_eq!(
        r.ptr(tn + off("_VF_AVL_TREE_NODE", "p")),
        hex(&d["image_base"])
    );
    assert_eq!(
        r.ptr(tn + off("_VF_AVL_TREE_NODE", "RangeSize")),
        d["image_size"].as_u64().unwrap()
    );
    let data = r.ptr(t + off("_VF_TARGET_DRIVER", "VerifiedData"));
    assert_eq!(data, hex(&d["entry"]));
    const D: &str = "_VF_TARGET_VERIFIED_DRIVER_DATA";
    let suspect = r.ptr(data + off(D, "SuspectDriverEntry"));
    assert_eq!(
        unicode(
            r,
            prof,
            suspect + off("_VF_SUSPECT_DRIVER_ENTRY", "BaseName")
        ),
        "vrfdrv.sys"
    );
    let cur = off(D, "CurrentNonPagedPoolAllocations");
    assert_eq!(
        u64::from(u32_at(&r.read(data + cur, 4).unwrap(), 0)),
        d["current_nonpaged_allocations"].as_u64().unwrap()
    );
    let mut pages = Vec::new();
    let mut page = r.ptr(data + off(D, "PoolPageHeaders") + 8) & !0xf;
    while page != 0 {
        const H: &str = "_VI_POOL_PAGE_HEADER";
        assert_eq!(r.ptr(page + off(H, "VerifierEntry")), data);
        assert_eq!(r.ptr(page + off(H, "Signature")), 0x2132_1345);
        pages.push(page);
        assert!(pages.len() < 100, "page list loops");
        page = r.ptr(page + off(H, "NextPage"));
    }
    let mut listed: Vec<u64> = d["tracker_pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(hex)
        .collect();
    listed.reverse();
    assert_eq!(
        pages, listed,
        "PoolPageHeaders lists the pages newest first"
    );
    for p in &pages {
        assert!(
            pool["big_pages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| hex(&b["va"]) == *p && b["tag"] == "Vepp" && b["size"] == 0x1000),
            "tracker page {p:#x} is a 'Vepp' big allocation"
        );
    }
    let mut out = Vec::new();
    let mut free = 0;
    for &p in &pages {
        for j in 1..128u64 {
            let e = p + j * 0x20;
            let a = pool_entry(r, prof, e);
            if a.1 & 1 == 1 {
                free += 1;
                continue;
            }
            assert_eq!(r.ptr(a.0 + a.1 - 8), e, "back-pointer");
            out.push(a);
        }
    }
    let mut on_list = 0;
    let mut e = r.ptr(data + off(D, "PoolTrackers") + 8) & !0xf;
    while e != 0 {
        on_list += 1;
        assert!(on_list <= free, "free list longer than the free entries");
        e = r.ptr(e);
    }
    assert_eq!(on_list, free, "every free entry is on PoolTrackers");
    out
}

/// The code at a site: `call [import]` (FF 15) ending at the recorded return address,
/// through the IAT slot bound to the kernel's allocator.
fn check_call(r: &Reader, prof: &Profile, kb: u64, site: u64, caller: u64, tag: &str) {
    assert_eq!(
        caller,
        site + 6,
        "the return address follows the 6-byte call"
    );
    let code = r.read(site, 6).unwrap();
    assert_eq!(
        &code[..2],
        &[0xff, 0x15],
        "call through memory at {site:#x}"
    );
    let slot = if r.x64 {
        caller.wrapping_add(i64::from(u32_at(&code, 2) as i32) as u64)
    } else {
        u64::from(u32_at(&code, 2))
    };
    let f = if tag == "Vrfd" {
        "ExAllocatePoolWithTag"
    } else {
        "ExAllocatePool"
    };
    assert_eq!(
        r.ptr(slot),
        kb + prof.global(f).unwrap(),
        "{site:#x} calls {f}"
    );
}

fn check_verifier(profile: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, truth) = forge_scenario(profile, "verifier-tracking", dir.path());
    let r = Reader::open(&path);
    let prof = profile_of(&truth);
    let kb = hex(&truth["kernel"]["base"]);
    let pool = &truth["pool"];
    let v = &pool["verifier"];
    let level = kb + prof.global("MmVerifierData").unwrap();
    assert_eq!(u32_at(&r.read(level, 4).unwrap(), 0), 0x1a, "{profile}");
    if let Some(rc) = prof.global("VfRuleClasses") {
        assert_eq!(u32_at(&r.read(kb + rc, 4).unwrap(), 0), 0x1a);
    }
    let d = &v["drivers"][0];
    let mut got = if r.x64 {
        vista_tracked(&r, &prof, kb, d, pool)
    } else {
        xp_tracked(&r, &prof, kb, d)
    };
    let mut want: Vec<(u64, u64, String, u64)> = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let tag = e["tag"].as_str().unwrap().to_string();
            check_call(&r, &prof, kb, hex(&e["site"]), hex(&e["caller"]), &tag);
            (
                hex(&e["address"]),
                e["size"].as_u64().unwrap(),
                tag,
                hex(&e["caller"]),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{profile}: tracked allocations");
    assert_eq!(want.len(), 171, "{profile}");
    // The truth's blocks: each tracked allocation's block says so; plaindrv.sys's do not.
    let blocks = pool["blocks"].as_array().unwrap();
    let owned = |m: &str, tracked: bool| {
        blocks
            .iter()
            .filter(|b| b["owner"] == m && b["verifier"] == tracked)
            .count()
    };
    assert_eq!(owned("vrfdrv.sys", true), 171, "{profile}");
    assert_eq!(owned("plaindrv.sys", false), 20, "{profile}");
    for b in blocks.iter().filter(|b| b["owner"] == "plaindrv.sys") {
        assert_eq!(b["tag"], "None");
        assert!(!want
            .iter()
            .any(|w| w.0 >= hex(&b["address"])
                && w.0 < hex(&b["address"]) + b["size"].as_u64().unwrap()));
    }
    let untagged = if r.x64 { "None" } else { "Wrap" };
    assert_eq!(
        want.iter().filter(|w| w.2 == untagged).count(),
        162,
        "{profile}"
    );
}

#[test]
fn pool_verifier_tracking_every_profile() {
    for profile in [
        "xp-2600-x86pae",
        "win7-7601-x64",
        "win10-17763-x64",
        "win10-19041-x64",
        "server2022-20348-x64",
    ] {
        check_verifier(profile);
    }
}
