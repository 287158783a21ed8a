//! What a page-table entry whose Valid bit is clear says about the page: Windows keeps its
//! own state in the other bits (`_MMPTE_TRANSITION`, `_MMPTE_SOFTWARE`, `_MMPTE_PROTOTYPE`).
//!
//! Order of the tests (Windows Internals 6th ed. part 2, pp. 268-269, as MemProcFS
//! `vmm/mm_win.c` and Volatility `layers/intel.py` apply it; /work/research/provenance.md §4):
//! Valid; then Prototype (bit 10); then Transition (bit 11: the page is still in RAM, on the
//! standby or modified list, at the PFN of `_MMPTE_TRANSITION.PageFrameNumber`); then a
//! software PTE: `PageFileHigh` non-zero is a page in paging file `PageFileLow` (on Windows
//! 10 possibly the virtual store of memory compression, also counted as paged out); else a
//! `Protection` makes it demand-zero (committed, never touched); else nothing was committed.
//!
//! The bit positions are the kernel's own (`PteFormat::from_profile`), per build: the corpus
//! ISFs put `PageFileLow` at bits 12..15 on 7601, 17763, 19041 and 20348 and at 1..4 on XP
//! PAE. Without a profile the built-in layouts below are those bit positions.
//!
//! Swizzling (the L1TF mitigation, `_MMPTE_SOFTWARE.SwizzleBit`, bit 4): an invalid PTE whose
//! SwizzleBit is clear is stored with the bits of `InvalidPteMask` set (so that a speculative
//! read through it hits no physical memory); the kernel's fault path clears them
//! (`if (Mask && !(Pte & 0x10)) Pte &= ~Mask`, as the icebox nt_os.cpp decoder and MemProcFS's
//! `MMWINX64_PTE_PAGE_FILE_OFFSET` both read it). The mask is `nt!MiInvalidPteMask` on 7601
//! and `MiState.Hardware.InvalidPteMask` on Windows 10 ([`read_invalid_pte_mask`]). Without
//! it a swizzled demand-zero PTE reads as paged out and a swizzled transition PTE names a
//! frame the dump does not hold: both count as missing, never as read.

use super::{PagingMode, VirtualMemory};
use crate::symbols::Profile;

/// A bit range of an entry: `width` bits from bit `shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits {
    pub shift: u32,
    pub width: u32,
}

impl Bits {
    pub const fn new(shift: u32, width: u32) -> Bits {
        Bits { shift, width }
    }

    pub fn get(self, v: u64) -> u64 {
        let mask = if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        v.checked_shr(self.shift).unwrap_or(0) & mask
    }
}

/// Where a [`PteFormat`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PteFormatSource {
    /// `_MMPTE_SOFTWARE` and `_MMPTE_TRANSITION` of the kernel's profile.
    Profile,
    /// The built-in layout of the paging mode (the corpus kernels' positions).
    BuiltIn,
}

/// The software fields of an invalid entry, for one kernel and paging mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PteFormat {
    pub mode: PagingMode,
    pub prototype: Bits,
    pub transition: Bits,
    pub protection: Bits,
    pub page_file_low: Bits,
    pub page_file_high: Bits,
    /// `_MMPTE_SOFTWARE.SwizzleBit` (x64 from 7601 on); `None` where the kernel has none.
    pub swizzle: Option<Bits>,
    /// `_MMPTE_TRANSITION.PageFrameNumber`.
    pub transition_pfn: Bits,
    /// `InvalidPteMask`: bits set in a swizzled invalid entry; 0 when unknown or none.
    pub invalid_pte_mask: u64,
    pub source: PteFormatSource,
}

/// What an entry says about the page (or the table) it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PteState {
    /// Valid bit set: the hardware maps it.
    Valid,
    /// Still in RAM (standby or modified list) at physical address `frame`.
    Transition { frame: u64 },
    /// Refers to a prototype PTE (section-backed memory; not followed).
    Prototype,
    /// In paging file `file` at page `offset`.
    PageFile { file: u32, offset: u64 },
    /// Committed but never touched: the first access gets a zeroed page.
    DemandZero,
    /// Nothing: never committed (or decommitted).
    Zero,
}

