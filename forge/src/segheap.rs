//! The kernel segment heap of Windows 10 19H1+ (here: 19041 and 20348), where small pool blocks
//! live instead of classic pool pages: nt!ExPoolState -> _EX_POOL_HEAP_MANAGER_STATE ->
//! PoolNode[0].Heaps[] -> _SEGMENT_HEAP (signature 0xDDEEDDEE) -> SegContexts[0].SegmentListHead
//! -> _HEAP_PAGE_SEGMENT (1 MB, 256 page units; encoded signature) whose range descriptors mark
//! LFH (RangeFlags 11) and VS (15) subsegments.
//!
//! Encodings as Windows writes them (and MemProcFS `vmmwinpool.c` and PoolViewer decode them):
//! - page segment Signature = segment ^ its segment context (&heap.SegContexts[i]) ^ HeapKey ^
//!   0xA2E64EADA2E64EAD (the kernel checks the decoded value against the context it walks from;
//!   MemProcFS only checks that it is a kernel address, so it cannot catch the heap's address here);
//! - LFH BlockOffsets {BlockSize u16, FirstBlockOffset u16} ^ LfhKey ^ (u32(subsegment) >> 12);
//!   BlockBitmap 2 bits per block, 01 = allocated;
//! - VS subsegment Size / Signature with Size == Signature ^ 0x2BED; chunk headers
//!   {MemoryCost:16, UnsafeSize:16 (16-byte units, header included), UnsafePrevSize:16,
//!   Allocated:8} ^ chunk address ^ HeapKey; the POOL_HEADER follows the 16-byte chunk header.
//!
//! Every block (LFH and VS) starts with a POOL_HEADER whose BlockSize covers the block exactly.
//! VS chunks never cross a page (a free chunk fills the rest of a page), and the unused rest of
//! a VS subsegment is free chunks, so a walker decodes nothing but what was planted.
//!
//! Offsets come from the profile; the constants are the ones above.

use crate::space::{Machine, PAGE};
use crate::ForgeError;
use analyzer::symbols::Profile;

const SEGMENT_SIZE: u64 = 0x10_0000;
const UNITS: u64 = 256;
const SEGMENT_SIGNATURE_KEY: u64 = 0xa2e6_4ead_a2e6_4ead;
const LFH_RANGE: u8 = 11;
const VS_RANGE: u8 = 15;
/// Pages per VS subsegment.
const VS_UNITS: u64 = 4;
/// Blocks (header included) up to this size go to the LFH, larger ones to VS.
pub const LFH_MAX: u64 = 0x200;
/// Offset of the first VS chunk in a subsegment (MemProcFS starts its walk there).
const VS_FIRST_CHUNK: u64 = 0x30;

/// Offsets of the segment-heap structures, from the profile.
#[derive(Debug, Clone, Copy)]
pub struct SegLayout {
    seg_contexts: u64,
    seg_context_size: u64,
    unit_shift: u64,
    first_descriptor: u64,
    segment_list_head: u64,
    context_heap: Option<u64>,
    descriptor_size: u64,
    range_flags: u64,
    unit_size: u64,
    lfh_block_offsets: u64,
    lfh_block_bitmap: u64,
    lfh_block_count: Option<u64>,
    vs_size: u64,
    vs_signature: u64,
    heap_signature: u64,
}

impl SegLayout {
    /// `None` when the kernel has no segment-heap pool (before 19H1) or lacks a structure.
    pub fn from_profile(p: &Profile) -> Option<SegLayout> {
        p.global("ExPoolState")?;
        let o = |t: &str, f: &str| p.offset(t, f);
        Some(SegLayout {
            seg_contexts: o("_SEGMENT_HEAP", "SegContexts")?,
            seg_context_size: p.type_size("_HEAP_SEG_CONTEXT")?,
            unit_shift: o("_HEAP_SEG_CONTEXT", "UnitShift")?,
            first_descriptor: o("_HEAP_SEG_CONTEXT", "FirstDescriptorIndex")?,
            segment_list_head: o("_HEAP_SEG_CONTEXT", "SegmentListHead")?,
            context_heap: o("_HEAP_SEG_CONTEXT", "Heap"),
            descriptor_size: p.type_size("_HEAP_PAGE_RANGE_DESCRIPTOR")?,
            range_flags: o("_HEAP_PAGE_RANGE_DESCRIPTOR", "RangeFlags")?,
            unit_size: o("_HEAP_PAGE_RANGE_DESCRIPTOR", "UnitSize")?,
            lfh_block_offsets: o("_HEAP_LFH_SUBSEGMENT", "BlockOffsets")?,
            lfh_block_bitmap: o("_HEAP_LFH_SUBSEGMENT", "BlockBitmap")?,
            lfh_block_count: o("_HEAP_LFH_SUBSEGMENT", "BlockCount"),
            vs_size: o("_HEAP_VS_SUBSEGMENT", "Size")?,
            vs_signature: o("_HEAP_VS_SUBSEGMENT", "Signature")?,
            heap_signature: o("_SEGMENT_HEAP", "Signature")?,
        })
    }
}

