//! The unwinder on hand-built UNWIND_INFO: each operation, the prolog offset, chained
//! information, machine frames, epilogues, and hostile information (cycles, operands and
//! tables past the image) that must end in an error, never a panic or a hang.

use super::context::{Registers, RBP, RSP};
use super::image::{BytesImage, NoFetch};
use super::pdata::RuntimeFunction;
use super::unwind_x64::{unwind, Frame, UnwindCode, UnwindInfo, UnwindOp, MAX_CHAIN};
use super::{walk, ContextSource, StartContext, StopReason, UnwindError, UnwoundBy};
use crate::dump::Arch;
use crate::kernel::Module;
use crate::memory::{MemoryError, VirtualMemory};

const BASE: u64 = 0xffff_f800_1000_0000;
const STACK: u64 = 0xffff_8000_0000_0000;
const RBX: usize = 3;
const RSI: usize = 6;

/// UNWIND_INFO bytes: version 1, `flags`, prolog size, frame register/offset, the slots, and
/// a chained RUNTIME_FUNCTION after them.
fn info(
    flags: u8,
    prolog: u8,
    frame: u8,
    slots: &[[u8; 2]],
    chain: Option<(u32, u32, u32)>,
) -> Vec<u8> {
    let mut b = vec![1 | flags << 3, prolog, slots.len() as u8, frame];
    for s in slots {
        b.extend_from_slice(s);
    }
    if slots.len() % 2 == 1 {
        b.extend_from_slice(&[0, 0]);
    }
    if let Some((s, e, u)) = chain {
        for v in [s, e, u] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    b
}

fn op(code_offset: u8, op: u8, info: u8) -> [u8; 2] {
    [code_offset, op | info << 4]
}

/// An image of 0x4000 bytes with `infos` placed at their RVAs and `code` at 0x1000.
fn image(infos: &[(u32, Vec<u8>)], code: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 0x4000];
    for (rva, bytes) in infos {
        b[*rva as usize..*rva as usize + bytes.len()].copy_from_slice(bytes);
    }
    b[0x1000..0x1000 + code.len()].copy_from_slice(code);
    b
}

/// A stack of 64-bit values at [`STACK`].
fn stack(values: &[(u64, u64)]) -> Vec<u8> {
    let mut b = vec![0u8; 0x400];
    for &(off, v) in values {
        b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

struct Mem<'a> {
    regions: Vec<(u64, &'a [u8])>,
}

impl VirtualMemory for Mem<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (base, bytes) in &self.regions {
            if let Some(off) = va.checked_sub(*base) {
                let off = off as usize;
                if let Some(src) = off.checked_add(buf.len()).and_then(|e| bytes.get(off..e)) {
                    buf.copy_from_slice(src);
                    return Ok(());
                }
            }
        }
        Err(MemoryError::NotCaptured { va })
    }
    fn pointer_size(&self) -> u8 {
        8
    }
}

fn regs(ip_rva: u64, sp_off: u64) -> Registers {
    let mut r = Registers {
        ip: BASE + ip_rva,
        ..Default::default()
    };
    r.gpr[RSP] = STACK + sp_off;
    r
}

fn run(img: &[u8], f: RuntimeFunction, r: &mut Registers, st: &[u8]) -> Result<bool, UnwindError> {
    let mem = Mem {
        regions: vec![(STACK, st)],
    };
    let frame = Frame {
        image: &mut BytesImage(img),
        base: BASE,
        function: f,
        may_be_in_epilog: true,
    };
    unwind(frame, r, &mem).map(|u| u.machine_frame)
}

const F: RuntimeFunction = RuntimeFunction {
    begin: 0x1000,
    end: 0x1100,
    unwind: 0x2000,
};

/// push rbx; sub rsp, 20h (prolog 5 bytes).
fn push_alloc() -> Vec<u8> {
    info(0, 5, 0, &[op(5, 2, 3), op(1, 0, RBX as u8)], None)
}

