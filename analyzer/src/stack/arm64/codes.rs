//! ARM64 unwind codes: the byte-coded operations of an `.xdata` record (Microsoft's "ARM64
//! exception handling", table "Unwind codes"). Each code stands for one prolog or epilog
//! instruction, except the custom-stack codes (0xE8..0xEC), which stand for none; multi-byte
//! codes store their most significant bits first, so the first byte gives the length.
//!
//! Offsets are kept in bytes. A `_x` form saves with a pre-decrement of `offset` bytes
//! (`stp x19, x20, [sp, #-offset]!`); the plain form stores at `[sp + offset]`.

/// Which register file a save touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegClass {
    /// x0..x30 (x29 is fp, x30 is lr).
    X,
    /// d0..d31, the low 64 bits of v0..v31.
    D,
    /// q0..q31, all 128 bits.
    Q,
}

/// One decoded unwind code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `sub sp, sp, #size`: alloc_s (< 512), alloc_m (< 32 KiB), alloc_l (< 256 MiB).
    Alloc {
        size: u32,
    },
    /// save_r19r20_x: `stp x19, x20, [sp, #-offset]!`.
    SaveR19R20X {
        offset: u32,
    },
    /// save_fplr: `stp x29, lr, [sp, #offset]`.
    SaveFplr {
        offset: u32,
    },
    /// save_fplr_x: `stp x29, lr, [sp, #-offset]!`.
    SaveFplrX {
        offset: u32,
    },
    /// save_regp / save_regp_x: a pair from x`reg`.
    SaveRegp {
        reg: u8,
        offset: u32,
        pre: bool,
    },
    /// save_reg / save_reg_x: x`reg` alone.
    SaveReg {
        reg: u8,
        offset: u32,
        pre: bool,
    },
    /// save_lrpair: `stp x{reg}, lr, [sp, #offset]`.
    SaveLrpair {
        reg: u8,
        offset: u32,
    },
    /// save_fregp / save_fregp_x: a pair from d`reg`.
    SaveFregp {
        reg: u8,
        offset: u32,
        pre: bool,
    },
    /// save_freg / save_freg_x: d`reg` alone.
    SaveFreg {
        reg: u8,
        offset: u32,
        pre: bool,
    },
    /// save_any_reg (0xE7): any register or pair of any class; `pre` with write-back.
    SaveAnyReg {
        class: RegClass,
        reg: u8,
        pair: bool,
        pre: bool,
        offset: u32,
    },
    /// set_fp: `mov x29, sp`.
    SetFp,
    /// add_fp: `add x29, sp, #offset`.
    AddFp {
        offset: u32,
    },
    Nop,
    /// end: the end of the sequence (in an epilog, the `ret`).
    End,
    /// end_c: the end of this chained scope; unwinding continues with the codes after it.
    EndC,
    /// save_next: the next save (in unwind order) covers one more register pair.
    SaveNext,
    /// MSFT_OP_TRAP_FRAME: a KTRAP_FRAME is at sp.
    TrapFrame,
    /// MSFT_OP_MACHINE_FRAME: {sp, pc} of the interrupted code are at sp.
    MachineFrame,
    /// MSFT_OP_CONTEXT: an ARM64 CONTEXT is at sp.
    Context,
    /// MSFT_OP_EC_CONTEXT: an ARM64EC CONTEXT (the x64 layout) is at sp.
    EcContext,
    /// MSFT_OP_CLEAR_UNWOUND_TO_CALL: the caller's pc is lr, but not a return address.
    ClearUnwoundToCall,
    /// pac_sign_lr: the prolog signed lr with `pacibsp`.
    PacSignLr,
    /// 0xF8..0xFB (with 1..4 operand bytes) and 0xFD..0xFF: reserved encodings that the
    /// specification lets unwinders treat as a one-instruction no-op.
    Reserved,
}

/// Why a code could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeError {
    /// The code's operand bytes are past the end of the code array.
    Truncated,
    /// An encoding the specification leaves undefined (or a form this reader cannot undo).
    Unknown(&'static str),
}

