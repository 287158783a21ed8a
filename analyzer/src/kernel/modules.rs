//! Loaded kernel modules: walking nt!PsLoadedModuleList, or taking a triage dump's driver
//! list, then reading each module's PE headers where the dump holds them.
//!
//! The list entries are the kernel's KLDR_DATA_TABLE_ENTRY. Public symbols only describe the
//! user-mode _LDR_DATA_TABLE_ENTRY, which shares the prefix we use: InLoadOrderLinks, DllBase,
//! SizeOfImage, FullDllName, BaseDllName (x64 0x00/0x30/0x40/0x48/0x58 in the 7601, 17763,
//! 19041 and 20348 ISF files; x86 0x00/0x18/0x20/0x24/0x2C in XP's ntkrnlpa.pdb) and CheckSum
//! (x64 0x78 in 7601's ISF and the kernel's KLDR layout; x86 0x40 in ntkrnlpa.pdb). The
//! user-mode TimeDateStamp slot (x64 0x80, x86 0x44) is LoadedImports/CoverageSection in the
//! kernel's entry, so a module's timestamp is taken from its PE header instead, as WinDbg does.
//!
//! The list is dump-controlled: the walk is capped ([`MAX_MODULES`]), detects loops, and stops
//! at the first unreadable entry with a warning instead of failing.

use super::bytes::{ptr_at, u16_at, u32_at, utf16le};
use super::pe::{read_pe, PeInfo};
use crate::dump::TriageDriver;
use crate::memory::VirtualMemory;
use std::collections::HashSet;

/// No real system has more than a few hundred drivers loaded; a list longer than this is
/// corrupt or hostile.
pub const MAX_MODULES: usize = 10_000;

/// Where a module list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleSource {
    /// Walked from nt!PsLoadedModuleList at this address.
    LoadedModuleList { head: u64 },
    /// A triage dump's driver list.
    TriageDriverList,
    /// No list could be found.
    None,
}

/// One loaded module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// BaseDllName, e.g. "amdppm.sys".
    pub name: String,
    /// FullDllName, e.g. "\SystemRoot\System32\drivers\amdppm.sys" (for a triage dump,
    /// the driver list's string as written).
    pub path: String,
    pub base: u64,
    pub size: u32,
    /// The PE header's TimeDateStamp, or the triage entry's; `None` when neither is readable.
    pub timestamp: Option<u32>,
    /// The PE header's CheckSum, else the loader entry's.
    pub checksum: Option<u32>,
    /// Address of the loader entry (None for triage drivers).
    pub ldr_entry: Option<u64>,
    /// PE headers from memory, when the dump holds them.
    pub pe: Option<PeInfo>,
    /// Why `pe` is `None`.
    pub pe_error: Option<String>,
}

impl Module {
    /// True when `addr` lies inside the module's image.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < u64::from(self.size)
    }
}

/// A module list and what went wrong while reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleList {
    pub source: ModuleSource,
    pub modules: Vec<Module>,
    /// False when the walk stopped early (unreadable entry, loop, cap).
    pub complete: bool,
    pub warnings: Vec<String>,
}

/// Offsets inside a kernel loader entry and a UNICODE_STRING, per pointer size.
#[derive(Debug, Clone, Copy)]
struct LdrLayout {
    ptr: u8,
    dll_base: usize,
    size_of_image: usize,
    full_name: usize,
    base_name: usize,
    checksum: usize,
    /// Bytes to read per entry (covers every field above).
    read_len: usize,
    /// Offset of Buffer inside UNICODE_STRING.
    us_buffer: usize,
}

const LDR_X64: LdrLayout = LdrLayout {
    ptr: 8,
    dll_base: 0x30,
    size_of_image: 0x40,
    full_name: 0x48,
    base_name: 0x58,
    checksum: 0x78,
    read_len: 0x7c,
    us_buffer: 8,
};

const LDR_X86: LdrLayout = LdrLayout {
    ptr: 4,
    dll_base: 0x18,
    size_of_image: 0x20,
    full_name: 0x24,
    base_name: 0x2c,
    checksum: 0x40,
    read_len: 0x44,
    us_buffer: 4,
};

