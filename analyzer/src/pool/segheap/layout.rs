//! Offsets of the kernel segment heap's structures, all from the kernel's own symbols: these
//! structures moved between 19041 and 20348 (`_SEGMENT_HEAP.SegContexts` 0x100 -> 0x140,
//! `NumberOfPools` 0x38d0 -> 0x38e0), so there is no built-in table to fall back on.

use crate::pool::PoolError;
use crate::symbols::Profile;

/// Every offset and size the walker reads, from the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegLayout {
    /// RVAs of nt!ExPoolState and nt!RtlpHpHeapGlobals.
    pub ex_pool_state_rva: u64,
    pub heap_globals_rva: u64,
    // _RTLP_HP_HEAP_GLOBALS
    pub heap_key: u64,
    pub lfh_key: u64,
    // _EX_POOL_HEAP_MANAGER_STATE
    pub number_of_pools: u64,
    pub pool_node: u64,
    pub special_heaps: Option<u64>,
    // _EX_HEAP_POOL_NODE
    pub pool_node_size: u64,
    pub node_heaps: u64,
    // _SEGMENT_HEAP
    pub heap_signature: u64,
    pub seg_contexts: u64,
    // _HEAP_SEG_CONTEXT
    pub seg_context_size: u64,
    pub unit_shift: u64,
    pub first_descriptor_index: u64,
    pub segment_list_head: u64,
    // _HEAP_PAGE_SEGMENT
    pub page_segment_size: u64,
    pub segment_signature: u64,
    // _HEAP_PAGE_RANGE_DESCRIPTOR
    pub descriptor_size: u64,
    pub range_flags: u64,
    pub unit_size: u64,
    // _HEAP_LFH_SUBSEGMENT
    pub lfh_block_count: u64,
    pub lfh_block_offsets: u64,
    pub lfh_block_bitmap: u64,
    // _HEAP_VS_SUBSEGMENT
    pub vs_subsegment_size: u64,
    pub vs_size: u64,
    pub vs_signature: u64,
    // _HEAP_VS_CHUNK_HEADER
    pub vs_chunk_header_size: u64,
    /// `_MM_SESSION_SPACE.HeapState`, a pointer to the session's `_EX_HEAP_SESSION_STATE`
    /// (docs/pool.md "Where the 19H1+ session segment heap is rooted"); `None` when the
    /// symbols lack it, and then session segment heaps are not walked.
    pub session_heap_state: Option<u64>,
    /// `_EX_HEAP_SESSION_STATE.PagedHeap` and `.SpecialPoolHeap`: the session's segment heaps.
    pub session_paged_heap: Option<u64>,
    pub session_special_heap: Option<u64>,
}

