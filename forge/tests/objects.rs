//! Driver and device objects read back from forged dumps with the profile's layouts: the
//! `_DRIVER_OBJECT` of every driver in the truth (type, size, image, loader entry, names,
//! extension), its devices (back pointers, NextDevice chain, extension right after the device
//! object, Size), each object's header (its type decoded as the kernel does: XP's Type pointer,
//! 7+'s TypeIndex into ObTypeIndexTable, 17763+ with ObHeaderCookie), its name info (XP
//! NameInfoOffset, 7+ InfoMask through the kernel's ObpInfoMaskToOffset), its pool block (tag
//! with PROTECTED_POOL before Windows 8, BlockSize covering the body), and the object
//! directories from ObpRootDirectoryObject (every driver in \Driver or \FileSystem, every device
//! in \Device, in the bucket of its name's hash).

#[path = "support/reader.rs"]
mod reader;

use analyzer::symbols::Profile;
use forge::Options;
use reader::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn forge_scenario(profile: &str, scenario: &str, dir: &Path) -> (PathBuf, Value) {
    let out = dir.join(format!("{profile}-{scenario}.dmp"));
    let mut opts = Options::new(profile, "kernel-bitmap");
    opts.corpus = Some(corpus_dir());
    opts.size = 512 << 20;
    opts.scenario = scenario.to_string();
    forge::forge(&opts, &out).unwrap_or_else(|e| panic!("forge {profile} {scenario}: {e}"));
    let truth: Value =
        serde_json::from_slice(&std::fs::read(forge::truth_path(&out)).unwrap()).unwrap();
    (out, truth)
}

/// The object manager as a reader sees it.
struct Ob<'a> {
    r: &'a Reader,
    prof: &'a Profile,
    kbase: u64,
    build: u64,
}

impl Ob<'_> {
    fn o(&self, t: &str, f: &str) -> u64 {
        self.prof
            .offset(t, f)
            .unwrap_or_else(|| panic!("{t}.{f} not in the profile"))
    }
    fn size(&self, t: &str) -> u64 {
        self.prof.type_size(t).unwrap()
    }
    fn global(&self, n: &str) -> Option<u64> {
        self.prof.global(n).map(|rva| self.kbase + rva)
    }
    fn u8(&self, va: u64) -> u8 {
        self.r.read(va, 1).unwrap()[0]
    }
    fn u16(&self, va: u64) -> u16 {
        u16_at(&self.r.read(va, 2).unwrap(), 0)
    }
    fn u32(&self, va: u64) -> u32 {
        u32_at(&self.r.read(va, 4).unwrap(), 0)
    }
    fn header(&self, body: u64) -> u64 {
        body - self.o("_OBJECT_HEADER", "Body")
    }

    /// The object's type name, decoded from its header as the kernel does.
    fn type_name(&self, body: u64) -> String {
        let h = self.header(body);
        let ty = if self.r.x64 || self.prof.offset("_OBJECT_HEADER", "Type").is_none() {
            let mut index = u64::from(self.u8(h + self.o("_OBJECT_HEADER", "TypeIndex")));
            if let Some(c) = self.global("ObHeaderCookie") {
                index ^= u64::from(self.u8(c)) ^ ((h >> 8) & 0xff);
            }
            let table = self.global("ObTypeIndexTable").unwrap();
            assert_eq!(self.r.ptr(table + 8), 0xbad0_b0b0, "ObTypeIndexTable[1]");
            self.r.ptr(table + index * 8)
        } else {
            self.r.ptr(h + self.o("_OBJECT_HEADER", "Type"))
        };
        unicode(self.r, self.prof, ty + self.o("_OBJECT_TYPE", "Name"))
    }

    /// The name info's address (XP NameInfoOffset; 7+ InfoMask and ObpInfoMaskToOffset).
    fn name_info(&self, body: u64) -> u64 {
        let h = self.header(body);
        let off = match self.prof.offset("_OBJECT_HEADER", "NameInfoOffset") {
            Some(o) => u64::from(self.u8(h + o)),
            None => {
                let mask = self.u8(h + self.o("_OBJECT_HEADER", "InfoMask"));
                assert_eq!(mask & 2, 2, "InfoMask has NAME_INFO");
                let table = self.global("ObpInfoMaskToOffset").unwrap();
                u64::from(self.u8(table + u64::from(mask & 3)))
            }
        };
        assert_ne!(off, 0, "named object");
        h - off
    }

    /// (name, directory body) of a named object.
    fn name(&self, body: u64) -> (String, u64) {
        let ni = self.name_info(body);
        let t = "_OBJECT_HEADER_NAME_INFO";
        (
            unicode(self.r, self.prof, ni + self.o(t, "Name")),
            self.r.ptr(ni + self.o(t, "Directory")),
        )
    }

    /// Checks the pool block around an object: tag (protected before Windows 8) and BlockSize
    /// covering exactly name info + header + body.
    fn check_block(&self, body: u64, body_size: u64, tag: &[u8; 4]) {
        let start = self.name_info(body);
        let unit = if self.r.x64 { 16 } else { 8 };
        let ph = start - unit;
        let raw = self.r.read(ph, unit as usize).unwrap();
        let block = if self.r.x64 {
            u64::from(raw[2]) * 16
        } else {
            u64::from(u16_at(&raw, 2) & 0x1ff) * 8
        };
        let mut want = *tag;
        if self.build < 9200 {
            want[3] |= 0x80;
        }
        assert_eq!(&raw[4..8], &want, "pool tag of the object at {body:#x}");
        let end = (body + body_size).div_ceil(unit) * unit;
        assert_eq!(ph + block, end, "BlockSize of the object at {body:#x}");
    }

    /// Every (name, object) of a directory, checking each entry sits in its hash bucket.
    fn directory(&self, dir: u64) -> BTreeMap<String, u64> {
        let p = if self.r.x64 { 8 } else { 4 };
        let mut out = BTreeMap::new();
        let buckets = dir + self.o("_OBJECT_DIRECTORY", "HashBuckets");
        for b in 0..37u64 {
            let mut e = self.r.ptr(buckets + b * p);
            while e != 0 {
                let obj = self.r.ptr(e + self.o("_OBJECT_DIRECTORY_ENTRY", "Object"));
                let (name, parent) = self.name(obj);
                assert_eq!(parent, dir, "{name}: NameInfo.Directory");
                assert_eq!(u64::from(wrk_hash(&name)) % 37, b, "{name}: bucket");
                out.insert(name, obj);
                e = self
                    .r
                    .ptr(e + self.o("_OBJECT_DIRECTORY_ENTRY", "ChainLink"));
            }
        }
        out
    }
}

