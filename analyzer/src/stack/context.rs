//! The crashing thread's registers where the walk starts.
//!
//! Three places hold them (winnt.h, ntddk.h; x64 offsets checked against the 19041 ISF, the
//! ARM64 CONTEXT and KTRAP_FRAME as winnt.h and Windows' unwinder lay them out):
//!
//! - the CONTEXT record the dump writer saved in the dump header (DUMP_HEADER64 at 0x348,
//!   DUMP_HEADER32 at 0x320): the CPU state at the crash, usually KeBugCheckEx's own frame;
//! - for the unhandled-exception bug checks, the CONTEXT record a parameter points to
//!   (0x7E / 0x8E parameter 4, 0x3B parameter 3): the state at the faulting instruction, what
//!   WinDbg's `.cxr` shows;
//! - for 0x8E's kernel-mode trap, parameter 3 is a KTRAP_FRAME instead.
//!
//! 0x0A / 0xD1 name no trap frame in their parameters: the walk reaches the fault through
//! KiPageFault's machine frame (UWOP_PUSH_MACHFRAME) when nt's image is readable.

use super::arm64::{self, Arm64Context};
use crate::dump::Arch;
use crate::kernel::bytes::{u32_at, u64_at};
use crate::memory::VirtualMemory;
use serde::{Deserialize, Serialize};

/// Header offset of the CONTEXT record in DUMP_HEADER32 / DUMP_HEADER64 (x64 and arm64).
pub const HEADER_CONTEXT_X86: usize = 0x320;
pub const HEADER_CONTEXT_64: usize = 0x348;
/// CONTEXT_AMD64 / CONTEXT_i386 in ContextFlags.
const FLAG_AMD64: u32 = 0x0010_0000;
const FLAG_I386: u32 = 0x0001_0000;
/// "PAGE": what an unwritten header field is filled with.
const PAGE_FILL: u32 = 0x4547_4150;
/// sizeof(CONTEXT) on x64 and x86.
const CONTEXT_64_SIZE: usize = 0x4D0;
const CONTEXT_X86_SIZE: usize = 0x2CC;
/// x64 CONTEXT: ContextFlags, Rax (then Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8..R15), Rip.
const X64_FLAGS: usize = 0x30;
const X64_RAX: usize = 0x78;
const X64_RIP: usize = 0xF8;
/// x86 CONTEXT: Edi, Esi, Ebx, Edx, Ecx, Eax, Ebp, Eip, SegCs, EFlags, Esp.
const X86_EDI: usize = 0x9C;
const X86_EBP: usize = 0xB4;
const X86_EIP: usize = 0xB8;
const X86_ESP: usize = 0xC4;
/// x64 KTRAP_FRAME (19041 ISF; the same in 7601 to 20348): Rax..R11 at 0x30, Rbx, Rdi, Rsi,
/// Rbp at 0x140.., Rip 0x168, Rsp 0x180; its size.
const TRAP64_RAX: usize = 0x30;
const TRAP64_RBX: usize = 0x140;
const TRAP64_RIP: usize = 0x168;
const TRAP64_RSP: usize = 0x180;
const TRAP64_SIZE: usize = 0x190;
/// x86 KTRAP_FRAME (ntkrnlpa.pdb): Ebp 0x60, Eip 0x68, SegCs 0x6C, HardwareEsp 0x74.
const TRAP32_EBP: usize = 0x60;
const TRAP32_EIP: usize = 0x68;
const TRAP32_CS: usize = 0x6C;
const TRAP32_ESP: usize = 0x74;
const TRAP32_SIZE: usize = 0x8C;
/// ARM64 KTRAP_FRAME: Sp 0x98, Lr 0x138, Fp 0x140, Pc 0x148; its size.
const TRAP_ARM64_SP: usize = 0x98;
const TRAP_ARM64_LR: usize = 0x138;
const TRAP_ARM64_FP: usize = 0x140;
const TRAP_ARM64_PC: usize = 0x148;
const TRAP_ARM64_SIZE: usize = 0x150;

/// x64 register numbers as UNWIND_CODE.OpInfo numbers them (rax 0 .. r15 15); the x86 walk
/// uses the same slots for eax..edi.
pub const RSP: usize = 4;
pub const RBP: usize = 5;

/// Where the starting registers came from (JSON `crash.context_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextSource {
    DumpHeader,
    ExceptionRecord,
    TrapFrame,
    /// No usable record: the stack was not walked.
    None,
}

/// Integer registers and the instruction pointer of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    pub ip: u64,
    /// rax..r15 in UNWIND_CODE order (x86: eax, ecx, edx, ebx, esp, ebp, esi, edi; arm64:
    /// lr, -, -, -, sp, fp, x19..x28, see `Arm64Context::to_registers`).
    pub gpr: [u64; 16],
}

impl Registers {
    pub fn sp(&self) -> u64 {
        self.gpr[RSP]
    }
    pub fn bp(&self) -> u64 {
        self.gpr[RBP]
    }
}