impl SegLayout {
    /// The layout from the profile; `Err` names the first symbol or field it lacks.
    pub fn from_profile(p: &Profile) -> Result<SegLayout, PoolError> {
        let missing = |what: &'static str| PoolError::Missing {
            what,
            why: "not in the kernel's symbols".into(),
        };
        let off =
            |ty: &str, f: &str, what: &'static str| p.offset(ty, f).ok_or_else(|| missing(what));
        let size = |ty: &str, what: &'static str| p.type_size(ty).ok_or_else(|| missing(what));
        const M: &str = "_EX_POOL_HEAP_MANAGER_STATE";
        const SC: &str = "_HEAP_SEG_CONTEXT";
        const RD: &str = "_HEAP_PAGE_RANGE_DESCRIPTOR";
        const LFH: &str = "_HEAP_LFH_SUBSEGMENT";
        const VS: &str = "_HEAP_VS_SUBSEGMENT";
        let l = SegLayout {
            ex_pool_state_rva: p
                .global("ExPoolState")
                .ok_or_else(|| missing("nt!ExPoolState"))?,
            heap_globals_rva: p
                .global("RtlpHpHeapGlobals")
                .ok_or_else(|| missing("nt!RtlpHpHeapGlobals"))?,
            heap_key: off(
                "_RTLP_HP_HEAP_GLOBALS",
                "HeapKey",
                "_RTLP_HP_HEAP_GLOBALS.HeapKey",
            )?,
            lfh_key: off(
                "_RTLP_HP_HEAP_GLOBALS",
                "LfhKey",
                "_RTLP_HP_HEAP_GLOBALS.LfhKey",
            )?,
            number_of_pools: off(
                M,
                "NumberOfPools",
                "_EX_POOL_HEAP_MANAGER_STATE.NumberOfPools",
            )?,
            pool_node: off(M, "PoolNode", "_EX_POOL_HEAP_MANAGER_STATE.PoolNode")?,
            special_heaps: p.offset(M, "SpecialHeaps"),
            pool_node_size: size("_EX_HEAP_POOL_NODE", "_EX_HEAP_POOL_NODE")?,
            node_heaps: off("_EX_HEAP_POOL_NODE", "Heaps", "_EX_HEAP_POOL_NODE.Heaps")?,
            heap_signature: off("_SEGMENT_HEAP", "Signature", "_SEGMENT_HEAP.Signature")?,
            seg_contexts: off("_SEGMENT_HEAP", "SegContexts", "_SEGMENT_HEAP.SegContexts")?,
            seg_context_size: size(SC, "_HEAP_SEG_CONTEXT")?,
            unit_shift: off(SC, "UnitShift", "_HEAP_SEG_CONTEXT.UnitShift")?,
            first_descriptor_index: off(
                SC,
                "FirstDescriptorIndex",
                "_HEAP_SEG_CONTEXT.FirstDescriptorIndex",
            )?,
            segment_list_head: off(SC, "SegmentListHead", "_HEAP_SEG_CONTEXT.SegmentListHead")?,
            page_segment_size: size("_HEAP_PAGE_SEGMENT", "_HEAP_PAGE_SEGMENT")?,
            segment_signature: off(
                "_HEAP_PAGE_SEGMENT",
                "Signature",
                "_HEAP_PAGE_SEGMENT.Signature",
            )?,
            descriptor_size: size(RD, "_HEAP_PAGE_RANGE_DESCRIPTOR")?,
            range_flags: off(RD, "RangeFlags", "_HEAP_PAGE_RANGE_DESCRIPTOR.RangeFlags")?,
            unit_size: off(RD, "UnitSize", "_HEAP_PAGE_RANGE_DESCRIPTOR.UnitSize")?,
            lfh_block_count: off(LFH, "BlockCount", "_HEAP_LFH_SUBSEGMENT.BlockCount")?,
            lfh_block_offsets: off(LFH, "BlockOffsets", "_HEAP_LFH_SUBSEGMENT.BlockOffsets")?,
            lfh_block_bitmap: off(LFH, "BlockBitmap", "_HEAP_LFH_SUBSEGMENT.BlockBitmap")?,
            vs_subsegment_size: size(VS, "_HEAP_VS_SUBSEGMENT")?,
            vs_size: off(VS, "Size", "_HEAP_VS_SUBSEGMENT.Size")?,
            vs_signature: off(VS, "Signature", "_HEAP_VS_SUBSEGMENT.Signature")?,
            vs_chunk_header_size: size("_HEAP_VS_CHUNK_HEADER", "_HEAP_VS_CHUNK_HEADER")?,
            session_heap_state: p.offset("_MM_SESSION_SPACE", "HeapState"),
            session_paged_heap: p.offset("_EX_HEAP_SESSION_STATE", "PagedHeap"),
            session_special_heap: p.offset("_EX_HEAP_SESSION_STATE", "SpecialPoolHeap"),
        };
        // A page segment is its 256 range descriptors; anything else is not the layout this
        // walker knows.
        if l.descriptor_size == 0 || l.page_segment_size != 256 * l.descriptor_size {
            return Err(PoolError::Implausible {
                what: "_HEAP_PAGE_SEGMENT size (256 range descriptors)",
                value: l.page_segment_size,
                limit: 256 * l.descriptor_size,
            });
        }
        if l.pool_node_size == 0 || l.pool_node_size > 0x10000 {
            return Err(PoolError::Implausible {
                what: "_EX_HEAP_POOL_NODE size",
                value: l.pool_node_size,
                limit: 0x10000,
            });
        }
        Ok(l)
    }
}
