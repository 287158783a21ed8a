//! !vm figures and quota decoding on hand-built memory in the real layouts.

use super::*;
use crate::pool::pages::Block;
use crate::pool::tag::Tag;
use crate::pool::testmem::*;
use crate::pool::types::PoolType;
use crate::pool::vm_descriptors::PoolDescriptorUsage;
use crate::symbols::Profile;

const KB64: u64 = 0xffff_f800_1000_0000;
const KB32: u64 = 0x8040_0000;

fn ctx(p: Option<&Profile>, ptr: u8, build: u32, kb: u64) -> KernelContext<'_> {
    KernelContext {
        kernel_base: kb,
        pointer_size: ptr,
        build,
        processors: 1,
        profile: p,
    }
}

#[test]
fn xp_figures_from_the_profile_and_exhaustion_warning() {
    let p = xp_pdb();
    let g = |n| KB32 + p.global(n).unwrap();
    let mut img = Image::new(4);
    img.u32(g("MmSizeOfPagedPoolInBytes"), 0x1000_0000);
    img.u32(g("MmPagedPoolCommit"), 0x2000);
    // 0x7a00 pages = 0x7a0_0000 bytes of a 0x800_0000 maximum: 95%.
    img.u32(g("MmAllocatedNonPagedPool"), 0x7a00);
    img.u32(g("MmMaximumNonPagedPoolInBytes"), 0x800_0000);
    let has_info = p.offset("_MM_PAGED_POOL_INFO", "AllocatedPagedPool");
    if let Some(off) = has_info {
        img.u32(g("MmPagedPoolInfo") + off, 0x1800);
    }
    let s = vm_summary(img.memory(), &ctx(Some(&p), 4, 2600, KB32), &[], None);
    assert_eq!(s.paged_max.as_ref().unwrap().bytes, 0x1000_0000);
    assert_eq!(
        s.paged_max.as_ref().unwrap().source,
        "profile:MmSizeOfPagedPoolInBytes"
    );
    assert_eq!(s.paged_commit.as_ref().unwrap().bytes, 0x200_0000);
    assert_eq!(s.nonpaged_in_use.as_ref().unwrap().bytes, 0x7a0_0000);
    assert_eq!(s.nonpaged_max.as_ref().unwrap().bytes, 0x800_0000);
    // MmPagedPoolInfo.AllocatedPagedPool when the PDB describes it, else the commit.
    assert_eq!(
        s.paged_in_use.as_ref().map(|f| f.bytes),
        Some(has_info.map_or(0x200_0000, |_| 0x180_0000))
    );
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].starts_with("nonpaged pool is near exhaustion")
            && s.warnings[0].contains("95%"),
        "{}",
        s.warnings[0]
    );

    // The debugger data block's values win over the profile, and say so.
    let s = vm_summary(
        img.memory(),
        &ctx(Some(&p), 4, 2600, KB32),
        &[("MmAllocatedNonPagedPool", 0x100)],
        None,
    );
    assert_eq!(s.nonpaged_in_use.as_ref().unwrap().bytes, 0x10_0000);
    assert_eq!(
        s.nonpaged_in_use.as_ref().unwrap().source,
        "kdbg:MmAllocatedNonPagedPool"
    );
    assert!(s.warnings.is_empty());
}

#[test]
fn win10_in_use_falls_back_to_the_tag_tables() {
    let p = isf(W19041);
    let mut img = Image::new(8);
    img.u64(
        KB64 + p.global("MmSizeOfPagedPoolInBytes").unwrap(),
        0x100_0000,
    );
    let row = |tag: &str, pb, nb| TagStats {
        tag: Tag::from_text(tag).unwrap(),
        paged_allocs: 1,
        paged_frees: 0,
        paged_bytes: pb,
        nonpaged_allocs: 1,
        nonpaged_frees: 0,
        nonpaged_bytes: nb,
    };
    let rows = [row("Leak", 0xf0_0000, 0x10), row("Ntfs", 0x8000, 0x20)];
    let s = vm_summary(
        img.memory(),
        &ctx(Some(&p), 8, 19041, KB64),
        &[],
        Some(&rows),
    );
    let used = s.paged_in_use.unwrap();
    assert_eq!(
        (used.bytes, used.source.as_str()),
        (0xf0_8000, "tag tables")
    );
    assert_eq!(s.nonpaged_in_use.unwrap().bytes, 0x30);
    assert_eq!(s.nonpaged_max, None);
    // 0xf0_8000 / 0x100_0000 = 15761408 / 16777216 = 93.9%: under !vm's 95% for paged pool.
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // 0xf8_8000 / 0x100_0000 = 97.1%: over it, shown rounded down.
    let rows = [row("Leak", 0xf8_0000, 0x10), row("Ntfs", 0x8000, 0x20)];
    let s = vm_summary(
        img.memory(),
        &ctx(Some(&p), 8, 19041, KB64),
        &[],
        Some(&rows),
    );
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("97%"), "{}", s.warnings[0]);
}

