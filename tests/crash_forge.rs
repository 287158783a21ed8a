//! The forge's crash scenarios checked against tools nobody here wrote, then against the
//! analyzer:
//! - GNU objdump (`-p`) reads the `.pdata`/`.xdata` of the images (read out of the dump by
//!   kdmp-parser) as the prologs the truth's frames lie in: each frame's function has a
//!   RUNTIME_FUNCTION covering its instruction, with the unwind codes the forge meant;
//! - an unwind done here from objdump's listing over the stack as kdmp-parser reads it gives
//!   the truth's frames (so the stack holds what the prologs pushed);
//! - kdmp-parser decodes the header's context record (Rip, Rsp) as the truth's first frame;
//! - Volatility 3's `windows.unloadedmodules` lists the truth's unloaded drivers;
//! - `pooltriage analyze --json` gives the truth's frames (module, offset), stop reason, bucket
//!   and unloaded drivers.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;

use harness::{hx, python, run, script, vol, vol_symbols, OBJDUMP};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: u64 = 256 << 20;
const PROFILE: &str = "win10-19041-x64";
const XP: &str = "xp-2600-x86pae";

fn forge(dir: &Path, profile: &str, scenario: &str) -> harness::Forged {
    harness::forge_scenario(dir, profile, scenario, Some(SIZE))
        .unwrap_or_else(|| panic!("{scenario} forges on {profile}"))
}

fn module<'a>(truth: &'a Value, name: &str) -> &'a Value {
    truth["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("truth has no module {name}"))
}

/// kdmp-parser's JSON for `addrs` (the header with its context, and the pages).
fn kdmp(dump: &Path, dir: &Path, addrs: &[u64]) -> Value {
    let list = dir.join("kdmp.addrs");
    let text: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    std::fs::write(&list, text).unwrap();
    let out = run(
        Command::new(python())
            .arg(script("kdmp_read.py"))
            .arg(dump)
            .arg(&list),
        "kdmp_read.py",
    );
    serde_json::from_slice(&out).expect("kdmp_read prints JSON")
}

/// One function as objdump prints it: its range and its unwind codes in listed order.
#[derive(Debug, Clone)]
struct Listed {
    begin: u64,
    end: u64,
    codes: Vec<String>,
    frame_reg: Option<String>,
    chain: Option<u64>,
}

/// `objdump -p` of an image: every RUNTIME_FUNCTION with its UNWIND_INFO codes.
fn objdump_unwind(img: &Path) -> Vec<Listed> {
    let out = run(Command::new(OBJDUMP).arg("-p").arg(img), "objdump -p");
    let text = String::from_utf8_lossy(&out);
    let dump = text
        .split_once("Dump of .")
        .unwrap_or_else(|| panic!("objdump prints no unwind data: {text}"))
        .1;
    let mut out: Vec<Listed> = Vec::new();
    for line in dump.lines() {
        let t = line.trim();
        if let Some((_, range)) = t.split_once("): ") {
            let (b, e) = range.split_once(" - ").unwrap();
            out.push(Listed {
                begin: u64::from_str_radix(b, 16).unwrap(),
                end: u64::from_str_radix(e.trim(), 16).unwrap(),
                codes: Vec::new(),
                frame_reg: None,
                chain: None,
            });
        } else if let (Some(l), Some((_, code))) = (out.last_mut(), t.split_once(": ")) {
            if t.starts_with("pc+") {
                l.codes.push(code.to_string());
            } else if t.starts_with("Nbr codes") {
                let reg = t.rsplit("Frame reg: ").next().unwrap().to_string();
                l.frame_reg = (reg != "none").then_some(reg);
            } else if let Some(rest) = t.strip_prefix("Chain: start: ") {
                l.chain = Some(u64::from_str_radix(rest.split(',').next().unwrap(), 16).unwrap());
            }
        }
    }
    out
}

fn image(dump: &Path, dir: &Path, m: &Value) -> (u64, PathBuf) {
    let (base, size) = (hx(&m["base"]), m["size"].as_u64().unwrap());
    (base, harness::image_from_dump(dump, dir, base, size, true))
}

