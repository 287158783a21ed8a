//! The kernel's list of recently unloaded drivers: `MmUnloadedDrivers` points at an array of
//! MI_UNLOADED_DRIVERS (50) `_UNLOADED_DRIVERS` entries in nonpaged pool, filled in unload
//! order; `MmLastUnloadedDriver` (ULONG) is the index of the next entry to write, i.e. the
//! count until the ring wraps.
//!
//! The entry is not in the kernel's public symbols: its layout is Name (UNICODE_STRING),
//! StartAddress, EndAddress (pointers), CurrentTime (FILETIME of the unload), as Volatility 3's
//! `unloadedmodules-x64.json` / `-x86.json` give it (0x28 / 0x18 bytes).

use super::UnloadedTruth;
use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;

/// MI_UNLOADED_DRIVERS: entries in the array.
pub const CAPACITY: u64 = 50;

/// One unloaded driver to plant.
#[derive(Debug, Clone)]
pub struct Unloaded {
    pub name: &'static str,
    pub start: u64,
    pub size: u64,
    /// How long before the crash it was unloaded.
    pub seconds_before_crash: u64,
}

/// Entry layout from the profile's UNICODE_STRING and pointer size: (Start, End, CurrentTime,
/// entry size) offsets.
pub fn layout(unicode_string: u64, ptr: u64) -> (u64, u64, u64, u64) {
    let start = unicode_string;
    let time = start + 2 * ptr;
    (start, start + ptr, time, (time + 8).div_ceil(8) * 8)
}

/// Plants `list` (oldest first) and returns the truth's entries.
pub fn plant(sys: &mut System, list: &[Unloaded]) -> Result<Vec<UnloadedTruth>, ForgeError> {
    let ptr = u64::from(sys.ptr_size());
    let (start_off, end_off, time_off, size) = layout(sys.type_size("_UNICODE_STRING")?, ptr);
    let array = sys.alloc_nonpaged(CAPACITY * size, b"MmDT")?;
    let mut truth = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let entry = array + i as u64 * size;
        let buf = sys.alloc_nonpaged((d.name.len() as u64 + 1) * 2, b"MmDT")?;
        sys.write_unicode_string(entry, buf, d.name)?;
        sys.machine.write_ptr(entry + start_off, d.start)?;
        sys.machine.write_ptr(entry + end_off, d.start + d.size)?;
        let when = sys.clock.system_time - d.seconds_before_crash * 10_000_000;
        sys.machine.write_u64(entry + time_off, when)?;
        truth.push(UnloadedTruth {
            name: d.name.to_string(),
            start: hex(d.start),
            end: hex(d.start + d.size),
            unloaded_at: analyzer::report::time::filetime_to_rfc3339(when).unwrap_or_default(),
            unloaded_at_filetime: hex(when),
        });
    }
    let head = sys.global("MmUnloadedDrivers")?;
    sys.machine.write_ptr(head, array)?;
    let last = sys.global("MmLastUnloadedDriver")?;
    sys.machine.write_u32(last, list.len() as u32)?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Volatility's unloadedmodules-x64.json / -x86.json offsets.
    #[test]
    fn entry_layouts() {
        assert_eq!(layout(0x10, 8), (0x10, 0x18, 0x20, 0x28));
        assert_eq!(layout(8, 4), (8, 0xc, 0x10, 0x18));
    }
}
