//! The call sites the forge's truth names (`pool.provenance.modules[].sites`, and each owned
//! block's `site`), checked with tools nobody here wrote: the driver's image is read out of the
//! dump by kdmp-parser (x64) or Volatility 3's layers (x86), GNU objdump (`-p`) reads its
//! import directory (ntoskrnl.exe's ExAllocatePool / ExAllocatePoolWithTag and the first thunk,
//! i.e. the IAT), and objdump's disassembly at each site must be a `call` through the IAT slot
//! of the import the truth names, preceded by the pool type and the size the truth gives (or
//! the `lea` that computes it), the next instruction at the truth's return address.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;

use harness::{hx, python, run, script};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const OBJDUMP: &str = "x86_64-w64-mingw32-objdump";
const SIZE: u64 = 268_435_456;

/// The module's image (base..base+size) read out of the dump by kdmp-parser or Volatility.
fn image(dump: &Path, dir: &Path, base: u64, size: u64, x64: bool) -> PathBuf {
    let addrs = dir.join("addrs.txt");
    let list: String = (0..size.div_ceil(0x1000))
        .map(|i| format!("{:#x}\n", base + i * 0x1000))
        .collect();
    std::fs::write(&addrs, list).unwrap();
    let tool = if x64 {
        "kdmp_read.py"
    } else {
        "vol_virt_read.py"
    };
    let out = run(
        Command::new(python())
            .arg(script(tool))
            .arg(dump)
            .arg(&addrs),
        "read the driver image",
    );
    let v: Value = serde_json::from_slice(&out).expect("the reader prints JSON");
    let mut bytes = Vec::new();
    for r in v["reads"].as_array().unwrap() {
        match r["page"].as_str() {
            Some(h) => bytes.extend(
                (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()),
            ),
            None => bytes.extend_from_slice(&[0u8; 0x1000]),
        }
    }
    let path = dir.join(format!("{base:x}.img"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// IAT slot address -> imported name, from `objdump -p`: the ntoskrnl.exe descriptor's First
/// Thunk and its member names in order.
fn import_slots(img: &Path, base: u64, x64: bool) -> BTreeMap<u64, String> {
    let out = run(Command::new(OBJDUMP).arg("-p").arg(img), "objdump -p");
    let text = String::from_utf8_lossy(&out);
    let mut lines = text.lines();
    lines
        .find(|l| l.contains("The Import Tables"))
        .expect("objdump finds an import table");
    let row = lines
        .find(|l| l.trim_start().starts_with(|c: char| c.is_ascii_hexdigit()))
        .expect("descriptor row");
    let thunk = u64::from_str_radix(row.split_whitespace().last().unwrap(), 16).unwrap();
    let dll = lines.find(|l| l.contains("DLL Name:")).unwrap();
    assert!(dll.contains("ntoskrnl.exe"), "{dll}");
    lines.next(); // "vma:  Hint/Ord Member-Name Bound-To"
    let slot = if x64 { 8 } else { 4 };
    let mut out = BTreeMap::new();
    for (i, l) in lines.take_while(|l| !l.trim().is_empty()).enumerate() {
        let name = l.split_whitespace().last().unwrap().to_string();
        out.insert(base + thunk + i as u64 * slot, name);
    }
    out
}

/// objdump's disassembly of `[from, to)` as (address, text) lines.
fn disassemble(img: &Path, base: u64, from: u64, to: u64, x64: bool) -> Vec<(u64, String)> {
    let out = run(
        Command::new(OBJDUMP)
            .args(["-D", "-b", "binary", "-m"])
            .arg(if x64 { "i386:x86-64" } else { "i386" })
            .arg(format!("--adjust-vma={base:#x}"))
            .arg(format!("--start-address={from:#x}"))
            .arg(format!("--stop-address={to:#x}"))
            .arg(img),
        "objdump -D",
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let (a, rest) = l.trim_start().split_once(":\t")?;
            Some((u64::from_str_radix(a, 16).ok()?, rest.to_string()))
        })
        .collect()
}

/// Checks one site; returns the instruction text of its call.
fn check_site(
    img: &Path,
    base: u64,
    s: &Value,
    slots: &BTreeMap<u64, String>,
    x64: bool,
) -> String {
    let (call, func) = (hx(&s["address"]), hx(&s["function"]));
    let code = disassemble(img, base, func, func + 0x40, x64);
    let i = code
        .iter()
        .position(|(a, _)| *a == call)
        .unwrap_or_else(|| panic!("objdump has no instruction at {call:#x}: {code:?}"));
    let text = &code[i].1;
    let slot = hx(&s["iat_slot"]);
    let want = if x64 {
        format!("# {slot:#x}")
    } else {
        format!("call   *{slot:#x}")
    };
    assert!(
        text.contains("call   *") && text.contains(&want),
        "{call:#x}: {text}"
    );
    assert_eq!(
        slots.get(&slot),
        s["import"].as_str().map(String::from).as_ref(),
        "{call:#x}: import"
    );
    assert_eq!(
        code[i + 1].0,
        hx(&s["return_address"]),
        "{call:#x}: return address"
    );
    let before: Vec<&str> = code[..i].iter().map(|(_, t)| t.as_str()).collect();
    let has = |pat: &str| before.iter().any(|t| t.contains(pat));
    let ty = s["pool_type_value"].as_u64().unwrap();
    match (s["size"].as_u64(), x64) {
        (Some(n), true) => assert!(
            has(&format!("mov    ${n:#x},%edx")),
            "{call:#x}: {before:?}"
        ),
        (Some(n), false) => assert!(has(&format!("push   ${n:#x}")), "{call:#x}: {before:?}"),
        (None, true) => assert!(
            has("lea    0x40(%rbx,%rbx,2),%edx"),
            "{call:#x}: {before:?}"
        ),
        (None, false) => assert!(
            has("lea    0x40(%eax,%eax,2),%eax"),
            "{call:#x}: {before:?}"
        ),
    }
    let type_pat = if x64 {
        format!("mov    ${ty:#x},%ecx")
    } else {
        format!("push   ${ty:#x}")
    };
    assert!(has(&type_pat), "{call:#x}: pool type: {before:?}");
    if let Some(tag) = s["tag"].as_str() {
        let imm = u32::from_le_bytes(tag.as_bytes().try_into().unwrap());
        let pat = if x64 {
            format!("mov    ${imm:#x},%r8d")
        } else {
            format!("push   ${imm:#x}")
        };
        assert!(has(&pat), "{call:#x}: tag: {before:?}");
    }
    text.clone()
}

fn check_profile(profile: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let f = harness::forge_scenario(dir.path(), profile, "untagged-two-drivers", Some(SIZE))
        .expect("the forge plants untagged-two-drivers");
    let truth = &f.truth;
    let x64 = truth["arch"] == "x64";
    let mut checked = 0;
    let mut calls = std::collections::BTreeSet::new();
    for m in truth["pool"]["provenance"]["modules"].as_array().unwrap() {
        let name = m["module"].as_str().unwrap();
        let module = truth["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap();
        let (base, size) = (hx(&module["base"]), module["size"].as_u64().unwrap());
        let img = image(&f.dump, dir.path(), base, size, x64);
        let slots = import_slots(&img, base, x64);
        assert!(
            slots.values().any(|n| n == "ExAllocatePool"),
            "{name}: {slots:?}"
        );
        for s in m["sites"].as_array().unwrap() {
            check_site(&img, base, s, &slots, x64);
            calls.insert(hx(&s["address"]));
            checked += 1;
        }
    }
    // Every owned block names one of these sites.
    for b in truth["pool"]["blocks"].as_array().unwrap() {
        if let Some(site) = b.get("site").filter(|s| !s.is_null()) {
            assert!(
                calls.contains(&hx(site)),
                "{profile}: block {} site {site}",
                b["address"]
            );
        }
    }
    checked
}

#[test]
fn every_truth_call_site_is_a_call_through_the_named_iat_slot() {
    let mut total = 0;
    for profile in [
        "xp-2600-x86pae",
        "win7-7601-x64",
        "win10-17763-x64",
        "win10-19041-x64",
        "server2022-20348-x64",
    ] {
        let n = check_profile(profile);
        assert_eq!(n, 12, "{profile}: sites of acmefs, acmeflt, NDIS, tcpip");
        eprintln!("{profile}: {n} call sites decoded by objdump as the truth says");
        total += n;
    }
    assert_eq!(total, 60);
}
