//! What `pool`, `blocks` and `analyze` share: the symbol flags, opening the dump through the
//! library (analyzer::analysis::input: `--symbols` file, else by the kernel's CodeView GUID: its
//! ISF in `--isf-dir`, then its PDB through the symbol path; else none), and printing.

use analyzer::analysis::input::{self, Input, InputOptions};
use analyzer::analysis::progress::Stage;
use analyzer::analysis::provenance::BlockProvenance;
use analyzer::analysis::{pool_report, PoolQuery};
use analyzer::pool::tags::SortKey;
use analyzer::pool::{SeenBlock, TagPattern};
use analyzer::report::pool::PoolReport;
use analyzer::report::provenance::BlockOwner;
use analyzer::symbols::store::SymbolPath;
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

impl SymbolArgs {
    /// What the library's input needs: the symbol path resolved (WinDbg syntax, `data/` for
    /// the default cache), the files as given.
    pub fn input_options(&self) -> Result<InputOptions, String> {
        let symbol_path = if self.no_symbols {
            None
        } else {
            Some(
                SymbolPath::resolve(self.symbol_path.as_deref(), Path::new("data"))
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(InputOptions {
            kernel_symbols: self.symbols.clone(),
            isf_dirs: self.isf_dir.iter().cloned().collect(),
            symbol_path,
            store_config: super::inspect::inspect_store_config(),
            pooltag: self.pooltag.clone(),
        })
    }
}

/// Opens the dump and its symbols; `Err` is the one line to print (exit code 2).
pub fn load(dump_path: &Path, s: &SymbolArgs) -> Result<Input, String> {
    load_with_progress(dump_path, s, &mut |_| {})
}

/// As [`load`], calling `progress` as it enters each stage (`analyze --progress`).
pub fn load_with_progress(
    dump_path: &Path,
    s: &SymbolArgs,
    progress: &mut dyn FnMut(Stage),
) -> Result<Input, String> {
    input::open(dump_path, &s.input_options()?, progress).map_err(|e| e.to_string())
}

/// `--sort`: `tag` (WinDbg's `!poolused` default and poolmon's), `paged`, `nonpaged` (bytes),
/// `allocs` (outstanding allocations, Diff).
pub fn parse_sort(s: &str) -> Result<SortKey, String> {
    match s {
        "tag" => Ok(SortKey::Tag),
        "paged" => Ok(SortKey::PagedBytes),
        "nonpaged" => Ok(SortKey::NonpagedBytes),
        "allocs" => Ok(SortKey::Allocs),
        _ => Err(format!(
            "unknown sort '{s}' (tag, paged, nonpaged or allocs)"
        )),
    }
}

pub fn parse_tag(s: &str) -> Result<TagPattern, String> {
    TagPattern::parse(s).ok_or_else(|| {
        format!("bad tag pattern '{s}': up to 4 characters, with ? and * as wildcards")
    })
}

/// The `pool` report of an opened dump, every block handed to `sink` as the walks find it
/// (`blocks` streams its listing through a spill file with it).
pub fn run_pool(
    input: &Input,
    s: &SymbolArgs,
    sort: SortKey,
    tag: Option<TagPattern>,
    sink: &mut dyn FnMut(SeenBlock),
) -> Result<PoolReport, String> {
    let query = PoolQuery {
        sort,
        tag,
        scan_drivers: !s.no_scan,
    };
    pool_report(input, &query, sink).map_err(|e| format!("{}: {e}", input.path))
}

/// As [`run_pool`], with each block's owner: the blocks go to `sink` from a last walk, after
/// the provenance pointer scan.
pub fn run_pool_with_owners(
    input: &Input,
    s: &SymbolArgs,
    sort: SortKey,
    tag: Option<TagPattern>,
    sink: &mut dyn FnMut(SeenBlock, Option<BlockOwner>),
) -> Result<PoolReport, String> {
    let query = PoolQuery {
        sort,
        tag,
        scan_drivers: !s.no_scan,
    };
    let mut owners = |b: SeenBlock, p: Option<BlockProvenance>| sink(b, p.map(|p| p.owner()));
    analyzer::analysis::pool_report::pool_report_with_provenance(input, &query, &mut owners)
        .map(|(r, _)| r)
        .map_err(|e| format!("{}: {e}", input.path))
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
