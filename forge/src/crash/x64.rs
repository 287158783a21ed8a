//! An x64 crashing thread: a worker thread started by nt (KiStartSystemThread ->
//! PspSystemThreadStartup -> ExpWorkerThread, at their real RVAs) calling into crashy.sys
//! (WorkerRoutine, whose call sits in a chained fragment; ProcessItem, with a frame pointer
//! and a dynamic allocation; ParseRecord, which faults). Every function's prolog is described
//! by its image's `.pdata`, and the stack holds what those prologs pushed, frame by frame.
//!
//! Hostile variants change one slot of that stack so that a walker must stop at a known
//! frame: a loop, a return address outside every module, one without unwind data, or a stack
//! page left out of the dump.

use super::context::{self, Registers};
use super::image::{write_code, write_pdata, PdataEntry};
use super::unwind::{reg, Op, Prolog};
use super::{bucket, module_base, trap, CrashHeader, CrashTruth, FrameTruth, Placed, Stop};
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;

/// The forged driver the crash happens in.
pub const DRIVER: &str = "crashy.sys";
pub const DRIVER_PDB: &str = "crashy.pdb";
pub const DRIVER_SIZE: u32 = 0x10000;
/// Lowest address of the thread's stack and its size.
pub const STACK_LIMIT: u64 = 0xfffff08a_3c5f0000;
pub const STACK_SIZE: u64 = 0x5000;
/// A base-system driver whose image carries no `.pdata` (the no-unwind-info variant returns
/// into it).
const NO_PDATA_MODULE: &str = "acmeflt.sys";
/// SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M.
pub const BUGCHECK_7E: u32 = 0x1000_007e;
/// KERNEL_MODE_EXCEPTION_NOT_HANDLED_M: parameter 3 is the trap frame.
pub const BUGCHECK_8E: u32 = 0x1000_008e;
/// The bad pointer ParseRecord dereferences (`mov eax, [rbx+10h]` with rbx = 0x10).
const BAD_POINTER: u64 = 0x10;

/// How the stack is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Clean,
    Loop,
    OutsideModules,
    NoUnwindInfo,
    PageMissing,
    /// The clean stack, reached from bug check 0x8E's KTRAP_FRAME (no CONTEXT record).
    TrapFrame,
}

/// Where a function lives: nt at a symbol's RVA, or crashy.sys at an RVA.
#[derive(Debug, Clone, Copy)]
enum Home {
    Kernel,
    Driver(u32),
}