#[test]
fn quota_decoded_with_cookie_and_named_from_the_process_list() {
    let p = isf(W19041);
    let off = |f| p.offset("_EPROCESS", f).unwrap();
    let mut img = Image::new(8);
    let head = KB64 + p.global("PsActiveProcessHead").unwrap();
    let (sys, app) = (0xffff_a000_0000_1000_u64, 0xffff_a000_0010_0000_u64);
    // head -> System -> leaky.exe -> head
    img.u64(head, sys + off("ActiveProcessLinks"));
    img.u64(
        sys + off("ActiveProcessLinks"),
        app + off("ActiveProcessLinks"),
    );
    img.u64(app + off("ActiveProcessLinks"), head);
    img.u64(sys + off("UniqueProcessId"), 4);
    img.write(sys + off("ImageFileName"), b"System\0");
    img.u64(app + off("UniqueProcessId"), 0x1234);
    img.write(app + off("ImageFileName"), b"leaky.exe\0");
    let cookie = 0x5a5a_1234_8765_f0f0_u64;
    img.u64(KB64 + p.global("ExpPoolQuotaCookie").unwrap(), cookie);
    let mem = img.memory();
    let c = ctx(Some(&p), 8, 19041, KB64);
    let (procs, warnings) = walk_processes(mem, &c, head).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<_> = procs
        .iter()
        .map(|p| (p.pid, p.name.as_str(), p.eprocess))
        .collect();
    assert_eq!(names, [(4, "System", sys), (0x1234, "leaky.exe", app)]);

    let enc = QuotaEncoding::for_kernel(mem, &c).unwrap();
    assert_eq!(enc, QuotaEncoding::Cookie(cookie));
    let quota = PoolType::from_header_field(0x0a, false); // NonPagedPool | quota | in-use
    let block = |address: u64, size, billed: Option<u64>, pool_type| Block {
        address,
        size,
        previous_size: None,
        tag: Tag(*b"Proc"),
        pool_type,
        pool: pool_type.kind,
        allocated: true,
        process_billed: billed,
    };
    let a1 = 0xffff_c000_0000_0040_u64;
    let a2 = 0xffff_c000_0000_0400_u64;
    let mut acc = QuotaAccumulator::new(enc);
    acc.add(&block(a1, 0x100, Some(app ^ cookie ^ a1), quota));
    acc.add(&block(a2, 0x200, Some(app ^ cookie ^ a2), quota));
    // Not a quota block: its ProcessBilled bytes are the back-trace index, not a process.
    acc.add(&block(
        0xffff_c000_0000_0800,
        0x50,
        Some(0x1234),
        PoolType::from_header_field(2, false),
    ));
    let r = acc.finish(&procs);
    assert_eq!(r.processes.len(), 1);
    let q = &r.processes[0];
    assert_eq!(
        (q.eprocess, q.pid, q.name.as_deref(), q.blocks, q.bytes),
        (app, Some(0x1234), Some("leaky.exe"), 2, 0x300)
    );
    assert_eq!((r.uncharged_blocks, r.uncharged_bytes), (1, 0x50));

    // Windows 7 x64 stores the pointer itself.
    assert_eq!(
        QuotaEncoding::for_kernel(mem, &ctx(Some(&isf(W7601)), 8, 7601, KB64)).unwrap(),
        QuotaEncoding::Plain
    );
}

#[test]
fn process_list_loop_stops() {
    let p = isf(W17763);
    let links = p.offset("_EPROCESS", "ActiveProcessLinks").unwrap();
    let mut img = Image::new(8);
    let head = KB64 + p.global("PsActiveProcessHead").unwrap();
    let ep = 0xffff_a000_0000_1000_u64;
    img.u64(head, ep + links);
    img.u64(ep + links, ep + links); // points at itself, never back to the head
    let (procs, warnings) =
        walk_processes(img.memory(), &ctx(Some(&p), 8, 17763, KB64), head).unwrap();
    assert_eq!(procs.len(), 1);
    assert!(warnings[0].contains("does not return"), "{warnings:?}");
}

