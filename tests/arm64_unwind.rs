//! The ARM64 unwinder held against readers nobody here wrote, on a real ARM64 image.
//!
//! `tests/drivers/unwind_arm64.c` is compiled here (clang-14 for aarch64-pc-windows-msvc,
//! lld-link-14 /machine:arm64) into a driver whose functions carry packed and `.xdata` unwind
//! information: callee-saved integer and float registers, a frame over 4 KiB (__chkstk),
//! alloca (a frame pointer), varargs (homed parameters), a leaf without `.pdata`.
//!
//! - `llvm-readobj --unwind` decodes every RUNTIME_FUNCTION: pooltriage's reading of the
//!   table, the packed fields, the `.xdata` header, the epilog scopes and every unwind code
//!   must agree with it.
//! - `llvm-objdump -d` gives the real prolog and epilog instructions. A small interpreter of
//!   those instructions (stores, loads, sp and fp arithmetic) builds the stack each function
//!   leaves at every instruction of its prolog, in its body and at every instruction of each
//!   epilog; undoing the frame from there must give back the caller's pc, sp, fp, lr,
//!   x19..x28 and d8..d15.
//! - The call chain big_frame -> with_alloca -> many_regs -> regs_packed -> leaf, laid out
//!   the same way, must come back from the stack walk frame by frame.
//!
//! The image is built at test time into a temporary directory, once per test binary; a
//! missing tool fails the test and says to run scripts/test.sh.

#[path = "independent/harness.rs"]
mod harness;

use analyzer::dump::Arch;
use analyzer::kernel::pe::PeFile;
use analyzer::kernel::Module;
use analyzer::memory::{MemoryError, VirtualMemory};
use analyzer::stack::arm64::codes::{decode, Code};
use analyzer::stack::arm64::context::{Arm64Context, FP, LR};
use analyzer::stack::arm64::pdata::{FunctionTable, RuntimeFunction, UnwindKind};
use analyzer::stack::arm64::unwind::{unwind, Frame, Place};
use analyzer::stack::arm64::xdata::{Epilogs, Xdata};
use analyzer::stack::image::{BytesImage, NoFetch};
use analyzer::stack::{walk, ContextSource, StartContext, StopReason, UnwoundBy};
use harness::{pooltriage_bin, repo_root, run};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built image, its readers' outputs, read once per test binary.
struct Built {
    /// The image as the loader maps it.
    image: Vec<u8>,
    base: u64,
    size: u32,
    readobj: String,
    /// VA -> (mnemonic, operands).
    code: BTreeMap<u64, (String, String)>,
    /// Function name -> RVA.
    names: HashMap<String, u32>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let sys = build(dir.path());
        let bytes = std::fs::read(&sys).unwrap();
        let pe = PeFile::new(&bytes).expect("a PE image");
        let info = pe.info().unwrap();
        let mut image = vec![0u8; info.size_of_image as usize];
        pe.read(pe.base(), &mut image).unwrap();
        let readobj = String::from_utf8(run(
            Command::new("llvm-readobj-14").arg("--unwind").arg(&sys),
            "llvm-readobj-14",
        ))
        .unwrap();
        let objdump = String::from_utf8(run(
            Command::new("llvm-objdump-14").arg("-d").arg(&sys),
            "llvm-objdump-14",
        ))
        .unwrap();
        let symbols = String::from_utf8(run(
            Command::new("llvm-readobj-14")
                .arg("--coff-exports")
                .arg(&sys),
            "llvm-readobj-14",
        ))
        .unwrap();
        Built {
            image,
            base: pe.base(),
            size: info.size_of_image,
            readobj,
            code: disassembly(&objdump),
            names: exports(&symbols),
        }
    })
}

/// Compiles and links tests/drivers/unwind_arm64.c.
fn build(dir: &Path) -> PathBuf {
    let source = repo_root().join("tests/drivers/unwind_arm64.c");
    let obj = dir.join("unwind_arm64.obj");
    run(
        Command::new("clang-14")
            .args(["--target=aarch64-pc-windows-msvc", "-O2", "-c"])
            .arg(&source)
            .arg("-o")
            .arg(&obj),
        "clang-14",
    );
    let sys = dir.join("unwind_arm64.sys");
    run(
        Command::new("lld-link-14")
            .args([
                "/nologo",
                "/machine:arm64",
                "/driver",
                "/subsystem:native",
                "/entry:DriverEntry",
                "/nodefaultlib",
            ])
            .args(EXPORTS.iter().map(|n| format!("/export:{n}")))
            .arg(format!("/out:{}", sys.display()))
            .arg(&obj),
        "lld-link-14",
    );
    sys
}