/// Undoes one frame with objdump's reading of the unwind codes: what a walker must do.
fn unwind_one(
    listed: &[Listed],
    base: u64,
    ip: u64,
    sp: u64,
    fp: u64,
    read: &dyn Fn(u64) -> Option<u64>,
) -> Option<(u64, u64, u64)> {
    let f = listed.iter().find(|f| f.begin <= ip && ip < f.end)?;
    let mut chain = vec![f.clone()];
    while let Some(start) = chain.last().unwrap().chain {
        let p = listed.iter().find(|f| f.begin == base + start)?;
        chain.push(p.clone());
    }
    let (mut sp, mut fp) = (sp, fp);
    for f in &chain {
        if f.frame_reg.as_deref() == Some("rbp") {
            let off: u64 = f
                .codes
                .iter()
                .find_map(|c| c.strip_prefix("FPReg: rbp = rsp + 0x"))
                .map(|o| u64::from_str_radix(o.split(' ').next().unwrap(), 16).unwrap())
                .unwrap();
            sp = fp - off;
        }
        for c in &f.codes {
            if let Some(n) = c.split("rsp = rsp - 0x").nth(1) {
                sp += u64::from_str_radix(n, 16).unwrap();
            } else if let Some(r) = c.strip_prefix("push ") {
                if r == "rbp" {
                    fp = read(sp)?;
                }
                sp += 8;
            }
        }
    }
    Some((read(sp)?, sp + 8, fp))
}

/// objdump reads the unwind data of every frame's function as a real prolog, and unwinding
/// with it over the stack kdmp-parser reads gives the truth's frames.
#[test]
fn x64_stack_is_what_the_unwind_data_says() {
    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), PROFILE, "crash-stack");
    let t = &f.truth;
    let crash = &t["crash"];
    let frames = crash["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 6);
    assert_eq!(crash["stopped"], "end_of_stack");
    assert_eq!(crash["bucket"], "0x7E_crashy!ParseRecord");
    assert_eq!(t["bugcheck"]["code"], "0x1000007e");
    assert_eq!(
        hx(&t["bugcheck"]["params"][1]),
        hx(&frames[0]["instruction"])
    );

    let mut listed: BTreeMap<String, (u64, Vec<Listed>)> = BTreeMap::new();
    for name in ["crashy.sys", "ntoskrnl.exe"] {
        let (base, img) = image(&f.dump, dir.path(), module(t, name));
        let l = objdump_unwind(&img);
        assert!(!l.is_empty(), "{name}: objdump lists no function");
        listed.insert(name.into(), (base, l));
    }
    // The intended prologs, as objdump words them.
    let crashy = &listed["crashy.sys"].1;
    let codes = |begin_rva: u64| {
        let base = listed["crashy.sys"].0;
        crashy
            .iter()
            .find(|l| l.begin == base + begin_rva)
            .unwrap()
            .codes
            .clone()
    };
    assert_eq!(
        codes(0x3080),
        [
            "FPReg: rbp = rsp + 0x70 (info = 0x0)",
            "alloc large area: rsp = rsp - 0x1a8",
            "push rdi",
            "push rbp"
        ]
    );
    assert!(crashy.iter().any(|l| l.chain == Some(0x3180)), "{crashy:?}");
    assert_eq!(
        codes(0x3000),
        ["alloc small area: rsp = rsp - 0x28", "push rsi", "push rbx"]
    );
    for fr in frames {
        let (base, l) = &listed[fr["module"].as_str().unwrap()];
        let ip = hx(&fr["instruction"]);
        assert!(
            l.iter().any(|f| f.begin <= ip && ip < f.end),
            "no RUNTIME_FUNCTION covers {fr}"
        );
        assert_eq!(ip - base, hx(&fr["offset"]));
    }

    // The stack through kdmp-parser, unwound with objdump's codes.
    let sp0 = hx(&frames[0]["stack_pointer"]);
    let pages: Vec<u64> = (0..4).map(|i| (sp0 & !0xfff) + i * 0x1000).collect();
    let k = kdmp(&f.dump, dir.path(), &pages);
    let ctx = &k["header"]["context"];
    assert_eq!(
        hx(&ctx["rip"]),
        hx(&frames[0]["instruction"]),
        "context Rip"
    );
    assert_eq!(hx(&ctx["rsp"]), sp0, "context Rsp");
    let mut mem = BTreeMap::new();
    // Pages past the stack's top are not mapped: a read there fails the walk.
    for r in k["reads"].as_array().unwrap() {
        if let Some(page) = r["page"].as_str() {
            mem.insert(hx(&r["va"]), page.to_string());
        }
    }
    let read = |va: u64| -> Option<u64> {
        let page = mem.get(&(va & !0xfff))?;
        let o = ((va & 0xfff) * 2) as usize;
        let bytes: Vec<u8> = (0..8)
            .map(|i| u8::from_str_radix(&page[o + 2 * i..o + 2 * i + 2], 16).unwrap())
            .collect();
        Some(u64::from_le_bytes(bytes.try_into().unwrap()))
    };
    let (mut ip, mut sp, mut fp) = (hx(&ctx["rip"]), sp0, hx(&ctx["rbp"]));
    for (i, fr) in frames.iter().enumerate() {
        assert_eq!(
            (ip, sp),
            (hx(&fr["instruction"]), hx(&fr["stack_pointer"])),
            "frame {i}"
        );
        let (base, l) = &listed[fr["module"].as_str().unwrap()];
        (ip, sp, fp) = unwind_one(l, *base, ip, sp, fp, &read).expect("unwinds");
    }
    assert_eq!(ip, 0, "the outermost frame returns to 0");
}

