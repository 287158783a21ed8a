//! Writes the seeds of the memory-based targets (`fuzz/make_seeds.sh` runs it:
//! `POOLTRIAGE_WRITE_SEEDS=fuzz/seeds cargo test -p pooltriage-fuzz-harness -- --ignored
//! seeds::write`). Each is laid out with the 19041 kernel's own layouts (the harness's ISF) and
//! checked here to reach the walker's deepest path, so a seed that stops working is noticed.

use crate::mem::Builder;
use crate::pool::{POOL_PAGES, POOL_START};
use crate::profile::{context, w19041, KERNEL_BASE};
use crate::scan::{BASE32, BASE64, CODE_RVA, IAT_RVA};
use analyzer::kernel::pe::PeFile;
use analyzer::memory::VirtualMemory;
use std::collections::BTreeMap;
use std::path::Path;

fn off(ty: &str, field: &str) -> u64 {
    w19041()
        .offset(ty, field)
        .unwrap_or_else(|| panic!("{ty}.{field}"))
}
fn global(name: &str) -> u64 {
    KERNEL_BASE + w19041().global(name).unwrap_or_else(|| panic!("{name}"))
}

/// An x64 POOL_HEADER (19041): PreviousSize, BlockSize in 16-byte units; PoolType; tag.
fn header64(prev: u32, size: u32, pool_type: u32, tag: &[u8; 4]) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&(prev | size << 16 | pool_type << 24).to_le_bytes());
    h[4..8].copy_from_slice(tag);
    h
}

/// A valid x64 classic pool page: blocks of `sizes` units (summing to 256).
fn page64(sizes: &[(u32, u32, &[u8; 4])]) -> Vec<u8> {
    let mut page = vec![0u8; 0x1000];
    let (mut at, mut prev) = (0usize, 0u32);
    for &(size, ty, tag) in sizes {
        page[at..at + 16].copy_from_slice(&header64(prev, size, ty, tag));
        at += size as usize * 16;
        prev = size;
    }
    assert_eq!(at, 0x1000);
    page
}

/// A valid x86 page (XP/7 x86 layout: 8-byte units, 9-bit sizes, 7-bit type).
fn page32(sizes: &[(u32, u32, &[u8; 4])]) -> Vec<u8> {
    let mut page = vec![0u8; 0x1000];
    let (mut at, mut prev) = (0usize, 0u32);
    for &(size, ty, tag) in sizes {
        let u = prev | size << 16 | ty << 25;
        page[at..at + 4].copy_from_slice(&u.to_le_bytes());
        page[at + 4..at + 8].copy_from_slice(tag);
        at += size as usize * 8;
        prev = size;
    }
    assert_eq!(at, 0x1000);
    page
}

fn pool_pages() -> Vec<Vec<u8>> {
    vec![
        page64(&[
            (4, 1, b"Leak"),
            (8, 3, b"Proc"),
            (2, 0, b"Free"),
            (242, 1, b"Irp "),
        ]),
        page64(&[(128, 1, b"Leak"), (128, 1, b"Leak")]),
    ]
}

fn pool_page_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, p) in pool_pages().into_iter().enumerate() {
        // 4: the built-in 19041 layout; 5: the ISF's.
        for sel in [4u8, 5] {
            out.push((format!("x64_{i}_{sel}"), [vec![sel], p.clone()].concat()));
        }
    }
    let x86 = page32(&[(4, 1, b"Leak"), (8, 2, b"Proc"), (500, 1, b"Irp ")]);
    out.push(("x86_xp".into(), [vec![0u8], x86.clone()].concat()));
    out.push(("x86_7".into(), [vec![1u8], x86].concat()));
    out
}

/// Big page table, tag tables and two classic pool pages in the pool range.
fn big_pages_seed() -> Vec<u8> {
    let mut b = Builder::new(&[]);
    let table = 0xffff_c000_1000_0000u64;
    let es = w19041().type_size("_POOL_TRACKER_BIG_PAGES").unwrap();
    b.u64(global("PoolBigPageTable"), table)
        .u64(global("PoolBigPageTableSize"), 4);
    let entries: [(u64, &[u8; 4], u32, u64); 4] = [
        (POOL_START + 0x8000, b"Leak", 1, 0x2000),
        (POOL_START + 0xa001, b"Free", 1, 0x1000), // freed slot (Va bit 0)
        (0xffff_c000_2000_0000, b"Big ", 0, 0x10000),
        (0, b"\0\0\0\0", 0, 0),
    ];
    for (i, (va, tag, ty, bytes)) in entries.iter().enumerate() {
        let e = table + i as u64 * es;
        b.u64(e + off("_POOL_TRACKER_BIG_PAGES", "Va"), *va)
            .write(e + off("_POOL_TRACKER_BIG_PAGES", "Key"), *tag)
            .u32(e + 12, ty << 8)
            .u64(e + off("_POOL_TRACKER_BIG_PAGES", "NumberOfBytes"), *bytes);
    }
    let tt = 0xffff_c000_1001_0000u64;
    let ts = w19041().type_size("_POOL_TRACKER_TABLE").unwrap();
    b.u64(global("PoolTrackTable"), tt)
        .u64(global("PoolTrackTableSize"), 0x100);
    for (i, tag) in [b"Leak", b"Proc", b"Irp "].iter().enumerate() {
        let e = tt + i as u64 * ts;
        b.write(e, *tag)
            .u32(e + off("_POOL_TRACKER_TABLE", "PagedAllocs"), 41)
            .u32(e + off("_POOL_TRACKER_TABLE", "PagedFrees"), 3)
            .u64(e + off("_POOL_TRACKER_TABLE", "PagedBytes"), 77824)
            .u32(e + off("_POOL_TRACKER_TABLE", "NonPagedAllocs"), 5)
            .u64(e + off("_POOL_TRACKER_TABLE", "NonPagedBytes"), 640);
    }
    for (i, p) in pool_pages().iter().enumerate() {
        b.write(POOL_START + i as u64 * 0x1000, p);
    }
    b.out
}

