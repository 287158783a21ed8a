//! Epilogue recognition: an instruction pointer inside an epilogue has already undone part of
//! the prolog, so the unwind codes must not be applied again. Microsoft's x64 conventions
//! allow an epilogue only in one form, which is what makes it recognisable from the code:
//! `add rsp, imm` or `lea rsp, [frame register + disp]`, then `pop` of non-volatile registers,
//! then `ret` (or a `jmp` out of the function, a tail call). RtlVirtualUnwind decides the same
//! way; the code is read from the image at the instruction pointer.

use super::context::{Registers, RSP};
use super::image::ImageRead;
use super::pdata::RuntimeFunction;
use super::UnwindError;
use crate::memory::VirtualMemory;

/// Longest epilogue read: an add/lea (8), eight pops (16) and a jmp (7) fit.
const MAX_EPILOG: usize = 48;

/// One recognised step of an epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// rsp += n
    AddRsp(i64),
    /// rsp = reg + disp
    LeaRsp {
        reg: usize,
        disp: i64,
    },
    Pop(usize),
    /// Return (or tail jump), popping `extra` more bytes.
    Ret {
        extra: u64,
    },
}

/// Decodes `code` as the rest of an epilogue; `None` when it is not one.
fn decode(code: &[u8], at_rva: u32, function: RuntimeFunction) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut i = 0usize;
    let b = |i: usize| code.get(i).copied();
    // add rsp, imm8 / imm32; lea rsp, [reg + disp8/disp32].
    match (b(0)?, b(1)?, b(2)?) {
        (0x48, 0x83, 0xC4) => {
            steps.push(Step::AddRsp(i64::from(b(3)? as i8)));
            i = 4;
        }
        (0x48, 0x81, 0xC4) => {
            let v = i32::from_le_bytes(code.get(3..7)?.try_into().ok()?);
            steps.push(Step::AddRsp(i64::from(v)));
            i = 7;
        }
        (rex @ (0x48 | 0x49), 0x8D, modrm) if (modrm >> 3) & 7 == 4 && modrm & 7 != 4 => {
            let reg = usize::from(modrm & 7) + if rex == 0x49 { 8 } else { 0 };
            let (disp, len) = match modrm >> 6 {
                1 => (i64::from(b(3)? as i8), 4),
                2 => (
                    i64::from(i32::from_le_bytes(code.get(3..7)?.try_into().ok()?)),
                    7,
                ),
                _ => return None,
            };
            steps.push(Step::LeaRsp { reg, disp });
            i = len;
        }
        _ => {}
    }
    loop {
        match (b(i)?, b(i + 1)) {
            (p @ 0x58..=0x5F, _) => {
                steps.push(Step::Pop(usize::from(p - 0x58)));
                i += 1;
            }
            (0x41, Some(p @ 0x58..=0x5F)) => {
                steps.push(Step::Pop(usize::from(p - 0x58) + 8));
                i += 2;
            }
            (0xC3, _) | (0xF3, Some(0xC3)) => {
                steps.push(Step::Ret { extra: 0 });
                return Some(steps);
            }
            (0xC2, _) => {
                let n = u16::from_le_bytes(code.get(i + 1..i + 3)?.try_into().ok()?);
                steps.push(Step::Ret {
                    extra: u64::from(n),
                });
                return Some(steps);
            }
            (0xE9 | 0xEB, _) => {
                let (rel, len) = if b(i)? == 0xEB {
                    (i64::from(b(i + 1)? as i8), 2)
                } else {
                    (
                        i64::from(i32::from_le_bytes(code.get(i + 1..i + 5)?.try_into().ok()?)),
                        5,
                    )
                };
                let target = i64::from(at_rva) + (i + len) as i64 + rel;
                // A jump inside the function is ordinary control flow, not a tail call.
                let inside =
                    target >= i64::from(function.begin) && target < i64::from(function.end);
                return (!inside).then(|| {
                    steps.push(Step::Ret { extra: 0 });
                    steps
                });
            }
            (0xFF, Some(0x25)) | (0x48, Some(0xFF)) => {
                if b(i)? == 0x48 && b(i + 2)? != 0x25 {
                    return None;
                }
                steps.push(Step::Ret { extra: 0 });
                return Some(steps);
            }
            _ => return None,
        }
    }
}

/// Reads as much code as the image holds at `rva`, up to [`MAX_EPILOG`] bytes.
fn read_code(image: &mut dyn ImageRead, rva: u32) -> Vec<u8> {
    for len in [MAX_EPILOG, 16, 8, 4, 1] {
        let mut b = vec![0u8; len];
        if image.read_rva(rva, &mut b).is_ok() {
            return b;
        }
    }
    Vec::new()
}

/// When the instruction pointer is in an epilogue of `function`, finishes the epilogue in
/// `regs` (the caller's state) and returns `Some`; `None` when it is not in one.
pub fn emulate(
    image: &mut dyn ImageRead,
    base: u64,
    function: RuntimeFunction,
    regs: &mut Registers,
    stack: &dyn VirtualMemory,
) -> Result<Option<()>, UnwindError> {
    let rva = regs.ip.wrapping_sub(base) as u32;
    let code = read_code(image, rva);
    let Some(steps) = decode(&code, rva, function) else {
        return Ok(None);
    };
    let read = |va: u64| {
        stack.read_u64(va).map_err(|_| UnwindError::Missing {
            what: "stack",
            address: va,
        })
    };
    for s in steps {
        let sp = regs.sp();
        match s {
            Step::AddRsp(n) => regs.gpr[RSP] = sp.wrapping_add_signed(n),
            Step::LeaRsp { reg, disp } => regs.gpr[RSP] = regs.gpr[reg].wrapping_add_signed(disp),
            Step::Pop(r) => {
                regs.gpr[r] = read(sp)?;
                regs.gpr[RSP] = sp.wrapping_add(8);
            }
            Step::Ret { extra } => {
                regs.ip = read(sp)?;
                regs.gpr[RSP] = sp.wrapping_add(8).wrapping_add(extra);
            }
        }
    }
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: RuntimeFunction = RuntimeFunction {
        begin: 0x1000,
        end: 0x1100,
        unwind: 0,
    };

    #[test]
    fn recognises_the_allowed_forms() {
        // add rsp, 28h; pop rbx; pop r12; ret
        let s = decode(&[0x48, 0x83, 0xC4, 0x28, 0x5B, 0x41, 0x5C, 0xC3], 0x1050, F).unwrap();
        assert_eq!(
            s,
            vec![
                Step::AddRsp(0x28),
                Step::Pop(3),
                Step::Pop(12),
                Step::Ret { extra: 0 }
            ]
        );
        // lea rsp, [rbp+20h]; pop rbp; ret
        let s = decode(&[0x48, 0x8D, 0x65, 0x20, 0x5D, 0xC3], 0x1050, F).unwrap();
        assert_eq!(s[0], Step::LeaRsp { reg: 5, disp: 0x20 });
        // A tail jump out of the function is an epilogue; a jump inside it is not.
        assert!(decode(&[0x5B, 0xE9, 0x00, 0x10, 0x00, 0x00], 0x1050, F).is_some());
        assert!(decode(&[0x5B, 0xEB, 0x10], 0x1050, F).is_none());
        // Ordinary body code.
        assert!(decode(&[0x48, 0x8B, 0xC1, 0xC3], 0x1050, F).is_none());
        assert!(decode(&[0x48, 0x83], 0x1050, F).is_none(), "cut short");
        assert!(decode(&[], 0x1050, F).is_none());
    }
}
