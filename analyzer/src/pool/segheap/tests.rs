//! The walker on a segment heap built by hand with the 19041 kernel's own layouts (ISF). The
//! encoded values are worked out by hand in the comments, not with the walker's decoders.

use super::*;
use crate::pool::header::HeaderLayout;
use crate::pool::pages::Block;
use crate::pool::testmem::{isf, Image, W19041, W20348};
use crate::pool::{KernelContext, PoolError, PoolKind, Tag};
use crate::symbols::Profile;

const KBASE: u64 = 0xffff_f800_0000_0000;
const HEAP_KEY: u64 = 0x1111_2222_3333_4444;
const LFH_KEY: u64 = 0x5555_6666_7777_8888;
const HEAP: u64 = 0xffff_c000_0000_0000;
const SEG: u64 = 0xffff_c000_0010_0000;
const LFH: u64 = SEG + 0x2000;
const VS: u64 = SEG + 0x3000;

/// x64 POOL_HEADER: ULONG0 = BlockSize << 16 | PoolType << 24 (PreviousSize and PoolIndex 0).
fn pool_header(img: &mut Image, va: u64, block_size: u32, pool_type: u32, tag: &[u8; 4]) {
    img.u32(va, block_size << 16 | pool_type << 24);
    img.write(va + 4, tag);
}

struct Fixture {
    img: Image,
    p: Profile,
}

/// Where the two kernels differ (their ISFs): `NumberOfPools`, `_SEGMENT_HEAP.SegContexts`,
/// and so the segment signature, which encodes the segment context's address.
struct Kernel {
    guid: &'static str,
    number_of_pools: u64,
    seg_contexts: u64,
    /// ctx0 ^ HeapKey ^ SEG ^ 0xa2e64eada2e64ead, worked out below.
    signature: u64,
}

// 19041, ctx0 = HEAP + 0x100:
// 0xffffc00000000100 ^ 0x1111222233334444 ^ 0xffffc00000100000 ^ 0xa2e64eada2e64ead
//   = 0x0000000000100100 ^ 0x1111222233334444 ^ 0xa2e64eada2e64ead
//   = 0x11112222_33234544 ^ 0xa2e64ead_a2e64ead = 0xb3f76c8f_91c50be9
const K19041: Kernel = Kernel {
    guid: W19041,
    number_of_pools: 0x38d0,
    seg_contexts: 0x100,
    signature: 0xb3f7_6c8f_91c5_0be9,
};
// 20348, ctx0 = HEAP + 0x140: 0x...00100140 ^ 0x...33334444 = 0x...33234504;
// 0x11112222_33234504 ^ 0xa2e64ead_a2e64ead = 0xb3f76c8f_91c50ba9
const K20348: Kernel = Kernel {
    guid: W20348,
    number_of_pools: 0x38e0,
    seg_contexts: 0x140,
    signature: 0xb3f7_6c8f_91c5_0ba9,
};

fn fixture() -> Fixture {
    fixture_for(&K19041)
}