#[derive(Debug, Clone)]
struct LfhSub {
    va: u64,
    first: u64,
    count: u64,
    next: u64,
}

#[derive(Debug, Clone)]
struct VsSub {
    va: u64,
    /// Offset of the next chunk.
    next: u64,
    prev_units: u64,
}

/// One segment heap (one pool type) and its subsegments.
#[derive(Debug, Clone)]
pub struct SegmentHeap {
    pub heap_va: u64,
    layout: SegLayout,
    heap_key: u64,
    lfh_key: u64,
    next_segment_va: u64,
    segments: Vec<u64>,
    next_unit: u64,
    /// The open LFH subsegment of each block size (full ones are done with).
    lfh: std::collections::BTreeMap<u64, LfhSub>,
    vs: Option<VsSub>,
}

/// Where a block went.
pub struct Placed {
    /// The POOL_HEADER's address.
    pub header: u64,
    pub source: &'static str,
}

impl SegmentHeap {
    /// A heap whose `_SEGMENT_HEAP` is at `heap_va` (page aligned) and whose segments start at
    /// `segments_va` (1 MB aligned).
    pub fn new(
        m: &mut Machine,
        layout: SegLayout,
        heap_va: u64,
        segments_va: u64,
        heap_key: u64,
        lfh_key: u64,
    ) -> Result<SegmentHeap, ForgeError> {
        m.map_range(heap_va, PAGE)?;
        m.write_u32(heap_va + layout.heap_signature, 0xddee_ddee)?;
        for ctx in 0..2u64 {
            let c = heap_va + layout.seg_contexts + ctx * layout.seg_context_size;
            m.write_u64(c, !((1u64 << (20 + 4 * ctx)) - 1))?; // SegmentMask
            m.write_u8(c + layout.unit_shift, if ctx == 0 { 12 } else { 16 })?;
            m.write_u8(c + layout.first_descriptor, 2)?;
            if let Some(h) = layout.context_heap {
                m.write_u64(c + h, heap_va)?;
            }
            // Empty ring until a segment is added.
            let head = c + layout.segment_list_head;
            m.write_u64(head, head)?;
            m.write_u64(head + 8, head)?;
        }
        Ok(SegmentHeap {
            heap_va,
            layout,
            heap_key,
            lfh_key,
            next_segment_va: segments_va,
            segments: Vec::new(),
            next_unit: UNITS,
            lfh: std::collections::BTreeMap::new(),
            vs: None,
        })
    }

    fn list_head(&self) -> u64 {
        self.heap_va + self.layout.seg_contexts + self.layout.segment_list_head
    }

    /// `units` free page units in a segment (a new segment when the current one is full);
    /// returns the range's address after marking its descriptor.
    fn range(&mut self, m: &mut Machine, units: u64, flags: u8) -> Result<u64, ForgeError> {
        if self.next_unit + units > UNITS {
            let seg = self.next_segment_va;
            self.next_segment_va += SEGMENT_SIZE;
            // The segment header is the 256 range descriptors (two pages).
            m.map_range(seg, UNITS * self.layout.descriptor_size)?;
            // Every segment hangs off SegContexts[0] (see list_head).
            let context = self.heap_va + self.layout.seg_contexts;
            let sig = seg ^ context ^ self.heap_key ^ SEGMENT_SIGNATURE_KEY;
            m.write_u64(seg + 16, sig)?;
            self.segments.push(seg);
            let head = self.list_head();
            let mut ring = vec![head];
            ring.extend(self.segments.iter().copied());
            let n = ring.len();
            for i in 0..n {
                m.write_u64(ring[i], ring[(i + 1) % n])?;
                m.write_u64(ring[i] + 8, ring[(i + n - 1) % n])?;
            }
            self.next_unit = (UNITS * self.layout.descriptor_size).div_ceil(PAGE);
        }
        let seg = *self
            .segments
            .last()
            .ok_or_else(|| ForgeError::Internal("no segment".into()))?;
        let unit = self.next_unit;
        self.next_unit += units;
        let d = seg + unit * self.layout.descriptor_size;
        m.write_u8(d + self.layout.range_flags, flags)?;
        m.write_u8(d + self.layout.unit_size, units as u8)?;
        let va = seg + unit * PAGE;
        m.map_range(va, units * PAGE)?;
        Ok(va)
    }

    /// Places a block of `block` bytes (POOL_HEADER included, a multiple of 16, at most 0xFE0)
    /// and marks it allocated or free; the caller writes the POOL_HEADER at `header`.
    pub fn place(
        &mut self,
        m: &mut Machine,
        block: u64,
        allocated: bool,
    ) -> Result<Placed, ForgeError> {
        if block <= LFH_MAX {
            self.place_lfh(m, block, allocated)
        } else {
            self.place_vs(m, block, allocated)
        }
    }

