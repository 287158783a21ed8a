//! What `pool` and `blocks` share: opening the dump, finding the kernel's profile (`--symbols`
//! file, else by the kernel's CodeView GUID: its ISF in `--isf-dir`, then its PDB through the
//! symbol path; else none), and running the analysis.

use analyzer::attribution::PoolTagFile;
use analyzer::dump::{Dump, DumpError};
use analyzer::kernel::{read_kernel, KernelInfo};
use analyzer::pool::analyze::analyze_with_kernel;
use analyzer::pool::tags::SortKey;
use analyzer::pool::{AnalyzeOptions, PoolReport, TagPattern};
use analyzer::symbols::kernel_profile::{self, KernelPdb, ProfileRequest};
use analyzer::symbols::store::{SymbolPath, SymbolStore};
use analyzer::symbols::{Profile, ProfileSource};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SymbolArgs {
    /// The kernel's symbols: a PDB (ntkrnlmp.pdb, ntkrnlpa.pdb...) or a Volatility 3 ISF
    /// (.json or .json.xz).
    #[arg(long, value_name = "FILE")]
    pub symbols: Option<PathBuf>,
    /// A folder of ISF files laid out as Volatility's (`ntkrnlmp.pdb/<GUID>-<AGE>.json.xz`),
    /// searched by the kernel's PDB GUID when --symbols is not given.
    #[arg(long, value_name = "DIR", env = "POOLTRIAGE_ISF_DIR")]
    pub isf_dir: Option<PathBuf>,
    /// Symbol path for the kernel's PDB, as WinDbg's `_NT_SYMBOL_PATH` (`srv*CACHE*URL;DIR;...`).
    /// Default: the environment variable, else `srv*data/symbols*https://msdl.microsoft.com/download/symbols`.
    #[arg(long, value_name = "PATH")]
    pub symbol_path: Option<String>,
    /// Look up no symbols beyond --symbols and --isf-dir (no symbol path).
    #[arg(long)]
    pub no_symbols: bool,
    /// A pooltag.txt (`Tag - binary - description`) for tag descriptions.
    #[arg(long, value_name = "FILE")]
    pub pooltag: Option<PathBuf>,
    /// Do not scan the loaded drivers' code for tags.
    #[arg(long)]
    pub no_scan: bool,
}

pub struct Loaded {
    pub path: String,
    pub dump: Dump,
    pub kernel: KernelInfo,
    pub profile: Option<Profile>,
    pub source: &'static str,
    pub profile_path: Option<String>,
    pub pooltag: Option<PoolTagFile>,
}

/// Opens everything; `Err` is the one line to print (exit code 2).
pub fn load(dump_path: &Path, s: &SymbolArgs) -> Result<Loaded, String> {
    load_with_progress(dump_path, s, &mut |_| {})
}

/// As [`load`], calling `progress` as it enters each stage (`analyze --progress`).
pub fn load_with_progress(
    dump_path: &Path,
    s: &SymbolArgs,
    progress: &mut dyn FnMut(analyzer::analysis::progress::Stage),
) -> Result<Loaded, String> {
    use analyzer::analysis::progress::Stage;
    let path = dump_path.display().to_string();
    if dump_path.is_dir() {
        return Err(format!("{path}: is a directory, not a dump file"));
    }
    progress(Stage::OpeningDump);
    let dump = Dump::open(dump_path).map_err(|e| match e {
        DumpError::Io { source, .. } => format!("{path}: cannot read: {source}"),
        e => format!("{path}: {e}"),
    })?;
    progress(Stage::ReadingKernel);
    let kernel = read_kernel(&dump);
    progress(Stage::LoadingSymbols);
    let (profile, source, profile_path) = match &s.symbols {
        Some(f) => {
            let is_pdb = f.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdb"));
            let p = if is_pdb {
                Profile::from_pdb(f)
            } else {
                Profile::from_isf(f)
            }
            .map_err(|e| e.to_string())?;
            (
                Some(p),
                if is_pdb { "pdb" } else { "isf" },
                Some(f.display().to_string()),
            )
        }
        None => find_profile(&dump, &kernel, s)?,
    };
    let pooltag = match &s.pooltag {
        Some(f) => {
            let meta = std::fs::metadata(f).map_err(|e| format!("{}: {e}", f.display()))?;
            if meta.len() > analyzer::attribution::pooltag::MAX_FILE_BYTES as u64 {
                return Err(format!(
                    "{}: larger than {} bytes, not a pooltag file",
                    f.display(),
                    analyzer::attribution::pooltag::MAX_FILE_BYTES
                ));
            }
            let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            Some(PoolTagFile::parse(&String::from_utf8_lossy(&bytes)))
        }
        None => None,
    };
    Ok(Loaded {
        path,
        dump,
        kernel,
        profile,
        source,
        profile_path,
        pooltag,
    })
}

