//! Reading the kernel variables `!vm` prints, each with where it came from: a variable the
//! debugger data block points to (`kdbg:NAME`), a global of the profile (`profile:NAME`), or a
//! field reached from a global through the profile's structure layouts
//! (`profile:MiState.Vs.SizeOfPagedPoolInPages`).

use super::vm::Figure;
use super::KernelContext;
use crate::memory::VirtualMemory;

/// One step of a field path: (structure, field).
pub type Step<'s> = (&'s str, &'s str);

/// The memory, kernel and debugger-data-block values the figures are read from.
pub struct Vars<'a> {
    pub mem: &'a dyn VirtualMemory,
    pub ctx: &'a KernelContext<'a>,
    /// The dereferenced debugger-data-block variables (`KernelInfo::kdbg_values`).
    pub kdbg: &'a [(&'a str, u64)],
}

impl Vars<'_> {
    /// A pointer-sized variable times `unit` (1 for bytes, the page size for pages): the
    /// debugger data block's value, else read at the profile's global.
    pub fn var(&self, name: &str, unit: u64) -> Option<Figure> {
        if let Some(&(_, v)) = self.kdbg.iter().find(|(n, _)| *n == name) {
            return Some(Figure {
                bytes: v.saturating_mul(unit),
                source: format!("kdbg:{name}"),
            });
        }
        let v = self.mem.read_ptr(self.ctx.global(name)?).ok()?;
        Some(Figure {
            bytes: v.saturating_mul(unit),
            source: format!("profile:{name}"),
        })
    }

    /// As [`Vars::var`], a zero value taken as "not set" (a live kernel never has none).
    pub fn nonzero(&self, name: &str, unit: u64) -> Option<Figure> {
        self.var(name, unit).filter(|f| f.bytes != 0)
    }

    /// A ULONG global of the profile.
    pub fn ulong(&self, name: &str) -> Option<u32> {
        self.mem.read_u32(self.ctx.global(name)?).ok()
    }

    /// The address of `path` from the global `root` (each step's offset from the profile).
    pub fn field_addr(&self, root: &str, path: &[Step]) -> Option<u64> {
        let p = self.ctx.profile?;
        let mut va = self.ctx.global(root)?;
        for (ty, field) in path {
            va = va.checked_add(p.offset(ty, field)?)?;
        }
        Some(va)
    }

    /// The non-zero 64-bit count of pages at `path` from `root`, in bytes, with its source
    /// `profile:{root}.{fields}`.
    pub fn pages_at(&self, root: &str, path: &[Step]) -> Option<Figure> {
        let v = self
            .mem
            .read_u64(self.field_addr(root, path)?)
            .ok()
            .filter(|&v| v != 0)?;
        Some(Figure {
            bytes: v.saturating_mul(crate::memory::PAGE_SIZE),
            source: format!("profile:{}", label(root, path)),
        })
    }
}

/// `root.field.field`, as a source names it.
pub fn label(root: &str, path: &[Step]) -> String {
    std::iter::once(root)
        .chain(path.iter().map(|(_, f)| *f))
        .collect::<Vec<_>>()
        .join(".")
}
