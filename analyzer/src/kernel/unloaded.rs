//! The kernel's list of recently unloaded drivers: `MmUnloadedDrivers` points at an array of
//! MI_UNLOADED_DRIVERS (50) entries, a ring the kernel fills in unload order;
//! `MmLastUnloadedDriver` is the index of the next entry it will write. Each entry holds the
//! driver's name (UNICODE_STRING), its image range and the time of the unload (FILETIME).
//!
//! The entry type is not in the kernel's public symbols on x64: its offsets come from the
//! profile when it has `_UNLOADED_DRIVERS`, else from the documented layout (Name,
//! StartAddress, EndAddress, CurrentTime; 0x28 bytes on x64, 0x18 on x86), the one Volatility
//! 3's `windows.unloadedmodules` uses.
//!
//! Everything read is untrusted: the index is checked against the ring's size, names are
//! capped, and an entry that cannot be read is skipped with a warning.

use crate::memory::{MemoryError, VirtualMemory};
use crate::symbols::Profile;

/// MI_UNLOADED_DRIVERS: entries in the ring.
pub const RING_ENTRIES: u64 = 50;
/// Longest name read, in bytes (UNICODE_STRING lengths are u16; a driver name is short).
const MAX_NAME_BYTES: u16 = 512;

/// One driver the kernel remembers unloading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadedDriver {
    pub name: String,
    pub start: u64,
    pub end: u64,
    /// FILETIME of the unload.
    pub unloaded_at: u64,
}

/// Why the list could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum UnloadedError {
    #[error("the kernel's symbols lack {0}")]
    MissingSymbol(&'static str),
    #[error("cannot read {what}: {source}")]
    Memory {
        what: &'static str,
        source: MemoryError,
    },
}

/// The list, oldest unload first, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnloadedList {
    pub drivers: Vec<UnloadedDriver>,
    pub warnings: Vec<String>,
}

/// Offsets of StartAddress, EndAddress, CurrentTime and the entry size.
struct Layout {
    start: u64,
    end: u64,
    time: u64,
    size: u64,
}

fn layout(profile: &Profile, ptr: u64) -> Layout {
    let t = "_UNLOADED_DRIVERS";
    if let (Some(start), Some(end), Some(time), Some(size)) = (
        profile.offset(t, "StartAddress"),
        profile.offset(t, "EndAddress"),
        profile.offset(t, "CurrentTime"),
        profile.type_size(t),
    ) {
        return Layout {
            start,
            end,
            time,
            size,
        };
    }
    // UNICODE_STRING: two u16 and a pointer, aligned to the pointer.
    let name = profile.type_size("_UNICODE_STRING").unwrap_or(2 * ptr);
    Layout {
        start: name,
        end: name + ptr,
        time: name + 2 * ptr,
        size: (name + 2 * ptr + 8).div_ceil(8) * 8,
    }
}

/// Reads the list of the kernel at `kernel_base`.
pub fn read_unloaded(
    mem: &dyn VirtualMemory,
    kernel_base: u64,
    profile: &Profile,
) -> Result<UnloadedList, UnloadedError> {
    let sym = |name: &'static str| {
        profile
            .global(name)
            .map(|rva| kernel_base.wrapping_add(rva))
            .ok_or(UnloadedError::MissingSymbol(name))
    };
    let (array_at, next_at) = (sym("MmUnloadedDrivers")?, sym("MmLastUnloadedDriver")?);
    let mem_err = |what| move |source| UnloadedError::Memory { what, source };
    let array = mem
        .read_ptr(array_at)
        .map_err(mem_err("MmUnloadedDrivers"))?;
    let next = u64::from(
        mem.read_u32(next_at)
            .map_err(mem_err("MmLastUnloadedDriver"))?,
    );
    let mut list = UnloadedList::default();
    if array == 0 {
        return Ok(list);
    }
    let next = if next > RING_ENTRIES {
        list.warnings.push(format!(
            "MmLastUnloadedDriver is {next}, beyond the {RING_ENTRIES} entries of the list: read as {RING_ENTRIES}"
        ));
        RING_ENTRIES
    } else {
        next
    };
    let ptr = u64::from(mem.pointer_size());
    let l = layout(profile, ptr);
    // Oldest first: the entries after `next` (written before the ring last wrapped), then
    // those before it. Never-written entries have no name and are left out.
    for i in (next..RING_ENTRIES).chain(0..next) {
        let entry = array.wrapping_add(i * l.size);
        match read_entry(mem, entry, &l) {
            Ok(Some(d)) => list.drivers.push(d),
            Ok(None) => {}
            Err(e) => list
                .warnings
                .push(format!("unloaded driver entry {i} at {entry:#x}: {e}")),
        }
    }
    Ok(list)
}

