// Shared by the fuzz targets: open the bytes as a dump and touch everything a caller would,
// so that a lookup that trusts an unchecked field panics here rather than in production.
use analyzer::dump::Dump;

pub fn exercise(bytes: Vec<u8>) {
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

#[allow(dead_code)] // not every target prefixes a header
/// A 64-bit dump header ("PAGE" "DU64", x64) of DumpType `t`, 0x2000 bytes.
pub fn header64(t: u32) -> Vec<u8> {
    let mut h: Vec<u8> = b"PAGE".iter().copied().cycle().take(0x2000).collect();
    h[4..8].copy_from_slice(b"DU64");
    h[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
    h[0x30..0x34].copy_from_slice(&0x8664u32.to_le_bytes());
    h[0x80..0x88].copy_from_slice(&0xFFFF_F800_0000_1000u64.to_le_bytes());
    h[0xF98..0xF9C].copy_from_slice(&t.to_le_bytes());
    h
}
