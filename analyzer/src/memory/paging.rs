//! Kernel virtual memory by page-table walk over the dump's physical pages: x64 4-level
//! (2 MB and 1 GB pages), x86 PAE 3-level (2 MB pages) and x86 non-PAE 2-level (4 MB pages).
//!
//! Transition PTEs (valid bit clear, Transition bit 11 set, Prototype bit 10 clear) still name
//! the physical page that holds the data, which the dump writer saved; WinDbg reads them as
//! present and so do we. The walk has a fixed depth, so a page-table "loop" cannot recurse;
//! an entry pointing at an absurd physical address ends in `PageMissing`.

use super::{MemoryError, PhysicalMemory, VirtualMemory, PAGE_SHIFT, PAGE_SIZE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// x64 4-level paging (PML4, PDPT, PD, PT), 8-byte entries.
    X64,
    /// x86 PAE: 4-entry PDPT, PD, PT, 8-byte entries.
    X86Pae,
    /// x86 classic 2-level paging, 4-byte entries.
    X86,
}

const VALID: u64 = 1 << 0;
const LARGE: u64 = 1 << 7;
const PROTOTYPE: u64 = 1 << 10;
const TRANSITION: u64 = 1 << 11;
/// Physical frame bits 12..51 of a 64-bit entry (x64 and PAE).
const PFN_MASK_64: u64 = 0x000F_FFFF_FFFF_F000;

/// Page-table translation over a physical memory with a directory table base.
pub struct PageTableMemory<'a> {
    phys: &'a dyn PhysicalMemory,
    dtb: u64,
    mode: PagingMode,
}

impl<'a> PageTableMemory<'a> {
    /// `dtb` is CR3 as stored in the dump header; low flag/PCID bits are masked off.
    pub fn new(phys: &'a dyn PhysicalMemory, dtb: u64, mode: PagingMode) -> Self {
        let dtb = match mode {
            PagingMode::X64 => dtb & PFN_MASK_64,
            // The PAE PDPT is 32-byte aligned.
            PagingMode::X86Pae => dtb & 0xFFFF_FFE0,
            PagingMode::X86 => dtb & 0xFFFF_F000,
        };
        PageTableMemory { phys, dtb, mode }
    }

    pub fn mode(&self) -> PagingMode {
        self.mode
    }

    /// The physical address `va` maps to. Errors: `NotMapped` (entry not present, or not a
    /// valid address for the mode), `PageMissing` (a table page is not in the dump).
    pub fn translate(&self, va: u64) -> Result<u64, MemoryError> {
        let valid_va = match self.mode {
            // Canonical: bits 63..47 all equal.
            PagingMode::X64 => matches!(va >> 47, 0 | 0x1_FFFF),
            PagingMode::X86Pae | PagingMode::X86 => va <= u64::from(u32::MAX),
        };
        if !valid_va {
            return Err(MemoryError::NotMapped { va });
        }
        let levels = self.levels();
        let mut table = self.dtb;
        for (depth, level) in levels.iter().enumerate() {
            let index = (va >> level.shift) & (level.entries - 1);
            let pa = table + index * self.entry_size();
            let entry = self
                .entry(pa)
                .ok_or(MemoryError::PageMissing { va: Some(va), pa })?;
            if !self.present(depth, entry) {
                return Err(MemoryError::NotMapped { va });
            }
            if let Some(frame) = self.maps_page(levels, depth, entry) {
                let span_mask = (1u64 << level.shift) - 1;
                return Ok(frame | (va & span_mask));
            }
            table = entry & self.frame_mask();
        }
        // Unreachable for non-empty level tables: the last level always maps a page.
        Err(MemoryError::NotMapped { va })
    }

