//! Hand-built dump files for the dump reader's tests: each builder writes the header fields at
//! the offsets of the public layouts (kdmp-parser HEADER64/BMP_HEADER64/RDMP_HEADER64, rizin
//! dmp32_header/dmp64_triage, windows-internals.md), independently of the reader's code.
//! Every stored page is filled with a pattern derived from its PFN, so a test can tell which
//! page the reader served.
#![allow(dead_code)]

pub const PAGE: usize = 0x1000;

pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The content of stored page `pfn`: u64 words `pfn << 16 | word index`.
pub fn page_of(pfn: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    for (i, w) in p.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&((pfn << 16) | i as u64).to_le_bytes());
    }
    p
}

fn filled(len: usize) -> Vec<u8> {
    b"PAGE".iter().copied().cycle().take(len).collect()
}

/// A 0x2000-byte 64-bit header ("PAGE" "DU64").
pub fn header64(dump_type: u32, machine: u32) -> Vec<u8> {
    let mut h = filled(0x2000);
    h[4..8].copy_from_slice(b"DU64");
    put32(&mut h, 0x08, 0xF);
    put32(&mut h, 0x0C, 19041);
    put64(&mut h, 0x10, 0x1000); // DirectoryTableBase
    put32(&mut h, 0x30, machine);
    put32(&mut h, 0x34, 2);
    put32(&mut h, 0x38, 0xE2);
    for i in 0..4 {
        put64(&mut h, 0x40 + 8 * i, 0x1111 * (i as u64 + 1));
    }
    put64(&mut h, 0x80, 0xFFFF_F800_0000_1000); // KdDebuggerDataBlock
    put32(&mut h, 0xF98, dump_type);
    put64(&mut h, 0xFA8, 0x01D7_0000_0000_0000);
    h
}

/// A 0x1000-byte x86 header ("PAGE" "DUMP").
pub fn header32(dump_type: u32, pae: bool) -> Vec<u8> {
    let mut h = filled(0x1000);
    h[4..8].copy_from_slice(b"DUMP");
    put32(&mut h, 0x08, 0xF);
    put32(&mut h, 0x0C, 2600);
    put32(&mut h, 0x10, 0x1000);
    put32(&mut h, 0x20, 0x14C);
    put32(&mut h, 0x24, 1);
    put32(&mut h, 0x28, 0xC2);
    for i in 0..4 {
        put32(&mut h, 0x2C + 4 * i, 0x2222 * (i as u32 + 1));
    }
    h[0x5C] = u8::from(pae);
    put32(&mut h, 0x60, 0x8054_0000);
    put32(&mut h, 0xF88, dump_type);
    put64(&mut h, 0xFC0, 0x01C9_0000_0000_0000);
    h
}

fn append_pages(v: &mut Vec<u8>, pfns: impl IntoIterator<Item = u64>) {
    for pfn in pfns {
        v.extend_from_slice(&page_of(pfn));
    }
}

/// DumpType 1, 64-bit: run table at 0x88, pages from 0x2000 in run order.
pub fn full64(runs: &[(u64, u64)]) -> Vec<u8> {
    let mut v = header64(1, 0x8664);
    put32(&mut v, 0x88, runs.len() as u32);
    put32(&mut v, 0x8C, 0);
    put64(&mut v, 0x90, runs.iter().map(|r| r.1).sum());
    for (i, &(base, count)) in runs.iter().enumerate() {
        put64(&mut v, 0x98 + 16 * i, base);
        put64(&mut v, 0xA0 + 16 * i, count);
    }
    for &(base, count) in runs {
        append_pages(&mut v, base..base + count);
    }
    v
}

/// DumpType 1, x86: u32 run table at 0x64, pages from 0x1000.
pub fn full32(runs: &[(u64, u64)], pae: bool) -> Vec<u8> {
    let mut v = header32(1, pae);
    put32(&mut v, 0x64, runs.len() as u32);
    put32(&mut v, 0x68, runs.iter().map(|r| r.1).sum::<u64>() as u32);
    for (i, &(base, count)) in runs.iter().enumerate() {
        put32(&mut v, 0x6C + 8 * i, base as u32);
        put32(&mut v, 0x70 + 8 * i, count as u32);
    }
    for &(base, count) in runs {
        append_pages(&mut v, base..base + count);
    }
    v
}

