//! !vm figures and quota decoding on hand-built memory in the real layouts.

use super::*;
use crate::pool::tag::Tag;
use crate::pool::testmem::*;
use crate::pool::types::PoolType;
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
