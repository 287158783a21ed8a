//! Driver Verifier pool tracking, planted with the profile's own types: what a kernel with
//! pool tracking on (`MmVerifierData.Level & 8`) keeps for one verified driver, so that a
//! reader can list its outstanding allocations with their callers as `!verifier 3` does.
//!
//! - [`allocate`] is the verifier's allocation wrapper (XP SP1 verifier.c,
//!   `VeAllocatePoolWithTagPriority` / `ViPostPoolAllocation`): the request is rounded to 4
//!   bytes and enlarged by the 8-byte back-pointer header; the bytes recorded are the block's
//!   usable bytes for a small block (`EX_REAL_POOL_USAGE(n) - POOL_OVERHEAD`) and
//!   `EX_REAL_POOL_USAGE(n)` for a big one; the back-pointer sits in the recorded bytes' last 8.
//!   Vista+ is assumed to do the same (the decompiled x64 wrapper adds the 8 bytes; its exact
//!   rounding is unconfirmed).
//! - [`xp`]: `MiSuspectDriverList` with the driver's `_MI_VERIFIER_DRIVER_ENTRY` and its
//!   `PoolHash` array; [`targets`]: `ViTargetDriversAvl`, `_VF_TARGET_VERIFIED_DRIVER_DATA`
//!   and the `'Vepp'` tracker pages.
//!
//! Sources and what is unconfirmed: docs/pool.md "Driver Verifier pool tracking".

mod targets;
mod xp;

use crate::pool::PoolKind;
use crate::system::{SiteCall, System};
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Value};

/// `MmVerifierData.Level` (and `VfRuleClasses` on 17763+): IRQL checking (0x2), pool tracking
/// (0x8), I/O verification (0x10). No special pool (0x1): it would move the allocations.
pub const LEVEL: u32 = 0x1a;
/// Bytes of the back-pointer header the verifier adds to each tracked allocation
/// (`_MI_VERIFIER_POOL_HEADER` / `_VI_VERIFIER_POOL_HEADER`, 8 bytes on every kernel here).
pub const BACK_POINTER: u64 = 8;

/// One allocation the verifier tracks, as planted.
#[derive(Debug, Clone, Copy)]
pub struct Tracked {
    /// `VirtualAddress`: what the driver got.
    pub address: u64,
    /// The block in the truth's `blocks` (POOL_HEADER, or the big allocation's page).
    pub block: u64,
    /// `NumberOfBytes` as the verifier records it.
    pub charged: u64,
    pub tag: [u8; 4],
    pub kind: PoolKind,
    pub call: SiteCall,
}

/// An allocation made and freed since: its tracker entry is free again (XP: a free slot;
/// Vista+: `NumberOfBytes | 1`), its other fields stale.
#[derive(Debug, Clone, Copy)]
pub struct Freed {
    pub tag: [u8; 4],
    pub charged: u64,
    pub kind: PoolKind,
    pub call: SiteCall,
}

/// The verified image.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedImage<'a> {
    pub name: &'a str,
    pub base: u64,
    pub size: u64,
}

/// Allocates `request` bytes of `kind` pool for a verified driver's call at `call`, as the
/// verifier's wrapper does; the back-pointer is written later, by [`plant`].
pub fn allocate(
    sys: &mut System,
    kind: PoolKind,
    request: u64,
    tag: &[u8; 4],
    call: SiteCall,
) -> Result<Tracked, ForgeError> {
    let n = request.div_ceil(4) * 4 + BACK_POINTER;
    let address = match kind {
        PoolKind::Paged => sys.alloc_paged(n, tag)?,
        PoolKind::NonPaged => sys.alloc_nonpaged(n, tag)?,
    };
    let region = match kind {
        PoolKind::Paged => &sys.paged,
        PoolKind::NonPaged => &sys.nonpaged,
    };
    let h = region.header_size();
    let b = region
        .allocations
        .last()
        .filter(|b| b.big || b.address + h == address)
        .ok_or_else(|| ForgeError::Internal("verifier: allocation not recorded".into()))?;
    let charged = if b.big {
        (n + h).div_ceil(h) * h
    } else {
        b.size - h
    };
    if b.big && charged > b.size {
        return Err(ForgeError::Internal(format!(
            "verifier: {request} bytes leave no room for the back-pointer in the big allocation"
        )));
    }
    Ok(Tracked {
        address,
        block: b.address,
        charged,
        tag: *tag,
        kind,
        call,
    })
}

/// The kernel's counters for the tracked allocations: current from `tracked`, peaks as if
/// the `freed` ones had all been outstanding at once with them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    /// [paged, nonpaged] each.
    current: [u64; 2],
    peak: [u64; 2],
    bytes: [u64; 2],
    peak_bytes: [u64; 2],
}

