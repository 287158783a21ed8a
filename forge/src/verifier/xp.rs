//! XP: the verified driver's `_MI_VERIFIER_DRIVER_ENTRY` on `MiSuspectDriverList`, with its
//! `PoolHash` array (XP SP1 verifier.c): entries are nonpaged `'MmLd'` allocations with the
//! name right after the structure; the array is a nonpaged `'Vepp'` allocation grown 16 slots
//! at a time up to a page's worth (256), then a page at a time; free slots chain by index
//! from `PoolHashFree` to 0xFFFFFFFF; a tracked allocation ends with `{ListIndex, Verifier}`.
//! A second entry names a driver configured for verification that never loaded (Flags 0).

use super::{Counters, Freed, Tracked, VerifiedImage, BACK_POINTER};
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use serde_json::{json, Value};

const E: &str = "_MI_VERIFIER_DRIVER_ENTRY";
const SIGNATURE: u32 = 0x9876_1940;
const FREE_END: u32 = 0xffff_ffff;

pub(super) fn plant(
    sys: &mut System,
    image: &VerifiedImage,
    tracked: &[Tracked],
    freed: &[Freed],
    c: &Counters,
) -> Result<Value, ForgeError> {
    let entry = driver_entry(sys, image.name)?;
    let other = driver_entry(sys, "notloaded.sys")?;
    let m = |sys: &System, f: &str| sys.offset(E, f);
    sys.machine.write_u32(entry + m(sys, "Flags")?, 1)?;
    sys.machine.write_u32(entry + m(sys, "Loads")?, 1)?;
    sys.machine
        .write_ptr(entry + m(sys, "StartAddress")?, image.base)?;
    sys.machine
        .write_ptr(entry + m(sys, "EndAddress")?, image.base + image.size)?;
    c.write(sys, E, entry)?;
    let (hash, size) = pool_hash(sys, entry, tracked, freed)?;
    let head = sys.global("MiSuspectDriverList")?;
    let links = m(sys, "Links")?;
    sys.link_ring(head, &[other + links, entry + links])?;
    Ok(json!({ "entry": hex(entry), "pool_hash": { "address": hex(hash), "slots": size } }))
}

/// A `_MI_VERIFIER_DRIVER_ENTRY` for `name` (signature set, nothing else).
fn driver_entry(sys: &mut System, name: &str) -> Result<u64, ForgeError> {
    let size = sys.type_size(E)?;
    let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let entry = sys.alloc_nonpaged(size + utf16.len() as u64, b"MmLd")?;
    sys.machine.write(entry + size, &utf16)?;
    let bn = entry + sys.offset(E, "BaseName")?;
    sys.machine.write_u16(bn, utf16.len() as u16)?;
    sys.machine.write_u16(bn + 2, utf16.len() as u16)?;
    let buf = sys.offset("_UNICODE_STRING", "Buffer")?;
    sys.machine.write_ptr(bn + buf, entry + size)?;
    sys.machine
        .write_u32(entry + sys.offset(E, "Signature")?, SIGNATURE)?;
    Ok(entry)
}

/// Slots for `used` entries as `ViReservePoolAllocation` grows the array: 16 at a time below
/// a page's worth, then a page's worth at a time; always at least one free slot left.
fn hash_size(used: u64, slot: u64) -> u64 {
    let per_page = 0x1000 / slot;
    let mut n = 0;
    while n <= used {
        n += if n >= per_page { per_page } else { 16 };
    }
    n
}

/// The `PoolHash` array: tracked allocations in slots 0.., the freed ones after them (their
/// first field now a free-list index), every other slot free.
fn pool_hash(
    sys: &mut System,
    entry: u64,
    tracked: &[Tracked],
    freed: &[Freed],
) -> Result<(u64, u64), ForgeError> {
    let es = sys.type_size("_VI_POOL_ENTRY")?;
    let size = hash_size((tracked.len() + freed.len()) as u64, es);
    let hash = sys.alloc_nonpaged(size * es, b"Vepp")?;
    let f = |sys: &System, n: &str| sys.offset("_VI_POOL_ENTRY_INUSE", n);
    let (va, caller, bytes, tag) = (
        f(sys, "VirtualAddress")?,
        f(sys, "CallingAddress")?,
        f(sys, "NumberOfBytes")?,
        f(sys, "Tag")?,
    );
    let index = sys.offset("_MI_VERIFIER_POOL_HEADER", "ListIndex")?;
    let verifier = sys.offset("_MI_VERIFIER_POOL_HEADER", "Verifier")?;
    for (i, t) in tracked.iter().enumerate() {
        let s = hash + i as u64 * es;
        sys.machine.write_ptr(s + va, t.address)?;
        sys.machine.write_ptr(s + caller, t.call.return_address)?;
        sys.machine.write_ptr(s + bytes, t.charged)?;
        sys.machine.write_u32(s + tag, u32::from_le_bytes(t.tag))?;
        let bp = t.address + t.charged - BACK_POINTER;
        sys.machine.write_u32(bp + index, i as u32)?;
        sys.machine.write_ptr(bp + verifier, entry)?;
    }
    let first_free = tracked.len() as u64;
    for (k, fr) in freed.iter().enumerate() {
        let s = hash + (first_free + k as u64) * es;
        sys.machine.write_ptr(s + caller, fr.call.return_address)?;
        sys.machine.write_ptr(s + bytes, fr.charged)?;
        sys.machine.write_u32(s + tag, u32::from_le_bytes(fr.tag))?;
    }
    // The free list: every slot from `first_free` on, in order.
    for i in first_free..size {
        let next = if i + 1 < size {
            (i + 1) as u32
        } else {
            FREE_END
        };
        sys.machine.write_u32(hash + i * es, next)?;
    }
    let m = |sys: &System, n: &str| sys.offset(E, n);
    sys.machine.write_ptr(entry + m(sys, "PoolHash")?, hash)?;
    sys.machine
        .write_u32(entry + m(sys, "PoolHashSize")?, size as u32)?;
    sys.machine
        .write_u32(entry + m(sys, "PoolHashFree")?, first_free as u32)?;
    Ok((hash, size))
}

#[cfg(test)]
mod tests {
    use super::hash_size;

    #[test]
    fn pool_hash_grows_as_vireservepoolallocation_grows_it() {
        assert_eq!(hash_size(0, 16), 16);
        assert_eq!(hash_size(15, 16), 16);
        assert_eq!(hash_size(16, 16), 32, "one slot is always left free");
        assert_eq!(hash_size(52, 16), 64);
        assert_eq!(hash_size(256, 16), 512);
        assert_eq!(hash_size(600, 16), 768);
    }
}
