//! The pool allocators a driver's call can reach, by export name, and where each takes its pool
//! type, size and tag. Signatures from the WDK documentation (wdm.h, ndis.h); the tag each
//! untagged allocator gives its blocks from ReactOS's `ntoskrnl/mm/ARM3/expool.c`
//! (ExAllocatePool and ExAllocatePoolWithQuota both tag 'None').
//!
//! Not here, because they are not exports: ExAllocatePoolZero, ExAllocatePoolQuotaZero,
//! ExAllocatePoolPriorityZero and the `...Uninitialized` variants are FORCEINLINE wrappers in
//! wdm.h that call ExAllocatePoolWithTag* (or ExAllocatePool2), so a driver's code calls those.
//! The framework's WdfMemoryCreate is not supported: it is reached through the WdfFunctions
//! table (`call [reg + index*8]`), whose pointer is a driver global filled by the KMDF stub at
//! load time and named only in the driver's PDB.

/// What kind of allocation an allocator makes, and how to read its pool argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocatorKind {
    /// `ExAllocatePool(POOL_TYPE, size)` / `ExAllocatePoolWithQuota`: the kernel tags the block
    /// "None".
    Untagged,
    /// `ExAllocatePoolWithTag(POOL_TYPE, size, tag)`, `...WithQuotaTag`, `...WithTagPriority`.
    PoolType,
    /// `ExAllocatePool2(POOL_FLAGS, size, tag)`, `ExAllocatePool3`: flags, not a POOL_TYPE.
    PoolFlags,
    /// A lookaside list's initialisation: every entry later allocated from the list is a block
    /// of `size` bytes with `tag`; the pool is the list's (POOL_TYPE argument, or implied).
    Lookaside,
    /// NDIS's allocator: nonpaged pool, tagged.
    Ndis,
}

/// An allocator a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Allocator {
    pub kind: AllocatorKind,
    /// The import's name ("ExAllocatePoolWithTag").
    pub name: &'static str,
}

/// Where an argument is at the call, in the calling convention's argument slots: on x64 slots
/// 0..=3 are rcx, rdx, r8, r9 and slot `k >= 4` is `[rsp + 8*k]` (past the 0x20-byte home
/// area); on x86 (stdcall) slot `k` is the dword at `[esp + 4*k]` (a 64-bit argument takes
/// two slots).
pub type ArgSlot = u8;

/// Which argument slots hold the pool type (or flags), the size and the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSlots {
    /// `None` when the allocator implies its pool (see [`AllocatorSpec::implied_paged`]).
    pub pool: Option<ArgSlot>,
    pub size: ArgSlot,
    /// `None` for the untagged allocators.
    pub tag: Option<ArgSlot>,
}

/// One allocator export and its argument layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorSpec {
    pub name: &'static str,
    pub kind: AllocatorKind,
    pub x64: ArgSlots,
    pub x86: ArgSlots,
    /// The pool when no argument gives it: `Some(false)` nonpaged, `Some(true)` paged.
    pub implied_paged: Option<bool>,
}

impl AllocatorSpec {
    pub fn allocator(&self) -> Allocator {
        Allocator {
            kind: self.kind,
            name: self.name,
        }
    }

    /// The argument layout for code of this bitness.
    pub fn slots(&self, bitness: u32) -> ArgSlots {
        if bitness == 64 {
            self.x64
        } else {
            self.x86
        }
    }
}

const fn slots(pool: Option<u8>, size: u8, tag: Option<u8>) -> ArgSlots {
    ArgSlots { pool, size, tag }
}

/// `(POOL_TYPE, SIZE_T, ULONG tag, ...)`: the same slots on both architectures.
const TYPE_SIZE_TAG: ArgSlots = slots(Some(0), 1, Some(2));
/// `(POOL_TYPE, SIZE_T)`.
const TYPE_SIZE: ArgSlots = slots(Some(0), 1, None);
/// `(POOL_FLAGS, SIZE_T, ULONG tag, ...)`: POOL_FLAGS is a ULONG64, two dwords on x86 (its low
/// dword, which holds every pool bit, first).
const FLAGS_X86: ArgSlots = slots(Some(0), 2, Some(3));
/// `(Lookaside, Allocate, Free, Flags, SIZE_T Size, ULONG Tag, USHORT Depth)`.
const LOOKASIDE: ArgSlots = slots(None, 4, Some(5));
/// `(Lookaside, Allocate, Free, POOL_TYPE, Flags, SIZE_T Size, ULONG Tag, USHORT Depth)`.
const LOOKASIDE_EX: ArgSlots = slots(Some(3), 5, Some(6));
/// `(NDIS_HANDLE, UINT Length, ULONG Tag, EX_POOL_PRIORITY)`.
const NDIS: ArgSlots = slots(None, 1, Some(2));