/// The functions the test names (exported so that the readers name them too).
const EXPORTS: [&str; 9] = [
    "leaf",
    "regs_packed",
    "many_regs",
    "floats",
    "with_alloca",
    "big_frame",
    "varargs",
    "two_epilogs",
    "DriverEntry",
];

/// `llvm-objdump -d` lines `VA: b0 b1 b2 b3 <tab> mnemonic <tab> operands // comment`.
fn disassembly(text: &str) -> BTreeMap<u64, (String, String)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((addr, rest)) = line.trim_start().split_once(": ") else {
            continue;
        };
        let Ok(va) = u64::from_str_radix(addr.trim(), 16) else {
            continue;
        };
        let mut fields = rest.split('\t');
        let bytes = fields.next().unwrap_or_default().split_whitespace().count();
        let Some(mnemonic) = fields.next().filter(|_| bytes == 4) else {
            continue;
        };
        let ops = fields.next().unwrap_or_default();
        let ops = ops.split("//").next().unwrap_or_default().trim();
        out.insert(va, (mnemonic.trim().to_string(), ops.to_string()));
    }
    out
}

/// `llvm-readobj --coff-exports`: `Name: x` then `RVA: 0x...`.
fn exports(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Name: ") {
            name = Some(n.to_string());
        } else if let (Some(rva), Some(n)) = (line.strip_prefix("RVA: "), name.take()) {
            out.insert(n, hex(rva) as u32);
        }
    }
    out
}

fn hex(s: &str) -> u64 {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

/// A register operand.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reg {
    X(usize),
    D(usize),
    Q(usize),
    Sp,
    Zero,
}

fn reg(s: &str) -> Option<Reg> {
    let s = s.trim();
    Some(match s {
        "sp" => Reg::Sp,
        "fp" => Reg::X(29),
        "lr" => Reg::X(30),
        "xzr" => Reg::Zero,
        _ => {
            let n = s.get(1..)?.parse().ok()?;
            match &s[..1] {
                "x" if n <= 30 => Reg::X(n),
                "d" if n < 32 => Reg::D(n),
                "q" if n < 32 => Reg::Q(n),
                _ => return None,
            }
        }
    })
}

/// `#imm` (decimal or hex, optionally negative).
fn imm(s: &str) -> Option<i64> {
    let s = s.trim().strip_prefix('#')?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let v = match s.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None => s.parse().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// A machine that runs prolog and epilog instructions as `llvm-objdump` prints them.
#[derive(Clone)]
struct Sim {
    pc: u64,
    sp: u64,
    x: [u64; 31],
    d: [u64; 32],
    mem: BTreeMap<u64, u64>,
    /// Registers stored so far (what a body may then change).
    stored: Vec<Reg>,
    /// `mov x29, sp` or `add x29, sp, #n` ran: x29 is the frame pointer.
    fp_set: bool,
}

impl Sim {
    fn get(&self, r: Reg) -> u64 {
        match r {
            Reg::X(n) => self.x[n],
            Reg::D(n) | Reg::Q(n) => self.d[n],
            Reg::Sp => self.sp,
            Reg::Zero => 0,
        }
    }

    fn set(&mut self, r: Reg, v: u64) {
        match r {
            Reg::X(n) => self.x[n] = v,
            Reg::D(n) | Reg::Q(n) => self.d[n] = v,
            Reg::Sp => self.sp = v,
            Reg::Zero => {}
        }
    }

    fn width(r: Reg) -> u64 {
        if matches!(r, Reg::Q(_)) {
            16
        } else {
            8
        }
    }

    /// Runs one instruction at `self.pc`; `Err` for one it does not know.
    fn step(&mut self, mnemonic: &str, ops: &str) -> Result<(), String> {
        let next = self.pc + 4;
        match mnemonic {
            "stp" | "ldp" | "str" | "ldr" => self.memory(mnemonic, ops)?,
            "sub" | "add" => self.arith(mnemonic == "sub", ops)?,
            "mov" => {
                let (dst, src) = ops.split_once(',').ok_or(ops)?;
                let dst = reg(dst).ok_or(ops)?;
                let v = match reg(src) {
                    Some(r) => self.get(r),
                    None => imm(src).ok_or(ops)? as u64,
                };
                self.set(dst, v);
                self.fp_set |= dst == Reg::X(29);
            }
            "bl" => self.x[30] = next,
            "nop" | "ret" | "pacibsp" | "autibsp" | "hint" => {}
            _ => return Err(format!("{mnemonic} {ops}")),
        }
        self.pc = next;
        Ok(())
    }

    /// `sub|add Rd, Rn, #imm{, lsl #12}` and `sub|add Rd, Rn, Rm{, lsl #n}`.
    fn arith(&mut self, sub: bool, ops: &str) -> Result<(), String> {
        let parts: Vec<&str> = ops.split(',').map(str::trim).collect();
        let (d, n) = (reg(parts[0]).ok_or(ops)?, reg(parts[1]).ok_or(ops)?);
        let shift = match parts.get(3) {
            Some(s) => s.strip_prefix("lsl").and_then(imm_sp).ok_or(ops)?,
            None => 0,
        };
        let m = match reg(parts[2]) {
            Some(r) => self.get(r),
            None => imm(parts[2]).ok_or(ops)? as u64,
        } << shift;
        let v = self.get(n);
        self.set(
            d,
            if sub {
                v.wrapping_sub(m)
            } else {
                v.wrapping_add(m)
            },
        );
        self.fp_set |= d == Reg::X(29);
        Ok(())
    }

    /// Pairs and single registers, `[base{, #off}]{!}` or `[base], #post`.
    fn memory(&mut self, mnemonic: &str, ops: &str) -> Result<(), String> {
        let open = ops.find('[').ok_or(ops)?;
        let close = ops.find(']').ok_or(ops)?;
        let regs: Vec<Reg> = ops[..open]
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| reg(s).ok_or(ops.to_string()))
            .collect::<Result<_, _>>()?;
        let inner: Vec<&str> = ops[open + 1..close].split(',').collect();
        let base = reg(inner[0]).ok_or(ops)?;
        let off = inner.get(1).map_or(Some(0), |s| imm(s)).ok_or(ops)?;
        let tail = ops[close + 1..].trim();
        let pre = tail.starts_with('!');
        let post = tail.strip_prefix(',').and_then(imm);
        let b = self.get(base);
        let addr = if post.is_some() {
            b
        } else {
            b.wrapping_add(off as u64)
        };
        for (i, r) in regs.iter().enumerate() {
            let at = addr + i as u64 * Self::width(*r);
            if mnemonic.starts_with("st") {
                self.mem.insert(at, self.get(*r));
                self.stored.push(*r);
            } else {
                let v = self.mem.get(&at).copied().unwrap_or(0xDEAD);
                self.set(*r, v);
            }
        }
        if pre {
            self.set(base, addr);
        } else if let Some(p) = post {
            self.set(base, b.wrapping_add(p as u64));
        }
        Ok(())
    }

    /// The unwinder's view of the registers.
    fn context(&self) -> Arm64Context {
        Arm64Context {
            pc: self.pc,
            sp: self.sp,
            x: self.x,
            d: self.d,
        }
    }
}

