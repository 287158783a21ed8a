//! `pooltriage blocks`' lines and `--pool` filter, as WinDbg's `!poolfind` prints and takes them
//! (learn.microsoft.com debuggercmds/-poolfind: `!poolfind Tag [PoolType]`, 0 nonpaged, 1 paged,
//! 2 special pool, 4 session pool; each block printed as `826fa130 size: c0 previous size: 40
//! (Allocated) SeSd`, which the kdexts pool.c source as published in public repositories
//! completes with ` (Protected)` and ` Process: <EPROCESS>` for a quota block):
//!
//! ```text
//!   0xfffff8a000123450 size:    1f0 previous size:     40  (Allocated) Leak  paged session  classic  Process: 0xfffffa8001234560  leaky.sys [tag]
//! ```
//!
//! then where the block was found (`classic`, `big`, `lfh`, `vs`), the decoded ProcessBilled
//! of a quota block, and the block's owner (provenance). A big allocation has no header:
//! previous size `-`.

use super::poolused_text::windbg_tag;
use analyzer::pool::{PoolKind, SeenBlock};
use std::fmt::Write as _;

/// `--pool`: which of `!poolfind`'s pool types to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolFilter {
    /// `!poolfind ... 0`: nonpaged pool outside session space.
    Nonpaged,
    /// `1`: paged pool outside session space.
    Paged,
    /// `2`: special pool (the 19H1+ segment heap's special pool heaps; earlier kernels' special
    /// pool pages are not walked).
    Special,
    /// `4`: session pool (the header's or big page entry's session bit).
    Session,
}

impl PoolFilter {
    pub fn parse(s: &str) -> Result<PoolFilter, String> {
        match s {
            "nonpaged" => Ok(PoolFilter::Nonpaged),
            "paged" => Ok(PoolFilter::Paged),
            "special" => Ok(PoolFilter::Special),
            "session" => Ok(PoolFilter::Session),
            _ => Err(format!(
                "unknown pool '{s}' (nonpaged, paged, special or session)"
            )),
        }
    }

    /// Whether the block is of this pool; `None` for special pool, which is decided once the
    /// segment heap's special ranges are known (the report's).
    pub fn matches(self, b: &SeenBlock) -> Option<bool> {
        let session = b.block.pool_type.session;
        match self {
            PoolFilter::Nonpaged => Some(b.block.pool == PoolKind::Nonpaged && !session),
            PoolFilter::Paged => Some(b.block.pool == PoolKind::Paged && !session),
            PoolFilter::Session => Some(session),
            PoolFilter::Special => None,
        }
    }
}

/// One block's line; `owner` is the provenance text (` leaky.sys [tag]`) or empty.
pub fn line(b: &SeenBlock, owner: &str) -> String {
    let k = b.block;
    let (tag, protected) = windbg_tag(k.tag);
    let prev = k
        .previous_size
        .map_or("-".to_string(), |p| format!("{p:x}"));
    let mut s = format!(
        "  {:#018x} size: {:>6x} previous size: {:>6}  ({}) {tag}{}  {}{}  {}",
        k.address,
        k.size,
        prev,
        if k.allocated { "Allocated" } else { "Free" },
        if protected { " (Protected)" } else { "" },
        k.pool.as_str(),
        if k.pool_type.session { " session" } else { "" },
        b.source,
    );
    if let Some(p) = b.billed_process {
        let _ = write!(s, "  Process: {p:#x}");
    }
    s.push_str(owner);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzer::pool::pages::Block;
    use analyzer::pool::{BlockSource, PoolType, Tag};

    fn seen(block: &Block, billed: Option<u64>) -> SeenBlock<'_> {
        SeenBlock {
            block,
            source: BlockSource::Classic,
            billed_process: billed,
        }
    }

    #[test]
    fn a_line_as_poolfind_prints_it() {
        // PagedPoolSession | quota | in use, as Vista+ stores it (0x21 | 8 | 4).
        let pool_type = PoolType::from_header_field(0x2d, false);
        let b = Block {
            address: 0xffff_f900_c012_3450,
            size: 0x1f0,
            previous_size: Some(0x40),
            tag: Tag::from_u32(0x6b61_654c | 0x8000_0000),
            pool_type,
            pool: pool_type.kind,
            allocated: true,
            process_billed: Some(1),
        };
        assert_eq!(
            line(&seen(&b, Some(0xffff_fa80_0123_4560)), " leaky.sys"),
            "  0xfffff900c0123450 size:    1f0 previous size:     40  (Allocated) Leak (Protected)  paged session  classic  Process: 0xfffffa8001234560 leaky.sys"
        );
        assert_eq!(PoolFilter::Session.matches(&seen(&b, None)), Some(true));
        assert_eq!(PoolFilter::Paged.matches(&seen(&b, None)), Some(false));
        assert_eq!(PoolFilter::Special.matches(&seen(&b, None)), None);
        let big = Block {
            previous_size: None,
            pool_type: PoolType::from_header_field(2, false),
            pool: PoolKind::Nonpaged,
            ..b
        };
        let l = line(&seen(&big, None), "");
        assert!(l.contains("previous size:      -  (Allocated)"), "{l}");
        assert_eq!(PoolFilter::Nonpaged.matches(&seen(&big, None)), Some(true));
    }
}
