//! The object manager's structures, as Windows lays them out, for the objects the forge plants
//! (object types, directories, driver and device objects; [`crate::devices`] makes the last two).
//!
//! Every object is one pool block: `[POOL_HEADER][OBJECT_HEADER_NAME_INFO][OBJECT_HEADER][body]`
//! (the name info only for named objects), tagged with the first four characters of its type's
//! name ('ObjT' for types), with bit 31 set (PROTECTED_POOL) before Windows 8: 'Dri\xF6',
//! 'Dev\xE9', 'Obj\xD4', 'Dir\xE5' on XP and 7. The header names its type as the kernel does:
//! XP by a pointer to the `_OBJECT_TYPE` (`Type`) and the name info by `NameInfoOffset`; 7+ by
//! `TypeIndex` into `ObTypeIndexTable` and `InfoMask` (bit 0x2: name info, found through
//! `ObpInfoMaskToOffset`); 17763+ store `TypeIndex ^ ObHeaderCookie ^ (header >> 8)` (low bytes).
//! Names are UNICODE_STRINGs whose buffers are in paged pool ('ObNm'); directories are
//! `_OBJECT_DIRECTORY` hash tables of `_OBJECT_DIRECTORY_ENTRY` ('ObDi'). Offsets and sizes
//! come from the profile; the type index numbers are the forge's (the symbols carry none), in
//! the order Windows creates the types, and readers must take them from ObTypeIndexTable.

use crate::space::Paging;
use crate::system::System;
use crate::ForgeError;
use std::collections::BTreeMap;

pub use crate::devices::{plant, DeviceObject, DriverObjects};

/// Object types of XP, in creation order (index 1 first).
const XP_TYPES: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Process",
    "Thread",
    "Job",
    "DebugObject",
    "Event",
    "EventPair",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "Section",
    "Key",
    "Port",
    "WaitablePort",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
];

/// Windows 7 (index 2 first; ObTypeIndexTable[0] is 0 and [1] the 0xBAD0B0B0 marker).
const WIN7_TYPES: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Job",
    "Process",
    "Thread",
    "UserApcReserve",
    "IoCompletionReserve",
    "DebugObject",
    "Event",
    "EventPair",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "TpWorkerFactory",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
];

/// Windows 10 and Server 2022 (index 2 first).
const WIN10_TYPES: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Job",
    "Process",
    "Thread",
    "Partition",
    "UserApcReserve",
    "IoCompletionReserve",
    "ActivityReference",
    "PsSiloContextPaged",
    "PsSiloContextNonPaged",
    "DebugObject",
    "Event",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "IRTimer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "Composition",
    "RawInputManager",
    "CoreMessaging",
    "ActivationObject",
    "TpWorkerFactory",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
];

/// Directories the forge plants under the root (unnamed, ObpRootDirectoryObject).
pub const DIRECTORIES: &[&str] = &["ObjectTypes", "Driver", "FileSystem", "Device"];
/// Hash buckets of an `_OBJECT_DIRECTORY`.
const BUCKETS: u64 = 37;
/// ObTypeIndexTable[1] on Windows 7+: a marker, not a type.
const BAD_TYPE_MARKER: u64 = 0xbad0_b0b0;
/// PROTECTED_POOL: bit 31 of the tag, set on object allocations before Windows 8.
const PROTECTED_POOL: u32 = 0x8000_0000;
/// OBJECT_HEADER.Flags: kernel object, permanent.
const FLAGS_PERMANENT: u8 = 0x12;
/// OBJECT_HEADER.Flags: kernel object.
const FLAGS_KERNEL: u8 = 0x02;