#[test]
fn body_undoes_every_code() {
    let img = image(&[(0x2000, push_alloc())], &[]);
    let st = stack(&[(0x20, 0xBB), (0x28, BASE + 0x3000)]);
    let mut r = regs(0x1050, 0);
    assert!(!run(&img, F, &mut r, &st).unwrap());
    assert_eq!(
        (r.ip, r.sp(), r.gpr[RBX]),
        (BASE + 0x3000, STACK + 0x30, 0xBB)
    );
}

#[test]
fn prolog_offset_skips_codes_not_yet_executed() {
    let img = image(&[(0x2000, push_alloc())], &[]);
    // After `push rbx` (offset 1) only: the allocation has not happened.
    let st = stack(&[(0, 0xBB), (8, BASE + 0x3000)]);
    let mut r = regs(0x1001, 0);
    run(&img, F, &mut r, &st).unwrap();
    assert_eq!(
        (r.ip, r.sp(), r.gpr[RBX]),
        (BASE + 0x3000, STACK + 0x10, 0xBB)
    );
    // At offset 0 nothing has run: the return address is at [rsp].
    let st = stack(&[(0, BASE + 0x3000)]);
    let mut r = regs(0x1000, 0);
    run(&img, F, &mut r, &st).unwrap();
    assert_eq!((r.ip, r.sp()), (BASE + 0x3000, STACK + 8));
}

#[test]
fn frame_register_and_large_allocations() {
    // push rbp; sub rsp, 40h; lea rbp, [rsp+20h] (frame offset 2 * 16); later an alloca moved
    // rsp further down, which only the frame register undoes.
    let ui = info(
        0,
        10,
        RBP as u8 | 2 << 4,
        &[op(10, 3, 0), op(5, 2, 7), op(1, 0, RBP as u8)],
        None,
    );
    let img = image(&[(0x2000, ui)], &[]);
    let st = stack(&[(0x140, 0x5555), (0x148, BASE + 0x3000)]);
    let mut r = regs(0x1080, 0x10);
    r.gpr[RBP] = STACK + 0x100 + 0x20;
    run(&img, F, &mut r, &st).unwrap();
    assert_eq!(
        (r.ip, r.sp(), r.bp()),
        (BASE + 0x3000, STACK + 0x150, 0x5555)
    );
    // ALLOC_LARGE with a 16-bit (scaled by 8) and a 32-bit size.
    let ui = info(
        0,
        9,
        0,
        &[op(9, 1, 0), [0x20, 0], op(2, 1, 1), [0x08, 0], [0, 0]],
        None,
    );
    let img = image(&[(0x2000, ui)], &[]);
    let st = stack(&[(0x108, BASE + 0x3000)]);
    let mut r = regs(0x1050, 0);
    run(&img, F, &mut r, &st).unwrap();
    assert_eq!(r.sp(), STACK + 0x110);
}

#[test]
fn saves_and_chained_information() {
    // The function body's own info: save rsi at [frame + 0x30] (SAVE_NONVOL, offset/8), and
    // chained to `push rbx; sub rsp, 20h` of the primary function.
    let chained = info(
        0x4,
        4,
        0,
        &[op(4, 4, RSI as u8), [6, 0]],
        Some((0x1000, 0x1010, 0x2000)),
    );
    let img = image(&[(0x2000, push_alloc()), (0x2100, chained)], &[]);
    let st = stack(&[(0x20, 0xBB), (0x28, BASE + 0x3000), (0x30, 0x51)]);
    let part = RuntimeFunction {
        begin: 0x1010,
        end: 0x1100,
        unwind: 0x2100,
    };
    let mut r = regs(0x1050, 0);
    run(&img, part, &mut r, &st).unwrap();
    assert_eq!(
        (r.ip, r.sp(), r.gpr[RBX], r.gpr[RSI]),
        (BASE + 0x3000, STACK + 0x30, 0xBB, 0x51)
    );
}