/// The starting registers and where they were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartContext {
    pub regs: Registers,
    pub source: ContextSource,
    /// The address of the record read, for a parameter's record.
    pub address: Option<u64>,
}

/// Parses a CONTEXT record of `arch` from `b`; `None` when its ContextFlags do not carry the
/// architecture's flag (an unwritten or foreign record) or its instruction pointer is 0.
pub fn parse_context(b: &[u8], arch: Arch) -> Option<Registers> {
    let regs = match arch {
        Arch::X64 => {
            let flags = u32_at(b, X64_FLAGS)?;
            if flags == PAGE_FILL || flags & FLAG_AMD64 == 0 {
                return None;
            }
            let mut gpr = [0u64; 16];
            for (i, r) in gpr.iter_mut().enumerate() {
                *r = u64_at(b, X64_RAX + 8 * i)?;
            }
            Registers {
                ip: u64_at(b, X64_RIP)?,
                gpr,
            }
        }
        Arch::X86 => {
            let flags = u32_at(b, 0)?;
            if flags == PAGE_FILL || flags & FLAG_I386 == 0 {
                return None;
            }
            let r = |off: usize| u32_at(b, off).map(u64::from);
            let mut gpr = [0u64; 16];
            // Edi, Esi, Ebx, Edx, Ecx, Eax in the record; eax..edi in the slots.
            for (slot, i) in [7usize, 6, 3, 2, 1, 0].into_iter().zip(0..) {
                gpr[slot] = r(X86_EDI + 4 * i)?;
            }
            gpr[RBP] = r(X86_EBP)?;
            gpr[RSP] = r(X86_ESP)?;
            Registers {
                ip: r(X86_EIP)?,
                gpr,
            }
        }
        Arch::Arm64 => Arm64Context::parse(b)?.to_registers(),
    };
    (regs.ip != 0 && regs.ip as u32 != PAGE_FILL).then_some(regs)
}

/// Parses a KTRAP_FRAME at `at` of `arch`: the interrupted instruction and stack.
pub fn parse_trap_frame(b: &[u8], at: u64, arch: Arch) -> Option<Registers> {
    let mut gpr = [0u64; 16];
    let ip = match arch {
        Arch::X64 => {
            // Rax, Rcx, Rdx, R8..R11 at 0x30.. in that order; Rbx, Rdi, Rsi, Rbp at 0x140...
            for (slot, i) in [0usize, 1, 2, 8, 9, 10, 11].into_iter().zip(0..) {
                gpr[slot] = u64_at(b, TRAP64_RAX + 8 * i)?;
            }
            for (slot, i) in [3usize, 7, 6, 5].into_iter().zip(0..) {
                gpr[slot] = u64_at(b, TRAP64_RBX + 8 * i)?;
            }
            gpr[RSP] = u64_at(b, TRAP64_RSP)?;
            u64_at(b, TRAP64_RIP)?
        }
        Arch::X86 => {
            gpr[RBP] = u64::from(u32_at(b, TRAP32_EBP)?);
            let cs = u32_at(b, TRAP32_CS)?;
            // A trap from kernel mode pushed no stack pointer: the stack continued right
            // where HardwareEsp would be.
            gpr[RSP] = if cs & 1 == 1 {
                u64::from(u32_at(b, TRAP32_ESP)?)
            } else {
                at.checked_add(TRAP32_ESP as u64)?
            };
            u64::from(u32_at(b, TRAP32_EIP)?)
        }
        Arch::Arm64 => {
            // The trap frame holds the volatile registers, fp, lr, sp and pc; x19..x28 stay
            // where the interrupted code left them and are restored by the unwind codes.
            let mut c = Arm64Context {
                pc: u64_at(b, TRAP_ARM64_PC)?,
                sp: u64_at(b, TRAP_ARM64_SP)?,
                ..Default::default()
            };
            c.x[arm64::context::FP] = u64_at(b, TRAP_ARM64_FP)?;
            c.x[arm64::context::LR] = u64_at(b, TRAP_ARM64_LR)?;
            gpr = c.to_registers().gpr;
            c.pc
        }
    };
    (ip != 0).then_some(Registers { ip, gpr })
}

/// What a bug check's parameters point to: (1-based parameter, is a trap frame).
fn record_param(code: u32) -> Option<(usize, bool)> {
    match code & !0x1000_0000 {
        0x7E => Some((4, false)),
        0x3B => Some((3, false)),
        0x8E => Some((3, true)),
        _ => None,
    }
}

