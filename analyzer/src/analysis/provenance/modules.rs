//! The loaded modules as the pointer scan sees them: address ranges (which module does a
//! pointer point into?), whether a module is the kernel itself, and its writable sections
//! (where a driver keeps its global list heads and pointers: roots of what it holds).

use crate::kernel::Module;

/// IMAGE_SCN_MEM_WRITE: a section the module writes (.data, .bss in .data).
const SCN_MEM_WRITE: u32 = 0x8000_0000;
/// IMAGE_SCN_MEM_DISCARDABLE: INIT sections, gone after the driver started.
const SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
/// IMAGE_SCN_MEM_EXECUTE.
const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// Largest writable section scanned (real drivers' are well under a few MiB; nt's is larger).
pub const MAX_SECTION_BYTES: u64 = 32 << 20;

/// The module list, sorted by base for lookups.
#[derive(Debug, Default)]
pub struct ModuleMap {
    /// (start, end, index into the module list), sorted by start.
    ranges: Vec<(u64, u64, u16)>,
    names: Vec<String>,
    bases: Vec<u64>,
    /// The kernel image and the HAL: everything points into them (object types, dispatch
    /// tables), so a pointer into them says nothing about who owns a block.
    core: Vec<bool>,
}

impl ModuleMap {
    /// `kernel_base` marks the kernel image (whatever its file name: ntoskrnl, ntkrnlpa...).
    pub fn new(modules: &[Module], kernel_base: Option<u64>) -> Self {
        let mut ranges: Vec<(u64, u64, u16)> = modules
            .iter()
            .enumerate()
            .filter(|(_, m)| m.size > 0)
            .filter_map(|(i, m)| {
                let i = u16::try_from(i).ok()?;
                Some((m.base, m.base.saturating_add(u64::from(m.size)), i))
            })
            .collect();
        ranges.sort_unstable();
        let core = modules
            .iter()
            .map(|m| Some(m.base) == kernel_base || m.name.eq_ignore_ascii_case("hal.dll"))
            .collect();
        ModuleMap {
            ranges,
            names: modules.iter().map(|m| m.name.clone()).collect(),
            bases: modules.iter().map(|m| m.base).collect(),
            core,
        }
    }

    /// The module whose image holds `address`.
    pub fn at(&self, address: u64) -> Option<u16> {
        let i = self.ranges.partition_point(|r| r.0 <= address);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (address < r.1).then_some(r.2)
    }

    pub fn name(&self, i: u16) -> &str {
        self.names.get(usize::from(i)).map_or("?", String::as_str)
    }

    /// `module+0x...` for an address in a module's image, else the address.
    pub fn offset(&self, address: u64) -> String {
        match self.at(address) {
            Some(m) => {
                let base = self.bases.get(usize::from(m)).copied().unwrap_or(0);
                format!("{}+{:#x}", self.name(m), address.wrapping_sub(base))
            }
            None => format!("{address:#x}"),
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The kernel image or the HAL.
    pub fn is_core(&self, i: u16) -> bool {
        self.core.get(usize::from(i)).copied().unwrap_or(false)
    }
}

/// The writable, resident sections of a module's image, as (address, bytes).
pub fn writable_sections(m: &Module) -> Vec<(u64, u64)> {
    let Some(pe) = &m.pe else {
        return Vec::new();
    };
    pe.sections
        .iter()
        .filter(|s| {
            s.characteristics & SCN_MEM_WRITE != 0
                && s.characteristics & (SCN_MEM_DISCARDABLE | SCN_MEM_EXECUTE) == 0
        })
        .map(|s| {
            let size = u64::from(s.virtual_size.max(s.raw_size)).min(MAX_SECTION_BYTES);
            (m.base.wrapping_add(u64::from(s.virtual_address)), size)
        })
        .filter(|&(_, size)| size > 0)
        .collect()
}
