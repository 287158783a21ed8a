//! Volatility 3 (PyPI) reads forged dumps as real ones: `windows.info`, `windows.modules` and
//! `windows.pslist` on forged Windows 7 SP1 7601, Windows 10 17763 and 19041 and Server 2022
//! 20348 x64 dumps (kernel-bitmap and full), with the corpus ISF folder, and on a forged XP SP3
//! PAE dump (full) with the ISF that Volatility's own pdbconv made from the corpus ntkrnlpa.pdb.
//!
//! `windows.driverscan` and `windows.devicetree` on the untagged-two-drivers scenario of every
//! profile find the planted `_DRIVER_OBJECT`s by their pool tag ('Dri\xf6' on XP/7, 'Driv' on
//! 10+), carve them as Volatility does (bottom-up on XP/7, top-down through the optional
//! headers on 10+), check their type through the object header (XP's Type pointer, 7+'s
//! ObTypeIndexTable, 10's ObHeaderCookie) and name them through the name info; the devices come
//! from DeviceObject / NextDevice.
//!
//! Volatility finds the page tables and the kernel by scanning (it ignores the header's
//! DirectoryTableBase), picks the ISF by the kernel's CodeView GUID, and walks
//! PsLoadedModuleList / PsActiveProcessHead itself. Expected values come from the truth file.
//! Needs the venv and symbols dir of `scripts/test.sh`; a missing tool fails the test.

#[path = "independent/harness.rs"]
mod harness;

use harness::{array, field, forge, hx, profile_for_build, python, run, script, vol, vol_symbols};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const DUMP_SIZE: u64 = 1 << 30;

/// Volatility's JSON renderer prints pointers masked to 48 bits; x86 addresses are unaffected.
const MASK48: u64 = (1 << 48) - 1;

fn vol_json(dump: &Path, plugin: &str, cache: &Path) -> Vec<Value> {
    // A private cache per run: several vol processes run at once and share no sqlite file.
    std::fs::create_dir_all(cache).expect("vol cache dir");
    let out = run(
        Command::new(vol())
            .args(["-q", "--offline", "-r", "json", "-s"])
            .arg(vol_symbols())
            .arg("--cache-path")
            .arg(cache)
            .arg("-f")
            .arg(dump)
            .arg(plugin),
        &format!("vol {plugin}"),
    );
    let v: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "vol {plugin} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    v.as_array()
        .unwrap_or_else(|| panic!("vol {plugin}: not a list: {v}"))
        .clone()
}

fn num(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("vol row lacks number {key:?}: {row}"))
}

fn text<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("vol row lacks string {key:?}: {row}"))
}