/// WRK ObpLookupDirectoryEntry's hash, written here from the WRK source's description.
fn wrk_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for c in name.encode_utf16() {
        h = h.wrapping_add((h << 1).wrapping_add(h >> 1));
        let c = if (0x61..=0x7a).contains(&c) {
            c - 0x20
        } else {
            c
        };
        h = h.wrapping_add(u32::from(c));
    }
    h
}

fn check_objects(profile: &str, scenario: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (path, truth) = forge_scenario(profile, scenario, dir.path());
    let r = Reader::open(&path);
    let prof = profile_of(&truth);
    let ob = Ob {
        r: &r,
        prof: &prof,
        kbase: hex(&truth["kernel"]["base"]),
        build: truth["build"].as_u64().unwrap(),
    };
    let root = r.ptr(ob.global("ObpRootDirectoryObject").unwrap());
    let top = ob.directory(root);
    for d in ["Driver", "Device", "FileSystem", "ObjectTypes"] {
        assert_eq!(ob.type_name(top[d]), "Directory", "{d}");
    }
    let types = ob.directory(top["ObjectTypes"]);
    assert_eq!(ob.type_name(types["Driver"]), "Type");
    let io_driver = r.ptr(ob.global("IoDriverObjectType").unwrap());
    assert_eq!(io_driver, types["Driver"], "IoDriverObjectType");
    let devices_dir = ob.directory(top["Device"]);
    let mut checked = 0;
    for d in truth["driver_objects"].as_array().unwrap() {
        check_driver(&ob, &truth, d, &top, &devices_dir);
        checked += 1;
    }
    checked
}

