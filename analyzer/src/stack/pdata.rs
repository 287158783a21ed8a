//! The x64 function table: the exception directory's RUNTIME_FUNCTION entries (BeginAddress,
//! EndAddress, UnwindData; RVAs, sorted by BeginAddress as the PE format requires), found by
//! binary search for the function holding an instruction.

use super::image::ImageRead;
use super::UnwindError;

/// sizeof(RUNTIME_FUNCTION).
pub const ENTRY_SIZE: u32 = 12;
/// Index of the exception directory among the data directories.
const EXCEPTION_DIRECTORY: u32 = 3;
/// A table longer than this is not a real image's (ntoskrnl has about 30 000 entries).
pub const MAX_ENTRIES: u32 = 1 << 20;

/// One RUNTIME_FUNCTION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeFunction {
    pub begin: u32,
    pub end: u32,
    /// RVA of the UNWIND_INFO.
    pub unwind: u32,
}

impl RuntimeFunction {
    pub fn parse(b: &[u8; 12]) -> RuntimeFunction {
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        RuntimeFunction {
            begin: u(0),
            end: u(4),
            unwind: u(8),
        }
    }

    pub fn contains(&self, rva: u32) -> bool {
        self.begin <= rva && rva < self.end
    }
}

/// Where an image's function table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionTable {
    pub rva: u32,
    pub count: u32,
}