/// `pooltriage analyze --json` on every crash scenario, x64 and x86: the frames (module,
/// offset), the stop reason, the bucket and the unloaded drivers of the truth; for the 0x8E
/// variants, the walk starts from the truth's trap frame. Every hostile stack stops with its
/// reason (`run` waits for analyze to exit: a hang fails the test by its timeout).
#[test]
fn analyzer_walks_the_forged_stacks() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, scenario) in [
        (PROFILE, "crash-stack"),
        ("win10-17763-x64", "crash-stack"),
        ("win7-7601-x64", "crash-stack"),
        ("server2022-20348-x64", "crash-stack"),
        (PROFILE, "crash-stack-loop"),
        (PROFILE, "crash-stack-outside"),
        (PROFILE, "crash-stack-no-unwind"),
        (PROFILE, "crash-stack-cut"),
        (PROFILE, "crash-stack-trap"),
        (XP, "crash-stack-loop"),
        (XP, "crash-stack-outside"),
        (XP, "crash-stack-cut"),
        (XP, "crash-stack-trap"),
    ] {
        let f = forge(dir.path(), profile, scenario);
        let truth = &f.truth["crash"];
        let r = analyze(&f.dump);
        let c = &r["crash"];
        assert!(
            c.is_object(),
            "{scenario}: no crash member: {}",
            r["errors"]
        );
        let got = c["stack"]["frames"].as_array().unwrap();
        let want = truth["frames"].as_array().unwrap();
        let pairs = |v: &[Value]| -> Vec<(String, u64)> {
            v.iter()
                .filter(|f| !f["module"].is_null())
                .map(|f| (f["module"].as_str().unwrap().to_string(), hx(&f["offset"])))
                .collect()
        };
        assert_eq!(pairs(got), pairs(want), "{scenario}: frames");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                hx(&g["stack_pointer"]),
                hx(&w["stack_pointer"]),
                "{scenario}"
            );
            if let Some(func) = g["function"].as_str() {
                assert_eq!(Some(func), w["function"].as_str(), "{scenario}");
            }
        }
        // A frame outside every module may close the list, at the truth's stop address.
        if let Some(extra) = got.get(want.len()) {
            assert!(extra["module"].is_null(), "{scenario}: {extra}");
            assert_eq!(hx(&extra["instruction"]), hx(&truth["stop_address"]));
        }
        assert!(
            got.len() <= want.len() + 1,
            "{profile} {scenario}: frames past the truth's: {got:?}"
        );
        assert_eq!(
            c["stack"]["stopped"]["reason"], truth["stopped"],
            "{profile} {scenario}: {}",
            c["stack"]["stopped"]["detail"]
        );
        match truth["trap_frame"].as_str() {
            Some(at) => {
                assert_eq!(c["context_source"], "trap_frame", "{profile} {scenario}");
                assert_eq!(hx(&c["context_address"]), hx(&Value::from(at)));
            }
            None => assert_eq!(c["context_source"], "exception_record", "{scenario}"),
        }
        assert_eq!(c["followup_module"], truth["followup_module"], "{scenario}");
        let named = got
            .iter()
            .any(|f| f["module"] == "crashy.sys" && f["function"].is_string());
        let bucket = if named {
            "bucket"
        } else {
            "bucket_without_symbols"
        };
        assert_eq!(c["bucket"], truth[bucket], "{scenario}");
        // Without symbols (`--no-symbols`, and the corpus ISF folder has no XP kernel) the XP
        // kernel's MmUnloadedDrivers cannot be found: the list is compared on x64.
        if profile != XP {
            assert_eq!(
                unloaded(&c["unloaded_drivers"]),
                unloaded(&truth["unloaded_drivers"]),
                "{scenario}"
            );
        }
    }
}

