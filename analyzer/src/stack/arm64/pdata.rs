//! The ARM64 function table: the exception directory's 8-byte RUNTIME_FUNCTION entries
//! (BeginAddress; UnwindData whose low two bits, Flag, say what the rest is), sorted by
//! BeginAddress. Unlike x64 an entry has no end address: a function's length is in its packed
//! word or in its `.xdata` header, so the lookup reads that for the one candidate it finds.

use super::super::image::ImageRead;
use super::super::pdata::exception_directory;
use super::super::UnwindError;

/// sizeof(IMAGE_ARM64_RUNTIME_FUNCTION_ENTRY).
pub const ENTRY_SIZE: u32 = 8;
/// A table longer than this is not a real image's.
pub const MAX_ENTRIES: u32 = 1 << 21;

/// One RUNTIME_FUNCTION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeFunction {
    pub begin: u32,
    pub unwind_data: u32,
}

/// The packed form's fields (Flag 1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    /// Flag 2: a fragment without prolog or epilog (the canonical frame is fully set up).
    pub fragment: bool,
    /// In bytes (the field counts instructions).
    pub function_length: u32,
    /// Floating-point registers saved: none for 0, else d8..d(8+RegF) (RegF + 1 registers).
    pub reg_f: u8,
    /// x19.. saved: RegI registers.
    pub reg_i: u8,
    /// The prolog homes x0..x7.
    pub homes: bool,
    /// 0 unchained, 1 unchained with lr saved, 2 chained with pac-signed lr, 3 chained.
    pub cr: u8,
    /// The whole frame, in bytes (the field counts 16-byte units).
    pub frame_size: u32,
}

/// What an entry's UnwindData says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwindKind {
    /// Flag 0: the RVA of an `.xdata` record.
    Xdata { rva: u32 },
    /// Flag 1 or 2: the packed form.
    Packed(Packed),
    /// Flag 3 (documented as reserved; Windows' unwinder reads it as the RVA of another
    /// entry whose unwind data this one shares, undone as from that entry's start).
    Parent { rva: u32 },
}

