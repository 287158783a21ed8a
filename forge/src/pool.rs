//! Kernel pool regions: a bump allocator whose every block gets a POOL_HEADER written through
//! the profile's own `_POOL_HEADER` bitfields (x86: 8 bytes, sizes in 8-byte units, XP stores
//! type+1; x64: 16 bytes, sizes in 16-byte units). Pages are "classic" pool pages: the header
//! chain covers the page exactly (each PreviousSize is the BlockSize before it, the last block
//! ends at the page end, a free block fills the rest when the page is closed), so a reader can
//! validate a page by walking it. Blocks larger than a page come page-aligned without a header,
//! as big-page allocations do.
//!
//! Every block is recorded in [`PoolRegion::allocations`]; the pool scenarios
//! ([`crate::poolstate`]) turn them into tag tables, the big page table and the truth.

use crate::segheap::SegmentHeap;
use crate::space::{Machine, Paging, PAGE};
use crate::ForgeError;
use analyzer::symbols::{Field, Profile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    NonPaged,
    Paged,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::NonPaged => "nonpaged",
            PoolKind::Paged => "paged",
        }
    }
}

/// The `_POOL_HEADER` fields the forge writes, from the profile.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLayout {
    pub size: u64,
    previous_size: Field,
    block_size: Field,
    pool_type: Field,
    pool_tag: Field,
    /// x64: the EPROCESS charged for a quota allocation (Windows 8+: encoded with the cookie).
    process_billed: Option<Field>,
}

impl HeaderLayout {
    pub fn from_profile(p: &Profile) -> Result<HeaderLayout, ForgeError> {
        let f = |name: &str| {
            p.field("_POOL_HEADER", name)
                .ok_or_else(|| ForgeError::MissingSymbol(format!("_POOL_HEADER.{name}")))
        };
        let size = p
            .type_size("_POOL_HEADER")
            .ok_or_else(|| ForgeError::MissingSymbol("_POOL_HEADER".into()))?;
        // On x86 ProcessBilled shares the tag's place (a union); only x64 has its own slot.
        let process_billed = p
            .field("_POOL_HEADER", "ProcessBilled")
            .filter(|b| b.offset >= 8);
        Ok(HeaderLayout {
            size,
            previous_size: f("PreviousSize")?,
            block_size: f("BlockSize")?,
            pool_type: f("PoolType")?,
            pool_tag: f("PoolTag")?,
            process_billed,
        })
    }

    /// Writes `value` into a field of `buf` (a bitfield inside the 32-bit word at its offset).
    fn set(buf: &mut [u8], field: Field, value: u64) {
        let off = field.offset as usize;
        match (field.bit_position, field.bit_length) {
            (Some(pos), Some(len)) => {
                let Some(word) = buf.get_mut(off..off + 4) else {
                    return;
                };
                let mut w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                let mask = ((1u64 << len) - 1) as u32;
                w = (w & !(mask << pos)) | (((value as u32) & mask) << pos);
                word.copy_from_slice(&w.to_le_bytes());
            }
            _ => {
                let n = if field.offset >= 8 { 8 } else { 4 };
                if let Some(dst) = buf.get_mut(off..off + n) {
                    dst.copy_from_slice(&value.to_le_bytes()[..n]);
                }
            }
        }
    }
}

/// How a block is charged: the x64 header's ProcessBilled as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The EPROCESS charged.
    pub eprocess: u64,
    /// The value written at ProcessBilled (EPROCESS, or EPROCESS ^ cookie ^ header address).
    pub stored: u64,
}

/// One block as planted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The POOL_HEADER's address; for a big allocation the page-aligned data address.
    pub address: u64,
    /// Bytes including the header (classic), or the page-rounded size (big).
    pub size: u64,
    pub tag: [u8; 4],
    pub kind: PoolKind,
    pub allocated: bool,
    pub big: bool,
    pub quota: Option<Quota>,
    /// "classic", "big", "lfh" or "vs".
    pub source: &'static str,
}