const fn spec(
    name: &'static str,
    kind: AllocatorKind,
    x64: ArgSlots,
    x86: ArgSlots,
    implied_paged: Option<bool>,
) -> AllocatorSpec {
    AllocatorSpec {
        name,
        kind,
        x64,
        x86,
        implied_paged,
    }
}

/// Every allocator export recognised, by name.
pub const ALLOCATOR_SPECS: &[AllocatorSpec] = {
    use AllocatorKind::*;
    &[
        spec("ExAllocatePool", Untagged, TYPE_SIZE, TYPE_SIZE, None),
        spec(
            "ExAllocatePoolWithQuota",
            Untagged,
            TYPE_SIZE,
            TYPE_SIZE,
            None,
        ),
        spec(
            "ExAllocatePoolWithTag",
            PoolType,
            TYPE_SIZE_TAG,
            TYPE_SIZE_TAG,
            None,
        ),
        spec(
            "ExAllocatePoolWithQuotaTag",
            PoolType,
            TYPE_SIZE_TAG,
            TYPE_SIZE_TAG,
            None,
        ),
        spec(
            "ExAllocatePoolWithTagPriority",
            PoolType,
            TYPE_SIZE_TAG,
            TYPE_SIZE_TAG,
            None,
        ),
        spec("ExAllocatePool2", PoolFlags, TYPE_SIZE_TAG, FLAGS_X86, None),
        spec("ExAllocatePool3", PoolFlags, TYPE_SIZE_TAG, FLAGS_X86, None),
        spec(
            "ExInitializeNPagedLookasideList",
            Lookaside,
            LOOKASIDE,
            LOOKASIDE,
            Some(false),
        ),
        spec(
            "ExInitializePagedLookasideList",
            Lookaside,
            LOOKASIDE,
            LOOKASIDE,
            Some(true),
        ),
        spec(
            "ExInitializeLookasideListEx",
            Lookaside,
            LOOKASIDE_EX,
            LOOKASIDE_EX,
            None,
        ),
        // ndis.h: "allocates memory from the non-paged pool".
        spec(
            "NdisAllocateMemoryWithTagPriority",
            Ndis,
            NDIS,
            NDIS,
            Some(false),
        ),
    ]
};

/// nt's pool allocators by export name, with their kinds (the table callers have used).
pub const ALLOCATORS: &[(&str, AllocatorKind)] = &[
    ("ExAllocatePool", AllocatorKind::Untagged),
    ("ExAllocatePoolWithQuota", AllocatorKind::Untagged),
    ("ExAllocatePoolWithTag", AllocatorKind::PoolType),
    ("ExAllocatePoolWithQuotaTag", AllocatorKind::PoolType),
    ("ExAllocatePoolWithTagPriority", AllocatorKind::PoolType),
    ("ExAllocatePool2", AllocatorKind::PoolFlags),
    ("ExAllocatePool3", AllocatorKind::PoolFlags),
    ("ExInitializeNPagedLookasideList", AllocatorKind::Lookaside),
    ("ExInitializePagedLookasideList", AllocatorKind::Lookaside),
    ("ExInitializeLookasideListEx", AllocatorKind::Lookaside),
    ("NdisAllocateMemoryWithTagPriority", AllocatorKind::Ndis),
];

/// The allocator an imported function name is, if it is one.
pub fn allocator_named(name: &str) -> Option<Allocator> {
    spec_named(name).map(AllocatorSpec::allocator)
}

/// The argument layout of the allocator an imported function name is.
pub fn spec_named(name: &str) -> Option<&'static AllocatorSpec> {
    ALLOCATOR_SPECS.iter().find(|s| s.name == name)
}

