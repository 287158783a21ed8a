//! `pooltriage inspect` end to end: the built binary on the real triage dump (JSON shape and
//! values from the corpus README), on bad input (exit code 2, one line on stderr), and on
//! forged dumps of every profile (the report must show what the forge planted, per its truth
//! file).
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{array, field, forge, hx, pooltriage_bin};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const TRIAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/dumps/triage_x64.dmp"
);

fn inspect(path: &Path, json: bool) -> Output {
    let mut cmd = Command::new(pooltriage_bin());
    // No symbol path: tests reach no network but loopback, and these checks need no symbols.
    cmd.arg("inspect").arg("--no-symbols").arg(path);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("pooltriage runs")
}

fn inspect_json(path: &Path) -> Value {
    let out = inspect(path, true);
    assert!(
        out.status.success(),
        "inspect --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// A "0x..." lowercase hex string.
fn is_hex(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.strip_prefix("0x").is_some_and(|d| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
    })
}

fn hex_or_null(v: &Value) -> bool {
    v.is_null() || is_hex(v)
}

/// Exit code 2, nothing on stdout, exactly one line on stderr naming the file.
fn assert_bad_input(path: &Path, want: &str) {
    for json in [false, true] {
        let out = inspect(path, json);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: stderr {err}",
            path.display()
        );
        assert!(
            out.stdout.is_empty(),
            "stdout on bad input: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(err.lines().count(), 1, "one line on stderr, got {err:?}");
        assert!(
            err.starts_with(&format!("error: {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains(want), "{err:?} should mention {want:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn triage_json_shape_and_values() {
    let r = inspect_json(Path::new(TRIAGE));
    assert_eq!(r["schema_version"], 1);

    let d = &r["dump"];
    assert_eq!(d["format"], "triage");
    assert_eq!(d["dump_type"], 4);
    assert_eq!(d["arch"], "x64");
    assert_eq!(d["pae"], false);
    assert_eq!(d["build"], 19041); // corpus README
    assert_eq!(d["processors"], 16); // corpus README
    assert!(is_hex(&d["system_time"]), "{}", d["system_time"]);
    assert_eq!(d["system_time"], "0x1d707f23dbb3399"); // header 0xFA8, read by hand

    let b = &r["bugcheck"];
    assert_eq!(b["code"], "0x1000007e"); // corpus README
    assert_eq!(b["name"], "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M");
    let params = b["params"].as_array().expect("params array");
    assert_eq!(params.len(), 4);
    assert!(params.iter().all(is_hex));
    // README: the crash is in amdppm.sys.
    assert!(
        b["params_symbolized"][1]
            .as_str()
            .is_some_and(|s| s.starts_with("amdppm.sys+0x")),
        "{b}"
    );
    // The 0x7E page of the bug check reference: parameter 2 is where the exception occurred.
    assert_eq!(b["name_source"], "reference");
    let p2 = &b["description"]["params"][1];
    assert_eq!(p2["meaning"], "The address where the exception occurred");
    assert_eq!(p2["kind"], "code");
    assert_eq!(p2["address"], true);
    assert_eq!(p2["module_offset"], b["params_symbolized"][1]);

    assert_eq!(r["kernel"]["base"], "0xfffff8047ba00000");
    assert!(is_hex(&r["kdbg"]["va"]));

    let modules = r["modules"].as_array().expect("modules[]");
    assert_eq!(modules.len(), 151); // corpus README
    for m in modules {
        assert!(m["name"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
        assert!(m["path"].is_string(), "{m}");
        assert!(is_hex(&m["base"]), "{m}");
        assert!(m["size"].as_u64().is_some_and(|s| s > 0), "{m}");
        assert!(
            hex_or_null(&m["timestamp"]) && hex_or_null(&m["checksum"]),
            "{m}"
        );
        let pdb = &m["pdb"];
        assert!(
            pdb.is_null()
                || (pdb["name"].is_string() && pdb["guid"].is_string() && pdb["age"].is_u64()),
            "{m}"
        );
    }
    let amd = modules
        .iter()
        .find(|m| m["name"] == "amdppm.sys")
        .expect("amdppm.sys listed");
    // Symbol-store key amdppm.sys/c9c030003b000 = TimeDateStamp + SizeOfImage.
    assert_eq!(amd["timestamp"], "0xc9c03000");
    assert_eq!(amd["size"], 0x3b000);
}

#[test]
fn triage_text_summary() {
    let out = inspect(Path::new(TRIAGE), false);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for want in [
        "triage (DumpType 4), x64, Windows build 19041",
        "16 processors",
        "0x1000007e SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M",
        "amdppm.sys+0x",
        "Modules       151 from triage-driver-list",
        "19041.1.amd64fre.vb_release.191206-1406",
    ] {
        assert!(text.contains(want), "text summary lacks {want:?}:\n{text}");
    }
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(TRIAGE).unwrap();

    let empty = dir.path().join("empty.dmp");
    std::fs::write(&empty, b"").unwrap();
    assert_bad_input(&empty, "empty");

    // Cut inside the header, inside the triage header and inside the driver list.
    for cut in [0x100usize, 0x2000 + 0x40, 0x10828 + 0x90 * 10] {
        let p = dir.path().join(format!("truncated-{cut:x}.dmp"));
        std::fs::write(&p, &real[..cut]).unwrap();
        assert_bad_input(&p, "truncated");
    }

    let mdmp = dir.path().join("user.dmp");
    let mut user = b"MDMP\x93\xa7\0\0".to_vec();
    user.resize(0x3000, 0);
    std::fs::write(&mdmp, &user).unwrap();
    assert_bad_input(&mdmp, "not a kernel dump");

    let random = dir.path().join("random.dmp");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..0x4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, &noise).unwrap();
    assert_bad_input(&random, "");

    assert_bad_input(&dir.path().join("missing.dmp"), "cannot read");
    assert_bad_input(dir.path(), "is a directory");
}

/// Forged dumps: the report shows what the forge planted (its truth file), on x64 and XP PAE.
#[test]
fn forged_dumps_match_their_truth() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, format) in [
        ("win10-19041-x64", "kernel-bitmap"),
        ("win7-7601-x64", "full"),
        ("win10-17763-x64", "full-bitmap"),
        ("server2022-20348-x64", "kernel-bitmap"),
        ("xp-2600-x86pae", "full"),
    ] {
        let f = forge(dir.path(), profile, format, None);
        let t = &f.truth;
        let r = inspect_json(&f.dump);
        let ctx = format!("{profile}/{format}");
        let d = &r["dump"];
        assert_eq!(d["format"], *field(t, "format"), "{ctx}");
        assert_eq!(d["arch"], *field(t, "arch"), "{ctx}");
        assert_eq!(d["pae"], *field(t, "pae"), "{ctx}");
        assert_eq!(d["build"], *field(t, "build"), "{ctx}");
        assert_eq!(d["dump_type"], *field(t, "dump_type"), "{ctx}");
        assert_eq!(d["processors"], *field(t, "processors"), "{ctx}");
        assert_eq!(hx(&d["system_time"]), hx(field(t, "system_time")), "{ctx}");
        assert_eq!(
            d["stored_pages"],
            *field(t, "physical_pages_stored"),
            "{ctx}"
        );

        assert_eq!(
            hx(&r["bugcheck"]["code"]),
            hx(&t["bugcheck"]["code"]),
            "{ctx}"
        );
        let params: Vec<u64> = array(&t["bugcheck"], "params").iter().map(hx).collect();
        let got: Vec<u64> = r["bugcheck"]["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(hx)
            .collect();
        assert_eq!(got, params, "{ctx}");

        assert_eq!(r["kdbg"]["found"], true, "{ctx}: {}", r["kdbg"]);
        assert_eq!(hx(&r["kdbg"]["va"]), hx(field(t, "kdbg")), "{ctx}");
        assert_eq!(
            hx(&r["kdbg"]["fields"]["PsLoadedModuleList"]),
            hx(field(t, "ps_loaded_module_list")),
            "{ctx}"
        );
        assert_eq!(
            hx(&r["kdbg"]["fields"]["PsActiveProcessHead"]),
            hx(field(t, "ps_active_process_head")),
            "{ctx}"
        );

        let tk = field(t, "kernel");
        assert_eq!(hx(&r["kernel"]["base"]), hx(field(tk, "base")), "{ctx}");
        assert_eq!(r["kernel"]["size"], *field(tk, "size"), "{ctx}");
        assert_eq!(r["kernel"]["pdb"], *field(tk, "pdb"), "{ctx}");

        assert_eq!(r["module_list"]["source"], "PsLoadedModuleList", "{ctx}");
        assert_eq!(r["module_list"]["complete"], true, "{ctx}");
        let want = array(t, "modules");
        let got = r["modules"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{ctx}: module count");
        for (g, w) in got.iter().zip(want) {
            for key in ["name", "path", "size", "pdb"] {
                assert_eq!(g[key], w[key], "{ctx}: module {} {key}", w["name"]);
            }
            for key in ["base", "timestamp", "checksum"] {
                assert_eq!(
                    hx(&g[key]),
                    hx(&w[key]),
                    "{ctx}: module {} {key}",
                    w["name"]
                );
            }
        }
        assert_eq!(
            r["warnings"].as_array().map(Vec::len),
            Some(0),
            "{ctx}: {}",
            r["warnings"]
        );
    }
}

/// An arm64 dump: header and bugcheck are reported, with a clear message that memory
/// translation is not supported; exit code 0. The file is built here from the header layout
/// of ../shared/docs/windows-internals.md (the 64-bit header, MachineImageType 0xAA64) with a
/// one-run table holding one page.
#[test]
fn arm64_header_and_bugcheck_without_translation() {
    let mut h = b"PAGE".repeat(0x2000 / 4);
    let put = |h: &mut Vec<u8>, off: usize, b: &[u8]| h[off..off + b.len()].copy_from_slice(b);
    put(&mut h, 0, b"PAGEDU64");
    put(&mut h, 0x08, &15u32.to_le_bytes());
    put(&mut h, 0x0C, &22621u32.to_le_bytes());
    put(&mut h, 0x10, &0x1000u64.to_le_bytes());
    put(&mut h, 0x30, &0xAA64u32.to_le_bytes());
    put(&mut h, 0x34, &8u32.to_le_bytes());
    put(&mut h, 0x38, &0xC2u32.to_le_bytes());
    for (i, p) in [7u64, 0x1234, 0, 0xffff8000_00001000].iter().enumerate() {
        put(&mut h, 0x40 + 8 * i, &p.to_le_bytes());
    }
    put(&mut h, 0x80, &0xffff8000_00002000u64.to_le_bytes());
    // Run table: 1 run, 1 page, {BasePage 0, PageCount 1}.
    put(&mut h, 0x88, &[1, 0, 0, 0, 0, 0, 0, 0]);
    put(&mut h, 0x90, &1u64.to_le_bytes());
    put(&mut h, 0x98, &0u64.to_le_bytes());
    put(&mut h, 0xA0, &1u64.to_le_bytes());
    put(&mut h, 0xF98, &1u32.to_le_bytes());
    put(&mut h, 0xFA0, &0x3000u64.to_le_bytes());
    put(&mut h, 0xFA8, &0x01d9_0000_0000_0000u64.to_le_bytes());
    h.resize(0x3000, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arm64.dmp");
    std::fs::write(&path, &h).unwrap();

    let r = inspect_json(&path);
    assert_eq!(r["dump"]["arch"], "arm64");
    assert_eq!(r["dump"]["build"], 22621);
    assert_eq!(r["dump"]["processors"], 8);
    assert_eq!(r["dump"]["virtual_memory"], false);
    assert!(
        r["dump"]["virtual_memory_error"]
            .as_str()
            .is_some_and(|e| e.contains("arm64")),
        "{}",
        r["dump"]
    );
    assert_eq!(r["bugcheck"]["code"], "0xc2");
    assert_eq!(r["bugcheck"]["name"], "BAD_POOL_CALLER");
    assert_eq!(r["bugcheck"]["pool_or_memory"], true);
    assert_eq!(r["bugcheck"]["params"][3], "0xffff800000001000");
    // BAD_POOL_CALLER with Parameter 1 = 7: the reference's row for freeing a freed block.
    let d = &r["bugcheck"]["description"];
    assert_eq!(d["selected_by"], 1);
    assert_eq!(d["case_documented"], true);
    assert!(
        d["cause"]
            .as_str()
            .is_some_and(|c| c.contains("already freed")),
        "{d}"
    );
    assert_eq!(d["params"][2]["meaning"], "Pool header contents");
    assert_eq!(
        d["params"][3]["meaning"],
        "Address of the block of pool being freed"
    );
    assert_eq!(d["params"][3]["kind"], "pool_block");
    assert_eq!(r["kdbg"]["found"], false);
    assert_eq!(r["module_list"]["source"], "none");
    // The crash member states that the stack was not walked, and why: the header's context
    // record is "PAGE" fill and no parameter's record can be read without translation.
    let c = &r["crash"];
    assert_eq!(c["context_source"], "none", "{c}");
    assert_eq!(c["stack"]["frames"], serde_json::json!([]), "{c}");
    assert_eq!(c["stack"]["stopped"]["reason"], "no_context", "{c}");
    assert!(
        c["stack"]["stopped"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not an ARM64 CONTEXT") && d.contains("translated")),
        "{c}"
    );

    let out = inspect(&path, false);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("arm64") && text.contains("not readable") && text.contains("BAD_POOL_CALLER"),
        "{text}"
    );
    assert!(text.contains("not an ARM64 CONTEXT"), "{text}");
}

/// A Windows 8+ style encoded debugger data block: the forged block is encoded in place in a
/// copy of the dump (the formula of ../shared/docs/windows-internals.md, through
/// `kdbg::encode_qword`, whose inverse is unit-tested against a hand-built block). Without
/// keys `inspect` says "encoded, no keys" and still lists the modules from the header's
/// PsLoadedModuleList; with the keys the library decodes the block to the forge's values.
#[test]
fn encoded_kdbg_is_reported_and_decodes_with_keys() {
    use analyzer::dump::Dump;
    use analyzer::kernel::kdbg::{encode_qword, KdbgKeys};
    use analyzer::kernel::{read_kernel, read_kernel_with_keys};

    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), "win10-17763-x64", "kernel-bitmap", None);
    let kdbg_va = hx(field(&f.truth, "kdbg"));
    let mut bytes = std::fs::read(&f.dump).unwrap();
    let keys = KdbgKeys {
        ki_wait_never: 0x3c1f_9a27_d04e_61b5,
        ki_wait_always: 0x8e2d_7710_5ab3_c94f,
        kdp_data_block_encoded: kdbg_va + 0x1_0000,
    };
    {
        let dump = Dump::open(&f.dump).unwrap();
        let size =
            u32::from_le_bytes(bytes_at(&dump, kdbg_va + 0x14, 4).try_into().unwrap()) as u64;
        assert!(size >= 0x300, "forged block size {size:#x}");
        for q in (0..size.div_ceil(8) * 8).step_by(8) {
            let off = file_offset(&dump, kdbg_va + q);
            let v = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
            bytes[off..off + 8].copy_from_slice(&encode_qword(v, &keys).to_le_bytes());
        }
    }
    let encoded = dir.path().join("encoded.dmp");
    std::fs::write(&encoded, &bytes).unwrap();

    let r = inspect_json(&encoded);
    assert_eq!(r["kdbg"]["found"], false);
    assert!(
        r["kdbg"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("encoded, no keys")),
        "{}",
        r["kdbg"]
    );
    assert_eq!(r["module_list"]["source"], "PsLoadedModuleList");
    assert_eq!(
        hx(&r["module_list"]["list_head"]),
        hx(field(&f.truth, "ps_loaded_module_list"))
    );
    assert_eq!(
        r["modules"].as_array().map(Vec::len),
        Some(array(&f.truth, "modules").len())
    );

    let dump = Dump::open(&encoded).unwrap();
    assert!(read_kernel(&dump).kdbg.is_none());
    let k = read_kernel_with_keys(&dump, Some(&keys));
    let kdbg = k.kdbg.expect("decoded with the keys");
    assert!(kdbg.was_encoded);
    assert_eq!(kdbg.kern_base(), Some(hx(&f.truth["kernel"]["base"])));
    assert_eq!(
        kdbg.ps_active_process_head(),
        Some(hx(field(&f.truth, "ps_active_process_head")))
    );
}

fn bytes_at(dump: &analyzer::dump::Dump, va: u64, len: usize) -> Vec<u8> {
    dump.kernel_memory().unwrap().read_vec(va, len).unwrap()
}

/// File offset of the byte at kernel virtual address `va` of an x64 dump.
fn file_offset(dump: &analyzer::dump::Dump, va: u64) -> usize {
    use analyzer::memory::{PageTableMemory, PagingMode};
    let pt = PageTableMemory::new(
        dump.physical(),
        dump.header().directory_table_base,
        PagingMode::X64,
    );
    let pa = pt.translate(va).unwrap();
    (dump.page_file_offset(pa >> 12).unwrap() + (pa & 0xfff)) as usize
}

/// A module list whose third entry links back to the second: the walk stops with a warning
/// naming the loop, the report still lists the three modules, exit code 0.
#[test]
fn module_list_loop_is_reported() {
    use analyzer::dump::Dump;
    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), "server2022-20348-x64", "full", None);
    let head = hx(field(&f.truth, "ps_loaded_module_list"));
    let mut bytes = std::fs::read(&f.dump).unwrap();
    {
        let dump = Dump::open(&f.dump).unwrap();
        let flink = |va: u64| u64::from_le_bytes(bytes_at(&dump, va, 8).try_into().unwrap());
        let first = flink(head);
        let second = flink(first);
        let third = flink(second);
        let off = file_offset(&dump, third);
        bytes[off..off + 8].copy_from_slice(&second.to_le_bytes());
    }
    let looped = dir.path().join("loop.dmp");
    std::fs::write(&looped, &bytes).unwrap();
    let out = inspect(&looped, true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["module_list"]["complete"], false);
    assert_eq!(r["module_list"]["count"], 3);
    let want: Vec<&Value> = array(&f.truth, "modules")
        .iter()
        .take(3)
        .map(|m| &m["name"])
        .collect();
    let got: Vec<&Value> = r["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(got, want);
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("loop"))),
        "{}",
        r["warnings"]
    );
}

/// The same encoded block, now with its keys where Windows keeps them: nt!KiWaitNever and
/// nt!KiWaitAlways hold the two secrets and the block is encoded with the address of
/// nt!KdpDataBlockEncoded, at the RVAs of the kernel's ISF (the corpus file, not our code).
/// Given that ISF, `inspect` finds the profile by the kernel's CodeView GUID, reads the keys
/// and decodes the block itself.
#[test]
fn encoded_kdbg_is_decoded_with_keys_from_the_kernel_isf() {
    use analyzer::dump::Dump;
    use analyzer::kernel::kdbg::{encode_qword, KdbgKeys};
    use analyzer::symbols::Profile;

    let isf_dir = harness::corpus().join("isf");
    let profile =
        Profile::from_isf(isf_dir.join("ntkrnlmp.pdb/8B11040A5928757B11390AC78F6B6925-1.json.xz"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = forge(dir.path(), "win10-17763-x64", "kernel-bitmap", None);
    let base = hx(&f.truth["kernel"]["base"]);
    let kdbg_va = hx(field(&f.truth, "kdbg"));
    let va_of = |name: &str| {
        base + profile
            .global(name)
            .unwrap_or_else(|| panic!("{name} in the 17763 ISF"))
    };
    let keys = KdbgKeys {
        ki_wait_never: 0x5a17_c3e9_0b2d_8f61,
        ki_wait_always: 0x9e04_b7d2_6c13_a5f8,
        kdp_data_block_encoded: va_of("KdpDataBlockEncoded"),
    };
    let mut bytes = std::fs::read(&f.dump).unwrap();
    {
        let dump = Dump::open(&f.dump).unwrap();
        let size =
            u32::from_le_bytes(bytes_at(&dump, kdbg_va + 0x14, 4).try_into().unwrap()) as u64;
        for q in (0..size.div_ceil(8) * 8).step_by(8) {
            let off = file_offset(&dump, kdbg_va + q);
            let v = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
            bytes[off..off + 8].copy_from_slice(&encode_qword(v, &keys).to_le_bytes());
        }
        for (name, value) in [
            ("KiWaitNever", keys.ki_wait_never),
            ("KiWaitAlways", keys.ki_wait_always),
        ] {
            let off = file_offset(&dump, va_of(name));
            bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
        }
    }
    let encoded = dir.path().join("encoded.dmp");
    std::fs::write(&encoded, &bytes).unwrap();

    let out = Command::new(pooltriage_bin())
        .args(["inspect", "--no-symbols", "--json", "--isf-dir"])
        .arg(&isf_dir)
        .arg(&encoded)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["kdbg"]["found"], true, "{}", r["kdbg"]);
    assert_eq!(hx(&r["kernel"]["base"]), base);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("decoded with keys from"), "{warnings}");
}