#[derive(Debug, Clone)]
pub struct PoolRegion {
    pub kind: PoolKind,
    /// First address of the region (for the kernel's pool-range variables).
    pub base: u64,
    next: u64,
    paging: Paging,
    build: u32,
    layout: HeaderLayout,
    /// Size in header units of the previous block in the current page (for PreviousSize).
    previous_units: u64,
    pub allocations: Vec<Allocation>,
    /// Windows 10 19H1+: small blocks go to this segment heap instead of classic pages.
    pub segment_heap: Option<SegmentHeap>,
    /// Session pool (Vista+): headers carry the session bit (0x20, SESSION_POOL_MASK).
    pub session: bool,
}

/// Tag of the free block that closes a partly used page.
pub const FREE_TAG: [u8; 4] = *b"Free";

impl PoolRegion {
    pub fn new(
        base: u64,
        kind: PoolKind,
        paging: Paging,
        build: u32,
        layout: HeaderLayout,
    ) -> PoolRegion {
        PoolRegion {
            kind,
            base,
            next: base,
            paging,
            build,
            layout,
            previous_units: 0,
            allocations: Vec::new(),
            segment_heap: None,
            session: false,
        }
    }

    /// Header size and allocation granularity.
    pub fn header_size(&self) -> u64 {
        self.layout.size
    }

    /// The PoolType value the header stores for this region (Volatility's POOL_HEADER rules:
    /// XP/2003 store type+1, nonpaged 1, paged 2; Vista+ paged odd, nonpaged even > 0).
    /// Session pool adds the session bit 0x20 (PagedPoolSession 0x21 is stored 0x23).
    pub fn header_pool_type(&self) -> u8 {
        let base = match (self.build < 6000, self.kind) {
            (true, PoolKind::NonPaged) => 1,
            (true, PoolKind::Paged) => 2,
            (false, PoolKind::NonPaged) => 2,
            (false, PoolKind::Paged) => 3,
        };
        if self.session && self.build >= 6000 {
            base | 0x20
        } else {
            base
        }
    }

    /// The end of the used part of the region (page-rounded).
    pub fn end(&self) -> u64 {
        self.next.div_ceil(PAGE) * PAGE
    }

    /// Allocates `size` bytes with a POOL_HEADER carrying `tag`; returns the data address.
    pub fn alloc(&mut self, m: &mut Machine, size: u64, tag: &[u8; 4]) -> Result<u64, ForgeError> {
        self.block(m, size, tag, true, None)
    }

    /// A quota-charged allocation: `encode` turns the POOL_HEADER's address into the value
    /// stored in its ProcessBilled.
    pub fn alloc_quota(
        &mut self,
        m: &mut Machine,
        size: u64,
        tag: &[u8; 4],
        eprocess: u64,
        encode: &dyn Fn(u64) -> u64,
    ) -> Result<u64, ForgeError> {
        let h = self.header_size();
        let block = (size + h).div_ceil(h) * h;
        if block > PAGE - h || self.layout.process_billed.is_none() {
            return Err(ForgeError::Internal(
                "quota blocks need an x64 header and fit one page".into(),
            ));
        }
        self.block(m, size, tag, true, Some((eprocess, encode)))
    }

    /// A free block (PoolType 0) of `size` data bytes that still carries `tag`, as a freed
    /// allocation leaves it.
    pub fn free_block(
        &mut self,
        m: &mut Machine,
        size: u64,
        tag: &[u8; 4],
    ) -> Result<u64, ForgeError> {
        self.block(m, size, tag, false, None)
    }

    /// Moves to the next page if `block` bytes do not fit in the current one, closing it.
    fn fit(&mut self, m: &mut Machine, block: u64) -> Result<(), ForgeError> {
        if !self.next.is_multiple_of(PAGE) && self.next % PAGE + block > PAGE {
            self.close_page(m)?;
        }
        Ok(())
    }