/// One planted object.
#[derive(Debug, Clone)]
struct Object {
    header: u64,
    body: u64,
    ty: &'static str,
    /// (directory, name) for a named object.
    name: Option<(&'static str, String)>,
    /// The object's strings, in the order asked for (the name first when named).
    strings: Vec<u64>,
}

/// A planted object's addresses.
#[derive(Debug, Clone)]
pub struct Created {
    pub header: u64,
    pub body: u64,
    /// Buffers of the strings asked for, in order (after the name's own).
    pub strings: Vec<u64>,
}

/// The object manager being built: types, directories and the objects planted so far, whose
/// headers and directory entries are written by [`ObjectManager::finish`] once every type and
/// directory exists.
pub struct ObjectManager {
    objects: Vec<Object>,
    /// Type name -> (index, `_OBJECT_TYPE` body).
    types: BTreeMap<&'static str, (u64, u64)>,
    /// Directory name ("" = root) -> `_OBJECT_DIRECTORY` body.
    directories: BTreeMap<&'static str, u64>,
    cookie: Option<u8>,
}

impl ObjectManager {
    /// The object types (with ObTypeIndexTable / ObpObjectTypes, the cookie and
    /// ObpInfoMaskToOffset) and the directories, ready for objects.
    pub fn new(sys: &mut System) -> Result<ObjectManager, ForgeError> {
        let mut om = ObjectManager {
            objects: Vec::new(),
            types: BTreeMap::new(),
            directories: BTreeMap::new(),
            cookie: None,
        };
        if let Ok(at) = sys.global("ObHeaderCookie") {
            let c = (sys.object_rng.next_u64() as u8) | 1;
            sys.machine.write_u32(at, u32::from(c))?;
            om.cookie = Some(c);
        }
        write_info_mask_table(sys)?;
        om.create_types(sys)?;
        om.create_directories(sys)?;
        Ok(om)
    }

    fn is_xp(sys: &System) -> bool {
        sys.spec.paging == Paging::X86Pae
    }

    fn type_list(sys: &System) -> (&'static [&'static str], u64) {
        if Self::is_xp(sys) {
            (XP_TYPES, 1)
        } else if sys.spec.build < 9200 {
            (WIN7_TYPES, 2)
        } else {
            (WIN10_TYPES, 2)
        }
    }

    fn create_types(&mut self, sys: &mut System) -> Result<(), ForgeError> {
        let (list, first) = Self::type_list(sys);
        let size = sys.type_size("_OBJECT_TYPE")?;
        let ptr = u64::from(sys.ptr_size());
        for (i, &name) in list.iter().enumerate() {
            let index = first + i as u64;
            let t = self.create(sys, "Type", Some(("ObjectTypes", name)), size, &[])?;
            self.types.insert(name, (index, t.body));
            self.write_type_body(sys, t.body, name, index)?;
            if let Ok(table) = sys.global("ObTypeIndexTable") {
                sys.machine.write_ptr(table + index * ptr, t.body)?;
            } else if let Ok(table) = sys.global("ObpObjectTypes") {
                sys.machine.write_ptr(table + (index - 1) * ptr, t.body)?;
            }
        }
        if let Ok(table) = sys.global("ObTypeIndexTable") {
            sys.machine.write_ptr(table + ptr, BAD_TYPE_MARKER)?;
        }
        for (var, name) in [
            ("ObpTypeObjectType", "Type"),
            ("ObpDirectoryObjectType", "Directory"),
            ("IoDriverObjectType", "Driver"),
            ("IoDeviceObjectType", "Device"),
        ] {
            let body = self.type_body(name)?;
            sys.machine.write_ptr(sys.global(var)?, body)?;
        }
        Ok(())
    }

