//! Driver and device objects of the loaded drivers, as the I/O manager leaves them: a
//! `_DRIVER_OBJECT` (`\Driver\X`, or `\FileSystem\X` for file systems) whose body is followed by
//! its `_DRIVER_EXTENSION` in the same block (IopLoadDriver; Volatility's pool scanner carves
//! it that way on XP and 7), DriverStart/DriverSize the module's image, DriverSection its loader
//! entry; one or two `_DEVICE_OBJECT`s (`\Device\Y`) each with its device extension right after
//! the device object and the `_DEVOBJ_EXTENSION` after that (IoCreateDevice), `Size` =
//! sizeof(DEVICE_OBJECT) + extension bytes. Layouts from the profile; headers, tags and names
//! through [`crate::objects`].

use crate::code::VendorDriver;
use crate::objects::ObjectManager;
use crate::system::System;
use crate::ForgeError;

/// IO_TYPE_DRIVER, IO_TYPE_DEVICE, IO_TYPE_DEVICE_OBJECT_EXTENSION.
const IO_TYPE_DRIVER: u16 = 4;
const IO_TYPE_DEVICE: u16 = 3;
const IO_TYPE_DEVOBJ_EXTENSION: u16 = 0xd;
/// DRVO_LEGACY_DRIVER | DRVO_INITIALIZED.
const DRIVER_FLAGS: u32 = 0x12;
/// DO_DEVICE_HAS_NAME.
const DEVICE_FLAGS: u32 = 0x40;
/// IRP_MJ_MAXIMUM_FUNCTION + 1.
const MAJOR_FUNCTIONS: u64 = 28;
const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 8;
const FILE_DEVICE_NETWORK: u32 = 0x12;
const FILE_DEVICE_UNKNOWN: u32 = 0x22;

/// A device object as planted.
#[derive(Debug, Clone)]
pub struct DeviceObject {
    pub name: String,
    /// The `_DEVICE_OBJECT` (object body).
    pub device_object: u64,
    /// DeviceExtension (0 when the extension is empty).
    pub extension: u64,
    pub extension_size: u32,
    /// DEVICE_OBJECT.DeviceType (FILE_DEVICE_*).
    pub device_type: u32,
}

/// A driver's objects as planted.
#[derive(Debug, Clone)]
pub struct DriverObjects {
    pub module: String,
    /// `\Driver\X` or `\FileSystem\X`.
    pub name: String,
    /// The `_DRIVER_OBJECT` (object body).
    pub driver_object: u64,
    pub devices: Vec<DeviceObject>,
}

/// What the forge creates for one driver.
struct Spec {
    module: String,
    directory: &'static str,
    name: String,
    devices: Vec<(String, u32, u32)>,
}