fn fixture_for(k: &Kernel) -> Fixture {
    let p = isf(k.guid);
    let mut img = Image::new(8);
    let state = KBASE + p.global("ExPoolState").unwrap();
    let globals = KBASE + p.global("RtlpHpHeapGlobals").unwrap();
    // Both kernels: _RTLP_HP_HEAP_GLOBALS HeapKey +0, LfhKey +8; PoolNode +0x3900 with
    // Heaps[4] at +0; SpecialHeaps +0x86900; _SEGMENT_HEAP Signature +0x10; _HEAP_SEG_CONTEXT
    // 0xc0 bytes (UnitShift +8, FirstDescriptorIndex +0xa, SegmentListHead +0x48).
    img.u64(globals, HEAP_KEY);
    img.u64(globals + 8, LFH_KEY);
    img.u32(state + k.number_of_pools, 1);
    img.touch(state + 0x86900); // SpecialHeaps[4]: none
    img.u64(state + 0x3900 + 2 * 8, HEAP); // Heaps[2]: paged
    img.u32(HEAP + 0x10, 0xDDEE_DDEE);
    let ctx0 = HEAP + k.seg_contexts;
    let ctx1 = ctx0 + 0xc0;
    img.write(ctx0 + 8, &[12]);
    img.write(ctx0 + 0xa, &[2]);
    img.u64(ctx0 + 0x48, SEG);
    img.u64(ctx0 + 0x50, SEG);
    img.write(ctx1 + 8, &[16]);
    img.u64(ctx1 + 0x48, ctx1 + 0x48); // empty list
    img.u64(ctx1 + 0x50, ctx1 + 0x48);
    // Page segment: ListEntry back to the head; Signature = ctx0 ^ HeapKey ^ SEG ^ A2E6...
    img.u64(SEG, ctx0 + 0x48);
    img.u64(SEG + 8, ctx0 + 0x48);
    img.u64(SEG + 0x10, k.signature);
    // Descriptors (0x20 each; RangeFlags +0x18, UnitSize +0x1f): #2 LFH 1 unit, #3 VS 2 units,
    // #5 a large range (flags 3) that is not ours.
    for (i, flags, units) in [(2u64, 11u8, 1u8), (3, 15, 2), (5, 3, 1)] {
        img.write(SEG + i * 0x20 + 0x18, &[flags]);
        img.write(SEG + i * 0x20 + 0x1f, &[units]);
    }
    img.touch(SEG + 0x1000);
    // LFH subsegment: BlockCount 4 (+0x22); BlockOffsets (+0x28) = (0x40 | 0x40 << 16) ^
    // low32(LfhKey) ^ (low32(LFH) >> 12) = 0x00400040 ^ 0x77778888 ^ 0x102 = 0x773789ca.
    img.u16(LFH + 0x22, 4);
    img.u32(LFH + 0x28, 0x7737_89ca);
    // Bitmap (+0x30), 2 bits a block: #0 busy 01, #1 free 00, #2 busy+unused 11, #3 free 00.
    img.write(LFH + 0x30, &[0b0011_0001]);
    pool_header(&mut img, LFH + 0x40, 4, 3, b"Aaaa");
    pool_header(&mut img, LFH + 0x80, 4, 0, b"Free"); // freed: header kept
    pool_header(&mut img, LFH + 0xc0, 4, 3, b"Ccc2");
    // #3 at +0x100 never used: zeros.
    // VS subsegment: Size 0x200 (+0x20), Signature 0x200 ^ 0x2BED = 0x29ED (+0x22).
    img.u16(VS + 0x20, 0x200);
    img.u16(VS + 0x22, 0x29ed);
    // Chunks from +0x30; HeaderBits = (size/16) << 16 | Allocated << 48, XOR chunk VA, HeapKey.
    let chunk = |img: &mut Image, va: u64, size: u64, alloc: bool| {
        img.u64(
            va,
            ((size / 16) << 16 | u64::from(alloc) << 48) ^ va ^ HEAP_KEY,
        );
    };
    chunk(&mut img, VS + 0x30, 0x60, true);
    pool_header(&mut img, VS + 0x40, 5, 3, b"VsA1");
    // A freed chunk whose block's POOL_HEADER is intact (listed free), one whose header the
    // free-tree node overwrote (skipped), and free space that never held a block (skipped).
    chunk(&mut img, VS + 0x90, 0x60, false);
    pool_header(&mut img, VS + 0xa0, 5, 0, b"VsF2");
    chunk(&mut img, VS + 0xf0, 0x60, false);
    img.u64(VS + 0x100, 0xffff_a000_1234_5670);
    img.u64(VS + 0x108, 0xffff_a000_1234_5a81);
    chunk(&mut img, VS + 0x150, 0xe80, false);
    // Straddling chunk: header +0xfd0, 0x120 bytes; its POOL_HEADER at the next page, 0xf0.
    chunk(&mut img, VS + 0xfd0, 0x120, true);
    pool_header(&mut img, VS + 0x1000, 0xf, 3, b"VsC3");
    chunk(&mut img, VS + 0x10f0, 0x10, true); // header-only spacer
    chunk(&mut img, VS + 0x1100, 0xf00, true);
    pool_header(&mut img, VS + 0x1110, 0xef, 3, b"VsE5");
    Fixture { img, p }
}

