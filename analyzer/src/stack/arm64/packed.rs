//! The packed form (Flag 1 and 2) as the `.xdata` record it abbreviates: the canonical prolog
//! of Microsoft's "Packed unwind data" section, written out as unwind codes so that one
//! interpreter undoes both forms, partial prologs and epilogs included (Windows' own unwinder
//! expands it the same way).
//!
//! The canonical prolog, in execution order: pacibsp (CR 2); the integer saves (x19.. in
//! pairs, the first one pre-decrementing sp by the whole save area, lr with the last odd
//! register or alone for CR 1); the d8.. saves; four stores homing x0..x7 (H, codes `nop`);
//! then the locals: `stp x29, lr, [sp, #-locals]!` or `sub sp` + `stp x29, lr, [sp]`, then
//! `mov x29, sp` for a chained frame (CR 2, 3), a plain `sub sp` otherwise. The one epilog
//! ends the function and mirrors the prolog without `mov x29, sp` and without the homing
//! stores. A fragment (Flag 2) has neither: its codes start with end_c and all apply.

use super::codes::{encode, Code};
use super::pdata::Packed;
use super::xdata::{Epilogs, Xdata};

/// The register save area: the first save allocates it (pre-decrementing sp by its size),
/// the later ones store above that.
struct SaveArea {
    size: u32,
    slot: u32,
    allocated: bool,
}

impl SaveArea {
    /// (offset, pre-decrement) of the next save of `slots` 8-byte registers.
    fn next(&mut self, slots: u32) -> (u32, bool) {
        let at = if self.allocated {
            (8 * self.slot, false)
        } else {
            (self.size, true)
        };
        self.allocated = true;
        self.slot += slots;
        at
    }
}

/// The codes of `p`'s prolog in execution order, where the homing nops are, and whether it
/// ends with `mov x29, sp`.
fn prolog(p: &Packed) -> (Vec<Code>, usize, bool) {
    let reg_i = u32::from(p.reg_i);
    let lr_saved = p.cr == 1;
    let int_slots = reg_i + u32::from(lr_saved);
    let fp_slots = if p.reg_f == 0 {
        0
    } else {
        u32::from(p.reg_f) + 1
    };
    let mut save_slots = int_slots + fp_slots;
    // The homes go into the save area when there is one, else into the locals.
    if save_slots > 0 && p.homes {
        save_slots += 8;
    }
    let save_bytes = 8 * ((save_slots + 1) & !1);
    let locals = p.frame_size.saturating_sub(save_bytes);

    let mut out = Vec::new();
    if p.cr == 2 {
        out.push(Code::PacSignLr);
    }
    let mut area = SaveArea {
        size: save_bytes,
        slot: 0,
        allocated: false,
    };
    if p.reg_i == 1 && lr_saved {
        // No pre-decrementing form of save_lrpair: the area is allocated first.
        out.push(Code::Alloc { size: save_bytes });
        area.allocated = true;
    }
    for i in 0..p.reg_i / 2 {
        let (offset, pre) = area.next(2);
        out.push(Code::SaveRegp {
            reg: 19 + 2 * i,
            offset,
            pre,
        });
    }
    let last = 19 + p.reg_i - 1;
    match (p.reg_i % 2 == 1, lr_saved) {
        (true, true) => {
            let (offset, _) = area.next(2);
            out.push(Code::SaveLrpair { reg: last, offset });
        }
        (false, false) => {}
        (odd, _) => {
            // The odd register alone, or lr alone (CR 1 with an even count).
            let (offset, pre) = area.next(1);
            let reg = if odd { last } else { 30 };
            out.push(Code::SaveReg { reg, offset, pre });
        }
    }
    let fp_count = fp_slots as u8;
    for i in 0..fp_count / 2 {
        let (offset, pre) = area.next(2);
        out.push(Code::SaveFregp {
            reg: 8 + 2 * i,
            offset,
            pre,
        });
    }
    if fp_count % 2 == 1 {
        let (offset, pre) = area.next(1);
        out.push(Code::SaveFreg {
            reg: 8 + fp_count - 1,
            offset,
            pre,
        });
    }
    let homes_at = out.len();
    if p.homes && area.allocated {
        out.extend([Code::Nop; 4]);
    }
    let chained = p.cr >= 2;
    if locals > 0 {
        if chained && locals <= 512 {
            out.push(Code::SaveFplrX { offset: locals });
        } else if chained {
            out.push(Code::Alloc { size: locals });
            out.push(Code::SaveFplr { offset: 0 });
        } else {
            out.push(Code::Alloc { size: locals });
        }
        if chained {
            out.push(Code::SetFp);
        }
    }
    let fp_set = chained && locals > 0;
    (out, homes_at, fp_set)
}

fn bytes(codes: impl Iterator<Item = Code>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for c in codes {
        out.extend(encode(c)?);
    }
    Some(out)
}