fn check_info(ctx: &str, truth: &Value, rows: &[Value]) {
    let info: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (text(r, "Variable"), text(r, "Value")))
        .collect();
    let get = |k: &str| {
        *info
            .get(k)
            .unwrap_or_else(|| panic!("{ctx}: windows.info has no {k:?}: {info:?}"))
    };
    let parse = |k: &str| {
        let v = get(k);
        u64::from_str_radix(v.trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("{ctx}: {k} {v:?}: {e}"))
    };
    let kernel = field(truth, "kernel");
    assert_eq!(
        parse("Kernel Base") & MASK48,
        hx(field(kernel, "base")) & MASK48,
        "{ctx}: windows.info Kernel Base"
    );
    let pdb = field(kernel, "pdb");
    let isf = format!(
        "{}/{}-{}.json",
        field(pdb, "name").as_str().expect("pdb name"),
        field(pdb, "guid")
            .as_str()
            .expect("pdb guid")
            .replace('-', "")
            .to_uppercase(),
        field(pdb, "age").as_u64().expect("pdb age")
    );
    assert!(
        get("Symbols").contains(&isf),
        "{ctx}: Volatility chose symbols {:?}, expected the ISF {isf}",
        get("Symbols")
    );
    let minor = get("Major/Minor").rsplit('.').next().unwrap_or("");
    assert_eq!(
        minor,
        field(truth, "build").to_string(),
        "{ctx}: windows.info Major/Minor (KdVersionBlock build)"
    );
    assert_eq!(
        get("KeNumberProcessors"),
        field(truth, "processors").to_string(),
        "{ctx}: KeNumberProcessors"
    );
    let x64 = truth["arch"] == "x64";
    assert_eq!(
        get("Is64Bit"),
        if x64 { "True" } else { "False" },
        "{ctx}: Is64Bit"
    );
    let pae = truth["pae"].as_bool().unwrap_or(false);
    assert_eq!(
        get("IsPAE"),
        if pae { "True" } else { "False" },
        "{ctx}: IsPAE"
    );
    // Volatility read the file through its crash-dump layer, not as a raw memory image.
    let layer = if x64 {
        "WindowsCrashDump64Layer"
    } else {
        "WindowsCrashDump32Layer"
    };
    assert!(
        info.values().any(|v| v.ends_with(layer)),
        "{ctx}: Volatility did not use its {layer}: {info:?}"
    );
    if let Some(lab) = info.get("NTBuildLab") {
        assert!(
            lab.starts_with(&format!("{}.", field(truth, "build"))),
            "{ctx}: NTBuildLab {lab:?}"
        );
    }
    let dtb_mask = if x64 { !0xfff } else { !0x1f };
    assert_eq!(
        parse("DTB") & dtb_mask,
        hx(field(truth, "directory_table_base")) & dtb_mask,
        "{ctx}: page tables Volatility found"
    );
    if info.contains_key("KdDebuggerDataBlock") {
        assert_eq!(
            parse("KdDebuggerDataBlock") & MASK48,
            hx(field(truth, "kdbg")) & MASK48,
            "{ctx}: KdDebuggerDataBlock"
        );
    }
}

fn check_modules(ctx: &str, truth: &Value, rows: &[Value]) {
    let by_base: BTreeMap<u64, &Value> = rows.iter().map(|r| (num(r, "Base"), r)).collect();
    let planted = array(truth, "modules");
    assert!(!planted.is_empty(), "{ctx}: truth has no modules");
    for m in planted {
        let name = field(m, "name").as_str().expect("module name");
        let base = hx(field(m, "base")) & MASK48;
        let row = by_base.get(&base).unwrap_or_else(|| {
            panic!(
                "{ctx}: windows.modules has no module at {base:#x} ({name}); it lists {:?}",
                rows.iter()
                    .map(|r| (text(r, "Name"), num(r, "Base")))
                    .collect::<Vec<_>>()
            )
        });
        assert_eq!(
            text(row, "Name"),
            name,
            "{ctx}: name of module at {base:#x}"
        );
        assert_eq!(
            num(row, "Size"),
            hx(field(m, "size")),
            "{ctx}: size of {name}"
        );
        if let Some(path) = m["path"].as_str() {
            assert_eq!(text(row, "Path"), path, "{ctx}: path of {name}");
        }
    }
    assert_eq!(
        rows.len(),
        planted.len(),
        "{ctx}: windows.modules lists other modules than were planted"
    );
}

fn check_pslist(ctx: &str, truth: &Value, rows: &[Value]) {
    let by_pid: BTreeMap<u64, &Value> = rows.iter().map(|r| (num(r, "PID"), r)).collect();
    let planted = array(truth, "processes");
    assert!(!planted.is_empty(), "{ctx}: truth has no processes");
    for p in planted {
        let pid = field(p, "pid").as_u64().expect("pid");
        let name = field(p, "name").as_str().expect("process name");
        let row = by_pid
            .get(&pid)
            .unwrap_or_else(|| panic!("{ctx}: windows.pslist has no PID {pid} ({name}): {rows:?}"));
        assert_eq!(
            num(row, "PPID"),
            field(p, "ppid").as_u64().expect("ppid"),
            "{ctx}: PPID of {pid}"
        );
        // EPROCESS.ImageFileName is UCHAR[15]: Windows keeps at most the first 14 characters + NUL.
        let got = text(row, "ImageFileName");
        assert!(
            got == name || (name.len() > 14 && got.len() >= 14 && name.starts_with(got)),
            "{ctx}: ImageFileName of {pid}: {got:?}, planted {name:?}"
        );
        if let Some(eprocess) = p["eprocess"].as_str() {
            let want = hx(&Value::String(eprocess.to_owned())) & MASK48;
            assert_eq!(
                num(row, "Offset(V)") & MASK48,
                want,
                "{ctx}: EPROCESS of {pid}"
            );
        }
    }
    assert_eq!(
        rows.len(),
        planted.len(),
        "{ctx}: windows.pslist lists other processes than were planted"
    );
}