impl CodeError {
    pub fn reason(self) -> &'static str {
        match self {
            CodeError::Truncated => "an unwind code's operand bytes are past the code array",
            CodeError::Unknown(why) => why,
        }
    }
}

/// The length in bytes of the code starting with `first`.
pub fn code_len(first: u8) -> usize {
    match first {
        0x00..=0xBF => 1,
        0xC0..=0xDF => 2,
        0xE0 => 4,
        0xE2 => 2,
        0xE7 => 3,
        0xF8..=0xFB => usize::from(first - 0xF8) + 2,
        _ => 1,
    }
}

/// How many instructions the code starting with `first` stands for (0 for the custom-stack
/// codes and the encodings reserved around them).
pub fn instruction_count(first: u8) -> u32 {
    match first {
        0xE8..=0xF7 => 0,
        _ => 1,
    }
}

/// Whether `first` ends a sequence (end or end_c).
pub fn is_end(first: u8) -> bool {
    first == 0xE4 || first == 0xE5
}

/// Decodes the code at `codes[at..]`; returns it with its length.
pub fn decode(codes: &[u8], at: usize) -> Result<(Code, usize), CodeError> {
    let b0 = *codes.get(at).ok_or(CodeError::Truncated)?;
    let len = code_len(b0);
    let bytes = at
        .checked_add(len)
        .and_then(|end| codes.get(at..end))
        .ok_or(CodeError::Truncated)?;
    let b1 = bytes.get(1).copied().unwrap_or(0);
    let z6 = u32::from(b1 & 0x3F);
    let z5 = u32::from(b1 & 0x1F);
    // The 4-bit register field split over both bytes (110xxxxx|xxzzzzzz forms).
    let x4 = ((b0 & 3) << 2) | (b1 >> 6);
    let x3 = ((b0 & 1) << 2) | (b1 >> 6);
    let code = match b0 {
        0x00..=0x1F => Code::Alloc {
            size: 16 * u32::from(b0 & 0x1F),
        },
        0x20..=0x3F => Code::SaveR19R20X {
            offset: 8 * u32::from(b0 & 0x1F),
        },
        0x40..=0x7F => Code::SaveFplr {
            offset: 8 * u32::from(b0 & 0x3F),
        },
        0x80..=0xBF => Code::SaveFplrX {
            offset: 8 * (u32::from(b0 & 0x3F) + 1),
        },
        0xC0..=0xC7 => Code::Alloc {
            size: 16 * (u32::from(b0 & 7) << 8 | u32::from(b1)),
        },
        0xC8..=0xCB => Code::SaveRegp {
            reg: 19 + x4,
            offset: 8 * z6,
            pre: false,
        },
        0xCC..=0xCF => Code::SaveRegp {
            reg: 19 + x4,
            offset: 8 * (z6 + 1),
            pre: true,
        },
        0xD0..=0xD3 => Code::SaveReg {
            reg: 19 + x4,
            offset: 8 * z6,
            pre: false,
        },
        0xD4 | 0xD5 => Code::SaveReg {
            reg: 19 + (((b0 & 1) << 3) | (b1 >> 5)),
            offset: 8 * (z5 + 1),
            pre: true,
        },
        0xD6 | 0xD7 => Code::SaveLrpair {
            reg: 19 + 2 * x3,
            offset: 8 * z6,
        },
        0xD8 | 0xD9 => Code::SaveFregp {
            reg: 8 + x3,
            offset: 8 * z6,
            pre: false,
        },
        0xDA | 0xDB => Code::SaveFregp {
            reg: 8 + x3,
            offset: 8 * (z6 + 1),
            pre: true,
        },
        0xDC | 0xDD => Code::SaveFreg {
            reg: 8 + x3,
            offset: 8 * z6,
            pre: false,
        },
        0xDE => Code::SaveFreg {
            reg: 8 + (b1 >> 5),
            offset: 8 * (z5 + 1),
            pre: true,
        },
        0xDF => return Err(CodeError::Unknown(
            "alloc_z (an SVE allocation) scales by the vector length, which a dump does not record",
        )),
        0xE0 => Code::Alloc {
            size: 16 * (u32::from(b1) << 16 | u32::from(bytes[2]) << 8 | u32::from(bytes[3])),
        },
        0xE1 => Code::SetFp,
        0xE2 => Code::AddFp {
            offset: 8 * u32::from(b1),
        },
        0xE3 => Code::Nop,
        0xE4 => Code::End,
        0xE5 => Code::EndC,
        0xE6 => Code::SaveNext,
        0xE7 => save_any_reg(b1, bytes[2])?,
        0xE8 => Code::TrapFrame,
        0xE9 => Code::MachineFrame,
        0xEA => Code::Context,
        0xEB => Code::EcContext,
        0xEC => Code::ClearUnwoundToCall,
        0xFC => Code::PacSignLr,
        0xF8..=0xFB | 0xFD..=0xFF => Code::Reserved,
        0xED..=0xF7 => return Err(CodeError::Unknown("reserved unwind code")),
    };
    Ok((code, len))
}