/// Reads a UNICODE_STRING whose descriptor is at `off` in `entry`. Length is a u16 byte
/// count, so the read is at most 64 KiB whatever the dump says.
fn read_unicode_string(
    mem: &dyn VirtualMemory,
    entry: &[u8],
    off: usize,
    l: &LdrLayout,
) -> Result<String, String> {
    let len = u16_at(entry, off).ok_or("short entry")? as usize & !1;
    let buf = ptr_at(entry, off + l.us_buffer, l.ptr).ok_or("short entry")?;
    if len == 0 {
        return Ok(String::new());
    }
    mem.read_vec(buf, len)
        .map(|b| utf16le(&b))
        .map_err(|e| e.to_string())
}

/// Walks the InLoadOrderLinks list whose head (nt!PsLoadedModuleList) is at `head`.
pub fn walk_loaded_modules(mem: &dyn VirtualMemory, head: u64) -> ModuleList {
    let layout = if mem.pointer_size() == 4 {
        LDR_X86
    } else {
        LDR_X64
    };
    let mut list = ModuleList {
        source: ModuleSource::LoadedModuleList { head },
        modules: Vec::new(),
        complete: false,
        warnings: Vec::new(),
    };
    let mut next = match mem.read_ptr(head) {
        Ok(p) => p,
        Err(e) => {
            list.warnings.push(format!(
                "PsLoadedModuleList head at {head:#x} is not readable: {e}"
            ));
            return list;
        }
    };
    let mut visited = HashSet::new();
    loop {
        if next == head {
            list.complete = true;
            break;
        }
        if next == 0 {
            list.warnings
                .push("module list: null link before the list head".into());
            break;
        }
        if !visited.insert(next) {
            list.warnings
                .push(format!("module list: loop at entry {next:#x}"));
            break;
        }
        if list.modules.len() >= MAX_MODULES {
            list.warnings
                .push(format!("module list: stopped after {MAX_MODULES} entries"));
            break;
        }
        let entry = match mem.read_vec(next, layout.read_len) {
            Ok(e) => e,
            Err(e) => {
                list.warnings
                    .push(format!("module list: entry {next:#x} is not readable: {e}"));
                break;
            }
        };
        let at = next;
        // Unwrap-free: the entry buffer is `read_len` long and every offset is inside it.
        let base = ptr_at(&entry, layout.dll_base, layout.ptr).unwrap_or(0);
        let size = u32_at(&entry, layout.size_of_image).unwrap_or(0);
        let ldr_checksum = u32_at(&entry, layout.checksum);
        let name =
            read_unicode_string(mem, &entry, layout.base_name, &layout).unwrap_or_else(|e| {
                list.warnings
                    .push(format!("module at {base:#x}: BaseDllName unreadable: {e}"));
                String::new()
            });
        let path =
            read_unicode_string(mem, &entry, layout.full_name, &layout).unwrap_or_else(|e| {
                list.warnings
                    .push(format!("module at {base:#x}: FullDllName unreadable: {e}"));
                String::new()
            });
        let mut m = Module {
            name,
            path,
            base,
            size,
            timestamp: None,
            checksum: ldr_checksum,
            ldr_entry: Some(at),
            pe: None,
            pe_error: None,
        };
        attach_pe(mem, &mut m);
        list.modules.push(m);
        next = ptr_at(&entry, 0, layout.ptr).unwrap_or(0);
    }
    list
}