    fn place_lfh(
        &mut self,
        m: &mut Machine,
        block: u64,
        allocated: bool,
    ) -> Result<Placed, ForgeError> {
        if self.lfh.get(&block).is_none_or(|s| s.next >= s.count) {
            let va = self.range(m, 1, LFH_RANGE)?;
            // Bitmap: 2 bits for each block a page can hold; blocks after it, aligned.
            let first = (self.layout.lfh_block_bitmap + PAGE / 16 / 4).div_ceil(16) * 16;
            let first = first.div_ceil(block) * block;
            let count = (PAGE - first) / block;
            let encoded = ((block as u32) | ((first as u32) << 16))
                ^ (self.lfh_key as u32)
                ^ ((va as u32) >> 12);
            m.write_u32(va + self.layout.lfh_block_offsets, encoded)?;
            if let Some(o) = self.layout.lfh_block_count {
                m.write_u16(va + o, count as u16)?;
            }
            self.lfh.insert(
                block,
                LfhSub {
                    va,
                    first,
                    count,
                    next: 0,
                },
            );
        }
        let s = self
            .lfh
            .get_mut(&block)
            .ok_or_else(|| ForgeError::Internal("no LFH subsegment".into()))?;
        let index = s.next;
        s.next += 1;
        let header = s.va + s.first + index * block;
        let bitmap = s.va + self.layout.lfh_block_bitmap + index / 4;
        let shift = (index % 4) * 2;
        let cur = m
            .read(bitmap, 1)
            .and_then(|b| b.first().copied())
            .unwrap_or(0);
        let bits = if allocated { 1u8 } else { 0 };
        m.write_u8(bitmap, (cur & !(3 << shift)) | (bits << shift))?;
        Ok(Placed {
            header,
            source: "lfh",
        })
    }

    fn write_chunk(
        &self,
        m: &mut Machine,
        at: u64,
        units: u64,
        prev_units: u64,
        allocated: bool,
    ) -> Result<(), ForgeError> {
        let bits = (units << 16) | (prev_units << 32) | (u64::from(allocated) << 48);
        m.write_u64(at, bits ^ at ^ self.heap_key)
    }

    fn place_vs(
        &mut self,
        m: &mut Machine,
        block: u64,
        allocated: bool,
    ) -> Result<Placed, ForgeError> {
        let chunk = block + 16;
        if chunk > PAGE {
            return Err(ForgeError::Internal(format!(
                "VS block of {block:#x} bytes does not fit a page"
            )));
        }
        loop {
            if self.vs.is_none() {
                let va = self.range(m, VS_UNITS, VS_RANGE)?;
                let size = (VS_UNITS * PAGE) >> 4;
                m.write_u16(va + self.layout.vs_size, size as u16)?;
                m.write_u16(
                    va + self.layout.vs_signature,
                    (size as u16 ^ 0x2bed) & 0x7fff,
                )?;
                self.vs = Some(VsSub {
                    va,
                    next: VS_FIRST_CHUNK,
                    prev_units: 0,
                });
            }
            let Some(mut s) = self.vs.take() else {
                continue;
            };
            let end = VS_UNITS * PAGE;
            // A chunk never crosses a page: fill the rest of this page with a free chunk.
            if s.next % PAGE + chunk > PAGE {
                let rest = PAGE - s.next % PAGE;
                if s.next + rest >= end {
                    self.seal_sub(m, &mut s)?;
                    continue; // a fresh subsegment
                }
                self.write_chunk(m, s.va + s.next, rest >> 4, s.prev_units, false)?;
                s.prev_units = rest >> 4;
                s.next += rest;
            }
            if s.next + chunk > end {
                self.seal_sub(m, &mut s)?;
                continue;
            }
            let at = s.va + s.next;
            self.write_chunk(m, at, chunk >> 4, s.prev_units, allocated)?;
            s.prev_units = chunk >> 4;
            s.next += chunk;
            self.vs = Some(s);
            return Ok(Placed {
                header: at + 16,
                source: "vs",
            });
        }
    }

    /// Free chunks from the next chunk to the end of the subsegment, page by page.
    fn seal_sub(&self, m: &mut Machine, s: &mut VsSub) -> Result<(), ForgeError> {
        let end = VS_UNITS * PAGE;
        while s.next < end {
            let rest = PAGE - s.next % PAGE;
            self.write_chunk(m, s.va + s.next, rest >> 4, s.prev_units, false)?;
            s.prev_units = rest >> 4;
            s.next += rest;
        }
        Ok(())
    }

    /// Completes the open VS subsegment (call before the dump is written).
    pub fn seal(&mut self, m: &mut Machine) -> Result<(), ForgeError> {
        if let Some(mut s) = self.vs.take() {
            self.seal_sub(m, &mut s)?;
        }
        Ok(())
    }
}