/// save_any_reg: `11100111 | 0pxrrrrr | ffoooooo` (p pair, x pre-decrement with write-back,
/// ff X/D/Q). The offset is scaled by 16 for pairs, write-back and Q registers, else by 8;
/// with write-back the stored field is one less than the slot count.
fn save_any_reg(b1: u8, b2: u8) -> Result<Code, CodeError> {
    if b1 & 0x80 != 0 {
        return Err(CodeError::Unknown("save_any_reg with its reserved bit set"));
    }
    let (pair, pre, reg) = (b1 & 0x40 != 0, b1 & 0x20 != 0, b1 & 0x1F);
    let class = match b2 >> 6 {
        0 => RegClass::X,
        1 => RegClass::D,
        2 => RegClass::Q,
        _ => {
            return Err(CodeError::Unknown(
                "save_any_reg of a register class this reader does not know",
            ))
        }
    };
    let scale = if pre || pair || class == RegClass::Q {
        16
    } else {
        8
    };
    Ok(Code::SaveAnyReg {
        class,
        reg,
        pair,
        pre,
        offset: scale * (u32::from(b2 & 0x3F) + u32::from(pre)),
    })
}

/// Encodes `code` (the forms the packed format expands to, and what tests build); `None`
/// for an operand the encoding cannot hold.
pub fn encode(code: Code) -> Option<Vec<u8>> {
    let slots = |offset: u32, max: u32| {
        let s = offset.is_multiple_of(8).then_some(offset / 8)?;
        (s <= max).then_some(s)
    };
    let pre_slots = |offset: u32, max: u32| {
        let s = offset
            .is_multiple_of(8)
            .then_some(offset / 8)?
            .checked_sub(1)?;
        (s <= max).then_some(s)
    };
    let rx = |reg: u8, max: u8| reg.checked_sub(19).filter(|r| *r <= max);
    let rd = |reg: u8| reg.checked_sub(8).filter(|r| *r <= 7);
    let two = |op: u32, x: u8, z: u32| {
        let v = op | u32::from(x) << 6 | z;
        vec![(v >> 8) as u8, v as u8]
    };
    Some(match code {
        Code::Alloc { size } if !size.is_multiple_of(16) => return None,
        Code::Alloc { size } if size < 512 => vec![(size / 16) as u8],
        Code::Alloc { size } if size < 16 * 2048 => two(0xC000, 0, size / 16),
        Code::Alloc { size } if size < 16 << 24 => {
            let v = size / 16;
            vec![0xE0, (v >> 16) as u8, (v >> 8) as u8, v as u8]
        }
        Code::Alloc { .. } => return None,
        Code::SaveR19R20X { offset } => vec![0x20 | slots(offset, 31)? as u8],
        Code::SaveFplr { offset } => vec![0x40 | slots(offset, 63)? as u8],
        Code::SaveFplrX { offset } => vec![0x80 | pre_slots(offset, 63)? as u8],
        Code::SaveRegp { reg, offset, pre } => {
            let z = if pre {
                pre_slots(offset, 63)?
            } else {
                slots(offset, 63)?
            };
            two(if pre { 0xCC00 } else { 0xC800 }, rx(reg, 15)?, z)
        }
        Code::SaveReg {
            reg,
            offset,
            pre: false,
        } => two(0xD000, rx(reg, 15)?, slots(offset, 63)?),
        Code::SaveReg {
            reg,
            offset,
            pre: true,
        } => {
            let v = 0xD400 | u32::from(rx(reg, 15)?) << 5 | pre_slots(offset, 31)?;
            vec![(v >> 8) as u8, v as u8]
        }
        Code::SaveLrpair { reg, offset } => {
            let x = rx(reg, 14)?;
            x.is_multiple_of(2).then_some(())?;
            two(0xD600, x / 2, slots(offset, 63)?)
        }
        Code::SaveFregp { reg, offset, pre } => {
            let z = if pre {
                pre_slots(offset, 63)?
            } else {
                slots(offset, 63)?
            };
            two(if pre { 0xDA00 } else { 0xD800 }, rd(reg)?, z)
        }
        Code::SaveFreg {
            reg,
            offset,
            pre: false,
        } => two(0xDC00, rd(reg)?, slots(offset, 63)?),
        Code::SaveFreg {
            reg,
            offset,
            pre: true,
        } => {
            vec![0xDE, rd(reg)? << 5 | pre_slots(offset, 31)? as u8]
        }
        Code::SetFp => vec![0xE1],
        Code::AddFp { offset } => vec![0xE2, slots(offset, 255)? as u8],
        Code::Nop => vec![0xE3],
        Code::End => vec![0xE4],
        Code::EndC => vec![0xE5],
        Code::SaveNext => vec![0xE6],
        Code::TrapFrame => vec![0xE8],
        Code::MachineFrame => vec![0xE9],
        Code::Context => vec![0xEA],
        Code::EcContext => vec![0xEB],
        Code::ClearUnwoundToCall => vec![0xEC],
        Code::PacSignLr => vec![0xFC],
        Code::SaveAnyReg { .. } | Code::Reserved => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Code {
        let (c, len) = decode(bytes, 0).unwrap();
        assert_eq!(len, bytes.len(), "{bytes:02x?}");
        c
    }

    /// The encodings of the specification's table, one example each (values worked out by
    /// hand from the bit layouts).
    #[test]
    fn every_documented_code() {
        assert_eq!(one(&[0x02]), Code::Alloc { size: 32 });
        assert_eq!(one(&[0x24]), Code::SaveR19R20X { offset: 32 });
        assert_eq!(one(&[0x42]), Code::SaveFplr { offset: 16 });
        assert_eq!(one(&[0x81]), Code::SaveFplrX { offset: 16 });
        assert_eq!(one(&[0xC1, 0x00]), Code::Alloc { size: 4096 });
        // 110010xx|xxzzzzzz with X = 2 (x21), Z = 2.
        let regp = Code::SaveRegp {
            reg: 21,
            offset: 16,
            pre: false,
        };
        assert_eq!(one(&[0xC8, 0x82]), regp);
        let regp_x = Code::SaveRegp {
            reg: 19,
            offset: 48,
            pre: true,
        };
        assert_eq!(one(&[0xCC, 0x05]), regp_x);
        // X = 9 (x28) spans both bytes.
        let reg = Code::SaveReg {
            reg: 28,
            offset: 8,
            pre: false,
        };
        assert_eq!(one(&[0xD2, 0x41]), reg);
        // 1101010x|xxxzzzzz: X = 0b0001 (x20), Z = 1 -> 16 bytes.
        let reg_x = Code::SaveReg {
            reg: 20,
            offset: 16,
            pre: true,
        };
        assert_eq!(one(&[0xD4, 0x21]), reg_x);
        assert_eq!(
            one(&[0xD6, 0x42]),
            Code::SaveLrpair {
                reg: 21,
                offset: 16
            }
        );
        let fregp = Code::SaveFregp {
            reg: 10,
            offset: 32,
            pre: false,
        };
        assert_eq!(one(&[0xD8, 0x84]), fregp);
        let fregp_x = Code::SaveFregp {
            reg: 8,
            offset: 64,
            pre: true,
        };
        assert_eq!(one(&[0xDA, 0x07]), fregp_x);
        let freg = Code::SaveFreg {
            reg: 15,
            offset: 8,
            pre: false,
        };
        assert_eq!(one(&[0xDD, 0xC1]), freg);
        let freg_x = Code::SaveFreg {
            reg: 9,
            offset: 16,
            pre: true,
        };
        assert_eq!(one(&[0xDE, 0x21]), freg_x);
        assert_eq!(
            one(&[0xE0, 0x01, 0x00, 0x00]),
            Code::Alloc { size: 1 << 20 }
        );
        assert_eq!(one(&[0xE1]), Code::SetFp);
        assert_eq!(one(&[0xE2, 0x04]), Code::AddFp { offset: 32 });
        assert_eq!(one(&[0xE3]), Code::Nop);
        assert_eq!(one(&[0xE4]), Code::End);
        assert_eq!(one(&[0xE5]), Code::EndC);
        assert_eq!(one(&[0xE6]), Code::SaveNext);
        // save_any_reg: pair of q8 with write-back, field 1 -> (1 + 1) * 16.
        let any = Code::SaveAnyReg {
            class: RegClass::Q,
            reg: 8,
            pair: true,
            pre: true,
            offset: 32,
        };
        assert_eq!(one(&[0xE7, 0x68, 0x81]), any);
        for (b, c) in [
            (0xE8, Code::TrapFrame),
            (0xE9, Code::MachineFrame),
            (0xEA, Code::Context),
            (0xEB, Code::EcContext),
            (0xEC, Code::ClearUnwoundToCall),
            (0xFC, Code::PacSignLr),
        ] {
            assert_eq!(one(&[b]), c);
        }
        assert_eq!(one(&[0xFA, 1, 2, 3]), Code::Reserved);
        assert!(decode(&[0xF0], 0).is_err());
        assert!(decode(&[0xDF, 0], 0).is_err());
        assert_eq!(decode(&[0xE0, 1, 2], 0), Err(CodeError::Truncated));
        assert!(decode(&[0xE7, 0x80, 0], 0).is_err());
    }

    #[test]
    fn encode_inverts_decode() {
        let codes = [
            Code::Alloc { size: 496 },
            Code::Alloc { size: 512 },
            Code::Alloc { size: 16 * 2047 },
            Code::Alloc { size: 16 * 2048 },
            Code::SaveR19R20X { offset: 248 },
            Code::SaveFplr { offset: 504 },
            Code::SaveFplrX { offset: 512 },
            Code::SaveRegp {
                reg: 27,
                offset: 64,
                pre: false,
            },
            Code::SaveRegp {
                reg: 19,
                offset: 512,
                pre: true,
            },
            Code::SaveReg {
                reg: 30,
                offset: 256,
                pre: true,
            },
            Code::SaveLrpair { reg: 27, offset: 0 },
            Code::SaveFreg {
                reg: 15,
                offset: 256,
                pre: true,
            },
            Code::AddFp { offset: 2040 },
        ];
        for c in codes {
            let b = encode(c).unwrap_or_else(|| panic!("{c:?}"));
            assert_eq!(decode(&b, 0), Ok((c, b.len())), "{c:?} {b:02x?}");
        }
        assert_eq!(encode(Code::Alloc { size: 8 }), None);
        assert_eq!(encode(Code::SaveLrpair { reg: 20, offset: 0 }), None);
    }

    /// Every byte pattern decodes to a code or an error; lengths agree with `code_len`.
    #[test]
    fn any_bytes_decode_without_panic() {
        for b0 in 0..=255u8 {
            for b1 in [0u8, 0x5A, 0xFF] {
                let bytes = [b0, b1, b1, b1, b1];
                if let Ok((_, len)) = decode(&bytes, 0) {
                    assert_eq!(len, code_len(b0));
                }
                let _ = decode(&bytes[..1], 0);
            }
        }
    }
}
