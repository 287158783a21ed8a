//! x86 stack walking through code without frame pointers, held against tools nobody here wrote.
//!
//! - A small x86 driver compiled here (`tests/drivers/fpo_x86.c`, clang-14 `-O2` for i686 and
//!   lld-14, as docs/test-drivers.md builds them): its functions keep no EBP chain, and LLVM
//!   describes their frames with FRAMEDATA records. The records pooltriage reads from its PDB
//!   equal those `llvm-pdbutil-14 dump -fpo` prints.
//! - A stack laid out from GNU objdump's disassembly of the real functions (each `push`,
//!   `sub esp` and the return address of each call, from the function starts llvm-pdbutil
//!   gives), walked with those records, gives exactly the frames it was built from and ends at
//!   the return address of 0 planted above DriverEntry.
//! - The XP SP3 kernel's public PDB (Microsoft's toolchain): its FPO_DATA and FRAMEDATA records
//!   as pooltriage reads them equal llvm-pdbutil's.
//!
//! The driver is built at test time into a temporary directory, as tests/alloc_sites_real.rs
//! builds its drivers; a missing tool fails the test (scripts/test.sh installs them).

#[path = "independent/harness.rs"]
mod harness;

use analyzer::dump::Arch;
use analyzer::kernel::pe::SliceMemory;
use analyzer::kernel::Module;
use analyzer::stack::image::ImageFetch;
use analyzer::stack::{walk, ContextSource, Registers, StartContext, StopReason, UnwoundBy};
use analyzer::symbols::frame_data::{FrameRule, FrameTable};
use harness::{corpus, repo_root, run};
use std::path::{Path, PathBuf};
use std::process::Command;

const OBJDUMP: &str = "i686-w64-mingw32-objdump";

struct Built {
    sys: PathBuf,
    pdb: PathBuf,
}

/// Builds `tests/drivers/fpo_x86.c` as an x86 driver with its PDB.
fn build(dir: &Path) -> Built {
    let source = repo_root().join("tests/drivers/fpo_x86.c");
    let obj = dir.join("fpo_x86.obj");
    run(
        Command::new("clang-14")
            .args([
                "--target=i686-pc-windows-msvc",
                "-g",
                "-gcodeview",
                "-O2",
                "-c",
            ])
            .arg(&source)
            .arg("-o")
            .arg(&obj),
        "clang-14",
    );
    let sys = dir.join("fpo_x86.sys");
    let pdb = dir.join("fpo_x86.pdb");
    run(
        Command::new("lld-link-14")
            .args([
                "/nologo",
                "/driver",
                "/subsystem:native",
                "/entry:DriverEntry",
            ])
            .arg("/debug")
            .arg(format!("/pdb:{}", pdb.display()))
            .arg(format!("/out:{}", sys.display()))
            .arg(&obj)
            .arg("/nodefaultlib"),
        "lld-link-14",
    );
    Built { sys, pdb }
}

/// One record as llvm-pdbutil prints it: (rva, code size, locals bytes, params bytes, saved
/// register bytes, program or frame type).
type Row = (u32, u32, u32, u32, u32, String);

/// `llvm-pdbutil-14 dump -fpo`: the FPO_DATA rows (sizes in dwords and registers, converted to
/// bytes) and the FRAMEDATA rows.
fn pdbutil_fpo(pdb: &Path) -> (Vec<Row>, Vec<Row>) {
    let out = run(
        Command::new("llvm-pdbutil-14")
            .args(["dump", "-fpo"])
            .arg(pdb),
        "llvm-pdbutil-14 dump -fpo",
    );
    let text = String::from_utf8_lossy(&out);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let mut in_new = false;
    for line in text.lines() {
        if line.contains("New FPO Data") {
            in_new = true;
        } else if line.contains("Old FPO Data") {
            in_new = false;
        }
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let Ok(rva) = u32::from_str_radix(f[0], 16) else {
            continue;
        };
        let n = |i: usize| -> u32 {
            f[i].parse()
                .unwrap_or_else(|_| panic!("field {i} of {line:?}"))
        };
        if in_new && f.len() >= 11 {
            new.push((rva, n(1), n(2), n(3), n(6), f[10..].join("|")));
        } else if !in_new && f.len() >= 9 {
            old.push((rva, n(1), 4 * n(2), 4 * n(3), 4 * n(5), f[8].to_string()));
        }
    }
    (old, new)
}