    fn block(
        &mut self,
        m: &mut Machine,
        size: u64,
        tag: &[u8; 4],
        allocated: bool,
        quota: Option<(u64, &dyn Fn(u64) -> u64)>,
    ) -> Result<u64, ForgeError> {
        let h = self.header_size();
        let block = (size + h).div_ceil(h) * h;
        let big = if self.segment_heap.is_some() {
            block > 0xfe0
        } else {
            block > PAGE - h
        };
        if big {
            if !allocated {
                return Err(ForgeError::Internal(
                    "free big allocations are not mapped".into(),
                ));
            }
            // Big-page allocation: page aligned, no header.
            if self.segment_heap.is_none() {
                self.close_page(m)?;
            }
            let va = self.next;
            let bytes = size.div_ceil(PAGE) * PAGE;
            m.map_range(va, bytes)?;
            self.next = va + bytes;
            self.previous_units = 0;
            let quota = quota.map(|(eprocess, encode)| Quota {
                eprocess,
                stored: encode(va),
            });
            self.allocations.push(Allocation {
                address: va,
                size: bytes,
                tag: *tag,
                kind: self.kind,
                allocated,
                big: true,
                quota,
                source: "big",
            });
            return Ok(va);
        }
        let pool_type = if allocated {
            self.header_pool_type()
        } else {
            0
        };
        if let Some(heap) = self.segment_heap.as_mut() {
            let placed = heap.place(m, block, allocated)?;
            let quota = quota.map(|(eprocess, encode)| Quota {
                eprocess,
                stored: encode(placed.header),
            });
            // Heap blocks have no neighbours in a header chain: PreviousSize 0.
            self.previous_units = 0;
            self.write_header(m, placed.header, block, tag, pool_type, quota)?;
            self.previous_units = 0;
            self.allocations.push(Allocation {
                address: placed.header,
                size: block,
                tag: *tag,
                kind: self.kind,
                allocated,
                big: false,
                quota,
                source: placed.source,
            });
            return Ok(placed.header + h);
        }
        self.fit(m, block)?;
        let va = self.next;
        let quota = quota.map(|(eprocess, encode)| Quota {
            eprocess,
            stored: encode(va),
        });
        self.write_header(m, va, block, tag, pool_type, quota)?;
        self.allocations.push(Allocation {
            address: va,
            size: block,
            tag: *tag,
            kind: self.kind,
            allocated,
            big: false,
            quota,
            source: "classic",
        });
        self.next = va + block;
        if self.next.is_multiple_of(PAGE) {
            self.previous_units = 0;
        }
        Ok(va + h)
    }

    fn write_header(
        &mut self,
        m: &mut Machine,
        va: u64,
        block: u64,
        tag: &[u8; 4],
        pool_type: u8,
        quota: Option<Quota>,
    ) -> Result<(), ForgeError> {
        m.map_range(va, block)?;
        let units = block / self.header_size();
        let l = self.layout;
        let mut b = vec![0u8; l.size as usize];
        HeaderLayout::set(&mut b, l.previous_size, self.previous_units);
        HeaderLayout::set(&mut b, l.block_size, units);
        // Vista+ x64 marks a quota-charged block with bit 3 of PoolType (POOL_QUOTA).
        let quota_bit = if quota.is_some() && self.paging == Paging::X64 {
            8
        } else {
            0
        };
        HeaderLayout::set(&mut b, l.pool_type, u64::from(pool_type | quota_bit));
        HeaderLayout::set(&mut b, l.pool_tag, u64::from(u32::from_le_bytes(*tag)));
        if let (Some(q), Some(f)) = (quota, l.process_billed) {
            HeaderLayout::set(&mut b, f, q.stored);
        }
        m.write(va, &b)?;
        self.previous_units = units;
        Ok(())
    }

    /// Fills the rest of a partly used page with one free block, so the header chain reaches
    /// the page end, and moves to the next page.
    pub fn close_page(&mut self, m: &mut Machine) -> Result<(), ForgeError> {
        if let Some(heap) = self.segment_heap.as_mut() {
            return heap.seal(m);
        }
        let used = self.next % PAGE;
        if used == 0 {
            return Ok(());
        }
        let rest = PAGE - used;
        let va = self.next;
        self.write_header(m, va, rest, &FREE_TAG, 0, None)?;
        self.allocations.push(Allocation {
            address: va,
            size: rest,
            tag: FREE_TAG,
            kind: self.kind,
            allocated: false,
            big: false,
            quota: None,
            source: "classic",
        });
        self.next = va + rest;
        self.previous_units = 0;
        Ok(())
    }
}