/// Builds the module list of a triage dump from its driver list, reading PE headers where
/// the dump's data blocks hold them (`mem` is `None` when there is no virtual memory).
pub fn triage_modules(drivers: &[TriageDriver], mem: Option<&dyn VirtualMemory>) -> ModuleList {
    let mut modules = Vec::with_capacity(drivers.len().min(MAX_MODULES));
    let mut warnings = Vec::new();
    for d in drivers.iter().take(MAX_MODULES) {
        let mut m = Module {
            name: d.name.clone(),
            path: d.path.clone(),
            base: d.base,
            size: d.size,
            timestamp: Some(d.timestamp),
            checksum: Some(d.checksum),
            ldr_entry: None,
            pe: None,
            pe_error: None,
        };
        match mem {
            Some(mem) => attach_pe(mem, &mut m),
            None => m.pe_error = Some("no virtual memory".into()),
        }
        modules.push(m);
    }
    if drivers.len() > MAX_MODULES {
        warnings.push(format!(
            "triage driver list: stopped after {MAX_MODULES} of {} entries",
            drivers.len()
        ));
    }
    ModuleList {
        source: ModuleSource::TriageDriverList,
        modules,
        complete: drivers.len() <= MAX_MODULES,
        warnings,
    }
}

/// Reads the module's PE headers; their TimeDateStamp and CheckSum win over the loader's.
fn attach_pe(mem: &dyn VirtualMemory, m: &mut Module) {
    if m.base == 0 {
        m.pe_error = Some("no base address".into());
        return;
    }
    match read_pe(mem, m.base, Some(m.size)) {
        Ok(pe) => {
            m.timestamp = Some(pe.timestamp);
            m.checksum = Some(pe.checksum);
            m.pe = Some(pe);
        }
        Err(e) => m.pe_error = Some(e.to_string()),
    }
}

