//! Our dump reader against kdmp-parser (PyPI, C++ core), on every forged x64 format.
//!
//! For each x64 profile and each format the forge writes (full, kernel-bitmap, full-bitmap) the
//! test forges a dump with the `pooltriage` binary, then reads, with both our reader
//! (`Dump::kernel_memory`) and kdmp-parser (through `tests/independent/kdmp_read.py`):
//! - the first page at every module base of the truth file,
//! - the page of 1000 addresses drawn (seeded) from the truth file's `mapped` ranges,
//! - 32 bytes across page boundaries inside mapped ranges,
//! - at each of them, our page-table walk's physical address against kdmp-parser's
//!   `translate_virtual`, and our physical page there against kdmp-parser's,
//! - addresses just outside the mapped ranges: whatever kdmp-parser can read there, we must read
//!   identically (we may read more: transition PTEs count as present for us, as in WinDbg).
//!
//! Expected bytes come from kdmp-parser, expected header values from the truth file; our
//! reader's output is never the reference.
//!
//! Needs the venv of `scripts/test.sh`; a missing tool fails the test.

#[path = "independent/harness.rs"]
mod harness;

use analyzer::dump::Dump;
use analyzer::memory::{PageTableMemory, PagingMode};
use harness::{array, field, forge, hx, profile_for_build, python, run, script, Rng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

const PAGE: u64 = 0x1000;
const RANDOM_READS: usize = 1000;
const BOUNDARY_READS: usize = 50;
const GAP_READS: usize = 200;
/// Forged physical memory size: small enough for CI, large enough for real page tables.
const DUMP_SIZE: u64 = 1 << 30;

struct KdmpRead {
    pa: Option<u64>,
    page: Option<Vec<u8>>,
}

fn parse_hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("kdmp_read.py printed bad hex")
        })
        .collect()
}

fn kdmp_read(
    dump: &std::path::Path,
    vas: &[u64],
    dir: &std::path::Path,
) -> (Value, BTreeMap<u64, KdmpRead>) {
    let list = dir.join("addrs.txt");
    let mut text = String::new();
    for va in vas {
        let _ = writeln!(text, "{va:#x}");
    }
    std::fs::write(&list, text).expect("write address list");
    let out = run(
        Command::new(python())
            .arg(script("kdmp_read.py"))
            .arg(dump)
            .arg(&list),
        "kdmp-parser (tests/independent/kdmp_read.py)",
    );
    let v: Value = serde_json::from_slice(&out).expect("kdmp_read.py printed no JSON");
    let mut reads = BTreeMap::new();
    for r in v["reads"].as_array().expect("reads") {
        let va = hx(&r["va"]);
        let pa = (!r["pa"].is_null()).then(|| hx(&r["pa"]));
        let page = r["page"].as_str().map(parse_hex_bytes);
        if let Some(p) = &page {
            assert_eq!(
                p.len() as u64,
                PAGE,
                "kdmp-parser page at {va:#x} is not 4 KiB"
            );
        }
        reads.insert(va, KdmpRead { pa, page });
    }
    (v["header"].clone(), reads)
}

/// The truth file's mapped ranges as (start, end), sorted.
fn mapped_ranges(truth: &Value) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = array(truth, "mapped")
        .iter()
        .map(|r| {
            let va = hx(field(r, "va"));
            let size = hx(field(r, "size"));
            (va, va.checked_add(size).expect("mapped range overflows"))
        })
        .collect();
    ranges.sort_unstable();
    assert!(!ranges.is_empty(), "truth has no mapped ranges");
    ranges
}

fn is_mapped(ranges: &[(u64, u64)], va: u64) -> bool {
    let i = ranges.partition_point(|&(start, _)| start <= va);
    i > 0 && va < ranges[i - 1].1
}

