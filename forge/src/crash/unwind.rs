//! x64 prologs as MSVC emits them and the unwind data that describes them: the instruction
//! bytes, the UNWIND_INFO (version 1, its unwind codes in reverse prolog order) and the
//! RUNTIME_FUNCTION entries of a `.pdata` section. Layouts: Microsoft's "x64 exception handling"
//! reference (UNWIND_INFO, UNWIND_CODE, UWOP_* and UNW_FLAG_CHAININFO).
//!
//! [`Prolog::run`] plays a prolog forward on a stack, which is how the forge lays stacks out
//! exactly as the prologs would have left them.

/// x64 register numbers as unwind codes and ModRM use them.
pub mod reg {
    pub const RBX: u8 = 3;
    pub const RSP: u8 = 4;
    pub const RBP: u8 = 5;
    pub const RSI: u8 = 6;
    pub const RDI: u8 = 7;
    pub const R12: u8 = 12;
    pub const R13: u8 = 13;
    pub const R14: u8 = 14;
    pub const R15: u8 = 15;
}

const UWOP_PUSH_NONVOL: u8 = 0;
const UWOP_ALLOC_LARGE: u8 = 1;
const UWOP_ALLOC_SMALL: u8 = 2;
const UWOP_SET_FPREG: u8 = 3;
/// UNWIND_INFO flag: the entry ends with the RUNTIME_FUNCTION of the function it continues.
pub const UNW_FLAG_CHAININFO: u8 = 4;

/// One prolog instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `push reg` (UWOP_PUSH_NONVOL).
    Push(u8),
    /// `sub rsp, n` (UWOP_ALLOC_SMALL up to 128 bytes, else UWOP_ALLOC_LARGE).
    Alloc(u32),
    /// `lea reg, [rsp+offset]` or `mov reg, rsp` (UWOP_SET_FPREG): the frame pointer.
    SetFp { reg: u8, offset: u8 },
}

/// A prolog's bytes and its unwind codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prolog {
    pub ops: Vec<Op>,
    pub code: Vec<u8>,
    /// UNWIND_CODE slots in array order (last instruction first).
    pub slots: Vec<u16>,
    /// FrameRegister and FrameOffset (scaled by 16) of the UNWIND_INFO header.
    pub frame: Option<(u8, u8)>,
}

fn slot(code_offset: usize, op: u8, info: u8) -> u16 {
    (code_offset as u16 & 0xff) | (u16::from(op | (info << 4)) << 8)
}

fn rex_w(reg: u8) -> u8 {
    0x48 | if reg >= 8 { 4 } else { 0 }
}

/// The instruction bytes of one prolog op and its unwind-code slots (given the prolog offset
/// just after the instruction).
fn encode(op: Op, end_of: impl Fn(usize) -> usize) -> (Vec<u8>, Vec<u16>) {
    match op {
        Op::Push(r) => {
            let code = if r >= 8 {
                vec![0x41, 0x50 + (r - 8)]
            } else {
                vec![0x50 + r]
            };
            let end = end_of(code.len());
            (code, vec![slot(end, UWOP_PUSH_NONVOL, r)])
        }
        Op::Alloc(n) => {
            let code = if n < 0x80 {
                vec![0x48, 0x83, 0xec, n as u8]
            } else {
                let mut c = vec![0x48, 0x81, 0xec];
                c.extend_from_slice(&n.to_le_bytes());
                c
            };
            let end = end_of(code.len());
            let slots = if n <= 128 {
                vec![slot(end, UWOP_ALLOC_SMALL, ((n - 8) / 8) as u8)]
            } else if n <= 0x7fff8 {
                vec![slot(end, UWOP_ALLOC_LARGE, 0), (n / 8) as u16]
            } else {
                vec![slot(end, UWOP_ALLOC_LARGE, 1), n as u16, (n >> 16) as u16]
            };
            (code, slots)
        }
        Op::SetFp { reg, offset } => {
            let r = (reg & 7) << 3;
            let code = if offset == 0 {
                vec![rex_w(reg), 0x8b, 0xc4 | r]
            } else {
                vec![rex_w(reg), 0x8d, 0x44 | r, 0x24, offset]
            };
            let end = end_of(code.len());
            (code, vec![slot(end, UWOP_SET_FPREG, 0)])
        }
    }
}