#[test]
fn win10_figures_from_mi_state() {
    // Offsets read off the ISFs by hand: MiState.Vs at 0x2600 (19041) / 0x4200 (20348);
    // in _MI_VISIBLE_STATE, PagedPoolInfo +0x18 (AllocatedPagedPool +0x10 in it),
    // MaximumNonPagedPoolInPages +0x30, SizeOfPagedPoolInPages +0x38; Pools.AllocatedNonPagedPool +8.
    for (p, build, vs) in [
        (isf(W19041), 19041, 0x2600),
        (isf(crate::pool::testmem::W20348), 20348, 0x4200),
    ] {
        let mi = KB64 + p.global("MiState").unwrap();
        let mut img = Image::new(8);
        img.u64(mi + vs + 0x28, 0x300); // paged pages in use
        img.u64(mi + vs + 0x38, 0x1000); // paged maximum, pages
        img.u64(mi + 8, 0xf80); // nonpaged pages in use
        img.u64(mi + vs + 0x30, 0x1000); // nonpaged maximum, pages: 96.9% used
        let s = vm_summary(img.memory(), &ctx(Some(&p), 8, build, KB64), &[], None);
        let f = |x: &Option<Figure>| x.as_ref().map(|f| (f.bytes, f.source.clone()));
        assert_eq!(
            f(&s.paged_in_use),
            Some((
                0x30_0000,
                "profile:MiState.Vs.PagedPoolInfo.AllocatedPagedPool".into()
            )),
            "{build}"
        );
        assert_eq!(f(&s.paged_max).map(|x| x.0), Some(0x100_0000), "{build}");
        assert_eq!(
            f(&s.nonpaged_in_use).map(|x| x.0),
            Some(0xf8_0000),
            "{build}"
        );
        assert_eq!(
            f(&s.nonpaged_max),
            Some((
                0x100_0000,
                "profile:MiState.Vs.MaximumNonPagedPoolInPages".into()
            )),
            "{build}"
        );
        assert_eq!(
            s.paged_commit, None,
            "{build}: MiState keeps no paged commit"
        );
        assert_eq!(s.warnings.len(), 1, "{build}: {:?}", s.warnings);
        assert!(
            s.warnings[0].starts_with("nonpaged pool is near exhaustion"),
            "{}",
            s.warnings[0]
        );
    }
}

/// The counter named `name` in a summary's failures, with its source.
fn failure<'s>(s: &'s VmSummary, name: &str) -> Option<(u64, &'s str)> {
    s.failures
        .iter()
        .find(|f| f.counter == name)
        .map(|f| (f.count, f.source.as_str()))
}