/// The segment heap of `analyzer::pool::segheap`'s unit tests (19041): one paged heap, one
/// page segment with an LFH and a VS subsegment; the encoded values worked out there.
fn segheap_seed() -> Vec<u8> {
    const HEAP_KEY: u64 = 0x1111_2222_3333_4444;
    const LFH_KEY: u64 = 0x5555_6666_7777_8888;
    const HEAP: u64 = 0xffff_c000_0000_0000;
    const SEG: u64 = 0xffff_c000_0010_0000;
    const LFH: u64 = SEG + 0x2000;
    const VS: u64 = SEG + 0x3000;
    let state = global("ExPoolState");
    let globals = global("RtlpHpHeapGlobals");
    // No session heap: the session space given is unmapped.
    let mut b = Builder::new(&0xffff_9000_0000_0000u64.to_le_bytes());
    b.u64(globals, HEAP_KEY)
        .u64(globals + 8, LFH_KEY)
        .u32(state + 0x38d0, 1)
        .u64(state + 0x86900, 0)
        .u64(state + 0x3900 + 2 * 8, HEAP)
        .u32(HEAP + 0x10, 0xDDEE_DDEE);
    let ctx0 = HEAP + 0x100;
    let ctx1 = ctx0 + 0xc0;
    b.write(ctx0 + 8, &[12])
        .write(ctx0 + 0xa, &[2])
        .u64(ctx0 + 0x48, SEG)
        .u64(ctx0 + 0x50, SEG)
        .write(ctx1 + 8, &[16])
        .u64(ctx1 + 0x48, ctx1 + 0x48)
        .u64(ctx1 + 0x50, ctx1 + 0x48)
        .u64(SEG, ctx0 + 0x48)
        .u64(SEG + 8, ctx0 + 0x48)
        .u64(SEG + 0x10, 0xb3f7_6c8f_91c5_0be9);
    for (i, flags, units) in [(2u64, 11u8, 1u8), (3, 15, 2), (5, 3, 1)] {
        b.write(SEG + i * 0x20 + 0x18, &[flags])
            .write(SEG + i * 0x20 + 0x1f, &[units]);
    }
    b.write(SEG + 0x1000, &[0])
        .u16(LFH + 0x22, 4)
        .u32(LFH + 0x28, 0x7737_89ca)
        .write(LFH + 0x30, &[0b0011_0001])
        .write(LFH + 0x40, &header64(0, 4, 3, b"Aaaa"))
        .write(LFH + 0x80, &header64(0, 4, 0, b"Free"))
        .write(LFH + 0xc0, &header64(0, 4, 3, b"Ccc2"))
        .u16(VS + 0x20, 0x200)
        .u16(VS + 0x22, 0x29ed);
    let chunk = |b: &mut Builder, va: u64, size: u64, alloc: bool| {
        b.u64(
            va,
            ((size / 16) << 16 | u64::from(alloc) << 48) ^ va ^ HEAP_KEY,
        );
    };
    chunk(&mut b, VS + 0x30, 0x60, true);
    b.write(VS + 0x40, &header64(0, 5, 3, b"VsA1"));
    chunk(&mut b, VS + 0x90, 0x60, false);
    b.write(VS + 0xa0, &header64(0, 5, 0, b"VsF2"));
    chunk(&mut b, VS + 0xf0, 0x60, false);
    chunk(&mut b, VS + 0x150, 0xe80, false);
    chunk(&mut b, VS + 0xfd0, 0x120, true);
    b.write(VS + 0x1000, &header64(0, 0xf, 3, b"VsC3"));
    chunk(&mut b, VS + 0x10f0, 0x10, true);
    chunk(&mut b, VS + 0x1100, 0xf00, true);
    b.write(VS + 0x1110, &header64(0, 0xef, 3, b"VsE5"));
    b.out
}

/// x64 page tables built in physical memory: `map` gives each virtual page a fresh frame.
struct Tables {
    b: Builder,
    next: u64,
    tables: BTreeMap<(u64, u64), u64>,
    pml4: u64,
}