impl Prolog {
    /// Assembles `ops` (SET_FPREG offsets must be multiples of 16 below 128).
    pub fn new(ops: &[Op]) -> Prolog {
        let mut code = Vec::new();
        let mut slots = Vec::new();
        let mut frame = None;
        for &op in ops {
            let at = code.len();
            let (bytes, op_slots) = encode(op, |len| at + len);
            code.extend_from_slice(&bytes);
            // Codes are listed last instruction first; a code's own extra slots follow it.
            let mut s = op_slots;
            s.append(&mut slots);
            slots = s;
            if let Op::SetFp { reg, offset } = op {
                frame = Some((reg, offset / 16));
            }
        }
        Prolog {
            ops: ops.to_vec(),
            code,
            slots,
            frame,
        }
    }

    /// The UNWIND_INFO bytes; `chain` (a RUNTIME_FUNCTION: begin, end, unwind-info RVAs) makes
    /// it a chained entry continuing that function.
    pub fn unwind_info(&self, chain: Option<[u32; 3]>) -> Vec<u8> {
        let flags = if chain.is_some() {
            UNW_FLAG_CHAININFO
        } else {
            0
        };
        let (fr, fo) = self.frame.unwrap_or((0, 0));
        let mut out = vec![
            1 | (flags << 3),
            self.code.len() as u8,
            self.slots.len() as u8,
            fr | (fo << 4),
        ];
        for s in &self.slots {
            out.extend_from_slice(&s.to_le_bytes());
        }
        if self.slots.len() % 2 == 1 {
            out.extend_from_slice(&[0, 0]);
        }
        if let Some(rf) = chain {
            for v in rf {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Plays the prolog on a stack whose `rsp` (at entry, pointing at the return address) is
    /// given: the values pushed (from `regs`, indexed by register number) go to `writes`, the
    /// frame register is set in `regs`. Returns rsp after the prolog.
    pub fn run(&self, mut rsp: u64, regs: &mut [u64; 16], writes: &mut Vec<(u64, u64)>) -> u64 {
        for op in &self.ops {
            match *op {
                Op::Push(r) => {
                    rsp -= 8;
                    writes.push((rsp, regs[usize::from(r)]));
                }
                Op::Alloc(n) => rsp -= u64::from(n),
                Op::SetFp { reg, offset } => regs[usize::from(reg)] = rsp + u64::from(offset),
            }
        }
        rsp
    }
}

/// A RUNTIME_FUNCTION (BeginAddress, EndAddress, UnwindInfoAddress: RVAs) as `.pdata` holds it.
pub fn runtime_function(entry: [u32; 3]) -> [u8; 12] {
    let mut b = [0u8; 12];
    for (i, v) in entry.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `push rbp; push rdi; sub rsp,1a8h; lea rbp,[rsp+80h]`... with the offset below 128:
    /// the bytes MSVC emits and the codes in reverse order, ALLOC_LARGE taking two slots.
    #[test]
    fn frame_pointer_prolog() {
        let p = Prolog::new(&[
            Op::Push(reg::RBP),
            Op::Push(reg::RDI),
            Op::Alloc(0x1a8),
            Op::SetFp {
                reg: reg::RBP,
                offset: 0x70,
            },
        ]);
        assert_eq!(
            p.code,
            [0x55, 0x57, 0x48, 0x81, 0xec, 0xa8, 0x01, 0, 0, 0x48, 0x8d, 0x6c, 0x24, 0x70]
        );
        // SET_FPREG at 14, ALLOC_LARGE at 9 (+ 0x1a8/8), PUSH rdi at 2, PUSH rbp at 1.
        assert_eq!(p.slots, [0x030e, 0x0109, 0x35, 0x7002, 0x5001]);
        let info = p.unwind_info(None);
        assert_eq!(&info[..4], &[1, 14, 5, 0x75]);
        assert_eq!(info.len(), 4 + 6 * 2);
    }

    #[test]
    fn small_alloc_and_chain() {
        let p = Prolog::new(&[Op::Push(reg::R14), Op::Alloc(8)]);
        assert_eq!(p.code, [0x41, 0x56, 0x48, 0x83, 0xec, 0x08]);
        assert_eq!(p.slots, [0x0206, 0xe002]);
        let info = p.unwind_info(Some([0x3000, 0x3040, 0x9200]));
        assert_eq!(info[0], 1 | (UNW_FLAG_CHAININFO << 3));
        assert_eq!(&info[8..12], &0x3000u32.to_le_bytes());
        let mut regs = [0u64; 16];
        regs[14] = 0xabc;
        let mut w = Vec::new();
        assert_eq!(p.run(0x1000, &mut regs, &mut w), 0x1000 - 16);
        assert_eq!(w, [(0xff8, 0xabc)]);
    }
}
