//! The Windows 10 19H1+ kernel segment heap: where small pool allocations live from build
//! 18362 on, walked the way the kernel lays it out (nt!ExPoolState, its per-node heaps, their
//! page segments, range descriptors, and the LFH and VS subsegments inside them).
//!
//! Chain: `nt!ExPoolState` is an `_EX_POOL_HEAP_MANAGER_STATE`; `PoolNode[NumberOfPools]`
//! each hold `Heaps[4]` (nonpaged, nonpaged NX, paged, paged session, as MemProcFS's
//! vmmwinpool.c types them) and `SpecialHeaps[4]` more. Each is a `_SEGMENT_HEAP`
//! (Signature 0xDDEEDDEE) with two `_HEAP_SEG_CONTEXT`s whose `SegmentListHead` links its
//! `_HEAP_PAGE_SEGMENT`s. A page segment is 256 `_HEAP_PAGE_RANGE_DESCRIPTOR`s describing
//! units of `1 << UnitShift` bytes; a range flagged 11 holds an LFH subsegment, one flagged
//! 15 a VS subsegment ([`lfh`], [`vs`]). Every block starts with a POOL_HEADER holding its
//! tag and type.
//!
//! The metadata is encoded with the keys of `nt!RtlpHpHeapGlobals` (HeapKey, LfhKey); a
//! structure that does not decode is not trusted. Everything is bounded: pool count, segment
//! list length (with loop detection), descriptor index, blocks per subsegment. A page the dump
//! lacks is counted, never read as zeros.

pub mod layout;
pub mod lfh;
mod range;
pub mod vs;
mod walk;

pub use layout::SegLayout;
pub use walk::{walk_segment_heap, walk_session_heap};

use serde::Serialize;

/// `_SEGMENT_HEAP.Signature`.
pub const SEGMENT_HEAP_SIGNATURE: u32 = 0xDDEE_DDEE;
/// The constant a page segment's signature is XORed with, besides HeapKey, the segment's
/// address and its segment context's address (Shafir, "Windows 10 segment heap" / MemProcFS
/// vmmwinpool.c; builds before 26100).
pub const SEGMENT_SIGNATURE_KEY: u64 = 0xA2E6_4EAD_A2E6_4EAD;
/// Range descriptor flags of a range that holds an LFH subsegment, and a VS subsegment.
pub const RANGE_LFH: u8 = 11;
pub const RANGE_VS: u8 = 15;

/// Most pools (`NumberOfPools` is at most 64: the size of `PoolNode[]`).
pub const MAX_POOLS: u32 = 64;
/// Most page segments followed per segment list (1 MiB or 16 MiB each: 2^16 is 64 GiB and
/// more of pool).
pub const MAX_SEGMENTS_PER_LIST: usize = 1 << 16;
/// Largest range read at once (LFH and VS subsegments are at most a few hundred KiB).
pub const MAX_RANGE_BYTES: u64 = 16 << 20;
/// Problems kept as examples.
pub const MAX_EXAMPLES: usize = 20;

/// What the walk found, and what it could not read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SegmentHeapScan {
    #[serde(serialize_with = "crate::pool::hex")]
    pub heap_key: u64,
    #[serde(serialize_with = "crate::pool::hex")]
    pub lfh_key: u64,
    pub pools: u32,
    /// Segment heaps with the right signature, and heap pointers that lacked it.
    pub heaps: u64,
    pub heaps_invalid: u64,
    /// Page segments whose encoded signature decoded to their segment context.
    pub segments: u64,
    pub segments_invalid: u64,
    pub lfh_subsegments: u64,
    pub vs_subsegments: u64,
    /// Subsegments whose encoded offsets or signature did not decode.
    pub subsegments_invalid: u64,
    pub lfh_blocks: u64,
    pub vs_blocks: u64,
    /// Committed pages of segment-heap metadata or subsegments that could not be read (not
    /// in the dump, paged out, prototype PTE): `page_states.missing()`.
    pub missing_pages: u64,
    /// The pages read or not, by what their PTEs say.
    pub page_states: crate::pool::page_states::PageStates,
    /// Some list or count was cut at its bound.
    pub truncated: bool,
    /// The first few problems met.
    pub problems: Vec<String>,
    /// The LFH and VS ranges walked, as sorted `(start, end)`: their pages are not classic
    /// pool pages and the classic page scan skips them.
    #[serde(skip)]
    pub ranges: Vec<(u64, u64)>,
    /// Those of the special pool heaps (`ExPoolState.SpecialHeaps`, a session's
    /// `SpecialPoolHeap`): `!poolfind`'s special pool (`blocks --pool special`).
    #[serde(skip)]
    pub special_ranges: Vec<(u64, u64)>,
}

impl SegmentHeapScan {
    /// Adds another walk's counts (a session heap's) to this one; ranges stay sorted.
    pub fn add(&mut self, o: &SegmentHeapScan) {
        self.heaps += o.heaps;
        self.heaps_invalid += o.heaps_invalid;
        self.segments += o.segments;
        self.segments_invalid += o.segments_invalid;
        self.lfh_subsegments += o.lfh_subsegments;
        self.vs_subsegments += o.vs_subsegments;
        self.subsegments_invalid += o.subsegments_invalid;
        self.lfh_blocks += o.lfh_blocks;
        self.vs_blocks += o.vs_blocks;
        self.missing_pages += o.missing_pages;
        self.page_states.add(&o.page_states);
        self.truncated |= o.truncated;
        for p in &o.problems {
            self.problem(p.clone());
        }
        self.ranges.extend(o.ranges.iter().copied());
        self.ranges.sort_unstable();
        self.special_ranges.extend(o.special_ranges.iter().copied());
        self.special_ranges.sort_unstable();
    }

    /// Records the ranges walked since `ranges[before]` as a special pool heap's.
    pub(crate) fn mark_special(&mut self, before: usize) {
        let new = self.ranges.get(before..).unwrap_or(&[]).to_vec();
        self.special_ranges.extend(new);
        self.special_ranges.sort_unstable();
    }

    /// Whether `va` lies in a special pool heap's LFH or VS range.
    pub fn in_special(&self, va: u64) -> bool {
        let i = self.special_ranges.partition_point(|&(s, _)| s <= va);
        i > 0 && self.special_ranges.get(i - 1).is_some_and(|&(_, e)| va < e)
    }

    pub(crate) fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_EXAMPLES {
            self.problems.push(p);
        }
    }
}

#[cfg(test)]
mod tests;

/// A block of the segment heap as the rest of the pool engine lists it: its POOL_HEADER
/// (which the allocator writes at the start of every LFH block and after every VS chunk
/// header) gives tag and type; `allocated` comes from the allocator's own state (LFH bitmap,
/// VS chunk header), and a block whose header records no type takes its heap's pool.
pub(crate) fn block_from_header(
    header: &crate::pool::header::HeaderLayout,
    bytes: &[u8],
    address: u64,
    size: u64,
    allocated: bool,
    heap_kind: crate::pool::PoolKind,
) -> Option<crate::pool::pages::Block> {
    let h = header.decode(bytes)?;
    let pool = if allocated && !h.pool_type.is_free() {
        h.pool_type.kind
    } else {
        heap_kind
    };
    let process_billed = (allocated && h.pool_type.quota)
        .then_some(h.process_billed)
        .flatten();
    Some(crate::pool::pages::Block {
        address,
        size,
        previous_size: Some(header.bytes(h.previous_size)),
        tag: h.tag,
        pool_type: h.pool_type,
        pool,
        allocated,
        process_billed,
    })
}