impl Tables {
    fn new(params: &[u8]) -> Tables {
        Tables {
            b: Builder::new(params),
            next: 0x2000,
            tables: BTreeMap::new(),
            pml4: 0x1000,
        }
    }
    fn frame(&mut self) -> u64 {
        let f = self.next;
        self.next += 0x1000;
        f
    }
    /// The frame of virtual page `va`, mapping it (and its tables) if needed.
    fn map(&mut self, va: u64) -> u64 {
        let mut table = self.pml4;
        for level in (0..4).rev() {
            let idx = (va >> (12 + 9 * level)) & 0x1ff;
            let key = (table, idx);
            let next = match self.tables.get(&key) {
                Some(&n) => n,
                None => {
                    let n = self.frame();
                    self.tables.insert(key, n);
                    self.b.u64(table + idx * 8, n | 0x63);
                    n
                }
            };
            table = next;
        }
        table
    }
    /// Writes `bytes` at `va`, one record per page touched.
    fn write(&mut self, va: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let a = va + done as u64;
            let n = (0x1000 - (a & 0xfff) as usize).min(bytes.len() - done);
            let pa = self.map(a & !0xfff) + (a & 0xfff);
            self.b.write(pa, &bytes[done..done + n]);
            done += n;
        }
    }
    fn u64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }
}

/// One process in session 1: its MM_SESSION_SPACE with a paged pool range of two valid pages,
/// a session big page table and the session tag table.
fn session_seed() -> Vec<u8> {
    const EPROCESS: u64 = 0xffff_a000_0000_3000;
    const SESSION: u64 = 0xffff_9000_0000_0000;
    const SPOOL: u64 = 0xffff_9100_0000_0000;
    const BIG: u64 = 0xffff_9000_0010_0000;
    const TAGS: u64 = 0xffff_9000_0020_0000;
    let mut params = 0x1000u64.to_le_bytes().to_vec();
    params.extend_from_slice(&EPROCESS.to_le_bytes());
    let mut t = Tables::new(&params);
    t.u64(EPROCESS + off("_EPROCESS", "Session"), SESSION);
    t.u64(
        EPROCESS + off("_EPROCESS", "Pcb") + off("_KPROCESS", "DirectoryTableBase"),
        0x1000,
    );
    t.write(
        SESSION + off("_MM_SESSION_SPACE", "SessionId"),
        &1u32.to_le_bytes(),
    );
    t.u64(SESSION + off("_MM_SESSION_SPACE", "PagedPoolStart"), SPOOL);
    t.u64(
        SESSION + off("_MM_SESSION_SPACE", "PagedPoolEnd"),
        SPOOL + 0x1fff,
    );
    t.u64(SESSION + off("_MM_SESSION_SPACE", "PoolTrackBigPages"), BIG);
    t.u64(
        SESSION + off("_MM_SESSION_SPACE", "PoolTrackBigPagesSize"),
        2,
    );
    t.u64(
        SESSION + off("_MM_SESSION_SPACE", "PoolTrackTableExpansion"),
        0,
    );
    let es = w19041().type_size("_POOL_TRACKER_BIG_PAGES").unwrap();
    t.u64(BIG, 0xffff_9100_0010_0000);
    t.write(BIG + 8, b"DspK");
    t.write(BIG + 12, &(0x21u32 << 8).to_le_bytes());
    t.u64(BIG + 16, 0x3000);
    t.u64(BIG + es, 0xffff_9100_0020_0001);
    t.u64(global("ExpSessionPoolTrackTable"), TAGS);
    t.u64(global("ExpSessionPoolTrackTableSize"), 0x100);
    t.write(TAGS, b"DspK");
    t.u64(TAGS + off("_POOL_TRACKER_TABLE", "PagedBytes"), 0x5000);
    t.write(
        TAGS + off("_POOL_TRACKER_TABLE", "PagedAllocs"),
        &7u32.to_le_bytes(),
    );
    for (i, p) in pool_pages().iter().enumerate() {
        t.write(SPOOL + i as u64 * 0x1000, p);
    }
    t.b.out
}

/// x64 code at the harness's code address: `ExAllocatePoolWithTag(1, 0x100, 'Leak')` through
/// its import slot, `ExAllocatePool2(0x100, 0x40, 'Fuzz')` through a thunk, and an untagged
/// `ExAllocatePool` tail jump.
fn code_seed64() -> Vec<u8> {
    let code_va = BASE64 + CODE_RVA;
    let iat = BASE64 + IAT_RVA;
    let mut c: Vec<u8> = Vec::new();
    let rip_disp = |c: &Vec<u8>, len: usize, slot: u64| -> [u8; 4] {
        let next = code_va + (c.len() + len) as u64;
        ((slot as i64 - next as i64) as i32).to_le_bytes()
    };
    // f1: sub rsp,28h; mov r8d,'Leak'; mov edx,100h; mov ecx,1; call [rip+slot0]; add rsp,28h; ret
    c.extend_from_slice(&[0x48, 0x83, 0xEC, 0x28, 0x41, 0xB8]);
    c.extend_from_slice(b"Leak");
    c.extend_from_slice(&[0xBA, 0, 1, 0, 0, 0xB9, 1, 0, 0, 0]);
    let d = rip_disp(&c, 6, iat);
    c.extend_from_slice(&[0xFF, 0x15]);
    c.extend_from_slice(&d);
    c.extend_from_slice(&[0x48, 0x83, 0xC4, 0x28, 0xC3]);
    c.resize(0x20, 0xCC);
    // thunk at +0x20: jmp [rip+slot1]
    let d = rip_disp(&c, 6, iat + 8);
    c.extend_from_slice(&[0xFF, 0x25]);
    c.extend_from_slice(&d);
    c.resize(0x30, 0xCC);
    // f2 at +0x30: sub rsp,28h; mov r8d,'Fuzz'; mov edx,40h; mov ecx,100h; call thunk; add; ret
    c.extend_from_slice(&[0x48, 0x83, 0xEC, 0x28, 0x41, 0xB8]);
    c.extend_from_slice(b"Fuzz");
    c.extend_from_slice(&[0xBA, 0x40, 0, 0, 0, 0xB9, 0, 1, 0, 0]);
    let rel = (0x20i64 - (c.len() as i64 + 5)) as i32;
    c.push(0xE8);
    c.extend_from_slice(&rel.to_le_bytes());
    c.extend_from_slice(&[0x48, 0x83, 0xC4, 0x28, 0xC3]);
    c.resize(0x60, 0xCC);
    // f3 at +0x60: mov edx,80h; xor ecx,ecx; jmp [rip+slot2]
    c.extend_from_slice(&[0xBA, 0x80, 0, 0, 0, 0x31, 0xC9]);
    let d = rip_disp(&c, 6, iat + 16);
    c.extend_from_slice(&[0xFF, 0x25]);
    c.extend_from_slice(&d);
    c.resize(0x80, 0xCC);
    let mut tags = Vec::new();
    for t in [b"Leak", b"Fuzz", b"None", b"Proc"] {
        tags.extend_from_slice(t);
    }
    [vec![0u8], tags, c].concat()
}