#[test]
fn every_operation_decodes() {
    let slots = [
        op(0x20, 5, RSI as u8), // SAVE_NONVOL_FAR, 32-bit offset
        [0x00, 0x00],
        [0x01, 0x00],
        op(0x18, 8, 6), // SAVE_XMM128, offset/16
        [0x03, 0x00],
        op(0x10, 9, 7), // SAVE_XMM128_FAR
        [0x40, 0x00],
        [0x00, 0x00],
        op(0x08, 10, 1), // PUSH_MACHFRAME with an error code
    ];
    let ui = UnwindInfo::read(&mut BytesImage(&info(0, 0x20, 0, &slots, None)), 0).unwrap();
    let codes = ui.codes(0).unwrap();
    let ops: Vec<UnwindOp> = codes.iter().map(|c: &UnwindCode| c.op).collect();
    assert_eq!(
        ops,
        vec![
            UnwindOp::SaveNonvol {
                reg: 6,
                offset: 0x10000
            },
            UnwindOp::SaveXmm128 {
                reg: 6,
                offset: 0x30
            },
            UnwindOp::SaveXmm128 {
                reg: 7,
                offset: 0x40
            },
            UnwindOp::PushMachframe { error_code: true },
        ]
    );
}

#[test]
fn machine_frame_takes_the_interrupted_state() {
    // An interrupt handler: PUSH_MACHFRAME with an error code, then nothing else.
    let ui = info(0, 1, 0, &[op(1, 10, 1)], None);
    let img = image(&[(0x2000, ui)], &[]);
    let st = stack(&[(8, BASE + 0x1234), (8 + 24, STACK + 0x300)]);
    let mut r = regs(0x1050, 0);
    assert!(run(&img, F, &mut r, &st).unwrap());
    assert_eq!((r.ip, r.sp()), (BASE + 0x1234, STACK + 0x300));
}

#[test]
fn epilogue_is_emulated_not_unwound() {
    // At `add rsp, 20h; pop rbx; ret`: the unwind codes would undo the same, but at `pop rbx`
    // the allocation is already gone and applying the codes would be wrong.
    let code = [0x48, 0x83, 0xC4, 0x20, 0x5B, 0xC3];
    let img = image(&[(0x2000, push_alloc())], &code);
    let f = RuntimeFunction { begin: 0x0F00, ..F };
    let st = stack(&[(0, 0xBB), (8, BASE + 0x3000)]);
    let mut r = regs(0x1004, 0); // at `pop rbx`
    run(&img, f, &mut r, &st).unwrap();
    assert_eq!(
        (r.ip, r.sp(), r.gpr[RBX]),
        (BASE + 0x3000, STACK + 0x10, 0xBB)
    );
}

#[test]
fn hostile_information_is_an_error() {
    // A chain that points back at itself.
    let cyc = info(0x4, 0, 0, &[], Some((0x1000, 0x1100, 0x2000)));
    let img = image(&[(0x2000, cyc)], &[]);
    let st = stack(&[]);
    let e = run(&img, F, &mut regs(0x1050, 0), &st).unwrap_err();
    assert!(matches!(e, UnwindError::Malformed { .. }), "{e}");
    const { assert!(MAX_CHAIN < 100) };
    // ALLOC_LARGE without its operand.
    let img = image(&[(0x2000, info(0, 4, 0, &[op(4, 1, 1)], None))], &[]);
    assert!(run(&img, F, &mut regs(0x1050, 0), &st).is_err());
    // An unknown operation, a version 3 header, information past the image.
    let img = image(&[(0x2000, info(0, 4, 0, &[op(4, 11, 0)], None))], &[]);
    assert!(run(&img, F, &mut regs(0x1050, 0), &st).is_err());
    let mut v3 = push_alloc();
    v3[0] = 3;
    assert!(run(&image(&[(0x2000, v3)], &[]), F, &mut regs(0x1050, 0), &st).is_err());
    let far = RuntimeFunction {
        unwind: 0x3FFE,
        ..F
    };
    assert!(run(&image(&[], &[]), far, &mut regs(0x1050, 0), &st).is_err());
    // A stack the dump does not hold.
    let img = image(&[(0x2000, push_alloc())], &[]);
    let e = run(&img, F, &mut regs(0x1050, 0x1000), &st).unwrap_err();
    assert!(matches!(e, UnwindError::Missing { what: "stack", .. }));
}

