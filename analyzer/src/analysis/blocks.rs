//! Per-tag aggregates of the block walk, in bounded memory: a busy server has millions of
//! blocks, so each block is folded into its tag's counters as the walks stream it and only the
//! largest few per tag are kept.

use crate::pool::SeenBlock;
use crate::pool::{PoolKind, Tag};
use crate::report::analysis::{BlockSource, CountBytes, MAX_LARGEST_BLOCKS};
use std::collections::{BTreeMap, HashMap};

/// Most distinct tags aggregated; blocks of further tags (a damaged dump's garbage headers)
/// count only in the totals.
pub const MAX_BLOCK_TAGS: usize = 100_000;
/// Most processes tracked per tag for quota charges.
pub const MAX_QUOTA_PROCESSES_PER_TAG: usize = 64;
/// Most distinct block sizes counted per tag (for matching call-site sizes).
pub const MAX_SIZES_PER_TAG: usize = 32;

/// A block kept as one of a tag's largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptBlock {
    pub address: u64,
    pub size: u64,
    pub tag: Tag,
    pub pool: PoolKind,
    pub source: BlockSource,
}

/// One tag's allocated blocks.
#[derive(Debug, Clone, Default)]
pub struct TagAggregate {
    pub count: u64,
    pub bytes: u64,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    /// Blocks in paged pool (the rest are nonpaged or of unrecorded pool).
    pub paged_count: u64,
    pub by_source: BTreeMap<BlockSource, CountBytes>,
    /// Biggest first, at most [`MAX_LARGEST_BLOCKS`].
    pub largest: Vec<KeptBlock>,
    /// Bytes of quota-charged blocks whose EPROCESS was decoded.
    pub quota_bytes: u64,
    /// EPROCESS -> (blocks, bytes) charged, at most [`MAX_QUOTA_PROCESSES_PER_TAG`].
    pub quota_by_process: HashMap<u64, (u64, u64)>,
    /// Block size -> count, at most [`MAX_SIZES_PER_TAG`] sizes.
    pub sizes: BTreeMap<u64, u64>,
}

/// Everything the block walk told us.
#[derive(Debug, Clone, Default)]
pub struct BlockAggregator {
    pub tags: HashMap<Tag, TagAggregate>,
    pub totals: BTreeMap<BlockSource, CountBytes>,
    pub free_blocks: u64,
    /// Blocks whose tag was not aggregated because [`MAX_BLOCK_TAGS`] was reached.
    pub tags_overflow: u64,
}

impl BlockAggregator {
    pub fn add(&mut self, seen: SeenBlock) {
        let b = seen.block;
        if !b.allocated {
            self.free_blocks += 1;
            return;
        }
        let source = seen.source;
        let t = self.totals.entry(source).or_default();
        t.count += 1;
        t.bytes = t.bytes.saturating_add(b.size);
        let tag = b.tag;
        if !self.tags.contains_key(&tag) && self.tags.len() >= MAX_BLOCK_TAGS {
            self.tags_overflow += 1;
            return;
        }
        let a = self.tags.entry(tag).or_default();
        a.count += 1;
        a.bytes = a.bytes.saturating_add(b.size);
        match b.pool {
            PoolKind::Paged => {
                a.paged_bytes = a.paged_bytes.saturating_add(b.size);
                a.paged_count += 1;
            }
            PoolKind::Nonpaged => a.nonpaged_bytes = a.nonpaged_bytes.saturating_add(b.size),
            _ => {}
        }
        let s = a.by_source.entry(source).or_default();
        s.count += 1;
        s.bytes = s.bytes.saturating_add(b.size);
        if a.sizes.len() < MAX_SIZES_PER_TAG || a.sizes.contains_key(&b.size) {
            *a.sizes.entry(b.size).or_insert(0) += 1;
        }
        if let Some(ep) = seen.billed_process {
            a.quota_bytes = a.quota_bytes.saturating_add(b.size);
            if a.quota_by_process.len() < MAX_QUOTA_PROCESSES_PER_TAG
                || a.quota_by_process.contains_key(&ep)
            {
                let e = a.quota_by_process.entry(ep).or_insert((0, 0));
                e.0 += 1;
                e.1 = e.1.saturating_add(b.size);
            }
        }
        let kept = KeptBlock {
            address: b.address,
            size: b.size,
            tag,
            pool: b.pool,
            source,
        };
        keep_largest(&mut a.largest, kept, MAX_LARGEST_BLOCKS);
    }
}

/// Inserts `b` into `v` (biggest first, then by address) when it is among the `max` largest.
pub fn keep_largest(v: &mut Vec<KeptBlock>, b: KeptBlock, max: usize) {
    if max == 0 {
        return;
    }
    if v.len() >= max && v.last().is_some_and(|l| l.size >= b.size) {
        return;
    }
    let at = v.partition_point(|x| x.size > b.size || (x.size == b.size && x.address < b.address));
    v.insert(at, b);
    v.truncate(max);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::pages::Block;
    use crate::pool::PoolType;

    fn block(address: u64, size: u64, tag: &[u8; 4], allocated: bool) -> Block {
        Block {
            address,
            size,
            previous_size: None,
            tag: Tag(*tag),
            pool_type: PoolType::from_pool_type(1),
            pool: PoolKind::Paged,
            allocated,
            process_billed: None,
        }
    }

    #[test]
    fn aggregates_by_tag_and_keeps_only_the_largest() {
        let mut agg = BlockAggregator::default();
        for i in 0..100u64 {
            let b = block(0x1000 + i * 0x100, 0x10 + i, b"Leak", true);
            agg.add(SeenBlock {
                block: &b,
                source: BlockSource::Classic,
                billed_process: (i % 2 == 0).then_some(0xe0),
            });
        }
        let f = block(0x9000, 0x40, b"Leak", false);
        agg.add(SeenBlock {
            block: &f,
            source: BlockSource::Classic,
            billed_process: None,
        });
        let a = &agg.tags[&Tag(*b"Leak")];
        assert_eq!(a.count, 100);
        assert_eq!(a.bytes, (0..100u64).map(|i| 0x10 + i).sum::<u64>());
        assert_eq!(a.paged_bytes, a.bytes);
        assert_eq!(agg.free_blocks, 1);
        assert_eq!(a.largest.len(), MAX_LARGEST_BLOCKS);
        assert_eq!(a.largest[0].size, 0x10 + 99);
        assert!(a.largest.windows(2).all(|w| w[0].size >= w[1].size));
        assert_eq!(a.largest.last().map(|b| b.size), Some(0x10 + 80));
        assert_eq!(a.quota_by_process[&0xe0].0, 50);
        assert_eq!(a.sizes.len(), MAX_SIZES_PER_TAG);
        assert_eq!(agg.totals[&BlockSource::Classic].count, 100);
    }
}
