//! The JSON of `pooltriage pool-at DUMP ADDRESS` (docs/json.md): the pool block holding an
//! address and its page's neighbours, as WinDbg's `!pool` shows them, with the block's owner,
//! its first bytes and the pointers to it found in the dump.

use super::hex::Hex;
use super::pool::{DumpSummary, SymbolsInfo};
use super::provenance::BlockOwner;
use crate::pool::{BlockSource, PoolKind};
use serde::{Deserialize, Serialize};

/// Always "pool-at".
pub const POOL_AT_KIND: &str = "pool-at";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolAtReport {
    pub schema_version: u32,
    pub kind: &'static str,
    /// The address asked about.
    pub address: Hex,
    pub dump: DumpSummary,
    pub symbols: SymbolsInfo,
    /// The block holding the address; null when no walked block does (the address is not in
    /// pool, or its page is not in the dump).
    pub block: Option<PoolAtBlock>,
    /// Every block of the address's page (classic, LFH and VS pages), in address order; for a
    /// big allocation, the allocation alone.
    pub page: Vec<PoolAtBlock>,
    /// The block's first bytes (after its header).
    pub content: Option<Content>,
    /// Pointers into the block found in the modules' data and the other allocated blocks.
    pub references: Vec<Reference>,
    /// More references were found than listed.
    pub references_truncated: bool,
    /// Pages that could not be read while looking for references.
    pub references_unread_pages: u64,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// One block of the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAtBlock {
    pub address: Hex,
    pub size: u64,
    /// The size of the block before it on the page (0 for the first), as `!pool` prints it.
    pub previous_size: u64,
    pub tag: String,
    pub pool: PoolKind,
    pub allocated: bool,
    pub session: bool,
    pub source: BlockSource,
    pub billed_process: Option<Hex>,
    /// True for the block holding the address.
    pub contains: bool,
    /// What the pooltag file and the built-in table say the tag is (first match).
    pub description: Option<String>,
    /// Provenance's decision; null for blocks it does not examine.
    pub owner: Option<BlockOwner>,
}

/// Bytes of a block, as `!pool ADDRESS 1` / `db` show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Content {
    pub address: Hex,
    /// Lower-case hex, two digits a byte, no separators.
    pub hex: String,
    /// Printable ASCII, others as `.`.
    pub ascii: String,
}

/// A pointer into the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// Where the pointer is stored.
    pub at: Hex,
    /// The value stored (inside the block).
    pub value: Hex,
    /// The module whose writable data holds it, when it is there.
    pub module: Option<String>,
    /// The allocated block that holds it, when it is in one: its address and tag.
    pub block: Option<Hex>,
    pub block_tag: Option<String>,
}
