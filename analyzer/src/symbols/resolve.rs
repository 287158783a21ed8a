//! The small-dump flow WinDbg uses to find a module's PDB.
//!
//! A kernel or complete dump usually holds each module's PE headers, hence its CodeView record
//! (PDB name, GUID, age): the PDB is fetched by that key. A triage dump holds almost none of
//! them, only the driver list's name, TimeDateStamp and SizeOfImage: those are the image's own
//! symbol-store key, so the PE is fetched first, its CodeView record read from the file (with
//! [`crate::kernel::pe::PeFile`]), and then the PDB.
//!
//! Every outcome is a status, never an error: a support engineer offline, or with a vendor
//! driver Microsoft's server does not have, still gets the rest of the report.
//! Files are checked against their keys before they count as found (a PE whose TimeDateStamp
//! or SizeOfImage differ, or a PDB whose GUID/age differ, is "malformed"), as WinDbg refuses a
//! mismatched PDB.

use super::store::{FetchError, SymbolKey, SymbolStore};
use crate::kernel::pe::{CodeView, PeFile};
use crate::kernel::Module;
use std::path::{Path, PathBuf};

pub use super::symbolizer::{NamedAddress, Symbolizer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Largest image read into memory to find its CodeView record (ntoskrnl is ~11 MiB).
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The outcome for one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolState {
    /// The PDB is on disk and matches the module.
    Found,
    /// No entry of the symbol path has it (the image, or the PDB).
    NotFound,
    /// A file was found but is not what the key says (broken CAB, wrong GUID, not a PE...).
    Malformed,
    /// The server failed (5xx, refused, dropped connections, host skipped by the breaker).
    DownloadFailed,
    /// Connect/read/total timeout, or the run's symbol budget ran out.
    TimedOut,
    /// Nothing to look the module up by: no CodeView record in the dump, no timestamp, or an
    /// image without a CodeView record.
    NoKey,
    /// The file exceeds the download limit.
    TooLarge,
    /// The dump's module or PDB name could escape the cache or the URL: refused.
    HostileName,
    /// The cache directory could not be written.
    CacheError,
}

impl SymbolState {
    /// The word reports print: "found", "not found", "malformed", "download failed",
    /// "timed out", "no key", "too large", "hostile name", "cache error".
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolState::Found => "found",
            SymbolState::NotFound => "not found",
            SymbolState::Malformed => "malformed",
            SymbolState::DownloadFailed => "download failed",
            SymbolState::TimedOut => "timed out",
            SymbolState::NoKey => "no key",
            SymbolState::TooLarge => "too large",
            SymbolState::HostileName => "hostile name",
            SymbolState::CacheError => "cache error",
        }
    }

    fn from_fetch(e: &FetchError) -> SymbolState {
        match e {
            FetchError::NotFound { .. } => SymbolState::NotFound,
            FetchError::Malformed { .. } => SymbolState::Malformed,
            FetchError::DownloadFailed { .. } => SymbolState::DownloadFailed,
            FetchError::TimedOut { .. } => SymbolState::TimedOut,
            FetchError::TooLarge { .. } => SymbolState::TooLarge,
            FetchError::HostileName { .. } => SymbolState::HostileName,
            // A symbol path that does not parse never reaches a fetch; count it with the cache
            // as "our side could not store/find it".
            FetchError::Cache { .. } | FetchError::BadSymbolPath(_) => SymbolState::CacheError,
        }
    }
}

/// Where the CodeView record (the PDB's key) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeViewOrigin {
    /// The module's PE headers in the dump.
    Dump,
    /// The image file fetched from the symbol path by (TimeDateStamp, SizeOfImage).
    Image,
}

impl CodeViewOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeViewOrigin::Dump => "dump",
            CodeViewOrigin::Image => "image",
        }
    }
}

/// The symbol status of one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolStatus {
    pub status: SymbolState,
    /// The symbol-path entry that answered the PDB (for `Found`).
    pub source: Option<String>,
    /// The PDB on disk (cache or local store).
    pub pdb: Option<PathBuf>,
    /// The image fetched to read its CodeView record (triage dumps).
    pub image: Option<PathBuf>,
    /// The symbol-path entry that answered the image.
    pub image_source: Option<String>,
    /// The PDB's key.
    pub codeview: Option<CodeView>,
    pub codeview_from: Option<CodeViewOrigin>,
    /// The image's machine (from the dump's headers or the fetched file), for x86 name rules.
    pub machine: Option<u16>,
    /// Why it is not `Found`, one line.
    pub error: Option<String>,
}

