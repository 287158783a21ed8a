//! The x86 walk: a frame-pointer walk. 32-bit Windows code (XP's kernel and its drivers) is
//! compiled with EBP frames (`push ebp; mov ebp, esp`), so each frame's EBP points at the
//! caller's saved EBP with the return address above it. Code built with frame-pointer omission
//! (FPO) breaks the chain; WinDbg then needs the PDB's FPO data, which this walk does not read:
//! such a frame is skipped or the walk stops, and the report says it was a frame-pointer walk.

use super::context::{Registers, RBP, RSP};
use super::UnwindError;
use crate::memory::VirtualMemory;

/// The caller of the frame whose EBP is `regs.bp()`: `[ebp+4]` is the return address, `[ebp]`
/// the caller's EBP, and the caller's ESP is `ebp + 8`.
pub fn step(regs: &Registers, stack: &dyn VirtualMemory) -> Result<Registers, UnwindError> {
    let bp = regs.bp();
    let read = |va: u64| {
        stack
            .read_u32(va)
            .map(u64::from)
            .map_err(|_| UnwindError::Missing {
                what: "stack",
                address: va,
            })
    };
    let next_bp = read(bp)?;
    let ip = read(bp.wrapping_add(4))?;
    let mut out = *regs;
    out.ip = ip;
    out.gpr[RBP] = next_bp;
    out.gpr[RSP] = bp.wrapping_add(8);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    #[test]
    fn follows_the_saved_ebp() {
        let mut stack = vec![0u8; 0x40];
        stack[0x10..0x14].copy_from_slice(&0xf000_0030u32.to_le_bytes());
        stack[0x14..0x18].copy_from_slice(&0x8050_1234u32.to_le_bytes());
        let mem = SliceMemory::new(0xf000_0000, &stack, 4);
        let mut r = Registers::default();
        r.gpr[RBP] = 0xf000_0010;
        let n = step(&r, &mem).unwrap();
        assert_eq!(
            (n.ip, n.bp(), n.sp()),
            (0x8050_1234, 0xf000_0030, 0xf000_0018)
        );
        r.gpr[RBP] = 0xf000_0040;
        assert!(matches!(step(&r, &mem), Err(UnwindError::Missing { .. })));
    }
}