fn read_u32(img: &mut dyn ImageRead, rva: u32) -> Result<u32, UnwindError> {
    let mut b = [0u8; 4];
    img.read_rva(rva, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u16(img: &mut dyn ImageRead, rva: u32) -> Result<u16, UnwindError> {
    let mut b = [0u8; 2];
    img.read_rva(rva, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

/// The exception directory's (RVA, size) from the image's PE headers; `Ok(None)` when the
/// image has none. The directory is the same on every architecture; its entries are not.
pub fn exception_directory(img: &mut dyn ImageRead) -> Result<Option<(u32, u32)>, UnwindError> {
    let bad = |reason| UnwindError::Malformed { rva: 0, reason };
    if read_u16(img, 0)? != 0x5A4D {
        return Err(bad("no MZ signature"));
    }
    let nt = read_u32(img, 0x3C)?;
    if nt > 0x1000_0000 || read_u32(img, nt)? != 0x4550 {
        return Err(bad("no PE signature"));
    }
    let opt = nt + 24;
    let (count_at, dirs) = match read_u16(img, opt)? {
        0x20B => (opt + 108, opt + 112),
        0x10B => (opt + 92, opt + 96),
        _ => return Err(bad("unknown optional header magic")),
    };
    if read_u32(img, count_at)? <= EXCEPTION_DIRECTORY {
        return Ok(None);
    }
    let at = dirs + 8 * EXCEPTION_DIRECTORY;
    let (rva, size) = (read_u32(img, at)?, read_u32(img, at + 4)?);
    Ok((rva != 0).then_some((rva, size)))
}

impl FunctionTable {
    /// Reads the exception directory from the image's PE headers; `Ok(None)` when the image
    /// has none (an image without unwind information).
    pub fn read(img: &mut dyn ImageRead) -> Result<Option<FunctionTable>, UnwindError> {
        let bad = |reason| UnwindError::Malformed { rva: 0, reason };
        let Some((rva, size)) = exception_directory(img)? else {
            return Ok(None);
        };
        if size < ENTRY_SIZE {
            return Ok(None);
        }
        let count = size / ENTRY_SIZE;
        if count > MAX_ENTRIES {
            return Err(bad("exception directory larger than any real image's"));
        }
        Ok(Some(FunctionTable { rva, count }))
    }

    /// Entry `i` (`i < count`).
    pub fn entry(&self, img: &mut dyn ImageRead, i: u32) -> Result<RuntimeFunction, UnwindError> {
        let mut b = [0u8; 12];
        let at =
            self.rva
                .checked_add(i.saturating_mul(ENTRY_SIZE))
                .ok_or(UnwindError::Malformed {
                    rva: self.rva,
                    reason: "function table past 4 GiB",
                })?;
        img.read_rva(at, &mut b)?;
        Ok(RuntimeFunction::parse(&b))
    }

    /// The entry whose [begin, end) holds `rva`, by binary search over BeginAddress; `None`
    /// for code outside every entry (a leaf function, which has none).
    pub fn lookup(
        &self,
        img: &mut dyn ImageRead,
        rva: u32,
    ) -> Result<Option<RuntimeFunction>, UnwindError> {
        let Some(i) =
            last_beginning_at_or_before(self.count, rva, |i| self.entry(img, i).map(|f| f.begin))?
        else {
            return Ok(None);
        };
        let f = self.entry(img, i)?;
        Ok(f.contains(rva).then_some(f))
    }
}

/// The index of the last of `count` entries, sorted by BeginAddress, that begins at or before
/// `rva` (binary search; `begin(i)` reads entry `i`'s BeginAddress): the only entry that can
/// hold `rva`. Both function tables (x64's 12-byte and ARM64's 8-byte entries) are searched so.
pub(crate) fn last_beginning_at_or_before(
    count: u32,
    rva: u32,
    mut begin: impl FnMut(u32) -> Result<u32, UnwindError>,
) -> Result<Option<u32>, UnwindError> {
    let (mut lo, mut hi) = (0u32, count);
    // Invariant: entries below `lo` begin at or before `rva`; from `hi` on, after it.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if begin(mid)? <= rva {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo.checked_sub(1))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stack::image::BytesImage;

    /// A PE32+ header with an exception directory at 0x200 of `entries`.
    pub(crate) fn image_with_table(entries: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        let opt = 0x80 + 24;
        b[opt..opt + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let dir = opt + 112 + 8 * 3;
        b[dir..dir + 4].copy_from_slice(&0x200u32.to_le_bytes());
        b[dir + 4..dir + 8].copy_from_slice(&(12 * entries.len() as u32).to_le_bytes());
        for (i, &(s, e, u)) in entries.iter().enumerate() {
            let at = 0x200 + 12 * i;
            b[at..at + 4].copy_from_slice(&s.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&e.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&u.to_le_bytes());
        }
        b
    }

    #[test]
    fn binary_search_finds_the_holder_and_gaps() {
        let b = image_with_table(&[
            (0x100, 0x120, 0x900),
            (0x120, 0x180, 0x910),
            (0x200, 0x210, 0x920),
        ]);
        let mut img = BytesImage(&b);
        let t = FunctionTable::read(&mut img).unwrap().unwrap();
        assert_eq!(t.count, 3);
        let at = |img: &mut BytesImage, rva| t.lookup(img, rva).unwrap().map(|f| f.unwind);
        assert_eq!(at(&mut img, 0x100), Some(0x900));
        assert_eq!(at(&mut img, 0x11f), Some(0x900));
        assert_eq!(at(&mut img, 0x120), Some(0x910));
        assert_eq!(at(&mut img, 0x190), None, "between functions: a leaf");
        assert_eq!(at(&mut img, 0x20f), Some(0x920));
        assert_eq!(at(&mut img, 0x210), None);
        assert_eq!(at(&mut img, 0x50), None);
    }

    #[test]
    fn hostile_directories_are_errors() {
        let mut b = image_with_table(&[(0x100, 0x120, 0x900)]);
        // A directory claiming a table far past the image.
        let dir = 0x80 + 24 + 112 + 24;
        b[dir + 4..dir + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(FunctionTable::read(&mut BytesImage(&b)).is_err());
        b[dir + 4..dir + 8].copy_from_slice(&(12 * 1000u32).to_le_bytes());
        let t = FunctionTable::read(&mut BytesImage(&b)).unwrap().unwrap();
        assert!(
            t.lookup(&mut BytesImage(&b), 0x5000).is_err(),
            "entries past the image"
        );
        assert!(FunctionTable::read(&mut BytesImage(&[0u8; 16])).is_err());
    }
}
