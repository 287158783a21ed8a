//! Pool pages built by hand in the real header layouts (7601 ISF, ntkrnlpa.pdb); the header
//! words are composed here from the bit positions the symbols declare.

use super::*;
use crate::memory::Absence;
use crate::pool::testmem::*;

/// x64 ULONG 0 of a POOL_HEADER (7601 ISF: PreviousSize@0:8, PoolIndex@8:8, BlockSize@16:8,
/// PoolType@24:8).
/// `pool_type` is the field as Vista+ stores it: 0 free, nonpaged 2, paged 3, quota bit 8.
fn x64_header(
    img: &mut Image,
    at: u64,
    prev: u32,
    size: u32,
    pool_type: u32,
    tag: &[u8; 4],
    billed: u64,
) {
    img.u32(at, prev | (size << 16) | (pool_type << 24));
    img.write(at + 4, tag);
    img.u64(at + 8, billed);
}

#[test]
fn x64_page_chain_and_range_accounting() {
    let p = isf(W7601);
    let layout = HeaderLayout::for_kernel(Some(&p), 8, 7601);
    let base = 0xffff_fa80_0400_0000_u64;
    let mut img = Image::new(8);
    // Page 0: Irp (64 B nonpaged), a free 256 B block, Proc (3776 B nonpaged, quota) to the end.
    x64_header(&mut img, base, 0, 4, 2, b"Irp ", 0);
    x64_header(&mut img, base + 0x40, 4, 0x10, 0, b"Free", 0);
    x64_header(
        &mut img,
        base + 0x140,
        0x10,
        0xec,
        0x0a,
        b"Proc",
        0xffff_fa80_0999_0000,
    );
    // Page 1: first block claims PreviousSize 3.
    x64_header(&mut img, base + 0x1000, 3, 0x100 - 1, 2, b"Bad ", 0);
    // Page 2: mapped, not in the dump. Page 3: not mapped. Pages 4-5: a big allocation.
    img.missing(base + 0x2000);
    // Pages 4-5 are mapped (and zero) so that enumeration reaches them: they must be skipped
    // as the big allocation's, not reported invalid.
    img.touch(base + 0x4000);
    img.touch(base + 0x5000);
    for enumerate in [false, true] {
        img.enumerate = enumerate;
        check_scan(&img, &layout, base);
    }
    // Kernel-space mode finds the same page among every mapped page.
    img.enumerate = true;
    let mut n = 0;
    let scan = scan_kernel_space(img.memory(), &layout, &[], &mut |_| n += 1).unwrap();
    assert_eq!(
        (
            scan.mode,
            scan.pages_valid,
            scan.pages_invalid,
            scan.missing_pool_pages,
            n
        ),
        ("kernel-space", 1, 3, 1, 3)
    );
    img.enumerate = false;
    assert!(scan_kernel_space(img.memory(), &layout, &[], &mut |_| {}).is_none());
}

fn check_scan(img: &Image, layout: &HeaderLayout, base: u64) {
    let mem = img.memory();
    let range = PoolRange {
        start: base,
        end: base + 0x6000,
        kind: PoolKind::Nonpaged,
    };
    let mut blocks = Vec::new();
    let scan = scan_ranges(
        mem,
        layout,
        &[range],
        &[(base + 0x4000, base + 0x6000)],
        &mut |b| blocks.push(*b),
    );
    assert_eq!(
        (
            scan.pages_in_ranges,
            scan.pages_valid,
            scan.pages_invalid,
            scan.missing_pool_pages,
            scan.pages_unmapped,
            scan.pages_big
        ),
        (6, 1, 1, 1, 1, 2),
        "enumerate: {}",
        img.enumerate
    );
    assert_eq!(scan.invalid_examples[0].va, base + 0x1000);
    assert!(
        scan.invalid_examples[0].reason.contains("PreviousSize 3"),
        "{}",
        scan.invalid_examples[0].reason
    );
    let summary: Vec<_> = blocks
        .iter()
        .map(|b| (b.address - base, b.size, b.tag.to_string(), b.allocated))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 64, "Irp ".to_string(), true),
            (0x40, 256, "Free".into(), false),
            (0x140, 3776, "Proc".into(), true)
        ]
    );
    assert_eq!(blocks[0].pool_type.kind, PoolKind::Nonpaged);
    assert_eq!(
        (blocks[1].pool_type.kind, blocks[1].pool),
        (PoolKind::Free, PoolKind::Nonpaged),
        "free: the range's pool"
    );
    assert_eq!(blocks[2].process_billed, Some(0xffff_fa80_0999_0000));
    assert_eq!(blocks[0].process_billed, None, "not a quota block");
}

