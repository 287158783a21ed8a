//! What `pool` and `blocks` share: opening the dump, finding the kernel's profile (`--symbols`
//! file, else the kernel's GUID in an ISF folder, else none), and running the analysis.

use analyzer::attribution::PoolTagFile;
use analyzer::dump::{Dump, DumpError};
use analyzer::kernel::{read_kernel, KernelInfo};
use analyzer::pool::analyze::analyze_with_kernel;
use analyzer::pool::tags::SortKey;
use analyzer::pool::{AnalyzeOptions, PoolReport, TagPattern};
use analyzer::symbols::Profile;
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
    let path = dump_path.display().to_string();
    if dump_path.is_dir() {
        return Err(format!("{path}: is a directory, not a dump file"));
    }
    let dump = Dump::open(dump_path).map_err(|e| match e {
        DumpError::Io { source, .. } => format!("{path}: cannot read: {source}"),
        e => format!("{path}: {e}"),
    })?;
    let kernel = read_kernel(&dump);
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
        None => match s.isf_dir.as_deref().and_then(|d| find_isf(d, &kernel)) {
            Some(f) => {
                let p = Profile::from_isf(&f).map_err(|e| e.to_string())?;
                (Some(p), "isf", Some(f.display().to_string()))
            }
            None => (None, "none", None),
        },
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

/// `DIR/<pdb name>/<GUID without dashes>-<age>.json(.xz)` for the kernel image's CodeView record.
fn find_isf(dir: &Path, kernel: &KernelInfo) -> Option<PathBuf> {
    let cv = kernel.kernel_module()?.pe.as_ref()?.codeview.as_ref()?;
    let pdb = cv.pdb_path.rsplit(['\\', '/']).next()?.to_ascii_lowercase();
    // The name comes from the dump: only a plain file name is used as a folder name.
    if pdb.is_empty() || pdb.contains("..") || !pdb.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    {
        return None;
    }
    let guid: String = cv.guid.chars().filter(|c| *c != '-').collect();
    if guid.len() != 32 || !guid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    ["json.xz", "json"]
        .iter()
        .map(|ext| {
            dir.join(&pdb)
                .join(format!("{}-{}.{ext}", guid.to_ascii_uppercase(), cv.age))
        })
        .find(|p| p.is_file())
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
    TagPattern::parse(s).ok_or_else(|| format!("bad tag pattern '{s}': up to 4 characters, with ? and * as wildcards"))
}

pub fn run_analysis(
    l: &Loaded,
    s: &SymbolArgs,
    sort: SortKey,
    tag: Option<TagPattern>,
    list_blocks: bool,
) -> Result<PoolReport, String> {
    let opts = AnalyzeOptions {
        profile: l.profile.as_ref(),
        symbols_source: l.source,
        symbols_path: l.profile_path.clone(),
        sort,
        tag,
        list_blocks,
        pooltag: l.pooltag.clone(),
        scan_drivers: !s.no_scan,
    };
    analyze_with_kernel(&l.dump, &l.kernel, opts).map_err(|e| format!("{}: {e}", l.path))
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

/// Writes the JSON report straight to stdout (no whole-report string: a `blocks` report of
/// millions of blocks is large); a closed pipe is not an error.
pub fn print_json(report: &PoolReport) -> std::process::ExitCode {
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
