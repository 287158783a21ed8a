//! The ARM64 register state an unwind works on, the ARM64 CONTEXT record it starts from
//! (winnt.h's ARM64_NT_CONTEXT: ContextFlags 0x000, Cpsr 0x004, X0..X28 0x008, Fp 0x0F0,
//! Lr 0x0F8, Sp 0x100, Pc 0x108, V[32] 0x110, Fpcr 0x310, Fpsr 0x314, debug registers to
//! 0x390), and how a walk carries it between frames.

use super::super::context::{Registers, RBP, RSP};
use crate::kernel::bytes::{u32_at, u64_at};

/// x29 and x30 in [`Arm64Context::x`].
pub const FP: usize = 29;
pub const LR: usize = 30;
/// sizeof(ARM64_NT_CONTEXT).
pub const CONTEXT_SIZE: usize = 0x390;
/// CONTEXT_ARM64 in ContextFlags.
const FLAG_ARM64: u32 = 0x0040_0000;
/// CONTEXT_UNWOUND_TO_CALL: the record's pc is a return address.
pub const FLAG_UNWOUND_TO_CALL: u32 = 0x2000_0000;
/// "PAGE": an unwritten header field.
const PAGE_FILL: u32 = 0x4547_4150;
pub const CTX_X0: u64 = 0x008;
pub const CTX_SP: u64 = 0x100;
pub const CTX_PC: u64 = 0x108;
pub const CTX_V: u64 = 0x110;

/// The registers an ARM64 unwind reads and restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arm64Context {
    pub pc: u64,
    pub sp: u64,
    /// x0..x28, fp (x29), lr (x30).
    pub x: [u64; 31],
    /// The low 64 bits of v0..v31 (d0..d31).
    pub d: [u64; 32],
}

impl Arm64Context {
    /// Parses an ARM64 CONTEXT record; `None` when ContextFlags lacks CONTEXT_ARM64 (an
    /// unwritten or foreign record) or the pc is 0.
    pub fn parse(b: &[u8]) -> Option<Arm64Context> {
        let flags = u32_at(b, 0)?;
        if flags == PAGE_FILL || flags & FLAG_ARM64 == 0 {
            return None;
        }
        let at = |off: u64| u64_at(b, off as usize);
        let mut c = Arm64Context {
            pc: at(CTX_PC)?,
            sp: at(CTX_SP)?,
            ..Default::default()
        };
        for (i, x) in c.x.iter_mut().enumerate() {
            *x = at(CTX_X0 + 8 * i as u64)?;
        }
        for (i, d) in c.d.iter_mut().enumerate() {
            *d = at(CTX_V + 16 * i as u64)?;
        }
        (c.pc != 0 && c.pc as u32 != PAGE_FILL).then_some(c)
    }

    /// The walk's frame registers: the ARM64 registers a later unwind needs, in the slots of
    /// [`Registers`] (sp in the stack-pointer slot, fp in the frame-pointer slot, lr in slot
    /// 0, x19..x28 in slots 6..15). Volatile registers and d8..d15 are not carried: no later
    /// frame's instruction or stack pointer depends on them.
    pub fn to_registers(&self) -> Registers {
        let mut gpr = [0u64; 16];
        gpr[RSP] = self.sp;
        gpr[RBP] = self.x[FP];
        gpr[0] = self.x[LR];
        gpr[6..16].copy_from_slice(&self.x[19..29]);
        Registers { ip: self.pc, gpr }
    }

    /// The inverse of [`Arm64Context::to_registers`].
    pub fn from_registers(r: &Registers) -> Arm64Context {
        let mut c = Arm64Context {
            pc: r.ip,
            sp: r.gpr[RSP],
            ..Default::default()
        };
        c.x[FP] = r.gpr[RBP];
        c.x[LR] = r.gpr[0];
        c.x[19..29].copy_from_slice(&r.gpr[6..16]);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_record_fields() {
        let mut b = vec![0u8; CONTEXT_SIZE];
        let put = |b: &mut Vec<u8>, off: u64, v: u64| {
            b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
        };
        b[0..4].copy_from_slice(&0x0040_0007u32.to_le_bytes());
        put(&mut b, CTX_X0 + 8 * 19, 0x1919);
        put(&mut b, CTX_X0 + 8 * FP as u64, 0xF0F0);
        put(&mut b, CTX_X0 + 8 * LR as u64, 0xffff_f800_0000_1234);
        put(&mut b, CTX_SP, 0xffff_8000_0000_1000);
        put(&mut b, CTX_PC, 0xffff_f800_0000_5678);
        put(&mut b, CTX_V + 16 * 8, 0xD8D8);
        let c = Arm64Context::parse(&b).unwrap();
        assert_eq!(c.x[19], 0x1919);
        assert_eq!((c.x[FP], c.x[LR]), (0xF0F0, 0xffff_f800_0000_1234));
        assert_eq!((c.sp, c.pc), (0xffff_8000_0000_1000, 0xffff_f800_0000_5678));
        assert_eq!(c.d[8], 0xD8D8);
        let r = c.to_registers();
        assert_eq!((r.ip, r.sp(), r.bp()), (c.pc, c.sp, 0xF0F0));
        let back = Arm64Context::from_registers(&r);
        assert_eq!((back.x[19], back.x[LR]), (0x1919, c.x[LR]));
        // An x64 record (CONTEXT_AMD64 only), a short one, a "PAGE"-filled one.
        b[0..4].copy_from_slice(&0x0010_0007u32.to_le_bytes());
        assert_eq!(Arm64Context::parse(&b), None);
        assert_eq!(Arm64Context::parse(&b[..0x100]), None);
        assert_eq!(Arm64Context::parse(&b"PAGE".repeat(0x100)), None);
    }
}