#[test]
fn x86_page_with_quota_pointer_at_the_block_end() {
    let p = xp_pdb();
    let layout = HeaderLayout::for_kernel(Some(&p), 4, 2600);
    assert_eq!(layout.size, 8);
    let base = 0xe100_0000_u64;
    let mut img = Image::new(4);
    // Block 0: PreviousSize 0, BlockSize 0x100 (2 KiB), PoolType (PagedPool|quota)+1 = 10:
    // USHORT 2 = 0x100 | 10 << 9 = 0x1500 (ntkrnlpa.pdb: BlockSize@2:0:9, PoolType@2:9:7).
    img.u16(base, 0);
    img.u16(base + 2, 0x1500);
    img.write(base + 4, b"Quot");
    img.u32(base + 0x7fc, 0x8888_0000);
    // Block 1: PreviousSize 0x100 (USHORT 0), BlockSize 0x100, free.
    img.u16(base + 0x800, 0x100);
    img.u16(base + 0x802, 0x100);
    img.write(base + 0x804, b"Fre ");
    let mut page = vec![0u8; 0x1000];
    img.memory().read(base, &mut page).unwrap();
    let blocks = walk_page(&page, base, &layout).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        (
            blocks[0].size,
            blocks[0].pool_type.kind,
            blocks[0].pool_type.quota
        ),
        (0x800, PoolKind::Paged, true)
    );
    assert_eq!(blocks[0].process_billed, Some(0x8888_0000));
    assert_eq!(
        (blocks[1].address, blocks[1].allocated),
        (base + 0x800, false)
    );

    // The same page with the last block one unit too long no longer validates.
    img.u16(base + 0x802, 0x101);
    img.memory().read(base, &mut page).unwrap();
    assert!(walk_page(&page, base, &layout)
        .unwrap_err()
        .to_string()
        .contains("past the page end"));
    // And a zero BlockSize is refused rather than looping.
    img.u16(base + 0x802, 0);
    img.memory().read(base, &mut page).unwrap();
    assert!(walk_page(&page, base, &layout)
        .unwrap_err()
        .to_string()
        .contains("BlockSize 0"));
}

#[test]
fn pool_ranges_from_variables() {
    // XP: both ends known; the end variables hold the last byte.
    let xp = |n: &str| match n {
        "MmNonPagedPoolStart" => Some(0x8974_3000),
        "MmNonPagedPoolEnd" => Some(0x8a00_0000 - 1),
        "MmPagedPoolStart" => Some(0xe100_0000),
        "MmPagedPoolEnd" => Some(0),
        "MmSizeOfPagedPoolInBytes" => Some(0x1000_0000),
        _ => None,
    };
    assert_eq!(
        pool_ranges(&xp, 4, 2600),
        [
            PoolRange {
                start: 0x8974_3000,
                end: 0x8a00_0000,
                kind: PoolKind::Nonpaged
            },
            PoolRange {
                start: 0xe100_0000,
                end: 0xf100_0000,
                kind: PoolKind::Paged
            },
        ]
    );
    // Windows 7 x64: no end variables, no paged start variable.
    let w7 = |n: &str| match n {
        "MmNonPagedPoolStart" => Some(0xffff_fa80_0000_0000),
        "MmMaximumNonPagedPoolInBytes" => Some(0x1000_0000),
        "MmSizeOfPagedPoolInBytes" => Some(0x2000_0000),
        _ => None,
    };
    assert_eq!(
        pool_ranges(&w7, 8, 7601),
        [
            PoolRange {
                start: 0xffff_fa80_0000_0000,
                end: 0xffff_fa80_1000_0000,
                kind: PoolKind::Nonpaged
            },
            PoolRange {
                start: 0xffff_f8a0_0000_0000,
                end: 0xffff_f8a0_2000_0000,
                kind: PoolKind::Paged
            },
        ]
    );
    assert!(pool_ranges(&w7, 8, 19041).is_empty());
}