    /// `_OBJECT_TYPE`: empty TypeList, Name, Index, Key (the pool tag without bit 31) and
    /// TypeInfo.PoolType.
    fn write_type_body(
        &mut self,
        sys: &mut System,
        body: u64,
        name: &'static str,
        index: u64,
    ) -> Result<(), ForgeError> {
        let list = sys.offset("_OBJECT_TYPE", "TypeList")?;
        sys.write_list_entry(body + list, body + list, body + list)?;
        let name_buf = self
            .objects
            .last()
            .and_then(|o| o.strings.first().copied())
            .ok_or_else(|| ForgeError::Internal("type object without a name".into()))?;
        let at = body + sys.offset("_OBJECT_TYPE", "Name")?;
        sys.write_unicode_string(at, name_buf, name)?;
        let index_at = body + sys.offset("_OBJECT_TYPE", "Index")?;
        if Self::is_xp(sys) {
            sys.machine.write_u32(index_at, index as u32)?;
        } else {
            sys.machine.write_u8(index_at, index as u8)?;
        }
        let key = sys.offset("_OBJECT_TYPE", "Key")?;
        sys.machine.write_u32(body + key, tag_key(name))?;
        let info = sys.offset("_OBJECT_TYPE", "TypeInfo")?;
        if let Some(o) = sys.profile.offset("_OBJECT_TYPE_INITIALIZER", "PoolType") {
            sys.machine
                .write_u32(body + info + o, u32::from(is_paged_type(name)))?;
        }
        Ok(())
    }

    fn create_directories(&mut self, sys: &mut System) -> Result<(), ForgeError> {
        let size = sys.type_size("_OBJECT_DIRECTORY")?;
        let root = self.create(sys, "Directory", None, size, &[])?;
        self.directories.insert("", root.body);
        sys.machine
            .write_ptr(sys.global("ObpRootDirectoryObject")?, root.body)?;
        for &d in DIRECTORIES {
            let o = self.create(sys, "Directory", Some(("", d)), size, &[])?;
            self.directories.insert(d, o.body);
        }
        Ok(())
    }

    /// The `_OBJECT_TYPE` of a type planted by [`ObjectManager::new`].
    pub fn type_body(&self, name: &str) -> Result<u64, ForgeError> {
        self.types
            .get(name)
            .map(|t| t.1)
            .ok_or_else(|| ForgeError::Internal(format!("no object type {name}")))
    }