/// (address, size, tag, pool, allocated, source) of each block, in walk order.
type Listed = Vec<(u64, u64, Tag, PoolKind, bool, &'static str)>;

fn walk(f: &Fixture) -> (Result<SegmentHeapScan, PoolError>, Listed) {
    let ctx = KernelContext {
        kernel_base: KBASE,
        pointer_size: 8,
        build: 19041,
        processors: 1,
        profile: Some(&f.p),
    };
    let l = SegLayout::from_profile(&f.p).unwrap();
    let header = HeaderLayout::for_kernel(Some(&f.p), 8, 19041);
    let mut out = Vec::new();
    let r = walk_segment_heap(&f.img, &ctx, &l, &header, &mut |b: &Block, s| {
        out.push((b.address, b.size, b.tag, b.pool, b.allocated, s.as_str()))
    });
    (r, out)
}

fn t(s: &[u8; 4]) -> Tag {
    Tag(*s)
}

#[test]
fn layouts_of_19041_and_20348_differ_where_the_kernels_do() {
    let a = SegLayout::from_profile(&isf(W19041)).unwrap();
    let b = SegLayout::from_profile(&isf(crate::pool::testmem::W20348)).unwrap();
    assert_eq!((a.seg_contexts, b.seg_contexts), (0x100, 0x140));
    assert_eq!((a.number_of_pools, b.number_of_pools), (0x38d0, 0x38e0));
    assert_eq!(
        (
            a.lfh_block_offsets,
            a.lfh_block_bitmap,
            a.vs_chunk_header_size
        ),
        (0x28, 0x30, 0x10)
    );
    assert!(
        SegLayout::from_profile(&crate::pool::testmem::xp_pdb()).is_err(),
        "XP has no segment heap"
    );
}

#[test]
fn walks_lfh_and_vs_blocks_of_a_hand_built_heap() {
    let f = fixture();
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(
        (s.pools, s.heaps, s.segments, s.segments_invalid),
        (1, 1, 1, 0)
    );
    assert_eq!(
        (s.lfh_subsegments, s.vs_subsegments, s.subsegments_invalid),
        (1, 1, 0)
    );
    assert_eq!(s.missing_pages, 0);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.ranges, vec![(LFH, LFH + 0x1000), (VS, VS + 0x2000)]);
    let p = PoolKind::Paged;
    assert_eq!(
        blocks,
        vec![
            (LFH + 0x40, 0x40, t(b"Aaaa"), p, true, "lfh"),
            (LFH + 0x80, 0x40, t(b"Free"), p, false, "lfh"),
            (LFH + 0xc0, 0x40, t(b"Ccc2"), p, true, "lfh"),
            (VS + 0x40, 0x50, t(b"VsA1"), p, true, "vs"),
            (VS + 0xa0, 0x50, t(b"VsF2"), p, false, "vs"),
            (VS + 0x1000, 0xf0, t(b"VsC3"), p, true, "vs"),
            (VS + 0x1110, 0xef0, t(b"VsE5"), p, true, "vs"),
        ]
    );
}

#[test]
fn the_20348_layout_walks_the_same_heap() {
    let f = fixture_for(&K20348);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(
        (s.segments, s.lfh_blocks, s.vs_blocks),
        (1, 3, 4),
        "{:?}",
        s.problems
    );
    assert_eq!(blocks.len(), 7);
    // The 19041 signature (context at +0x100) is not valid for a 20348 heap (+0x140).
    let mut f = fixture_for(&K20348);
    f.img.u64(SEG + 0x10, K19041.signature);
    assert_eq!(walk(&f).0.unwrap().segments_invalid, 1);
}

#[test]
fn a_segment_whose_signature_names_another_context_is_not_walked() {
    let mut f = fixture();
    // Encoded with the heap's address instead of its segment context's (0x100 apart).
    f.img.u64(SEG + 0x10, 0xb3f7_6c8f_91c5_0be9 ^ 0x100);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!((s.segments, s.segments_invalid), (0, 1));
    assert!(blocks.is_empty());
    assert!(
        s.problems[0].contains("not its segment context"),
        "{:?}",
        s.problems
    );
}