/// The starting context: the record a parameter points to when the bug check has one and the
/// dump holds it, else the dump header's record. `None` when neither is readable.
pub fn start_context(
    header: &[u8],
    arch: Arch,
    code: u32,
    params: &[u64; 4],
    mem: Option<&dyn VirtualMemory>,
) -> Option<StartContext> {
    if let (Some((p, trap)), Some(mem)) = (record_param(code), mem) {
        let at = params[p - 1];
        if let Some(regs) = read_record(mem, at, arch, trap) {
            let source = if trap {
                ContextSource::TrapFrame
            } else {
                ContextSource::ExceptionRecord
            };
            return Some(StartContext {
                regs,
                source,
                address: Some(at),
            });
        }
    }
    let off = match arch {
        Arch::X86 => HEADER_CONTEXT_X86,
        _ => HEADER_CONTEXT_64,
    };
    let regs = parse_context(header.get(off..)?, arch)?;
    Some(StartContext {
        regs,
        source: ContextSource::DumpHeader,
        address: None,
    })
}

fn read_record(mem: &dyn VirtualMemory, at: u64, arch: Arch, trap: bool) -> Option<Registers> {
    if at == 0 {
        return None;
    }
    let len = match (arch, trap) {
        (Arch::X64, false) => CONTEXT_64_SIZE,
        (Arch::X64, true) => TRAP64_SIZE,
        (Arch::Arm64, false) => arm64::context::CONTEXT_SIZE,
        (Arch::Arm64, true) => TRAP_ARM64_SIZE,
        (_, false) => CONTEXT_X86_SIZE,
        (_, true) => TRAP32_SIZE,
    };
    let b = mem.read_vec(at, len).ok()?;
    if trap {
        parse_trap_frame(&b, at, arch)
    } else {
        parse_context(&b, arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    fn x64_context(rip: u64, rsp: u64) -> Vec<u8> {
        let mut c = vec![0u8; CONTEXT_64_SIZE];
        c[X64_FLAGS..X64_FLAGS + 4].copy_from_slice(&0x0010_001fu32.to_le_bytes());
        c[X64_RIP..X64_RIP + 8].copy_from_slice(&rip.to_le_bytes());
        let at = X64_RAX + 8 * RSP;
        c[at..at + 8].copy_from_slice(&rsp.to_le_bytes());
        c
    }

    #[test]
    fn header_record_then_parameter_record() {
        let mut header = vec![0u8; 0x2000];
        let c = x64_context(0xffff_f800_1000_0010, 0xffff_8000_0000_1000);
        header[HEADER_CONTEXT_64..HEADER_CONTEXT_64 + c.len()].copy_from_slice(&c);
        let s = start_context(&header, Arch::X64, 0xE2, &[0; 4], None).unwrap();
        assert_eq!(s.source, ContextSource::DumpHeader);
        assert_eq!(
            (s.regs.ip, s.regs.sp()),
            (0xffff_f800_1000_0010, 0xffff_8000_0000_1000)
        );
        // 0x1000007E: parameter 4 is the exception's context record.
        let rec = x64_context(0xffff_f800_2000_0020, 0xffff_8000_0000_2000);
        let mem = SliceMemory::new(0xffff_8000_0000_0800, &rec, 8);
        let params = [0xc0000005, 0, 0, 0xffff_8000_0000_0800];
        let s = start_context(&header, Arch::X64, 0x1000_007E, &params, Some(&mem)).unwrap();
        assert_eq!(s.source, ContextSource::ExceptionRecord);
        assert_eq!(s.regs.ip, 0xffff_f800_2000_0020);
        // The record's page is not in the dump: the header's record.
        let params = [0xc0000005, 0, 0, 0xffff_8000_0009_0000];
        let s = start_context(&header, Arch::X64, 0x7E, &params, Some(&mem)).unwrap();
        assert_eq!(s.source, ContextSource::DumpHeader);
    }

    #[test]
    fn trap_frames_and_unwritten_records() {
        let mut t = vec![0u8; TRAP64_SIZE];
        t[TRAP64_RIP..TRAP64_RIP + 8].copy_from_slice(&0xffff_f800_3000_0000_u64.to_le_bytes());
        t[TRAP64_RSP..TRAP64_RSP + 8].copy_from_slice(&0xffff_8000_0000_3000_u64.to_le_bytes());
        let r = parse_trap_frame(&t, 0, Arch::X64).unwrap();
        assert_eq!(
            (r.ip, r.sp()),
            (0xffff_f800_3000_0000, 0xffff_8000_0000_3000)
        );
        let mut x = vec![0u8; TRAP32_SIZE];
        x[TRAP32_EIP..TRAP32_EIP + 4].copy_from_slice(&0x8050_0000u32.to_le_bytes());
        x[TRAP32_CS..TRAP32_CS + 4].copy_from_slice(&8u32.to_le_bytes());
        let r = parse_trap_frame(&x, 0xf000_0000, Arch::X86).unwrap();
        assert_eq!(
            r.sp(),
            0xf000_0074,
            "kernel-mode trap: the stack continues in place"
        );
        let fill: Vec<u8> = b"PAGE".iter().copied().cycle().take(0x2000).collect();
        assert_eq!(start_context(&fill, Arch::X64, 0xE2, &[0; 4], None), None);
        assert_eq!(start_context(&[], Arch::X86, 0xE2, &[0; 4], None), None);
    }
}
