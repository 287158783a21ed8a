//! The `pooltriage inspect` report: what a dump is and what the kernel layer read from it.
//! Documented field by field in docs/json.md; [`SCHEMA_VERSION`] changes on any incompatible
//! change (fields are only ever added within a version).

use super::bugcheck::{describe_bugcheck, BugcheckDescriptionReport};
use super::hex::Hex;
use super::time::filetime_to_rfc3339;
use crate::dump::Dump;
use crate::kernel::bugcheck::NameSource;
use crate::kernel::pe::{machine_name, Import};
use crate::kernel::{KernelInfo, Module, ModuleSource, PeInfo};
use crate::symbols::resolve::{SymbolState, SymbolStatus, Symbolizer};
use serde::{Deserialize, Serialize};

/// Version of the inspect JSON schema. Ticket systems parse this output: bump only on an
/// incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectReport {
    pub schema_version: u32,
    /// The analyzer's version that wrote the report.
    pub generator: String,
    pub file: FileInfo,
    pub dump: DumpInfo,
    pub bugcheck: BugcheckReport,
    pub kdbg: KdbgReport,
    pub kernel: KernelReport,
    /// Where the module list came from and whether it was read to its end.
    pub module_list: ModuleListInfo,
    /// Loaded modules in list order (the kernel first).
    pub modules: Vec<ModuleReport>,
    /// Everything that could not be read, one line each.
    pub warnings: Vec<String>,
    /// The symbol path used (WinDbg form), or null when symbols were not looked up.
    #[serde(default)]
    pub symbol_path: Option<String>,
    /// Per symbol status, how many modules have it (e.g. {"found": 3, "not found": 148}).
    #[serde(default)]
    pub symbol_summary: std::collections::BTreeMap<String, usize>,
    /// The crashing thread's stack, followup module and bucket, as in the analyze report
    /// (docs/json.md "crash"); null when the dump has no readable starting context.
    #[serde(default)]
    pub crash: Option<super::crash::CrashReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// As given on the command line.
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpInfo {
    /// "full" | "summary" | "triage" | "kernel-bitmap" | "full-bitmap" | "rdmp-kernel" |
    /// "rdmp-kernel-user" | "rdmp-complete"
    pub format: String,
    pub dump_type: u32,
    /// "x86" | "x64" | "arm64"
    pub arch: String,
    pub pae: bool,
    pub major_version: u32,
    pub build: u32,
    pub processors: u32,
    pub machine_image_type: Hex,
    /// FILETIME, or null when the writer left it unset.
    pub system_time: Option<Hex>,
    /// The same instant as "YYYY-MM-DDTHH:MM:SSZ".
    pub system_time_utc: Option<String>,
    pub directory_table_base: Hex,
    pub pfn_database: Option<Hex>,
    pub ps_loaded_module_list: Option<Hex>,
    pub ps_active_process_head: Option<Hex>,
    pub kd_debugger_data_block: Option<Hex>,
    pub header_size: u64,
    /// Physical pages stored in the file (0 for a triage dump).
    pub stored_pages: u64,
    /// Whether kernel virtual memory can be read.
    pub virtual_memory: bool,
    /// Why not, when it cannot (e.g. arm64 page tables).
    pub virtual_memory_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BugcheckReport {
    pub code: Hex,
    /// Name from Microsoft's bug check reference; null for an unknown code.
    pub name: Option<String>,
    /// The code without the 0x10000000 "_M" flag.
    pub base_code: Hex,
    /// The code concerns pool or memory.
    pub pool_or_memory: bool,
    pub params: [Hex; 4],
    /// "module+0xoffset" for each parameter inside a loaded module, else null.
    pub params_symbolized: [Option<String>; 4],
    /// `module!Function+0xoff` (WinDbg's form) for each parameter inside a loaded module,
    /// `module+0xoff` when its PDB gives no name; null outside modules or without symbols.
    #[serde(default)]
    pub params_named: [Option<String>; 4],
    /// The instruction the crash is about, when known.
    #[serde(default)]
    pub faulting: Option<FaultingReport>,
    /// Where `name` comes from; null for an unknown code.
    #[serde(default)]
    pub name_source: Option<NameSource>,
    /// What the code's page of the bug check reference says the parameters mean; null when this
    /// tool does not carry the code's page.
    #[serde(default)]
    pub description: Option<BugcheckDescriptionReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultingReport {
    pub address: Hex,
    /// "param N" (the bugcheck parameter the reference documents) or "context record".
    pub from: String,
    /// The module's file name, when the address is inside one.
    pub module: Option<String>,
    /// "module+0xoffset".
    pub module_offset: Option<String>,
    /// `module!Function+0xoff`, or `module+0xoff` without a usable PDB; null outside modules.
    pub symbol: Option<String>,
    /// Whether `symbol` carries a function name.
    pub named: bool,
    /// Why there is no function name.
    pub note: Option<String>,
    /// The instruction's source line, when the module's PDB carries line information.
    #[serde(default)]
    pub source: Option<super::source::SourceRef>,
    /// Why no source line although the PDB was read ("the PDB carries no line information").
    #[serde(default)]
    pub source_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSymbolsReport {
    /// "found" | "not found" | "malformed" | "download failed" | "timed out" | "no key" |
    /// "too large" | "hostile name" | "cache error"
    pub status: String,
    /// The symbol-path entry that answered the PDB.
    pub source: Option<String>,
    /// The PDB's key and where it came from.
    pub pdb: Option<PdbRef>,
    /// "dump" (PE headers in the dump) | "image" (the image fetched by timestamp and size).
    pub pdb_key_from: Option<String>,
    /// Local path of the PDB (cache or store).
    pub pdb_path: Option<String>,
    /// Local path of the image fetched for its CodeView record.
    pub image_path: Option<String>,
    /// The symbol-path entry that answered the image.
    pub image_source: Option<String>,
    /// Why not found, one line.
    pub error: Option<String>,
    /// Whether the PDB carries source line information; null when it was not read (only the
    /// PDBs of modules an address was named in are read).
    #[serde(default)]
    pub line_info: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdbgReport {
    /// Whether a valid block was read.
    pub found: bool,
    pub va: Option<Hex>,
    pub size: Option<u32>,
    /// The block was encoded in memory and was decoded with keys from symbols.
    pub decoded: bool,
    /// Why the block could not be read (e.g. "encoded, no keys").
    pub error: Option<String>,
    /// Field name (wdbgexts.h) -> value, for the fields inside the block.
    pub fields: std::collections::BTreeMap<String, Hex>,
    /// Field name -> the pointer-sized value stored AT that field's address (e.g. the PFN
    /// database, PoolTrackTable, pool bounds and counters), for those in the dump.
    pub values: std::collections::BTreeMap<String, Hex>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelReport {
    pub base: Option<Hex>,
    /// Size of the kernel image, from its module entry.
    pub size: Option<u32>,
    /// Module name of the kernel (ntoskrnl.exe, ntkrnlpa.exe, ...).
    pub name: Option<String>,
    pub build_lab: Option<String>,
    pub pdb: Option<PdbRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdbRef {
    /// PDB file name (no directory), e.g. "ntkrnlmp.pdb".
    pub name: String,
    /// Upper-case dashed GUID; for an old "NB10" record, the 8-digit signature.
    pub guid: String,
    pub age: u32,
    /// The path the linker recorded, when it differs from `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleListInfo {
    /// "PsLoadedModuleList" | "triage-driver-list" | "none"
    pub source: String,
    /// The list head address, for PsLoadedModuleList.
    pub list_head: Option<Hex>,
    pub count: usize,
    /// False when the list walk stopped early (see warnings).
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReport {
    pub name: String,
    pub path: String,
    pub base: Hex,
    pub size: u32,
    /// PE TimeDateStamp (or the triage entry's when the header is not in the dump).
    pub timestamp: Option<Hex>,
    pub checksum: Option<Hex>,
    pub pdb: Option<PdbRef>,
    pub pe: Option<PeReport>,
    /// Why `pe` is null.
    pub pe_error: Option<String>,
    /// Symbol status; null when symbols were not looked up.
    #[serde(default)]
    pub symbols: Option<ModuleSymbolsReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeReport {
    pub machine: Hex,
    /// "x86" | "x64" | "arm64" | "arm" | "ia64", or null for another value.
    pub machine_name: Option<String>,
    pub timestamp: Hex,
    pub size_of_image: u32,
    pub checksum: Hex,
    pub sections: Vec<SectionReport>,
    /// Imported DLLs with their function counts; null when the image has no import table.
    pub imports: Option<ImportsReport>,
    /// What could not be read from the image.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionReport {
    pub name: String,
    pub virtual_address: Hex,
    pub virtual_size: u32,
    pub characteristics: Hex,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportsReport {
    pub dll_count: usize,
    pub function_count: usize,
    pub complete: bool,
    pub dlls: Vec<ImportedDllReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedDllReport {
    pub name: String,
    pub functions: usize,
    /// Functions imported by ordinal only.
    pub by_ordinal: usize,
}

impl InspectReport {
    /// Assembles the report from an opened dump and what the kernel layer read from it.
    pub fn build(path: &str, dump: &Dump, kernel: &KernelInfo) -> InspectReport {
        let h = dump.header();
        let dump_info = DumpInfo {
            format: dump.format().as_str().to_string(),
            dump_type: h.dump_type,
            arch: h.arch.as_str().to_string(),
            pae: h.pae,
            major_version: h.major_version,
            build: h.build,
            processors: h.processors,
            machine_image_type: Hex::from(h.machine_image_type),
            system_time: h.system_time.map(Hex),
            system_time_utc: h.system_time.and_then(filetime_to_rfc3339),
            directory_table_base: Hex(h.directory_table_base),
            pfn_database: h.pfn_database.map(Hex),
            ps_loaded_module_list: h.ps_loaded_module_list.map(Hex),
            ps_active_process_head: h.ps_active_process_head.map(Hex),
            kd_debugger_data_block: h.kd_debugger_data_block.map(Hex),
            header_size: dump.header_size(),
            stored_pages: dump.stored_page_count(),
            virtual_memory: kernel.memory_error.is_none(),
            virtual_memory_error: kernel.memory_error.clone(),
        };
        let bc = &kernel.bugcheck;
        let bugcheck = BugcheckReport {
            code: Hex::from(bc.code),
            name: bc.name.as_ref().map(|n| n.name.clone()),
            base_code: Hex::from(bc.name.as_ref().map_or(bc.code, |n| n.base_code)),
            pool_or_memory: bc.name.as_ref().is_some_and(|n| n.pool_or_memory),
            params: bc.params.clone().map(|p| Hex(p.value)),
            params_symbolized: bc.params.clone().map(|p| p.symbol),
            params_named: Default::default(),
            faulting: bc.faulting.map(|f| {
                let module_offset =
                    crate::kernel::bugcheck::module_offset(f.address, &kernel.modules.modules);
                FaultingReport {
                    address: Hex(f.address),
                    from: f.source.describe(),
                    module: crate::kernel::modules::find_module(&kernel.modules.modules, f.address)
                        .map(|m| m.name.clone()),
                    symbol: None,
                    named: false,
                    note: module_offset
                        .is_some()
                        .then(|| "symbols not looked up".to_string()),
                    module_offset,
                    source: None,
                    source_note: None,
                }
            }),
            name_source: bc.name.as_ref().map(|n| n.source),
            description: describe_bugcheck(
                bc.code,
                bc.params.clone().map(|p| p.value),
                &kernel.modules.modules,
            ),
        };
        let kdbg = match &kernel.kdbg {
            Some(k) => KdbgReport {
                found: true,
                va: Some(Hex(k.va)),
                size: Some(k.size),
                decoded: k.was_encoded,
                error: None,
                fields: k
                    .fields
                    .iter()
                    .map(|&(n, v)| (n.to_string(), Hex(v)))
                    .collect(),
                values: kernel
                    .kdbg_values
                    .iter()
                    .map(|&(n, v)| (n.to_string(), Hex(v)))
                    .collect(),
            },
            None => KdbgReport {
                found: false,
                va: h.kd_debugger_data_block.map(Hex),
                size: None,
                decoded: false,
                error: kernel.kdbg_error.clone(),
                fields: Default::default(),
                values: Default::default(),
            },
        };
        let km = kernel.kernel_module();
        let kernel_report = KernelReport {
            base: kernel.kernel_base.map(Hex),
            size: km.map(|m| m.size),
            name: km.map(|m| m.name.clone()),
            build_lab: kernel.build_lab.clone(),
            pdb: km.and_then(|m| m.pe.as_ref()).and_then(pdb_ref),
        };
        let ml = &kernel.modules;
        let (source, list_head) = match ml.source {
            ModuleSource::LoadedModuleList { head } => ("PsLoadedModuleList", Some(Hex(head))),
            ModuleSource::TriageDriverList => ("triage-driver-list", None),
            ModuleSource::None => ("none", None),
        };
        let module_list = ModuleListInfo {
            source: source.to_string(),
            list_head,
            count: ml.modules.len(),
            complete: ml.complete,
        };
        let modules = ml.modules.iter().map(module_report).collect();
        InspectReport {
            schema_version: SCHEMA_VERSION,
            generator: format!("pooltriage {}", env!("CARGO_PKG_VERSION")),
            file: FileInfo {
                path: path.to_string(),
                size: dump.file_size(),
            },
            dump: dump_info,
            bugcheck,
            kdbg,
            kernel: kernel_report,
            module_list,
            modules,
            warnings: kernel.warnings.clone(),
            symbol_path: None,
            symbol_summary: Default::default(),
            crash: None,
        }
    }

    /// Adds the symbol status of each module (`statuses` in module order, as
    /// [`crate::symbols::resolve::resolve_modules`] returns them) and names the bugcheck
    /// parameters and the faulting address by function.
    pub fn add_symbols(
        &mut self,
        kernel: &KernelInfo,
        symbol_path: String,
        statuses: &[SymbolStatus],
    ) {
        self.symbol_path = Some(symbol_path);
        self.symbol_summary.clear();
        for (m, st) in self.modules.iter_mut().zip(statuses) {
            *self
                .symbol_summary
                .entry(st.status.as_str().to_string())
                .or_default() += 1;
            m.symbols = Some(ModuleSymbolsReport {
                status: st.status.as_str().to_string(),
                source: st.source.clone(),
                pdb: st.codeview.as_ref().map(|cv| PdbRef {
                    name: cv.pdb_name().to_string(),
                    guid: cv.guid.clone(),
                    age: cv.age,
                    path: (cv.pdb_path != cv.pdb_name()).then(|| cv.pdb_path.clone()),
                }),
                pdb_key_from: st.codeview_from.map(|o| o.as_str().to_string()),
                pdb_path: st.pdb.as_ref().map(|p| p.display().to_string()),
                image_path: st.image.as_ref().map(|p| p.display().to_string()),
                image_source: st.image_source.clone(),
                error: if st.status == SymbolState::Found {
                    None
                } else {
                    st.error.clone()
                },
                line_info: None,
            });
        }
        let mut sym = Symbolizer::new(&kernel.modules.modules, statuses, kernel.kernel_base);
        for (slot, p) in self
            .bugcheck
            .params_named
            .iter_mut()
            .zip(&kernel.bugcheck.params)
        {
            *slot = sym.name(p.value).map(|n| n.symbol);
        }
        if let Some(f) = self.bugcheck.faulting.as_mut() {
            if let Some(n) = sym.name(f.address.0) {
                f.symbol = Some(n.symbol);
                f.named = n.named;
                f.note = n.note;
                f.source = n.source.map(Into::into);
                f.source_note = n.source_note;
            }
        }
        for m in self.modules.iter_mut() {
            if let Some(s) = m.symbols.as_mut() {
                s.line_info = sym.has_lines(&m.name);
            }
        }
    }
}

fn pdb_ref(pe: &PeInfo) -> Option<PdbRef> {
    let cv = pe.codeview.as_ref()?;
    let name = cv.pdb_name().to_string();
    let path = (cv.pdb_path != name).then(|| cv.pdb_path.clone());
    Some(PdbRef {
        name,
        guid: cv.guid.clone(),
        age: cv.age,
        path,
    })
}

fn module_report(m: &Module) -> ModuleReport {
    ModuleReport {
        name: m.name.clone(),
        path: m.path.clone(),
        base: Hex(m.base),
        size: m.size,
        timestamp: m.timestamp.map(Hex::from),
        checksum: m.checksum.map(Hex::from),
        pdb: m.pe.as_ref().and_then(pdb_ref),
        pe: m.pe.as_ref().map(pe_report),
        pe_error: m.pe_error.clone(),
        symbols: None,
    }
}

fn pe_report(pe: &PeInfo) -> PeReport {
    PeReport {
        machine: Hex::from(pe.machine),
        machine_name: machine_name(pe.machine).map(str::to_string),
        timestamp: Hex::from(pe.timestamp),
        size_of_image: pe.size_of_image,
        checksum: Hex::from(pe.checksum),
        sections: pe
            .sections
            .iter()
            .map(|s| SectionReport {
                name: s.name.clone(),
                virtual_address: Hex::from(s.virtual_address),
                virtual_size: s.virtual_size,
                characteristics: Hex::from(s.characteristics),
            })
            .collect(),
        imports: pe.imports.as_ref().map(|i| ImportsReport {
            dll_count: i.dlls.len(),
            function_count: i.function_count(),
            complete: i.complete,
            dlls: i
                .dlls
                .iter()
                .map(|d| ImportedDllReport {
                    name: d.name.clone(),
                    functions: d.functions.len(),
                    by_ordinal: d
                        .functions
                        .iter()
                        .filter(|f| matches!(f, Import::Ordinal(_)))
                        .count(),
                })
                .collect(),
        }),
        warnings: pe.warnings.clone(),
    }
}
