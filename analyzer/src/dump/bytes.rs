//! Bounds-checked little-endian reads from the dump bytes. Every read names the structure it
//! belongs to, so a short file yields "truncated: <structure> needs N bytes".

use super::DumpError;

/// The end offset of `len` bytes at `off`, or a `Truncated` error naming `what`.
pub(crate) fn need(data: &[u8], what: &'static str, off: u64, len: u64) -> Result<(), DumpError> {
    let end = off.checked_add(len).ok_or(DumpError::Truncated {
        what,
        need: u64::MAX,
        have: data.len() as u64,
    })?;
    if end > data.len() as u64 {
        return Err(DumpError::Truncated {
            what,
            need: end,
            have: data.len() as u64,
        });
    }
    Ok(())
}

/// `len` bytes at `off` (checked).
pub(crate) fn slice<'a>(
    data: &'a [u8],
    what: &'static str,
    off: u64,
    len: u64,
) -> Result<&'a [u8], DumpError> {
    need(data, what, off, len)?;
    // Both fit in the slice length, hence in usize.
    Ok(&data[off as usize..(off + len) as usize])
}

pub(crate) fn u8_at(data: &[u8], what: &'static str, off: u64) -> Result<u8, DumpError> {
    Ok(slice(data, what, off, 1)?[0])
}

pub(crate) fn u32_at(data: &[u8], what: &'static str, off: u64) -> Result<u32, DumpError> {
    let s = slice(data, what, off, 4)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn u64_at(data: &[u8], what: &'static str, off: u64) -> Result<u64, DumpError> {
    let s = slice(data, what, off, 8)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(s);
    Ok(u64::from_le_bytes(b))
}
