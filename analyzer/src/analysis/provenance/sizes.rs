//! Which block a request of a known size becomes. A call site that always asks for the same
//! number of bytes leaves blocks of one size: the request plus the pool header, rounded to
//! the allocator's granularity. Matching a block's size against the sites' constant sizes is
//! evidence of which site allocated it (weak alone: two sites can ask for sizes that round to
//! the same block).
//!
//! Granularity (WRK pool.c POOL_SMALLEST_BLOCK; Windows 10 segment heap, Yason, "Windows 10
//! Segment Heap Internals", Black Hat USA 2016): classic pool and VS blocks round the request
//! plus the header to 16 bytes on x64, 8 on x86; an LFH block is its bucket's size (16-byte
//! buckets up to 1 KiB, then 64, 128, 256 and 512-byte buckets up to 16 KiB); a big
//! allocation takes whole pages.

use crate::memory::PAGE_SIZE;
use crate::pool::BlockSource;

/// The block size a request of `request` bytes gets, for blocks found by `source` with a
/// `header`-byte POOL_HEADER (8 on x86, 16 on x64).
pub fn block_size(request: u64, header: u64, source: BlockSource) -> Option<u64> {
    let with_header = request.checked_add(header)?;
    Some(match source {
        BlockSource::Classic | BlockSource::Vs => with_header.checked_next_multiple_of(header)?,
        BlockSource::Lfh => lfh_bucket(with_header)?,
        BlockSource::Big => request.checked_next_multiple_of(PAGE_SIZE)?,
    })
}

/// The LFH bucket size for a block of `bytes` (header included).
fn lfh_bucket(bytes: u64) -> Option<u64> {
    let granularity = match bytes {
        0..=1024 => 16,
        1025..=2048 => 64,
        2049..=4096 => 128,
        4097..=8192 => 256,
        8193..=16384 => 512,
        _ => return None,
    };
    bytes.checked_next_multiple_of(granularity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_as_each_allocator_rounds_them() {
        // x64 classic: 0xe8 + 16 -> 0x100; x86: 0xe8 + 8 = 0xf0.
        assert_eq!(block_size(0xe8, 16, BlockSource::Classic), Some(0x100));
        assert_eq!(block_size(0xe8, 8, BlockSource::Classic), Some(0xf0));
        assert_eq!(block_size(0xe9, 8, BlockSource::Classic), Some(0xf8));
        assert_eq!(block_size(0x1f0, 16, BlockSource::Vs), Some(0x200));
        // LFH: 16-byte buckets to 1 KiB, then 64.
        assert_eq!(block_size(0x30, 16, BlockSource::Lfh), Some(0x40));
        assert_eq!(block_size(0x401, 16, BlockSource::Lfh), Some(0x440));
        assert_eq!(block_size(0x10000, 16, BlockSource::Lfh), None);
        assert_eq!(block_size(0x2001, 0, BlockSource::Big), Some(0x3000));
    }
}