#[test]
fn xp_commit_special_pool_descriptors_and_failures() {
    // Offsets by hand from ntkrnlpa.pdb: _POOL_DESCRIPTOR TotalPages +0x10, TotalBigPages +0x14;
    // MmPoolFailures is ULONG[3][3], MmPoolFailureReasons ULONG[11].
    let p = xp_pdb();
    let g = |n| KB32 + p.global(n).unwrap();
    let mut img = Image::new(4);
    img.u32(g("MmTotalCommittedPages"), 0x3_0000);
    img.u32(g("MmTotalCommitLimit"), 0x3_0050); // 0x50 pages short: under 100
    img.u32(g("MmPeakCommitment"), 0x3_1000);
    img.u32(g("MmAvailablePages"), 0x1234);
    img.u32(g("MmSpecialPagesInUse"), 7);
    img.u32(g("ExpNumberOfPagedPools"), 2);
    let descs = [0x8100_0000u64, 0x8100_2000, 0x8100_4000];
    for (i, d) in descs.iter().enumerate() {
        img.u32(g("ExpPagedPoolDescriptor") + 4 * i as u64, *d as u32);
        img.u32(d + 0x10, 0x100 * (i as u32 + 1));
        img.u32(d + 0x14, 3);
    }
    img.u32(g("ExpNumberOfNonPagedPools"), 1);
    img.u32(g("ExPoolFailures"), 42);
    img.u32(g("MmPoolFailures") + 4 * (3 + 1), 5); // [PagedPool][NormalPriority]
    img.u32(g("MmPoolFailureReasons") + 4 * 7, 9); // PagedNoCommit
    let s = vm_summary(img.memory(), &ctx(Some(&p), 4, 2600, KB32), &[], None);
    let f = |x: &Option<Figure>| x.as_ref().map(|f| (f.bytes, f.source.clone()));
    assert_eq!(
        f(&s.commit_charge),
        Some((0x3000_0000, "profile:MmTotalCommittedPages".into()))
    );
    assert_eq!(f(&s.commit_limit).unwrap().0, 0x3005_0000);
    assert_eq!(f(&s.commit_peak).unwrap().0, 0x3100_0000);
    assert_eq!(f(&s.available).unwrap().0, 0x123_4000);
    assert_eq!(
        f(&s.special_pool),
        Some((0x7000, "profile:MmSpecialPagesInUse".into()))
    );
    let used: Vec<_> = s
        .paged_pools
        .iter()
        .map(|d| (d.index, d.descriptor, d.usage.bytes))
        .collect();
    assert_eq!(
        used,
        [
            (0, descs[0], 0x103 * 0x1000),
            (1, descs[1], 0x203 * 0x1000),
            (2, descs[2], 0x303 * 0x1000)
        ]
    );
    assert_eq!(
        s.paged_pools[1].usage.source,
        "profile:ExpPagedPoolDescriptor[1]->TotalPages+TotalBigPages"
    );
    assert!(
        s.nonpaged_pools.is_empty(),
        "one nonpaged pool: no per-descriptor lines"
    );
    assert_eq!(
        failure(&s, "ExPoolFailures"),
        Some((42, "profile:ExPoolFailures"))
    );
    assert_eq!(
        failure(&s, "PagedPool/NormalPriority"),
        Some((5, "profile:MmPoolFailures[1][1]"))
    );
    assert_eq!(
        failure(&s, "PagedNoCommit"),
        Some((9, "profile:MmPoolFailureReasons[7]"))
    );
    assert_eq!(s.failures.len(), 1 + 9 + 11);
    // Committed pages within 100 of the limit: !vm's "near limit" warning, naming both.
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].starts_with("committed pages are near the commit limit")
            && s.warnings[0].contains("MmTotalCommitLimit"),
        "{}",
        s.warnings[0]
    );
}

