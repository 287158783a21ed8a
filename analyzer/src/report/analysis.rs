//! The `pooltriage analyze` report: which driver is eating which pool, and where in its code it
//! allocates. This is what the service stores for every dump and what its HTML pages and the
//! per-driver statistics read back, so the types derive both Serialize and Deserialize.
//!
//! Contract: /work/notes/s2/analysis.md; documented field by field in docs/json.md (section
//! "`pooltriage analyze DUMP --json`"). [`ANALYSIS_SCHEMA_VERSION`] changes only on an
//! incompatible change; fields are only ever added within a version (new fields carry
//! `#[serde(default)]` so older stored reports still deserialize).

use super::hex::Hex;
use crate::attribution::Source;
use serde::{Deserialize, Serialize};

/// Version of the analysis JSON schema.
pub const ANALYSIS_SCHEMA_VERSION: u32 = 1;

/// The value of [`AnalysisReport::kind`]: tells an analysis apart from an inspect report.
pub const ANALYSIS_KIND: &str = "analysis";

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisReport {
    /// Always [`ANALYSIS_SCHEMA_VERSION`] (1).
    pub schema_version: u32,
    /// Always "analysis".
    pub kind: String,
    /// "pooltriage <version>" that wrote the report.
    pub generator: String,
    pub dump: AnalysisDump,
    pub bugcheck: AnalysisBugcheck,
    /// Which kernel symbols the layouts and globals came from.
    pub symbols: AnalysisSymbols,
    /// The answer: who is leaking what, in one sentence and in fields.
    pub verdict: Verdict,
    /// Paged and nonpaged pool usage (`!vm`), paged first. Empty when neither could be read.
    pub pools: Vec<PoolGauge>,
    /// Modules with code evidence for a tag that has outstanding bytes, by bytes descending.
    pub drivers: Vec<DriverReport>,
    /// Every tag with outstanding bytes, by paged + nonpaged bytes descending. Empty when the
    /// tag tables could not be read (see `errors`).
    pub tags: Vec<TagReport>,
    /// Session pool tags (Vista+ keeps them apart: ExpSessionPoolTrackTable and each session's
    /// expansion table, summed over sessions), same order; null when there are none.
    pub session_tags: Option<Vec<TagReport>>,
    /// Each session whose tag tables were read, with its totals (`session_tags` sums them).
    #[serde(default)]
    pub sessions: Vec<AnalysisSession>,
    /// Totals of the block walk.
    pub blocks: BlockTotals,
    /// Pool charged to processes' quota (ProcessBilled), null when it could not be decoded.
    pub quota: Option<QuotaSummary>,
    /// Every loaded module, in list order.
    pub modules: Vec<AnalysisModule>,
    /// Which module allocated the blocks whose tag does not say (docs/json.md "provenance");
    /// null when no block was walked.
    #[serde(default)]
    pub provenance: Option<super::provenance::ProvenanceReport>,
    /// The crashing thread's stack, followup module and bucket, and the unloaded-driver list
    /// (docs/json.md "crash"); null when the dump holds no starting context.
    #[serde(default)]
    pub crash: Option<super::crash::CrashReport>,
    /// What was read only in part, one line each.
    pub warnings: Vec<String>,
    /// What could not be read at all, one line each.
    pub errors: Vec<String>,
}

/// One session's pool, from its own tag tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisSession {
    /// MM_SESSION_SPACE.SessionId, null when unreadable.
    pub session_id: Option<u32>,
    /// Its MM_SESSION_SPACE (EPROCESS.Session).
    pub mm_session_space: Hex,
    /// Tags with outstanding or past allocations in its tables.
    pub tags: u64,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
}