/// XP: the EBP chain read through Volatility's layers gives the truth's frames.
#[test]
fn xp_frame_pointer_chain() {
    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), XP, "crash-stack");
    let frames = f.truth["crash"]["frames"].as_array().unwrap().clone();
    assert_eq!(frames.len(), 6);
    let top = hx(&frames[0]["frame_pointer"]) & !0xfff;
    let list = dir.path().join("xp.addrs");
    std::fs::write(&list, format!("{top:#x}\n{:#x}\n", top + 0x1000)).unwrap();
    let out = run(
        Command::new(python())
            .arg(script("vol_virt_read.py"))
            .arg(&f.dump)
            .arg(&list),
        "vol_virt_read.py",
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    let mut mem = BTreeMap::new();
    for r in v["reads"].as_array().unwrap() {
        if let Some(h) = r["page"].as_str() {
            let bytes: Vec<u8> = (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            mem.insert(hx(&r["va"]), bytes);
        }
    }
    let read = |va: u64| {
        let page = mem
            .get(&(va & !0xfff))
            .expect("the stack page is in the dump");
        let o = (va & 0xfff) as usize;
        u64::from(u32::from_le_bytes(page[o..o + 4].try_into().unwrap()))
    };
    // The header's CONTEXT (x86, at 0x320): Ebp at +0xB4, Eip at +0xB8.
    let head = std::fs::read(&f.dump).unwrap();
    let ctx = |o: usize| {
        u64::from(u32::from_le_bytes(
            head[0x320 + o..0x324 + o].try_into().unwrap(),
        ))
    };
    let (mut ip, mut ebp) = (ctx(0xb8), ctx(0xb4));
    for (i, fr) in frames.iter().enumerate() {
        assert_eq!(ip, hx(&fr["instruction"]), "frame {i}");
        assert_eq!(ebp, hx(&fr["frame_pointer"]), "frame {i}");
        if ebp == 0 {
            assert_eq!(i, frames.len() - 1, "the chain ends at the last frame");
            break;
        }
        ip = read(ebp + 4);
        ebp = read(ebp);
    }
    let r = analyze(&f.dump);
    let got = r["crash"]["stack"]["frames"]
        .as_array()
        .expect("analyze walks the XP stack");
    let pairs = |v: &[Value]| -> Vec<(String, u64)> {
        v.iter()
            .map(|f| {
                (
                    f["module"].as_str().unwrap_or("").to_string(),
                    hx(&f["offset"]),
                )
            })
            .collect()
    };
    assert_eq!(pairs(got), pairs(&frames), "analyze's XP frames");
}

/// Volatility's `windows.unloadedmodules` and `pooltriage analyze` read the planted
/// MmUnloadedDrivers alike; for 0xC4/0x62 the verdict names the unloaded driver.
#[test]
fn unloaded_drivers_as_volatility_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), PROFILE, "unloaded-leak");
    let want = unloaded(&f.truth["crash"]["unloaded_drivers"]);
    assert_eq!(want.last().unwrap().0, "leakflt.sys");
    let cache = dir.path().join("vol-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = run(
        Command::new(vol())
            .args(["-q", "--offline", "-r", "json", "-s"])
            .arg(vol_symbols())
            .arg("--cache-path")
            .arg(&cache)
            .arg("-f")
            .arg(&f.dump)
            .arg("windows.unloadedmodules"),
        "vol windows.unloadedmodules",
    );
    let rows: Vec<Value> = serde_json::from_slice(&out).unwrap();
    const MASK48: u64 = (1 << 48) - 1;
    let vol_list: Vec<(String, u64, u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["Name"].as_str().unwrap().to_string(),
                r["StartAddress"].as_u64().unwrap(),
                r["EndAddress"].as_u64().unwrap(),
                r["Time"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(vol_list.len(), want.len(), "{rows:?}");
    for (v, w) in vol_list.iter().zip(&want) {
        assert_eq!(v.0, w.0);
        assert_eq!((v.1, v.2), (w.1 & MASK48, w.2 & MASK48), "{}", v.0);
        // Volatility prints "2021-03-10T13:51:07+00:00"; the truth RFC 3339 with Z.
        assert_eq!(v.3.replace("+00:00", "Z"), w.3, "{}", v.0);
    }
    let r = analyze(&f.dump);
    assert!(
        r["verdict"]["sentence"]
            .as_str()
            .unwrap()
            .contains("leakflt.sys"),
        "{}",
        r["verdict"]
    );
    // This scenario forges no crashing thread: the crash member says so and still lists them.
    let c = &r["crash"];
    assert_eq!(c["context_source"], "none", "{c}");
    assert_eq!(c["stack"]["stopped"]["reason"], "no_context", "{c}");
    assert_eq!(unloaded(&c["unloaded_drivers"]), want);
}

/// A pool bug check names the block at its pool-block parameter: the forged untagged leak's
/// dump with its header turned into BAD_POOL_CALLER 7 (a double free) of one of acmefs.sys's
/// live blocks, as the caller passed it (the block's data, past its 16-byte header).
#[test]
fn pool_bugcheck_names_the_block_at_its_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), PROFILE, "untagged-two-drivers");
    let block = f.truth["pool"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["owner"] == "acmefs.sys"
                && b["allocated"] == true
                && b["source"] != "big"
                && b["transition"] != true
        })
        .expect("a live acmefs.sys block");
    let address = hx(&block["address"]);
    let mut bytes = std::fs::read(&f.dump).unwrap();
    // DUMP_HEADER64: BugCheckCode at 0x38, the four parameters from 0x40.
    bytes[0x38..0x3C].copy_from_slice(&0xC2u32.to_le_bytes());
    for (i, p) in [7u64, 0x1234, 0, address + 0x10].iter().enumerate() {
        bytes[0x40 + 8 * i..0x48 + 8 * i].copy_from_slice(&p.to_le_bytes());
    }
    let patched = dir.path().join("bad-pool-caller.dmp");
    std::fs::write(&patched, bytes).unwrap();

    let r = analyze(&patched);
    let b = &r["crash"]["pool_block"];
    assert_eq!(hx(&b["address"]), address, "{}", r["crash"]);
    assert_eq!(b["size"], block["size"], "{b}");
    assert_eq!(b["allocated"], true, "{b}");
    assert_eq!(b["contains"], true, "{b}");
    assert_eq!(b["owner"]["module"], "acmefs.sys", "{b}");
}

fn unloaded(v: &Value) -> Vec<(String, u64, u64, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                hx(&d["start"]),
                hx(&d["end"]),
                d["unloaded_at"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn analyze(dump: &Path) -> Value {
    let out = run(
        Command::new(harness::pooltriage_bin())
            .args(["analyze", "--json", "--no-symbols", "--isf-dir"])
            .arg(harness::corpus().join("isf"))
            .arg(dump),
        "pooltriage analyze",
    );
    serde_json::from_slice(&out).expect("analyze prints JSON")
}