/// The module containing `addr`, if any.
pub fn find_module(modules: &[Module], addr: u64) -> Option<&Module> {
    modules.iter().find(|m| m.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    /// Builds a tiny x64 or x86 address space at `base` holding a list head and `n` entries
    /// with names, linked in a ring (or broken as the test wants).
    struct Builder {
        base: u64,
        mem: Vec<u8>,
        ptr: u8,
    }

    impl Builder {
        fn new(base: u64, ptr: u8) -> Self {
            Builder {
                base,
                mem: vec![0u8; 0x10000],
                ptr,
            }
        }
        fn put_ptr(&mut self, va: u64, v: u64) {
            let o = (va - self.base) as usize;
            if self.ptr == 8 {
                self.mem[o..o + 8].copy_from_slice(&v.to_le_bytes());
            } else {
                self.mem[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
            }
        }
        fn put_u32(&mut self, va: u64, v: u32) {
            let o = (va - self.base) as usize;
            self.mem[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn put_ustr(&mut self, desc: u64, buf: u64, s: &str, l: &LdrLayout) {
            let units: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            let o = (desc - self.base) as usize;
            self.mem[o..o + 2].copy_from_slice(&(units.len() as u16).to_le_bytes());
            self.mem[o + 2..o + 4].copy_from_slice(&(units.len() as u16).to_le_bytes());
            self.put_ptr(desc + l.us_buffer as u64, buf);
            let b = (buf - self.base) as usize;
            self.mem[b..b + units.len()].copy_from_slice(&units);
        }
        /// Entry i at base+0x1000+i*0x100, strings at base+0x8000+i*0x100.
        fn ring(&mut self, names: &[&str], l: &LdrLayout) -> u64 {
            let head = self.base + 0x100;
            let base = self.base;
            let entry = |i: usize| base + 0x1000 + i as u64 * 0x100;
            let mut prev = head;
            for (i, n) in names.iter().enumerate() {
                let e = entry(i);
                self.put_ptr(prev, e);
                self.put_ptr(
                    e + l.dll_base as u64,
                    0xfffff800_10000000 + i as u64 * 0x100000,
                );
                self.put_u32(e + l.size_of_image as u64, 0x8000);
                self.put_u32(e + l.checksum as u64, 0x1234 + i as u32);
                let sb = self.base + 0x8000 + i as u64 * 0x100;
                self.put_ustr(e + l.base_name as u64, sb, n, l);
                self.put_ustr(
                    e + l.full_name as u64,
                    sb + 0x80,
                    &format!("\\SystemRoot\\system32\\{n}"),
                    l,
                );
                prev = e;
            }
            self.put_ptr(prev, head);
            head
        }
    }

    #[test]
    fn x64_ring() {
        let mut b = Builder::new(0xfffff800_00000000, 8);
        let head = b.ring(&["ntoskrnl.exe", "hal.dll", "amdppm.sys"], &LDR_X64);
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 8), head);
        assert!(list.complete, "{:?}", list.warnings);
        let names: Vec<_> = list.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["ntoskrnl.exe", "hal.dll", "amdppm.sys"]);
        let m = &list.modules[2];
        assert_eq!(m.path, "\\SystemRoot\\system32\\amdppm.sys");
        assert_eq!(
            (m.base, m.size, m.checksum),
            (0xfffff800_10200000, 0x8000, Some(0x1236))
        );
        assert_eq!(m.timestamp, None);
        assert!(m.pe.is_none() && m.pe_error.is_some());
        assert_eq!(
            find_module(&list.modules, 0xfffff800_10207fff).map(|m| m.name.as_str()),
            Some("amdppm.sys")
        );
        assert!(find_module(&list.modules, 0xfffff800_10208000).is_none());
    }

    #[test]
    fn x86_ring() {
        let mut b = Builder::new(0x8000_0000, 4);
        let head = b.ring(&["ntkrnlpa.exe", "hal.dll"], &LDR_X86);
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 4), head);
        assert!(list.complete, "{:?}", list.warnings);
        assert_eq!(list.modules.len(), 2);
        assert_eq!(list.modules[1].name, "hal.dll");
        assert_eq!(list.modules[1].base, 0x10100000);
        assert_eq!(list.modules[1].checksum, Some(0x1235));
    }

    #[test]
    fn loop_is_detected() {
        let mut b = Builder::new(0xfffff800_00000000, 8);
        let head = b.ring(&["a.sys", "b.sys", "c.sys"], &LDR_X64);
        // c.sys links back to b.sys instead of the head.
        b.put_ptr(b.base + 0x1200, b.base + 0x1100);
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 8), head);
        assert!(!list.complete);
        assert_eq!(list.modules.len(), 3);
        assert!(list.warnings[0].contains("loop"), "{:?}", list.warnings);
    }

    #[test]
    fn unreadable_entry_and_null_link_stop_with_a_warning() {
        let mut b = Builder::new(0xfffff800_00000000, 8);
        let head = b.ring(&["a.sys", "b.sys"], &LDR_X64);
        b.put_ptr(b.base + 0x1000, 0xfffff900_00000000);
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 8), head);
        assert_eq!((list.complete, list.modules.len()), (false, 1));
        assert!(list.warnings[0].contains("not readable"));
        b.put_ptr(b.base + 0x1000, 0);
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 8), head);
        assert_eq!((list.complete, list.modules.len()), (false, 1));
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 8), 0x1000);
        assert!(list.modules.is_empty() && !list.complete);
    }

    #[test]
    fn bad_name_pointer_keeps_the_module() {
        let mut b = Builder::new(0xfffff800_00000000, 8);
        let head = b.ring(&["a.sys"], &LDR_X64);
        b.put_ptr(b.base + 0x1000 + 0x58 + 8, 0x1234);
        let list = walk_loaded_modules(&SliceMemory::new(b.base, &b.mem, 8), head);
        assert!(list.complete);
        assert_eq!(list.modules[0].name, "");
        assert_eq!(list.modules[0].path, "\\SystemRoot\\system32\\a.sys");
        assert_eq!(list.warnings.len(), 1);
    }

    #[test]
    fn triage_list_keeps_driver_values_without_memory() {
        let drivers = vec![TriageDriver {
            name: "ntoskrnl.exe".into(),
            path: "\\SystemRoot\\system32\\ntoskrnl.exe".into(),
            base: 0xfffff804_7ba00000,
            size: 0x1046000,
            timestamp: 0x1234,
            checksum: 0x5678,
        }];
        let list = triage_modules(&drivers, None);
        assert_eq!(list.modules[0].name, "ntoskrnl.exe");
        assert_eq!(list.modules[0].path, "\\SystemRoot\\system32\\ntoskrnl.exe");
        assert_eq!(
            (list.modules[0].timestamp, list.modules[0].checksum),
            (Some(0x1234), Some(0x5678))
        );
    }
}
