//! POOL_TYPE decoding. The bits (wdm.h / WRK pool.h): bit 0 paged (BASE_POOL_TYPE_MASK),
//! 2 must-succeed, 4 cache-aligned, 8 quota charged (POOL_QUOTA_MASK), 0x20 session
//! (SESSION_POOL_MASK), 0x40 verifier, 0x200 no-execute.
//!
//! A classic POOL_HEADER stores `POOL_TYPE + 1` in its PoolType field, so that 0 means free
//! (WRK `ExAllocatePoolWithTag`, and Volatility 3's `is_free_pool`/`is_paged_pool` read it the
//! same way). The big page table stores the POOL_TYPE itself.

use serde::Serialize;

pub const BASE_POOL_TYPE_MASK: u32 = 1;
pub const POOL_QUOTA_MASK: u32 = 8;
pub const SESSION_POOL_MASK: u32 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Free,
    Paged,
    Nonpaged,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Free => "free",
            PoolKind::Paged => "paged",
            PoolKind::Nonpaged => "nonpaged",
        }
    }
}

/// A decoded pool type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolType {
    /// The POOL_TYPE value (for a header: the field minus one; 0 for a free block).
    pub raw: u32,
    pub kind: PoolKind,
    pub session: bool,
    /// Charged to a process's quota (ProcessBilled is meaningful).
    pub quota: bool,
}

impl PoolType {
    /// From a POOL_TYPE value, as the big page table stores it.
    pub fn from_pool_type(value: u32) -> PoolType {
        PoolType {
            raw: value,
            kind: if value & BASE_POOL_TYPE_MASK != 0 { PoolKind::Paged } else { PoolKind::Nonpaged },
            session: value & SESSION_POOL_MASK != 0,
            quota: value & POOL_QUOTA_MASK != 0,
        }
    }

    /// From a POOL_HEADER's PoolType field (`POOL_TYPE + 1`, 0 = free).
    pub fn from_header_field(field: u32) -> PoolType {
        match field.checked_sub(1) {
            None => PoolType { raw: 0, kind: PoolKind::Free, session: false, quota: false },
            Some(v) => PoolType::from_pool_type(v),
        }
    }

    pub fn is_free(&self) -> bool {
        self.kind == PoolKind::Free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_field_is_type_plus_one() {
        // wdm.h: NonPagedPool 0, PagedPool 1, PagedPoolSession 33, NonPagedPool|quota 8.
        assert!(PoolType::from_header_field(0).is_free());
        assert_eq!(PoolType::from_header_field(1).kind, PoolKind::Nonpaged);
        assert_eq!(PoolType::from_header_field(2).kind, PoolKind::Paged);
        let s = PoolType::from_header_field(34);
        assert_eq!((s.kind, s.session, s.quota), (PoolKind::Paged, true, false));
        let q = PoolType::from_header_field(9);
        assert_eq!((q.kind, q.quota), (PoolKind::Nonpaged, true));
        // Big pages store the type itself: NonPagedPoolNx (0x200) is nonpaged.
        assert_eq!(PoolType::from_pool_type(0x200).kind, PoolKind::Nonpaged);
        assert_eq!(PoolType::from_pool_type(1).kind, PoolKind::Paged);
    }
}