impl RuntimeFunction {
    pub fn parse(b: &[u8; 8]) -> RuntimeFunction {
        RuntimeFunction {
            begin: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            unwind_data: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn kind(&self) -> Result<UnwindKind, UnwindError> {
        let u = self.unwind_data;
        Ok(match u & 3 {
            0 => UnwindKind::Xdata { rva: u },
            3 if u & 4 == 0 => UnwindKind::Parent { rva: u - 3 },
            3 => {
                return Err(UnwindError::Malformed {
                    rva: self.begin,
                    reason: "RUNTIME_FUNCTION with the reserved Flag 3 in an unknown form",
                })
            }
            flag => UnwindKind::Packed(Packed {
                fragment: flag == 2,
                function_length: 4 * (u >> 2 & 0x7FF),
                reg_f: (u >> 13 & 7) as u8,
                reg_i: (u >> 16 & 0xF) as u8,
                homes: u >> 20 & 1 == 1,
                cr: (u >> 21 & 3) as u8,
                frame_size: 16 * (u >> 23),
            }),
        })
    }

    /// The function's length in bytes: from the packed word, the `.xdata` header (bits 0..17,
    /// in instructions), or the parent entry's.
    pub fn length(&self, img: &mut dyn ImageRead) -> Result<u32, UnwindError> {
        match self.kind()? {
            UnwindKind::Packed(p) => Ok(p.function_length),
            UnwindKind::Xdata { rva } => Ok(4 * (read_u32(img, rva)? & 0x3FFFF)),
            UnwindKind::Parent { rva } => match read_entry(img, rva)?.kind()? {
                UnwindKind::Packed(p) => Ok(p.function_length),
                UnwindKind::Xdata { rva } => Ok(4 * (read_u32(img, rva)? & 0x3FFFF)),
                UnwindKind::Parent { .. } => Err(UnwindError::Malformed {
                    rva,
                    reason: "a RUNTIME_FUNCTION refers to one that refers further",
                }),
            },
        }
    }
}

fn read_u32(img: &mut dyn ImageRead, rva: u32) -> Result<u32, UnwindError> {
    let mut b = [0u8; 4];
    img.read_rva(rva, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// The RUNTIME_FUNCTION at `rva`.
pub fn read_entry(img: &mut dyn ImageRead, rva: u32) -> Result<RuntimeFunction, UnwindError> {
    let mut b = [0u8; 8];
    img.read_rva(rva, &mut b)?;
    Ok(RuntimeFunction::parse(&b))
}

/// Where an image's ARM64 function table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionTable {
    pub rva: u32,
    pub count: u32,
}

impl FunctionTable {
    /// The exception directory as a table of 8-byte entries; `Ok(None)` when there is none.
    pub fn read(img: &mut dyn ImageRead) -> Result<Option<FunctionTable>, UnwindError> {
        let Some((rva, size)) = exception_directory(img)? else {
            return Ok(None);
        };
        let count = size / ENTRY_SIZE;
        if count > MAX_ENTRIES {
            return Err(UnwindError::Malformed {
                rva,
                reason: "exception directory larger than any real image's",
            });
        }
        Ok((count > 0).then_some(FunctionTable { rva, count }))
    }

    /// Entry `i`.
    pub fn entry(&self, img: &mut dyn ImageRead, i: u32) -> Result<RuntimeFunction, UnwindError> {
        let at =
            self.rva
                .checked_add(i.saturating_mul(ENTRY_SIZE))
                .ok_or(UnwindError::Malformed {
                    rva: self.rva,
                    reason: "function table past 4 GiB",
                })?;
        read_entry(img, at)
    }

    /// The entry whose function holds `rva` (binary search over BeginAddress, then the
    /// candidate's length); `None` for code no entry covers (a leaf function).
    pub fn lookup(
        &self,
        img: &mut dyn ImageRead,
        rva: u32,
    ) -> Result<Option<RuntimeFunction>, UnwindError> {
        let Some(i) = crate::stack::pdata::last_beginning_at_or_before(self.count, rva, |i| {
            self.entry(img, i).map(|f| f.begin)
        })?
        else {
            return Ok(None);
        };
        let f = self.entry(img, i)?;
        let len = f.length(img)?;
        Ok((u64::from(rva) < u64::from(f.begin) + u64::from(len)).then_some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::image::BytesImage;
    use crate::stack::pdata::tests::image_with_table;

    /// Bit layout of the packed word, field by field (Microsoft's .pdata record figure).
    #[test]
    fn packed_fields() {
        // Flag 1, length 0x40 instructions, RegF 2, RegI 5, H 1, CR 3, FrameSize 0x1A.
        let u = 1 | 0x40 << 2 | 2 << 13 | 5 << 16 | 1 << 20 | 3 << 21 | 0x1A << 23;
        let f = RuntimeFunction {
            begin: 0x1000,
            unwind_data: u,
        };
        assert_eq!(
            f.kind().unwrap(),
            UnwindKind::Packed(Packed {
                fragment: false,
                function_length: 0x100,
                reg_f: 2,
                reg_i: 5,
                homes: true,
                cr: 3,
                frame_size: 0x1A0,
            })
        );
        let frag = RuntimeFunction {
            begin: 0,
            unwind_data: 2,
        };
        assert!(matches!(frag.kind(), Ok(UnwindKind::Packed(p)) if p.fragment));
        let xdata = RuntimeFunction {
            begin: 0,
            unwind_data: 0x3000,
        };
        assert_eq!(xdata.kind().unwrap(), UnwindKind::Xdata { rva: 0x3000 });
        let parent = RuntimeFunction {
            begin: 0,
            unwind_data: 0x2003,
        };
        assert_eq!(parent.kind().unwrap(), UnwindKind::Parent { rva: 0x2000 });
        let bad = RuntimeFunction {
            begin: 0,
            unwind_data: 0x2007,
        };
        assert!(bad.kind().is_err());
    }

    /// Lookup over 8-byte entries: the function's length bounds it, from the packed word and
    /// from the `.xdata` header.
    #[test]
    fn lookup_uses_each_functions_length() {
        // The x64 helper writes 12-byte entries; lay 8-byte ones over the same directory.
        let mut b = image_with_table(&[]);
        let dir = 0x80 + 24 + 112 + 24;
        b[dir + 4..dir + 8].copy_from_slice(&16u32.to_le_bytes());
        let packed: u32 = 1 | 8 << 2; // 8 instructions
        b[0x200..0x204].copy_from_slice(&0x100u32.to_le_bytes());
        b[0x204..0x208].copy_from_slice(&packed.to_le_bytes());
        b[0x208..0x20C].copy_from_slice(&0x140u32.to_le_bytes());
        b[0x20C..0x210].copy_from_slice(&0x800u32.to_le_bytes());
        b[0x800..0x804].copy_from_slice(&4u32.to_le_bytes()); // .xdata: 4 instructions
        let mut img = BytesImage(&b);
        let t = FunctionTable::read(&mut img).unwrap().unwrap();
        assert_eq!(t.count, 2);
        let at = |img: &mut BytesImage, rva| t.lookup(img, rva).unwrap().map(|f| f.begin);
        assert_eq!(at(&mut img, 0x100), Some(0x100));
        assert_eq!(at(&mut img, 0x11C), Some(0x100));
        assert_eq!(at(&mut img, 0x120), None, "past the packed length");
        assert_eq!(at(&mut img, 0x14C), Some(0x140));
        assert_eq!(at(&mut img, 0x150), None, "past the .xdata length");
        assert_eq!(at(&mut img, 0x10), None);
        // An .xdata RVA past the image is an error, not a panic.
        b[0x20C..0x210].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(t.lookup(&mut BytesImage(&b), 0x144).is_err());
    }
}
