//! The crash's stack end to end on the real corpus triage dump, and the unwind-information
//! reader checked against an independent one.
//!
//! What the triage dump lets us unwind: the dump (Windows 10 19041 x64, bug check 0x1000007E)
//! holds the crashing thread's stack (TopOfStack .. +SizeOfCallStack) and the exception's
//! CONTEXT record that parameter 4 points to, but no page of any module image. amdppm.sys's
//! image comes from the corpus symbol store (TimeDateStamp + SizeOfImage key), so frame 0
//! (amdppm!WriteIoMemRawEx+0x70) is unwound with amdppm's .pdata/.xdata, and the walk continues
//! through amdppm's frames (WriteGenAddrEx, WriteGenAddrMaybeHiddenEx, InitAcpiCpc,
//! ProcLibDeviceStart, EvtDevicePrepareHardware: six amdppm frames) to the return address into
//! Wdf01000.sys, the framework that called the driver's PrepareHardware callback. There it
//! ends: the corpus store holds no Wdf01000.sys and the dump none of its pages, so its unwind
//! information cannot be read (`page_missing`).
//!
//! Independent checks: every return address the walk produced inside amdppm.sys follows a
//! `call` instruction as GNU objdump disassembles the image; and every RUNTIME_FUNCTION and
//! unwind code our reader parses from amdppm.sys and usbnet.sys equals what
//! `x86_64-w64-mingw32-objdump -p` prints for them.
//!
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;

use analyzer::kernel::pe::PeFile;
use analyzer::memory::VirtualMemory;
use analyzer::stack::image::BytesImage;
use analyzer::stack::pdata::FunctionTable;
use analyzer::stack::unwind_x64::{UnwindInfo, UnwindOp};
use harness::{corpus, hx, pooltriage_bin, OBJDUMP};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn amdppm_image() -> PathBuf {
    let dir = corpus().join("symstore/amdppm.sys");
    let key = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    key.join("amdppm.sys")
}

