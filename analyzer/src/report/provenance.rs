//! The JSON of block provenance (docs/json.md, "provenance"): which module allocated the
//! blocks whose tag does not say, with the evidence for each, per tag, per driver, per call
//! site and per block.

use super::analysis::{Confidence, CountBytes};
use super::hex::Hex;
use serde::{Deserialize, Serialize};

/// A kind of evidence that ties a block to a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceName {
    /// Driver Verifier recorded the allocation with its caller: exact.
    Verifier,
    /// Only this module's code allocates with the block's tag.
    Tag,
    /// A chain of pointers from the module's data, device extensions or own blocks reaches it.
    Reachable,
    /// Its size and pool fit this module's constant-size call sites only.
    Size,
    /// It holds pointers into the module's image, or its driver or device objects.
    Pointer,
}

/// How a block's call site was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteBasis {
    /// Verifier recorded the caller.
    Verifier,
    /// The block's size fits this site's constant size only.
    Size,
    /// The owner has no other call site for the block's tag and pool.
    OnlySite,
}

/// Blocks (count, bytes) with one kind of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceCount {
    pub kind: EvidenceName,
    pub count: u64,
    pub bytes: u64,
}

/// The provenance of the whole dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceReport {
    /// Blocks examined: those of ambiguous tags ('None', tags several modules' code allocates
    /// with) and of tags one non-Windows module's code allocates with.
    pub examined: CountBytes,
    pub attributed: CountBytes,
    /// Examined blocks no evidence ties to one module.
    pub unattributed: CountBytes,
    /// Examined blocks nothing live points to.
    pub orphans: CountBytes,
    /// Blocks whose evidence named different modules (left unattributed unless their tag or
    /// Verifier decides).
    pub conflicts: u64,
    /// Attributed blocks by kind of evidence (a block with two kinds counts in both).
    pub evidence: Vec<EvidenceCount>,
    /// Each ambiguous tag split between modules, biggest first.
    pub tags: Vec<TagSplit>,
    /// DRIVER_OBJECTs found (their device extensions are roots of the pointer scan).
    pub driver_objects: u64,
    pub limits: ProvenanceLimits,
}

/// One ambiguous tag's blocks, by module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSplit {
    pub tag: String,
    pub blocks: CountBytes,
    pub modules: Vec<ModuleShare>,
    pub unattributed: CountBytes,
}

/// One module's share of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleShare {
    pub module: String,
    pub count: u64,
    pub bytes: u64,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    pub orphans: CountBytes,
}

/// What the pointer scan could not see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceLimits {
    /// Blocks to examine left out (the index's limit was reached).
    pub blocks_left_out: u64,
    /// Pointers between examined blocks were dropped at their limit; their targets were
    /// taken as live (orphans can be missed, never invented).
    pub pointers_dropped: bool,
    /// Pages of blocks and module sections the dump does not hold: pointers there are unseen.
    pub unread_pages: u64,
    /// Allocated blocks whose contents were read.
    pub blocks_scanned: u64,
}

/// One driver's attributed blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverProvenance {
    pub blocks: CountBytes,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    pub orphans: CountBytes,
    pub evidence: Vec<EvidenceCount>,
    /// Blocks by the certainty of their owner.
    pub high: CountBytes,
    pub medium: CountBytes,
    pub low: CountBytes,
    /// Blocks per call site, biggest first.
    pub sites: Vec<SiteBlocks>,
    /// Blocks whose call site could not be told.
    pub unknown_site: CountBytes,
}

/// One call site's attributed blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteBlocks {
    pub address: Hex,
    /// `module+0x...`.
    pub offset: String,
    pub tag: String,
    pub blocks: CountBytes,
    pub orphans: CountBytes,
    /// The site by function (`acmestor!AllocateRequestContext+0x2e`), when the driver's PDB
    /// was found; null otherwise.
    #[serde(default)]
    pub symbol: Option<String>,
    /// The site's source line, when that PDB carries line information.
    #[serde(default)]
    pub source: Option<super::source::SourceRef>,
}

/// A block's owner, as `blocks --json` and `pool-at` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOwner {
    /// null: unattributed.
    pub module: Option<String>,
    pub site: Option<Hex>,
    /// The site as `module+0x...`.
    pub site_offset: Option<String>,
    pub site_basis: Option<SiteBasis>,
    pub evidence: Vec<EvidenceName>,
    /// null when unattributed.
    pub confidence: Option<Confidence>,
    /// Evidence named more than one module.
    pub conflict: bool,
    /// Nothing live points to it.
    pub orphan: bool,
}
