//! What every analysis starts from: the dump file, its kernel, the kernel's symbols and the
//! pooltag file. The command-line tools and the service's workers open their input here, so
//! they choose symbols the same way:
//!
//! 1. a kernel PDB or ISF file the user names (used as is, even if it is not the dump's);
//! 2. else, by the kernel's CodeView identity (GUID and age from its image in the dump): its
//!    ISF in the ISF folders, then its PDB through the symbol path (which may download);
//! 3. else none: the pool engine uses the debugger data block and its built-in layouts, and
//!    every report says so.

use super::progress::Stage;
use crate::attribution::{pooltag, PoolTagFile};
use crate::dump::{Arch, Dump, DumpError};
use crate::kernel::{read_kernel, KernelInfo};
use crate::report::pool::SymbolSource;
use crate::symbols::kernel_profile::{self, KernelPdb, ProfileRequest};
use crate::symbols::store::{StoreConfig, SymbolPath, SymbolStore};
use crate::symbols::{Profile, ProfileSource, SymbolsError};
use std::path::{Path, PathBuf};

/// Where to find the kernel's symbols and the tag descriptions.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    /// The kernel's symbols, named by the user: a PDB (by its extension) or an ISF.
    pub kernel_symbols: Option<PathBuf>,
    /// Folders of Volatility ISFs (`ntkrnlmp.pdb/<GUID>-<AGE>.json.xz`).
    pub isf_dirs: Vec<PathBuf>,
    /// The symbol path for the kernel's PDB and the drivers' PDBs; `None`: no lookups.
    pub symbol_path: Option<SymbolPath>,
    /// How the symbol store client talks to servers (timeouts, retries, its data directory).
    pub store_config: StoreConfig,
    /// A pooltag.txt (`Tag - binary - description`).
    pub pooltag: Option<PathBuf>,
}

/// An opened dump, ready to analyse.
pub struct Input {
    /// The dump's path as given, for messages.
    pub path: String,
    pub dump: Dump,
    pub kernel: KernelInfo,
    /// The kernel's profile; `None` when no symbols were found.
    pub profile: Option<Profile>,
    pub pooltag: Option<PoolTagFile>,
    /// The symbol store of the symbol path, for the drivers' PDBs too.
    pub store: Option<SymbolStore>,
}

/// Why the input cannot be analysed at all. Each reads as one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: is a directory, not a dump file")]
    IsDirectory { path: String },
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Dump { path: String, source: DumpError },
    #[error("{0}")]
    Symbols(#[from] SymbolsError),
    #[error("{path}: larger than {max} bytes, not a pooltag file")]
    PoolTagTooLarge { path: String, max: usize },
    #[error("{path}: {source}")]
    PoolTag {
        path: String,
        source: std::io::Error,
    },
}

impl Input {
    /// Where the kernel's profile came from, and its file.
    pub fn symbol_source(&self) -> (SymbolSource, Option<String>) {
        match self.profile.as_ref().map(|p| &p.source) {
            Some(ProfileSource::Pdb(p)) => (SymbolSource::Pdb, Some(p.display().to_string())),
            Some(ProfileSource::Isf(p)) => (SymbolSource::Isf, Some(p.display().to_string())),
            Some(ProfileSource::Fallback { .. }) | None => (SymbolSource::None, None),
        }
    }
}

/// Opens `dump_path` and everything it needs, calling `progress` as each stage starts.
pub fn open(
    dump_path: &Path,
    opts: &InputOptions,
    progress: &mut dyn FnMut(Stage),
) -> Result<Input, InputError> {
    let path = dump_path.display().to_string();
    if dump_path.is_dir() {
        return Err(InputError::IsDirectory { path });
    }
    progress(Stage::OpeningDump);
    let dump = Dump::open(dump_path).map_err(|e| match e {
        DumpError::Io { source, .. } => InputError::Unreadable {
            path: path.clone(),
            source,
        },
        source => InputError::Dump {
            path: path.clone(),
            source,
        },
    })?;
    progress(Stage::ReadingKernel);
    let kernel = read_kernel(&dump);
    progress(Stage::LoadingSymbols);
    let store = opts
        .symbol_path
        .clone()
        .map(|p| SymbolStore::new(p, opts.store_config.clone()));
    let profile = match &opts.kernel_symbols {
        Some(f) => Some(profile_from_file(f)?),
        None => find_profile(&dump, &kernel, &opts.isf_dirs, store.as_ref()),
    };
    let pooltag = opts.pooltag.as_deref().map(read_pooltag).transpose()?;
    Ok(Input {
        path,
        dump,
        kernel,
        profile,
        pooltag,
        store,
    })
}

/// A PDB (by its extension) or an ISF.
fn profile_from_file(f: &Path) -> Result<Profile, SymbolsError> {
    if f.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdb")) {
        Profile::from_pdb(f)
    } else {
        Profile::from_isf(f)
    }
}

/// The kernel's profile by its CodeView identity (see `kernel_profile::find`): its ISF in
/// `isf_dirs`, then its PDB through the symbol path. The built-in fallback the finder ends
/// with is not taken here: without the kernel's own symbols the pool engine uses its own
/// per-version layouts and says so.
fn find_profile(
    dump: &Dump,
    kernel: &KernelInfo,
    isf_dirs: &[PathBuf],
    store: Option<&SymbolStore>,
) -> Option<Profile> {
    let cv = kernel
        .kernel_module()
        .and_then(|m| m.pe.as_ref())
        .and_then(|pe| pe.codeview.as_ref())?;
    let header = dump.header();
    let request = ProfileRequest {
        pdb: Some(KernelPdb {
            name: cv.pdb_path.clone(),
            guid: cv.guid.clone(),
            age: cv.age,
        }),
        build: header.build,
        pointer_size: if header.arch == Arch::X86 { 4 } else { 8 },
        kdbg: None,
        isf_dirs,
        store,
    };
    let found = kernel_profile::find(&request).ok()?;
    match found.profile.source {
        ProfileSource::Isf(_) | ProfileSource::Pdb(_) => Some(found.profile),
        ProfileSource::Fallback { .. } => None,
    }
}

fn read_pooltag(f: &Path) -> Result<PoolTagFile, InputError> {
    let path = f.display().to_string();
    let io = |source| InputError::PoolTag {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(f).map_err(io)?;
    if meta.len() > pooltag::MAX_FILE_BYTES as u64 {
        return Err(InputError::PoolTagTooLarge {
            path,
            max: pooltag::MAX_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(f).map_err(io)?;
    Ok(PoolTagFile::parse(&String::from_utf8_lossy(&bytes)))
}
