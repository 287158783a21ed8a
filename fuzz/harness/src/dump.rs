//! The dump readers: raw bytes through the header parser and every format's reader, a valid
//! x64 header of DumpType 4 (triage) or 5/6/2 (bitmaps, old summary) followed by the fuzzer's
//! bytes. Each opened dump is exercised as a caller would use it, so that a lookup that trusts an
//! unchecked field panics here rather than in production.

use analyzer::dump::Dump;

/// The dump header parser and format dispatch on raw bytes.
pub fn header(data: &[u8]) {
    let _ = analyzer::dump::parse_header(data);
    exercise(data.to_vec());
}

/// A valid x64 DumpType 4 header followed by the input (TRIAGE_DUMP, driver list, string
/// pool, data blocks), so every input reaches the triage code.
pub fn triage(data: &[u8]) {
    let mut b = header64(4);
    b.extend_from_slice(data);
    exercise(b);
}

/// Byte 0 picks DumpType 5 or 6 (SDMP/FDMP bitmap) or 2 (old summary); a valid x64 header of
/// that type followed by the rest, so every input reaches the bitmap and rank-index code.
pub fn bitmap(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let t = match sel % 3 {
        0 => 5,
        1 => 6,
        _ => 2,
    };
    let mut b = header64(t);
    b.extend_from_slice(rest);
    exercise(b);
}

fn exercise(bytes: Vec<u8>) {
    let Ok(d) = Dump::from_bytes(bytes) else {
        return;
    };
    let _ = d.header();
    let _ = d.format().as_str();
    let n = d.stored_page_count();
    let mut seen = 0u64;
    for pfn in d.stored_pfns().take(4096) {
        assert!(
            d.physical().page(pfn).is_some(),
            "stored pfn {pfn:#x} has no page"
        );
        seen += 1;
    }
    assert!(seen <= n);
    for pfn in [0u64, 1, 0x1000, u64::MAX >> 12, u64::MAX] {
        let _ = d.physical().page(pfn);
    }
    if let Some(t) = d.triage() {
        let _ = t.drivers.len();
        let _ = d.triage_debugger_data();
    }
    if let Ok(m) = d.kernel_memory() {
        let mut buf = [0u8; 0x1010];
        for va in [0u64, 0xFFFF_F800_0000_0000, 0x8000_0000, u64::MAX - 8] {
            let _ = m.read(va, &mut buf);
        }
        if let Some(t) = d.triage() {
            for b in t.data_blocks.iter().take(16) {
                let _ = m.read(b.address, &mut buf[..(b.size as usize).min(0x1010)]);
            }
        }
    };
}

/// A 64-bit dump header ("PAGE" "DU64", x64) of DumpType `t`, 0x2000 bytes.
fn header64(t: u32) -> Vec<u8> {
    let mut h: Vec<u8> = b"PAGE".iter().copied().cycle().take(0x2000).collect();
    h[4..8].copy_from_slice(b"DU64");
    h[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
    h[0x30..0x34].copy_from_slice(&0x8664u32.to_le_bytes());
    h[0x80..0x88].copy_from_slice(&0xFFFF_F800_0000_1000u64.to_le_bytes());
    h[0xF98..0xF9C].copy_from_slice(&t.to_le_bytes());
    h
}