fn imm_sp(s: &str) -> Option<u64> {
    imm(s.trim()).map(|v| v as u64)
}

/// One `{...}` or `[...]` block of llvm-readobj's output: its `Key: value` lines, its bare
/// lines (list items) and nested blocks.
#[derive(Debug, Default, Clone)]
struct Block {
    name: String,
    fields: Vec<(String, String)>,
    items: Vec<String>,
    children: Vec<Block>,
}

impl Block {
    fn parse(lines: &mut std::str::Lines<'_>, name: &str) -> Block {
        let mut b = Block {
            name: name.to_string(),
            ..Default::default()
        };
        while let Some(line) = lines.next() {
            let line = line.trim();
            if line == "}" || line == "]" {
                break;
            }
            if let Some(n) = line.strip_suffix('{').or_else(|| line.strip_suffix('[')) {
                b.children.push(Block::parse(lines, n.trim()));
            } else if let Some((k, v)) = line.split_once(": ").filter(|(k, _)| !k.contains(' ')) {
                b.fields.push((k.to_string(), v.trim().to_string()));
            } else if !line.is_empty() {
                b.items.push(line.to_string());
            }
        }
        b
    }

    fn field(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, n: &str) -> Option<&Block> {
        self.children.iter().find(|c| c.name == n)
    }

    /// Every block named `n` below this one.
    fn all<'a>(&'a self, n: &str, out: &mut Vec<&'a Block>) {
        for c in &self.children {
            if c.name == n {
                out.push(c);
            }
            c.all(n, out);
        }
    }
}

/// llvm-readobj's RuntimeFunction blocks.
fn runtime_functions(readobj: &str) -> Vec<Block> {
    let root = Block::parse(&mut readobj.lines(), "");
    let mut v = Vec::new();
    root.all("RuntimeFunction", &mut v);
    v.into_iter().cloned().collect()
}

/// The address in `Function: name (0x...)` or `Function: 0x...`.
fn function_va(b: &Block) -> u64 {
    let f = b.field("Function").expect("Function:");
    let inner = f
        .rsplit_once('(')
        .map_or(f, |(_, rest)| rest.trim_end_matches(')'));
    hex(inner)
}

