//! Drivers' DRIVER_OBJECTs and DEVICE_OBJECTs, found in the pool blocks the walk tags 'Driv'
//! and 'Devi' (XP and 7 set the protected bit: 'Dri\xf6', 'Dev\xe9'). A driver's device
//! extensions are where it keeps its per-device state: pointers from them are the driver's,
//! and a block pointing at them is tied to that driver.
//!
//! The object body is found inside its pool block by what it must hold, not by decoding the
//! object header (whose optional parts differ per version): a DRIVER_OBJECT starts with
//! `Type` 4 (IO_TYPE_DRIVER) and `Size` = sizeof(_DRIVER_OBJECT), and its DriverStart is a
//! loaded module's base; a DEVICE_OBJECT starts with `Type` 3 (IO_TYPE_DEVICE), its Size
//! covers the extension that follows it, and its DriverObject is one of those found. Offsets
//! come from the kernel's profile; without it nothing is read.

use super::modules::ModuleMap;
use crate::kernel::bytes::{ptr_at, u16_at};
use crate::memory::VirtualMemory;
use crate::pool::Tag;
use crate::symbols::Profile;

const IO_TYPE_DEVICE: u16 = 3;
const IO_TYPE_DRIVER: u16 = 4;
/// Most device objects followed per driver (the NextDevice list could loop).
const MAX_DEVICES: usize = 256;

pub const DRIVER_TAG: Tag = Tag(*b"Driv");
pub const DEVICE_TAG: Tag = Tag(*b"Devi");

/// One driver's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverObjects {
    /// Index into the module list.
    pub module: u16,
    pub driver_object: u64,
    /// (DEVICE_OBJECT address, its extension's address and size).
    pub devices: Vec<(u64, u64, u64)>,
}

/// `_DRIVER_OBJECT` and `_DEVICE_OBJECT` offsets.
struct Layout {
    driver_size: u64,
    driver_start: u64,
    driver_device: u64,
    device_size: u64,
    device_next: u64,
    device_driver: u64,
    device_extension: u64,
}

impl Layout {
    fn from_profile(p: &Profile) -> Option<Layout> {
        Some(Layout {
            driver_size: p.type_size("_DRIVER_OBJECT")?,
            driver_start: p.offset("_DRIVER_OBJECT", "DriverStart")?,
            driver_device: p.offset("_DRIVER_OBJECT", "DeviceObject")?,
            device_size: p.type_size("_DEVICE_OBJECT")?,
            device_next: p.offset("_DEVICE_OBJECT", "NextDevice")?,
            device_driver: p.offset("_DEVICE_OBJECT", "DriverObject")?,
            device_extension: p.offset("_DEVICE_OBJECT", "DeviceExtension")?,
        })
    }
}

/// The driver objects in `driver_blocks` (address, size of each 'Driv' block) whose
/// DriverStart is a module's base, with their device objects.
pub fn find_driver_objects(
    mem: &dyn VirtualMemory,
    profile: Option<&Profile>,
    modules: &ModuleMap,
    module_bases: &[u64],
    driver_blocks: &[(u64, u64)],
) -> Vec<DriverObjects> {
    let Some(l) = profile.and_then(Layout::from_profile) else {
        return Vec::new();
    };
    let ptr = u64::from(profile.map_or(8, |p| p.pointer_size));
    let mut out = Vec::new();
    for &(block, size) in driver_blocks {
        let Some((body, module)) = driver_body(mem, &l, ptr, block, size, modules, module_bases)
        else {
            continue;
        };
        let devices = devices(mem, &l, body);
        out.push(DriverObjects {
            module,
            driver_object: body,
            devices,
        });
    }
    out
}

/// The DRIVER_OBJECT inside a pool block, and the module it drives.
fn driver_body(
    mem: &dyn VirtualMemory,
    l: &Layout,
    ptr: u64,
    block: u64,
    size: u64,
    modules: &ModuleMap,
    module_bases: &[u64],
) -> Option<(u64, u16)> {
    let bytes = mem.read_vec(block, usize::try_from(size).ok()?).ok()?;
    let mut off = 0u64;
    while off + l.driver_size <= size {
        let at = |o: u64| usize::try_from(o).ok();
        let ty = u16_at(&bytes, at(off)?)?;
        let sz = u16_at(&bytes, at(off + 2)?)?;
        if ty == IO_TYPE_DRIVER && u64::from(sz) == l.driver_size {
            let start = ptr_at(
                &bytes,
                at(off + l.driver_start)?,
                if ptr == 4 { 4 } else { 8 },
            )?;
            if let Some(m) = modules
                .at(start)
                .filter(|&m| module_bases.get(usize::from(m)) == Some(&start))
            {
                return Some((block + off, m));
            }
        }
        off += ptr;
    }
    None
}

/// The driver's device objects (DeviceObject, then NextDevice), each with its extension.
fn devices(mem: &dyn VirtualMemory, l: &Layout, driver: u64) -> Vec<(u64, u64, u64)> {
    let read = |va: u64| mem.read_ptr(va).ok();
    let mut out = Vec::new();
    let mut next = read(driver + l.driver_device).unwrap_or(0);
    while next != 0 && out.len() < MAX_DEVICES {
        let dev = next;
        if out.iter().any(|&(d, _, _)| d == dev) {
            break;
        }
        let Ok(head) = mem.read_vec(dev, 4) else {
            break;
        };
        let ty = u16::from_le_bytes([head[0], head[1]]);
        let size = u64::from(u16::from_le_bytes([head[2], head[3]]));
        if ty != IO_TYPE_DEVICE || read(dev + l.device_driver) != Some(driver) {
            break;
        }
        let ext = read(dev + l.device_extension).unwrap_or(0);
        let ext_size = size.saturating_sub(l.device_size);
        out.push((dev, ext, if ext == 0 { 0 } else { ext_size }));
        next = read(dev + l.device_next).unwrap_or(0);
    }
    out
}
