//! The pool allocation failure counters each kernel keeps, read where its symbol files put
//! them (only those that exist; no kernel keeps all):
//!
//! - `ExPoolFailures` (ULONG; every allocation ExAllocatePoolWithTag could not satisfy): in
//!   all five symbol files (XP, 7601, 17763, 19041, 20348).
//! - `MmPoolFailures[MmMaximumPoolType][MmMaximumPoolPriority]` and
//!   `MmPoolFailureReasons[MmMaximumFailureReason]` (ULONG arrays, declared with their enums
//!   in the Server 2003 memory manager's allocpag.c as published in public repositories): XP
//!   and 7601 globals (the symbol files' addresses leave 0x24 and at least 0x2c bytes for
//!   them). 17763 keeps the same two in `MiState.Pools` (`_MI_POOL_STATE.PoolFailures`, a 3 x 3
//!   ULONG array, and `PoolFailureReasons`, an `_MI_POOL_FAILURE_REASONS` whose eleven ULONG
//!   fields carry the enum's names); 19041 and 20348 no longer do.
//! - `MiSystemPartition.Vp.ChargeCommitmentFailures[4]` (17763, 19041, 20348): commit charges
//!   refused.
//!
//! Session pool's `MM_SESSION_SPACE.SessionPoolAllocationFailures[4]` is read per session
//! (`vm_sessions`).

use super::vm_read::{label, Step, Vars};
use serde::Serialize;

/// `MM_POOL_TYPES` and `MM_POOL_PRIORITIES`: the two dimensions of `MmPoolFailures`.
const POOL_TYPES: [&str; 3] = ["NonPagedPool", "PagedPool", "SessionPagedPool"];
const PRIORITIES: [&str; 3] = ["HighPriority", "NormalPriority", "LowPriority"];
/// `MM_POOL_FAILURE_REASONS`, in order.
pub const REASONS: [&str; 11] = [
    "NonPagedNoPtes",
    "PriorityTooLow",
    "NonPagedNoPagesAvailable",
    "PagedNoPtes",
    "SessionPagedNoPtes",
    "PagedNoPagesAvailable",
    "SessionPagedNoPagesAvailable",
    "PagedNoCommit",
    "SessionPagedNoCommit",
    "NonPagedNoResidentAvailable",
    "NonPagedNoCommit",
];

/// One failure counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    /// `ExPoolFailures`, `PagedPool/NormalPriority`, a reason (`PagedNoCommit`),
    /// `ChargeCommitmentFailures[0]`.
    pub counter: String,
    pub count: u64,
    /// Where it was read: `profile:MmPoolFailureReasons[7]`, `profile:MiState.Pools.PoolFailures[1][1]`.
    pub source: String,
}

/// Every failure counter this kernel keeps.
pub fn failures(v: &Vars) -> Vec<FailureCount> {
    let mut out = Vec::new();
    if let Some(n) = v.ulong("ExPoolFailures") {
        push(
            &mut out,
            "ExPoolFailures",
            n,
            "profile:ExPoolFailures".into(),
        );
    }
    let pools: [Step; 1] = [("_MI_SYSTEM_INFORMATION", "Pools")];
    let by_type = v
        .ctx
        .global("MmPoolFailures")
        .map(|a| (a, "MmPoolFailures".into()));
    let by_type = by_type.or_else(|| {
        let path = [pools[0], ("_MI_POOL_STATE", "PoolFailures")];
        Some((v.field_addr("MiState", &path)?, label("MiState", &path)))
    });
    if let Some((at, name)) = by_type {
        by_pool_and_priority(v, at, &name, &mut out);
    }
    reasons(v, &pools, &mut out);
    commit_failures(v, &mut out);
    out
}

fn push(out: &mut Vec<FailureCount>, counter: &str, count: u32, source: String) {
    out.push(FailureCount {
        counter: counter.into(),
        count: u64::from(count),
        source,
    });
}

/// The 3 x 3 ULONG array of failures by pool type and priority at `at`.
fn by_pool_and_priority(v: &Vars, at: u64, name: &str, out: &mut Vec<FailureCount>) {
    for (t, pool) in POOL_TYPES.iter().enumerate() {
        for (p, prio) in PRIORITIES.iter().enumerate() {
            let va = at + 4 * (t * PRIORITIES.len() + p) as u64;
            if let Ok(n) = v.mem.read_u32(va) {
                push(
                    out,
                    &format!("{pool}/{prio}"),
                    n,
                    format!("profile:{name}[{t}][{p}]"),
                );
            }
        }
    }
}

/// The failure reasons: XP/7601's array in enum order, else 17763's named structure fields.
fn reasons(v: &Vars, pools: &[Step], out: &mut Vec<FailureCount>) {
    if let Some(at) = v.ctx.global("MmPoolFailureReasons") {
        for (i, r) in REASONS.iter().enumerate() {
            if let Ok(n) = v.mem.read_u32(at + 4 * i as u64) {
                push(out, r, n, format!("profile:MmPoolFailureReasons[{i}]"));
            }
        }
        return;
    }
    let path = [pools[0], ("_MI_POOL_STATE", "PoolFailureReasons")];
    let (Some(at), Some(p)) = (v.field_addr("MiState", &path), v.ctx.profile) else {
        return;
    };
    for r in REASONS {
        let Some(off) = p.offset("_MI_POOL_FAILURE_REASONS", r) else {
            continue;
        };
        if let Ok(n) = v.mem.read_u32(at + off) {
            push(
                out,
                r,
                n,
                format!("profile:{}.{r}", label("MiState", &path)),
            );
        }
    }
}

/// Windows 10's refused commit charges (`_MI_VISIBLE_PARTITION.ChargeCommitmentFailures`).
fn commit_failures(v: &Vars, out: &mut Vec<FailureCount>) {
    let path = [
        ("_MI_PARTITION", "Vp"),
        ("_MI_VISIBLE_PARTITION", "ChargeCommitmentFailures"),
    ];
    let Some(at) = v.field_addr("MiSystemPartition", &path) else {
        return;
    };
    for i in 0..4u64 {
        if let Ok(n) = v.mem.read_u32(at + 4 * i) {
            let src = format!("profile:{}[{i}]", label("MiSystemPartition", &path));
            push(out, &format!("ChargeCommitmentFailures[{i}]"), n, src);
        }
    }
}