/// What the dump is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisDump {
    /// As in the inspect report: "full" | "summary" | "triage" | "kernel-bitmap" | ...
    pub format: String,
    pub dump_type: u32,
    /// "x86" | "x64" | "arm64".
    pub arch: String,
    pub pae: bool,
    pub build: u32,
    pub processors: u32,
    /// "YYYY-MM-DDTHH:MM:SSZ", null when the writer left it unset.
    pub system_time: Option<String>,
    /// Size of the dump file in bytes.
    pub file_size: u64,
    /// nt's image base, null when it could not be found.
    pub kernel_base: Option<Hex>,
    /// When the machine booted, "YYYY-MM-DDTHH:MM:SSZ": the header's SystemTime minus its
    /// SystemUpTime; null when the writer left either unset (and in older reports). Dumps of
    /// one boot share it, which is how a trend tells a series of one boot from a mix.
    #[serde(default)]
    pub boot_time: Option<String>,
    /// The file was cut short: `{pages_in_file, pages_listed}`; null for a whole file (and in
    /// older reports).
    #[serde(default)]
    pub truncated: Option<TruncatedFile>,
}

/// How much of a cut-short dump file is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncatedFile {
    pub pages_in_file: u64,
    pub pages_listed: u64,
}

/// The bugcheck, with whether it concerns pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisBugcheck {
    pub code: Hex,
    /// Name from Microsoft's bug check reference; null for an unknown code.
    pub name: Option<String>,
    pub params: [Hex; 4],
    /// The code is one of the pool-related bugchecks listed in docs/json.md
    /// ([`POOL_BUGCHECKS`]): the crash itself points at pool.
    pub pool_related: bool,
    /// The instruction the crash is about (the documented bugcheck parameter, else the context
    /// record) as "module+0xoffset", when it lies in a loaded module.
    #[serde(default)]
    pub faulting: Option<String>,
    /// Where `name` comes from; null for an unknown code (and in older reports).
    #[serde(default)]
    pub name_source: Option<crate::kernel::bugcheck::NameSource>,
    /// What the code's page of the bug check reference says the parameters mean, as in the
    /// inspect report; null when this tool does not carry the code's page (and in older
    /// reports).
    #[serde(default)]
    pub description: Option<super::bugcheck::BugcheckDescriptionReport>,
    /// `faulting` by function (`amdppm!WriteIoMemRawEx+0x70`) when the module's PDB was found
    /// (a tenant's uploaded symbols first, in the service); null otherwise.
    #[serde(default)]
    pub faulting_symbol: Option<String>,
    /// The faulting instruction's source line, when that PDB carries line information.
    #[serde(default)]
    pub faulting_source: Option<super::source::SourceRef>,
}

/// Bugcheck codes (without the 0x10000000 "_M" flag) whose subject is kernel pool itself, from
/// Microsoft's bug check reference: 0x19 BAD_POOL_HEADER, 0x41 MUST_SUCCEED_POOL_EMPTY,
/// 0x4D NO_PAGES_AVAILABLE, 0xAB SESSION_HAS_VALID_POOL_ON_EXIT,
/// 0xC1 SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, 0xC2 BAD_POOL_CALLER,
/// 0xC5 DRIVER_CORRUPTED_EXPOOL, 0xC6 DRIVER_CAUGHT_MODIFYING_FREED_POOL,
/// 0xCC PAGE_FAULT_IN_FREED_SPECIAL_POOL, 0xCD PAGE_FAULT_BEYOND_END_OF_ALLOCATION,
/// 0xD0 DRIVER_CORRUPTED_MMPOOL, 0xD5 DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL,
/// 0xD6 DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION, 0xDE POOL_CORRUPTION_IN_FILE_AREA,
/// 0xEC SESSION_HAS_VALID_SPECIAL_POOL_ON_EXIT, 0x13A KERNEL_MODE_HEAP_CORRUPTION.
/// Narrower than the inspect report's `pool_or_memory` (which also counts PFN, PTE and paging
/// errors): these are the crashes a pool report answers directly.
pub const POOL_BUGCHECKS: &[u32] = &[
    0x19, 0x41, 0x4d, 0xab, 0xc1, 0xc2, 0xc5, 0xc6, 0xcc, 0xcd, 0xd0, 0xd5, 0xd6, 0xde, 0xec, 0x13a,
];