/// DumpType 5 (64-bit) with "SDMP" or "FDMP": sub-header at 0x2000, bitmap at 0x2038,
/// pages from the next page boundary, in bit order. `set` must be ascending.
pub fn bmp64(sig: &[u8; 4], bits: u64, set: &[u64]) -> Vec<u8> {
    let mut v = header64(5, 0x8664);
    let bitmap_len = bits.div_ceil(8) as usize;
    let first = (0x2038 + bitmap_len).div_ceil(PAGE) * PAGE;
    v.resize(first, 0);
    v[0x2000..0x2004].copy_from_slice(sig);
    v[0x2004..0x2008].copy_from_slice(b"DUMP");
    put64(&mut v, 0x2020, first as u64);
    put64(&mut v, 0x2028, set.len() as u64);
    put64(&mut v, 0x2030, bits);
    for &b in set {
        v[0x2038 + (b / 8) as usize] |= 1 << (b % 8);
    }
    append_pages(&mut v, set.iter().copied());
    v
}

/// DumpType 2 (x86 summary): SUMMARY_DUMP at 0x1000, bitmap at 0x1020.
pub fn summary32(bits: u64, set: &[u64]) -> Vec<u8> {
    let mut v = header32(2, true);
    let bitmap_len = bits.div_ceil(8) as usize;
    let first = (0x1020 + bitmap_len).div_ceil(PAGE) * PAGE;
    v.resize(first, 0);
    v[0x1000..0x1004].copy_from_slice(b"SDMP");
    v[0x1004..0x1008].copy_from_slice(b"DUMP");
    put32(&mut v, 0x100C, first as u32);
    put32(&mut v, 0x1010, bits as u32);
    put32(&mut v, 0x1014, set.len() as u32);
    put32(&mut v, 0x1018, bits as u32); // RTL_BITMAP.SizeOfBitMap
    for &b in set {
        v[0x1020 + (b / 8) as usize] |= 1 << (b % 8);
    }
    append_pages(&mut v, set.iter().copied());
    v
}

/// DumpType 8/9/0xA: RDMP header at 0x2000, PFN ranges at 0x2030 ending with a zero entry,
/// pages at FirstPageOffset = 0x2040 + MetadataSize - 0x20 (kdmp-parser's consistency rule).
pub fn rdmp64(dump_type: u32, ranges: &[(u64, u64)]) -> Vec<u8> {
    let mut v = header64(dump_type, 0x8664);
    // Ranges plus a zero terminator, rounded so the first page is page-aligned.
    let metadata = 0xFE0u64; // FirstPageOffset = 0x3000
    let first = 0x2040 + metadata - 0x20;
    assert_eq!(first, 0x3000);
    v.resize(first as usize, 0);
    put32(&mut v, 0x2000, 0x40);
    v[0x2004..0x2008].copy_from_slice(b"RDMP");
    v[0x2008..0x200C].copy_from_slice(b"DUMP");
    put64(&mut v, 0x2010, metadata);
    put64(&mut v, 0x2018, first);
    // FULL_RDMP_HEADER64 NumberOfRanges and TotalNumberOfPages (kdmp-parser): a complete dump
    // (0xA) is read only up to TotalNumberOfPages. Written for 8/9 too, where they are unknown.
    put32(&mut v, 0x2020, ranges.len() as u32);
    put64(&mut v, 0x2028, ranges.iter().map(|r| r.1).sum());
    for (i, &(pfn, count)) in ranges.iter().enumerate() {
        put64(&mut v, 0x2030 + 16 * i, pfn);
        put64(&mut v, 0x2038 + 16 * i, count);
    }
    for &(pfn, count) in ranges {
        append_pages(&mut v, pfn..pfn + count);
    }
    // RequiredDumpSpace: the file's size, as Windows (and the forge) writes it.
    let len = v.len() as u64;
    put64(&mut v, 0xFA0, len);
    v
}

