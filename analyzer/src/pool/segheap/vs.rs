//! VS subsegments: a `_HEAP_VS_SUBSEGMENT` header, then chunks back to back, each starting
//! with a `_HEAP_VS_CHUNK_HEADER` whose first 8 bytes (`Sizes.HeaderBits`) are stored XORed
//! with HeapKey and the chunk header's own address. Decoded, bits 16..32 are the chunk size
//! in 16-byte units (UnsafeSize) and the byte at +6 is `Allocated`. An allocated chunk holds
//! a POOL_HEADER right after its chunk header; that is the block. A free chunk is listed as a
//! free block when its last block's POOL_HEADER is still intact (see [`free_block`]).
//!
//! The subsegment's `Signature` (15 bits) is its `Size` XORed with 0x2BED (MemProcFS
//! vmmwinpool.c checks the same).

use super::range::RangeBytes;
use super::{block_from_header, SegLayout, SegmentHeapScan};
use crate::memory::PAGE_SIZE;
use crate::pool::header::HeaderLayout;
use crate::pool::pages::Block;
use crate::pool::{BlockSource, PoolKind};

/// `_HEAP_VS_SUBSEGMENT.Signature` = `Size ^ VS_SIGNATURE_KEY` (15 bits).
pub const VS_SIGNATURE_KEY: u16 = 0x2BED;
/// Most chunks walked in one subsegment (a 1 MiB range of 32-byte chunks).
pub const MAX_CHUNKS: usize = 1 << 15;

/// A decoded chunk header: `(size in bytes, allocated)`.
pub fn decode_chunk(header_bits: u64, chunk_va: u64, heap_key: u64) -> (u64, bool) {
    let d = header_bits ^ chunk_va ^ heap_key;
    (((d >> 16) & 0xffff) * 16, (d >> 48) & 1 == 1)
}

pub fn walk_vs(
    r: &RangeBytes,
    l: &SegLayout,
    header: &HeaderLayout,
    heap_key: u64,
    heap_kind: PoolKind,
    scan: &mut SegmentHeapScan,
    on_block: &mut dyn FnMut(&Block, BlockSource),
) {
    let (Some(size), Some(sig)) = (r.u16(l.vs_size), r.u16(l.vs_signature)) else {
        scan.problem(format!("VS subsegment {:#x}: header not in the dump", r.va));
        return;
    };
    if (size ^ VS_SIGNATURE_KEY) & 0x7fff != sig & 0x7fff {
        scan.subsegments_invalid += 1;
        scan.problem(format!(
            "VS subsegment {:#x}: signature {:#x} does not match size {size:#x}",
            r.va,
            sig & 0x7fff
        ));
        return;
    }
    scan.vs_subsegments += 1;
    let hdr = l.vs_chunk_header_size;
    let mut off = l.vs_subsegment_size.next_multiple_of(16);
    for _ in 0..MAX_CHUNKS {
        if off + hdr > r.len() {
            return;
        }
        let chunk_va = r.va + off;
        let Some(bits) = r.u64(off) else {
            // A chunk header on a missing page: the chain cannot be followed further.
            return;
        };
        let (chunk_size, allocated) = decode_chunk(bits, chunk_va, heap_key);
        // A chunk of just a header holds no block (MemProcFS walks past such chunks too: it
        // stops only below 16 bytes); anything smaller, or past the range, ends the walk.
        if chunk_size < hdr || off + chunk_size > r.len() {
            scan.problem(format!(
                "VS subsegment {:#x}: chunk at +{off:#x} decodes to {chunk_size:#x} bytes: walk stopped",
                r.va
            ));
            return;
        }
        if allocated && chunk_size >= hdr + header.size {
            let placed = block_in_chunk(r, header, off + hdr, chunk_size - hdr)
                .and_then(|(block, size)| Some((block, size, r.get(block, header.size)?)));
            if let Some((block, size, hb)) = placed {
                if let Some(b) = block_from_header(header, hb, r.va + block, size, true, heap_kind)
                {
                    scan.vs_blocks += 1;
                    on_block(&b, BlockSource::Vs);
                }
            }
        } else if !allocated {
            if let Some(b) = free_block(r, header, off + hdr, chunk_size - hdr, heap_kind) {
                scan.vs_blocks += 1;
                on_block(&b, BlockSource::Vs);
            }
        }
        off += chunk_size;
    }
    scan.truncated = true;
}

/// A free chunk as a free block (allocated false), as `!pool` lists freed blocks: only when the
/// POOL_HEADER its last owner left after the chunk header is still there and its BlockSize
/// covers exactly the rest of the chunk. A chunk carved from free space that never held a
/// block, or one whose header the free-tree node (`_HEAP_VS_CHUNK_FREE_HEADER.Node`, bytes
/// 8..32) has overwritten, has no such header: it is free space, not a block, and is skipped.
fn free_block(
    r: &RangeBytes,
    header: &HeaderLayout,
    block: u64,
    size: u64,
    heap_kind: PoolKind,
) -> Option<Block> {
    if size < header.size {
        return None;
    }
    let hb = r.get(block, header.size)?;
    let h = header.decode(hb)?;
    if h.block_size == 0 || header.bytes(h.block_size) != size {
        return None;
    }
    block_from_header(header, hb, r.va + block, size, false, heap_kind)
}

/// Where the POOL_HEADER of an allocated chunk is. Normally right after the chunk header; but a
/// block smaller than a page is not left straddling a page boundary: the kernel then puts the
/// POOL_HEADER at the start of the next page (MemProcFS vmmwinpool.c moves such blocks the
/// same way). We move only when the header found there describes exactly the rest of the
/// chunk, so a chunk without that layout keeps its plain position; `None` when that page is
/// not in the dump (where the block starts cannot be told).
fn block_in_chunk(
    r: &RangeBytes,
    header: &HeaderLayout,
    block: u64,
    size: u64,
) -> Option<(u64, u64)> {
    let in_page = (r.va + block) & (PAGE_SIZE - 1);
    if size >= PAGE_SIZE || in_page + size <= PAGE_SIZE {
        return Some((block, size));
    }
    let shift = PAGE_SIZE - in_page;
    let next = header.decode(r.get(block + shift, header.size)?)?;
    if header.bytes(next.block_size) == size - shift {
        Some((block + shift, size - shift))
    } else {
        Some((block, size))
    }
}
