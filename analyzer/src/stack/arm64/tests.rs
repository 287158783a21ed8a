//! The ARM64 unwinder on hand-built functions: a stack laid out as each prolog leaves it,
//! undone from the body, from every instruction of the prolog and of the epilog; the packed
//! form; save_next; the custom-stack codes; a walk over several modules' frames; and hostile
//! bytes, which must end in an error, never a panic or a hang.

use super::codes::{encode, Code};
use super::context::{Arm64Context, FP, LR};
use super::pdata::RuntimeFunction;
use super::unwind::{strip_pac, unwind, Form, Frame, Place, Unwound};
use crate::dump::Arch;
use crate::kernel::pe::SliceMemory;
use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::stack::image::{BytesImage, NoFetch};
use crate::stack::{walk, ContextSource, StartContext, StopReason, UnwindError, UnwoundBy};

const BASE: u64 = 0xffff_f800_1000_0000;
const STACK: u64 = 0xffff_8000_0000_0000;
/// The caller's sp and return address.
const S: u64 = STACK + 0x200;
const RA: u64 = 0xffff_f800_2000_0444;
const XDATA: usize = 0x2000;

/// `.xdata` with E = 1 (one epilog at the end, codes from `index`).
fn xdata_at_end(insns: u32, index: u32, codes: &[Code]) -> Vec<u8> {
    let mut c: Vec<u8> = codes.iter().flat_map(|c| encode(*c).unwrap()).collect();
    while !c.len().is_multiple_of(4) {
        c.push(0xE3);
    }
    let words = c.len() as u32 / 4;
    let mut b = (insns | 1 << 21 | index << 22 | words << 27)
        .to_le_bytes()
        .to_vec();
    b.extend(c);
    b
}

fn image_with(xdata: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; 0x3000];
    img[XDATA..XDATA + xdata.len()].copy_from_slice(xdata);
    img
}

fn stack(values: &[(u64, u64)]) -> Vec<u8> {
    let mut b = vec![0u8; 0x400];
    for &(va, v) in values {
        let off = (va - STACK) as usize;
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn ctx(pc_insn: u32, sp: u64) -> Arm64Context {
    let mut c = Arm64Context {
        pc: BASE + 0x1000 + 4 * u64::from(pc_insn),
        sp,
        ..Default::default()
    };
    c.x[LR] = RA;
    c
}

fn run(
    img: &[u8],
    unwind_data: u32,
    c: &mut Arm64Context,
    st: &[u8],
) -> Result<Unwound, UnwindError> {
    let mem = SliceMemory::new(STACK, st, 8);
    let frame = Frame {
        image: &mut BytesImage(img),
        base: BASE,
        function: RuntimeFunction {
            begin: 0x1000,
            unwind_data,
        },
        return_address: false,
    };
    unwind(frame, c, &mem)
}

/// `stp x29, lr, [sp, #-48]!; stp x19, x20, [sp, #16]; str d8, [sp, #32]; mov x29, sp`, a
/// body, then `ldr d8; ldp x19, x20; ldp x29, lr, [sp], #48; ret` ending the 16-instruction
/// function.
fn chained_function() -> (Vec<u8>, Vec<u8>) {
    let codes = [
        Code::SetFp,
        Code::SaveFreg {
            reg: 8,
            offset: 32,
            pre: false,
        },
        Code::SaveRegp {
            reg: 19,
            offset: 16,
            pre: false,
        },
        Code::SaveFplrX { offset: 48 },
        Code::End,
    ];
    let img = image_with(&xdata_at_end(16, 1, &codes));
    let f = S - 48;
    let st = stack(&[
        (f, 0xF0F0),
        (f + 8, RA),
        (f + 16, 0x1919),
        (f + 24, 0x2020),
        (f + 32, 0xD8D8),
    ]);
    (img, st)
}

#[test]
fn body_undoes_the_whole_prolog() {
    let (img, st) = chained_function();
    // An alloca moved sp below the frame: mov x29, sp recovers it.
    let mut c = ctx(6, S - 0x120);
    c.x[FP] = S - 48;
    let u = run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, c.x[FP]), (RA, S, 0xF0F0));
    assert_eq!((c.x[19], c.x[20], c.d[8]), (0x1919, 0x2020, 0xD8D8));
    assert_eq!(u.place, Place::Body);
    assert_eq!(u.form, Form::Xdata);
    assert!(u.to_call);
    assert_eq!(u.restored_x, 1 << 19 | 1 << 20 | 1 << 29 | 1 << 30);
    assert_eq!(u.restored_d, 1 << 8);
}