/// x86 code: `push 'Leak'; push 100h; push 1; call [slot0]; ret`.
fn code_seed32() -> Vec<u8> {
    let iat = (BASE32 + IAT_RVA) as u32;
    let mut c = vec![0x68];
    c.extend_from_slice(b"Leak");
    c.extend_from_slice(&[0x68, 0, 1, 0, 0, 0x6A, 1, 0xFF, 0x15]);
    c.extend_from_slice(&iat.to_le_bytes());
    c.extend_from_slice(&[0xC3]);
    c.resize(0x20, 0xCC);
    let mut tags = Vec::new();
    for t in [b"Leak", b"None", b"Proc", b"Irp "] {
        tags.extend_from_slice(t);
    }
    [vec![1u8], tags, c].concat()
}

/// pe_memory seeds: the `pe_file` seeds as the loader maps them (at most 60 KiB).
fn mapped_images(seeds: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(seeds.join("pe_file"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for p in files {
        let bytes = std::fs::read(&p).unwrap();
        let f = PeFile::new(&bytes).unwrap();
        let info = f.info().unwrap();
        let len = (info.size_of_image as usize).min(60 << 10);
        let mut img = vec![0u8; len];
        f.read(f.base(), &mut img).unwrap();
        let psize = if info.is_64 { 0u8 } else { 1 };
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, [vec![psize, 0, 0, 0, 0], img].concat()));
    }
    out
}

/// The driver's own code section, as a real-world decode input.
fn driver_code(seeds: &Path) -> Vec<u8> {
    let bytes = std::fs::read(seeds.join("pe_file/usb2dbg.sys")).unwrap();
    let (_, regions) = analyzer::attribution::scan::code_regions_from_file(&bytes).unwrap();
    let code: Vec<u8> = regions
        .into_iter()
        .flat_map(|r| r.bytes)
        .take(60 << 10)
        .collect();
    [vec![0u8], b"Usb2Usb Dbg Usbn".to_vec(), code].concat()
}