struct FnSpec {
    name: &'static str,
    home: Home,
    prolog: &'static [Op],
    /// A dynamic allocation in the body (`sub rsp, n` after the prolog, not in the unwind
    /// codes: only the frame pointer recovers it).
    alloca: u32,
    /// A chained fragment (its RVA in the driver and prolog) in which the body's call sits.
    fragment: Option<(u32, &'static [Op])>,
}

use reg::*;

/// Outermost first.
const CHAIN: &[FnSpec] = &[
    FnSpec {
        name: "KiStartSystemThread",
        home: Home::Kernel,
        prolog: &[Op::Alloc(0x28)],
        alloca: 0,
        fragment: None,
    },
    FnSpec {
        name: "PspSystemThreadStartup",
        home: Home::Kernel,
        prolog: &[Op::Push(RBX), Op::Alloc(0x30)],
        alloca: 0,
        fragment: None,
    },
    FnSpec {
        name: "ExpWorkerThread",
        home: Home::Kernel,
        prolog: &[
            Op::Push(RBX),
            Op::Push(RBP),
            Op::Push(RSI),
            Op::Push(RDI),
            Op::Push(R14),
            Op::Push(R15),
            Op::Alloc(0x68),
        ],
        alloca: 0,
        fragment: None,
    },
    FnSpec {
        name: "WorkerRoutine",
        home: Home::Driver(0x3180),
        prolog: &[Op::Push(R12), Op::Push(R13), Op::Alloc(0x38)],
        alloca: 0,
        fragment: Some((0x3800, &[Op::Push(R14), Op::Alloc(8)])),
    },
    FnSpec {
        name: "ProcessItem",
        home: Home::Driver(0x3080),
        prolog: &[
            Op::Push(RBP),
            Op::Push(RDI),
            Op::Alloc(0x1a8),
            Op::SetFp {
                reg: RBP,
                offset: 0x70,
            },
        ],
        alloca: 0x40,
        fragment: None,
    },
    FnSpec {
        name: "ParseRecord",
        home: Home::Driver(0x3000),
        prolog: &[Op::Push(RBX), Op::Push(RSI), Op::Alloc(0x28)],
        alloca: 0,
        fragment: None,
    },
];
const EXP_WORKER: usize = 2;
const WORKER_ROUTINE: usize = 3;
const PROCESS_ITEM: usize = 4;

/// A function's code as written.
struct Emitted {
    place: Placed,
    start: u64,
    end: u64,
    fragment: Option<(u64, u64)>,
    prolog: Prolog,
    fragment_prolog: Option<Prolog>,
    /// Return addresses of its calls, in order.
    returns: Vec<u64>,
    fault: Option<u64>,
}

fn sub_rsp(n: u32) -> Vec<u8> {
    let mut c = vec![0x48, 0x81, 0xec];
    c.extend_from_slice(&n.to_le_bytes());
    c
}

/// The epilog undoing `ops` (and a body allocation when there is no frame pointer).
fn epilog(ops: &[Op], alloca: u32) -> Vec<u8> {
    let fp = ops.iter().find_map(|op| match *op {
        Op::SetFp { reg, offset } => Some((reg, offset)),
        _ => None,
    });
    let mut out = Vec::new();
    if alloca > 0 && fp.is_none() {
        out.extend_from_slice(&[0x48, 0x81, 0xc4]);
        out.extend_from_slice(&alloca.to_le_bytes());
    }
    for op in ops.iter().rev() {
        match *op {
            Op::SetFp { .. } => {}
            Op::Alloc(n) => match fp {
                // lea rsp, [rbp + n - offset]
                Some((r, off)) => {
                    out.extend_from_slice(&[0x48 | u8::from(r >= 8), 0x8d, 0xa0 | (r & 7)]);
                    out.extend_from_slice(&(n - u32::from(off)).to_le_bytes());
                }
                None => {
                    out.extend_from_slice(&[0x48, 0x81, 0xc4]);
                    out.extend_from_slice(&n.to_le_bytes());
                }
            },
            Op::Push(r) if r >= 8 => out.extend_from_slice(&[0x41, 0x58 + r - 8]),
            Op::Push(r) => out.push(0x58 + r),
        }
    }
    out.push(0xc3);
    out
}

/// The body: the dynamic allocation, `mov rax, target; call rax; nop` per call (the nop keeps
/// return addresses out of the epilog), or the faulting load; then the epilog.
fn body(at: u64, spec: &FnSpec, calls: &[u64], ops: &[Op]) -> (Vec<u8>, Vec<u64>, Option<u64>) {
    let mut b = Vec::new();
    if spec.alloca > 0 {
        b.extend_from_slice(&sub_rsp(spec.alloca));
    }
    let mut returns = Vec::new();
    for (i, &target) in calls.iter().enumerate() {
        if i > 0 {
            b.extend_from_slice(&[0x8b, 0xcf]); // mov ecx, edi: the argument of the next call
        }
        b.extend_from_slice(&[0x48, 0xb8]);
        b.extend_from_slice(&target.to_le_bytes());
        b.extend_from_slice(&[0xff, 0xd0]);
        returns.push(at + b.len() as u64);
        b.push(0x90);
    }
    let fault = calls.is_empty().then(|| at + b.len() as u64);
    if fault.is_some() {
        b.extend_from_slice(&[0x8b, 0x43, 0x10, 0x90]); // mov eax, [rbx+10h]
    }
    b.extend_from_slice(&epilog(ops, spec.alloca));
    (b, returns, fault)
}

fn home_address(sys: &System, spec: &FnSpec, driver_base: u64) -> Result<u64, ForgeError> {
    match spec.home {
        Home::Kernel => sys.global(spec.name),
        Home::Driver(rva) => Ok(driver_base + u64::from(rva)),
    }
}

/// Writes every function of [`CHAIN`]; each calls the next (ProcessItem also calls itself).
fn emit(sys: &mut System, driver_base: u64) -> Result<Vec<Emitted>, ForgeError> {
    let starts: Vec<u64> = CHAIN
        .iter()
        .map(|s| home_address(sys, s, driver_base))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, spec) in CHAIN.iter().enumerate() {
        let start = starts[i];
        let mut calls: Vec<u64> = starts.get(i + 1).copied().into_iter().collect();
        if i == PROCESS_ITEM {
            calls.push(start); // the recursive call the loop variant returns to
        }
        let prolog = Prolog::new(spec.prolog);
        let (module, module_base) = match spec.home {
            Home::Kernel => ("ntoskrnl.exe", sys.kernel_base),
            Home::Driver(_) => (DRIVER, driver_base),
        };
        let mut all_ops = spec.prolog.to_vec();
        let (mut code, fragment, fragment_prolog, returns, fault);
        code = prolog.code.clone();
        if let Some((rva, ops)) = spec.fragment {
            let fstart = driver_base + u64::from(rva);
            all_ops.extend_from_slice(ops);
            let fp = Prolog::new(ops);
            // jmp fragment
            let next = start + code.len() as u64 + 5;
            code.push(0xe9);
            code.extend_from_slice(&((fstart.wrapping_sub(next)) as u32).to_le_bytes());
            code.push(0xcc);
            let mut fcode = fp.code.clone();
            let (b, r, f) = body(fstart + fcode.len() as u64, spec, &calls, &all_ops);
            fcode.extend_from_slice(&b);
            write_code(&mut sys.machine, fstart, &fcode)?;
            fragment = Some((fstart, fstart + fcode.len() as u64));
            fragment_prolog = Some(fp);
            (returns, fault) = (r, f);
        } else {
            let (b, r, f) = body(start + code.len() as u64, spec, &calls, &all_ops);
            code.extend_from_slice(&b);
            fragment = None;
            fragment_prolog = None;
            (returns, fault) = (r, f);
        }
        write_code(&mut sys.machine, start, &code)?;
        out.push(Emitted {
            place: Placed {
                module: module.to_string(),
                module_base,
                name: Some(spec.name.to_string()),
            },
            start,
            end: start + code.len() as u64,
            fragment,
            prolog,
            fragment_prolog,
            returns,
            fault,
        });
    }
    Ok(out)
}

