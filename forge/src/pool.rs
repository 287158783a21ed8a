//! A bump allocator for kernel pool regions: every block gets a POOL_HEADER in the layout of the
//! kernel's version (x86: 8 bytes, sizes in 8-byte units, XP stores type+1; x64: 16 bytes, sizes
//! in 16-byte units), blocks never straddle a page, and blocks larger than a page come
//! page-aligned without a header, as big-page allocations do.
//!
//! This is the hook the pool-engine scenarios build on (tag tables, big pages, pool pages).

use crate::space::{Machine, Paging, PAGE};
use crate::ForgeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    NonPaged,
    Paged,
}

#[derive(Debug, Clone)]
pub struct PoolRegion {
    pub kind: PoolKind,
    next: u64,
    paging: Paging,
    build: u32,
    /// Size in header units of the previous block in the current page (for PreviousSize).
    previous_units: u64,
}

impl PoolRegion {
    pub fn new(base: u64, kind: PoolKind, paging: Paging, build: u32) -> PoolRegion {
        PoolRegion { kind, next: base, paging, build, previous_units: 0 }
    }

    /// Header size and allocation granularity.
    pub fn header_size(&self) -> u64 {
        match self.paging {
            Paging::X64 => 16,
            Paging::X86Pae => 8,
        }
    }

    /// The PoolType value the header stores for this region.
    pub fn header_pool_type(&self) -> u8 {
        // XP/2003 store (type + 1): nonpaged 1, paged 2. Vista+: paged odd, nonpaged even > 0.
        match (self.build < 6000, self.kind) {
            (true, PoolKind::NonPaged) => 1,
            (true, PoolKind::Paged) => 2,
            (false, PoolKind::NonPaged) => 2,
            (false, PoolKind::Paged) => 3,
        }
    }

    /// Allocates `size` bytes; returns the address of the block's data (after its header).
    pub fn alloc(&mut self, m: &mut Machine, size: u64, tag: &[u8; 4]) -> Result<u64, ForgeError> {
        let h = self.header_size();
        let block = (size + h).div_ceil(h) * h;
        if block > PAGE - h {
            // Big-page allocation: page aligned, no header.
            let va = self.next.div_ceil(PAGE) * PAGE;
            m.map_range(va, size)?;
            self.next = (va + size).div_ceil(PAGE) * PAGE;
            self.previous_units = 0;
            return Ok(va);
        }
        if self.next % PAGE + block > PAGE {
            self.next = self.next.div_ceil(PAGE) * PAGE;
        }
        if self.next & (PAGE - 1) == 0 {
            self.previous_units = 0;
        }
        let va = self.next;
        m.map_range(va, block)?;
        let units = block / h;
        let header = match self.paging {
            Paging::X64 => {
                let mut b = [0u8; 16];
                b[0] = self.previous_units as u8;
                b[2] = units as u8;
                b[3] = self.header_pool_type();
                b[4..8].copy_from_slice(tag);
                b.to_vec()
            }
            Paging::X86Pae => {
                let mut b = [0u8; 8];
                let w0 = (self.previous_units as u16) & 0x1ff;
                let w1 = ((units as u16) & 0x1ff) | (u16::from(self.header_pool_type()) << 9);
                b[0..2].copy_from_slice(&w0.to_le_bytes());
                b[2..4].copy_from_slice(&w1.to_le_bytes());
                b[4..8].copy_from_slice(tag);
                b.to_vec()
            }
        };
        m.write(va, &header)?;
        self.previous_units = units;
        self.next = va + block;
        Ok(va + h)
    }
}