/// Where the kernel's symbols came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisSymbols {
    /// "pdb" | "isf" | "none" (debugger data block and built-in layouts).
    pub source: crate::report::pool::SymbolSource,
    /// The file used.
    pub path: Option<String>,
    pub guid: Option<String>,
    pub age: Option<u32>,
    /// Whether GUID/age equal the kernel image's CodeView record (null when unknown).
    pub matches_kernel: Option<bool>,
}

/// What kind of answer the verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// One third-party driver's own code allocates the tag(s) holding the most pool, and the
    /// pool is under pressure.
    DriverLeak,
    /// The top tag is allocated by several drivers' code: all are named.
    SharedTag,
    /// The top tag is "None" (ExAllocatePool): the drivers calling it are named.
    UntaggedLeak,
    /// Quota-charged pool dominated by one process.
    ProcessQuota,
    /// A pool near exhaustion whose top tag no loaded driver's code allocates with.
    UnattributedTag,
    /// A third-party driver holds a significant share of a pool that is not under pressure:
    /// it is named as the largest consumer, not as a leaker (one dump shows who holds pool,
    /// not that it grows).
    LargestConsumer,
    /// Nothing stands out.
    NoLeakFound,
    /// The dump holds no pool statistics (e.g. a triage dump) or its kernel could not be read.
    NotAnalyzable,
}

impl VerdictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::DriverLeak => "driver-leak",
            VerdictKind::SharedTag => "shared-tag",
            VerdictKind::UntaggedLeak => "untagged-leak",
            VerdictKind::ProcessQuota => "process-quota",
            VerdictKind::UnattributedTag => "unattributed-tag",
            VerdictKind::LargestConsumer => "largest-consumer",
            VerdictKind::NoLeakFound => "no-leak-found",
            VerdictKind::NotAnalyzable => "not-analyzable",
        }
    }
}

/// Paged or nonpaged pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolName {
    Paged,
    Nonpaged,
}

impl PoolName {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolName::Paged => "paged",
            PoolName::Nonpaged => "nonpaged",
        }
    }
}

/// How strongly the evidence supports the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// The answer to the support question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// One plain-English sentence to paste into a ticket.
    pub sentence: String,
    /// The pool the verdict is about, null when none. With `session` true it is that pool of
    /// session space ("paged": session paged pool).
    pub pool: Option<PoolName>,
    /// The verdict is about session pool (the session tag tables), not system pool;
    /// `share_of_pool` is then the share of session pool in use.
    #[serde(default)]
    pub session: bool,
    /// The driver(s) named: one for driver-leak / untagged-leak (and process-quota when the
    /// quota tag is attributed), all owners for shared-tag, [] otherwise.
    pub drivers: Vec<String>,
    /// The tag(s) the verdict is about.
    pub tags: Vec<String>,
    /// Outstanding bytes the verdict is about.
    pub bytes: u64,
    /// `bytes` / the pool's bytes in use; null when the pool's usage is unknown.
    pub share_of_pool: Option<f64>,
    pub confidence: Confidence,
    /// The process, for process-quota only.
    pub process: Option<VerdictProcess>,
    /// `bytes` in `pool` / that pool's maximum; null when the maximum is unknown.
    #[serde(default)]
    pub share_of_maximum: Option<f64>,
    /// What makes the pool's state a leak's (docs/json.md "verdict"); null when the pool is
    /// not under pressure: then no verdict says "leaker".
    #[serde(default)]
    pub pressure: Option<Pressure>,
    /// The named driver's blocks that nothing in the dump points to (provenance).
    #[serde(default)]
    pub orphans: Option<CountBytes>,
    /// The evidence, one plain sentence each.
    pub reasons: Vec<String>,
}

/// Why a pool counts as under pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PressureRule {
    /// The pool is near exhaustion by WinDbg `!vm`'s rule (nonpaged above 80%, paged above
    /// 95% of its maximum).
    NearExhaustion,
    /// The named driver alone holds at least the documented share of the pool's maximum.
    ShareOfMaximum,
}

/// The pressure a verdict rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub rule: PressureRule,
    pub pool: PoolName,
    pub in_use: u64,
    pub max: Option<u64>,
    /// `in_use / max`.
    pub used_fraction: Option<f64>,
}