#[test]
fn inside_the_prolog_only_executed_instructions_are_undone() {
    let (img, st) = chained_function();
    // Nothing executed: lr still holds the return address, sp is the caller's.
    let mut c = ctx(0, S);
    let u = run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, u.restored_x), (RA, S, 0));
    assert_eq!(u.place, Place::Prolog { done: 0 });
    // After the first two: fp/lr and x19/x20 are saved, the d8 store is not done.
    let mut c = ctx(2, S - 48);
    c.x[LR] = 0xdead;
    let u = run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, c.x[19]), (RA, S, 0x1919));
    assert_eq!(u.restored_d, 0, "d8 was not stored yet");
    // After three: mov x29, sp not yet executed, so fp is not used.
    let mut c = ctx(3, S - 48);
    c.x[FP] = 0xbad;
    run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, c.d[8]), (RA, S, 0xD8D8));
}

#[test]
fn inside_the_epilog_executed_instructions_are_not_undone_again() {
    let (img, st) = chained_function();
    // At the ldp x29, lr (12 + 2): d8 and x19/x20 are already reloaded.
    let mut c = ctx(14, S - 48);
    c.x[19] = 0x1919;
    let u = run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!(u.place, Place::Epilog { done: 2 });
    assert_eq!((c.pc, c.sp, u.restored_x), (RA, S, 1 << 29 | 1 << 30));
    // At the ret: everything is reloaded, pc comes from lr.
    let mut c = ctx(15, S);
    let u = run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, u.restored_x), (RA, S, 0));
    // The epilog's first instruction: all of it to do, without mov x29, sp (fp is garbage).
    let mut c = ctx(12, S - 48);
    c.x[FP] = 0xbad;
    run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, c.d[8]), (RA, S, 0xD8D8));
}

/// Packed: RegI 2, CR 3, FrameSize 64: `stp x19, x20, [sp, #-16]!; stp x29, lr, [sp, #-48]!;
/// mov x29, sp`, the epilog ending the 16-instruction function.
#[test]
fn packed_chained_frame() {
    let packed: u32 = 1 | 16 << 2 | 2 << 16 | 3 << 21 | 4 << 23;
    let img = vec![0u8; 0x100];
    let st = stack(&[
        (S - 16, 0x1919),
        (S - 8, 0x2020),
        (S - 64, 0xF0F0),
        (S - 56, RA),
    ]);
    let mut c = ctx(8, S - 64);
    c.x[FP] = S - 64;
    let u = run(&img, packed, &mut c, &st).unwrap();
    assert_eq!(u.form, Form::Packed);
    assert_eq!((c.pc, c.sp, c.x[FP], c.x[19]), (RA, S, 0xF0F0, 0x1919));
    // In the epilog after `ldp x29, lr, [sp], #48`: only x19/x20 remain.
    let mut c = ctx(14, S - 16);
    c.x[LR] = RA;
    let u = run(&img, packed, &mut c, &st).unwrap();
    assert_eq!(u.place, Place::Epilog { done: 1 });
    assert_eq!((c.pc, c.sp, u.restored_x), (RA, S, 1 << 19 | 1 << 20));
    // In the prolog after the first store.
    let mut c = ctx(1, S - 16);
    run(&img, packed, &mut c, &st).unwrap();
    assert_eq!((c.pc, c.sp, c.x[20]), (RA, S, 0x2020));
    // The same words as a fragment: no prolog, no epilog, everything undone.
    let mut c = ctx(0, S - 64);
    c.x[FP] = S - 64;
    let u = run(&img, packed + 1, &mut c, &st).unwrap();
    assert_eq!((u.form, u.place), (Form::PackedFragment, Place::Body));
    assert_eq!((c.pc, c.sp), (RA, S));
}

#[test]
fn save_next_extends_the_pair() {
    // stp x19, x20, [sp, #-32]!; stp x21, x22, [sp, #16] as save_r19r20_x + save_next.
    let xd = xdata_at_end(
        8,
        0,
        &[Code::SaveNext, Code::SaveR19R20X { offset: 32 }, Code::End],
    );
    let img = image_with(&xd);
    let st = stack(&[(S - 32, 19), (S - 24, 20), (S - 16, 21), (S - 8, 22)]);
    let mut c = ctx(4, S - 32);
    run(&img, XDATA as u32, &mut c, &st).unwrap();
    assert_eq!((c.sp, c.x[19], c.x[22]), (S, 19, 22));
    // save_next before a code that saves no pair is an error.
    let bad = xdata_at_end(8, 0, &[Code::SaveNext, Code::Alloc { size: 16 }, Code::End]);
    let mut c = ctx(4, S - 32);
    assert!(run(&image_with(&bad), XDATA as u32, &mut c, &st).is_err());
}