impl Counters {
    fn new(tracked: &[Tracked], freed: &[Freed]) -> Counters {
        let i = |k: PoolKind| usize::from(k == PoolKind::NonPaged);
        let mut c = Counters::default();
        for t in tracked {
            c.current[i(t.kind)] += 1;
            c.bytes[i(t.kind)] += t.charged;
        }
        c.peak = c.current;
        c.peak_bytes = c.bytes;
        for f in freed {
            c.peak[i(f.kind)] += 1;
            c.peak_bytes[i(f.kind)] += f.charged;
        }
        c
    }

    /// (field, value, is a byte count) in declaration order.
    fn fields(&self) -> [(&'static str, u64, bool); 8] {
        [
            ("CurrentPagedPoolAllocations", self.current[0], false),
            ("CurrentNonPagedPoolAllocations", self.current[1], false),
            ("PeakPagedPoolAllocations", self.peak[0], false),
            ("PeakNonPagedPoolAllocations", self.peak[1], false),
            ("PagedBytes", self.bytes[0], true),
            ("NonPagedBytes", self.bytes[1], true),
            ("PeakPagedBytes", self.peak_bytes[0], true),
            ("PeakNonPagedBytes", self.peak_bytes[1], true),
        ]
    }

    /// Writes the eight counters into the structure of type `ty` at `at` (ULONG counts,
    /// SIZE_T bytes).
    fn write(&self, sys: &mut System, ty: &str, at: u64) -> Result<(), ForgeError> {
        for (f, v, bytes) in self.fields() {
            let o = at + sys.offset(ty, f)?;
            if bytes {
                sys.machine.write_ptr(o, v)?;
            } else {
                sys.machine.write_u32(o, v as u32)?;
            }
        }
        Ok(())
    }

    fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (f, v, _) in self.fields() {
            m.insert(snake(f), json!(v));
        }
        Value::Object(m)
    }
}

/// `CurrentPagedPoolAllocations` -> `current_paged_allocations` (the reader's names).
fn snake(field: &str) -> String {
    let mut s = String::new();
    for (i, c) in field
        .replace("PoolAllocations", "Allocations")
        .chars()
        .enumerate()
    {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s.replace("non_paged", "nonpaged")
}

/// Plants pool tracking for `image` with `tracked` outstanding allocations and `freed` ones
/// (entries free again): `MmVerifierData`, `VfRuleClasses`, and the kernel's per-driver
/// structures (XP or Vista+, by the profile). Returns the truth's `verifier` member.
pub fn plant(
    sys: &mut System,
    image: &VerifiedImage,
    tracked: &[Tracked],
    freed: &[Freed],
    untagged: u64,
) -> Result<Value, ForgeError> {
    let c = Counters::new(tracked, freed);
    let vd = sys.global("MmVerifierData")?;
    const V: &str = "_MM_DRIVER_VERIFIER_DATA";
    sys.machine.write_u32(vd + sys.offset(V, "Level")?, LEVEL)?;
    let attempted = (tracked.len() + freed.len()) as u32;
    for (f, v) in [
        ("AllocationsAttempted", attempted),
        ("AllocationsSucceeded", attempted),
        ("AllocationsWithNoTag", untagged as u32),
        ("Loads", 1),
    ] {
        sys.machine.write_u32(vd + sys.offset(V, f)?, v)?;
    }
    c.write(sys, V, vd)?;
    let rule_classes = match sys.global("VfRuleClasses") {
        Ok(at) => {
            sys.machine.write_u32(at, LEVEL)?;
            Some(LEVEL)
        }
        Err(_) => None,
    };
    if let Ok(at) = sys.global("VerifierIsTrackingPool") {
        sys.machine.write_u8(at, 1)?;
    }
    let (format, kernel) = if sys.profile.global("MiSuspectDriverList").is_some() {
        ("pool-hash", xp::plant(sys, image, tracked, freed, &c)?)
    } else {
        (
            "tracker-pages",
            targets::plant(sys, image, tracked, freed, &c)?,
        )
    };
    let mut driver = json!({
        "module": image.name,
        "image_base": hex(image.base),
        "image_size": image.size,
        "entries": tracked.iter().map(entry_json).collect::<Vec<_>>(),
        "freed_entries": freed.len(),
    });
    merge(&mut driver, c.json());
    merge(&mut driver, kernel);
    Ok(json!({
        "level": LEVEL,
        "rule_classes": rule_classes,
        "format": format,
        "totals": c.json(),
        "drivers": [driver],
    }))
}

fn entry_json(t: &Tracked) -> Value {
    json!({
        "address": hex(t.address), "size": t.charged, "tag": crate::poolstate::tag_str(&t.tag),
        "caller": hex(t.call.return_address), "site": hex(t.call.call),
        "block": hex(t.block), "pool_type": t.kind.as_str(),
    })
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}
