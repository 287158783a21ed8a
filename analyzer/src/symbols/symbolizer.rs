//! Names code addresses as WinDbg does, `module!Function+0xoff`, and with the source line
//! (`request.c:118`) when the module's PDB is a private one with line information.
//!
//! The PDBs are those [`super::resolve`] found for each module (through the symbol path: a
//! tenant's uploaded store first in the service, then the public path). Each PDB's names and
//! lines are loaded once, and only for modules an address falls in.

use super::lines::{SourceLine, SourceLines};
use super::names::{FunctionNames, Undecorate};
use super::resolve::{debugger_module_name, SymbolState, SymbolStatus};
use crate::kernel::Module;
use std::collections::HashMap;

/// Why a named address has no source line although its PDB was read.
pub const NO_LINES_IN_PDB: &str = "the PDB carries no line information";
/// The PDB has lines, but none covers this address (compiler-generated code, a gap).
pub const NO_LINE_HERE: &str = "no line information at this address";

/// One module's PDB, read.
struct Loaded {
    names: Result<FunctionNames, String>,
    /// `Err` when the names could not be read (the lines are not tried then).
    lines: Result<SourceLines, String>,
}

/// Names addresses with the PDBs found.
pub struct Symbolizer<'a> {
    modules: &'a [Module],
    statuses: &'a [SymbolStatus],
    kernel_base: Option<u64>,
    loaded: HashMap<usize, Loaded>,
}

/// One named address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAddress {
    pub address: u64,
    /// The module's file name (`amdppm.sys`).
    pub module: String,
    pub module_offset: u64,
    /// `amdppm!WriteIoMemRawEx+0x70`, or `amdppm+0x334c` without a usable PDB.
    pub symbol: String,
    /// Whether a function name (not just module+offset) was found.
    pub named: bool,
    /// The function's name alone (`WriteIoMemRawEx`), when named.
    pub function: Option<String>,
    /// The address minus the function's start, when named.
    pub displacement: Option<u64>,
    /// Why only module+offset (no PDB, unreadable PDB, no symbol before the address).
    pub note: Option<String>,
    /// The source line of the address, from the PDB's line information.
    pub source: Option<SourceLine>,
    /// Why no source line although the PDB was read ([`NO_LINES_IN_PDB`], [`NO_LINE_HERE`]).
    pub source_note: Option<String>,
}

impl NamedAddress {
    /// `symbol (file:line)`, or the symbol alone: the one-line form text output prints.
    pub fn display(&self) -> String {
        match &self.source {
            Some(s) => format!("{} ({})", self.symbol, s.short()),
            None => self.symbol.clone(),
        }
    }
}

impl<'a> Symbolizer<'a> {
    /// `statuses` in the same order as `modules` (as
    /// [`super::resolve::resolve_modules`] returns them).
    pub fn new(
        modules: &'a [Module],
        statuses: &'a [SymbolStatus],
        kernel_base: Option<u64>,
    ) -> Self {
        Symbolizer {
            modules,
            statuses,
            kernel_base,
            loaded: HashMap::new(),
        }
    }

    /// Names `addr`, or `None` when it is in no module (or is 0).
    pub fn name(&mut self, addr: u64) -> Option<NamedAddress> {
        if addr == 0 {
            return None;
        }
        let (i, m) = self
            .modules
            .iter()
            .enumerate()
            .find(|(_, m)| m.contains(addr))?;
        let short = debugger_module_name(m, self.kernel_base == Some(m.base));
        let offset = addr - m.base;
        let mut out = NamedAddress {
            address: addr,
            module: m.name.clone(),
            module_offset: offset,
            symbol: format!("{short}+{offset:#x}"),
            named: false,
            function: None,
            displacement: None,
            note: None,
            source: None,
            source_note: None,
        };
        let Some(loaded) = self.load(i, &mut out) else {
            return Some(out);
        };
        let rva = u32::try_from(offset).ok();
        match &loaded.names {
            Ok(names) => match rva.and_then(|o| names.lookup(o)) {
                Some(hit) => {
                    out.symbol = format!("{short}!{}", hit.display());
                    out.named = true;
                    out.function = Some(hit.name.to_string());
                    out.displacement = Some(u64::from(hit.offset));
                }
                None => out.note = Some("no symbol at or before this offset in the PDB".into()),
            },
            Err(e) => out.note = Some(format!("PDB unreadable: {e}")),
        }
        match &loaded.lines {
            Ok(lines) if lines.is_empty() => out.source_note = Some(NO_LINES_IN_PDB.into()),
            Ok(lines) => match rva.and_then(|o| lines.lookup(o)) {
                Some(line) => out.source = Some(line),
                None => out.source_note = Some(NO_LINE_HERE.into()),
            },
            Err(_) => {}
        }
        Some(out)
    }

    /// Whether module `name`'s PDB carries line information: `None` when no PDB of it was
    /// read (not found, or no address of it named yet).
    pub fn has_lines(&self, name: &str) -> Option<bool> {
        let i = self.modules.iter().position(|m| m.name == name)?;
        match &self.loaded.get(&i)?.lines {
            Ok(lines) => Some(!lines.is_empty()),
            Err(_) => None,
        }
    }

    /// The PDB of module `i`, read once; `None` (with `out.note` set) when there is none.
    fn load(&mut self, i: usize, out: &mut NamedAddress) -> Option<&Loaded> {
        let Some(st) = self.statuses.get(i) else {
            out.note = Some("symbols not looked up".into());
            return None;
        };
        let Some(pdb) = st.pdb.as_ref().filter(|_| st.status == SymbolState::Found) else {
            out.note = Some(format!("symbols {}", st.status.as_str()));
            return None;
        };
        let undecorate = match st.machine {
            Some(0x14c) => Undecorate::X86,
            _ => Undecorate::Auto,
        };
        Some(self.loaded.entry(i).or_insert_with(|| {
            let names = FunctionNames::from_pdb(pdb, undecorate).map_err(|e| e.to_string());
            let lines = match &names {
                Ok(_) => SourceLines::from_pdb(pdb).map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            Loaded { names, lines }
        }))
    }
}