/// Addresses drawn with probability proportional to range size (a random mapped kernel byte).
fn random_mapped(ranges: &[(u64, u64)], rng: &mut Rng, n: usize) -> Vec<u64> {
    let mut prefix = Vec::with_capacity(ranges.len());
    let mut total = 0u64;
    for &(s, e) in ranges {
        total += e - s;
        prefix.push(total);
    }
    (0..n)
        .map(|_| {
            let r = rng.below(total);
            let i = prefix.partition_point(|&p| p <= r);
            let before = if i == 0 { 0 } else { prefix[i - 1] };
            ranges[i].0 + (r - before)
        })
        .collect()
}

fn check(build: u32, format: &str) {
    let profile = profile_for_build(build);
    let tmp = tempfile::tempdir().expect("tempdir");
    let forged = forge(tmp.path(), &profile, format, Some(DUMP_SIZE));
    let truth = &forged.truth;
    assert_eq!(truth["arch"], "x64", "{profile} is not x64");
    let ranges = mapped_ranges(truth);
    let mut rng = Rng::new(0x5eed_0000 ^ u64::from(build) ^ (format.len() as u64) << 32);

    // What to read.
    let mut module_bases: Vec<(String, u64)> = array(truth, "modules")
        .iter()
        .map(|m| {
            (
                field(m, "name").as_str().unwrap_or("?").to_owned(),
                hx(field(m, "base")),
            )
        })
        .collect();
    module_bases.push(("kernel".into(), hx(field(field(truth, "kernel"), "base"))));
    let random = random_mapped(&ranges, &mut rng, RANDOM_READS);
    let mut boundaries = Vec::new();
    let multi_page: Vec<&(u64, u64)> = ranges.iter().filter(|(s, e)| e - s >= 2 * PAGE).collect();
    for _ in 0..BOUNDARY_READS.min(multi_page.len() * 4) {
        let &(s, e) = multi_page[rng.below(multi_page.len() as u64) as usize];
        // Page boundaries strictly inside the range, with 16 mapped bytes on either side.
        let first = (s + 16 + PAGE - 1) & !(PAGE - 1);
        let last = (e - 16) & !(PAGE - 1);
        if first > last {
            continue;
        }
        boundaries.push(first + PAGE * rng.below((last - first) / PAGE + 1));
    }
    let mut gaps = Vec::new();
    for _ in 0..GAP_READS * 4 {
        if gaps.len() == GAP_READS {
            break;
        }
        let &(s, e) = &ranges[rng.below(ranges.len() as u64) as usize];
        let off = rng.below(16 * PAGE);
        let va = if rng.below(2) == 0 {
            e.checked_add(off)
        } else {
            s.checked_sub(off + 1)
        };
        if let Some(va) = va.filter(|&va| !is_mapped(&ranges, va)) {
            gaps.push(va);
        }
    }
    let mut all: Vec<u64> = module_bases
        .iter()
        .map(|&(_, b)| b)
        .chain(random.iter().copied())
        .chain(gaps.iter().copied())
        .collect();
    for &b in &boundaries {
        all.push(b - PAGE);
        all.push(b);
    }
    let (header, kdmp) = kdmp_read(&forged.dump, &all, tmp.path());

    // The header as kdmp-parser decodes it, against the truth file.
    let ctx = format!("{profile} {format}");
    assert_eq!(
        header["dump_type"].as_u64(),
        truth["dump_type"].as_u64(),
        "{ctx}: DumpType"
    );
    assert_eq!(
        hx(&header["directory_table_base"]) & !0xfff,
        hx(field(truth, "directory_table_base")) & !0xfff,
        "{ctx}: DTB"
    );
    assert_eq!(
        header["processors"].as_u64(),
        truth["processors"].as_u64(),
        "{ctx}: processors"
    );
    assert_eq!(
        header["minor_version"].as_u64(),
        truth["build"].as_u64(),
        "{ctx}: build (MinorVersion)"
    );
    assert_eq!(
        hx(&header["bugcheck_code"]),
        hx(field(field(truth, "bugcheck"), "code")),
        "{ctx}: bugcheck code"
    );
    let params: Vec<u64> = array(field(truth, "bugcheck"), "params")
        .iter()
        .map(hx)
        .collect();
    let kparams: Vec<u64> = header["bugcheck_params"]
        .as_array()
        .expect("params")
        .iter()
        .map(hx)
        .collect();
    assert_eq!(kparams, params, "{ctx}: bugcheck params");
    assert_eq!(
        hx(&header["kd_debugger_data_block"]),
        hx(field(truth, "kdbg")),
        "{ctx}: KdDebuggerDataBlock"
    );
    assert_eq!(
        hx(&header["ps_loaded_module_list"]),
        hx(field(truth, "ps_loaded_module_list")),
        "{ctx}: PsLoadedModuleList"
    );
    assert_eq!(
        hx(&header["ps_active_process_head"]),
        hx(field(truth, "ps_active_process_head")),
        "{ctx}: PsActiveProcessHead"
    );

    // Our reader.
    let dump = Dump::open(&forged.dump)
        .unwrap_or_else(|e| panic!("{ctx}: our reader cannot open the dump: {e}"));
    assert_eq!(dump.format().as_str(), format, "{ctx}: format");
    assert_eq!(
        Some(dump.stored_page_count()),
        truth["physical_pages_stored"].as_u64(),
        "{ctx}: stored pages"
    );
    let vm = dump
        .kernel_memory()
        .unwrap_or_else(|e| panic!("{ctx}: kernel_memory: {e}"));
    let walker = PageTableMemory::new(
        dump.physical(),
        dump.header().directory_table_base,
        PagingMode::X64,
    );

    let mut failures: Vec<String> = Vec::new();
    let mut compared = 0usize;
    let mut page_buf = vec![0u8; PAGE as usize];
    // Distinct page contents seen: identical bytes prove little if every page were zero.
    let mut distinct: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
    let mut compare_page = |what: &str,
                            va: u64,
                            must_be_readable: bool,
                            failures: &mut Vec<String>|
     -> bool {
        let page_va = va & !(PAGE - 1);
        let k = &kdmp[&va];
        let Some(kpage) = &k.page else {
            if must_be_readable {
                failures.push(format!("{what} {va:#x}: kdmp-parser cannot read it (pa {:?}) but the truth file says it is mapped", k.pa));
            }
            return false;
        };
        if must_be_readable && k.pa.is_none() {
            failures.push(format!(
                "{what} {va:#x}: kdmp-parser reads the page but cannot translate the address"
            ));
        }
        // Translation: our page-table walk must land on kdmp-parser's physical address (this
        // catches a wrong walk even where the two pages' bytes happen to be equal, e.g. zeros).
        match (k.pa, walker.translate(va)) {
            (Some(kpa), Ok(pa)) if pa == kpa => {}
            (Some(kpa), Ok(pa)) => failures.push(format!(
                "{what} {va:#x}: we translate to {pa:#x}, kdmp-parser to {kpa:#x}"
            )),
            (Some(kpa), Err(e)) => failures.push(format!(
                "{what} {va:#x}: our translation fails ({e}), kdmp-parser gives {kpa:#x}"
            )),
            (None, _) => {}
        }
        // The physical layer alone: our page at kdmp-parser's physical address.
        if let Some(pa) = k.pa {
            match dump.physical().page(pa >> 12) {
                Some(p) if p == &kpage[..] => {}
                Some(_) => failures.push(format!(
                    "{what} {va:#x}: our physical page {pa:#x} differs from kdmp-parser's"
                )),
                None => failures.push(format!(
                    "{what} {va:#x}: our reader has no physical page {pa:#x}, kdmp-parser has"
                )),
            }
        }
        match vm.read(page_va, &mut page_buf) {
            Ok(()) if page_buf == *kpage => {
                distinct.insert(page_buf.clone());
                true
            }
            Ok(()) => {
                let at = page_buf
                    .iter()
                    .zip(kpage.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                failures.push(format!(
                    "{what} {va:#x}: bytes differ from kdmp-parser's at page offset {at:#x} (ours {:02x?}, kdmp {:02x?}; kdmp pa {:?})",
                    &page_buf[at..(at + 8).min(page_buf.len())],
                    &kpage[at..(at + 8).min(kpage.len())],
                    k.pa.map(|p| format!("{p:#x}"))
                ));
                false
            }
            Err(e) => {
                failures.push(format!(
                    "{what} {va:#x}: our reader fails ({e}) where kdmp-parser reads pa {:?}",
                    k.pa.map(|p| format!("{p:#x}"))
                ));
                false
            }
        }
    };
    for (name, base) in &module_bases {
        compared += usize::from(compare_page(
            &format!("module {name} base"),
            *base,
            true,
            &mut failures,
        ));
    }
    for &va in &random {
        compared += usize::from(compare_page("random mapped", va, true, &mut failures));
    }
    let mut gap_readable = 0usize;
    for &va in &gaps {
        gap_readable += usize::from(compare_page("unmapped-by-truth", va, false, &mut failures));
    }
    let mut crossing = 0usize;
    for &b in &boundaries {
        let (Some(lo), Some(hi)) = (&kdmp[&(b - PAGE)].page, &kdmp[&b].page) else {
            failures.push(format!(
                "boundary {b:#x}: kdmp-parser cannot read both pages of a mapped range"
            ));
            continue;
        };
        let mut expected = lo[PAGE as usize - 16..].to_vec();
        expected.extend_from_slice(&hi[..16]);
        let mut ours = [0u8; 32];
        match vm.read(b - 16, &mut ours) {
            Ok(()) if ours[..] == expected[..] => crossing += 1,
            Ok(()) => failures.push(format!(
                "read across {b:#x}: ours {ours:02x?} != kdmp {expected:02x?}"
            )),
            Err(e) => failures.push(format!("read across {b:#x}: our reader fails: {e}")),
        }
    }
    let shown: Vec<&String> = failures.iter().take(15).collect();
    assert!(
        failures.is_empty(),
        "{ctx}: {} of {} checks disagree with kdmp-parser; first ones:\n{}",
        failures.len(),
        module_bases.len() + random.len() + gaps.len() + boundaries.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Not vacuous: every planted module and every random address was compared.
    assert_eq!(
        compared,
        module_bases.len() + random.len(),
        "{ctx}: pages compared"
    );
    eprintln!(
        "{ctx}: {compared} pages identical to kdmp-parser's ({} distinct contents; {} module bases, {} random), \
         {crossing} cross-page reads, {gap_readable}/{} outside-truth addresses readable by kdmp-parser and identical",
        distinct.len(),
        module_bases.len(),
        random.len(),
        gaps.len()
    );
}

macro_rules! cases {
    ($($name:ident: $build:expr, $format:expr;)*) => {$(
        #[test]
        fn $name() {
            check($build, $format);
        }
    )*};
}

cases! {
    win7_7601_full: 7601, "full";
    win7_7601_kernel_bitmap: 7601, "kernel-bitmap";
    win7_7601_full_bitmap: 7601, "full-bitmap";
    win10_17763_full: 17763, "full";
    win10_17763_kernel_bitmap: 17763, "kernel-bitmap";
    win10_17763_full_bitmap: 17763, "full-bitmap";
    win10_19041_full: 19041, "full";
    win10_19041_kernel_bitmap: 19041, "kernel-bitmap";
    win10_19041_full_bitmap: 19041, "full-bitmap";
    server2022_20348_full: 20348, "full";
    server2022_20348_kernel_bitmap: 20348, "kernel-bitmap";
    server2022_20348_full_bitmap: 20348, "full-bitmap";
}