impl SymbolStatus {
    pub(crate) fn failed(status: SymbolState, error: String) -> SymbolStatus {
        SymbolStatus {
            status,
            source: None,
            pdb: None,
            image: None,
            image_source: None,
            codeview: None,
            codeview_from: None,
            machine: None,
            error: Some(error),
        }
    }
}

/// How modules are resolved together.
#[derive(Debug, Clone, Copy)]
pub struct ResolveOptions {
    /// Modules fetched in parallel (each fetch blocks on the network).
    pub workers: usize,
    /// Modules not started by then are "timed out" without a request.
    pub deadline: Option<Instant>,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            workers: 8,
            deadline: None,
        }
    }
}

/// Resolves one module: CodeView from the dump, else PE by (timestamp, size) then its CodeView,
/// then the PDB.
pub fn resolve_module(store: &SymbolStore, module: &Module) -> SymbolStatus {
    let mut st = SymbolStatus::failed(SymbolState::NoKey, String::new());
    st.error = None;
    st.machine = module.pe.as_ref().map(|p| p.machine);
    let in_dump = module.pe.as_ref().and_then(|p| p.codeview.clone());
    let codeview = match in_dump {
        Some(cv) => {
            st.codeview_from = Some(CodeViewOrigin::Dump);
            cv
        }
        None => {
            // The image's own key: the headers in the dump when present, else the list entry.
            let key = match &module.pe {
                Some(pe) => Some((pe.timestamp, pe.size_of_image)),
                None => module.timestamp.map(|t| (t, module.size)),
            };
            let Some((timestamp, size)) = key.filter(|&(t, s)| t != 0 && s != 0) else {
                return SymbolStatus::failed(
                    SymbolState::NoKey,
                    "no CodeView record in the dump and no image timestamp/size".into(),
                );
            };
            let pe_key = SymbolKey::pe(module.name.clone(), timestamp, size);
            let fetched = match store.fetch(&pe_key) {
                Ok(f) => f,
                Err(e) => {
                    return SymbolStatus::failed(SymbolState::from_fetch(&e), format!("image: {e}"))
                }
            };
            st.image = Some(fetched.path.clone());
            st.image_source = Some(fetched.source.clone());
            match codeview_of_image(&fetched.path, timestamp, size) {
                Ok((cv, machine)) => {
                    st.machine = Some(machine);
                    st.codeview_from = Some(CodeViewOrigin::Image);
                    match cv {
                        Some(cv) => cv,
                        None => {
                            st.status = SymbolState::NoKey;
                            st.error = Some("the image has no CodeView record".into());
                            return st;
                        }
                    }
                }
                Err(reason) => {
                    st.status = SymbolState::Malformed;
                    st.error = Some(format!("image {}: {reason}", fetched.path.display()));
                    return st;
                }
            }
        }
    };
    let pdb_key = SymbolKey::pdb(
        codeview.pdb_name().to_string(),
        &codeview.guid,
        codeview.age,
    );
    st.codeview = Some(codeview.clone());
    match store.fetch(&pdb_key) {
        Ok(f) => match check_pdb(&f.path, &codeview) {
            Ok(()) => {
                st.status = SymbolState::Found;
                st.source = Some(f.source);
                st.pdb = Some(f.path);
            }
            Err(reason) => {
                st.status = SymbolState::Malformed;
                st.error = Some(format!("pdb {}: {reason}", f.path.display()));
            }
        },
        Err(e) => {
            st.status = SymbolState::from_fetch(&e);
            st.error = Some(format!("pdb: {e}"));
        }
    }
    st
}

/// Resolves every module, `opts.workers` at a time; statuses in module order.
pub fn resolve_modules(
    store: &SymbolStore,
    modules: &[Module],
    opts: ResolveOptions,
) -> Vec<SymbolStatus> {
    let results: Vec<Mutex<Option<SymbolStatus>>> =
        modules.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = opts.workers.clamp(1, 64).min(modules.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(m), Some(slot)) = (modules.get(i), results.get(i)) else {
                    break;
                };
                let st = if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                    SymbolStatus::failed(
                        SymbolState::TimedOut,
                        "the symbol time budget ran out before this module".into(),
                    )
                } else {
                    resolve_module(store, m)
                };
                if let Ok(mut g) = slot.lock() {
                    *g = Some(st);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                SymbolStatus::failed(
                    SymbolState::DownloadFailed,
                    "the resolver thread failed".into(),
                )
            })
        })
        .collect()
}

