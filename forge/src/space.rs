//! The forged machine's memory: physical pages, and the kernel address space built on them with
//! real page tables (x64 4-level with a self-map PML4 entry, or x86 PAE with the PD3 self-map).
//!
//! Only pages the forge allocates exist; every allocated page is "stored" in the dump. Physical
//! placement follows what the independent readers scan for (see
//! /work/shared/docs/independent-readers.md): the x64 PML4 lies in 0x150000-0x2A0000, the PAE
//! PDPT is followed by its four page directories, and nothing is allocated in 0x1000-0xFF000.

use crate::ForgeError;
use std::collections::BTreeMap;

pub const PAGE: u64 = 0x1000;
/// Present | writable | accessed | dirty: the only bits the forge sets in any table entry.
const ENTRY_FLAGS: u64 = 0x63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    X64,
    X86Pae,
}

/// One process address space's top table page (the CR3 value), filled in at [`Machine::finish`].
#[derive(Debug, Clone, Copy)]
struct ProcessRoot {
    pfn: u64,
}

pub struct Machine {
    pub paging: Paging,
    /// Stored physical pages by page frame number.
    pages: BTreeMap<u64, Box<[u8]>>,
    /// Kernel virtual page -> page frame, for everything the forge mapped (not the self-map).
    mapped: BTreeMap<u64, u64>,
    /// CR3 of the kernel (System) address space.
    pub dtb: u64,
    next_table: u64,
    table_limit: u64,
    next_data: u64,
    data_limit: u64,
    self_map_index: u64,
    process_roots: Vec<ProcessRoot>,
    /// Frames that exist (mapped, written) but a kernel-bitmap dump leaves out: memory the
    /// dump writer did not capture, so readers must report it missing.
    omitted: std::collections::BTreeSet<u64>,
}

impl Machine {
    /// `data_limit_pfn`: first page frame the forge must not use (end of the first big run).
    pub fn new(
        paging: Paging,
        self_map_index: u64,
        data_limit_pfn: u64,
    ) -> Result<Machine, ForgeError> {
        let (dtb_pfn, next_table, table_limit) = match paging {
            // PML4 inside the first range Volatility scans; tables right after it.
            Paging::X64 => (0x1ad, 0x1ae, 0x2a0),
            // PDPT page, then PD0..PD3, inside Volatility's "older windows" range.
            Paging::X86Pae => (0x319, 0x31e, 0x400),
        };
        let data_start = 0x1000; // 16 MiB
        if data_limit_pfn < data_start + 0x4000 {
            return Err(ForgeError::TooSmall);
        }
        let mut m = Machine {
            paging,
            pages: BTreeMap::new(),
            mapped: BTreeMap::new(),
            dtb: dtb_pfn * PAGE,
            next_table,
            table_limit,
            next_data: data_start,
            data_limit: data_limit_pfn,
            self_map_index,
            process_roots: Vec::new(),
            omitted: std::collections::BTreeSet::new(),
        };
        m.new_page(dtb_pfn);
        match paging {
            Paging::X64 => {
                if !(0x100..0x1ff).contains(&self_map_index) {
                    return Err(ForgeError::Internal(
                        "self-map index outside 0x100..0x1FE".into(),
                    ));
                }
                m.put_u64_phys(m.dtb + self_map_index * 8, m.dtb | ENTRY_FLAGS);
            }
            Paging::X86Pae => {
                for i in 0..4u64 {
                    let pd = dtb_pfn + 1 + i;
                    m.new_page(pd);
                    // PDPT entries: only the present bit (R/W and U/S are reserved in PAE PDPTEs).
                    m.put_u64_phys(m.dtb + i * 8, (pd * PAGE) | 1);
                }
                // PD3 maps PD0..PD3 at entries 0..3: page tables appear at 0xC0000000.
                for i in 0..4u64 {
                    m.put_u64_phys(
                        (dtb_pfn + 4) * PAGE + i * 8,
                        ((dtb_pfn + 1 + i) * PAGE) | ENTRY_FLAGS,
                    );
                }
            }
        }
        Ok(m)
    }