/// A prologue line `0xc882 ; stp x21, x22, [sp, #16]`: (bytes, text).
fn opcode_line(line: &str) -> (Vec<u8>, String) {
    let (code, text) = line.split_once(';').expect("0x.. ; text");
    let h = code.trim().trim_start_matches("0x");
    let bytes = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect();
    (bytes, text.trim().to_string())
}

/// `code` as llvm-readobj prints it: the prologue's store or the epilogue's load.
fn llvm_text(code: Code, prologue: bool) -> String {
    let st = if prologue { "st" } else { "ld" };
    let pre = |op: &str, regs: String, off: u32| {
        if prologue {
            format!("{op} {regs}, [sp, #-{off}]!")
        } else {
            format!("{op} {regs}, [sp], #{off}")
        }
    };
    let at = |op: &str, regs: String, off: u32| format!("{op} {regs}, [sp, #{off}]");
    let (stp, str_) = (format!("{st}p"), format!("{st}r"));
    match code {
        Code::Alloc { size } => format!("{} sp, #{size}", if prologue { "sub" } else { "add" }),
        Code::SaveR19R20X { offset } => pre(&stp, "x19, x20".into(), offset),
        Code::SaveFplr { offset } => at(&stp, "x29, x30".into(), offset),
        Code::SaveFplrX { offset } => pre(&stp, "x29, x30".into(), offset),
        Code::SaveRegp {
            reg,
            offset,
            pre: p,
        } => {
            let regs = format!("x{reg}, x{}", reg + 1);
            if p {
                pre(&stp, regs, offset)
            } else {
                at(&stp, regs, offset)
            }
        }
        Code::SaveReg {
            reg,
            offset,
            pre: p,
        } => {
            if p {
                pre(&str_, format!("x{reg}"), offset)
            } else {
                at(&str_, format!("x{reg}"), offset)
            }
        }
        Code::SaveLrpair { reg, offset } => at(&stp, format!("x{reg}, x30"), offset),
        Code::SaveFregp {
            reg,
            offset,
            pre: p,
        } => {
            let regs = format!("d{reg}, d{}", reg + 1);
            if p {
                pre(&stp, regs, offset)
            } else {
                at(&stp, regs, offset)
            }
        }
        Code::SaveFreg {
            reg,
            offset,
            pre: p,
        } => {
            if p {
                pre(&str_, format!("d{reg}"), offset)
            } else {
                at(&str_, format!("d{reg}"), offset)
            }
        }
        Code::SetFp if prologue => "mov x29, sp".into(),
        Code::SetFp => "mov sp, x29".into(),
        Code::AddFp { offset } if prologue => format!("add x29, sp, #{offset}"),
        Code::AddFp { offset } => format!("sub sp, x29, #{offset}"),
        Code::Nop => "nop".into(),
        Code::End => "end".into(),
        Code::EndC => "end_c".into(),
        other => format!("{other:?}"),
    }
}

/// llvm-readobj's text with `fp`/`lr` spelled as x29/x30.
fn normalized(text: &str) -> String {
    text.replace("lr", "x30").replace("fp", "x29")
}

/// The instructions llvm-readobj lists for `rf`'s prolog (its unwind codes that stand for an
/// instruction), or `None` for a function without an entry.
fn prolog_len(rf: &Block) -> usize {
    let list = rf
        .child("ExceptionData")
        .and_then(|e| e.child("Prologue"))
        .or_else(|| rf.child("Prologue"))
        .expect("a Prologue list");
    list.items
        .iter()
        .filter(|l| {
            let text = l.split_once(';').map_or(l.as_str(), |(_, t)| t).trim();
            !matches!(text, "end" | "end_c") && !text.contains("frame") && !text.contains("context")
        })
        .count()
}

/// The stack's top; the caller's sp; its return address (outside the image); its fp.
const TOP: u64 = 0xffff_8000_0001_0000;
const CALLER_SP: u64 = TOP - 0x200;
const CALLER_RA: u64 = 0xffff_f800_7777_0000;
const CALLER_FP: u64 = 0xF0F0_F0F0;

/// The caller's registers: distinct values in x19..x28 and d8..d15.
fn caller() -> Sim {
    let mut s = Sim {
        pc: 0,
        sp: CALLER_SP,
        x: [0; 31],
        d: [0; 32],
        mem: BTreeMap::new(),
        stored: Vec::new(),
        fp_set: false,
    };
    for (r, x) in s.x.iter_mut().enumerate() {
        *x = 0x1000 + r as u64;
    }
    for (r, d) in s.d.iter_mut().enumerate() {
        *d = 0xD000 + r as u64;
    }
    s.x[FP] = CALLER_FP;
    s.x[LR] = CALLER_RA;
    s
}