/// Our table as the same rows.
fn ours(t: &FrameTable) -> (Vec<Row>, Vec<Row>) {
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for r in t.records() {
        let row = |what: String| (r.rva, r.size, r.locals, r.params, r.saved_regs, what);
        match &r.rule {
            // llvm-pdbutil's column loses the trailing blank LLVM ends its programs with.
            FrameRule::Program(p) => new.push(row(p.trim_end().to_string())),
            FrameRule::BadProgram(why) => new.push(row(format!("unreadable: {why}"))),
            FrameRule::Fpo { .. } => old.push(row("FPO".into())),
            FrameRule::FramePointer => old.push(row("not FPO".into())),
        }
    }
    (old, new)
}

#[test]
fn driver_frame_records_match_llvm_pdbutil() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let table = FrameTable::from_pdb(&b.pdb).expect("our reader reads the PDB");
    let (old, mut new) = pdbutil_fpo(&b.pdb);
    assert!(old.is_empty(), "LLVM writes no FPO_DATA: {old:?}");
    assert!(new.len() >= 8, "llvm-pdbutil lists {} records", new.len());
    new.sort();
    let (our_old, mut our_new) = ours(&table);
    our_new.sort();
    assert!(our_old.is_empty());
    assert_eq!(our_new, new);
    assert!(
        new.iter().any(|r| r.5.contains(".raSearch") && r.4 > 0),
        "a record of a function without frame pointer that saved registers: {new:?}"
    );
}

/// A function of the driver: name as the PDB spells it, start, end (virtual addresses at the
/// image's preferred base).
#[derive(Debug, Clone)]
struct Function {
    name: String,
    start: u64,
    end: u64,
}

/// The PDB's functions (`llvm-pdbutil-14 dump -symbols`) placed at objdump's `.text` address.
fn functions(b: &Built) -> Vec<Function> {
    harness::pdb_functions(&b.sys, &b.pdb, OBJDUMP)
        .into_iter()
        .map(|(name, start, end)| Function { name, start, end })
        .collect()
}

fn function<'a>(all: &'a [Function], name: &str) -> &'a Function {
    all.iter()
        .find(|f| f.name.trim_start_matches('_').split('@').next() == Some(name))
        .unwrap_or_else(|| panic!("llvm-pdbutil lists no {name}: {all:?}"))
}

/// One instruction as objdump prints it: address and text (`push   esi`).
fn disassemble(sys: &Path, f: &Function) -> Vec<(u64, String)> {
    let out = run(
        Command::new(OBJDUMP)
            .args(["-d", "-M", "intel"])
            .arg(format!("--start-address={:#x}", f.start))
            .arg(format!("--stop-address={:#x}", f.end))
            .arg(sys),
        "objdump -d",
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let addr = u64::from_str_radix(f.first()?.trim().strip_suffix(':')?, 16).ok()?;
            let text = f.get(2)?.split_whitespace().collect::<Vec<_>>().join(" ");
            Some((addr, text))
        })
        .collect()
}

/// How far an instruction moves ESP down (negative: up), as objdump words it; panics on an
/// ESP change this reading does not model (so the facts are never guessed).
fn esp_change(text: &str) -> i64 {
    let imm = |s: &str| i64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    if text.starts_with("push ") {
        4
    } else if text.starts_with("pop ") {
        -4
    } else if let Some(n) = text.strip_prefix("sub esp,") {
        imm(n)
    } else if let Some(n) = text.strip_prefix("add esp,") {
        -imm(n)
    } else {
        let dest = text.split_whitespace().nth(1).unwrap_or("");
        assert!(!dest.starts_with("esp,"), "unmodelled ESP change: {text}");
        0
    }
}

/// The bytes `f` has pushed and allocated when it calls `callee` (its first call), and the
/// return address of that call.
fn call_facts(code: &[(u64, String)], callee: u64) -> (u64, u64) {
    let mut depth = 0i64;
    for (i, (_, text)) in code.iter().enumerate() {
        if text.starts_with("call ") {
            let target = u64::from_str_radix(
                text.split_whitespace()
                    .nth(1)
                    .unwrap()
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap_or(0);
            assert_eq!(
                target, callee,
                "the first call is to the next function: {text}"
            );
            return (depth as u64, code[i + 1].0);
        }
        depth += esp_change(text);
    }
    panic!("no call to {callee:#x}");
}

/// The first instruction of `f`'s body (past its pushes and `sub esp`) and the bytes its prolog
/// pushed and allocated.
fn body_facts(code: &[(u64, String)]) -> (u64, u64) {
    let mut depth = 0i64;
    for (addr, text) in code {
        let d = esp_change(text);
        if d <= 0 {
            return (*addr, depth as u64);
        }
        depth += d;
    }
    panic!("no body");
}

/// The frame records of one module, as the symbol path would give them.
struct Records(FrameTable);

impl ImageFetch for Records {
    fn fetch_image(&self, _: &Module) -> Option<Vec<u8>> {
        None
    }
    fn frame_data(&self, _: &Module) -> Option<FrameTable> {
        Some(self.0.clone())
    }
}

/// ImageBase and SizeOfImage as `objdump -p` prints them.
fn image_range(sys: &Path) -> (u64, u32) {
    let p = String::from_utf8(run(Command::new(OBJDUMP).arg("-p").arg(sys), "objdump -p")).unwrap();
    let field = |name: &str| {
        p.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("objdump -p prints no {name}"))
    };
    (field("ImageBase"), field("SizeOfImage") as u32)
}