/// A process named by a process-quota verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictProcess {
    pub pid: Option<u64>,
    pub name: Option<String>,
    pub eprocess: Hex,
}

/// One pool's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolGauge {
    pub pool: PoolName,
    /// Bytes in use.
    pub in_use: u64,
    /// The pool's maximum size, when known.
    pub max: Option<u64>,
    /// Committed bytes (paged pool), when known.
    pub commit: Option<u64>,
    /// `in_use / max`, when `max` is known and non-zero.
    pub used_fraction: Option<f64>,
    /// `in_use` is above WinDbg `!vm`'s "Excessive ... Pool Usage" threshold of `max`:
    /// 80% for nonpaged pool, 95% for paged ([`crate::pool::vm::near_exhaustion`], the same
    /// test as the pool engine's `!vm` warning).
    pub near_exhaustion: bool,
    /// Where `in_use` came from (e.g. "kdbg:MmPagedPoolInfo", "tag tables").
    pub source: String,
}

/// Whether a pool of this name is near exhaustion with `in_use` of `max` bytes: the pool
/// engine's one definition ([`crate::pool::vm::near_exhaustion`]).
pub fn near_exhaustion(pool: PoolName, in_use: u64, max: Option<u64>) -> bool {
    max.is_some_and(|m| crate::pool::vm::near_exhaustion(pool == PoolName::Paged, in_use, m))
}

/// One module with code evidence for a tag that has outstanding bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverReport {
    /// Module file name ("leaky.sys").
    pub module: String,
    pub base: Option<Hex>,
    pub size: Option<u64>,
    /// Full path from the module list.
    pub path: Option<String>,
    /// Outstanding bytes of its tags in system pool, from the tag tables.
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    /// Outstanding bytes of its tags in session pool (session tag tables).
    #[serde(default)]
    pub session_bytes: u64,
    /// `paged_bytes + nonpaged_bytes + session_bytes`.
    pub bytes: u64,
    /// Outstanding allocations of its tags.
    pub allocations: u64,
    /// `bytes` / (paged + nonpaged in use), null when unknown.
    pub share_of_pool: Option<f64>,
    pub tags: Vec<DriverTag>,
    /// Instructions that pass one of its tags to an allocator (bounded, see
    /// `call_sites_truncated`).
    pub call_sites: Vec<CallSite>,
    /// More call sites exist than are listed.
    #[serde(default)]
    pub call_sites_truncated: bool,
    /// Blocks of its tags found by the block walk.
    pub blocks: DriverBlocks,
    /// The blocks provenance ties to it (its own tags', and its share of 'None' and shared
    /// tags), with the evidence; null when none.
    #[serde(default)]
    pub provenance: Option<super::provenance::DriverProvenance>,
}

/// One of a driver's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverTag {
    pub tag: String,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    /// Outstanding allocations.
    pub allocations: u64,
    /// How the tag is tied to this driver.
    pub evidence: Source,
    /// The figures are the tag's in session pool (a tag used in both pools is listed twice).
    #[serde(default)]
    pub session: bool,
    /// Other modules whose code also allocates with the tag.
    pub shared_with: Vec<String>,
    /// The figures are this driver's share of a tag provenance split between modules ('None',
    /// a tag several drivers allocate with): its attributed blocks, not the whole tag.
    #[serde(default)]
    pub attributed: bool,
}

/// What a call site does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallSiteKind {
    /// `mov r8d, imm32` (x64) / `push imm32` (x86): the tag argument of an allocation.
    TagArgument,
    /// `call [ExAllocatePool import]`: an allocation tagged "None".
    UntaggedAllocatorCall,
}