/// The `.xdata` record `p` stands for; `None` when a field combination yields an operand no
/// code can hold (hostile words; compilers emit only encodable frames).
pub fn expand(p: &Packed) -> Option<Xdata> {
    let (prolog, homes_at, fp_set) = prolog(p);
    let homes = p.homes && prolog.get(homes_at) == Some(&Code::Nop);
    // Unwind order is the reverse of execution order.
    let mut codes = Vec::new();
    if p.fragment {
        codes.push(0xE5);
    }
    codes.extend(bytes(prolog.iter().rev().copied())?);
    codes.extend(encode(Code::End)?);
    let epilogs = if p.fragment {
        Epilogs::Scopes(Vec::new())
    } else if homes {
        // The epilog does not reload the homes: its own copy of the codes, without them.
        let index = codes.len() as u32 + u32::from(fp_set);
        let without = prolog
            .iter()
            .enumerate()
            .rev()
            .filter(|(i, _)| !(homes_at..homes_at + 4).contains(i))
            .map(|(_, c)| *c);
        codes.extend(bytes(without)?);
        codes.extend(encode(Code::End)?);
        Epilogs::AtEnd { index }
    } else {
        // The same codes, minus `mov x29, sp`, which the epilog does not undo.
        Epilogs::AtEnd {
            index: u32::from(fp_set),
        }
    };
    while !codes.len().is_multiple_of(4) {
        codes.push(0xE3);
    }
    Some(Xdata {
        function_length: p.function_length / 4,
        exception_data: false,
        epilogs,
        codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(reg_f: u8, reg_i: u8, homes: bool, cr: u8, frame_size: u32) -> Packed {
        Packed {
            fragment: false,
            function_length: 0x100,
            reg_f,
            reg_i,
            homes,
            cr,
            frame_size,
        }
    }

    /// The largest packed frame, whose expansion Windows' unwinder documents byte for byte
    /// (RegF 7, RegI 10, H, CR 2, FrameSize 8000): the prolog's codes, then the epilog's,
    /// which lack the four homing nops.
    #[test]
    fn largest_frame_matches_windows_expansion() {
        let x = expand(&packed(7, 10, true, 2, 8000)).unwrap();
        let prolog: [u8; 28] = [
            0xE1, 0x40, 0xC1, 0xE7, 0xE3, 0xE3, 0xE3, 0xE3, 0xD9, 0x90, 0xD9, 0x0E, 0xD8, 0x8C,
            0xD8, 0x0A, 0xCA, 0x08, 0xC9, 0x86, 0xC9, 0x04, 0xC8, 0x82, 0xCC, 0x19, 0xFC, 0xE4,
        ];
        assert_eq!(x.codes[..28], prolog);
        let epilog: Vec<u8> = prolog
            .iter()
            .enumerate()
            .filter(|(i, _)| !(4..8).contains(i))
            .map(|(_, b)| *b)
            .collect();
        assert_eq!(x.codes[28..52], epilog[..]);
        assert_eq!(x.epilogs, Epilogs::AtEnd { index: 29 });
    }

    /// Small frames: x19 + lr (allocated first), an odd register count, lr alone, d8..d10
    /// with the first float save pre-decrementing, locals beyond 512 bytes.
    #[test]
    fn canonical_prologs() {
        let codes = |p: Packed| prolog(&p).0;
        assert_eq!(
            codes(packed(0, 1, false, 1, 32)),
            [
                Code::Alloc { size: 16 },
                Code::SaveLrpair { reg: 19, offset: 0 },
                Code::Alloc { size: 16 },
            ]
        );
        assert_eq!(
            codes(packed(0, 3, false, 0, 32)),
            [
                Code::SaveRegp {
                    reg: 19,
                    offset: 32,
                    pre: true
                },
                Code::SaveReg {
                    reg: 21,
                    offset: 16,
                    pre: false
                },
            ]
        );
        assert_eq!(
            codes(packed(0, 0, false, 1, 16)),
            [Code::SaveReg {
                reg: 30,
                offset: 16,
                pre: true
            }]
        );
        assert_eq!(
            codes(packed(2, 0, false, 3, 48 + 1024)),
            [
                Code::SaveFregp {
                    reg: 8,
                    offset: 32,
                    pre: true
                },
                Code::SaveFreg {
                    reg: 10,
                    offset: 16,
                    pre: false
                },
                Code::Alloc { size: 1040 },
                Code::SaveFplr { offset: 0 },
                Code::SetFp,
            ]
        );
        // Homes with no save area: they are stored in the locals and need no codes.
        let (c, _, fp) = prolog(&packed(0, 0, true, 3, 96));
        assert_eq!(c, [Code::SaveFplrX { offset: 96 }, Code::SetFp]);
        assert!(fp);
    }

    #[test]
    fn fragments_start_with_end_c() {
        let mut p = packed(0, 2, false, 3, 64);
        p.fragment = true;
        let x = expand(&p).unwrap();
        assert_eq!(x.codes[0], 0xE5);
        assert_eq!(x.epilogs, Epilogs::Scopes(Vec::new()));
    }

    /// Every field combination expands without panicking; frames too small for their saves
    /// and odd field values included.
    #[test]
    fn every_field_combination() {
        for reg_f in 0..8 {
            for reg_i in 0..16 {
                for cr in 0..4 {
                    for frame_size in [0, 16, 80, 512, 4096, 8176] {
                        for homes in [false, true] {
                            let _ = expand(&packed(reg_f, reg_i, homes, cr, frame_size));
                        }
                    }
                }
            }
        }
    }
}