#[test]
fn walk_through_fpo_functions_of_a_real_driver() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let all = functions(&b);
    let chain: Vec<&Function> = ["DriverEntry", "Outer", "Middle", "Leaf"]
        .iter()
        .map(|n| function(&all, n))
        .collect();
    let code: Vec<Vec<(u64, String)>> = chain.iter().map(|f| disassemble(&b.sys, f)).collect();

    // The stack, outermost first: DriverEntry's return address (0) at TOP, then each call's
    // pushes and return address where the caller's prolog and argument pushes leave them.
    const BASE: u64 = 0xf000_0000;
    const TOP: u64 = BASE + 0x8000;
    let mut stack = vec![0u8; 0x9000];
    let mut put = |va: u64, v: u64| {
        let o = (va - BASE) as usize;
        stack[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    let mut entry = TOP;
    let mut want = Vec::new();
    for i in 0..chain.len() - 1 {
        let (depth, ret) = call_facts(&code[i], chain[i + 1].start);
        let at_call = entry - depth;
        put(at_call - 4, ret);
        want.push((ret, at_call));
        entry = at_call - 4;
    }
    let (ip0, depth0) = body_facts(&code[chain.len() - 1]);
    assert!(depth0 > 0, "Leaf pushes or allocates: {:?}", code[3]);
    want.push((ip0, entry - depth0));
    want.reverse();
    eprintln!("frames from objdump's facts: {want:#x?}");

    let (base, size) = image_range(&b.sys);
    let module = Module {
        name: "fpo_x86.sys".into(),
        path: String::new(),
        base,
        size,
        timestamp: None,
        checksum: None,
        ldr_entry: None,
        pe: None,
        pe_error: None,
    };
    let mut regs = Registers {
        ip: ip0,
        ..Default::default()
    };
    regs.gpr[4] = entry - depth0;
    // EBP 0 would end an EBP walk at once: only the records carry the walk.
    regs.gpr[5] = 0;
    let start = StartContext {
        regs,
        source: ContextSource::DumpHeader,
        address: None,
    };
    let table = FrameTable::from_pdb(&b.pdb).unwrap();
    let mem = SliceMemory::new(BASE, &stack, 4);
    let w = walk(&start, Arch::X86, &[module], &mem, &Records(table));
    let got: Vec<(u64, u64)> = w.frames.iter().map(|f| (f.ip, f.sp)).collect();
    assert_eq!(got, want, "{:?}", w.stop);
    assert_eq!(w.stop.reason, StopReason::EndOfStack, "{}", w.stop.detail);
    let by: Vec<UnwoundBy> = w.frames.iter().map(|f| f.unwound_by).collect();
    assert_eq!(
        by,
        [
            UnwoundBy::Context,
            UnwoundBy::FpoData,
            UnwoundBy::FpoData,
            UnwoundBy::FpoData
        ]
    );
}

/// Microsoft's own records: the XP SP3 kernel's PDB.
#[test]
fn xp_kernel_frame_records_match_llvm_pdbutil() {
    let pdb = corpus().join("pdb/ntkrnlpa.pdb");
    let table = FrameTable::from_pdb(&pdb).expect("our reader reads ntkrnlpa.pdb");
    let (old, new) = pdbutil_fpo(&pdb);
    let (our_old, our_new) = ours(&table);
    eprintln!(
        "ntkrnlpa.pdb: llvm-pdbutil {} FPO_DATA, {} FRAMEDATA; ours {} and {}",
        old.len(),
        new.len(),
        our_old.len(),
        our_new.len()
    );
    assert!(!old.is_empty() || !new.is_empty());
    // FRAMEDATA: every record, same sizes and program.
    let mut new = new;
    new.sort();
    let mut our_new = our_new;
    our_new.sort();
    assert_eq!(our_new, new);
    // FPO_DATA: those no FRAMEDATA record of the same start replaces.
    let shadowed = |rva: u32| new.iter().any(|n| n.0 == rva);
    let strip = |rows: &[Row]| -> Vec<(u32, u32, u32, u32, u32, bool)> {
        let mut v: Vec<_> = rows
            .iter()
            .filter(|r| !shadowed(r.0))
            .map(|r| (r.0, r.1, r.2, r.3, r.4, r.5 == "FPO"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(&our_old), strip(&old));
}