/// Checks that each memory seed reaches what it is for.
fn check(seeds: &[(&str, String, Vec<u8>)]) {
    use analyzer::pool::pages::{scan_ranges, walk_page, PoolRange};
    let ctx = context();
    for (target, name, data) in seeds {
        match *target {
            "pool_page" => {
                let kernels = [(4u8, 2600u32), (4, 7601), (8, 7601), (8, 9600), (8, 19041)];
                let l = match kernels.get(data[0] as usize) {
                    Some(&(ps, b)) => analyzer::pool::header::HeaderLayout::for_kernel(None, ps, b),
                    None => analyzer::pool::header::HeaderLayout::for_kernel(ctx.profile, 8, 19041),
                };
                let blocks = walk_page(&data[1..], POOL_START, &l).unwrap();
                assert!(blocks.len() >= 2, "{name}");
            }
            "big_pages" => {
                let mem = crate::mem::Sparse::parse(data, 8);
                let big = analyzer::pool::bigpages::read_big_pages(&mem, &ctx).unwrap();
                assert_eq!(big.entries.len(), 2, "{big:?}");
                let tags = analyzer::pool::tags::read_tag_tables(&mem, &ctx, None).unwrap();
                assert!(tags.tags.len() >= 3, "{:?}", tags.warnings);
                let h = analyzer::pool::header::HeaderLayout::for_kernel(ctx.profile, 8, 19041);
                let r = PoolRange {
                    start: POOL_START,
                    end: POOL_START + POOL_PAGES * 0x1000,
                    kind: analyzer::pool::PoolKind::Nonpaged,
                };
                let mut n = 0;
                scan_ranges(&mem, &h, &[r], &[], &mut |_| n += 1);
                assert_eq!(n, 6);
            }
            "segheap" => {
                let mem = crate::mem::Sparse::parse(&data[8..], 8);
                let l = analyzer::pool::segheap::SegLayout::from_profile(w19041()).unwrap();
                let h = analyzer::pool::header::HeaderLayout::for_kernel(ctx.profile, 8, 19041);
                let mut n = 0;
                let s =
                    analyzer::pool::segheap::walk_segment_heap(&mem, &ctx, &l, &h, &mut |_, _| {
                        n += 1
                    })
                    .unwrap();
                assert!(s.lfh_blocks >= 2 && s.vs_blocks >= 2, "{s:?}");
            }
            "session" => {
                use analyzer::memory::{PageTableMemory, PagingMode};
                let phys = crate::mem::Sparse::parse(&data[16..], 8);
                let f = analyzer::memory::pte::PteFormat::for_kernel(ctx.profile, PagingMode::X64);
                let k = PageTableMemory::with_format(&phys, 0x1000, f);
                let procs = [analyzer::pool::quota::Process {
                    eprocess: 0xffff_a000_0000_3000,
                    pid: 4,
                    name: String::new(),
                }];
                let s = analyzer::pool::session::find_sessions(&k, &ctx, &procs);
                assert_eq!(s.len(), 1);
                assert!(
                    analyzer::pool::session::session_paged_pool(&phys, f, &ctx, &s[0]).is_some()
                );
                let mut w = Vec::new();
                let big =
                    analyzer::pool::session::read_session_big_pages(&phys, f, &ctx, &s, &mut w)
                        .unwrap();
                assert_eq!(big.entries.len(), 1, "{w:?}");
                let l = analyzer::pool::tags::TrackerLayout::for_kernel(&ctx).unwrap();
                let t = analyzer::pool::session::read_session_tables(&phys, f, &ctx, l, &s);
                assert!(t.rows.is_some(), "{:?}", t.warnings);
            }
            "code_scan" => {}
            "crash" => check_crash(name, data),
            "kernel" => check_kernel(data),
            "frame_data" => check_frame(name, data),
            _ => {}
        }
    }
}

/// The crash seeds' stack (x64) and its x86 counterpart.
const STACK64: u64 = 0xffff_8000_0000_0000;
const STACK32: u64 = 0xf78a_0000;

/// An x64 CONTEXT record: ContextFlags (CONTEXT_AMD64 | full), Rsp, Rip.
fn context64(rip: u64, rsp: u64) -> Vec<u8> {
    let mut c = vec![0u8; 0x4D0];
    c[0x30..0x34].copy_from_slice(&0x0010_001fu32.to_le_bytes());
    c[0x98..0xA0].copy_from_slice(&rsp.to_le_bytes());
    c[0xF8..0x100].copy_from_slice(&rip.to_le_bytes());
    c
}

