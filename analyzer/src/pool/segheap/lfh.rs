//! LFH subsegments: one block size per subsegment, blocks packed from `FirstBlockOffset`,
//! state in `BlockBitmap` (two bits per block; bit 0 = busy, bit 1 = unused bytes recorded).
//!
//! `BlockOffsets` (BlockSize: u16, FirstBlockOffset: u16) is stored XORed with the low 32
//! bits of `RtlpHpHeapGlobals.LfhKey` and with the subsegment's address (truncated to 32 bits)
//! shifted right by 12 (Shafir's segment heap notes; MemProcFS vmmwinpool.c before 26100).

use super::range::RangeBytes;
use super::{block_from_header, SegLayout, SegmentHeapScan};
use crate::pool::header::HeaderLayout;
use crate::pool::pages::Block;
use crate::pool::{BlockSource, PoolKind};

/// The decoded `BlockOffsets` of a subsegment at `va`: `(block_size, first_block_offset)`.
pub fn decode_offsets(encoded: u32, lfh_key: u64, va: u64) -> (u32, u32) {
    let d = encoded ^ (lfh_key as u32) ^ ((va as u32) >> 12);
    (d & 0xffff, d >> 16)
}

/// Walks one LFH subsegment, calling `on_block` for every busy block and for every free block
/// whose POOL_HEADER still describes it (a freed block keeps its header; a never-used slot is
/// zeros and is not a block anyone allocated).
pub fn walk_lfh(
    r: &RangeBytes,
    l: &SegLayout,
    header: &HeaderLayout,
    lfh_key: u64,
    heap_kind: PoolKind,
    scan: &mut SegmentHeapScan,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) {
    let (Some(enc), Some(count)) = (r.u32(l.lfh_block_offsets), r.u16(l.lfh_block_count)) else {
        scan.problem(format!(
            "LFH subsegment {:#x}: header not in the dump",
            r.va
        ));
        return;
    };
    let (block_size, first) = decode_offsets(enc, lfh_key, r.va);
    let (block_size, first) = (u64::from(block_size), u64::from(first));
    let bitmap_bytes = (u64::from(count) * 2).div_ceil(8);
    // The bitmap lies between the fixed header and the first block, blocks are whole headers,
    // and the count fits the range.
    let fits = block_size >= header.size
        && block_size % header.size == 0
        && first >= l.lfh_block_bitmap + bitmap_bytes
        && first < r.len()
        && u64::from(count) <= (r.len() - first) / block_size;
    if !fits {
        scan.subsegments_invalid += 1;
        scan.problem(format!(
            "LFH subsegment {:#x}: offsets decode to block size {block_size:#x}, first block +{first:#x}, {count} blocks: not a subsegment of this range",
            r.va
        ));
        return;
    }
    let Some(bitmap) = r.get(l.lfh_block_bitmap, bitmap_bytes.max(1)) else {
        scan.problem(format!(
            "LFH subsegment {:#x}: bitmap not in the dump",
            r.va
        ));
        return;
    };
    scan.lfh_subsegments += 1;
    for i in 0..u64::from(count) {
        let bits = bitmap
            .get((i / 4) as usize)
            .map_or(0, |b| (b >> ((i % 4) * 2)) & 3);
        let busy = bits & 1 == 1;
        let off = first + i * block_size;
        let Some(hb) = r.get(off, header.size) else {
            continue; // on a missing page: counted with the range's missing pages
        };
        if !busy {
            let described = hb.iter().any(|b| *b != 0)
                && header
                    .decode(hb)
                    .is_some_and(|h| header.bytes(h.block_size) == block_size);
            if !described {
                continue;
            }
        }
        if let Some(b) = block_from_header(header, hb, r.va + off, block_size, busy, heap_kind) {
            scan.lfh_blocks += 1;
            on_block(&b, BlockSource::Lfh);
        }
    }
}