/// Reads the image file, checks it is the module's (TimeDateStamp and SizeOfImage), returns its
/// CodeView record (None when it has none) and machine.
fn codeview_of_image(
    path: &Path,
    timestamp: u32,
    size: u32,
) -> Result<(Option<CodeView>, u16), String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_IMAGE_BYTES {
        return Err(format!(
            "{len} bytes, more than the {MAX_IMAGE_BYTES}-byte limit for an image"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let pe = PeFile::new(&bytes).map_err(|e| e.to_string())?;
    let info = pe.info().map_err(|e| e.to_string())?;
    if info.timestamp != timestamp || info.size_of_image != size {
        return Err(format!(
            "TimeDateStamp/SizeOfImage {:08X}/{:x} do not match the module's {timestamp:08X}/{size:x}",
            info.timestamp, info.size_of_image
        ));
    }
    Ok((info.codeview, info.machine))
}

/// Opens the PDB and checks its GUID (or NB10 signature) and age against the CodeView record.
fn check_pdb(path: &Path, cv: &CodeView) -> Result<(), String> {
    let file = super::names::open_pdb(path).map_err(|e| match e {
        super::names::NamesError::Malformed { reason, .. } => reason,
        e => e.to_string(),
    })?;
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
            let mut pdb = pdb::PDB::open(file).map_err(|e| e.to_string())?;
            let info = pdb.pdb_information().map_err(|e| e.to_string())?;
            let dbi_age = pdb.debug_information().ok().and_then(|d| d.age());
            let want: String = cv
                .guid
                .chars()
                .filter(|c| *c != '-')
                .collect::<String>()
                .to_ascii_uppercase();
            let have_guid = info.guid.simple().to_string().to_ascii_uppercase();
            let have_sig = format!("{:08X}", info.signature);
            if want != have_guid && want != have_sig {
                return Err(format!(
                    "GUID {have_guid} does not match the module's {}",
                    cv.guid
                ));
            }
            // The image records the DBI age; the PDB info stream's age may be higher (re-linked PDB).
            let age_ok = dbi_age == Some(cv.age)
                || info.age == cv.age
                || (dbi_age.is_none() && info.age >= cv.age);
            if !age_ok {
                return Err(format!(
                    "age {} does not match the module's {}",
                    dbi_age.unwrap_or(info.age),
                    cv.age
                ));
            }
            Ok(())
        }));
    result.unwrap_or_else(|_| Err("the PDB reader gave up (internal panic)".into()))
}

/// A module's short name as WinDbg prints it before `!`: the kernel is `nt`, others their file
/// name without extension.
pub fn debugger_module_name(module: &Module, is_kernel: bool) -> String {
    if is_kernel {
        return "nt".into();
    }
    let n = module.name.as_str();
    let stem = match n.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => n,
    };
    if stem.is_empty() {
        format!("module_{:x}", module.base)
    } else {
        stem.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str) -> Module {
        Module {
            name: name.into(),
            path: String::new(),
            base: 0x1000,
            size: 0x1000,
            timestamp: None,
            checksum: None,
            ldr_entry: None,
            pe: None,
            pe_error: None,
        }
    }

    #[test]
    fn debugger_names() {
        assert_eq!(debugger_module_name(&module("amdppm.sys"), false), "amdppm");
        assert_eq!(debugger_module_name(&module("ntoskrnl.exe"), true), "nt");
        assert_eq!(debugger_module_name(&module("noext"), false), "noext");
        assert_eq!(debugger_module_name(&module(".sys"), false), ".sys");
        assert_eq!(debugger_module_name(&module(""), false), "module_1000");
    }

    #[test]
    fn symbolizer_without_pdb_gives_module_offset() {
        let mods = [module("amdppm.sys")];
        let st = [SymbolStatus::failed(SymbolState::NotFound, "x".into())];
        let mut s = Symbolizer::new(&mods, &st, None);
        let n = s.name(0x1234).unwrap();
        assert_eq!((n.symbol.as_str(), n.named), ("amdppm+0x234", false));
        assert_eq!(n.note.as_deref(), Some("symbols not found"));
        assert_eq!(s.name(0), None);
        assert_eq!(s.name(0x2000), None);
    }
}