/// Random pages and pages of random header chains: the walker returns (blocks or a reason),
/// never panics or loops, and every block it returns lies inside the page.
#[test]
fn hostile_pages_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let layouts =
        [(4, 2600), (8, 7601), (8, 19041)].map(|(p, b)| HeaderLayout::built_in(p, b).unwrap());
    let mut valid = 0;
    for round in 0..3000 {
        let mut page = vec![0u8; 0x1000];
        if round % 2 == 0 {
            page.iter_mut().for_each(|b| *b = next() as u8);
        } else {
            // A plausible chain with one random corruption.
            let mut off = 0usize;
            let mut prev = 0u32;
            while off < 0x1000 {
                let units = ((next() % 32) as u32 + 1).min(((0x1000 - off) / 16) as u32);
                let word = prev | (units << 16) | (3 << 24);
                page[off..off + 4].copy_from_slice(&word.to_le_bytes());
                prev = units;
                off += units as usize * 16;
            }
            let at = (next() % 0x1000) as usize;
            page[at] = next() as u8;
        }
        for l in &layouts {
            if let Ok(blocks) = walk_page(&page, 0x1000, l) {
                valid += 1;
                assert!(blocks
                    .iter()
                    .all(|b| b.address >= 0x1000 && b.address + b.size <= 0x2000 && b.size > 0));
            }
        }
    }
    assert!(
        valid > 0,
        "some corrupted chains still validate (the corruption hit a tag)"
    );
    assert!(walk_page(&[0u8; 10], 0, &layouts[0]).is_err(), "short page");
}

/// Pages of a pool range counted by what their PTEs say: the transition page is walked, the
/// paged-out, prototype and not-stored ones are missing, the demand-zero and unmapped ones
/// never committed; the same with and without mapping enumeration.
#[test]
fn missing_pool_pages_are_counted_by_cause() {
    let p = isf(W7601);
    let layout = HeaderLayout::for_kernel(Some(&p), 8, 7601);
    let base = 0xffff_f8a0_0100_0000_u64;
    let mut img = Image::new(8);
    // Page 0: two paged blocks filling the page, mapped by a transition PTE.
    x64_header(&mut img, base, 0, 0x80, 3, b"Tran", 0);
    x64_header(&mut img, base + 0x800, 0x80, 0x80, 3, b"Tran", 0);
    img.transition(base);
    img.absent(base + 0x1000, Absence::PagedOut);
    img.absent(base + 0x2000, Absence::Prototype);
    img.missing(base + 0x3000);
    img.absent(base + 0x4000, Absence::NeverCommitted);
    // Page 5 not mapped; pages 6-7 paged out inside a big allocation (not pool pages to walk).
    img.absent(base + 0x6000, Absence::PagedOut);
    img.absent(base + 0x7000, Absence::PagedOut);
    let range = PoolRange {
        start: base,
        end: base + 0x8000,
        kind: PoolKind::Paged,
    };
    for enumerate in [false, true] {
        img.enumerate = enumerate;
        let mut tags = Vec::new();
        let big = [(base + 0x6000, base + 0x8000)];
        let scan = scan_ranges(
            img.memory(),
            &layout,
            std::slice::from_ref(&range),
            &big,
            &mut |b| tags.push(b.tag.to_string()),
        );
        let want = PageStates {
            in_transition: 1,
            paged_out: 1,
            not_in_dump: 1,
            prototype: 1,
            never_committed: 2,
        };
        assert_eq!(scan.page_states, want, "enumerate: {enumerate}");
        assert_eq!(scan.missing_pool_pages, 3, "enumerate: {enumerate}");
        assert_eq!(
            (scan.pages_valid, scan.pages_big, scan.pages_unmapped),
            (1, 2, 1)
        );
        assert_eq!(tags, ["Tran", "Tran"]);
    }
}

/// A run of absent pages (a paged-out page table) is counted page by page, less the pages
/// of big allocations inside it.
#[test]
fn a_run_of_absent_pages_spares_big_allocations() {
    assert_eq!(big_pages(&[(0x3000, 0x5800)], 0x1000, 8), 3);
    assert_eq!(big_pages(&[(0x0, 0x2000), (0x8000, 0x9000)], 0x1000, 4), 1);
    assert_eq!(big_pages(&[], 0x1000, 4), 0);
}
