//! The offsets of the verifier's structures, all from the kernel's own symbols (the ISFs and
//! ntkrnlpa.pdb; the tables of /work/research/provenance.md §1 were dumped from the same
//! files). These structures are internal and moved in every release (20348 inserts
//! `AllocationFreed` into `_MM_DRIVER_VERIFIER_DATA`; the per-driver counters move with every
//! field Microsoft adds), so there is no built-in table: without the symbols, nothing is read.
//!
//! Widths the symbols do not give follow the declarations: allocation counts are ULONG, byte
//! counts SIZE_T (pointer-sized), tags ULONG (x64 keeps them in a ULONG_PTR; the low 32 bits).

use super::{TrackingFormat, VerifierCounters};
use crate::memory::VirtualMemory;
use crate::symbols::Profile;

/// Every layout the reader uses.
#[derive(Debug, Clone)]
pub(super) struct Layouts {
    pub verifier_data: VerifierDataLayout,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Xp(XpLayout),
    Targets(TargetLayout),
}

impl Layouts {
    /// `None` when the symbols lack `_MM_DRIVER_VERIFIER_DATA` or describe neither the XP
    /// nor the Vista+ tracking structures.
    pub fn from_profile(p: &Profile, ptr: u8) -> Option<Layouts> {
        let verifier_data = VerifierDataLayout {
            level: p.offset("_MM_DRIVER_VERIFIER_DATA", "Level")?,
            counters: CounterLayout::from_profile(p, "_MM_DRIVER_VERIFIER_DATA", ptr)?,
        };
        let kind = match p.global("MiSuspectDriverList") {
            Some(_) => Kind::Xp(XpLayout::from_profile(p, ptr)?),
            None => Kind::Targets(TargetLayout::from_profile(p, ptr)?),
        };
        Some(Layouts {
            verifier_data,
            kind,
        })
    }