fn read_entry(
    mem: &dyn VirtualMemory,
    entry: u64,
    l: &Layout,
) -> Result<Option<UnloadedDriver>, MemoryError> {
    let len = mem.read_u16(entry)?;
    if len == 0 {
        return Ok(None);
    }
    let ptr = u64::from(mem.pointer_size());
    let buffer = mem.read_ptr(entry + if ptr == 8 { 8 } else { 4 })?;
    let n = usize::from(len.min(MAX_NAME_BYTES) & !1);
    let mut raw = vec![0u8; n];
    mem.read(buffer, &mut raw)?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Ok(Some(UnloadedDriver {
        name: String::from_utf16_lossy(&units),
        start: mem.read_ptr(entry + l.start)?,
        end: mem.read_ptr(entry + l.end)?,
        unloaded_at: mem.read_u64(entry + l.time)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// x64 memory from (address, bytes) pieces; unlisted addresses are unmapped.
    struct Mem(BTreeMap<u64, u8>);

    impl VirtualMemory for Mem {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            for (i, b) in buf.iter_mut().enumerate() {
                let a = va + i as u64;
                *b = *self.0.get(&a).ok_or(MemoryError::NotMapped { va: a })?;
            }
            Ok(())
        }
        fn pointer_size(&self) -> u8 {
            8
        }
    }

    impl Mem {
        fn put(&mut self, at: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.0.insert(at + i as u64, *b);
            }
        }
    }

    const KERNEL: u64 = 0xfffff800_00000000;
    const ARRAY: u64 = 0xffffa000_00010000;

    /// An x64 profile without the entry type: the documented layout applies.
    fn bare_profile() -> Profile {
        let mut types = BTreeMap::new();
        types.insert(
            "_UNICODE_STRING".to_string(),
            crate::symbols::TypeLayout {
                size: 0x10,
                fields: BTreeMap::new(),
            },
        );
        Profile {
            pdb_name: "ntkrnlmp.pdb".into(),
            guid: "00000000-0000-0000-0000-000000000000".into(),
            age: 1,
            pointer_size: 8,
            globals: BTreeMap::new(),
            types,
            source: crate::symbols::ProfileSource::Isf("test.json".into()),
        }
    }

    fn profile() -> Profile {
        let mut p = bare_profile();
        p.globals.insert("MmUnloadedDrivers".into(), 0x100);
        p.globals.insert("MmLastUnloadedDriver".into(), 0x108);
        p
    }

    fn machine(next: u32, names: &[(u64, &str)]) -> Mem {
        let mut m = Mem(BTreeMap::new());
        m.put(KERNEL + 0x100, &ARRAY.to_le_bytes());
        m.put(KERNEL + 0x108, &next.to_le_bytes());
        m.put(ARRAY, &vec![0u8; 50 * 0x28]);
        for &(i, name) in names {
            let e = ARRAY + i * 0x28;
            let buf = 0xffffa000_00020000 + i * 0x100;
            let utf16: Vec<u8> = name.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
            m.put(e, &(utf16.len() as u16).to_le_bytes());
            m.put(e + 8, &buf.to_le_bytes());
            m.put(buf, &utf16);
            m.put(
                e + 0x10,
                &(0xfffff806_1e000000u64 + i * 0x10000).to_le_bytes(),
            );
            m.put(
                e + 0x18,
                &(0xfffff806_1e00f000u64 + i * 0x10000).to_le_bytes(),
            );
            m.put(e + 0x20, &(0x01d7_15b4_0000_0000u64 + i).to_le_bytes());
        }
        m
    }

    #[test]
    fn ring_order_and_fields() {
        // Wrapped ring: entries 2..50 are older than 0..2.
        let m = machine(2, &[(0, "new.sys"), (1, "newer.sys"), (49, "old.sys")]);
        let l = read_unloaded(&m, KERNEL, &profile()).unwrap();
        let names: Vec<&str> = l.drivers.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["old.sys", "new.sys", "newer.sys"]);
        assert_eq!(l.drivers[1].start, 0xfffff806_1e000000);
        assert_eq!(l.drivers[1].end, 0xfffff806_1e00f000);
        assert_eq!(l.drivers[2].unloaded_at, 0x01d7_15b4_0000_0001);
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn hostile_index_and_unreadable_name_are_contained() {
        let mut m = machine(0xffff_ffff, &[(0, "a.sys")]);
        // Entry 1 names a buffer that is not mapped.
        m.put(ARRAY + 0x28, &8u16.to_le_bytes());
        m.put(ARRAY + 0x30, &0xdead_0000u64.to_le_bytes());
        let l = read_unloaded(&m, KERNEL, &profile()).unwrap();
        assert_eq!(l.drivers.len(), 1);
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        // No symbols, no list.
        let bare = bare_profile();
        assert!(matches!(
            read_unloaded(&m, KERNEL, &bare),
            Err(UnloadedError::MissingSymbol("MmUnloadedDrivers"))
        ));
    }
}