/// The layout of an allocator: by its name, else (an allocator made by a caller of the older
/// API) the first one of its kind.
pub fn spec_of(a: Allocator) -> &'static AllocatorSpec {
    spec_named(a.name)
        .or_else(|| ALLOCATOR_SPECS.iter().find(|s| s.kind == a.kind))
        .unwrap_or(&ALLOCATOR_SPECS[0])
}

/// Kernel data a driver may import whose value the scan understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownData {
    /// `ExDefaultNonPagedPoolType`: a nonpaged POOL_TYPE (NonPagedPoolNx or NonPagedPool).
    DefaultNonPagedPoolType,
    /// `ExDefaultMdlProtection`: MDL mapping flags, never a pool type.
    DefaultMdlProtection,
}

/// What an import slot of a module holds, as far as the scan is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportUse {
    Allocator(Allocator),
    Data(KnownData),
}

/// What an imported name is to the scan, if anything.
pub fn import_use(name: &str) -> Option<ImportUse> {
    match name {
        "ExDefaultNonPagedPoolType" => Some(ImportUse::Data(KnownData::DefaultNonPagedPoolType)),
        "ExDefaultMdlProtection" => Some(ImportUse::Data(KnownData::DefaultMdlProtection)),
        _ => allocator_named(name).map(ImportUse::Allocator),
    }
}

/// POOL_FLAGS bits (wdm.h) that say which pool ExAllocatePool2 takes.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
const POOL_FLAG_NON_PAGED_EXECUTE: u64 = 0x80;
const POOL_FLAG_PAGED: u64 = 0x100;
/// Every POOL_TYPE value, modifiers included (POOL_ZERO_ALLOCATION 0x400, POOL_NX_ALLOCATION
/// 0x200, POOL_COLD_ALLOCATION 0x100, POOL_RAISE_IF_ALLOCATION_FAILURE 0x10, quota 8,
/// session 0x20), is below this.
const POOL_TYPE_LIMIT: u64 = 0x800;

/// Whether a POOL_TYPE value is one: bit 0 is the paged bit (BASE_POOL_TYPE_MASK).
pub fn pool_type_paged(v: u64) -> Option<bool> {
    (v < POOL_TYPE_LIMIT).then_some(v & 1 == 1)
}

/// Which pool a pool-type (or, for ExAllocatePool2, flags) argument asks for.
pub fn paged_of(kind: AllocatorKind, v: u64) -> Option<bool> {
    match kind {
        AllocatorKind::PoolFlags => {
            let paged = v & POOL_FLAG_PAGED != 0;
            let nonpaged = v & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE) != 0;
            match (paged, nonpaged) {
                (true, false) => Some(true),
                (false, true) => Some(false),
                _ => None,
            }
        }
        _ => pool_type_paged(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allocator_has_a_layout_and_the_old_table_agrees() {
        for (name, kind) in ALLOCATORS {
            let s = spec_named(name).unwrap();
            assert_eq!(s.kind, *kind, "{name}");
            assert_eq!(s.x64.tag.is_none(), *kind == AllocatorKind::Untagged);
            assert!(s.x64.pool.is_some() || s.implied_paged.is_some(), "{name}");
        }
        assert_eq!(ALLOCATORS.len(), ALLOCATOR_SPECS.len());
    }

    /// wdm.h: NonPagedPool 0, PagedPool 1, NonPagedPoolNx 0x200, PagedPoolSession 0x21;
    /// ExAllocatePoolZero ORs POOL_ZERO_ALLOCATION (0x400) into the type.
    #[test]
    fn pool_types_and_flags() {
        let t = AllocatorKind::PoolType;
        assert_eq!(paged_of(t, 0), Some(false));
        assert_eq!(paged_of(t, 1), Some(true));
        assert_eq!(paged_of(t, 0x200), Some(false));
        assert_eq!(paged_of(t, 0x21), Some(true));
        assert_eq!(paged_of(t, 0x401), Some(true));
        assert_eq!(paged_of(t, 0x6d656555), None);
        let f = AllocatorKind::PoolFlags;
        assert_eq!(paged_of(f, 0x40), Some(false));
        assert_eq!(paged_of(f, 0x102), Some(true));
        assert_eq!(paged_of(f, 0x140), None);
        assert_eq!(paged_of(f, 0x2), None);
    }
}