/// One instruction in a driver's code that allocates with a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSite {
    /// Virtual address of the instruction.
    pub address: Hex,
    /// "module+0xoffset".
    pub offset: String,
    /// "module!Function+0xoff" when the driver's PDB was found, else null.
    pub symbol: Option<String>,
    /// The tag, "None" for an untagged allocator call.
    pub tag: String,
    pub kind: CallSiteKind,
    /// From a plain immediate pool-type argument before the call (rcx/ecx on x64, the first
    /// push on x86), else null.
    pub pool_type: Option<PoolName>,
    /// From a plain immediate size argument (rdx/edx on x64, the second push on x86), else null.
    pub size: Option<u64>,
    /// The allocator the call goes to, when it is an import we recognise
    /// ("ExAllocatePoolWithTag", "ExAllocatePool2", "ExAllocatePool", ...).
    #[serde(default)]
    pub callee: Option<String>,
    /// The call instruction itself (`address` is the tag's instruction for a tagged site):
    /// what provenance's per-site figures name, and the instruction before the return address
    /// Driver Verifier records.
    #[serde(default)]
    pub call: Option<Hex>,
    /// The site's source line, when the driver's PDB carries line information; null
    /// otherwise (`modules[].line_info` says whether the PDB has any).
    #[serde(default)]
    pub source: Option<super::source::SourceRef>,
}

/// A driver's blocks from the block walk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DriverBlocks {
    /// Allocated blocks of its tags.
    pub count: u64,
    pub bytes: u64,
    /// The largest, biggest first, at most [`MAX_LARGEST_BLOCKS`].
    pub largest: Vec<BlockRef>,
}

/// Most blocks listed per driver (and per tag) as "largest".
pub const MAX_LARGEST_BLOCKS: usize = 20;

pub use crate::pool::BlockSource;

/// One pool block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    pub address: Hex,
    pub size: u64,
    pub tag: String,
    /// null when the pool is not recorded (XP big pages outside the known ranges).
    pub pool: Option<PoolName>,
    pub source: BlockSource,
}

/// One tag's outstanding pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagReport {
    pub tag: String,
    pub paged_allocs: u64,
    pub paged_frees: u64,
    /// Outstanding paged bytes.
    pub paged_bytes: u64,
    pub nonpaged_allocs: u64,
    pub nonpaged_frees: u64,
    pub nonpaged_bytes: u64,
    /// Outstanding paged allocations (allocs - frees).
    pub paged_outstanding: u64,
    pub nonpaged_outstanding: u64,
    /// Who allocates with it, strongest evidence first.
    pub owners: Vec<TagOwner>,
    /// Allocated blocks of this tag found by the block walk, by source.
    #[serde(default)]
    pub blocks: Option<TagBlocks>,
}

/// Block-walk totals for one tag.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TagBlocks {
    pub count: u64,
    pub bytes: u64,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    pub classic: CountBytes,
    pub big: CountBytes,
    pub lfh: CountBytes,
    pub vs: CountBytes,
    /// Bytes of those blocks charged to a process's quota (ProcessBilled decoded).
    #[serde(default)]
    pub quota_bytes: u64,
    /// The processes charged, biggest first (EPROCESS only; `quota.processes` names them).
    #[serde(default)]
    pub quota_processes: Vec<QuotaShare>,
    /// Block sizes seen (as the walks report them, header included) with their counts, at
    /// most 32 distinct sizes: what the call sites' requested sizes are compared with.
    #[serde(default)]
    pub sizes: Vec<SizeCount>,
}

/// Blocks of one tag charged to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaShare {
    pub eprocess: Hex,
    pub blocks: u64,
    pub bytes: u64,
}

/// How many blocks of one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeCount {
    pub size: u64,
    pub count: u64,
}

/// One mapping of a tag to a binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagOwner {
    /// Module name, "nt", "nt!cm", "<any>"..., null when the source names no binary.
    pub module: Option<String>,
    pub source: Source,
    /// The pooltag file's or the built-in table's description.
    pub description: Option<String>,
}

/// A count of blocks and their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CountBytes {
    pub count: u64,
    pub bytes: u64,
}

/// Totals of the block walk (allocated blocks).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockTotals {
    pub classic: CountBytes,
    pub big: CountBytes,
    pub lfh: CountBytes,
    pub vs: CountBytes,
    /// Free blocks seen (not in the totals above).
    pub free_blocks: u64,
    /// Pool pages the dump does not hold.
    pub missing_pool_pages: u64,
    /// Every pool page was walked (no missing pages, no walk skipped or truncated).
    pub complete: bool,
}