/// A driver's object directory, object name and devices (name, extension bytes, DeviceType).
type Objects = (&'static str, &'static str, Vec<(&'static str, u32, u32)>);

/// Windows drivers of the base system and their objects (DLLs and session drivers have none).
fn windows_driver(module: &str) -> Option<Objects> {
    Some(match module {
        "Ntfs.sys" => (
            "FileSystem",
            "Ntfs",
            vec![("Ntfs", 0x40, FILE_DEVICE_DISK_FILE_SYSTEM)],
        ),
        "NDIS.SYS" => ("Driver", "NDIS", vec![("Ndis", 0x40, FILE_DEVICE_NETWORK)]),
        "tcpip.sys" => (
            "Driver",
            "Tcpip",
            vec![
                ("Tcp", 0x40, FILE_DEVICE_NETWORK),
                ("Udp", 0x40, FILE_DEVICE_NETWORK),
            ],
        ),
        "acmeflt.sys" => (
            "Driver",
            "acmeflt",
            vec![("AcmeFlt", 0x60, FILE_DEVICE_DISK_FILE_SYSTEM)],
        ),
        _ => return None,
    })
}

/// One spec per loaded driver that has objects: the Windows drivers above, and every scenario
/// driver (`\Driver\<name without extension>`, its own devices or one named after it).
fn specs(sys: &System, vendor: &[VendorDriver]) -> Vec<Spec> {
    let mut out = Vec::new();
    for m in sys.modules.iter().skip(1) {
        let stem = m.name.rsplit_once('.').map_or(m.name.as_str(), |s| s.0);
        let own = vendor.iter().find(|v| v.name == m.name);
        let base = windows_driver(&m.name);
        if own.is_none() && base.is_none() {
            continue;
        }
        let (directory, name, mut devices) = match base {
            Some((d, n, devs)) => (
                d,
                n.to_string(),
                devs.into_iter()
                    .map(|(n, e, t)| (n.to_string(), e, t))
                    .collect::<Vec<_>>(),
            ),
            None => ("Driver", stem.to_string(), Vec::new()),
        };
        if let Some(v) = own.filter(|v| !v.devices.is_empty()) {
            devices = v
                .devices
                .iter()
                .map(|(n, e, t)| (n.to_string(), *e, *t))
                .collect();
        }
        if devices.is_empty() {
            devices.push((stem.to_string(), 0x40, FILE_DEVICE_UNKNOWN));
        }
        out.push(Spec {
            module: m.name.clone(),
            directory,
            name,
            devices,
        });
    }
    out
}

/// Plants the object manager (types, directories) and every driver's driver and device
/// objects; records them in [`System::driver_objects`].
pub fn plant(sys: &mut System, vendor: &[VendorDriver]) -> Result<(), ForgeError> {
    let mut om = ObjectManager::new(sys)?;
    for spec in specs(sys, vendor) {
        let d = plant_driver(sys, &mut om, &spec)?;
        sys.driver_objects.push(d);
    }
    om.finish(sys)
}

fn plant_driver(
    sys: &mut System,
    om: &mut ObjectManager,
    spec: &Spec,
) -> Result<DriverObjects, ForgeError> {
    let index = sys
        .modules
        .iter()
        .position(|m| m.name == spec.module)
        .ok_or_else(|| ForgeError::Internal(format!("no module {}", spec.module)))?;
    let (base, size) = (sys.modules[index].base, sys.modules[index].size);
    let ldr = sys.ldr_entries.get(index).copied().unwrap_or(0);
    let full = format!("\\{}\\{}", spec.directory, spec.name);
    let body = sys.type_size("_DRIVER_OBJECT")? + sys.type_size("_DRIVER_EXTENSION")?;
    let service = spec
        .module
        .rsplit_once('.')
        .map_or(spec.module.as_str(), |s| s.0);
    let o = om.create(
        sys,
        "Driver",
        Some((spec.directory, &spec.name)),
        body,
        &[&full, service],
    )?;
    let drv = o.body;
    let mut devices = Vec::new();
    for (name, ext, ty) in &spec.devices {
        devices.push(plant_device(sys, om, drv, name, *ext, *ty)?);
    }
    for pair in devices.windows(2) {
        let next = sys.offset("_DEVICE_OBJECT", "NextDevice")?;
        sys.machine
            .write_ptr(pair[0].device_object + next, pair[1].device_object)?;
    }
    let image = Image {
        base,
        size,
        ldr,
        first_device: devices.first().map_or(0, |d| d.device_object),
    };
    write_driver_body(sys, drv, &image, &o.strings, [&full, service])?;
    Ok(DriverObjects {
        module: spec.module.clone(),
        name: full,
        driver_object: drv,
        devices,
    })
}

/// What a driver object says of its driver.
#[derive(Clone, Copy)]
struct Image {
    base: u64,
    size: u32,
    /// The module's loader entry (DriverSection).
    ldr: u64,
    first_device: u64,
}

/// `_DRIVER_OBJECT` and `_DRIVER_EXTENSION`; `names` = [DriverName, ServiceKeyName], written
/// into the buffers `strings`.
fn write_driver_body(
    sys: &mut System,
    drv: u64,
    image: &Image,
    strings: &[u64],
    names: [&str; 2],
) -> Result<(), ForgeError> {
    let Image {
        base,
        size,
        ldr,
        first_device,
    } = *image;
    let [full, service] = names;
    let t = "_DRIVER_OBJECT";
    let ptr = u64::from(sys.ptr_size());
    let obj_size = sys.type_size(t)?;
    let ext = drv + obj_size;
    sys.machine
        .write_u16(drv + sys.offset(t, "Type")?, IO_TYPE_DRIVER)?;
    sys.machine
        .write_u16(drv + sys.offset(t, "Size")?, obj_size as u16)?;
    sys.machine
        .write_ptr(drv + sys.offset(t, "DeviceObject")?, first_device)?;
    sys.machine
        .write_u32(drv + sys.offset(t, "Flags")?, DRIVER_FLAGS)?;
    sys.machine
        .write_ptr(drv + sys.offset(t, "DriverStart")?, base)?;
    sys.machine
        .write_u32(drv + sys.offset(t, "DriverSize")?, size)?;
    sys.machine
        .write_ptr(drv + sys.offset(t, "DriverSection")?, ldr)?;
    sys.machine
        .write_ptr(drv + sys.offset(t, "DriverExtension")?, ext)?;
    sys.write_unicode_string(drv + sys.offset(t, "DriverName")?, strings[0], full)?;
    // The entry point is the INIT section's start (the module list says so too); every major
    // function and DriverUnload point at the `ret` at .text.
    let entry = base + u64::from(size) - 0x1000;
    sys.machine
        .write_ptr(drv + sys.offset(t, "DriverInit")?, entry)?;
    sys.machine
        .write_ptr(drv + sys.offset(t, "DriverUnload")?, base + 0x1000)?;
    let mj = drv + sys.offset(t, "MajorFunction")?;
    for i in 0..MAJOR_FUNCTIONS {
        sys.machine.write_ptr(mj + i * ptr, base + 0x1000)?;
    }
    let e = "_DRIVER_EXTENSION";
    sys.machine
        .write_ptr(ext + sys.offset(e, "DriverObject")?, drv)?;
    sys.machine.write_u32(ext + sys.offset(e, "Count")?, 1)?;
    sys.write_unicode_string(ext + sys.offset(e, "ServiceKeyName")?, strings[1], service)
}

fn plant_device(
    sys: &mut System,
    om: &mut ObjectManager,
    drv: u64,
    name: &str,
    ext_size: u32,
    device_type: u32,
) -> Result<DeviceObject, ForgeError> {
    let t = "_DEVICE_OBJECT";
    let obj = sys.type_size(t)?;
    let rounded = u64::from(ext_size).div_ceil(8) * 8;
    let devobj_ext = sys.type_size("_DEVOBJ_EXTENSION")?;
    let o = om.create(
        sys,
        "Device",
        Some(("Device", name)),
        obj + rounded + devobj_ext,
        &[],
    )?;
    let dev = o.body;
    let extension = if ext_size > 0 { dev + obj } else { 0 };
    let dox = dev + obj + rounded;
    sys.machine
        .write_u16(dev + sys.offset(t, "Type")?, IO_TYPE_DEVICE)?;
    let size = (obj + u64::from(ext_size)) as u16;
    sys.machine.write_u16(dev + sys.offset(t, "Size")?, size)?;
    sys.machine
        .write_ptr(dev + sys.offset(t, "DriverObject")?, drv)?;
    sys.machine
        .write_u32(dev + sys.offset(t, "Flags")?, DEVICE_FLAGS)?;
    sys.machine
        .write_ptr(dev + sys.offset(t, "DeviceExtension")?, extension)?;
    sys.machine
        .write_u32(dev + sys.offset(t, "DeviceType")?, device_type)?;
    sys.machine.write_u8(dev + sys.offset(t, "StackSize")?, 1)?;
    sys.machine
        .write_ptr(dev + sys.offset(t, "DeviceObjectExtension")?, dox)?;
    let x = "_DEVOBJ_EXTENSION";
    sys.machine
        .write_u16(dox + sys.offset(x, "Type")?, IO_TYPE_DEVOBJ_EXTENSION)?;
    sys.machine
        .write_u16(dox + sys.offset(x, "Size")?, devobj_ext as u16)?;
    sys.machine
        .write_ptr(dox + sys.offset(x, "DeviceObject")?, dev)?;
    Ok(DeviceObject {
        name: name.to_string(),
        device_object: dev,
        extension,
        extension_size: ext_size,
        device_type,
    })
}

/// The truth's `driver_objects`: `[{module, name, driver_object, devices: [{name,
/// device_object, extension, extension_size, device_type}]}]`.
pub fn truth(drivers: &[DriverObjects]) -> serde_json::Value {
    use crate::truth::hex;
    drivers
        .iter()
        .map(|d| {
            let devices: Vec<serde_json::Value> = d
                .devices
                .iter()
                .map(|v| {
                    serde_json::json!({ "name": v.name, "device_object": hex(v.device_object),
                        "extension": hex(v.extension), "extension_size": v.extension_size,
                        "device_type": v.device_type })
                })
                .collect();
            serde_json::json!({ "module": d.module, "name": d.name,
                "driver_object": hex(d.driver_object), "devices": devices })
        })
        .collect()
}
