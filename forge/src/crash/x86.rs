//! An x86 crashing thread for frame-pointer walks: the same worker thread as on x64
//! (nt!KiThreadStartup -> PspSystemThreadStartup -> ExpWorkerThread -> crashy.sys's
//! WorkerRoutine -> ProcessItem -> ParseRecord, which faults), each function but the first
//! with the `push ebp; mov ebp, esp` frame every x86 kernel function of the era has. Each frame
//! holds the caller's EBP and the return address at [ebp], [ebp+4]; KiThreadStartup cleared
//! EBP, so the chain ends with a saved EBP of 0.

use super::context::{self, Registers};
use super::image::write_code;
use super::x64::{BUGCHECK_7E, DRIVER};
use super::{bucket, module_base, CrashHeader, CrashTruth, Placed, Stop};
use crate::system::System;
use crate::ForgeError;

/// Lowest address of the thread's stack and its size.
pub const STACK_LIMIT: u64 = 0xf78a_0000;
pub const STACK_SIZE: u64 = 0x3000;
const BAD_POINTER: u64 = 0x10;

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

/// Plants the crash on `sys` (which must hold [`DRIVER`]).
pub fn plant(sys: &mut System) -> Result<CrashHeader, ForgeError> {
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

    // The stack, outermost frame first: [ebp] = caller's ebp, [ebp+4] = return address.
    sys.machine.map_range(STACK_LIMIT, STACK_SIZE)?;
    let mut regs = [0u64; 16];
    for (r, v) in regs.iter_mut().enumerate().take(8) {
        *v = 0x8a10_0000 | (r as u64) << 8;
    }
    let mut esp = STACK_LIMIT + STACK_SIZE - 0x10;
    let mut ebp = 0u64;
    let (mut body_sp, mut frame_ptr) = (Vec::new(), Vec::new());
    for (i, spec) in CHAIN.iter().enumerate() {
        if i > 0 {
            esp -= 4;
            sys.machine.write_u32(esp, sites[i - 1] as u32)?;
            esp -= 4;
            sys.machine.write_u32(esp, ebp as u32)?;
            ebp = esp;
        }
        esp -= u64::from(spec.locals);
        for &r in spec.saves {
            esp -= 4;
            sys.machine.write_u32(esp, regs[usize::from(r)] as u32)?;
            regs[usize::from(r)] = 0x8b20_0000 | (i as u64) << 8 | u64::from(r);
        }
        body_sp.push(esp);
        frame_ptr.push(ebp);
    }
    let last = CHAIN.len() - 1;
    let fault = sites[last];
    regs[3] = BAD_POINTER;
    regs[4] = esp;
    regs[5] = ebp;
    let frames = (0..=last)
        .rev()
        .map(|i| places[i].frame(sites[i], body_sp[i], Some(frame_ptr[i])))
        .collect::<Vec<_>>();

    let ctx = context::i386(&Registers {
        gpr: regs,
        ip: fault,
    });
    let exr = context::access_violation(false, fault, BAD_POINTER + 0x10);
    let (exr_at, ctx_at) = ((esp - 0x600) & !0xf, (esp - 0x500) & !0xf);
    sys.machine.write(exr_at, &exr)?;
    sys.machine.write(ctx_at, &ctx)?;
    let (bucket, bucket_without_symbols, followup_module) = bucket(BUGCHECK_7E, &frames);
    Ok(CrashHeader {
        code: BUGCHECK_7E,
        params: [0xc000_0005, fault, exr_at, ctx_at],
        context: Some(ctx),
        exception: Some(exr),
        truth: CrashTruth {
            frames,
            stopped: Some(Stop::EndOfStack),
            stop_address: None,
            bucket,
            bucket_without_symbols,
            followup_module,
            unloaded_drivers: Vec::new(),
        },
    })
}