/// The `.pdata` entries of the functions of one module.
fn pdata_of(emitted: &[Emitted], module_base: u64) -> Vec<PdataEntry> {
    let rva = |va: u64| (va - module_base) as u32;
    let mut entries = Vec::new();
    for e in emitted
        .iter()
        .filter(|e| e.place.module_base == module_base)
    {
        let primary = entries.len();
        entries.push(PdataEntry {
            begin: rva(e.start),
            end: rva(e.end),
            prolog: e.prolog.clone(),
            chain_to: None,
        });
        if let (Some((s, end)), Some(p)) = (e.fragment, &e.fragment_prolog) {
            entries.push(PdataEntry {
                begin: rva(s),
                end: rva(end),
                prolog: p.clone(),
                chain_to: Some(primary),
            });
        }
    }
    entries
}

/// The stack as the prologs leave it: returns the writes, each frame's body rsp (outermost
/// first), each frame's entry rsp (where its return address is) and the registers at the fault.
struct Laid {
    writes: Vec<(u64, u64)>,
    body_sp: Vec<u64>,
    entry_sp: Vec<u64>,
    /// Each frame's frame-pointer value after its prolog, when it sets one.
    frame_reg: Vec<Option<u64>>,
    regs: [u64; 16],
}

fn lay_out(emitted: &[Emitted], top: u64) -> Laid {
    let mut regs = [0u64; 16];
    for (r, v) in regs.iter_mut().enumerate() {
        *v = 0xffff_b381_0000_0000 | (r as u64) << 12 | 0x8a0;
    }
    let mut writes = vec![(top, 0u64)];
    let (mut body_sp, mut entry_sp, mut frame_reg) = (Vec::new(), Vec::new(), Vec::new());
    let mut entry = top;
    for (i, (spec, e)) in CHAIN.iter().zip(emitted).enumerate() {
        entry_sp.push(entry);
        let mut sp = e.prolog.run(entry, &mut regs, &mut writes);
        if let Some(p) = &e.fragment_prolog {
            sp = p.run(sp, &mut regs, &mut writes);
        }
        sp -= u64::from(spec.alloca);
        body_sp.push(sp);
        frame_reg.push(e.prolog.frame.map(|(r, _)| regs[usize::from(r)]));
        // The function's own use of the registers it saved.
        for op in spec
            .prolog
            .iter()
            .chain(spec.fragment.iter().flat_map(|f| f.1))
        {
            if let Op::Push(r) = *op {
                if e.prolog.frame.map(|f| f.0) != Some(r) {
                    regs[usize::from(r)] =
                        0xffff_a10f_2a00_0000 | (i as u64) << 16 | u64::from(r) << 4;
                }
            }
        }
        if let Some(&ret) = e.returns.first() {
            entry = sp - 8;
            writes.push((entry, ret));
        }
    }
    regs[usize::from(RBX)] = BAD_POINTER;
    regs[usize::from(reg::RSP)] = *body_sp.last().unwrap_or(&top);
    Laid {
        writes,
        body_sp,
        entry_sp,
        frame_reg,
        regs,
    }
}