    fn levels(&self) -> &'static [Level] {
        match self.mode {
            PagingMode::X64 => &X64_LEVELS,
            PagingMode::X86Pae => &PAE_LEVELS,
            PagingMode::X86 => &X86_LEVELS,
        }
    }

    fn entry_size(&self) -> u64 {
        if self.mode == PagingMode::X86 {
            4
        } else {
            8
        }
    }

    fn frame_mask(&self) -> u64 {
        if self.mode == PagingMode::X86 {
            0xFFFF_F000
        } else {
            PFN_MASK_64
        }
    }

    /// The table entry at physical address `pa`, or `None` when its page is not in the dump.
    fn entry(&self, pa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        let size = self.entry_size() as usize;
        self.phys.read_physical(pa, &mut b[..size]).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Whether an entry maps anything. PAE's PDPTEs have no transition form; elsewhere a
    /// transition entry still maps (the data is in RAM and in the dump).
    fn present(&self, depth: usize, entry: u64) -> bool {
        if self.mode == PagingMode::X86Pae && depth == 0 {
            entry & VALID != 0
        } else {
            entry & VALID != 0 || entry & (TRANSITION | PROTOTYPE) == TRANSITION
        }
    }

    /// For a present entry that maps a page (a PTE, or a large PDE/PDPTE), the physical base
    /// of that page (aligned to the span the entry maps); `None` for an entry naming a table.
    fn maps_page(&self, levels: &[Level], depth: usize, entry: u64) -> Option<u64> {
        let level = levels.get(depth)?;
        let leaf = depth + 1 == levels.len();
        if leaf || (level.large && entry & (VALID | LARGE) == VALID | LARGE) {
            Some(entry & self.frame_mask() & !((1u64 << level.shift) - 1))
        } else {
            None
        }
    }
}

/// One level of a page-table format, for enumeration.
struct Level {
    entries: u64,
    /// log2 of the bytes one entry maps.
    shift: u32,
    /// Whether a valid entry with the large bit maps a page directly (PDPT/PD levels).
    large: bool,
}

impl Level {
    const fn new(entries: u64, shift: u32, large: bool) -> Level {
        Level {
            entries,
            shift,
            large,
        }
    }
}

const X64_LEVELS: [Level; 4] = [
    Level::new(512, 39, false),
    Level::new(512, 30, true),
    Level::new(512, 21, true),
    Level::new(512, 12, false),
];
const PAE_LEVELS: [Level; 3] = [
    Level::new(4, 30, false),
    Level::new(512, 21, true),
    Level::new(512, 12, false),
];
const X86_LEVELS: [Level; 2] = [Level::new(1024, 22, true), Level::new(1024, 12, false)];

impl PageTableMemory<'_> {
    /// Walks the tables below `table` (level `depth` of `levels`), visiting mapped pages of
    /// `[start, end)`. A table page missing from the dump hides what it maps: skipped.
    fn walk(
        &self,
        depth: usize,
        table: u64,
        base: u64,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, Option<&[u8]>),
    ) {
        let levels = self.levels();
        let Some(level) = levels.get(depth) else {
            return;
        };
        let span = 1u64 << level.shift;
        for idx in 0..level.entries {
            let mut va = base.wrapping_add(idx << level.shift);
            if depth == 0 && self.mode == PagingMode::X64 && idx >= 256 {
                va |= 0xFFFF_0000_0000_0000; // canonical upper half
            }
            let last = va.wrapping_add(span - 1);
            if last < start {
                continue;
            }
            if va >= end {
                break;
            }
            let Some(entry) = self.entry(table + idx * self.entry_size()) else {
                continue;
            };
            if !self.present(depth, entry) {
                continue;
            }
            match self.maps_page(levels, depth, entry) {
                Some(frame) => {
                    let from = va.max(start & !(PAGE_SIZE - 1));
                    let to = last.min(end.saturating_sub(1));
                    let mut page_va = from;
                    while page_va <= to {
                        let pfn = (frame + (page_va - va)) >> PAGE_SHIFT;
                        f(page_va, self.phys.page(pfn));
                        match page_va.checked_add(PAGE_SIZE) {
                            Some(n) => page_va = n,
                            None => break,
                        }
                    }
                }
                None => self.walk(depth + 1, entry & self.frame_mask(), va, start, end, f),
            }
        }
    }
}

