//! Field reads from byte slices that never panic: every read is bounds-checked and an
//! out-of-range field is `None`, because every byte here comes from a dump or an image that a
//! hostile or broken writer may have produced. The little-endian integer reads are the symbol
//! store's (one copy for the workspace).

pub(crate) use symstore::bytes::{u16_at, u32_at, u64_at};

/// A pointer of `size` bytes (4 or 8), zero-extended.
pub(crate) fn ptr_at(b: &[u8], off: usize, size: u8) -> Option<u64> {
    match size {
        4 => u32_at(b, off).map(u64::from),
        _ => u64_at(b, off),
    }
}

/// The bytes up to the first NUL (or the whole slice), as lossy UTF-8: names in PE images are
/// ASCII in practice, and a mangled byte must not stop the report.
pub(crate) fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// UTF-16LE bytes (odd trailing byte ignored) to a String, replacing invalid sequences.
pub(crate) fn utf16le(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_take_their_size() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(ptr_at(&b, 0, 4), Some(0x0403_0201));
        assert_eq!(ptr_at(&b, 0, 8), Some(0x0807_0605_0403_0201));
        assert_eq!(ptr_at(&b, 1, 8), None);
    }

    #[test]
    fn strings() {
        assert_eq!(c_string(b"abc\0def"), "abc");
        assert_eq!(c_string(b"abc"), "abc");
        assert_eq!(utf16le(&[b'h', 0, b'i', 0, 7]), "hi");
    }
}