    /// Plants an object of type `ty` with a body of `body_size` bytes (zeroed), named `name`
    /// in directory `name.0` when given, and a paged buffer for each of `strings` (the caller
    /// writes the UNICODE_STRINGs pointing at them).
    pub fn create(
        &mut self,
        sys: &mut System,
        ty: &'static str,
        name: Option<(&'static str, &str)>,
        body_size: u64,
        strings: &[&str],
    ) -> Result<Created, ForgeError> {
        let name_info = match name {
            Some(_) => sys.type_size("_OBJECT_HEADER_NAME_INFO")?,
            None => 0,
        };
        let body_off = sys.offset("_OBJECT_HEADER", "Body")?;
        let data = name_info + body_off + body_size;
        let tag = pool_tag(ty, sys.spec.build);
        let start = if is_paged_type(ty) {
            sys.alloc_paged(data, &tag)?
        } else {
            sys.alloc_nonpaged(data, &tag)?
        };
        let header = start + name_info;
        let mut all: Vec<&str> = name.iter().map(|n| n.1).collect();
        all.extend_from_slice(strings);
        let bufs = alloc_strings(sys, &all)?;
        if let Some((_, n)) = name {
            let at = start + sys.offset("_OBJECT_HEADER_NAME_INFO", "Name")?;
            sys.write_unicode_string(at, bufs[0], n)?;
        }
        self.objects.push(Object {
            header,
            body: header + body_off,
            ty,
            name: name.map(|(d, n)| (d, n.to_string())),
            strings: bufs.clone(),
        });
        let skip = usize::from(name.is_some());
        Ok(Created {
            header,
            body: header + body_off,
            strings: bufs[skip..].to_vec(),
        })
    }

    /// Writes every object's header (type, name info, counts, flags), the types' object
    /// counts and the directories' hash tables.
    pub fn finish(&self, sys: &mut System) -> Result<(), ForgeError> {
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for o in &self.objects {
            self.write_header(sys, o)?;
            *counts.entry(o.ty).or_default() += 1;
        }
        let total = sys.offset("_OBJECT_TYPE", "TotalNumberOfObjects")?;
        for (name, n) in counts {
            sys.machine.write_u32(self.type_body(name)? + total, n)?;
        }
        self.write_directories(sys)
    }

    fn write_header(&self, sys: &mut System, o: &Object) -> Result<(), ForgeError> {
        let h = o.header;
        let t = "_OBJECT_HEADER";
        sys.machine
            .write_ptr(h + sys.offset(t, "PointerCount")?, 1)?;
        let (index, type_body) = *self
            .types
            .get(o.ty)
            .ok_or_else(|| ForgeError::Internal(format!("no object type {}", o.ty)))?;
        let flags = if o.ty == "Device" {
            FLAGS_KERNEL
        } else {
            FLAGS_PERMANENT
        };
        sys.machine.write_u8(h + sys.offset(t, "Flags")?, flags)?;
        let ni_size = sys.type_size("_OBJECT_HEADER_NAME_INFO")?;
        if Self::is_xp(sys) {
            sys.machine
                .write_ptr(h + sys.offset(t, "Type")?, type_body)?;
            let off = if o.name.is_some() { ni_size as u8 } else { 0 };
            sys.machine
                .write_u8(h + sys.offset(t, "NameInfoOffset")?, off)?;
        } else {
            let stored = match self.cookie {
                Some(c) => (index as u8) ^ c ^ ((h >> 8) as u8),
                None => index as u8,
            };
            sys.machine
                .write_u8(h + sys.offset(t, "TypeIndex")?, stored)?;
            let mask = if o.name.is_some() { 0x2 } else { 0 };
            sys.machine.write_u8(h + sys.offset(t, "InfoMask")?, mask)?;
        }
        if let Some((dir, _)) = &o.name {
            let d = self.directory(dir)?;
            let at = h - ni_size + sys.offset("_OBJECT_HEADER_NAME_INFO", "Directory")?;
            sys.machine.write_ptr(at, d)?;
        }
        Ok(())
    }

    fn directory(&self, name: &str) -> Result<u64, ForgeError> {
        self.directories
            .get(name)
            .copied()
            .ok_or_else(|| ForgeError::Internal(format!("no directory {name}")))
    }

    /// Every named object gets an `_OBJECT_DIRECTORY_ENTRY` in its directory's bucket
    /// (`hash % 37`), chained through ChainLink, newest first.
    fn write_directories(&self, sys: &mut System) -> Result<(), ForgeError> {
        let ptr = u64::from(sys.ptr_size());
        let entry_size = sys.type_size("_OBJECT_DIRECTORY_ENTRY")?;
        let chain = sys.offset("_OBJECT_DIRECTORY_ENTRY", "ChainLink")?;
        let object = sys.offset("_OBJECT_DIRECTORY_ENTRY", "Object")?;
        let hash_at = sys.profile.offset("_OBJECT_DIRECTORY_ENTRY", "HashValue");
        let buckets = sys.offset("_OBJECT_DIRECTORY", "HashBuckets")?;
        let mut heads: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for o in &self.objects {
            let Some((dir, name)) = &o.name else {
                continue;
            };
            let d = self.directory(dir)?;
            let hash = name_hash(name);
            let bucket = u64::from(hash) % BUCKETS;
            let e = sys.alloc_paged(entry_size, b"ObDi")?;
            let next = heads.get(&(d, bucket)).copied().unwrap_or(0);
            sys.machine.write_ptr(e + chain, next)?;
            sys.machine.write_ptr(e + object, o.body)?;
            if let Some(at) = hash_at {
                sys.machine.write_u32(e + at, hash)?;
            }
            heads.insert((d, bucket), e);
        }
        for ((d, bucket), e) in heads {
            sys.machine.write_ptr(d + buckets + bucket * ptr, e)?;
        }
        Ok(())
    }
}

/// Types whose objects Windows allocates from paged pool (of those the forge plants).
fn is_paged_type(ty: &str) -> bool {
    matches!(ty, "Directory" | "SymbolicLink" | "Key" | "Section")
}

/// `_OBJECT_TYPE.Key`: the first four characters of the name ('ObjT' for the type of types).
fn tag_key(ty: &str) -> u32 {
    let mut k = *b"    ";
    let src = if ty == "Type" { "ObjT" } else { ty };
    for (d, s) in k.iter_mut().zip(src.bytes()) {
        *d = s;
    }
    u32::from_le_bytes(k)
}

/// The pool tag of an object of type `ty`: the type's Key, with PROTECTED_POOL before
/// Windows 8 (build 9200).
pub fn pool_tag(ty: &str, build: u32) -> [u8; 4] {
    let key = tag_key(ty);
    let tag = if build < 9200 {
        key | PROTECTED_POOL
    } else {
        key
    };
    tag.to_le_bytes()
}

/// Paged buffers ('ObNm', one block) holding each string as UTF-16 with a terminating NUL.
fn alloc_strings(sys: &mut System, strings: &[&str]) -> Result<Vec<u64>, ForgeError> {
    if strings.is_empty() {
        return Ok(Vec::new());
    }
    let bytes: u64 = strings
        .iter()
        .map(|s| (s.encode_utf16().count() as u64 + 1) * 2)
        .sum();
    let mut at = sys.alloc_paged(bytes, b"ObNm")?;
    let mut out = Vec::new();
    for s in strings {
        out.push(at);
        at += (s.encode_utf16().count() as u64 + 1) * 2;
    }
    Ok(out)
}

/// The directory hash of the object manager (WRK `ObpLookupDirectoryEntry`): case-folded
/// characters mixed with `h += (h << 1) + (h >> 1)`; the bucket is the value modulo 37.
pub fn name_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for c in name.encode_utf16() {
        h = h.wrapping_add((h << 1).wrapping_add(h >> 1));
        let upper = if (u16::from(b'a')..=u16::from(b'z')).contains(&c) {
            c - 0x20
        } else {
            c
        };
        h = h.wrapping_add(u32::from(upper));
    }
    h
}