fn analyze_triage() -> Value {
    let dump = corpus().join("dumps/triage_x64.dmp");
    let store = corpus().join("symstore");
    let out = Command::new(pooltriage_bin())
        .arg("analyze")
        .arg(&dump)
        .arg("--json")
        .arg("--symbol-path")
        .arg(&store)
        .env_remove("_NT_SYMBOL_PATH")
        .output()
        .expect("pooltriage runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The instruction of `image` (mapped at its preferred base) that ends at `va`, as objdump
/// disassembles the function from `begin`.
fn instruction_ending_at(image: &Path, begin: u64, va: u64) -> String {
    let out = Command::new(OBJDUMP)
        .args(["-d", "-M", "intel"])
        .arg(format!("--start-address={begin:#x}"))
        .arg(format!("--stop-address={va:#x}"))
        .arg(image)
        .output()
        .expect("objdump runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rfind(|l| l.contains(":\t"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn triage_dump_stack_bucket_and_followup() {
    let r = analyze_triage();
    let c = &r["crash"];
    assert!(c.is_object(), "crash member: {}", r["crash"]);
    // Parameter 4 of 0x1000007E is the exception's CONTEXT record; the dump holds it.
    assert_eq!(c["context_source"], "exception_record");
    assert_eq!(hx(&c["context_address"]), hx(&r["bugcheck"]["params"][3]));
    let frames = c["stack"]["frames"].as_array().unwrap();
    assert!(frames.len() >= 2, "{frames:?}");
    let top = &frames[0];
    // The faulting instruction, named from amdppm.pdb (bug check parameter 2).
    assert_eq!(hx(&top["instruction"]), hx(&r["bugcheck"]["params"][1]));
    assert_eq!(top["module"], "amdppm.sys");
    assert_eq!(top["offset"], "0x334c");
    assert_eq!(top["function"], "WriteIoMemRawEx");
    assert_eq!(top["displacement"], "0x70");
    assert_eq!(top["unwound_by"], "context");
    assert_eq!(c["followup_module"], "amdppm.sys");
    assert_eq!(c["bucket"], "0x7E_amdppm!WriteIoMemRawEx");
    assert_eq!(c["pool_block"], Value::Null, "0x7E is no pool bug check");
    assert!(c["stack"]["images_from_symbol_path"]
        .as_array()
        .unwrap()
        .contains(&Value::from("amdppm.sys")));
    // Every frame's stack pointer grows; frames after 0 come from amdppm's unwind data.
    for w in frames.windows(2) {
        assert!(hx(&w[1]["stack_pointer"]) > hx(&w[0]["stack_pointer"]));
        assert!(w[1]["unwound_by"] == "pdata" || w[1]["unwound_by"] == "leaf");
    }
    // Each return address into amdppm follows a call (objdump's disassembly of the image at its
    // preferred base 0x1c0000000).
    let image = amdppm_image();
    let base = hx(&frames[0]["instruction"]) - 0x334c;
    let bytes = std::fs::read(&image).unwrap();
    let pe = PeFile::new(&bytes).unwrap();
    let mut mapped = vec![0u8; pe.info().unwrap().size_of_image as usize];
    pe.read(pe.base(), &mut mapped).unwrap();
    let table = FunctionTable::read(&mut BytesImage(&mapped))
        .unwrap()
        .unwrap();
    let mut checked = 0;
    for f in frames
        .iter()
        .skip(1)
        .filter(|f| f["module"] == "amdppm.sys")
    {
        let rva = (hx(&f["instruction"]) - base) as u32;
        let func = table
            .lookup(&mut BytesImage(&mapped), rva - 1)
            .unwrap()
            .expect("a return address inside a function with unwind data");
        let call = instruction_ending_at(
            &image,
            pe.base() + u64::from(func.begin),
            pe.base() + u64::from(rva),
        );
        assert!(call.contains("call"), "frame {}: {call}", f["index"]);
        assert!(f["function"].is_string(), "named from amdppm.pdb: {f}");
        checked += 1;
    }
    assert!(checked >= 1, "at least one caller frame in amdppm.sys");
    // The chain of callers, each named from amdppm.pdb.
    let functions: Vec<&str> = frames
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert_eq!(
        functions,
        [
            "WriteIoMemRawEx",
            "WriteGenAddrEx",
            "WriteGenAddrMaybeHiddenEx",
            "InitAcpiCpc",
            "ProcLibDeviceStart",
            "EvtDevicePrepareHardware"
        ]
    );
    // Where it stops: the first return address outside amdppm.sys is in Wdf01000.sys, whose
    // unwind information neither the dump nor the corpus store holds.
    let last = frames.last().unwrap();
    assert_eq!(frames.len(), 7);
    assert_eq!(last["module"], "Wdf01000.sys", "{last}");
    assert_eq!(
        last["function"],
        Value::Null,
        "no PDB for Wdf01000.sys in the corpus store"
    );
    assert_eq!(c["stack"]["stopped"]["reason"], "page_missing");
    assert!(c["stack"]["stopped"]["detail"]
        .as_str()
        .unwrap()
        .contains("Wdf01000.sys"));
}

#[test]
fn triage_dump_text_has_the_stack() {
    let dump = corpus().join("dumps/triage_x64.dmp");
    let out = Command::new(pooltriage_bin())
        .arg("analyze")
        .arg(&dump)
        .arg("--symbol-path")
        .arg(corpus().join("symstore"))
        .env_remove("_NT_SYMBOL_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Child-SP"), "{text}");
    assert!(text.contains("amdppm!WriteIoMemRawEx+0x70"), "{text}");
    assert!(
        text.contains("Bucket:   0x7E_amdppm!WriteIoMemRawEx"),
        "{text}"
    );
}

// ----- the .pdata / .xdata reader against objdump -p -----

/// One function as objdump prints it: RUNTIME_FUNCTION and its unwind information.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dumped {
    begin: u32,
    end: u32,
    unwind: u32,
    version: u8,
    codes: u8,
    prolog: u8,
    frame_offset: u8,
    frame_reg: String,
    ops: Vec<String>,
    chain: Option<(u32, u32)>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x").trim_end_matches('.'), 16).unwrap()
}

/// The function table and the unwind entries ("Dump of .rdata"/".xdata") of `objdump -p`.
fn objdump_unwind(image: &Path, image_base: u64) -> (Vec<(u32, u32, u32)>, Vec<Dumped>) {
    let out = Command::new(OBJDUMP).arg("-p").arg(image).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rva = |s: &str| (hex(s) - image_base) as u32;
    let mut table = Vec::new();
    let mut entries: Vec<Dumped> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let parts: Vec<&str> = t.split_whitespace().collect();
        if parts.len() == 4 && parts[0].ends_with(':') && parts[0].len() == 17 {
            table.push((rva(parts[1]), rva(parts[2]), rva(parts[3])));
        } else if let Some(rest) = t.split_once("(rva: ").map(|(_, r)| r) {
            let (u, range) = rest.split_once("): ").unwrap();
            let (b, e) = range.split_once(" - ").unwrap();
            entries.push(Dumped {
                unwind: hex(u) as u32,
                begin: rva(b),
                end: rva(e),
                ..Default::default()
            });
        } else if let Some(d) = entries.last_mut() {
            if let Some(v) = t.strip_prefix("Version: ") {
                d.version = v.split(',').next().unwrap().parse().unwrap();
            } else if let Some(v) = t.strip_prefix("Nbr codes: ") {
                let f: Vec<&str> = v.split(", ").collect();
                d.codes = f[0].parse().unwrap();
                d.prolog = hex(f[1].trim_start_matches("Prologue size: ")) as u8;
                d.frame_offset = hex(f[2].trim_start_matches("Frame offset: ")) as u8;
                d.frame_reg = f[3].trim_start_matches("Frame reg: ").to_string();
            } else if let Some(op) = t.strip_prefix("pc+") {
                let (off, what) = op.split_once(": ").unwrap();
                d.ops.push(format!(
                    "{:#x} {}",
                    hex(off),
                    what.replace("small ", "").replace("large ", "")
                ));
            } else if let Some(c) = t.strip_prefix("Chain: start: ") {
                let (s, e) = c.split_once(", end: ").unwrap();
                d.chain = Some((hex(s) as u32, hex(e) as u32));
            }
        }
    }
    (table, entries)
}