#[test]
fn custom_stack_codes() {
    let one = |code: Code, st: &[u8], sp: u64| {
        let img = image_with(&xdata_at_end(8, 0, &[code, Code::End]));
        let mut c = ctx(4, sp);
        let u = run(&img, XDATA as u32, &mut c, st).unwrap();
        (c, u)
    };
    // Machine frame: {sp, pc} at sp.
    let st = stack(&[(S, S + 0x100), (S + 8, 0xffff_f800_3000_0000)]);
    let (c, u) = one(Code::MachineFrame, &st, S);
    assert_eq!(
        (c.pc, c.sp, u.to_call),
        (0xffff_f800_3000_0000, S + 0x100, false)
    );
    // Trap frame: Sp 0x98, Lr 0x138, Fp 0x140, Pc 0x148.
    let st = stack(&[
        (STACK + 0x98, S),
        (STACK + 0xA0, 0xA0A0),
        (STACK + 0x138, RA),
        (STACK + 0x140, 0xF0F0),
        (STACK + 0x148, 0xffff_f800_3000_0010),
    ]);
    let (c, u) = one(Code::TrapFrame, &st, STACK);
    assert_eq!(
        (c.pc, c.sp, c.x[LR], c.x[FP]),
        (0xffff_f800_3000_0010, S, RA, 0xF0F0)
    );
    assert_eq!((c.x[0], u.to_call), (0xA0A0, false));
    // Context: the record's own unwound-to-call flag.
    let st = stack(&[
        (STACK, 0x2040_0000),
        (STACK + 0x8 + 8 * 19, 0x1919),
        (STACK + 0x100, S),
        (STACK + 0x108, 0xffff_f800_3000_0020),
        (STACK + 0x110 + 16 * 9, 0xD9D9),
    ]);
    let (c, u) = one(Code::Context, &st, STACK);
    assert_eq!(
        (c.pc, c.sp, c.x[19], c.d[9]),
        (0xffff_f800_3000_0020, S, 0x1919, 0xD9D9)
    );
    assert!(u.to_call);
    // EC context: x64 layout (Rip 0xF8, Rsp 0x98, R12 = x19, the first x87 slot = lr).
    let st = stack(&[
        (STACK + 0x98, S),
        (STACK + 0xD8, 0x1919),
        (STACK + 0xF8, 0x7ff0_0000_1000),
        (STACK + 0x120, RA),
    ]);
    let (c, _) = one(Code::EcContext, &st, STACK);
    assert_eq!(
        (c.pc, c.sp, c.x[19], c.x[LR]),
        (0x7ff0_0000_1000, S, 0x1919, RA)
    );
    // clear_unwound_to_call: pc from lr, but not a return address.
    let (c, u) = one(Code::ClearUnwoundToCall, &stack(&[]), S);
    assert_eq!((c.pc, u.to_call), (RA, false));
}

#[test]
fn pac_signed_lr_is_stripped() {
    assert_eq!(
        strip_pac(0x0023_f800_2000_0444 | 1 << 55),
        0xffff_f800_2000_0444
    );
    assert_eq!(strip_pac(0x0012_7ff6_1234_5678), 0x0000_7ff6_1234_5678);
    let xd = xdata_at_end(
        8,
        0,
        &[Code::SaveFplrX { offset: 16 }, Code::PacSignLr, Code::End],
    );
    let st = stack(&[(S - 16, 0xF0F0), (S - 8, 0x00d5_f800_2000_0444)]);
    let mut c = ctx(4, S - 16);
    run(&image_with(&xd), XDATA as u32, &mut c, &st).unwrap();
    assert_eq!(c.pc, RA);
}

#[test]
fn missing_stack_and_bad_registers_are_errors() {
    let (img, _) = chained_function();
    let mut c = ctx(6, S - 48);
    c.x[FP] = S - 48;
    let e = run(&img, XDATA as u32, &mut c, &[0u8; 0x10]).unwrap_err();
    assert!(
        matches!(e, UnwindError::Missing { what: "stack", .. }),
        "{e:?}"
    );
    // save_regp naming x33 (X = 14).
    let mut xd = (8u32 | 1 << 21 | 1 << 27).to_le_bytes().to_vec();
    xd.extend([0xCB, 0x80, 0xE4, 0xE4]);
    let img = image_with(&xd);
    let mut c = ctx(4, S);
    assert!(run(&img, XDATA as u32, &mut c, &stack(&[])).is_err());
    // A pc before the function.
    let mut c = ctx(0, S);
    c.pc = BASE + 0x10;
    assert!(run(&img, XDATA as u32, &mut c, &stack(&[])).is_err());
}

