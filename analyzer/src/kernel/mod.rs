//! The kernel as seen from a dump: the debugger data block, loaded modules (with their PE
//! headers in memory) and the bugcheck.
//!
//! [`read_kernel`] never fails on a dump that opened: whatever cannot be read (no virtual
//! memory on arm64, an encoded debugger block without keys, a broken module list) becomes a
//! `None` plus a warning, so that `inspect` always shows what *is* there.

pub mod bugcheck;
pub(crate) mod bytes;
pub mod fault;
pub mod kdbg;
pub mod modules;
pub mod pe;
pub mod unloaded;

pub use bugcheck::{bugcheck_name, describe, BugcheckDescription, BugcheckName, SymbolizedParam};
pub use fault::{FaultSource, FaultingAddress};
pub use kdbg::{Kdbg, KdbgError, KdbgKeys};
pub use modules::{Module, ModuleList, ModuleSource};
pub use pe::{
    CodeView, Import, ImportedDll, Imports, PeError, PeFile, PeInfo, Section, SliceMemory,
};

use crate::dump::Dump;
use crate::memory::VirtualMemory;

/// Longest NtBuildLab string read.
const MAX_BUILD_LAB: usize = 256;

/// The bugcheck with its name and symbolized parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugcheckInfo {
    pub code: u32,
    /// `None` for a code not in the table.
    pub name: Option<BugcheckName>,
    pub params: [SymbolizedParam; 4],
    /// The instruction the crash is about (documented parameter, else the context record).
    pub faulting: Option<FaultingAddress>,
}

/// Everything the kernel layer could read from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelInfo {
    /// Why there is no kernel virtual memory (e.g. arm64 page tables), when there is none.
    pub memory_error: Option<String>,
    pub kdbg: Option<Kdbg>,
    /// Why `kdbg` is `None` (unreadable, encoded without keys, bad tag...).
    pub kdbg_error: Option<String>,
    /// nt's base: KDBG KernBase, else the first loaded module.
    pub kernel_base: Option<u64>,
    /// The string at KDBG NtBuildLab, e.g. "19041.1.amd64fre.vb_release.191206-1406".
    pub build_lab: Option<String>,
    /// Values of the kernel variables whose addresses the debugger data block holds
    /// ([`kdbg::DEREF_FIELDS`]), for those in the dump.
    pub kdbg_values: Vec<(&'static str, u64)>,
    pub modules: ModuleList,
    pub bugcheck: BugcheckInfo,
    /// Everything that could not be read, one line each.
    pub warnings: Vec<String>,
}

impl KernelInfo {
    /// The module that contains the kernel base (ntoskrnl and its variants).
    pub fn kernel_module(&self) -> Option<&Module> {
        let base = self.kernel_base?;
        self.modules.modules.iter().find(|m| m.base == base)
    }
}

/// Reads the kernel's view of `dump` without symbols (an encoded debugger data block stays
/// unread: see [`read_kernel_with_keys`]).
pub fn read_kernel(dump: &Dump) -> KernelInfo {
    read_kernel_with_keys(dump, None)
}