impl PteFormat {
    /// The built-in layout of a paging mode: x64 as the 7601..20348 ISFs (PageFileLow
    /// 12..15, SwizzleBit 4, no mask known), x86 PAE as XP's ntkrnlpa.pdb, x86 non-PAE as
    /// the WRK's 32-bit `MMPTE_SOFTWARE` (PageFileLow 1..4, PageFileHigh 12..31).
    pub fn built_in(mode: PagingMode) -> PteFormat {
        let (pfl, pfh, swizzle, tpfn) = match mode {
            PagingMode::X64 => (
                Bits::new(12, 4),
                Bits::new(32, 32),
                Some(Bits::new(4, 1)),
                Bits::new(12, 36),
            ),
            PagingMode::X86Pae => (Bits::new(1, 4), Bits::new(32, 32), None, Bits::new(12, 26)),
            PagingMode::X86 => (Bits::new(1, 4), Bits::new(12, 20), None, Bits::new(12, 20)),
        };
        PteFormat {
            mode,
            prototype: Bits::new(10, 1),
            transition: Bits::new(11, 1),
            protection: Bits::new(5, 5),
            page_file_low: pfl,
            page_file_high: pfh,
            swizzle,
            transition_pfn: tpfn,
            invalid_pte_mask: 0,
            source: PteFormatSource::BuiltIn,
        }
    }

    /// The kernel's own layout, when its profile describes `_MMPTE_SOFTWARE` at the entry
    /// size of `mode` (an XP PAE profile does not describe a non-PAE dump's 4-byte PTEs).
    pub fn from_profile(profile: &Profile, mode: PagingMode) -> Option<PteFormat> {
        const SW: &str = "_MMPTE_SOFTWARE";
        let entry = if mode == PagingMode::X86 { 4 } else { 8 };
        if profile.type_size(SW)? != entry {
            return None;
        }
        let bits = |ty: &str, name: &str| -> Option<Bits> {
            let f = profile.field(ty, name)?;
            let (pos, len) = (f.bit_position?, f.bit_length?);
            (f.offset == 0 && len > 0 && pos + len <= 64).then_some(Bits::new(pos, len))
        };
        let built_in = PteFormat::built_in(mode);
        Some(PteFormat {
            mode,
            prototype: bits(SW, "Prototype")?,
            transition: bits(SW, "Transition")?,
            protection: bits(SW, "Protection")?,
            page_file_low: bits(SW, "PageFileLow")?,
            page_file_high: bits(SW, "PageFileHigh")?,
            swizzle: bits(SW, "SwizzleBit"),
            transition_pfn: bits("_MMPTE_TRANSITION", "PageFrameNumber")
                .unwrap_or(built_in.transition_pfn),
            invalid_pte_mask: 0,
            source: PteFormatSource::Profile,
        })
    }

    /// The kernel's layout if the profile has it, else the built-in one.
    pub fn for_kernel(profile: Option<&Profile>, mode: PagingMode) -> PteFormat {
        profile
            .and_then(|p| PteFormat::from_profile(p, mode))
            .unwrap_or_else(|| PteFormat::built_in(mode))
    }

    /// With the kernel's `InvalidPteMask` (only meaningful where the layout has a SwizzleBit).
    pub fn with_invalid_pte_mask(mut self, mask: u64) -> PteFormat {
        self.invalid_pte_mask = mask;
        self
    }

    /// The entry as the kernel reads it: a swizzled invalid entry (SwizzleBit clear) with the
    /// mask's bits cleared.
    fn unswizzle(&self, raw: u64) -> u64 {
        match self.swizzle {
            Some(b) if self.invalid_pte_mask != 0 && b.get(raw) == 0 => {
                raw & !self.invalid_pte_mask
            }
            _ => raw,
        }
    }

