//! POOL_TYPE decoding. The bits (wdm.h / WRK pool.h): bit 0 paged (BASE_POOL_TYPE_MASK),
//! 2 must-succeed, 4 cache-aligned, 8 quota charged (POOL_QUOTA_MASK), 0x20 session
//! (SESSION_POOL_MASK), 0x40 verifier, 0x200 no-execute.
//!
//! A classic POOL_HEADER's PoolType field is 0 for a free block. Otherwise, before Vista (XP,
//! 2003) it holds `POOL_TYPE + 1` (WRK `ExAllocatePoolWithTag`: nonpaged 1, paged 2); from
//! Vista on it holds the POOL_TYPE with bit 1 set as the in-use mark (nonpaged 2, paged 3:
//! paged is odd, nonpaged even and non-zero). Volatility 3's POOL_HEADER and POOL_HEADER_VISTA
//! (`is_paged_pool`/`is_nonpaged_pool`) read them the same way. The big page table stores the
//! POOL_TYPE itself.

use serde::{Deserialize, Serialize};

/// Which walk found a block: a classic pool page, the big page table, or the Windows 10
/// segment heap's LFH or VS subsegments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockSource {
    Classic,
    Big,
    Lfh,
    Vs,
}

impl BlockSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockSource::Classic => "classic",
            BlockSource::Big => "big",
            BlockSource::Lfh => "lfh",
            BlockSource::Vs => "vs",
        }
    }
}

impl std::fmt::Display for BlockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const BASE_POOL_TYPE_MASK: u32 = 1;
pub const POOL_QUOTA_MASK: u32 = 8;
pub const SESSION_POOL_MASK: u32 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Free,
    Paged,
    Nonpaged,
    /// Not recorded (an XP big page entry outside the known pool ranges).
    Unknown,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Free => "free",
            PoolKind::Paged => "paged",
            PoolKind::Nonpaged => "nonpaged",
            PoolKind::Unknown => "unknown",
        }
    }
}

/// A decoded pool type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolType {
    /// The value as stored: a header's PoolType field, or a big page entry's POOL_TYPE.
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
            kind: if value & BASE_POOL_TYPE_MASK != 0 {
                PoolKind::Paged
            } else {
                PoolKind::Nonpaged
            },
            session: value & SESSION_POOL_MASK != 0,
            quota: value & POOL_QUOTA_MASK != 0,
        }
    }

    /// From a POOL_HEADER's PoolType field; `pre_vista` selects the XP/2003 `type + 1` rule.
    pub fn from_header_field(field: u32, pre_vista: bool) -> PoolType {
        let free = PoolType {
            raw: 0,
            kind: PoolKind::Free,
            session: false,
            quota: false,
        };
        let value = match (field, pre_vista) {
            (0, _) => return free,
            (f, true) => f - 1,
            (f, false) => f,
        };
        PoolType {
            raw: field,
            ..PoolType::from_pool_type(value)
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
    fn header_field_rules_before_and_after_vista() {
        // XP (WRK): type + 1. NonPagedPool 0 -> 1, PagedPool 1 -> 2, PagedPoolSession 33 -> 34,
        // NonPagedPool|quota 8 -> 9.
        assert!(PoolType::from_header_field(0, true).is_free());
        assert_eq!(
            PoolType::from_header_field(1, true).kind,
            PoolKind::Nonpaged
        );
        assert_eq!(PoolType::from_header_field(2, true).kind, PoolKind::Paged);
        let s = PoolType::from_header_field(34, true);
        assert_eq!(
            (s.kind, s.session, s.quota, s.raw),
            (PoolKind::Paged, true, false, 34)
        );
        let q = PoolType::from_header_field(9, true);
        assert_eq!((q.kind, q.quota), (PoolKind::Nonpaged, true));
        // Vista+ (Volatility 3 POOL_HEADER_VISTA): paged odd, nonpaged even and non-zero.
        assert!(PoolType::from_header_field(0, false).is_free());
        assert_eq!(
            PoolType::from_header_field(2, false).kind,
            PoolKind::Nonpaged
        );
        assert_eq!(PoolType::from_header_field(3, false).kind, PoolKind::Paged);
        let q = PoolType::from_header_field(0x0b, false);
        assert_eq!((q.kind, q.quota), (PoolKind::Paged, true));
        let s = PoolType::from_header_field(0x22, false);
        assert_eq!((s.kind, s.session), (PoolKind::Nonpaged, true));
        // Big pages store the type itself: NonPagedPoolNx (0x200) is nonpaged.
        assert_eq!(PoolType::from_pool_type(0x200).kind, PoolKind::Nonpaged);
        assert_eq!(PoolType::from_pool_type(1).kind, PoolKind::Paged);
    }
}
