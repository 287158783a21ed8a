//! An x86 crashing thread for frame-pointer walks: the same worker thread as on x64
//! (nt!KiThreadStartup -> PspSystemThreadStartup -> ExpWorkerThread -> crashy.sys's
//! WorkerRoutine -> ProcessItem -> ParseRecord, which faults), each function but the first
//! with the `push ebp; mov ebp, esp` frame every x86 kernel function of the era has. Each frame
//! holds the caller's EBP and the return address at [ebp], [ebp+4]; KiThreadStartup cleared
//! EBP, so the chain ends with a saved EBP of 0.
//!
//! Hostile variants change one slot of that chain so that a walker must stop at a known frame:
//! a saved EBP pointing back down the stack (a loop), a return address outside every module, a
//! stack page left out of the dump. The trap-frame variant is the same stack reached from the
//! KTRAP_FRAME of bug check 0x8E instead of a CONTEXT record.

use super::context::{self, Registers};
use super::image::write_code;
use super::x64::{Variant, BUGCHECK_7E, BUGCHECK_8E, DRIVER};
use super::{bucket, module_base, trap, CrashHeader, CrashTruth, FrameTruth, Placed, Stop};
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;

/// Lowest address of the thread's stack and its size.
pub const STACK_LIMIT: u64 = 0xf78a_0000;
pub const STACK_SIZE: u64 = 0x3000;
const BAD_POINTER: u64 = 0x10;
/// Chain indices of the frames the hostile variants spoil.
const EXP_WORKER: usize = 2;
const WORKER_ROUTINE: usize = 3;
const PROCESS_ITEM: usize = 4;

struct FnSpec {
    name: &'static str,
    /// RVA in crashy.sys; `None`: nt, at the symbol's RVA.
    driver_rva: Option<u32>,
    /// `sub esp, n` after the frame is set up.
    locals: u8,
    /// Registers pushed after that (x86 numbers: ebx 3, esi 6, edi 7).
    saves: &'static [u8],
}

/// Outermost first.
const CHAIN: &[FnSpec] = &[
    FnSpec {
        name: "KiThreadStartup",
        driver_rva: None,
        locals: 0,
        saves: &[],
    },
    FnSpec {
        name: "PspSystemThreadStartup",
        driver_rva: None,
        locals: 0x10,
        saves: &[],
    },
    FnSpec {
        name: "ExpWorkerThread",
        driver_rva: None,
        locals: 0x28,
        saves: &[3, 6, 7],
    },
    FnSpec {
        name: "WorkerRoutine",
        driver_rva: Some(0x3180),
        locals: 0x18,
        saves: &[],
    },
    FnSpec {
        name: "ProcessItem",
        driver_rva: Some(0x3080),
        locals: 0x40,
        saves: &[7],
    },
    FnSpec {
        name: "ParseRecord",
        driver_rva: Some(0x3000),
        locals: 0,
        saves: &[3, 6],
    },
];

/// The function's bytes at `at`: frame setup, the call to `callee` (or the faulting load),
/// the epilog. Returns the code and the address of the return site or the fault.
fn code(at: u64, spec: &FnSpec, first: bool, callee: Option<u64>) -> (Vec<u8>, u64) {
    let mut c = if first {
        vec![0x31, 0xed] // xor ebp, ebp
    } else {
        vec![0x55, 0x8b, 0xec] // push ebp; mov ebp, esp
    };
    if spec.locals > 0 {
        c.extend_from_slice(&[0x83, 0xec, spec.locals]);
    }
    for &r in spec.saves {
        c.push(0x50 + r);
    }
    let site = match callee {
        Some(target) => {
            c.push(0xb8);
            c.extend_from_slice(&(target as u32).to_le_bytes());
            c.extend_from_slice(&[0xff, 0xd0]); // call eax
            at + c.len() as u64
        }
        None => {
            let f = at + c.len() as u64;
            c.extend_from_slice(&[0x8b, 0x43, 0x10]); // mov eax, [ebx+10h]
            f
        }
    };
    c.push(0x90);
    for &r in spec.saves.iter().rev() {
        c.push(0x58 + r);
    }
    c.extend_from_slice(&[0x8b, 0xe5, 0x5d, 0xc3]); // mov esp, ebp; pop ebp; ret
    (c, site)
}

/// The stack as the frames leave it: the words written (address, value), each frame's body
/// ESP and EBP (outermost first), and the registers at the fault.
struct Laid {
    writes: Vec<(u64, u64)>,
    body_sp: Vec<u64>,
    frame_ptr: Vec<u64>,
    regs: [u64; 16],
}

