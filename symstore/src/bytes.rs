//! Little-endian field reads from byte slices that never panic: every read is bounds-checked
//! and an out-of-range field is `None`, because every byte read here comes from a file, a dump
//! or an image that a hostile or broken writer may have produced. The one copy the workspace
//! uses: the analyzer re-exports it (this crate needs nothing of the analyzer, the analyzer
//! depends on this one).

#[inline]
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(*b.get(off..)?.first_chunk()?))
}

#[inline]
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(*b.get(off..)?.first_chunk()?))
}

#[inline]
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(*b.get(off..)?.first_chunk()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u16_at(&b, 0), Some(0x0201));
        assert_eq!(u32_at(&b, 1), Some(0x0504_0302));
        assert_eq!(u32_at(&b, 2), None);
        assert_eq!(u64_at(&b, 0), None);
        assert_eq!(u16_at(&b, usize::MAX), None);
        assert_eq!(u16_at(&b, 4), None);
        assert_eq!(u16_at(&b, 5), None);
    }
}