/// The stack as the unwinder reads it: the interpreter's stores (and the image, for walks).
struct SimMemory<'a> {
    stack: &'a BTreeMap<u64, u64>,
    image: Option<(u64, &'a [u8])>,
}

impl VirtualMemory for SimMemory<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if let Some((base, bytes)) = self.image {
            let off = va.wrapping_sub(base) as usize;
            if let Some(src) = off.checked_add(buf.len()).and_then(|e| bytes.get(off..e)) {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        match self.stack.get(&va) {
            Some(v) if buf.len() == 8 => {
                buf.copy_from_slice(&v.to_le_bytes());
                Ok(())
            }
            _ => Err(MemoryError::NotCaptured { va }),
        }
    }
    fn pointer_size(&self) -> u8 {
        8
    }
}

/// Runs `n` instructions from `sim.pc`.
fn execute(b: &Built, sim: &mut Sim, n: usize) {
    for _ in 0..n {
        let (m, ops) = b
            .code
            .get(&sim.pc)
            .unwrap_or_else(|| panic!("no instruction at {:#x}", sim.pc));
        sim.step(m, ops)
            .unwrap_or_else(|e| panic!("at {:#x}: cannot run {e}", sim.pc));
    }
}

/// Undoes `sim`'s frame of `f` and checks that the caller's registers come back.
fn check_unwinds_to_caller(
    b: &Built,
    f: RuntimeFunction,
    sim: &Sim,
    return_address: bool,
    what: &str,
) -> Place {
    let mut ctx = sim.context();
    let mem = SimMemory {
        stack: &sim.mem,
        image: None,
    };
    let frame = Frame {
        image: &mut BytesImage(&b.image),
        base: b.base,
        function: f,
        return_address,
    };
    let done = unwind(frame, &mut ctx, &mem).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = caller();
    assert_eq!((ctx.pc, ctx.sp), (CALLER_RA, CALLER_SP), "{what}: pc, sp");
    assert_eq!(ctx.x[19..=30], want.x[19..=30], "{what}: x19..x28, fp, lr");
    assert_eq!(ctx.d[8..=15], want.d[8..=15], "{what}: d8..d15");
    done.place
}

/// Whether an instruction belongs to the run of epilog instructions before a `ret`: a reload
/// of a callee-saved register from the stack, an sp adjustment, sp from the frame pointer.
fn epilog_like(m: &str, ops: &str) -> bool {
    let callee_saved = |r: &str| match reg(r) {
        Some(Reg::X(n)) => n >= 19,
        Some(Reg::D(n)) => (8..=15).contains(&n),
        _ => false,
    };
    match m {
        "ldp" | "ldr" => {
            let regs = ops.split('[').next().unwrap_or_default();
            ops.contains("[sp")
                && regs
                    .split(',')
                    .filter(|r| !r.trim().is_empty())
                    .all(callee_saved)
        }
        "add" => ops.starts_with("sp, sp"),
        "mov" => ops.replace(' ', "") == "sp,x29",
        "sub" => ops.starts_with("sp, x29"),
        "autibsp" => true,
        _ => false,
    }
}

/// What a function body may do after its prolog: change the registers the prolog saved (but
/// not the frame pointer it set up); `with_alloca` also moves sp.
fn body_of(b: &Built, name: &str, begin: u64, prolog: usize) -> Sim {
    let mut s = caller();
    s.pc = begin;
    execute(b, &mut s, prolog);
    for r in s.stored.clone() {
        match r {
            Reg::X(n) if (19..=28).contains(&n) || n == 30 || (n == 29 && !s.fp_set) => {
                s.x[n] = 0xBAD0 + n as u64
            }
            Reg::D(n) | Reg::Q(n) if (8..=15).contains(&n) => s.d[n] = 0xBAD0 + n as u64,
            _ => {}
        }
    }
    if name == "with_alloca" {
        s.sp -= 0x40;
    }
    s
}

fn name_of(b: &Built, rva: u32) -> String {
    b.names
        .iter()
        .find(|(_, r)| **r == rva)
        .map_or_else(|| format!("{rva:#x}"), |(n, _)| n.clone())
}