#[test]
fn hostile_heaps_end_cleanly() {
    // A segment list that loops on itself.
    let mut f = fixture();
    f.img.u64(SEG, SEG);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(s.segments, 1);
    assert_eq!(blocks.len(), 7);
    assert!(
        s.problems.iter().any(|p| p.contains("loops")),
        "{:?}",
        s.problems
    );

    // LFH offsets that decode to garbage: the subsegment is rejected, VS still walked.
    let mut f = fixture();
    f.img.u32(LFH + 0x28, 0xdead_beef);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(
        (s.lfh_subsegments, s.subsegments_invalid, s.vs_blocks),
        (0, 1, 4)
    );
    assert_eq!(blocks.len(), 4);

    // A VS chunk of 0 bytes stops that subsegment's walk.
    let mut f = fixture();
    f.img.u64(VS + 0x90, (VS + 0x90) ^ HEAP_KEY);
    let (r, _) = walk(&f);
    assert_eq!(r.unwrap().vs_blocks, 1);

    // An absurd pool count is refused.
    let mut f = fixture();
    let state = KBASE + f.p.global("ExPoolState").unwrap();
    f.img.u32(state + 0x38d0, 1000);
    assert!(matches!(walk(&f).0, Err(PoolError::Implausible { .. })));
}

#[test]
fn a_missing_page_is_counted_not_read_as_zeros() {
    let mut f = fixture();
    f.img.missing(LFH);
    f.img.missing(VS + 0x1000);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(s.missing_pages, 2);
    // The LFH header is gone. Of VS only the blocks on the first page are certain: the straddling chunk's
    // POOL_HEADER and the next chunk header are on the missing page, so the chain ends there
    // (no block is made up from the zeros a missing page is not).
    let vs: Vec<u64> = blocks.iter().map(|b| b.0).collect();
    assert_eq!(vs, vec![VS + 0x40, VS + 0xa0]);
}

/// The same walk with the LFH page paged out, the VS page's second half behind a prototype
/// PTE and its first page in transition: counted by cause, the transition page read.
#[test]
fn unread_pages_are_counted_by_cause() {
    let mut f = fixture();
    f.img.absent(LFH, crate::memory::Absence::PagedOut);
    f.img.absent(VS + 0x1000, crate::memory::Absence::Prototype);
    f.img.transition(VS);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(s.missing_pages, 2);
    let states = s.page_states;
    assert_eq!(
        (states.paged_out, states.prototype, states.not_in_dump),
        (1, 1, 0)
    );
    assert_eq!(states.in_transition, 1);
    let vs: Vec<u64> = blocks.iter().map(|b| b.0).collect();
    assert_eq!(vs, vec![VS + 0x40, VS + 0xa0]);
}

/// The same heap reached from `ExPoolState.SpecialHeaps[0]` instead of a pool node: its
/// ranges are the special pool's (`blocks --pool special`).
#[test]
fn special_heap_ranges_are_recorded() {
    let mut f = fixture();
    let state = KBASE + f.p.global("ExPoolState").unwrap();
    let (r, _) = walk(&f);
    let s = r.unwrap();
    assert!(s.special_ranges.is_empty() && !s.in_special(LFH));
    f.img.u64(state + 0x3900 + 2 * 8, 0);
    f.img.u64(state + 0x86900, HEAP);
    let (r, blocks) = walk(&f);
    let s = r.unwrap();
    assert_eq!(s.special_ranges, [(LFH, LFH + 0x1000), (VS, VS + 0x2000)]);
    assert!(blocks.iter().all(|b| s.in_special(b.0)), "{blocks:x?}");
    assert!(!s.in_special(SEG));
}

