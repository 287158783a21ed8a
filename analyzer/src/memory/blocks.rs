//! Virtual memory made of captured byte ranges (a triage dump's data blocks): no page tables,
//! just "these bytes were at this address".

use super::{MemoryError, VirtualMemory};

/// Sorted, possibly overlapping ranges of captured virtual memory, served without copying.
pub struct BlockMemory<'a> {
    /// (start address, bytes), sorted by start address.
    blocks: Vec<(u64, &'a [u8])>,
    pointer_size: u8,
}

impl<'a> BlockMemory<'a> {
    pub fn new(mut blocks: Vec<(u64, &'a [u8])>, pointer_size: u8) -> Self {
        blocks.retain(|(_, b)| !b.is_empty());
        blocks.sort_by_key(|(va, _)| *va);
        BlockMemory {
            blocks,
            pointer_size,
        }
    }

    /// The captured bytes from `va` to the end of the block that holds it.
    fn find(&self, va: u64) -> Option<&'a [u8]> {
        // Blocks starting at or before `va`; the latest-starting one that still covers `va`
        // wins. Overlaps are rare, so the backwards scan is short in practice.
        let end = self.blocks.partition_point(|(start, _)| *start <= va);
        self.blocks[..end].iter().rev().find_map(|(start, bytes)| {
            let off = va - start;
            (off < bytes.len() as u64).then(|| &bytes[off as usize..])
        })
    }
}

impl VirtualMemory for BlockMemory<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = va
                .checked_add(done as u64)
                .ok_or(MemoryError::AddressOverflow { addr: va })?;
            let src = self
                .find(addr)
                .ok_or(MemoryError::NotCaptured { va: addr })?;
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
        }
        Ok(())
    }

    fn pointer_size(&self) -> u8 {
        self.pointer_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_and_across_adjacent_blocks() {
        let a = [1u8, 2, 3, 4];
        let b = [5u8, 6];
        let m = BlockMemory::new(vec![(0x1004, &b[..]), (0x1000, &a[..])], 8);
        let mut buf = [0u8; 6];
        m.read(0x1000, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6]);
        assert_eq!(m.read_u16(0x1003).unwrap(), u16::from_le_bytes([4, 5]));
    }

    #[test]
    fn gap_is_an_error_not_zeros() {
        let a = [1u8, 2];
        let m = BlockMemory::new(vec![(0x1000, &a[..])], 4);
        let mut buf = [0u8; 3];
        assert_eq!(
            m.read(0x1000, &mut buf),
            Err(MemoryError::NotCaptured { va: 0x1002 })
        );
        assert_eq!(
            m.read_u8(0xfff),
            Err(MemoryError::NotCaptured { va: 0xfff })
        );
        assert!(matches!(
            m.read_u8(u64::MAX),
            Err(MemoryError::NotCaptured { .. })
        ));
    }
}
