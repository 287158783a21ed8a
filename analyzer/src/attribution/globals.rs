//! The driver's "default nonpaged pool type" global. wdm.h's POOL_NX_OPTIN makes
//! `ExDefaultNonPagedPoolType` a global of the driver itself (DECLSPEC_SELECTANY, initialised to
//! NonPagedPoolExecute), which the inline ExInitializeDriverRuntime sets to NonPagedPoolNx on
//! Windows 8 and later; drivers without symbols show the same pattern with their own global
//! (usbnet.sys: `mov [g], 0` / `mov [g], 0x200`, then `mov ecx, [g]` before each allocation).
//! The code loads it directly (`mov ecx, [rip+g]`), not through an import slot.
//!
//! A pool type read from a global `g` counts as nonpaged only when the module proves it:
//! every instruction of its code that writes `g` is a plain 32-bit `mov` of a known nonpaged
//! POOL_TYPE constant (at least one such write), no instruction takes `g`'s address (`lea`, or
//! an immediate equal to it), and the value the image holds at `g` is a nonpaged POOL_TYPE too.
//! That value is the initial one when scanning a file, the current one in a dump.

use super::allocators::pool_type_paged;
use super::dataflow::{Effect, GlobalWrite};
use super::scan::CodeRegion;
use iced_x86::{Instruction, OpKind};
use std::collections::HashSet;

/// Most global writes and taken addresses remembered; past that nothing is proven.
const MAX_FACTS: usize = 1 << 20;
/// How far outside the code a global (or a taken address) may be.
const DATA_REACH: u64 = 16 << 20;

/// What the module's code does to fixed addresses.
#[derive(Debug, Default)]
pub struct GlobalFacts {
    writes: Vec<GlobalWrite>,
    taken: HashSet<u64>,
    /// The address range a global of this image can be in.
    range: (u64, u64),
    overflow: bool,
}

impl GlobalFacts {
    pub fn new(regions: &[CodeRegion]) -> GlobalFacts {
        let lo = regions.iter().map(|r| r.address).min().unwrap_or(0);
        let hi = regions
            .iter()
            .map(|r| r.address.saturating_add(r.bytes.len() as u64))
            .max()
            .unwrap_or(0);
        GlobalFacts {
            range: (lo.saturating_sub(DATA_REACH), hi.saturating_add(DATA_REACH)),
            ..Default::default()
        }
    }

    fn in_range(&self, a: u64) -> bool {
        (self.range.0..self.range.1).contains(&a)
    }

    /// Records an instruction's effect on globals.
    pub fn note(&mut self, e: Effect) {
        match e {
            Effect::GlobalWrite(w) if self.in_range(w.addr) => {
                if self.writes.len() < MAX_FACTS {
                    self.writes.push(w);
                } else {
                    self.overflow = true;
                }
            }
            Effect::AddressTaken(a) => self.take(a),
            _ => {}
        }
    }

    fn take(&mut self, a: u64) {
        if !self.in_range(a) {
            return;
        }
        if self.taken.len() < MAX_FACTS {
            self.taken.insert(a);
        } else {
            self.overflow = true;
        }
    }

    /// Immediates that may be addresses (x86 `push offset g`, `mov eax, offset g`).
    pub fn note_immediates(&mut self, ins: &Instruction) {
        for i in 0..ins.op_count() {
            if matches!(
                ins.op_kind(i),
                OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64
            ) {
                self.take(ins.immediate(i));
            }
        }
    }

    /// Whether the 32-bit global at `g` only ever holds nonpaged pool types (see the module
    /// doc); `read_u32` reads the image.
    pub fn is_default_nonpaged(&self, g: u64, read_u32: &dyn Fn(u64) -> Option<u32>) -> bool {
        if self.overflow || self.taken.contains(&g) {
            return false;
        }
        let overlapping = self
            .writes
            .iter()
            .filter(|w| w.addr < g + 4 && g < w.addr + u64::from(w.width));
        let mut any = false;
        for w in overlapping {
            let nonpaged = w.addr == g
                && w.width == 4
                && w.value.is_some_and(|v| pool_type_paged(v) == Some(false));
            if !nonpaged {
                return false;
            }
            any = true;
        }
        any && read_u32(g).is_some_and(|v| pool_type_paged(u64::from(v)) == Some(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(writes: &[(u64, u8, Option<u64>)]) -> GlobalFacts {
        let mut f = GlobalFacts::new(&[CodeRegion {
            address: 0x1000,
            bytes: vec![0; 0x1000],
        }]);
        for &(addr, width, value) in writes {
            f.note(Effect::GlobalWrite(GlobalWrite { addr, width, value }));
        }
        f
    }

    #[test]
    fn a_global_written_only_with_nonpaged_types_is_the_default_type() {
        let zero = |_| Some(0);
        let f = facts(&[
            (0x3000, 4, Some(0x200)),
            (0x3000, 4, Some(0)),
            (0x3004, 4, None),
        ]);
        assert!(f.is_default_nonpaged(0x3000, &zero));
        // Its value in the image must be nonpaged too, and readable.
        assert!(!f.is_default_nonpaged(0x3000, &|_| Some(1)));
        assert!(!f.is_default_nonpaged(0x3000, &|_| None));
        // Never written: not proven to be a pool type variable.
        assert!(!f.is_default_nonpaged(0x3008, &zero));
    }

    #[test]
    fn any_other_write_or_a_taken_address_disproves_it() {
        let zero = |_| Some(0);
        let paged = facts(&[(0x3000, 4, Some(0x200)), (0x3000, 4, Some(1))]);
        assert!(!paged.is_default_nonpaged(0x3000, &zero));
        let unknown = facts(&[(0x3000, 4, Some(0x200)), (0x3000, 4, None)]);
        assert!(!unknown.is_default_nonpaged(0x3000, &zero));
        let partial = facts(&[(0x3000, 4, Some(0x200)), (0x3002, 1, Some(1))]);
        assert!(!partial.is_default_nonpaged(0x3000, &zero));
        let mut taken = facts(&[(0x3000, 4, Some(0x200))]);
        taken.note(Effect::AddressTaken(0x3000));
        assert!(!taken.is_default_nonpaged(0x3000, &zero));
    }
}