fn check_driver(
    ob: &Ob,
    truth: &Value,
    d: &Value,
    top: &BTreeMap<String, u64>,
    devices_dir: &BTreeMap<String, u64>,
) {
    let r = ob.r;
    let drv = hex(&d["driver_object"]);
    let t = "_DRIVER_OBJECT";
    let m = truth["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == d["module"])
        .unwrap();
    assert_eq!(ob.type_name(drv), "Driver");
    assert_eq!(ob.u16(drv + ob.o(t, "Type")), 4);
    assert_eq!(u64::from(ob.u16(drv + ob.o(t, "Size"))), ob.size(t));
    assert_eq!(r.ptr(drv + ob.o(t, "DriverStart")), hex(&m["base"]));
    assert_eq!(
        u64::from(ob.u32(drv + ob.o(t, "DriverSize"))),
        m["size"].as_u64().unwrap()
    );
    let ldr = r.ptr(drv + ob.o(t, "DriverSection"));
    assert_eq!(
        r.ptr(ldr + ob.o("_LDR_DATA_TABLE_ENTRY", "DllBase")),
        hex(&m["base"]),
        "DriverSection is the module's loader entry"
    );
    let full = unicode(r, ob.prof, drv + ob.o(t, "DriverName"));
    assert_eq!(full, d["name"].as_str().unwrap());
    let ext = r.ptr(drv + ob.o(t, "DriverExtension"));
    assert_eq!(ext, drv + ob.size(t), "DriverExtension follows the object");
    assert_eq!(r.ptr(ext + ob.o("_DRIVER_EXTENSION", "DriverObject")), drv);
    let (name, dir) = ob.name(drv);
    let (dir_name, short) = full[1..].split_once('\\').unwrap();
    assert_eq!((name.as_str(), dir), (short, top[dir_name]), "{full}");
    assert_eq!(ob.directory(top[dir_name])[short], drv);
    ob.check_block(drv, ob.size(t) + ob.size("_DRIVER_EXTENSION"), b"Driv");
    // Devices: DeviceObject then NextDevice, in the truth's order.
    let mut dev = r.ptr(drv + ob.o(t, "DeviceObject"));
    let dt = "_DEVICE_OBJECT";
    for v in d["devices"].as_array().unwrap() {
        assert_eq!(dev, hex(&v["device_object"]));
        assert_eq!(ob.type_name(dev), "Device");
        assert_eq!(ob.u16(dev + ob.o(dt, "Type")), 3);
        let ext_size = v["extension_size"].as_u64().unwrap();
        assert_eq!(
            u64::from(ob.u16(dev + ob.o(dt, "Size"))),
            ob.size(dt) + ext_size
        );
        assert_eq!(r.ptr(dev + ob.o(dt, "DriverObject")), drv);
        let e = r.ptr(dev + ob.o(dt, "DeviceExtension"));
        assert_eq!(
            e,
            dev + ob.size(dt),
            "extension right after the device object"
        );
        assert_eq!(e, hex(&v["extension"]));
        let dox = r.ptr(dev + ob.o(dt, "DeviceObjectExtension"));
        assert_eq!(dox, e + ext_size.div_ceil(8) * 8);
        assert_eq!(r.ptr(dox + ob.o("_DEVOBJ_EXTENSION", "DeviceObject")), dev);
        let (name, _) = ob.name(dev);
        assert_eq!(name, v["name"].as_str().unwrap());
        assert_eq!(devices_dir[&name], dev);
        let body = ob.size(dt) + ext_size.div_ceil(8) * 8 + ob.size("_DEVOBJ_EXTENSION");
        ob.check_block(dev, body, b"Devi");
        dev = r.ptr(dev + ob.o(dt, "NextDevice"));
    }
    assert_eq!(dev, 0, "{full}: NextDevice chain ends");
}

#[test]
fn driver_objects_read_back_on_every_profile() {
    for profile in [
        "xp-2600-x86pae",
        "win7-7601-x64",
        "win10-17763-x64",
        "win10-19041-x64",
        "server2022-20348-x64",
    ] {
        let n = check_objects(profile, "baseline");
        assert_eq!(n, 4, "{profile}: Ntfs, NDIS, Tcpip, acmeflt");
    }
}

#[test]
fn scenario_drivers_have_objects_with_two_devices() {
    for profile in ["xp-2600-x86pae", "win10-19041-x64"] {
        let n = check_objects(profile, "untagged-two-drivers");
        assert_eq!(n, 5, "{profile}: base drivers and acmefs.sys");
    }
}