const REGS: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Our reading of the same function, in objdump's words.
fn ours(mapped: &[u8], begin: u32, end: u32, unwind: u32) -> Dumped {
    let info = UnwindInfo::read(&mut BytesImage(mapped), unwind).expect("unwind info reads");
    let ops = info
        .codes(unwind)
        .unwrap()
        .iter()
        .filter_map(|c| {
            let what = match c.op {
                UnwindOp::PushNonvol { reg } => format!("push {}", REGS[usize::from(reg)]),
                UnwindOp::Alloc { size } => format!("alloc area: rsp = rsp - {size:#x}"),
                UnwindOp::SaveNonvol { reg, offset } => {
                    format!("save {} at rsp + {offset:#x}", REGS[usize::from(reg)])
                }
                UnwindOp::Epilog => return None,
                other => format!("{other:?}"),
            };
            Some(format!("{:#x} {what}", c.code_offset))
        })
        .collect();
    Dumped {
        begin,
        end,
        unwind,
        version: info.version,
        codes: info.slots.len() as u8,
        prolog: info.prolog_size,
        frame_offset: info.frame_offset,
        frame_reg: if info.frame_register == 0 {
            "none".into()
        } else {
            REGS[usize::from(info.frame_register)].into()
        },
        ops,
        chain: info.chained.map(|c| (c.begin, c.end)),
    }
}

fn compare_with_objdump(image: &Path) -> usize {
    let bytes = std::fs::read(image).unwrap();
    let pe = PeFile::new(&bytes).unwrap();
    let mut mapped = vec![0u8; pe.info().unwrap().size_of_image as usize];
    pe.read(pe.base(), &mut mapped).unwrap();
    let (table, entries) = objdump_unwind(image, pe.base());
    let t = FunctionTable::read(&mut BytesImage(&mapped))
        .unwrap()
        .unwrap();
    assert_eq!(t.count as usize, table.len(), "{}", image.display());
    for (i, &(b, e, u)) in table.iter().enumerate() {
        let f = t.entry(&mut BytesImage(&mapped), i as u32).unwrap();
        assert_eq!((f.begin, f.end, f.unwind), (b, e, u), "entry {i}");
        // The binary search finds each function from its first and last byte.
        for rva in [b, e - 1] {
            let hit = t.lookup(&mut BytesImage(&mapped), rva).unwrap().unwrap();
            assert_eq!(hit.begin, b);
        }
    }
    // objdump prints a function's unwind information unless the function before it in the
    // table shares the same UNWIND_INFO (it prints shared information once).
    let printed: std::collections::HashSet<u32> = entries.iter().map(|d| d.begin).collect();
    for (i, &(b, _, u)) in table.iter().enumerate() {
        let shared_with_previous = i > 0 && table[i - 1].2 == u;
        assert!(
            printed.contains(&b) || shared_with_previous,
            "entry {i} at {b:#x}"
        );
    }
    for d in &entries {
        assert_eq!(
            &ours(&mapped, d.begin, d.end, d.unwind),
            d,
            "{}",
            image.display()
        );
    }
    entries.len()
}

#[test]
fn pdata_and_unwind_codes_match_objdump() {
    let n = compare_with_objdump(&amdppm_image());
    let m = compare_with_objdump(&corpus().join("drivers/usbnet.sys"));
    // Unwind entries objdump prints: amdppm.sys 482 (of 519 functions), usbnet.sys 108.
    assert_eq!((n, m), (482, 108));
}