#[test]
fn decoders_match_hand_computed_values() {
    // 0x773789ca ^ 0x77778888 ^ (0x00102000 >> 12 = 0x102) = 0x00400040.
    assert_eq!(lfh::decode_offsets(0x7737_89ca, LFH_KEY, LFH), (0x40, 0x40));
    // Size 0x60 (6 units), allocated: 0x0001_0000_0006_0000.
    let va = VS + 0x30;
    assert_eq!(
        vs::decode_chunk(0x0001_0000_0006_0000 ^ va ^ HEAP_KEY, va, HEAP_KEY),
        (0x60, true)
    );
}

/// A session's MM_SESSION_SPACE and its `_EX_HEAP_SESSION_STATE` (19041 ISF: HeapState at
/// 0x2a0; PagedHeap 0x38e0, SpecialPoolHeap 0x38e8), pointing at the fixture's heap.
const SESSION: u64 = 0xffff_d000_0000_0000;
const SESSION_STATE: u64 = 0xffff_d000_0001_0000;

fn walk_session(f: &Fixture) -> (Result<Option<SegmentHeapScan>, PoolError>, Listed) {
    let ctx = KernelContext {
        kernel_base: KBASE,
        pointer_size: 8,
        build: 19041,
        processors: 1,
        profile: Some(&f.p),
    };
    let l = SegLayout::from_profile(&f.p).unwrap();
    let header = HeaderLayout::for_kernel(Some(&f.p), 8, 19041);
    let mut out = Vec::new();
    let r = walk_session_heap(&f.img, &ctx, &l, &header, SESSION, &mut |b: &Block, s| {
        out.push((b.address, b.size, b.tag, b.pool, b.allocated, s.as_str()))
    });
    (r, out)
}

#[test]
fn session_heap_layouts_come_from_the_isfs() {
    let a = SegLayout::from_profile(&isf(W19041)).unwrap();
    let b = SegLayout::from_profile(&isf(W20348)).unwrap();
    assert_eq!(
        (a.session_heap_state, b.session_heap_state),
        (Some(0x2a0), Some(0x2a0))
    );
    assert_eq!(
        (a.session_paged_heap, a.session_special_heap),
        (Some(0x38e0), Some(0x38e8))
    );
    assert_eq!(
        (b.session_paged_heap, b.session_special_heap),
        (Some(0x38f0), Some(0x38f8))
    );
}

#[test]
fn a_session_heap_is_walked_from_mm_session_space_heap_state() {
    let mut f = fixture();
    f.img.u64(SESSION + 0x2a0, SESSION_STATE);
    f.img.u64(SESSION_STATE + 0x38e0, HEAP);
    // SpecialPoolHeap naming the same heap again: walked once.
    f.img.u64(SESSION_STATE + 0x38e8, HEAP);
    let (r, blocks) = walk_session(&f);
    let s = r.unwrap().expect("the session has a heap state");
    assert_eq!(
        (s.pools, s.heaps, s.segments, s.segments_invalid),
        (0, 1, 1, 0)
    );
    assert_eq!((s.heap_key, s.lfh_key), (HEAP_KEY, LFH_KEY));
    assert_eq!(blocks.len(), 7, "{:?}", s.problems);
    assert_eq!(
        blocks[0],
        (LFH + 0x40, 0x40, t(b"Aaaa"), PoolKind::Paged, true, "lfh")
    );
    assert_eq!(s.ranges, vec![(LFH, LFH + 0x1000), (VS, VS + 0x2000)]);

    // Heap-backed session pool off: HeapState 0, nothing to walk.
    let mut f = fixture();
    f.img.u64(SESSION + 0x2a0, 0);
    assert_eq!(walk_session(&f).0.unwrap(), None);

    // A state whose heap pointer does not lead to a segment heap: counted, no block.
    let mut f = fixture();
    f.img.u64(SESSION + 0x2a0, SESSION_STATE);
    f.img.u64(SESSION_STATE + 0x38e0, SESSION_STATE);
    f.img.u64(SESSION_STATE + 0x38e8, 0);
    let (r, blocks) = walk_session(&f);
    let s = r.unwrap().unwrap();
    assert_eq!((s.heaps, s.heaps_invalid), (0, 1));
    assert!(blocks.is_empty());

    // Session space not in the dump: an error, not an empty session.
    let f = fixture();
    assert!(walk_session(&f).0.is_err());
}