    pub fn pointer_size(&self) -> u8 {
        match self.paging {
            Paging::X64 => 8,
            Paging::X86Pae => 4,
        }
    }

    /// Base of the page-table self-map (where the PTEs are visible).
    pub fn pte_base(&self) -> u64 {
        match self.paging {
            Paging::X64 => 0xffff_0000_0000_0000 | (self.self_map_index << 39),
            Paging::X86Pae => 0xc000_0000,
        }
    }

    fn new_page(&mut self, pfn: u64) {
        self.pages
            .entry(pfn)
            .or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
    }

    fn alloc_table(&mut self) -> Result<u64, ForgeError> {
        if self.next_table < self.table_limit {
            let pfn = self.next_table;
            self.next_table += 1;
            self.new_page(pfn);
            Ok(pfn)
        } else {
            self.alloc_data()
        }
    }

    /// A fresh zeroed physical page from the data area (16 MiB upward, contiguous).
    pub fn alloc_data(&mut self) -> Result<u64, ForgeError> {
        if self.next_data >= self.data_limit {
            return Err(ForgeError::TooSmall);
        }
        let pfn = self.next_data;
        self.next_data += 1;
        self.new_page(pfn);
        Ok(pfn)
    }

    fn put_u64_phys(&mut self, pa: u64, v: u64) {
        if let Some(p) = self.pages.get_mut(&(pa / PAGE)) {
            let o = (pa % PAGE) as usize;
            p[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn get_u64_phys(&self, pa: u64) -> u64 {
        self.pages
            .get(&(pa / PAGE))
            .map(|p| {
                let o = (pa % PAGE) as usize;
                let mut b = [0u8; 8];
                b.copy_from_slice(&p[o..o + 8]);
                u64::from_le_bytes(b)
            })
            .unwrap_or(0)
    }

    /// Table entry at `table_pa[index]`, allocating the next-level table when absent.
    fn next_level(&mut self, table_pa: u64, index: u64) -> Result<u64, ForgeError> {
        let e = self.get_u64_phys(table_pa + index * 8);
        if e & 1 == 1 {
            return Ok(e & ADDR_MASK);
        }
        let pfn = self.alloc_table()?;
        self.put_u64_phys(table_pa + index * 8, (pfn * PAGE) | ENTRY_FLAGS);
        Ok(pfn * PAGE)
    }

    /// Maps the kernel virtual page containing `va` to physical frame `pfn`.
    pub fn map_page(&mut self, va: u64, pfn: u64) -> Result<(), ForgeError> {
        let va = va & !(PAGE - 1);
        let pt = match self.paging {
            Paging::X64 => {
                let i4 = (va >> 39) & 0x1ff;
                if i4 == self.self_map_index || i4 < 0x100 {
                    return Err(ForgeError::Internal(format!(
                        "cannot map {va:#x}: self-map or user half"
                    )));
                }
                let pdpt = self.next_level(self.dtb, i4)?;
                let pd = self.next_level(pdpt, (va >> 30) & 0x1ff)?;
                self.next_level(pd, (va >> 21) & 0x1ff)?
            }
            Paging::X86Pae => {
                if va > 0xffff_ffff || (0xc000_0000..0xc080_0000).contains(&va) {
                    return Err(ForgeError::Internal(format!("cannot map {va:#x}")));
                }
                let pd = self.dtb + PAGE * (1 + (va >> 30));
                self.next_level(pd, (va >> 21) & 0x1ff)?
            }
        };
        self.put_u64_phys(pt + ((va >> 12) & 0x1ff) * 8, (pfn * PAGE) | ENTRY_FLAGS);
        self.mapped.insert(va, pfn);
        Ok(())
    }

    /// Physical address of the page-table entry that maps `va` (the tables must exist).
    fn pte_address(&self, va: u64) -> Option<u64> {
        let entry = |table: u64, index: u64| {
            let e = self.get_u64_phys(table + index * 8);
            (e & 1 == 1).then_some(e & ADDR_MASK)
        };
        let pt = match self.paging {
            Paging::X64 => {
                let pdpt = entry(self.dtb, (va >> 39) & 0x1ff)?;
                let pd = entry(pdpt, (va >> 30) & 0x1ff)?;
                entry(pd, (va >> 21) & 0x1ff)?
            }
            Paging::X86Pae => entry(self.dtb + PAGE * (1 + ((va >> 30) & 3)), (va >> 21) & 0x1ff)?,
        };
        Some(pt + ((va >> 12) & 0x1ff) * 8)
    }

    /// Replaces the valid PTE of the mapped page `va` with `pte` (an invalid one: paged out or
    /// in transition), as the memory manager does when it trims a page. The page leaves the
    /// forge's map (it no longer translates); its frame stays stored when `keep_frame` (a
    /// transition page: RAM still holds it), else it is dropped from the machine (paged out:
    /// the dump cannot hold it). Returns the frame the page had.
    pub fn invalidate_page(
        &mut self,
        va: u64,
        pte: u64,
        keep_frame: bool,
    ) -> Result<u64, ForgeError> {
        let va = va & !(PAGE - 1);
        let pfn = *self.mapped.get(&va).ok_or(ForgeError::Unmapped(va))?;
        let at = self.pte_address(va).ok_or(ForgeError::Unmapped(va))?;
        if pte & 1 != 0 {
            return Err(ForgeError::Internal(format!("{pte:#x} is a valid PTE")));
        }
        self.put_u64_phys(at, pte);
        self.mapped.remove(&va);
        if !keep_frame {
            self.pages.remove(&pfn);
        }
        Ok(pfn)
    }

    /// Reads the PTE that maps `va` (valid or not), through the page tables.
    pub fn pte(&self, va: u64) -> Option<u64> {
        self.pte_address(va).map(|at| self.get_u64_phys(at))
    }

    /// Maps every page of `[va, va+len)` not yet mapped to a fresh zeroed page.
    pub fn map_range(&mut self, va: u64, len: u64) -> Result<(), ForgeError> {
        let start = va & !(PAGE - 1);
        let end = va
            .checked_add(len)
            .ok_or_else(|| ForgeError::Internal("range overflow".into()))?;
        let mut p = start;
        while p < end {
            if !self.mapped.contains_key(&p) {
                let pfn = self.alloc_data()?;
                self.map_page(p, pfn)?;
            }
            p += PAGE;
        }
        Ok(())
    }

    pub fn is_mapped(&self, va: u64) -> bool {
        self.mapped.contains_key(&(va & !(PAGE - 1)))
    }

    /// Writes bytes at a kernel virtual address; every page must be mapped already.
    pub fn write(&mut self, va: u64, data: &[u8]) -> Result<(), ForgeError> {
        let mut done = 0usize;
        while done < data.len() {
            let a = va + done as u64;
            let pfn = *self
                .mapped
                .get(&(a & !(PAGE - 1)))
                .ok_or(ForgeError::Unmapped(a))?;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(data.len() - done);
            let page = self.pages.get_mut(&pfn).ok_or(ForgeError::Unmapped(a))?;
            page[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    pub fn write_u8(&mut self, va: u64, v: u8) -> Result<(), ForgeError> {
        self.write(va, &[v])
    }
    pub fn write_u16(&mut self, va: u64, v: u16) -> Result<(), ForgeError> {
        self.write(va, &v.to_le_bytes())
    }
    pub fn write_u32(&mut self, va: u64, v: u32) -> Result<(), ForgeError> {
        self.write(va, &v.to_le_bytes())
    }
    pub fn write_u64(&mut self, va: u64, v: u64) -> Result<(), ForgeError> {
        self.write(va, &v.to_le_bytes())
    }
    /// Writes a pointer of the machine's size (truncated to 32 bits on x86).
    pub fn write_ptr(&mut self, va: u64, v: u64) -> Result<(), ForgeError> {
        match self.paging {
            Paging::X64 => self.write_u64(va, v),
            Paging::X86Pae => self.write_u32(va, v as u32),
        }
    }

    /// Reads back bytes at a kernel virtual address (through the forge's own map).
    pub fn read(&self, va: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let a = va + out.len() as u64;
            let pfn = self.mapped.get(&(a & !(PAGE - 1)))?;
            let page = self.pages.get(pfn)?;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(len - out.len());
            out.extend_from_slice(&page[off..off + n]);
        }
        Some(out)
    }

    /// Reserves the top table page of a new process address space; returns its CR3 value.
    /// The kernel half is copied in at [`Machine::finish`], once all kernel mappings exist.
    pub fn new_process_root(&mut self) -> Result<u64, ForgeError> {
        let pfn = self.alloc_data()?;
        self.process_roots.push(ProcessRoot { pfn });
        Ok(pfn * PAGE)
    }

    /// Completes process address spaces: x64 PML4 copies share the kernel half and point their
    /// own self-map entry at themselves; PAE PDPT copies share the four page directories.
    pub fn finish(&mut self) {
        let roots = self.process_roots.clone();
        for root in roots {
            let pa = root.pfn * PAGE;
            match self.paging {
                Paging::X64 => {
                    for i in 0x100..0x200u64 {
                        let e = if i == self.self_map_index {
                            pa | ENTRY_FLAGS
                        } else {
                            self.get_u64_phys(self.dtb + i * 8)
                        };
                        self.put_u64_phys(pa + i * 8, e);
                    }
                }
                Paging::X86Pae => {
                    for i in 0..4u64 {
                        let e = self.get_u64_phys(self.dtb + i * 8);
                        self.put_u64_phys(pa + i * 8, e);
                    }
                }
            }
        }
    }

    /// Stores every frame of `[first, end)` that is not stored yet, as a zero page. Used for
    /// physical 1-16 MiB, which real kernel dumps hold and which brings even a small kernel
    /// bitmap dump to the 16 MB MemProcFS expects.
    pub fn store_zero_frames(&mut self, first: u64, end: u64) {
        for pfn in first..end {
            self.new_page(pfn);
        }
    }

    /// Stored pages in ascending frame order.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.pages.iter().map(|(k, v)| (*k, &v[..]))
    }

    /// Leaves the frame behind `va` out of kernel-bitmap dumps; returns the frame.
    pub fn omit_page(&mut self, va: u64) -> Option<u64> {
        let pfn = *self.mapped.get(&(va & !(PAGE - 1)))?;
        self.omitted.insert(pfn);
        Some(pfn)
    }

    /// Pages a kernel-bitmap dump stores: every page but the omitted ones.
    pub fn stored_pages(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.pages
            .iter()
            .filter(|(k, _)| !self.omitted.contains(k))
            .map(|(k, v)| (*k, &v[..]))
    }

    pub fn omitted_count(&self) -> u64 {
        self.omitted.len() as u64
    }

    pub fn page_count(&self) -> u64 {
        self.pages.len() as u64
    }

    pub fn highest_pfn(&self) -> u64 {
        self.pages.keys().next_back().copied().unwrap_or(0)
    }

    /// Mapped kernel virtual ranges (page-granular, merged when contiguous in VA).
    /// Omitted frames (not stored in a kernel-bitmap dump) are left out.
    pub fn mapped_ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (&va, pfn) in &self.mapped {
            if self.omitted.contains(pfn) {
                continue;
            }
            match out.last_mut() {
                Some((start, size)) if *start + *size == va => *size += PAGE,
                _ => out.push((va, PAGE)),
            }
        }
        out
    }
}