    /// What `raw` (an entry of any level) says; `Valid` is the hardware's bit 0 alone.
    pub fn classify(&self, raw: u64) -> PteState {
        if raw & 1 != 0 {
            return PteState::Valid;
        }
        let e = self.unswizzle(raw);
        if e == 0 {
            return PteState::Zero;
        }
        if self.prototype.get(e) != 0 {
            return PteState::Prototype;
        }
        if self.transition.get(e) != 0 {
            return PteState::Transition {
                frame: self.transition_pfn.get(e) << 12,
            };
        }
        let offset = self.page_file_high.get(e);
        if offset != 0 {
            PteState::PageFile {
                file: self.page_file_low.get(e) as u32,
                offset,
            }
        } else if self.protection.get(e) != 0 {
            PteState::DemandZero
        } else {
            PteState::Zero
        }
    }
}

/// The kernel's `InvalidPteMask` and where it was read: `nt!MiInvalidPteMask` (7601), else
/// `nt!MiState` + `_MI_SYSTEM_INFORMATION.Hardware` + `_MI_HARDWARE_STATE.InvalidPteMask`
/// (17763, 19041, 20348). `None` where the profile has neither (XP has no swizzling) or the
/// variable is not in the dump.
pub fn read_invalid_pte_mask(
    mem: &dyn VirtualMemory,
    profile: &Profile,
    kernel_base: u64,
) -> Option<(u64, &'static str)> {
    if let Some(rva) = profile.global("MiInvalidPteMask") {
        let v = mem.read_u64(kernel_base.checked_add(rva)?).ok()?;
        return Some((v, "MiInvalidPteMask"));
    }
    let state = kernel_base.checked_add(profile.global("MiState")?)?;
    let hw = profile.offset("_MI_SYSTEM_INFORMATION", "Hardware")?;
    let mask = profile.offset("_MI_HARDWARE_STATE", "InvalidPteMask")?;
    let v = mem
        .read_u64(state.checked_add(hw)?.checked_add(mask)?)
        .ok()?;
    Some((v, "MiState.Hardware.InvalidPteMask"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_states_of_the_built_in_x64_layout() {
        let f = PteFormat::built_in(PagingMode::X64);
        assert_eq!(f.classify(0x8000_0000_1234_5863), PteState::Valid);
        assert_eq!(f.classify(0), PteState::Zero);
        assert_eq!(
            f.classify(0x0000_0000_0005_6880),
            PteState::Transition { frame: 0x56000 }
        );
        assert_eq!(f.classify(0x0000_0000_0000_0480), PteState::Prototype);
        assert_eq!(
            f.classify(0x0000_1234_0000_1080),
            PteState::PageFile {
                file: 1,
                offset: 0x1234
            }
        );
        assert_eq!(f.classify(0x80), PteState::DemandZero);
        // A PDE's UsedPageTableEntries alone (bits 16..25) commits nothing.
        assert_eq!(f.classify(0x3_0000), PteState::Zero);
    }

    #[test]
    fn swizzled_entries_need_the_mask() {
        let mask = 0x0000_2000_0000_0000; // bit 45, as a 46-bit MAXPHYADDR machine's
        let plain = PteFormat::built_in(PagingMode::X64);
        let f = plain.with_invalid_pte_mask(mask);
        // A demand-zero PTE stored swizzled (SwizzleBit clear, mask bits set).
        assert_eq!(f.classify(0x80 | mask), PteState::DemandZero);
        assert!(matches!(
            plain.classify(0x80 | mask),
            PteState::PageFile { .. }
        ));
        // A transition PTE's frame with the mask's bit set.
        assert_eq!(
            f.classify(0x5_6880 | mask),
            PteState::Transition { frame: 0x56000 }
        );
        // SwizzleBit set: stored as is, the high bits are the entry's own.
        assert_eq!(
            f.classify(0x0000_2000_0000_0090),
            PteState::PageFile {
                file: 0,
                offset: 0x2000
            }
        );
    }

    #[test]
    fn non_pae_x86_keeps_page_file_high_in_the_low_word() {
        let f = PteFormat::built_in(PagingMode::X86);
        assert_eq!(
            f.classify(0x0001_2082),
            PteState::PageFile {
                file: 1,
                offset: 0x12
            }
        );
        assert_eq!(f.classify(0x80), PteState::DemandZero);
    }
}
