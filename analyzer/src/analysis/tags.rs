//! The report's tag tables: each tag's outstanding pool from the tag tables (or, when they
//! cannot be read, from the block walk), with the blocks the walk found and the tag's owners.

use super::blocks::{BlockAggregator, TagAggregate};
use crate::attribution::{Attributor, Mapping};
use crate::pool::BlockSource;
use crate::report::analysis::*;
use crate::report::hex::Hex;
use crate::report::pool::TagRow;

pub(super) fn owner(m: &Mapping) -> TagOwner {
    TagOwner {
        module: m.module.clone(),
        source: m.source,
        description: m.description.clone(),
    }
}

pub(super) fn tag_blocks(a: &TagAggregate) -> TagBlocks {
    let get = |s: BlockSource| a.by_source.get(&s).copied().unwrap_or_default();
    TagBlocks {
        count: a.count,
        bytes: a.bytes,
        paged_bytes: a.paged_bytes,
        nonpaged_bytes: a.nonpaged_bytes,
        classic: get(BlockSource::Classic),
        big: get(BlockSource::Big),
        lfh: get(BlockSource::Lfh),
        vs: get(BlockSource::Vs),
        quota_bytes: a.quota_bytes,
        quota_processes: {
            let mut v: Vec<QuotaShare> = a
                .quota_by_process
                .iter()
                .map(|(&ep, &(blocks, bytes))| QuotaShare {
                    eprocess: Hex(ep),
                    blocks,
                    bytes,
                })
                .collect();
            v.sort_by(|x, y| y.bytes.cmp(&x.bytes).then(x.eprocess.cmp(&y.eprocess)));
            v
        },
        sizes: a
            .sizes
            .iter()
            .map(|(&size, &count)| SizeCount { size, count })
            .collect(),
    }
}

/// Tags with outstanding bytes, biggest first.
pub(super) fn tag_reports(rows: &[TagRow], agg: &BlockAggregator) -> Vec<TagReport> {
    let mut out: Vec<TagReport> = rows
        .iter()
        .filter(|r| r.stats.paged_bytes > 0 || r.stats.nonpaged_bytes > 0)
        .map(|r| {
            let s = &r.stats;
            TagReport {
                tag: s.tag.to_string(),
                paged_allocs: s.paged_allocs,
                paged_frees: s.paged_frees,
                paged_bytes: s.paged_bytes,
                nonpaged_allocs: s.nonpaged_allocs,
                nonpaged_frees: s.nonpaged_frees,
                nonpaged_bytes: s.nonpaged_bytes,
                paged_outstanding: r.paged_outstanding,
                nonpaged_outstanding: r.nonpaged_outstanding,
                owners: r.drivers.iter().map(owner).collect(),
                blocks: agg.tags.get(&s.tag).map(tag_blocks),
            }
        })
        .collect();
    sort_tags(&mut out);
    out
}

fn sort_tags(v: &mut [TagReport]) {
    v.sort_by(|a, b| {
        (b.paged_bytes.saturating_add(b.nonpaged_bytes))
            .cmp(&a.paged_bytes.saturating_add(a.nonpaged_bytes))
            .then(a.tag.cmp(&b.tag))
    });
}

/// Without tag tables: one row per tag of the block walk (allocated blocks only, so frees are
/// unknown and reported as 0).
pub(super) fn tags_from_blocks(agg: &BlockAggregator, attributor: &Attributor) -> Vec<TagReport> {
    let mut out: Vec<TagReport> = agg
        .tags
        .iter()
        .map(|(tag, a)| {
            let paged_share = a.paged_count;
            TagReport {
                tag: tag.to_string(),
                paged_allocs: paged_share,
                paged_frees: 0,
                paged_bytes: a.paged_bytes,
                nonpaged_allocs: a.count.saturating_sub(paged_share),
                nonpaged_frees: 0,
                nonpaged_bytes: a.nonpaged_bytes,
                paged_outstanding: paged_share,
                nonpaged_outstanding: a.count.saturating_sub(paged_share),
                owners: attributor.mappings(*tag).iter().map(owner).collect(),
                blocks: Some(tag_blocks(a)),
            }
        })
        .collect();
    sort_tags(&mut out);
    out
}