/// The kernel's profile by its CodeView identity (see `kernel_profile::find`): its ISF in
/// `--isf-dir`, then its PDB through the symbol path. The built-in fallback the finder ends
/// with is not taken here: without the kernel's own symbols the pool engine uses its own
/// per-version layouts and says so.
fn find_profile(
    dump: &Dump,
    kernel: &KernelInfo,
    s: &SymbolArgs,
) -> Result<(Option<Profile>, &'static str, Option<String>), String> {
    let Some(cv) = kernel
        .kernel_module()
        .and_then(|m| m.pe.as_ref())
        .and_then(|pe| pe.codeview.as_ref())
    else {
        return Ok((None, "none", None));
    };
    let store = if s.no_symbols {
        None
    } else {
        let path = SymbolPath::resolve(s.symbol_path.as_deref(), Path::new("data"))
            .map_err(|e| e.to_string())?;
        Some(SymbolStore::new(
            path,
            super::inspect::inspect_store_config(),
        ))
    };
    let isf_dirs: Vec<PathBuf> = s.isf_dir.iter().cloned().collect();
    let header = dump.header();
    let request = ProfileRequest {
        pdb: Some(KernelPdb {
            name: cv.pdb_path.clone(),
            guid: cv.guid.clone(),
            age: cv.age,
        }),
        build: header.build,
        pointer_size: if header.arch == analyzer::dump::Arch::X86 {
            4
        } else {
            8
        },
        kdbg: None,
        isf_dirs: &isf_dirs,
        store: store.as_ref(),
    };
    Ok(match kernel_profile::find(&request) {
        Ok(found) => match &found.profile.source {
            ProfileSource::Isf(p) => {
                let p = p.display().to_string();
                (Some(found.profile), "isf", Some(p))
            }
            ProfileSource::Pdb(p) => {
                let p = p.display().to_string();
                (Some(found.profile), "pdb", Some(p))
            }
            _ => (None, "none", None),
        },
        Err(_) => (None, "none", None),
    })
}

pub fn parse_sort(s: &str) -> Result<SortKey, String> {
    match s {
        "paged" => Ok(SortKey::PagedBytes),
        "nonpaged" => Ok(SortKey::NonpagedBytes),
        "allocs" => Ok(SortKey::Allocs),
        _ => Err(format!("unknown sort '{s}' (paged, nonpaged or allocs)")),
    }
}

pub fn parse_tag(s: &str) -> Result<TagPattern, String> {
    TagPattern::parse(s).ok_or_else(|| {
        format!("bad tag pattern '{s}': up to 4 characters, with ? and * as wildcards")
    })
}

/// The pool engine's options for what was loaded and asked for.
pub fn options<'a>(
    l: &'a Loaded,
    s: &SymbolArgs,
    sort: SortKey,
    tag: Option<TagPattern>,
    list_blocks: bool,
) -> AnalyzeOptions<'a> {
    AnalyzeOptions {
        profile: l.profile.as_ref(),
        symbols_source: l.source,
        symbols_path: l.profile_path.clone(),
        sort,
        tag,
        list_blocks,
        pooltag: l.pooltag.clone(),
        scan_drivers: !s.no_scan,
    }
}

pub fn run_analysis(
    l: &Loaded,
    s: &SymbolArgs,
    sort: SortKey,
    tag: Option<TagPattern>,
    list_blocks: bool,
) -> Result<PoolReport, String> {
    analyze_with_kernel(&l.dump, &l.kernel, options(l, s, sort, tag, list_blocks))
        .map_err(|e| format!("{}: {e}", l.path))
}

/// As [`run_analysis`] without keeping a block list, handing every block the walks find to
/// `sink` instead (`blocks` streams its listing through a spill file with it).
pub fn run_analysis_streaming(
    l: &Loaded,
    s: &SymbolArgs,
    sort: SortKey,
    tag: Option<TagPattern>,
    sink: &mut dyn FnMut(analyzer::pool::analyze::SeenBlock),
) -> Result<PoolReport, String> {
    analyzer::pool::analyze::analyze_parts(
        &l.dump,
        &l.kernel,
        options(l, s, sort, tag, false),
        sink,
    )
    .map(|(r, _)| r)
    .map_err(|e| format!("{}: {e}", l.path))
}

/// The lines every text report starts with: which symbols and layouts were used.
pub fn provenance(r: &PoolReport) -> String {
    let sym = match (&r.symbols.path, r.symbols.matches_kernel) {
        (Some(p), Some(true)) => format!("{} {p} (matches the kernel)", r.symbols.source),
        (Some(p), Some(false)) => format!("{} {p} (DOES NOT match the kernel)", r.symbols.source),
        (Some(p), None) => format!("{} {p}", r.symbols.source),
        (None, _) => "none: debugger data block and built-in layouts".into(),
    };
    let l = &r.layouts;
    let src = |s: Option<analyzer::pool::LayoutSource>| s.map_or("not read", |s| s.as_str());
    format!(
        "Dump:     {} {} build {}\nSymbols:  {sym}\nLayouts:  POOL_HEADER {}, tag table {}, big pages {}\n",
        r.dump.format,
        r.dump.arch,
        r.dump.build,
        l.pool_header.as_str(),
        src(l.tag_table),
        src(l.big_pages)
    )
}

pub fn notes(r: &PoolReport) -> String {
    let mut s = String::new();
    for w in &r.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    for e in &r.errors {
        s.push_str(&format!("not read: {e}\n"));
    }
    s
}

/// Writes the report to stdout; a closed pipe (`| head`) is not an error.
pub fn print(out: &str) -> std::process::ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Writes a JSON report straight to stdout (no whole-report string: a `blocks` report of
/// millions of blocks is large); a closed pipe is not an error.
pub fn print_json(report: &impl serde::Serialize) -> std::process::ExitCode {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = serde_json::to_writer_pretty(&mut out, report)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