/// crashy.sys's x64 image: a PE header whose exception directory lists two functions, each
/// with `push rbp; sub rsp, 28h` described by its UNWIND_INFO.
fn unwind_image() -> Vec<u8> {
    let mut b = vec![0u8; 0x3000];
    b[0..2].copy_from_slice(b"MZ");
    b[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    let opt = 0x80 + 24;
    b[opt..opt + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
    b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let dir = opt + 112 + 8 * 3;
    b[dir..dir + 4].copy_from_slice(&0x200u32.to_le_bytes());
    b[dir + 4..dir + 8].copy_from_slice(&24u32.to_le_bytes());
    for (i, (begin, end)) in [(0x1000u32, 0x1100u32), (0x1100, 0x1200)]
        .iter()
        .enumerate()
    {
        let at = 0x200 + 12 * i;
        for (j, v) in [*begin, *end, 0x2000].iter().enumerate() {
            b[at + 4 * j..at + 4 * j + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    // Version 1, prolog 5 bytes, 2 codes: at 5 UWOP_ALLOC_SMALL (0x28), at 1 UWOP_PUSH_NONVOL rbp.
    b[0x2000..0x2008].copy_from_slice(&[1, 5, 2, 0, 5, 0x42, 1, 0x50]);
    b
}

/// Frame 0 in crashy.sys's first function, returning into its second, which returns to 0.
fn stack64(b: &mut Builder) {
    use crate::crash::DRIVER64;
    b.write(DRIVER64, &unwind_image())
        .u64(STACK64 + 0x28, 0x1111)
        .u64(STACK64 + 0x30, DRIVER64 + 0x1150)
        .u64(STACK64 + 0x60, 0x2222)
        .u64(STACK64 + 0x68, 0);
}

fn crash_seed(sel: u8, params: [u64; 4]) -> Builder {
    let mut head = vec![sel];
    for p in params {
        head.extend_from_slice(&p.to_le_bytes());
    }
    Builder::new(&head)
}

/// The crash target's seeds: x64 from the header's context (with an unloaded driver in
/// MmUnloadedDrivers), from a 0x1000007E exception record and from a 0x8E trap frame; x86
/// along an EBP chain.
fn crash_seeds() -> Vec<(String, Vec<u8>)> {
    use crate::crash::{DRIVER32, DRIVER64, HEADER_VA, NT32};
    let rip = DRIVER64 + 0x1050;
    let mut out = Vec::new();

    let mut b = crash_seed(0, [0; 4]);
    stack64(&mut b);
    b.write(HEADER_VA + 0x348, &context64(rip, STACK64));
    let (array, name) = (0xffff_c000_0100_0000u64, 0xffff_c000_0100_1000u64);
    let text: Vec<u8> = "old.sys"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    b.u64(global("MmUnloadedDrivers"), array)
        .u32(global("MmLastUnloadedDriver"), 1)
        .u16(array, text.len() as u16)
        .u16(array + 2, text.len() as u16)
        .u64(array + 8, name)
        .u64(array + 16, 0xffff_f802_0000_0000)
        .u64(array + 24, 0xffff_f802_0001_0000)
        .u64(array + 32, 0x01d9_0000_0000_0000)
        .write(name, &text);
    out.push(("x64_header_unloaded".into(), b.out));

    let record = STACK64 + 0x1000;
    let mut b = crash_seed(1 << 2, [0xC000_0005, rip, 0, record]);
    stack64(&mut b);
    b.write(record, &context64(rip, STACK64));
    out.push(("x64_exception_record".into(), b.out));

    let trap = STACK64 + 0x1000;
    let mut b = crash_seed(3 << 2, [0xC000_0005, rip, trap, 0]);
    stack64(&mut b);
    b.u64(trap + 0x168, rip).u64(trap + 0x180, STACK64);
    out.push(("x64_trap_frame".into(), b.out));

    // x86: ContextFlags CONTEXT_i386 | full; Ebp, Eip, Esp; then two saved EBPs.
    let mut b = crash_seed(1, [0; 4]);
    let ctx = HEADER_VA + 0x320;
    b.u32(ctx, 0x0001_0007)
        .u32(ctx + 0xB4, (STACK32 + 0x10) as u32)
        .u32(ctx + 0xB8, (DRIVER32 + 0x1000) as u32)
        .u32(ctx + 0xC4, STACK32 as u32)
        .u32(STACK32 + 0x10, (STACK32 + 0x30) as u32)
        .u32(STACK32 + 0x14, (DRIVER32 + 0x1234) as u32)
        .u32(STACK32 + 0x30, 0)
        .u32(STACK32 + 0x34, (NT32 + 0x500) as u32);
    out.push(("x86_ebp_chain".into(), b.out));

    // arm64: frame 0 in a leaf of crashy.sys (no RUNTIME_FUNCTION: its caller is lr), lr in a
    // packed function (RegI 2, CR 3: `stp x19, x20, [sp, #-16]!`, `stp x29, lr, [sp, #-48]!`,
    // `mov x29, sp`; 64 bytes) whose saved lr is 0.
    let mut b = crash_seed(2, [0; 4]);
    let (s1, packed) = (
        STACK64 + 0x100,
        1u32 | 16 << 2 | 2 << 16 | 3 << 21 | 4 << 23,
    );
    let f1 = s1 - 64;
    let mut img = vec![0u8; 0x3000];
    img[0..2].copy_from_slice(b"MZ");
    img[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    img[0x80..0x84].copy_from_slice(b"PE\0\0");
    let opt = 0x80 + 24;
    img[opt..opt + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
    img[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let dir = opt + 112 + 8 * 3;
    img[dir..dir + 4].copy_from_slice(&0x200u32.to_le_bytes());
    img[dir + 4..dir + 8].copy_from_slice(&8u32.to_le_bytes());
    img[0x200..0x204].copy_from_slice(&0x1000u32.to_le_bytes());
    img[0x204..0x208].copy_from_slice(&packed.to_le_bytes());
    let mut ctx = vec![0u8; 0x390];
    ctx[0..4].copy_from_slice(&0x0040_0007u32.to_le_bytes());
    for (at, v) in [
        (0xF0, f1),
        (0xF8, DRIVER64 + 0x1020),
        (0x100, f1),
        (0x108, DRIVER64 + 0x1400),
    ] {
        ctx[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    b.write(DRIVER64, &img)
        .write(HEADER_VA + 0x348, &ctx)
        .u64(s1 - 16, 0x1919)
        .u64(s1 - 8, 0x2020)
        .u64(f1, 0)
        .u64(f1 + 8, 0);
    out.push(("arm64_leaf_then_packed".into(), b.out));
    out
}

/// What a crash seed must reach: the walk's frames and stop, and the unloaded drivers.
fn check_crash(name: &str, data: &[u8]) {
    use analyzer::stack::{start_context, walk, StopReason};
    let arch = match data[0] & 3 {
        1 => analyzer::dump::Arch::X86,
        2 => analyzer::dump::Arch::Arm64,
        _ => analyzer::dump::Arch::X64,
    };
    let code = crate::crash::CODES[usize::from(data[0] >> 2 & 3)];
    let params: [u64; 4] = std::array::from_fn(|i| crate::le(data, 1 + 8 * i, 8));
    let ps = if arch == analyzer::dump::Arch::X86 {
        4
    } else {
        8
    };
    let mem = crate::mem::Sparse::parse(&data[33..], ps);
    let mut header = vec![0u8; 0x2000];
    for (i, page) in header.chunks_mut(0x1000).enumerate() {
        let _ = mem.read(crate::crash::HEADER_VA + 0x1000 * i as u64, page);
    }
    let start = start_context(&header, arch, code, &params, Some(&mem)).expect(name);
    let modules = crate::crash::modules(arch);
    let w = walk(
        &start,
        arch,
        &modules,
        &mem,
        &analyzer::stack::image::NoFetch,
    );
    let want = if arch == analyzer::dump::Arch::X86 {
        3
    } else {
        2
    };
    assert_eq!(w.frames.len(), want, "{name}: {w:?}");
    assert_eq!(w.stop.reason, StopReason::EndOfStack, "{name}: {w:?}");
    if name.contains("unloaded") {
        let l = analyzer::kernel::unloaded::read_unloaded(&mem, KERNEL_BASE, w19041()).unwrap();
        assert_eq!(l.drivers.len(), 1, "{l:?}");
        assert_eq!(l.drivers[0].name, "old.sys");
    }
}

/// A UNICODE_STRING (x64) at `at` whose buffer at `buffer` holds `text`.
fn unicode(b: &mut Builder, at: u64, buffer: u64, text: &str) {
    let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    b.u16(at, units.len() as u16)
        .u16(at + 2, units.len() as u16)
        .u64(at + 8, buffer)
        .write(buffer, &units);
}

/// The kernel target's seed: a plain debugger data block, nt and crashy.sys in
/// PsLoadedModuleList, the System process in PsActiveProcessHead, and a 'Driv' block holding
/// crashy.sys's DRIVER_OBJECT with one device object.
fn kernel_seed() -> Vec<u8> {
    use crate::crash::DRIVER64;
    const ENTRIES: u64 = 0xffff_c000_0200_0000;
    const STRINGS: u64 = 0xffff_c000_0201_0000;
    const EPROCESS: u64 = 0xffff_c000_0202_0000;
    const BLOCK: u64 = 0xffff_c000_0300_0000;
    const DEVICE: u64 = BLOCK + 0x1000;
    let driver = BLOCK + 0x30;
    let mut params = BLOCK.to_le_bytes().to_vec();
    params.extend_from_slice(&0x200u64.to_le_bytes());
    let mut b = Builder::new(&params);

    let mut kdbg = vec![0u8; 0x340];
    kdbg[0x10..0x14].copy_from_slice(b"KDBG");
    kdbg[0x14..0x18].copy_from_slice(&0x340u32.to_le_bytes());
    kdbg[0x18..0x20].copy_from_slice(&KERNEL_BASE.to_le_bytes());
    b.write(crate::kernel::KDBG_VA, &kdbg);

    let head = global("PsLoadedModuleList");
    let mods = [("ntoskrnl.exe", KERNEL_BASE), ("crashy.sys", DRIVER64)];
    b.u64(head, ENTRIES).u64(head + 8, ENTRIES + 0x100);
    for (i, (name, base)) in mods.iter().enumerate() {
        let e = ENTRIES + 0x100 * i as u64;
        let next = if i + 1 < mods.len() { e + 0x100 } else { head };
        b.u64(e, next).u64(e + 0x30, *base).u32(e + 0x40, 0x20_0000);
        let path = format!("\\SystemRoot\\system32\\{name}");
        unicode(&mut b, e + 0x48, STRINGS + 0x200 * i as u64, &path);
        unicode(&mut b, e + 0x58, STRINGS + 0x200 * i as u64 + 0x100, name);
    }

    let procs = global("PsActiveProcessHead");
    let links = EPROCESS + off("_EPROCESS", "ActiveProcessLinks");
    b.u64(procs, links)
        .u64(links, procs)
        .u64(EPROCESS + off("_EPROCESS", "UniqueProcessId"), 4)
        .write(EPROCESS + off("_EPROCESS", "ImageFileName"), b"System\0");

    let p = w19041();
    let (driver_size, device_size) = (
        p.type_size("_DRIVER_OBJECT").unwrap(),
        p.type_size("_DEVICE_OBJECT").unwrap(),
    );
    b.u16(driver, 4)
        .u16(driver + 2, driver_size as u16)
        .u64(driver + off("_DRIVER_OBJECT", "DriverStart"), DRIVER64)
        .u64(driver + off("_DRIVER_OBJECT", "DeviceObject"), DEVICE)
        .u16(DEVICE, 3)
        .u16(DEVICE + 2, device_size as u16 + 0x40)
        .u64(DEVICE + off("_DEVICE_OBJECT", "DriverObject"), driver)
        .u64(
            DEVICE + off("_DEVICE_OBJECT", "DeviceExtension"),
            DEVICE + device_size,
        );
    b.out
}

/// What the kernel seed must reach.
fn check_kernel(data: &[u8]) {
    use analyzer::analysis::provenance::modules::ModuleMap;
    let mem = crate::mem::Sparse::parse(&data[16..], 8);
    let ctx = context();
    analyzer::kernel::kdbg::read_kdbg(&mem, crate::kernel::KDBG_VA, None).unwrap();
    let m = analyzer::kernel::modules::walk_loaded_modules(&mem, global("PsLoadedModuleList"));
    assert_eq!(m.modules.len(), 2, "{:?}", m.warnings);
    assert_eq!(m.modules[1].name, "crashy.sys");
    let (p, w) =
        analyzer::pool::quota::walk_processes(&mem, &ctx, global("PsActiveProcessHead")).unwrap();
    assert_eq!((p.len(), p[0].name.as_str()), (1, "System"), "{w:?}");
    let map = ModuleMap::new(&m.modules, Some(KERNEL_BASE));
    let bases: Vec<u64> = m.modules.iter().map(|m| m.base).collect();
    let block = (crate::le(data, 0, 8), crate::le(data, 8, 8));
    let d = analyzer::analysis::provenance::objects::find_driver_objects(
        &mem,
        Some(w19041()),
        &map,
        &bases,
        &[block],
    );
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].module, d[0].devices.len()), (1, 1), "{d:?}");
}

/// A frame_data seed: the record's sizes, flags, ESP/EBP, the program and the stack words at
/// [`STACK32`].
fn frame_seed(sizes: [u32; 4], flags: u8, ebp: u32, program: &str, words: &[u32]) -> Vec<u8> {
    let mut head: Vec<u8> = sizes.iter().flat_map(|v| v.to_le_bytes()).collect();
    head.push(flags);
    head.extend_from_slice(&(STACK32 as u32).to_le_bytes());
    head.extend_from_slice(&ebp.to_le_bytes());
    head.extend_from_slice(program.as_bytes());
    head.push(0);
    let stack: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut b = Builder::new(&head);
    b.write(STACK32, &stack);
    b.out
}

/// The return address each frame_data seed must find.
const FRAME_RETURN: u32 = 0x8060_3000;

/// A clang-style program (after `push esi; sub esp, 8`), MSVC's EBP-frame program, and an
/// FPO_DATA layout (8 bytes of locals, one saved register).
fn frame_seeds() -> Vec<(String, Vec<u8>)> {
    let fp = (STACK32 + 0x10) as u32;
    vec![
        (
            "llvm_program".into(),
            frame_seed(
                [8, 4, 0, 0],
                1,
                0x77,
                "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + = $esi $T0 4 - ^ = ",
                &[0, 0, 0x5151, FRAME_RETURN, 0],
            ),
        ),
        (
            "msvc_ebp_program".into(),
            frame_seed(
                [0, 0, 8, 0],
                1,
                fp,
                "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =",
                &[0, 0, 0, 0, fp + 0x20, FRAME_RETURN, 0, 0],
            ),
        ),
        (
            "fpo_layout".into(),
            frame_seed([8, 4, 0, 0], 0, 0x77, "", &[0, 0, 0x5151, FRAME_RETURN]),
        ),
    ]
}

fn check_frame(name: &str, data: &[u8]) {
    use analyzer::stack::context::{Registers, RBP, RSP};
    use analyzer::stack::fpo::{step, FrameFacts};
    use analyzer::symbols::frame_data::{FrameRecord, FrameRule};
    let end = 25 + data[25..].iter().position(|&b| b == 0).unwrap();
    let text = std::str::from_utf8(&data[25..end]).unwrap().to_string();
    let mem = crate::mem::Sparse::parse(&data[end + 1..], 4);
    let word = |i: usize| crate::le(data, 4 * i, 4) as u32;
    let rule = if data[16] & 1 == 1 {
        FrameRule::Program(text)
    } else {
        FrameRule::Fpo {
            uses_base_pointer: false,
        }
    };
    let record = FrameRecord {
        rva: crate::frame::FUNCTION_RVA,
        size: 0x100,
        locals: word(0),
        saved_regs: word(1),
        params: word(2),
        function_start: true,
        rule,
    };
    let mut regs = Registers::default();
    regs.gpr[RSP] = crate::le(data, 17, 4);
    regs.gpr[RBP] = crate::le(data, 21, 4);
    let facts = FrameFacts {
        record: &record,
        callee_params: 0,
        at_entry: false,
    };
    let next = step(&regs, facts, &mem).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(next.ip, u64::from(FRAME_RETURN), "{name}");
    assert!(next.sp() > regs.sp(), "{name}");
}

#[test]
#[ignore = "writes fuzz/seeds (fuzz/make_seeds.sh)"]
fn write() {
    let dir = std::env::var("POOLTRIAGE_WRITE_SEEDS").expect("POOLTRIAGE_WRITE_SEEDS=fuzz/seeds");
    let dir = Path::new(&dir);
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    for (n, d) in pool_page_seeds() {
        seeds.push(("pool_page", n, d));
    }
    seeds.push(("big_pages", "w19041".into(), big_pages_seed()));
    seeds.push(("segheap", "w19041_unit_test_heap".into(), segheap_seed()));
    seeds.push(("session", "w19041_session1".into(), session_seed()));
    seeds.push(("code_scan", "x64_sites".into(), code_seed64()));
    seeds.push(("code_scan", "x86_sites".into(), code_seed32()));
    seeds.push(("code_scan", "usb2dbg_text".into(), driver_code(dir)));
    for (n, d) in mapped_images(dir) {
        seeds.push(("pe_memory", n, d));
    }
    for (n, d) in crash_seeds() {
        seeds.push(("crash", n, d));
    }
    seeds.push(("kernel", "w19041_lists_and_objects".into(), kernel_seed()));
    for (n, d) in frame_seeds() {
        seeds.push(("frame_data", n, d));
    }
    check(&seeds);
    for (target, name, data) in &seeds {
        assert!(
            data.len() < 64 << 10,
            "{target}/{name} is {} bytes",
            data.len()
        );
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), data).unwrap();
    }
}