/// Plants the crash on `sys` (which must hold [`DRIVER`]); returns the header and, for
/// [`Variant::PageMissing`], the stack page to leave out of the dump.
pub fn plant(sys: &mut System, variant: Variant) -> Result<(CrashHeader, Option<u64>), ForgeError> {
    let driver = module_base(sys, DRIVER)?;
    let emitted = emit(sys, driver)?;
    for base in [sys.kernel_base, driver] {
        write_pdata(&mut sys.machine, base, &pdata_of(&emitted, base))?;
    }
    // ExpWorkerThread's body rsp falls on a page boundary, so the page-missing variant can
    // leave out exactly the frames from there on.
    let provisional = lay_out(&emitted, STACK_LIMIT + STACK_SIZE - 0x18);
    let top = STACK_LIMIT + STACK_SIZE - 0x18 - (provisional.body_sp[EXP_WORKER] & 0xfff);
    let mut laid = lay_out(&emitted, top);
    let last = CHAIN.len() - 1;
    let fault = emitted[last]
        .fault
        .ok_or_else(|| ForgeError::Internal("the innermost function does not fault".into()))?;

    // Frames innermost first, as the walker must give them.
    let mut frames: Vec<FrameTruth> = (0..=last)
        .rev()
        .map(|i| {
            let ip = if i == last {
                fault
            } else {
                emitted[i].returns[0]
            };
            emitted[i].place.frame(ip, laid.body_sp[i], None)
        })
        .collect();
    let (stopped, stop_address, omit) = spoil(sys, variant, &emitted, &mut laid, &mut frames)?;

    sys.machine.map_range(STACK_LIMIT, STACK_SIZE)?;
    for &(at, v) in &laid.writes {
        sys.machine.write_u64(at, v)?;
    }
    let regs = Registers {
        gpr: laid.regs,
        ip: fault,
    };
    let (bugcheck, params, ctx, exr, trap_frame) = if variant == Variant::TrapFrame {
        // KiPageFault found no handler: 0x8E names the trap frame; the header's CONTEXT stays
        // empty, so a walker must start from the trap frame.
        let (at, bytes) = trap::build(sys, &regs)?;
        sys.machine.write(at, &bytes)?;
        (
            BUGCHECK_8E,
            [0xc000_0005, fault, at, 0],
            None,
            None,
            Some(at),
        )
    } else {
        let ctx = context::amd64(&regs);
        let exr = context::access_violation(true, fault, BAD_POINTER + 0x10);
        // Parameters 3 and 4 point at the exception and context records the dispatcher built
        // on the stack below the faulting frame.
        let rsp = laid.regs[usize::from(reg::RSP)];
        let (exr_at, ctx_at) = ((rsp - 0x700) & !0xf, (rsp - 0x600) & !0xf);
        sys.machine.write(exr_at, &exr)?;
        sys.machine.write(ctx_at, &ctx)?;
        let params = [0xc000_0005, fault, exr_at, ctx_at];
        (BUGCHECK_7E, params, Some(ctx), Some(exr), None)
    };
    let (bucket, bucket_without_symbols, followup_module) = bucket(bugcheck, &frames);
    let header = CrashHeader {
        code: bugcheck,
        params,
        context: ctx,
        exception: exr,
        truth: CrashTruth {
            frames,
            stopped: Some(stopped),
            stop_address: stop_address.map(hex),
            bucket,
            bucket_without_symbols,
            followup_module,
            trap_frame: trap_frame.map(hex),
            unloaded_drivers: Vec::new(),
        },
    };
    Ok((header, omit))
}

