//! The blocks whose owner is looked for, sorted by address, in a compact form: a busy server
//! has millions of blocks, and the pointer scan asks "which of these blocks holds this
//! address?" for every pointer-sized value of pool memory.

use super::classify::TagClass;
use crate::pool::{BlockSource, PoolKind, SeenBlock, Tag};

/// Most blocks indexed. Beyond, blocks are not examined and the report says how many were
/// left out (24 bytes each: 96 MiB at the limit).
pub const MAX_INDEXED_BLOCKS: usize = 4 << 20;

/// One indexed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The block's start: its POOL_HEADER, or the page of a big allocation.
    pub address: u64,
    /// Bytes, header included.
    pub size: u32,
    pub tag: Tag,
    pub class: TagClass,
    pub pool: PoolKind,
    pub source: BlockSource,
}

impl Entry {
    pub fn end(&self) -> u64 {
        self.address.saturating_add(u64::from(self.size))
    }
}

/// The indexed blocks, by address.
#[derive(Debug, Default)]
pub struct BlockIndex {
    entries: Vec<Entry>,
    /// Lowest start and highest end: most values of memory are not pool addresses at all.
    span: (u64, u64),
    /// Blocks not indexed because [`MAX_INDEXED_BLOCKS`] was reached.
    pub left_out: u64,
}

impl BlockIndex {
    /// Adds a block (in any order; [`BlockIndex::seal`] sorts them).
    pub fn push(&mut self, b: &SeenBlock, class: TagClass) {
        if self.entries.len() >= MAX_INDEXED_BLOCKS {
            self.left_out += 1;
            return;
        }
        let Ok(size) = u32::try_from(b.block.size) else {
            self.left_out += 1;
            return;
        };
        self.entries.push(Entry {
            address: b.block.address,
            size,
            tag: b.block.tag,
            class,
            pool: b.block.pool,
            source: b.source,
        });
    }

    /// Sorts the blocks and drops any that overlap the one before (a damaged page walked
    /// twice): lookups then find at most one block per address.
    pub fn seal(&mut self) {
        self.entries.sort_unstable_by_key(|e| e.address);
        let mut last_end = 0u64;
        self.entries.retain(|e| {
            let keep = e.address >= last_end;
            if keep {
                last_end = e.end();
            }
            keep
        });
        self.span = match (self.entries.first(), self.entries.last()) {
            (Some(f), Some(l)) => (f.address, l.end()),
            _ => (0, 0),
        };
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether `address` lies between the first block's start and the last one's end.
    pub fn spans(&self, address: u64) -> bool {
        address >= self.span.0 && address < self.span.1
    }

    /// The block that holds `address` (anywhere inside it).
    pub fn containing(&self, address: u64) -> Option<usize> {
        if address < self.span.0 || address >= self.span.1 {
            return None;
        }
        let i = self.entries.partition_point(|e| e.address <= address);
        let e = self.entries.get(i.checked_sub(1)?)?;
        (address < e.end()).then_some(i - 1)
    }

    /// The block that starts at `address`.
    pub fn starting_at(&self, address: u64) -> Option<usize> {
        self.entries
            .binary_search_by_key(&address, |e| e.address)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::pages::Block;
    use crate::pool::PoolType;

    fn seen(address: u64, size: u64) -> Block {
        Block {
            address,
            size,
            previous_size: None,
            tag: Tag(*b"None"),
            pool_type: PoolType {
                raw: 3,
                kind: PoolKind::Paged,
                session: false,
                quota: false,
            },
            pool: PoolKind::Paged,
            allocated: true,
            process_billed: None,
        }
    }

    #[test]
    fn finds_the_block_holding_an_address_and_nothing_between_blocks() {
        let mut ix = BlockIndex::default();
        for (a, s) in [
            (0x3000, 0x100),
            (0x1000, 0x40),
            (0x1040, 0x20),
            (0x1030, 0x20),
        ] {
            let b = seen(a, s);
            ix.push(
                &SeenBlock {
                    block: &b,
                    source: BlockSource::Classic,
                    billed_process: None,
                },
                TagClass::Ambiguous,
            );
        }
        ix.seal();
        // 0x1030 overlaps 0x1000..0x1040 and is dropped.
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.containing(0x1000), Some(0));
        assert_eq!(ix.containing(0x103f), Some(0));
        assert_eq!(ix.containing(0x1040), Some(1));
        assert_eq!(ix.containing(0x1060), None);
        assert_eq!(ix.containing(0x30ff), Some(2));
        assert_eq!(ix.containing(0x3100), None);
        assert_eq!(ix.containing(0xfff), None);
        assert_eq!(ix.starting_at(0x3000), Some(2));
        assert_eq!(ix.starting_at(0x3008), None);
    }
}
