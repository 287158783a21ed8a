//! Reading structure fields out of raw bytes, with offsets and bitfields from the kernel's
//! profile (or a built-in table), and the record of which of the two was used.

use crate::symbols::{fallback, Profile};
use serde::Serialize;
use std::ops::Range;

/// Where a structure layout or a global came from. Every report says it, because a layout we
/// assumed can be wrong for a build we never saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutSource {
    /// The kernel's own symbols (PDB or ISF).
    Profile,
    /// The built-in table of kernel layouts (`symbols::fallback`), chosen by pointer size and
    /// build number.
    BuiltIn,
}

impl LayoutSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutSource::Profile => "profile",
            LayoutSource::BuiltIn => "built-in",
        }
    }
}

/// The built-in layouts of a structure for `build`, without the kernel's symbols: a profile of
/// the built-in table of kernel layouts ([`fallback`], copied from the real symbol files and
/// tested against them), from the table build nearest below `build` inside `era`, else the
/// era's earliest table build. `era` is the range of builds over which the caller's structure
/// is known to keep one layout: the table's own "nearest earlier build" rule would, for
/// example, give a Windows 10 1511 (10586) kernel the Windows 7 tracker entry. `None` when the
/// table holds no build of that era for this pointer size.
pub(crate) fn table_profile(pointer_size: u8, build: u32, era: Range<u32>) -> Option<Profile> {
    let in_era = || {
        fallback::known_builds()
            .filter(|&(b, p)| p == pointer_size && era.contains(&b))
            .map(|(b, _)| b)
    };
    let pick = in_era()
        .filter(|&b| b <= build)
        .max()
        .or_else(|| in_era().min())?;
    fallback::profile(pick, pointer_size, None)
}

/// One field: byte offset, width in bytes of the integer read there, and for a bitfield the bit
/// range inside that integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub offset: u64,
    /// 1, 2, 4 or 8.
    pub width: u8,
    /// `Some((position, length))` for a bitfield.
    pub bits: Option<(u32, u32)>,
}

impl FieldSpec {
    pub const fn plain(offset: u64, width: u8) -> FieldSpec {
        FieldSpec {
            offset,
            width,
            bits: None,
        }
    }
    pub const fn bitfield(offset: u64, width: u8, position: u32, length: u32) -> FieldSpec {
        FieldSpec {
            offset,
            width,
            bits: Some((position, length)),
        }
    }

    /// A field from the profile. The profile gives offsets and bit ranges but not integer
    /// widths, so the caller supplies the width it knows from the structure's definition; a
    /// bitfield's width is the smallest integer that holds its bits.
    pub fn from_profile(profile: &Profile, ty: &str, field: &str, width: u8) -> Option<FieldSpec> {
        let f = profile.field(ty, field)?;
        match (f.bit_position, f.bit_length) {
            (Some(pos), Some(len)) if len > 0 && pos + len <= 64 => {
                let bits = pos + len;
                let width = match bits {
                    0..=8 => 1,
                    9..=16 => 2,
                    17..=32 => 4,
                    _ => 8,
                };
                Some(FieldSpec::bitfield(f.offset, width, pos, len))
            }
            _ => Some(FieldSpec::plain(f.offset, width)),
        }
    }

    /// The first byte past the field.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.width)
    }

    /// The field's value in `bytes` (one structure), `None` if the structure is too short.
    pub fn read(&self, bytes: &[u8]) -> Option<u64> {
        let start = usize::try_from(self.offset).ok()?;
        let raw = bytes.get(start..start.checked_add(usize::from(self.width))?)?;
        let mut b = [0u8; 8];
        b.get_mut(..raw.len())?.copy_from_slice(raw);
        let v = u64::from_le_bytes(b);
        Some(match self.bits {
            Some((pos, len)) if len < 64 => (v >> pos) & ((1u64 << len) - 1),
            _ => v,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_bitfields() {
        let b = [0x34, 0x12, 0xff, 0x01, 0xaa];
        assert_eq!(FieldSpec::plain(0, 2).read(&b), Some(0x1234));
        assert_eq!(FieldSpec::plain(0, 4).read(&b), Some(0x01ff_1234));
        assert_eq!(FieldSpec::plain(2, 4).read(&b), None, "past the end");
        // 9-bit field at bit 0 of the u16 at 2: 0x1ff.
        assert_eq!(FieldSpec::bitfield(2, 2, 0, 9).read(&b), Some(0x1ff));
        // 7-bit field at bit 9 of the same u16: 0x01ff >> 9 = 0.
        assert_eq!(FieldSpec::bitfield(2, 2, 9, 7).read(&b), Some(0));
        assert_eq!(FieldSpec::bitfield(0, 4, 16, 8).read(&b), Some(0xff));
    }
}