/// Every function with an entry, from every instruction of its prolog, from a return address
/// in its body, and from every instruction of every epilog: the caller's registers come back.
#[test]
fn every_prolog_body_and_epilog_position_unwinds_to_the_caller() {
    let b = built();
    let mut img = BytesImage(&b.image);
    let table = FunctionTable::read(&mut img)
        .unwrap()
        .expect("an exception directory");
    let (mut prolog_positions, mut calls, mut epilog_positions) = (0, 0, 0);
    for (i, rf) in runtime_functions(&b.readobj).iter().enumerate() {
        let f = table.entry(&mut img, i as u32).unwrap();
        let name = name_of(b, f.begin);
        let begin = b.base + u64::from(f.begin);
        let end = begin + u64::from(f.length(&mut img).unwrap());
        let n = prolog_len(rf);
        for k in 0..=n {
            let mut sim = caller();
            sim.pc = begin;
            execute(b, &mut sim, k);
            let place = check_unwinds_to_caller(b, f, &sim, false, &format!("{name} prolog +{k}"));
            let want = if k < n {
                Place::Prolog { done: k as u32 }
            } else {
                Place::Body
            };
            assert_eq!(place, want, "{name} prolog +{k}");
            prolog_positions += 1;
        }
        let body = body_of(b, &name, begin, n);
        let after_prolog = begin + 4 * n as u64;
        let insn = |va: &u64| b.code.get(va).map(|(m, o)| (m.as_str(), o.as_str()));
        if let Some(call) = (after_prolog..end)
            .step_by(4)
            .find(|va| insn(va).map(|i| i.0) == Some("bl"))
        {
            let mut s = body.clone();
            s.pc = call + 4;
            let place = check_unwinds_to_caller(
                b,
                f,
                &s,
                true,
                &format!("{name} return address {:#x}", call + 4),
            );
            assert_eq!(place, Place::Body);
            calls += 1;
        }
        for ret in (after_prolog..end)
            .step_by(4)
            .filter(|va| insn(va).map(|i| i.0) == Some("ret"))
        {
            let mut start = ret;
            while start > after_prolog && insn(&(start - 4)).is_some_and(|(m, o)| epilog_like(m, o))
            {
                start -= 4;
            }
            for j in 0..=((ret - start) / 4) {
                let mut s = body.clone();
                s.pc = start;
                execute(b, &mut s, j as usize);
                let what = format!("{name} epilog at {start:#x} +{j}");
                let place = check_unwinds_to_caller(b, f, &s, false, &what);
                assert_eq!(place, Place::Epilog { done: j as u32 }, "{what}");
                epilog_positions += 1;
            }
        }
    }
    eprintln!("{prolog_positions} prolog positions, {calls} return addresses, {epilog_positions} epilog positions");
    assert!(prolog_positions >= 30 && calls >= 6 && epilog_positions >= 15);
}

/// The call chain laid out by running each caller's prolog and calling the next function
/// from its real call site; the walk must give back every return address and stack pointer,
/// then stop outside the image.
#[test]
fn walk_over_the_compiled_call_chain() {
    let b = built();
    let rfs = runtime_functions(&b.readobj);
    let by_va: HashMap<u64, &Block> = rfs.iter().map(|r| (function_va(r), r)).collect();
    let chain = [
        "big_frame",
        "with_alloca",
        "many_regs",
        "regs_packed",
        "leaf",
    ];
    let mut sim = caller();
    let mut want = Vec::new();
    for (i, name) in chain.iter().enumerate() {
        let begin = b.base + u64::from(b.names[*name]);
        sim.pc = begin;
        let Some(next) = chain.get(i + 1) else {
            // Inside the leaf: frame 0.
            sim.pc = begin + 4;
            want.push((sim.pc, sim.sp));
            break;
        };
        let rf = by_va
            .get(&begin)
            .unwrap_or_else(|| panic!("{name} has an entry"));
        execute(b, &mut sim, prolog_len(rf));
        if *name == "with_alloca" {
            sim.sp -= 0x40;
        }
        let target = b.base + u64::from(b.names[*next]);
        let call = b
            .code
            .range(begin..)
            .find(|(_, (m, o))| m == "bl" && o.split_whitespace().next().map(hex) == Some(target))
            .map(|(va, _)| *va)
            .unwrap_or_else(|| panic!("{name} calls {next}"));
        sim.x[LR] = call + 4;
        want.push((call + 4, sim.sp));
    }
    want.reverse();
    let leaf_has_entry = by_va.contains_key(&(b.base + u64::from(b.names["leaf"])));
    let mem = SimMemory {
        stack: &sim.mem,
        image: Some((b.base, &b.image)),
    };
    let module = Module {
        name: "unwind_arm64.sys".into(),
        path: "\\SystemRoot\\unwind_arm64.sys".into(),
        base: b.base,
        size: b.size,
        timestamp: None,
        checksum: None,
        ldr_entry: None,
        pe: None,
        pe_error: None,
    };
    let start = StartContext {
        regs: sim.context().to_registers(),
        source: ContextSource::DumpHeader,
        address: None,
    };
    let w = walk(&start, Arch::Arm64, &[module], &mem, &NoFetch);
    let got: Vec<(u64, u64)> = w.frames.iter().map(|f| (f.ip, f.sp)).collect();
    want.push((CALLER_RA, CALLER_SP));
    assert_eq!(got, want, "{:#x?}", w.frames);
    assert_eq!(w.stop.reason, StopReason::OutsideModules, "{:?}", w.stop);
    assert_eq!(w.frames[0].unwound_by, UnwoundBy::Context);
    let first = if leaf_has_entry {
        None
    } else {
        Some(UnwoundBy::LinkRegister)
    };
    if let Some(by) = first {
        assert_eq!(w.frames[1].unwound_by, by);
    }
    for f in &w.frames[2..] {
        assert!(
            matches!(f.unwound_by, UnwoundBy::Pdata | UnwoundBy::PdataPacked),
            "{f:?}"
        );
    }
}