#[test]
fn win7_special_pool_and_descriptors_from_their_own_fields() {
    // 7601 ISF: _POOL_DESCRIPTOR TotalPages +0xc0, TotalBigPages +0x48 (LONG);
    // MiSpecialPool is an _MI_SPECIAL_POOL, PagesInUse +0x30.
    let p = isf(W7601);
    let g = |n| KB64 + p.global(n).unwrap();
    let mut img = Image::new(8);
    img.u64(g("MiSpecialPool") + 0x30, 0x11);
    img.u32(g("ExpNumberOfPagedPools"), 1);
    img.u32(g("ExpNumberOfNonPagedPools"), 2);
    for (arr, base) in [
        ("ExpPagedPoolDescriptor", 0xffff_fa80_0000_0000u64),
        ("ExpNonPagedPoolDescriptor", 0xffff_fa80_0010_0000),
    ] {
        for i in 0..2u64 {
            let d = base + i * 0x2000;
            img.u64(g(arr) + 8 * i, d);
            img.u32(d + 0xc0, 0x40);
            img.u32(d + 0x48, i as u32);
        }
    }
    img.u64(g("MmTotalCommittedPages"), 0x1000);
    img.u64(g("MmTotalCommitLimit"), 0x8000);
    let s = vm_summary(img.memory(), &ctx(Some(&p), 8, 7601, KB64), &[], None);
    let sp = s.special_pool.unwrap();
    assert_eq!(
        (sp.bytes, sp.source.as_str()),
        (0x11000, "profile:MiSpecialPool.PagesInUse")
    );
    let pages =
        |v: &[PoolDescriptorUsage]| v.iter().map(|d| d.usage.bytes / 0x1000).collect::<Vec<_>>();
    assert_eq!(pages(&s.paged_pools), [0x40, 0x41]);
    assert_eq!(pages(&s.nonpaged_pools), [0x40, 0x41]);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn win10_commit_and_failures_from_the_system_partition_and_mi_state() {
    // 17763 ISF by hand: MiSystemPartition.Vp at +0x1bc0 (TotalCommittedPages +0x228,
    // TotalCommitLimit +0x2a8, AvailablePages +0xc0, ChargeCommitmentFailures +0x2d8),
    // .Commit at +0x1900 (PeakCommitment +0); MiState.Pools at 0 (PoolFailures +0x30, a
    // ULONG[3][3]; PoolFailureReasons +0x54, PagedNoCommit +0x1c in it); MiState.Vs at
    // +0x24c0, SpecialPagesInUse +0x128 in it; _POOL_DESCRIPTOR PagesAllocated +0x48,
    // BigPagesAllocated +0x50, PagesDeallocated +0x88, BigPagesDeallocated +0x90.
    let p = isf(W17763);
    let g = |n| KB64 + p.global(n).unwrap();
    let mut img = Image::new(8);
    let (part, mi) = (g("MiSystemPartition"), g("MiState"));
    img.u64(part + 0x1bc0 + 0x228, 0x2_0000);
    img.u64(part + 0x1bc0 + 0x2a8, 0x8_0000);
    img.u64(part + 0x1bc0 + 0xc0, 0x4000);
    img.u64(part + 0x1900, 0x3_0000);
    img.u32(part + 0x1bc0 + 0x2d8 + 4, 6);
    img.u32(mi + 0x30 + 4 * (3 + 1), 2); // PagedPool/NormalPriority
    img.u32(mi + 0x54 + 0x1c, 3); // PagedNoCommit
    img.u64(mi + 0x24c0 + 0x128, 0x10);
    img.u32(g("ExpNumberOfPagedPools"), 0);
    let d = 0xffff_9000_0000_0000u64;
    img.u64(g("ExpPagedPoolDescriptor"), d);
    img.u64(d + 0x48, 0x500);
    img.u64(d + 0x88, 0x100);
    img.u64(d + 0x50, 0x30);
    img.u64(d + 0x90, 0x10);
    let s = vm_summary(img.memory(), &ctx(Some(&p), 8, 17763, KB64), &[], None);
    let f = |x: &Option<Figure>| x.as_ref().map(|f| (f.bytes / 0x1000, f.source.clone()));
    assert_eq!(
        f(&s.commit_charge),
        Some((
            0x2_0000,
            "profile:MiSystemPartition.Vp.TotalCommittedPages".into()
        ))
    );
    assert_eq!(f(&s.commit_limit).unwrap().0, 0x8_0000);
    assert_eq!(
        f(&s.commit_peak),
        Some((
            0x3_0000,
            "profile:MiSystemPartition.Commit.PeakCommitment".into()
        ))
    );
    assert_eq!(f(&s.available).unwrap().0, 0x4000);
    assert_eq!(
        f(&s.special_pool),
        Some((0x10, "profile:MiState.Vs.SpecialPagesInUse".into()))
    );
    assert_eq!(s.paged_pools.len(), 1);
    assert_eq!(s.paged_pools[0].usage.bytes, (0x400 + 0x20) * 0x1000);
    assert_eq!(
        failure(&s, "PagedPool/NormalPriority"),
        Some((2, "profile:MiState.Pools.PoolFailures[1][1]"))
    );
    assert_eq!(
        failure(&s, "PagedNoCommit"),
        Some((3, "profile:MiState.Pools.PoolFailureReasons.PagedNoCommit"))
    );
    assert_eq!(
        failure(&s, "ChargeCommitmentFailures[1]"),
        Some((
            6,
            "profile:MiSystemPartition.Vp.ChargeCommitmentFailures[1]"
        ))
    );

    // 20348: TotalCommitLimit at Vp (+0x4140) +0x318; no MiState pool failures any more.
    let p = isf(crate::pool::testmem::W20348);
    let g = |n| KB64 + p.global(n).unwrap();
    let mut img = Image::new(8);
    img.u64(g("MiSystemPartition") + 0x4140 + 0x318, 0x9_0000);
    img.u32(g("ExPoolFailures"), 1);
    let s = vm_summary(img.memory(), &ctx(Some(&p), 8, 20348, KB64), &[], None);
    assert_eq!(
        s.commit_limit.as_ref().map(|f| f.bytes / 0x1000),
        Some(0x9_0000)
    );
    assert_eq!(s.special_pool, None, "20348 counts no special pool pages");
    assert!(failure(&s, "PagedNoCommit").is_none());
    assert_eq!(failure(&s, "ExPoolFailures").map(|f| f.0), Some(1));
    assert!(
        s.paged_pools.is_empty(),
        "no pool descriptors with the segment heap"
    );
}