/// Quota charges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaSummary {
    /// Biggest first.
    pub processes: Vec<QuotaProcess>,
    /// Quota-charged blocks whose process could not be named, and all uncharged ones.
    pub uncharged_blocks: u64,
    pub uncharged_bytes: u64,
}

/// Pool charged to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaProcess {
    pub pid: Option<u64>,
    pub name: Option<String>,
    pub eprocess: Hex,
    pub blocks: u64,
    pub bytes: u64,
}

/// One loaded module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisModule {
    pub name: String,
    pub base: Hex,
    pub size: u64,
    pub timestamp: Option<Hex>,
    pub pdb: Option<ModulePdb>,
    /// "found" | "not found" | "not looked up" | the inspect report's other statuses.
    pub symbols: String,
    /// Part of Windows, and why ("kernel-image", "inbox-list"); null for every other module.
    /// A Windows module is never named the leaker on code evidence alone.
    #[serde(default)]
    pub windows: Option<crate::attribution::windows::WindowsBasis>,
    /// The symbol path entry that answered the module's PDB (in the service, the tenant's
    /// uploaded store is `vendor-symbols/<tenant>`); null when not found or not looked up.
    #[serde(default)]
    pub symbols_source: Option<String>,
    /// Whether that PDB carries source line information (false: a public PDB, names only);
    /// null when no PDB of the module was read.
    #[serde(default)]
    pub line_info: Option<bool>,
}

/// A module's PDB key (CodeView record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulePdb {
    pub name: String,
    pub guid: String,
    pub age: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's field names and enum spellings, round-tripped through JSON.
    #[test]
    fn contract_spellings_round_trip() {
        let v = Verdict {
            kind: VerdictKind::UntaggedLeak,
            sentence: "s".into(),
            pool: Some(PoolName::Nonpaged),
            session: false,
            drivers: vec!["untagged.sys".into()],
            tags: vec!["None".into()],
            bytes: 10,
            share_of_pool: None,
            confidence: Confidence::Medium,
            process: None,
            share_of_maximum: Some(0.5),
            pressure: Some(Pressure {
                rule: PressureRule::NearExhaustion,
                pool: PoolName::Nonpaged,
                in_use: 9,
                max: Some(10),
                used_fraction: Some(0.9),
            }),
            orphans: None,
            reasons: vec![],
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["kind"], "untagged-leak");
        assert_eq!(j["pressure"]["rule"], "near-exhaustion");
        assert_eq!(
            serde_json::to_value(VerdictKind::LargestConsumer).unwrap(),
            "largest-consumer"
        );
        assert_eq!(j["pool"], "nonpaged");
        assert_eq!(j["confidence"], "medium");
        assert!(j["share_of_pool"].is_null());
        let back: Verdict = serde_json::from_value(j).unwrap();
        assert_eq!(back, v);
        let c = CallSite {
            address: Hex(0xfffff800_01001040),
            offset: "leaky.sys+0x1040".into(),
            symbol: None,
            tag: "Leak".into(),
            kind: CallSiteKind::UntaggedAllocatorCall,
            pool_type: Some(PoolName::Paged),
            size: Some(2032),
            callee: None,
            call: Some(Hex(0xfffff800_01001046)),
            source: Some(crate::report::SourceRef {
                file: r"d:\src\leaky.c".into(),
                line: 118,
            }),
        };
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["address"], "0xfffff80001001040");
        assert_eq!(j["call"], "0xfffff80001001046");
        assert_eq!(j["kind"], "untagged-allocator-call");
        assert_eq!(j["source"]["line"], 118);
        assert_eq!(j["source"]["file"], r"d:\src\leaky.c");
        let o = TagOwner {
            module: Some("leaky.sys".into()),
            source: Source::DriverCodeAllocation,
            description: None,
        };
        assert_eq!(
            serde_json::to_value(&o).unwrap()["source"],
            "driver-code-allocation"
        );
        assert_eq!(serde_json::to_value(BlockSource::Lfh).unwrap(), "lfh");
    }
}