fn yes(v: Option<&str>) -> bool {
    v == Some("Yes")
}

fn number(b: &Block, k: &str) -> u64 {
    let v = b.field(k).unwrap_or_else(|| panic!("{k} in {b:?}"));
    let v = v.split_whitespace().next().unwrap();
    v.parse().unwrap_or_else(|_| hex(v))
}

/// Checks `codes` from byte `at` against llvm-readobj's opcode lines; returns the count.
fn same_opcodes(
    codes: &[u8],
    mut at: usize,
    lines: &[String],
    prologue: bool,
    what: &str,
) -> usize {
    for line in lines {
        let (bytes, text) = opcode_line(line);
        let (code, len) = decode(codes, at).unwrap_or_else(|e| panic!("{what}: {e:?} at {at}"));
        assert_eq!(&codes[at..at + len], &bytes[..], "{what}: {line}");
        assert_eq!(
            normalized(&llvm_text(code, prologue)),
            normalized(&text),
            "{what}: {line}"
        );
        at += len;
    }
    lines.len()
}

/// Every RUNTIME_FUNCTION, its packed fields or `.xdata` header, epilog scopes and unwind
/// codes, as llvm-readobj reads them.
#[test]
fn decoding_matches_llvm_readobj() {
    let b = built();
    let rfs = runtime_functions(&b.readobj);
    let mut img = BytesImage(&b.image);
    let table = FunctionTable::read(&mut img)
        .unwrap()
        .expect("an exception directory");
    assert_eq!(table.count as usize, rfs.len());
    let (mut packed, mut xdata, mut opcodes) = (0, 0, 0);
    for (i, rf) in rfs.iter().enumerate() {
        let e = table.entry(&mut img, i as u32).unwrap();
        let what = name_of(b, e.begin);
        assert_eq!(b.base + u64::from(e.begin), function_va(rf), "{what}");
        let found = table.lookup(&mut img, e.begin).unwrap();
        assert_eq!(found, Some(e), "{what}: lookup");
        match e.kind().unwrap() {
            UnwindKind::Packed(p) => {
                packed += 1;
                assert_eq!(
                    u64::from(p.function_length),
                    number(rf, "FunctionLength"),
                    "{what}"
                );
                assert_eq!(u64::from(p.reg_f), number(rf, "RegF"), "{what}");
                assert_eq!(u64::from(p.reg_i), number(rf, "RegI"), "{what}");
                assert_eq!(p.homes, yes(rf.field("HomedParameters")), "{what}");
                assert_eq!(u64::from(p.cr), number(rf, "CR"), "{what}");
                assert_eq!(u64::from(p.frame_size), number(rf, "FrameSize"), "{what}");
                assert_eq!(p.fragment, yes(rf.field("Fragment")), "{what}");
                let x = analyzer::stack::arm64::packed::expand(&p).expect("expands");
                same_packed_prologue(&x, rf.child("Prologue").expect("Prologue"), &what);
            }
            UnwindKind::Xdata { rva } => {
                xdata += 1;
                let x = Xdata::read(&mut img, rva).unwrap();
                let ed = rf.child("ExceptionData").expect("ExceptionData");
                assert_eq!(
                    u64::from(4 * x.function_length),
                    number(ed, "FunctionLength"),
                    "{what}"
                );
                assert_eq!(number(ed, "Version"), 0);
                assert_eq!(x.exception_data, yes(ed.field("ExceptionData")), "{what}");
                assert_eq!(x.codes.len() as u64, number(ed, "ByteCodeLength"), "{what}");
                let prologue = &ed.child("Prologue").expect("Prologue").items;
                opcodes += same_opcodes(&x.codes, 0, prologue, true, &what);
                match &x.epilogs {
                    Epilogs::AtEnd { index } => {
                        assert!(yes(ed.field("EpiloguePacked")), "{what}");
                        assert_eq!(u64::from(*index), number(ed, "EpilogueOffset"), "{what}");
                    }
                    Epilogs::Scopes(scopes) => {
                        assert_eq!(scopes.len() as u64, number(ed, "EpilogueScopes"), "{what}");
                        let mut blocks = Vec::new();
                        ed.all("EpilogueScope", &mut blocks);
                        assert_eq!(blocks.len(), scopes.len(), "{what}");
                        for (s, blk) in scopes.iter().zip(blocks) {
                            assert_eq!(u64::from(s.start), number(blk, "StartOffset"), "{what}");
                            assert_eq!(
                                u64::from(s.index),
                                number(blk, "EpilogueStartIndex"),
                                "{what}"
                            );
                            let ops = &blk.child("Opcodes").expect("Opcodes").items;
                            opcodes += same_opcodes(&x.codes, s.index as usize, ops, false, &what);
                        }
                    }
                }
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    eprintln!("{packed} packed, {xdata} .xdata entries, {opcodes} opcodes compared");
    assert!(
        packed >= 2 && xdata >= 3 && opcodes >= 20,
        "{packed} {xdata} {opcodes}"
    );
}

/// A packed entry's prolog as llvm-readobj writes it out (instructions in unwind order, then
/// `end`) against the codes pooltriage expands it to.
fn same_packed_prologue(x: &Xdata, list: &Block, what: &str) {
    let mut at = 0;
    for line in &list.items {
        let (code, len) = decode(&x.codes, at).unwrap();
        at += len;
        if code == Code::EndC {
            continue;
        }
        assert_eq!(
            normalized(&packed_text(code)),
            normalized(line),
            "{what}: {line}"
        );
    }
}

/// `code` as llvm-readobj spells the instruction of a packed prolog.
fn packed_text(code: Code) -> String {
    match code {
        Code::Alloc { size } => format!("sub sp, sp, #{size}"),
        Code::SetFp => "mov x29, sp".into(),
        other => llvm_text(other, true),
    }
}

/// A full arm64 dump whose header holds an ARM64 CONTEXT (at 0x348, as on x64): `inspect`
/// starts the walk from it and says where and why it stopped: without page-table translation
/// there is no module list and no stack, and the detail says so. The header is the one
/// tests/inspect_cli.rs builds (../shared/docs/windows-internals.md's 64-bit layout).
#[test]
fn arm64_dump_context_starts_the_walk_and_the_stop_says_why() {
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
    put(&mut h, 0x88, &[1, 0, 0, 0, 0, 0, 0, 0]);
    put(&mut h, 0x90, &1u64.to_le_bytes());
    put(&mut h, 0x98, &0u64.to_le_bytes());
    put(&mut h, 0xA0, &1u64.to_le_bytes());
    put(&mut h, 0xF98, &1u32.to_le_bytes());
    put(&mut h, 0xFA0, &0x3000u64.to_le_bytes());
    put(&mut h, 0xFA8, &0x01d9_0000_0000_0000u64.to_le_bytes());
    // The ARM64 CONTEXT: ContextFlags CONTEXT_ARM64 | CONTROL | INTEGER, Lr, Sp, Pc.
    let ctx = 0x348;
    let mut record = vec![0u8; 0x390];
    put(&mut record, 0, &0x0040_0003u32.to_le_bytes());
    put(&mut record, 0xF8, &0xffff_f800_1234_0010u64.to_le_bytes());
    put(&mut record, 0x100, &0xffff_8000_0bad_c000u64.to_le_bytes());
    put(&mut record, 0x108, &0xffff_f800_1234_5678u64.to_le_bytes());
    put(&mut h, ctx, &record);
    h.resize(0x3000, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arm64-context.dmp");
    std::fs::write(&path, &h).unwrap();
    let out = run(
        Command::new(pooltriage_bin())
            .args(["inspect", "--no-symbols", "--json"])
            .arg(&path),
        "pooltriage inspect",
    );
    let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let c = &r["crash"];
    assert_eq!(c["context_source"], "dump_header", "{c}");
    assert_eq!(c["stack"]["method"], "unwind", "{c}");
    let frames = c["stack"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 1, "{c}");
    assert_eq!(frames[0]["instruction"], "0xfffff80012345678", "{c}");
    assert_eq!(frames[0]["stack_pointer"], "0xffff80000badc000", "{c}");
    assert_eq!(frames[0]["unwound_by"], "context", "{c}");
    let stopped = &c["stack"]["stopped"];
    assert_eq!(stopped["reason"], "outside_modules", "{c}");
    let detail = stopped["detail"].as_str().unwrap();
    assert!(
        detail.contains("in no loaded module") && detail.contains("virtual memory is not readable"),
        "{detail}"
    );
}