/// A minimal 64-bit triage dump: TRIAGE_DUMP at 0x2000, driver list, string pool, data
/// blocks, debugger data, "TRGD" at ValidOffset = SizeOfDump - 4.
pub fn triage64(drivers: &[(&str, u64, u32, u32, u32)], blocks: &[(u64, &[u8])]) -> Vec<u8> {
    let mut v = header64(4, 0x8664);
    v.resize(0x2080, 0);
    let driver_list = v.len();
    v.resize(driver_list + drivers.len() * 0x90, 0);
    let pool = v.len();
    let mut names = Vec::new();
    for (i, d) in drivers.iter().enumerate() {
        let e = driver_list + i * 0x90;
        put32(&mut v, e, (pool + names.len()) as u32);
        put64(&mut v, e + 0x38, d.1);
        put32(&mut v, e + 0x48, d.2);
        put32(&mut v, e + 0x80, d.4);
        put32(&mut v, e + 0x88, d.3);
        let units: Vec<u16> = d.0.encode_utf16().collect();
        names.extend_from_slice(&(units.len() as u32).to_le_bytes());
        for u in units {
            names.extend_from_slice(&u.to_le_bytes());
        }
        names.extend_from_slice(&[0, 0]);
    }
    v.extend_from_slice(&names);
    let block_table = v.len();
    v.resize(block_table + blocks.len() * 16, 0);
    for (i, (va, bytes)) in blocks.iter().enumerate() {
        let off = v.len();
        v.extend_from_slice(bytes);
        put64(&mut v, block_table + 16 * i, *va);
        put32(&mut v, block_table + 16 * i + 8, off as u32);
        put32(&mut v, block_table + 16 * i + 12, bytes.len() as u32);
    }
    // Debugger data: a "KDBG"-tagged block at the header's KdDebuggerDataBlock.
    let kdbg = v.len();
    let mut k = vec![0u8; 0x340];
    k[0x10..0x14].copy_from_slice(b"KDBG");
    put32(&mut k, 0x14, 0x340);
    v.extend_from_slice(&k);
    let valid = v.len();
    v.extend_from_slice(b"TRGD");
    let t = 0x2000;
    let size_of_dump = v.len() as u32;
    put32(&mut v, t + 0x04, size_of_dump);
    put32(&mut v, t + 0x08, valid as u32);
    put32(&mut v, t + 0x30, driver_list as u32);
    put32(&mut v, t + 0x34, drivers.len() as u32);
    put32(&mut v, t + 0x38, pool as u32);
    put32(&mut v, t + 0x3C, names.len() as u32);
    put32(&mut v, t + 0x70, kdbg as u32);
    put32(&mut v, t + 0x74, 0x340);
    put32(&mut v, t + 0x78, block_table as u32);
    put32(&mut v, t + 0x7C, blocks.len() as u32);
    v
}

/// A small x64 full dump whose page tables map VA 0xFFFFF800_00200000.. to pfns 5 and 6
/// (pfn 6 through a transition PTE); pfn 7 is mapped but not stored.
pub fn full64_with_page_tables() -> (Vec<u8>, u64) {
    let va = 0xFFFF_F800_0020_0000u64;
    let mut v = full64(&[(1, 6)]); // pfns 1..=6; PML4 = pfn 1 (DTB 0x1000)
    let page_off = |pfn: u64| 0x2000 + (pfn as usize - 1) * PAGE;
    for pfn in 1..=4 {
        let o = page_off(pfn);
        v[o..o + PAGE].fill(0);
    }
    put64(
        &mut v,
        page_off(1) + ((va >> 39) & 0x1FF) as usize * 8,
        0x2000 | 3,
    );
    put64(
        &mut v,
        page_off(2) + ((va >> 30) & 0x1FF) as usize * 8,
        0x3000 | 3,
    );
    put64(
        &mut v,
        page_off(3) + ((va >> 21) & 0x1FF) as usize * 8,
        0x4000 | 3,
    );
    put64(&mut v, page_off(4), 0x5000 | 3);
    put64(&mut v, page_off(4) + 8, 0x6000 | 0x800);
    put64(&mut v, page_off(4) + 16, 0x7000 | 3);
    (v, va)
}

/// A minimal x86 triage dump (rizin dmp32_triage / dmp_driver_entry32 layout): TRIAGE_DUMP32
/// at 0x1000 (0x68 bytes), one 0x4C-byte driver entry, 12-byte data blocks.
pub fn triage32(
    name: &str,
    base: u32,
    size: u32,
    ts: u32,
    sum: u32,
    block: (u32, &[u8]),
) -> Vec<u8> {
    let mut v = header32(4, true);
    v.resize(0x1068, 0);
    let drv = v.len();
    v.resize(drv + 0x4C, 0);
    let pool = v.len();
    let units: Vec<u16> = name.encode_utf16().collect();
    v.extend_from_slice(&(units.len() as u32).to_le_bytes());
    for u in &units {
        v.extend_from_slice(&u.to_le_bytes());
    }
    put32(&mut v, drv, pool as u32);
    put32(&mut v, drv + 4 + 0x18, base);
    put32(&mut v, drv + 4 + 0x20, size);
    put32(&mut v, drv + 4 + 0x40, sum);
    put32(&mut v, drv + 4 + 0x44, ts);
    let table = v.len();
    v.resize(table + 12, 0);
    let data = v.len();
    v.extend_from_slice(block.1);
    put32(&mut v, table, block.0);
    put32(&mut v, table + 4, data as u32);
    put32(&mut v, table + 8, block.1.len() as u32);
    let valid = v.len();
    v.extend_from_slice(b"TRGD");
    let t = 0x1000;
    let total = v.len() as u32;
    put32(&mut v, t + 0x04, total);
    put32(&mut v, t + 0x08, valid as u32);
    put32(&mut v, t + 0x30, drv as u32);
    put32(&mut v, t + 0x34, 1);
    put32(&mut v, t + 0x38, pool as u32);
    put32(&mut v, t + 0x60, table as u32);
    put32(&mut v, t + 0x64, 1);
    v
}
