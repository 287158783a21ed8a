//! Code addresses in the report by function and source line: the drivers' call sites, the
//! call sites their blocks were attributed to (provenance), and the crash's faulting
//! instruction, each named `module!Function+0xoff` with `file:line` when the module's PDB is
//! found through the symbol path and carries line information.
//!
//! The crashing thread's stack is walked here too ([`super::crash`]): its frames are code
//! addresses to name, and their modules join the lookup.
//!
//! Only the modules those addresses fall in are looked up (a lookup may download), and each
//! module's status then goes into the module list with the entry that answered and whether its
//! PDB has lines. In the service the symbol path starts with the tenant's uploaded store, so a
//! vendor's private PDB names its own driver's code for that tenant only.

use super::{overview, Input};
use crate::kernel::Module;
use crate::report::analysis::{AnalysisModule, AnalysisReport, ModulePdb};
use crate::report::SourceRef;
use crate::symbols::resolve::{resolve_modules, ResolveOptions, SymbolStatus};
use crate::symbols::symbolizer::Symbolizer;
use std::collections::BTreeMap;
use std::time::Instant;

/// Driver PDBs looked up in parallel.
const LOOKUP_WORKERS: usize = 8;

/// Names every code address of the report and fills `report.modules`.
pub(super) fn name_code(report: &mut AnalysisReport, input: &Input, deadline: Option<Instant>) {
    let mods = &input.kernel.modules.modules;
    let faulting = input.kernel.bugcheck.faulting.map(|f| f.address);
    let walked =
        super::crash::walk_crash(&input.dump, &input.kernel, input.store.as_ref(), deadline);
    let frames: Vec<u64> = walked
        .iter()
        .flat_map(|w| w.walk.frames.iter().map(|f| f.ip))
        .collect();
    let wanted: Vec<Module> = mods
        .iter()
        .filter(|m| needs_names(report, m, faulting) || frames.iter().any(|&a| m.contains(a)))
        .cloned()
        .collect();
    let statuses = match &input.store {
        Some(store) => resolve_modules(
            store,
            &wanted,
            ResolveOptions {
                workers: LOOKUP_WORKERS,
                deadline,
            },
        ),
        None => Vec::new(),
    };
    let mut sym = Symbolizer::new(&wanted, &statuses, input.kernel.kernel_base);
    name_sites(report, &mut sym);
    report.crash = walked.map(|w| super::crash::report(&w, &input.dump, &input.kernel, &mut sym));
    if let Some(addr) = faulting {
        if let Some(n) = sym.name(addr).filter(|n| n.named) {
            report.bugcheck.faulting_symbol = Some(n.symbol);
            report.bugcheck.faulting_source = n.source.map(SourceRef::from);
        }
    }
    let by_name: BTreeMap<String, SymbolStatus> = wanted
        .iter()
        .zip(statuses.iter().cloned())
        .map(|(m, s)| (m.name.clone(), s))
        .collect();
    report.modules = overview::modules(&input.kernel, &by_name);
    for m in report.modules.iter_mut() {
        if let Some(st) = by_name.get(&m.name) {
            add_status(m, st, sym.has_lines(&m.name));
        }
    }
}

/// A module is looked up when one of the report's code addresses is inside it.
fn needs_names(report: &AnalysisReport, m: &Module, faulting: Option<u64>) -> bool {
    let driver = report.drivers.iter().find(|d| d.module == m.name);
    let has_sites = driver.is_some_and(|d| {
        !d.call_sites.is_empty() || d.provenance.as_ref().is_some_and(|p| !p.sites.is_empty())
    });
    has_sites || faulting.is_some_and(|a| m.contains(a))
}

/// Call sites (function at the tag's instruction, line of the allocation call) and
/// provenance's sites (the call instruction).
fn name_sites(report: &mut AnalysisReport, sym: &mut Symbolizer<'_>) {
    for d in report.drivers.iter_mut() {
        for c in d.call_sites.iter_mut() {
            c.symbol = sym.name(c.address.0).filter(|n| n.named).map(|n| n.symbol);
            let call = c.call.map_or(c.address.0, |h| h.0);
            c.source = sym.name(call).and_then(|n| n.source).map(SourceRef::from);
        }
        for s in d.provenance.iter_mut().flat_map(|p| p.sites.iter_mut()) {
            if let Some(n) = sym.name(s.address.0).filter(|n| n.named) {
                s.symbol = Some(n.symbol);
                s.source = n.source.map(SourceRef::from);
            }
        }
    }
}

/// The module's symbol status, the entry that answered, its PDB key when an image fetched from
/// the symbol path gave it (a triage dump holds no PE headers), and whether its PDB has lines.
fn add_status(m: &mut AnalysisModule, st: &SymbolStatus, lines: Option<bool>) {
    m.symbols_source = st.source.clone();
    m.line_info = lines;
    if m.pdb.is_none() {
        m.pdb = st.codeview.as_ref().map(|cv| ModulePdb {
            name: cv.pdb_name().to_string(),
            guid: cv.guid.clone(),
            age: cv.age,
        });
    }
}