/// ObpInfoMaskToOffset (Windows 7+): for every InfoMask value, the bytes of the optional
/// headers whose bits it holds (bit order CREATOR, NAME, HANDLE, QUOTA, PROCESS, AUDIT,
/// EXTENDED, PADDING; sizes from the profile, absent types ending the list). A reader finds
/// header `b` at `header - table[InfoMask & ((b << 1) - 1)]`.
fn write_info_mask_table(sys: &mut System) -> Result<(), ForgeError> {
    let Ok(at) = sys.global("ObpInfoMaskToOffset") else {
        return Ok(());
    };
    let mut sizes = Vec::new();
    for h in [
        "CREATOR_INFO",
        "NAME_INFO",
        "HANDLE_INFO",
        "QUOTA_INFO",
        "PROCESS_INFO",
        "AUDIT_INFO",
        "EXTENDED_INFO",
        "PADDING_INFO",
    ] {
        match sys.profile.type_size(&format!("_OBJECT_HEADER_{h}")) {
            Some(s) => sizes.push(s),
            None => break,
        }
    }
    let n = 1usize << sizes.len();
    let table: Vec<u8> = (0..n)
        .map(|mask| {
            let s: u64 = (0..sizes.len())
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| sizes[b])
                .sum();
            s as u8
        })
        .collect();
    sys.machine.write(at, &table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_the_protected_bit_before_windows_8() {
        assert_eq!(&pool_tag("Driver", 7601), b"Dri\xf6");
        assert_eq!(&pool_tag("Device", 2600), b"Dev\xe9");
        assert_eq!(&pool_tag("Driver", 19041), b"Driv");
        assert_eq!(&pool_tag("Type", 20348), b"ObjT");
    }

    #[test]
    fn directory_hash_folds_case() {
        assert_eq!(name_hash("driver"), name_hash("DRIVER"));
        assert_eq!(name_hash("A"), 0x41);
        assert_eq!(name_hash("AB"), 0x41 + 0x41 * 2 + 0x20 + 0x42);
    }
}