type Spoiled = (Stop, Option<u64>, Option<u64>);

/// Changes the stack for `variant` and cuts the truth's frames where a walk must stop.
fn spoil(
    sys: &System,
    variant: Variant,
    emitted: &[Emitted],
    laid: &mut Laid,
    frames: &mut Vec<FrameTruth>,
) -> Result<Spoiled, ForgeError> {
    let depth = |i: usize| CHAIN.len() - i; // frames kept through chain index i
    let worker_ret = laid.entry_sp[WORKER_ROUTINE];
    Ok(match variant {
        Variant::Clean | Variant::TrapFrame => (Stop::EndOfStack, None, None),
        Variant::Loop => {
            // ProcessItem saved its own frame pointer and returns into its recursive call:
            // unwinding it again gives the same frame.
            let p = PROCESS_ITEM;
            let fp = laid.frame_reg[p].unwrap_or(0);
            let back = emitted[p].returns[1];
            let slot = laid.entry_sp[p];
            laid.writes.push((slot - 8, fp));
            laid.writes.push((slot, back));
            frames.truncate(depth(p));
            frames.push(emitted[p].place.frame(back, slot + 8, None));
            (Stop::Loop, Some(back), None)
        }
        Variant::OutsideModules => {
            let outside = sys.spec.plan.nonpaged_pool + 0x2f00_1a30;
            laid.writes.push((worker_ret, outside));
            frames.truncate(depth(WORKER_ROUTINE));
            (Stop::OutsideModules, Some(outside), None)
        }
        Variant::NoUnwindInfo => {
            // Into the code of a driver whose image has no exception directory at all (a
            // module with a table but no entry for an address would be a leaf function).
            let base = module_base(sys, NO_PDATA_MODULE)?;
            let target = base + 0x1024;
            laid.writes.push((worker_ret, target));
            frames.truncate(depth(WORKER_ROUTINE));
            let place = Placed {
                module: NO_PDATA_MODULE.to_string(),
                module_base: base,
                name: None,
            };
            frames.push(place.frame(target, worker_ret + 8, None));
            (Stop::NoUnwindInfo, Some(target), None)
        }
        Variant::PageMissing => {
            let page = laid.body_sp[EXP_WORKER];
            frames.truncate(depth(EXP_WORKER));
            (Stop::PageMissing, Some(page), Some(page))
        }
    })
}