/// A small xorshift generator: deterministic hostile bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random `.xdata` records, packed words and stacks: every unwind returns, with a result or
/// an error.
#[test]
fn random_bytes_never_panic() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let mut img = vec![0u8; 0x3000];
        for b in img[XDATA..XDATA + 0x200].iter_mut() {
            *b = r.next() as u8;
        }
        // Keep the version field 0 most of the time so the codes get executed.
        if !r.next().is_multiple_of(4) {
            img[XDATA + 2] &= !0x0C;
        }
        let st: Vec<u8> = (0..0x400).map(|_| r.next() as u8).collect();
        let unwind_data = match r.next() % 3 {
            0 => XDATA as u32,
            1 => r.next() as u32 | 1,
            _ => r.next() as u32,
        };
        let mut c = ctx((r.next() % 0x40) as u32, STACK + (r.next() % 0x400));
        c.x[FP] = STACK + (r.next() % 0x400);
        let _ = run(&img, unwind_data, &mut c, &st);
    }
}

fn module(name: &str, base: u64, size: u32) -> Module {
    Module {
        name: name.into(),
        path: format!("\\SystemRoot\\{name}"),
        base,
        size,
        timestamp: None,
        checksum: None,
        ldr_entry: None,
        pe: None,
        pe_error: None,
    }
}

/// A PE32+ header whose exception directory holds `entries` (8-byte ARM64 entries) at 0x200.
fn arm64_image(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut b = crate::stack::pdata::tests::image_with_table(&[]);
    b.resize(0x3000, 0);
    let dir = 0x80 + 24 + 112 + 24;
    b[dir + 4..dir + 8].copy_from_slice(&(8 * entries.len() as u32).to_le_bytes());
    for (i, (begin, data)) in entries.iter().enumerate() {
        let at = 0x200 + 8 * i;
        b[at..at + 4].copy_from_slice(&begin.to_le_bytes());
        b[at + 4..at + 8].copy_from_slice(&data.to_le_bytes());
    }
    b
}

/// Frame 0 in a leaf (no entry: lr), frame 1 in a packed function, frame 2 in an `.xdata`
/// function whose return address has no entry behind it: the walk says so and stops.
#[test]
fn walk_through_leaf_packed_and_xdata_frames() {
    // drv: 0x1000 packed (RegI 2, CR 3, FrameSize 64, 16 instructions), 0x1100 the
    // chained_function's .xdata, 0x1400.. no entry (a leaf).
    let packed: u32 = 1 | 16 << 2 | 2 << 16 | 3 << 21 | 4 << 23;
    let mut img = arm64_image(&[(0x1000, packed), (0x1100, XDATA as u32)]);
    let (xd_img, _) = chained_function();
    img[XDATA..XDATA + 0x20].copy_from_slice(&xd_img[XDATA..XDATA + 0x20]);
    let m = module("drv.sys", BASE, 0x3000);
    // The leaf at 0x1400 was called from the packed function's body (0x1000 + 8 * 4); that
    // one from the xdata function's body (0x1100 + 6 * 4), called from 0x1500 (no entry).
    let s1 = S - 0x100;
    let f1 = s1 - 64;
    let s2 = S;
    let f2 = s2 - 48;
    let st = stack(&[
        (s1 - 16, 0x1919),
        (s1 - 8, 0x2020),
        (f1, f2),
        (f1 + 8, BASE + 0x1100 + 6 * 4),
        (f2, 0),
        (f2 + 8, BASE + 0x1500),
    ]);
    let mut regs = ctx(0, f1).to_registers();
    regs.ip = BASE + 0x1400;
    regs.gpr[0] = BASE + 0x1000 + 8 * 4; // lr
    regs.gpr[5] = f1; // fp
    let mem_img = img.clone();
    let regions = [(BASE, &mem_img[..]), (STACK, &st[..])];
    let mem = Regions(&regions);
    let start = StartContext {
        regs,
        source: ContextSource::DumpHeader,
        address: None,
    };
    let w = walk(&start, Arch::Arm64, &[m], &mem, &NoFetch);
    let got: Vec<(u64, u64, UnwoundBy)> = w
        .frames
        .iter()
        .map(|f| (f.ip, f.sp, f.unwound_by))
        .collect();
    assert_eq!(
        got,
        [
            (BASE + 0x1400, f1, UnwoundBy::Context),
            (BASE + 0x1020, f1, UnwoundBy::LinkRegister),
            (BASE + 0x1118, s1, UnwoundBy::PdataPacked),
            (BASE + 0x1500, s2, UnwoundBy::Pdata),
        ]
    );
    assert_eq!(w.stop.reason, StopReason::NoUnwindInfo, "{:?}", w.stop);
    assert!(
        w.stop.detail.contains("lr no longer holds"),
        "{}",
        w.stop.detail
    );
}

/// Several byte ranges as one address space.
struct Regions<'a>(&'a [(u64, &'a [u8])]);

impl VirtualMemory for Regions<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::memory::MemoryError> {
        for (base, bytes) in self.0 {
            if SliceMemory::new(*base, bytes, 8).read(va, buf).is_ok() {
                return Ok(());
            }
        }
        Err(crate::memory::MemoryError::NotCaptured { va })
    }
    fn pointer_size(&self) -> u8 {
        8
    }
}