/// Plays the frames forward from `top`: each call pushes the return address, each prolog EBP,
/// the locals and the saved registers.
fn lay_out(sites: &[u64], top: u64) -> Laid {
    let mut regs = [0u64; 16];
    for (r, v) in regs.iter_mut().enumerate().take(8) {
        *v = 0x8a10_0000 | (r as u64) << 8;
    }
    let mut writes = Vec::new();
    let mut esp = top;
    let mut ebp = 0u64;
    let (mut body_sp, mut frame_ptr) = (Vec::new(), Vec::new());
    for (i, spec) in CHAIN.iter().enumerate() {
        if i > 0 {
            esp -= 4;
            writes.push((esp, sites[i - 1]));
            esp -= 4;
            writes.push((esp, ebp));
            ebp = esp;
        }
        esp -= u64::from(spec.locals);
        for &r in spec.saves {
            esp -= 4;
            writes.push((esp, regs[usize::from(r)]));
            regs[usize::from(r)] = 0x8b20_0000 | (i as u64) << 8 | u64::from(r);
        }
        body_sp.push(esp);
        frame_ptr.push(ebp);
    }
    regs[3] = BAD_POINTER;
    regs[4] = esp;
    regs[5] = ebp;
    Laid {
        writes,
        body_sp,
        frame_ptr,
        regs,
    }
}

/// Plants the crash on `sys` (which must hold [`DRIVER`]); returns the header and, for
/// [`Variant::PageMissing`], the stack page to leave out of the dump.
pub fn plant(sys: &mut System, variant: Variant) -> Result<(CrashHeader, Option<u64>), ForgeError> {
    if variant == Variant::NoUnwindInfo {
        return Err(ForgeError::Internal(
            "x86 has no unwind information to lack".into(),
        ));
    }
    let driver = module_base(sys, DRIVER)?;
    let starts: Vec<u64> = CHAIN
        .iter()
        .map(|s| match s.driver_rva {
            Some(rva) => Ok(driver + u64::from(rva)),
            None => sys.global(s.name),
        })
        .collect::<Result<_, _>>()?;
    let mut sites = Vec::new();
    let mut places = Vec::new();
    for (i, spec) in CHAIN.iter().enumerate() {
        let (bytes, site) = code(starts[i], spec, i == 0, starts.get(i + 1).copied());
        write_code(&mut sys.machine, starts[i], &bytes)?;
        sites.push(site);
        let (module, module_base) = match spec.driver_rva {
            Some(_) => (DRIVER, driver),
            None => ("ntoskrnl.exe", sys.kernel_base),
        };
        places.push(Placed {
            module: module.into(),
            module_base,
            name: Some(spec.name.into()),
        });
    }

    // ExpWorkerThread's body ESP falls on a page boundary, so the page-missing variant can
    // leave out exactly its frame and those above it.
    let provisional = lay_out(&sites, STACK_LIMIT + STACK_SIZE - 0x10);
    let top = STACK_LIMIT + STACK_SIZE - 0x10 - (provisional.body_sp[EXP_WORKER] & 0xfff);
    let mut laid = lay_out(&sites, top);
    let last = CHAIN.len() - 1;
    let fault = sites[last];
    let mut frames = (0..=last)
        .rev()
        .map(|i| places[i].frame(sites[i], laid.body_sp[i], Some(laid.frame_ptr[i])))
        .collect::<Vec<_>>();
    let (stopped, stop_address, omit) = spoil(sys, variant, &sites, &mut laid, &mut frames)?;

    sys.machine.map_range(STACK_LIMIT, STACK_SIZE)?;
    for &(at, v) in &laid.writes {
        sys.machine.write_u32(at, v as u32)?;
    }
    let regs = Registers {
        gpr: laid.regs,
        ip: fault,
    };
    let esp = laid.regs[4];
    let (bugcheck, params, ctx, exr, trap_frame) = if variant == Variant::TrapFrame {
        // KiTrap0E found no handler: 0x8E names the trap frame; the header's CONTEXT stays
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
        let ctx = context::i386(&regs);
        let exr = context::access_violation(false, fault, BAD_POINTER + 0x10);
        let (exr_at, ctx_at) = ((esp - 0x600) & !0xf, (esp - 0x500) & !0xf);
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
    sites: &[u64],
    laid: &mut Laid,
    frames: &mut Vec<FrameTruth>,
) -> Result<Spoiled, ForgeError> {
    let depth = |i: usize| CHAIN.len() - i; // frames kept through chain index i
    let worker_fp = laid.frame_ptr[WORKER_ROUTINE];
    Ok(match variant {
        Variant::Clean | Variant::TrapFrame => (Stop::EndOfStack, None, None),
        Variant::Loop => {
            // WorkerRoutine's saved EBP points back down at ProcessItem's frame: the chain
            // returns into WorkerRoutine again, below the stack pointer it left.
            let back = laid.frame_ptr[PROCESS_ITEM];
            laid.writes.push((worker_fp, back));
            frames.truncate(depth(EXP_WORKER));
            if let Some(f) = frames.last_mut() {
                f.frame_pointer = Some(hex(back));
            }
            (Stop::Loop, Some(sites[WORKER_ROUTINE]), None)
        }
        Variant::OutsideModules => {
            let outside = sys.spec.plan.nonpaged_pool + 0x0123_4a30;
            laid.writes.push((worker_fp + 4, outside));
            frames.truncate(depth(WORKER_ROUTINE));
            (Stop::OutsideModules, Some(outside), None)
        }
        Variant::PageMissing => {
            let page = laid.body_sp[EXP_WORKER];
            frames.truncate(depth(EXP_WORKER));
            (Stop::PageMissing, Some(page), Some(page))
        }
        Variant::NoUnwindInfo => {
            return Err(ForgeError::Internal(
                "x86 has no unwind information to lack".into(),
            ))
        }
    })
}