impl VirtualMemory for PageTableMemory<'_> {
    fn release_resident(&self) {
        self.phys.release_resident();
    }

    fn for_each_mapped_page(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, Option<&[u8]>),
    ) -> bool {
        self.walk(0, self.dtb, 0, start, end, f);
        true
    }

    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = va
                .checked_add(done as u64)
                .ok_or(MemoryError::AddressOverflow { addr: va })?;
            let pa = self.translate(addr)?;
            let page = self
                .phys
                .page(pa >> PAGE_SHIFT)
                .ok_or(MemoryError::PageMissing { va: Some(addr), pa })?;
            let off = (pa & (PAGE_SIZE - 1)) as usize;
            let n = page.len().saturating_sub(off).min(buf.len() - done);
            if n == 0 {
                return Err(MemoryError::PageMissing { va: Some(addr), pa });
            }
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }

    fn pointer_size(&self) -> u8 {
        match self.mode {
            PagingMode::X64 => 8,
            PagingMode::X86Pae | PagingMode::X86 => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Physical memory over a few hand-written pages.
    #[derive(Default)]
    struct Phys(HashMap<u64, Vec<u8>>);

    impl Phys {
        fn page_mut(&mut self, pfn: u64) -> &mut Vec<u8> {
            self.0
                .entry(pfn)
                .or_insert_with(|| vec![0u8; PAGE_SIZE as usize])
        }
        fn put64(&mut self, pa: u64, v: u64) {
            let off = (pa & 0xFFF) as usize;
            self.page_mut(pa >> 12)[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        fn put32(&mut self, pa: u64, v: u32) {
            let off = (pa & 0xFFF) as usize;
            self.page_mut(pa >> 12)[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn bytes(&mut self, pa: u64, b: &[u8]) {
            let off = (pa & 0xFFF) as usize;
            self.page_mut(pa >> 12)[off..off + b.len()].copy_from_slice(b);
        }
    }

    impl PhysicalMemory for Phys {
        fn page(&self, pfn: u64) -> Option<&[u8]> {
            self.0.get(&pfn).map(|v| v.as_slice())
        }
    }

    const P: u64 = 0x3; // present + writable
    const PS: u64 = 0x83; // present + writable + large

    #[test]
    fn x64_small_large_huge_and_transition() {
        let mut m = Phys::default();
        let va = 0xFFFF_F800_0020_1234u64;
        let (pml4, pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
        m.put64(pml4 + ((va >> 39) & 0x1FF) * 8, pdpt | P);
        m.put64(pdpt, pd | P);
        m.put64(pd + 8, pt | P);
        m.put64(pt + 8, 0x5000 | P | (1 << 63)); // NX bit must be ignored
        m.bytes(0x5234, b"hello");
        // PTE 2: transition (valid clear, bit 11 set, bit 10 clear) -> page 6.
        m.put64(pt + 16, 0x6000 | TRANSITION);
        m.bytes(0x5FFC, &[1, 2, 3, 4]);
        m.bytes(0x6000, &[5, 6, 7, 8]);
        // PTE 3: prototype PTE -> not mapped.
        m.put64(pt + 24, 0x7000 | TRANSITION | PROTOTYPE);
        // PTE 4: valid, frame not in dump. PTE 5: absurd frame bits.
        m.put64(pt + 32, 0x99_000 | P);
        m.put64(pt + 40, 0xFFFF_FFFF_FFFF_F001);
        // PDE 2: 2 MB page at physical 0x20_0000.
        m.put64(pd + 16, 0x20_0000 | PS);
        m.bytes(0x20_0000 + 0x1_2345, b"2mb");
        // PDPTE 1: 1 GB page at physical 0x4000_0000.
        m.put64(pdpt + 8, 0x4000_0000 | PS);
        m.bytes(0x4000_0000 + 0x12_3456, b"1gb");

        let v = PageTableMemory::new(&m, pml4 | 0x5, PagingMode::X64); // low CR3 bits masked
        assert_eq!(v.pointer_size(), 8);
        assert_eq!(v.read_vec(va, 5).unwrap(), b"hello");
        assert_eq!(v.translate(va).unwrap(), 0x5234);
        // Across the boundary from a valid page into a transition page.
        let base = va & !0xFFF & !0x1FF000; // PT index 0 of this table
        let page1 = base + 0x1000;
        assert_eq!(
            v.read_vec(page1 + 0xFFC, 8).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            v.read(page1 + 0x2000, &mut [0u8; 1]),
            Err(MemoryError::NotMapped { va: page1 + 0x2000 })
        );
        assert!(matches!(
            v.read_u8(page1 + 0x3000),
            Err(MemoryError::PageMissing { pa: 0x99_000, .. })
        ));
        assert!(matches!(
            v.read_u8(page1 + 0x4000),
            Err(MemoryError::PageMissing { .. })
        ));
        // PTE 6 is empty.
        assert_eq!(
            v.read_u8(page1 + 0x5000),
            Err(MemoryError::NotMapped { va: page1 + 0x5000 })
        );
        // 2 MB page: PD index 2 of the same PDPT entry.
        let va2m = (va & !0x3FFF_FFFF) + 2 * 0x20_0000 + 0x1_2345;
        assert_eq!(v.read_vec(va2m, 3).unwrap(), b"2mb");
        // 1 GB page: PDPT index 1.
        let va1g = (va & !0x7F_FFFF_FFFF) + 0x4000_0000 + 0x12_3456;
        assert_eq!(v.read_vec(va1g, 3).unwrap(), b"1gb");
        // Non-canonical and unmapped PML4 slot.
        assert_eq!(
            v.read_u8(0x0000_8000_0000_0000),
            Err(MemoryError::NotMapped {
                va: 0x0000_8000_0000_0000
            })
        );
        assert_eq!(
            v.read_u8(0x1000),
            Err(MemoryError::NotMapped { va: 0x1000 })
        );
        // Reading up to the top of the address space does not wrap.
        assert!(v.read(u64::MAX, &mut [0u8; 2]).is_err());

        // Enumeration of PT entries 0..6: 0 empty, 1 valid, 2 transition, 3 prototype (not
        // mapped), 4 valid but not stored, 5 absurd frame (not stored).
        let mut seen = Vec::new();
        assert!(
            v.for_each_mapped_page(base, base + 0x6000, &mut |va, p| seen
                .push((va - base, p.map(|p| p[0]))))
        );
        assert_eq!(
            seen,
            [
                (0x1000, Some(0)),
                (0x2000, Some(5)),
                (0x4000, None),
                (0x5000, None)
            ]
        );
        // A 1 GB page is enumerated 4 KiB at a time, only inside the range asked for.
        let g = va & !0x7F_FFFF_FFFF;
        let mut n = 0;
        v.for_each_mapped_page(
            g + 0x4000_0000 + 0x12_3000,
            g + 0x4000_0000 + 0x12_5000,
            &mut |va, p| {
                n += 1;
                if va == g + 0x4000_0000 + 0x12_3000 {
                    assert_eq!(&p.unwrap()[0x456..0x459], b"1gb");
                }
            },
        );
        assert_eq!(n, 2);
    }

    #[test]
    fn x64_missing_table_page_and_self_loop() {
        let mut m = Phys::default();
        // PML4 entry 0 points to a page-table page that is not in the dump.
        m.put64(0x1000, 0x7_7000 | P);
        // PML4 entry 1 points back at the PML4 itself (a loop): the fixed-depth walk just
        // reinterprets the PML4 as lower levels and ends.
        m.put64(0x1000 + 8, 0x1000 | P);
        let v = PageTableMemory::new(&m, 0x1000, PagingMode::X64);
        assert_eq!(
            v.read_u8(0x10),
            Err(MemoryError::PageMissing {
                va: Some(0x10),
                pa: 0x7_7000
            })
        );
        // PML4 1 -> PDPT = PML4, PDPT 1 -> PD = PML4, PD 1 -> PT = PML4, PT 0 -> page 0x77.
        let looped = 0x80_0000_0000u64 + (1 << 30) + (1 << 21) + (1 << 12);
        assert_eq!(v.read_u64(looped).unwrap(), 0x7_7000 | P); // reads the PML4 page itself
        let to_missing = 0x80_0000_0000u64 + (1 << 30) + (1 << 21);
        assert_eq!(
            v.read_u8(to_missing),
            Err(MemoryError::PageMissing {
                va: Some(to_missing),
                pa: 0x7_7000
            })
        );
        // Enumerating the whole space through the loop ends (fixed depth): PML4 1 -> 1 -> 1
        // -> PT entries 0 (frame 0x77, not stored) and 1 (the PML4 page itself).
        let mut seen = Vec::new();
        v.for_each_mapped_page(0, u64::MAX, &mut |va, p| seen.push((va, p.is_some())));
        assert!(
            seen.contains(&(looped, true)) && seen.contains(&(to_missing, false)),
            "{seen:x?}"
        );
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
    }

    #[test]
    fn pae_small_large_and_transition() {
        let mut m = Phys::default();
        let va = 0x8040_1234u64; // PDPT 2, PD 2, PT 1
        let (pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64);
        m.put64(pdpt + 2 * 8, pd | 1);
        m.put64(pd + 2 * 8, pt | P);
        m.put64(pt + 8, 0x4000 | P);
        m.put64(pt + 16, 0x5000 | TRANSITION);
        m.bytes(0x4234, b"pae");
        m.bytes(0x4FFE, &[1, 2]);
        m.bytes(0x5000, &[3, 4]);
        // PD 3: 2 MB page at 0x60_0000.
        m.put64(pd + 3 * 8, 0x60_0000 | PS);
        m.bytes(0x60_0000 + 0x1_0001, b"big");
        let v = PageTableMemory::new(&m, pdpt, PagingMode::X86Pae);
        assert_eq!(v.pointer_size(), 4);
        assert_eq!(v.read_vec(va, 3).unwrap(), b"pae");
        assert_eq!(v.read_vec(0x8040_1FFE, 4).unwrap(), [1, 2, 3, 4]);
        assert_eq!(v.read_vec(0x8060_0000 + 0x1_0001, 3).unwrap(), b"big");
        assert_eq!(
            v.read_u8(0x1234),
            Err(MemoryError::NotMapped { va: 0x1234 })
        ); // PDPT 0 empty
        assert_eq!(
            v.read_u8(0x1_0000_0000),
            Err(MemoryError::NotMapped { va: 0x1_0000_0000 })
        );
        // Enumeration: PT 1 and 2 (stored), then PD 3's 2 MB page (512 pages, one stored).
        let (mut all, mut stored) = (0, 0);
        v.for_each_mapped_page(0x8040_0000, 0x8080_0000, &mut |_, p| {
            all += 1;
            stored += usize::from(p.is_some());
        });
        assert_eq!((all, stored), (2 + 512, 2 + 1));
    }

    #[test]
    fn x86_small_large_and_transition() {
        let mut m = Phys::default();
        let va = 0x8040_1234u64; // PD 0x201, PT 1
        let (pd, pt) = (0x1000u64, 0x2000u64);
        m.put32(pd + 0x201 * 4, (pt | P) as u32);
        m.put32(pt + 4, (0x3000 | P) as u32);
        m.put32(pt + 8, (0x4000 | TRANSITION) as u32);
        m.put32(pt + 12, (0x5000 | TRANSITION | PROTOTYPE) as u32);
        m.bytes(0x3234, b"x86");
        m.bytes(0x3FFF, &[9]);
        m.bytes(0x4000, &[10]);
        // PD 0x202: 4 MB page at physical 0xC0_0000.
        m.put32(pd + 0x202 * 4, (0xC0_0000 | PS) as u32);
        m.bytes(0xC0_0000 + 0x2F_0010, b"4mb");
        let v = PageTableMemory::new(&m, pd, PagingMode::X86);
        assert_eq!(v.read_vec(va, 3).unwrap(), b"x86");
        assert_eq!(v.read_vec(0x8040_1FFF, 2).unwrap(), [9, 10]);
        assert_eq!(
            v.read_u8(0x8040_3000),
            Err(MemoryError::NotMapped { va: 0x8040_3000 })
        );
        assert_eq!(v.read_vec(0x8080_0000 + 0x2F_0010, 3).unwrap(), b"4mb");
        assert_eq!(
            v.read_ptr(0x8040_1234).unwrap(),
            u64::from(u32::from_le_bytes(*b"x86\0"))
        );

        // Enumeration: PT 1 (stored), PT 2 (transition, stored), PT 3 prototype (skipped), then
        // the 4 MB page's 1024 pages of which one is stored.
        let (mut all, mut stored) = (0, 0);
        assert!(
            v.for_each_mapped_page(0x8000_0000, 0x8100_0000, &mut |_, p| {
                all += 1;
                stored += usize::from(p.is_some());
            })
        );
        assert_eq!((all, stored), (2 + 1024, 2 + 1));
        let mut one = Vec::new();
        v.for_each_mapped_page(0x8090_0000, 0x8090_1000, &mut |va, p| {
            one.push((va, p.is_some()))
        });
        assert_eq!(one, [(0x8090_0000, false)]);
    }
}