fn check(build: u32, format: &str) {
    let profile = profile_for_build(build);
    let ctx = format!("{profile} {format}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let forged = forge(tmp.path(), &profile, format, Some(DUMP_SIZE));
    let truth = &forged.truth;
    assert_eq!(
        truth["build"].as_u64(),
        Some(u64::from(build)),
        "{ctx}: truth build"
    );
    // The three plugins are independent runs (each re-scans the dump): run them side by side.
    let plugins = ["windows.info", "windows.modules", "windows.pslist"];
    let results: Vec<std::thread::Result<Vec<Value>>> = std::thread::scope(|s| {
        let handles: Vec<_> = plugins
            .iter()
            .map(|&plugin| {
                let dump = &forged.dump;
                let cache = tmp.path().join(format!("vol-cache-{plugin}"));
                s.spawn(move || vol_json(dump, plugin, &cache))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut rows = Vec::new();
    for r in results {
        match r {
            Ok(v) => rows.push(v),
            Err(e) => std::panic::resume_unwind(e),
        }
    }
    check_info(&ctx, truth, &rows[0]);
    check_modules(&ctx, truth, &rows[1]);
    check_pslist(&ctx, truth, &rows[2]);
    eprintln!(
        "{ctx}: Volatility 3 agrees: kernel base, ISF, build, CPUs; {} modules; {} processes",
        rows[1].len(),
        rows[2].len()
    );
}

/// Volatility's names of the FILE_DEVICE_* types the forge plants.
fn device_type_name(t: u64) -> &'static str {
    match t {
        0x8 => "FILE_DEVICE_DISK_FILE_SYSTEM",
        0x12 => "FILE_DEVICE_NETWORK",
        0x22 => "FILE_DEVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Physical addresses of `vas` as kdmp-parser translates them (x64 dumps).
fn physical(dump: &Path, dir: &Path, vas: &[u64]) -> BTreeMap<u64, u64> {
    let addrs = dir.join("objects.txt");
    let list: String = vas.iter().map(|v| format!("{v:#x}\n")).collect();
    std::fs::write(&addrs, list).unwrap();
    let out = run(
        Command::new(python())
            .arg(script("kdmp_read.py"))
            .arg(dump)
            .arg(&addrs),
        "kdmp_read.py",
    );
    let v: Value = serde_json::from_slice(&out).expect("kdmp_read.py prints JSON");
    v["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (hx(&r["va"]), hx(&r["pa"])))
        .collect()
}

/// driverscan and devicetree against the truth's `driver_objects`: every planted driver with
/// its name, service key, image start and size, at its DRIVER_OBJECT (virtual on 10+, physical
/// before: kdmp-parser's translation on 7601, the page offset on XP), nothing else; each
/// driver's DeviceObject by name and type.
fn check_drivers(build: u32) {
    let profile = profile_for_build(build);
    let tmp = tempfile::tempdir().expect("tempdir");
    let forged = harness::forge_scenario(
        tmp.path(),
        &profile,
        "untagged-two-drivers",
        Some(DUMP_SIZE),
    )
    .expect("the forge plants untagged-two-drivers");
    let truth = &forged.truth;
    let plugins = ["windows.driverscan", "windows.devicetree"];
    let rows: Vec<Vec<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = plugins
            .iter()
            .map(|&plugin| {
                let cache = tmp.path().join(format!("vol-cache-{plugin}"));
                let dump = &forged.dump;
                s.spawn(move || vol_json(dump, plugin, &cache))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let planted = array(truth, "driver_objects");
    let modules: BTreeMap<&str, &Value> = array(truth, "modules")
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m))
        .collect();
    let vas: Vec<u64> = planted.iter().map(|d| hx(&d["driver_object"])).collect();
    let pas = if truth["arch"] == "x64" && build < 10000 {
        physical(&forged.dump, tmp.path(), &vas)
    } else {
        BTreeMap::new()
    };
    let by_name: BTreeMap<&str, &Value> = rows[0].iter().map(|r| (text(r, "Name"), r)).collect();
    for d in planted {
        let full = d["name"].as_str().unwrap();
        let row = by_name
            .get(full)
            .unwrap_or_else(|| panic!("{profile}: driverscan has no {full}: {:?}", rows[0]));
        let m = modules[d["module"].as_str().unwrap()];
        assert_eq!(
            num(row, "Start") & MASK48,
            hx(&m["base"]) & MASK48,
            "{full}: Start"
        );
        assert_eq!(
            num(row, "Size"),
            m["size"].as_u64().unwrap(),
            "{full}: Size"
        );
        assert_eq!(text(row, "Driver Name"), full.rsplit('\\').next().unwrap());
        let stem = m["name"].as_str().unwrap().rsplit_once('.').unwrap().0;
        assert_eq!(text(row, "Service Key"), stem, "{full}: service key");
        let va = hx(&d["driver_object"]);
        let offset = num(row, "Offset");
        match (build >= 10000, pas.get(&va)) {
            (true, _) => assert_eq!(offset & MASK48, va & MASK48, "{full}: offset"),
            (false, Some(pa)) => assert_eq!(offset, *pa, "{full}: physical offset"),
            (false, None) => assert_eq!(offset & 0xfff, va & 0xfff, "{full}: page offset"),
        }
    }
    assert_eq!(
        rows[0].len(),
        planted.len(),
        "{profile}: driverscan lists other drivers"
    );
    // devicetree: one DRV row per driver, its DEV children in order.
    let trees: BTreeMap<&str, &Value> = rows[1]
        .iter()
        .filter(|r| r["Type"] == "DRV")
        .map(|r| (text(r, "DriverName"), r))
        .collect();
    for d in planted {
        let short = d["name"].as_str().unwrap().rsplit('\\').next().unwrap();
        let tree = trees
            .get(short)
            .unwrap_or_else(|| panic!("{profile}: devicetree has no {short}"));
        let got: Vec<(&str, &str)> = tree["__children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["Type"] == "DEV")
            .map(|c| (text(c, "DeviceName"), text(c, "DeviceType")))
            .collect();
        let want: Vec<(&str, &str)> = array(d, "devices")
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap(),
                    device_type_name(v["device_type"].as_u64().unwrap()),
                )
            })
            .collect();
        // Volatility 2.28 follows DeviceObject, but a NULL AttachedDevice still yields an
        // "attached device" at address 0 whose DriverObject read fails, which abandons the rest
        // of the driver (NextDevice): it shows each driver's first device only. The full chain
        // is read back by the forge's own test (forge/tests/objects.rs).
        assert_eq!(
            got.first(),
            want.first(),
            "{profile}: first device of {short}"
        );
    }
    eprintln!(
        "{profile}: Volatility 3 driverscan lists the {} planted drivers, devicetree their first devices",
        planted.len()
    );
}

macro_rules! driver_cases {
    ($($name:ident: $build:expr;)*) => {$(
        #[test]
        fn $name() {
            check_drivers($build);
        }
    )*};
}

driver_cases! {
    drivers_xp_2600: 2600;
    drivers_win7_7601: 7601;
    drivers_win10_17763: 17763;
    drivers_win10_19041: 19041;
    drivers_server2022_20348: 20348;
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
    win7_7601_kernel_bitmap: 7601, "kernel-bitmap";
    win7_7601_full: 7601, "full";
    win10_17763_kernel_bitmap: 17763, "kernel-bitmap";
    win10_17763_full: 17763, "full";
    win10_19041_kernel_bitmap: 19041, "kernel-bitmap";
    win10_19041_full: 19041, "full";
    server2022_20348_kernel_bitmap: 20348, "kernel-bitmap";
    server2022_20348_full: 20348, "full";
    xp_2600_pae_full: 2600, "full";
}