/// A module image with a function table holding `F` and a leaf gap after it.
fn module_image() -> (Module, Vec<u8>) {
    let mut img = super::pdata::tests::image_with_table(&[(F.begin, F.end, F.unwind)]);
    img.resize(0x4000, 0);
    img[0x2000..0x2000 + 8].copy_from_slice(&push_alloc());
    let m = Module {
        name: "drv.sys".into(),
        path: "\\SystemRoot\\drv.sys".into(),
        base: BASE,
        size: 0x4000,
        timestamp: None,
        checksum: None,
        ldr_entry: None,
        pe: None,
        pe_error: None,
    };
    (m, img)
}

fn walk_on(st: &[u8], ip_rva: u64) -> super::StackWalk {
    let (m, img) = module_image();
    let mem = Mem {
        regions: vec![(BASE, &img), (STACK, st)],
    };
    let start = StartContext {
        regs: regs(ip_rva, 0),
        source: ContextSource::DumpHeader,
        address: None,
    };
    walk(&start, Arch::X64, &[m], &mem, &NoFetch)
}

#[test]
fn walk_stops_with_a_reason() {
    // F's frame, then a leaf (0x1800 has no entry) whose return address is 0.
    let st = stack(&[(0x20, 0xBB), (0x28, BASE + 0x1800), (0x30, 0)]);
    let w = walk_on(&st, 0x1050);
    let by: Vec<UnwoundBy> = w.frames.iter().map(|f| f.unwound_by).collect();
    assert_eq!(by, vec![UnwoundBy::Context, UnwoundBy::Pdata]);
    assert_eq!(w.frames[1].sp, STACK + 0x30);
    assert_eq!(w.stop.reason, StopReason::EndOfStack);
    // A return address outside every module.
    let st = stack(&[(0, 0x1234)]);
    let w = walk_on(&st, 0x1800);
    assert_eq!(
        (w.frames.len(), w.stop.reason),
        (2, StopReason::OutsideModules)
    );
    assert_eq!(w.frames[1].unwound_by, UnwoundBy::Leaf);
    // The stack ends where the dump's copy ends.
    let w = walk_on(&stack(&[]), 0x1050);
    assert_eq!(w.stop.reason, StopReason::EndOfStack, "{:?}", w.stop);
    let w = walk_on(&[0u8; 0x10], 0x1050);
    assert_eq!(w.stop.reason, StopReason::PageMissing);
}

#[test]
fn walk_never_loops_or_runs_away() {
    // Leaf return addresses all the way up: every step grows rsp by 8 and the frame limit
    // ends it.
    let values: Vec<(u64, u64)> = (0..0x80).map(|i| (8 * i, BASE + 0x1800)).collect();
    let w = walk_on(&stack(&values), 0x1800);
    assert_eq!(
        w.stop.reason,
        StopReason::PageMissing,
        "past the 0x400-byte stack"
    );
    let big: Vec<u8> = (0..0x1000u64)
        .flat_map(|_| (BASE + 0x1800).to_le_bytes())
        .collect();
    let w = walk_on(&big, 0x1800);
    assert_eq!(
        (w.frames.len(), w.stop.reason),
        (super::MAX_FRAMES, StopReason::FrameLimit)
    );
    // A machine frame that resumes at itself with the same stack: a loop.
    let (mut m, mut img) = module_image();
    let ui = info(0, 0, 0, &[op(0, 10, 0)], None);
    img[0x2000..0x2000 + ui.len()].copy_from_slice(&ui);
    let st = stack(&[(0, BASE + 0x1050), (24, STACK)]);
    let mem = Mem {
        regions: vec![(BASE, &img), (STACK, &st)],
    };
    m.size = 0x4000;
    let start = StartContext {
        regs: regs(0x1050, 0),
        source: ContextSource::DumpHeader,
        address: None,
    };
    let w = walk(&start, Arch::X64, &[m], &mem, &NoFetch);
    assert_eq!(w.stop.reason, StopReason::Loop);
    assert!(w.frames.len() <= 2);
}