    pub fn format(&self) -> TrackingFormat {
        match self.kind {
            Kind::Xp(_) => TrackingFormat::PoolHash,
            Kind::Targets(_) => TrackingFormat::TrackerPages,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct VerifierDataLayout {
    pub level: u64,
    pub counters: CounterLayout,
}

/// The eight counters `_MM_DRIVER_VERIFIER_DATA`, `_MI_VERIFIER_DRIVER_ENTRY` and
/// `_VF_TARGET_VERIFIED_DRIVER_DATA` all keep under the same names.
#[derive(Debug, Clone, Copy)]
pub(super) struct CounterLayout {
    /// Offsets in [`VerifierCounters`] field order.
    offsets: [u64; 8],
    /// Width of the byte counts (SIZE_T).
    bytes_width: u8,
}

const COUNTER_FIELDS: [&str; 8] = [
    "CurrentPagedPoolAllocations",
    "CurrentNonPagedPoolAllocations",
    "PeakPagedPoolAllocations",
    "PeakNonPagedPoolAllocations",
    "PagedBytes",
    "NonPagedBytes",
    "PeakPagedBytes",
    "PeakNonPagedBytes",
];

impl CounterLayout {
    pub fn from_profile(p: &Profile, ty: &str, ptr: u8) -> Option<CounterLayout> {
        let mut offsets = [0u64; 8];
        for (o, f) in offsets.iter_mut().zip(COUNTER_FIELDS) {
            *o = p.offset(ty, f)?;
        }
        Some(CounterLayout {
            offsets,
            bytes_width: ptr,
        })
    }

    fn width(&self, i: usize) -> u8 {
        if i < 4 {
            4
        } else {
            self.bytes_width
        }
    }

    /// Bytes from the structure's start that hold every counter.
    pub fn span(&self) -> u64 {
        (0..8)
            .map(|i| self.offsets[i] + u64::from(self.width(i)))
            .max()
            .unwrap_or(0)
    }

    /// The counters from a structure's bytes; `None` when `buf` is too short.
    pub fn decode(&self, buf: &[u8]) -> Option<VerifierCounters> {
        let mut v = [0u64; 8];
        for (i, out) in v.iter_mut().enumerate() {
            *out = uint(buf, self.offsets[i], self.width(i))?;
        }
        Some(VerifierCounters {
            current_paged_allocations: v[0],
            current_nonpaged_allocations: v[1],
            peak_paged_allocations: v[2],
            peak_nonpaged_allocations: v[3],
            paged_bytes: v[4],
            nonpaged_bytes: v[5],
            peak_paged_bytes: v[6],
            peak_nonpaged_bytes: v[7],
        })
    }

    /// The counters of the structure at `at`, `None` when unreadable.
    pub fn read(&self, mem: &dyn VirtualMemory, at: u64) -> Option<VerifierCounters> {
        let buf = mem.read_vec(at, usize::try_from(self.span()).ok()?).ok()?;
        self.decode(&buf)
    }
}

/// A little-endian unsigned integer of `width` bytes at `off` in `buf`.
pub(super) fn uint(buf: &[u8], off: u64, width: u8) -> Option<u64> {
    let start = usize::try_from(off).ok()?;
    let raw = buf.get(start..start.checked_add(usize::from(width))?)?;
    let mut b = [0u8; 8];
    b.get_mut(..raw.len())?.copy_from_slice(raw);
    Some(u64::from_le_bytes(b))
}

/// One tracker entry: `_VI_POOL_ENTRY` (a union) read through its `InUse` member
/// (`_VI_POOL_ENTRY_INUSE`).
#[derive(Debug, Clone, Copy)]
pub(super) struct EntryLayout {
    pub size: u64,
    pub virtual_address: u64,
    pub calling_address: u64,
    pub number_of_bytes: u64,
    pub tag: u64,
    pub ptr: u8,
}

/// One tracker entry as stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawEntry {
    pub virtual_address: u64,
    pub calling_address: u64,
    pub number_of_bytes: u64,
    pub tag: u32,
}

impl EntryLayout {
    fn from_profile(p: &Profile, ptr: u8) -> Option<EntryLayout> {
        const E: &str = "_VI_POOL_ENTRY_INUSE";
        let in_use = p.offset("_VI_POOL_ENTRY", "InUse")?;
        let l = EntryLayout {
            size: p.type_size("_VI_POOL_ENTRY")?,
            virtual_address: in_use + p.offset(E, "VirtualAddress")?,
            calling_address: in_use + p.offset(E, "CallingAddress")?,
            number_of_bytes: in_use + p.offset(E, "NumberOfBytes")?,
            tag: in_use + p.offset(E, "Tag")?,
            ptr,
        };
        (l.tag + 4 <= l.size && l.number_of_bytes + u64::from(ptr) <= l.size).then_some(l)
    }

    /// The entry at the start of `buf` (at least [`EntryLayout::size`] bytes).
    pub fn decode(&self, buf: &[u8]) -> Option<RawEntry> {
        Some(RawEntry {
            virtual_address: uint(buf, self.virtual_address, self.ptr)?,
            calling_address: uint(buf, self.calling_address, self.ptr)?,
            number_of_bytes: uint(buf, self.number_of_bytes, self.ptr)?,
            tag: uint(buf, self.tag, 4)? as u32,
        })
    }
}

/// XP: `_MI_VERIFIER_DRIVER_ENTRY` on `MiSuspectDriverList`.
#[derive(Debug, Clone, Copy)]
pub(super) struct XpLayout {
    pub size: u64,
    pub links: u64,
    pub loads: u64,
    pub unloads: u64,
    pub base_name: u64,
    pub start_address: u64,
    pub end_address: u64,
    pub flags: u64,
    pub signature: u64,
    pub pool_hash: u64,
    pub pool_hash_size: u64,
    pub counters: CounterLayout,
    pub unicode_buffer: u64,
    pub entry: EntryLayout,
    /// `_MI_VERIFIER_POOL_HEADER` {ListIndex, Verifier}.
    pub back_pointer_index: u64,
    pub back_pointer_verifier: u64,
    pub back_pointer_size: u64,
    pub ptr: u8,
}

impl XpLayout {
    fn from_profile(p: &Profile, ptr: u8) -> Option<XpLayout> {
        const D: &str = "_MI_VERIFIER_DRIVER_ENTRY";
        const H: &str = "_MI_VERIFIER_POOL_HEADER";
        let off = |f: &str| p.offset(D, f);
        Some(XpLayout {
            size: p.type_size(D)?,
            links: off("Links")?,
            loads: off("Loads")?,
            unloads: off("Unloads")?,
            base_name: off("BaseName")?,
            start_address: off("StartAddress")?,
            end_address: off("EndAddress")?,
            flags: off("Flags")?,
            signature: off("Signature")?,
            pool_hash: off("PoolHash")?,
            pool_hash_size: off("PoolHashSize")?,
            counters: CounterLayout::from_profile(p, D, ptr)?,
            unicode_buffer: p.offset("_UNICODE_STRING", "Buffer")?,
            entry: EntryLayout::from_profile(p, ptr)?,
            back_pointer_index: p.offset(H, "ListIndex")?,
            back_pointer_verifier: p.offset(H, "Verifier")?,
            back_pointer_size: p.type_size(H)?,
            ptr,
        })
    }
}

/// Vista+: `ViTargetDriversAvl` down to the tracker pages.
#[derive(Debug, Clone, Copy)]
pub(super) struct TargetLayout {
    // _VF_AVL_TREE (the global itself)
    pub tables: u64,
    pub tables_no: u64,
    // _VF_AVL_TABLE, whose RtlTable (an _RTL_AVL_TABLE) starts with BalancedRoot
    pub table_size: u64,
    pub balanced_root: u64,
    pub element_count: u64,
    // _RTL_BALANCED_LINKS
    pub left_child: u64,
    pub right_child: u64,
    pub links_size: u64,
    // _VF_TARGET_DRIVER, right after the links
    pub target_size: u64,
    pub range_base: u64,
    pub range_size: u64,
    pub verified_data: u64,
    // _VF_TARGET_VERIFIED_DRIVER_DATA
    pub data_size: u64,
    pub suspect_entry: u64,
    pub page_headers: u64,
    pub counters: CounterLayout,
    // _VF_SUSPECT_DRIVER_ENTRY
    pub suspect_loads: u64,
    pub suspect_unloads: u64,
    pub suspect_name: u64,
    pub unicode_buffer: u64,
    // _SLIST_HEADER
    pub slist_size: u64,
    /// 7601's union has the 8-byte form (`Header8`): then bit 0 of the second quadword
    /// (`HeaderType`) says whether this head is the 16-byte form.
    pub slist_has_header8: bool,
    // _VI_POOL_PAGE_HEADER
    pub next_page: u64,
    pub verifier_entry: u64,
    pub page_signature: u64,
    pub entry: EntryLayout,
    /// `_MI_VERIFIER_POOL_HEADER` (7601/17763) or `_VI_VERIFIER_POOL_HEADER` (19041+): the
    /// pointer back to the tracker entry.
    pub back_pointer_size: u64,
}

impl TargetLayout {
    fn from_profile(p: &Profile, ptr: u8) -> Option<TargetLayout> {
        const TREE: &str = "_VF_AVL_TREE";
        const TD: &str = "_VF_TARGET_DRIVER";
        const DATA: &str = "_VF_TARGET_VERIFIED_DRIVER_DATA";
        const SUS: &str = "_VF_SUSPECT_DRIVER_ENTRY";
        const PH: &str = "_VI_POOL_PAGE_HEADER";
        // 17763+ nodes are _VF_AVL_TREE_NODE_EX {Base: _VF_AVL_TREE_NODE, SessionId}.
        let node =
            p.offset(TD, "TreeNode")? + p.offset("_VF_AVL_TREE_NODE_EX", "Base").unwrap_or(0);
        let back_pointer_size = p
            .type_size("_VI_VERIFIER_POOL_HEADER")
            .or_else(|| p.type_size("_MI_VERIFIER_POOL_HEADER"))?;
        Some(TargetLayout {
            tables: p.offset(TREE, "Tables")?,
            tables_no: p.offset(TREE, "TablesNo")?,
            table_size: p.type_size("_VF_AVL_TABLE")?,
            balanced_root: p.offset("_VF_AVL_TABLE", "RtlTable")?
                + p.offset("_RTL_AVL_TABLE", "BalancedRoot")?,
            element_count: p.offset("_VF_AVL_TABLE", "RtlTable")?
                + p.offset("_RTL_AVL_TABLE", "NumberGenericTableElements")?,
            left_child: p.offset("_RTL_BALANCED_LINKS", "LeftChild")?,
            right_child: p.offset("_RTL_BALANCED_LINKS", "RightChild")?,
            links_size: p.type_size("_RTL_BALANCED_LINKS")?,
            target_size: p.type_size(TD)?,
            range_base: node + p.offset("_VF_AVL_TREE_NODE", "p")?,
            range_size: node + p.offset("_VF_AVL_TREE_NODE", "RangeSize")?,
            verified_data: p.offset(TD, "VerifiedData")?,
            data_size: p.type_size(DATA)?,
            suspect_entry: p.offset(DATA, "SuspectDriverEntry")?,
            page_headers: p.offset(DATA, "PoolPageHeaders")?,
            counters: CounterLayout::from_profile(p, DATA, ptr)?,
            suspect_loads: p.offset(SUS, "Loads")?,
            suspect_unloads: p.offset(SUS, "Unloads")?,
            suspect_name: p.offset(SUS, "BaseName")?,
            unicode_buffer: p.offset("_UNICODE_STRING", "Buffer")?,
            slist_size: p.type_size("_SLIST_HEADER")?,
            slist_has_header8: p.offset("_SLIST_HEADER", "Header8").is_some(),
            next_page: p.offset(PH, "NextPage")?,
            verifier_entry: p.offset(PH, "VerifierEntry")?,
            page_signature: p.offset(PH, "Signature")?,
            entry: EntryLayout::from_profile(p, ptr)?,
            back_pointer_size,
        })
    }
}