/// As [`read_kernel`], decoding an encoded debugger data block with `keys` (from symbols).
pub fn read_kernel_with_keys(dump: &Dump, keys: Option<&KdbgKeys>) -> KernelInfo {
    let header = dump.header();
    let mut warnings: Vec<String> = dump.truncation().iter().map(|t| t.to_string()).collect();
    let (memory, memory_error) = match dump.kernel_memory() {
        Ok(m) => (Some(m), None),
        Err(e) => {
            warnings.push(e.to_string());
            (None, Some(e.to_string()))
        }
    };
    let mem: Option<&dyn VirtualMemory> = memory.as_deref();

    // The debugger data block: from memory at the header's address, else the triage copy.
    let (kdbg, kdbg_error) = match header.kd_debugger_data_block {
        None => (
            None,
            Some("the header gives no debugger data block address".to_string()),
        ),
        Some(va) => {
            let from_mem = match mem {
                Some(m) => kdbg::read_kdbg(m, va, keys).map_err(|e| e.to_string()),
                None => Err("no virtual memory".to_string()),
            };
            match (from_mem, dump.triage_debugger_data()) {
                (Ok(k), _) => (Some(k), None),
                (Err(e), Some(bytes)) => {
                    let ptr = if header.arch == crate::dump::Arch::X86 {
                        4
                    } else {
                        8
                    };
                    match kdbg::parse_kdbg_bytes(va, bytes, ptr) {
                        Ok(k) => (Some(k), None),
                        Err(e2) => (None, Some(format!("{e}; triage copy: {e2}"))),
                    }
                }
                (Err(e), None) => (None, Some(e)),
            }
        }
    };
    if let Some(e) = &kdbg_error {
        warnings.push(format!("debugger data block: {e}"));
    }

    let modules = match (dump.triage(), mem) {
        (Some(t), _) => modules::triage_modules(&t.drivers, mem),
        (None, Some(m)) => {
            let head = kdbg
                .as_ref()
                .and_then(Kdbg::ps_loaded_module_list)
                .or(header.ps_loaded_module_list);
            match head {
                Some(h) => modules::walk_loaded_modules(m, h),
                None => ModuleList {
                    source: ModuleSource::None,
                    modules: Vec::new(),
                    complete: false,
                    warnings: vec![
                        "no PsLoadedModuleList address in the debugger data block or the header"
                            .into(),
                    ],
                },
            }
        }
        (None, None) => ModuleList {
            source: ModuleSource::None,
            modules: Vec::new(),
            complete: false,
            warnings: vec!["modules not read: no virtual memory".into()],
        },
    };
    warnings.extend(modules.warnings.iter().cloned());
    let without_pe = modules.modules.iter().filter(|m| m.pe.is_none()).count();
    if without_pe > 0 && mem.is_some() {
        warnings.push(format!(
            "PE headers not in the dump for {without_pe} of {} modules",
            modules.modules.len()
        ));
    }

    let kernel_base = kdbg
        .as_ref()
        .and_then(Kdbg::kern_base)
        .or_else(|| modules.modules.first().map(|m| m.base));
    let build_lab = match (kdbg.as_ref().and_then(|k| k.get("NtBuildLab")), mem) {
        (Some(va), Some(m)) if va != 0 => match pe::read_c_string(m, va, MAX_BUILD_LAB) {
            Ok(s) => Some(s),
            Err(e) => {
                warnings.push(format!("NtBuildLab string: {e}"));
                None
            }
        },
        _ => None,
    };

    let kdbg_values = match (&kdbg, mem) {
        (Some(k), Some(m)) => {
            let (values, unreadable) = k.deref_values(m);
            if !unreadable.is_empty() {
                warnings.push(format!(
                    "kernel variables not in the dump: {}",
                    unreadable.join(", ")
                ));
            }
            values
        }
        _ => Vec::new(),
    };

    let bc = header.bugcheck;
    let bugcheck = BugcheckInfo {
        code: bc.code,
        name: bugcheck_name(bc.code),
        params: bugcheck::symbolize_params(&bc.params, &modules.modules),
        faulting: fault::faulting_address(
            bc.code,
            &bc.params,
            fault::context_instruction_pointer(dump.file_bytes(), header.arch),
        ),
    };
    KernelInfo {
        memory_error,
        kdbg,
        kdbg_error,
        kernel_base,
        build_lab,
        kdbg_values,
        modules,
        bugcheck,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::pe::{read_pe, SliceMemory};
    use super::{kdbg, modules};

    /// Random memory dressed up with the signatures each reader checks first ("MZ", "PE",
    /// "KDBG", list links pointing back inside): no reader may panic, loop or allocate wildly.
    #[test]
    fn hostile_memory_never_panics() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = 0xfffff800_00000000u64;
        for round in 0..400 {
            let mut m: Vec<u8> = (0..0x4000).map(|_| next() as u8).collect();
            m[0..2].copy_from_slice(b"MZ");
            let lfanew = (next() % 0x3f00) as u32 & !3;
            m[0x3c..0x40].copy_from_slice(&lfanew.to_le_bytes());
            let l = lfanew as usize;
            if l + 4 <= m.len() {
                m[l..l + 4].copy_from_slice(b"PE\0\0");
            }
            if l + 26 <= m.len() {
                m[l + 24..l + 26].copy_from_slice(if round % 2 == 0 {
                    &[0x0b, 0x02]
                } else {
                    &[0x0b, 0x01]
                });
            }
            m[0x10..0x14].copy_from_slice(b"KDBG");
            // Make list links point inside the buffer half of the time.
            for i in (0x100..0x4000).step_by(0x100) {
                if next() % 2 == 0 {
                    let target = (base + next() % 0x4000) & !7;
                    m[i..i + 8].copy_from_slice(&target.to_le_bytes());
                }
            }
            let ptr = if round % 3 == 0 { 4 } else { 8 };
            let mem = SliceMemory::new(base, &m, ptr);
            let _ = read_pe(&mem, base, None);
            let _ = read_pe(&mem, base, Some((next() % 0x10000) as u32));
            let _ = kdbg::read_kdbg(&mem, base, None);
            let list = modules::walk_loaded_modules(&mem, base + 0x100);
            assert!(list.modules.len() <= modules::MAX_MODULES);
        }
    }
}
