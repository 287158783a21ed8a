//! `pooltriage inspect DUMP [--json]`: what a dump is and what the kernel layer reads from it.
//!
//! Bad input (unreadable, truncated or malformed dump) exits with code 2 and one line on
//! stderr naming the file and the problem, so that a ticket shows the cause at a glance.

use analyzer::dump::{Dump, DumpError};
use analyzer::kernel::{read_kernel, read_kernel_with_keys, KernelInfo};
use analyzer::report::inspect::{BugcheckReport, InspectReport, ModuleReport};
use analyzer::symbols::kernel_profile::{self, KernelPdb, ProfileRequest};
use analyzer::symbols::resolve::{resolve_modules, ResolveOptions};
use analyzer::symbols::store::{StoreConfig, SymbolPath, SymbolStore};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the default symbol cache lives (`DATA_DIR/symbols`), as for every command.
const DATA_DIR: &str = "data";

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The dump file (any kernel dump: triage, kernel, complete, bitmap).
    pub dump: PathBuf,
    /// Print the JSON report (docs/json.md) instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// Symbol path, as WinDbg's `_NT_SYMBOL_PATH` (`srv*CACHE*URL;DIR;...`). Default: the
    /// environment variable, else `srv*data/symbols*https://msdl.microsoft.com/download/symbols`.
    #[arg(long, value_name = "PATH")]
    pub symbol_path: Option<String>,
    /// Do not look up symbols (no symbol status, no function names).
    #[arg(long)]
    pub no_symbols: bool,
    /// Time budget in seconds for all symbol lookups; modules not reached by then are
    /// reported "timed out".
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub symbol_timeout: u64,
    /// A Volatility-style symbols folder (`ntkrnlmp.pdb/<GUID>-<age>.json.xz`) to find the
    /// kernel's ISF in; with the symbol path, the source of the keys that decode an encoded
    /// debugger data block.
    #[arg(long, value_name = "DIR", env = "POOLTRIAGE_ISF_DIR")]
    pub isf_dir: Option<PathBuf>,
}

/// inspect (and pool, blocks) must stay quick offline: short timeouts, one retry, and a host that fails three
/// times in a row is skipped for the rest of the run (the circuit breaker).
pub(crate) fn inspect_store_config() -> StoreConfig {
    StoreConfig {
        connect_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(60),
        max_retries: 1,
        breaker_threshold: 3,
        ..StoreConfig::with_data_dir(Path::new(DATA_DIR))
    }
}

pub fn run(args: &InspectArgs) -> ExitCode {
    let path = args.dump.display().to_string();
    if args.dump.is_dir() {
        eprintln!("error: {path}: is a directory, not a dump file");
        return ExitCode::from(2);
    }
    let dump = match Dump::open(&args.dump) {
        Ok(d) => d,
        Err(e) => {
            // The I/O error already names the path; say it once.
            match e {
                DumpError::Io { source, .. } => eprintln!("error: {path}: cannot read: {source}"),
                e => eprintln!("error: {path}: {e}"),
            }
            return ExitCode::from(2);
        }
    };
    let store = if args.no_symbols {
        None
    } else {
        match SymbolPath::resolve(args.symbol_path.as_deref(), Path::new(DATA_DIR)) {
            Ok(p) => Some(SymbolStore::new(p, inspect_store_config())),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let mut kernel = read_kernel(&dump);
    if kernel.kdbg.is_none() {
        kernel = decode_kdbg(&dump, kernel, args.isf_dir.as_deref(), store.as_ref());
    }
    let mut report = InspectReport::build(&path, &dump, &kernel);
    let deadline = Instant::now() + Duration::from_secs(args.symbol_timeout);
    let mut statuses = Vec::new();
    if let Some(store) = &store {
        let opts = ResolveOptions {
            workers: 8,
            deadline: Some(deadline),
        };
        statuses = resolve_modules(store, &kernel.modules.modules, opts);
        report.add_symbols(&kernel, store.symbol_path().to_string(), &statuses);
    }
    report.crash = analyzer::analysis::crash::crash_for_modules(
        &dump,
        &kernel,
        store.as_ref(),
        &statuses,
        Some(deadline),
    );
    let mut out = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &report)
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // `pooltriage inspect x | head` is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the report: {e}");
            ExitCode::from(1)
        }
    }
}

/// A debugger data block that could not be read is most often encoded (Windows 8+ keeps it
/// so in memory). Its keys are kernel variables: with the kernel's own symbols (an ISF in
/// `isf_dir`, or its PDB through the symbol store) read them and read the kernel again.
/// Whatever happens is said in the kernel's warnings; the first reading is kept on failure.
fn decode_kdbg(
    dump: &Dump,
    kernel: KernelInfo,
    isf_dir: Option<&Path>,
    store: Option<&SymbolStore>,
) -> KernelInfo {
    let (Some(base), Some(cv)) = (
        kernel.kernel_base,
        kernel
            .kernel_module()
            .and_then(|m| m.pe.as_ref())
            .and_then(|pe| pe.codeview.as_ref()),
    ) else {
        return kernel;
    };
    let Ok(mem) = dump.kernel_memory() else {
        return kernel;
    };
    let isf_dirs: Vec<PathBuf> = isf_dir.into_iter().map(Path::to_path_buf).collect();
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
        store,
    };
    let why = match kernel_profile::find(&request) {
        Ok(found) => match kernel_profile::kdbg_keys(mem.as_ref(), base, &found.profile) {
            Ok(keys) => {
                let mut decoded = read_kernel_with_keys(dump, Some(&keys));
                if decoded.kdbg.is_some() {
                    decoded.warnings.push(format!(
                        "debugger data block decoded with keys from {}",
                        found.profile.source.describe()
                    ));
                    return decoded;
                }
                "the keys from the kernel's symbols do not decode it".to_string()
            }
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    let mut kernel = kernel;
    kernel
        .warnings
        .push(format!("debugger data block not decoded: {why}"));
    kernel
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The readable summary: the fields a support engineer looks at first.
fn write_text(w: &mut impl Write, r: &InspectReport) -> io::Result<()> {
    let d = &r.dump;
    writeln!(w, "Dump          {} ({} bytes)", r.file.path, r.file.size)?;
    writeln!(
        w,
        "Format        {} (DumpType {}), {}{}, Windows build {} (major {}), {} processor{}",
        d.format,
        d.dump_type,
        d.arch,
        if d.pae { " PAE" } else { "" },
        d.build,
        d.major_version,
        d.processors,
        if d.processors == 1 { "" } else { "s" }
    )?;
    writeln!(
        w,
        "System time   {}",
        d.system_time_utc.as_deref().unwrap_or("-")
    )?;
    if d.stored_pages > 0 {
        writeln!(
            w,
            "Stored pages  {} ({} MiB)",
            d.stored_pages,
            d.stored_pages * 4096 / (1024 * 1024)
        )?;
    }
    if let Some(e) = &d.virtual_memory_error {
        writeln!(w, "Memory        not readable: {e}")?;
    }

    write_bugcheck(w, &r.bugcheck)?;
    if let Some(sp) = &r.symbol_path {
        let summary: Vec<String> = r
            .symbol_summary
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(w, "Symbols       {sp}")?;
        writeln!(w, "  status      {}", summary.join(", "))?;
    }
    if let Some(c) = &r.crash {
        write!(w, "{}", super::crash_text::stack_section(c))?;
    }

    let k = &r.kernel;
    match (&k.base, &k.name) {
        (Some(base), name) => writeln!(
            w,
            "Kernel        {} at {base}, size {}",
            name.as_deref().unwrap_or("(no module entry)"),
            k.size
                .map_or_else(|| "-".to_string(), |s| format!("{s:#x}"))
        )?,
        (None, _) => writeln!(w, "Kernel        not found")?,
    }
    if let Some(lab) = &k.build_lab {
        writeln!(w, "  build lab   {lab}")?;
    }
    match &k.pdb {
        Some(p) => writeln!(w, "  pdb         {} {} age {}", p.name, p.guid, p.age)?,
        None => writeln!(w, "  pdb         - (CodeView record not in the dump)")?,
    }
    let g = &r.kdbg;
    if g.found {
        writeln!(
            w,
            "KDBG          at {}, size {:#x}{}",
            opt(&g.va),
            g.size.unwrap_or(0),
            if g.decoded { ", decoded" } else { "" }
        )?;
        for name in [
            "MmPfnDatabase",
            "PoolTrackTable",
            "MmPagedPoolCommit",
            "MmAllocatedNonPagedPool",
        ] {
            if let Some(v) = g.values.get(name) {
                writeln!(w, "  {name:<26}{v}")?;
            }
        }
    } else {
        writeln!(
            w,
            "KDBG          not read: {}",
            g.error.as_deref().unwrap_or("-")
        )?;
    }

    let ml = &r.module_list;
    writeln!(
        w,
        "Modules       {} from {}{}",
        ml.count,
        ml.source,
        if ml.complete { "" } else { " (incomplete)" }
    )?;
    writeln!(
        w,
        "  {:<18} {:>10} {:<10} {:<28} PDB",
        "BASE", "SIZE", "TIMESTAMP", "NAME"
    )?;
    for m in &r.modules {
        write_module(w, m)?;
    }
    let with_symbols: Vec<&ModuleReport> =
        r.modules.iter().filter(|m| m.symbols.is_some()).collect();
    if !with_symbols.is_empty() {
        writeln!(w, "Module symbols")?;
        for m in with_symbols {
            write_module_symbols(w, m)?;
        }
    }
    if !r.warnings.is_empty() {
        writeln!(w, "Warnings")?;
        for x in &r.warnings {
            writeln!(w, "  - {x}")?;
        }
    }
    Ok(())
}

/// The bugcheck: code and name, the reference page's summary and the selected case, each
/// parameter with module+offset, function and documented meaning, and the faulting address.
fn write_bugcheck(w: &mut impl Write, b: &BugcheckReport) -> io::Result<()> {
    writeln!(
        w,
        "Bugcheck      {} {}{}",
        b.code,
        b.name.as_deref().unwrap_or("(unknown code)"),
        if b.pool_or_memory {
            "  [pool/memory]"
        } else {
            ""
        }
    )?;
    let d = b.description.as_ref();
    if let Some(d) = d {
        writeln!(w, "  summary     {}", d.summary)?;
        if let (Some(n), Some(cause)) = (d.selected_by, &d.cause) {
            writeln!(w, "  cause       {cause} (param {n})")?;
        }
    }
    for (i, ((p, s), n)) in b
        .params
        .iter()
        .zip(&b.params_symbolized)
        .zip(&b.params_named)
        .enumerate()
    {
        // module+offset, then the function name when a PDB gave one.
        let function = n.as_deref().filter(|n| n.contains('!')).unwrap_or("");
        let line = format!(
            "  param {}     {:<20}{:<24}{function}",
            i + 1,
            p.to_string(),
            s.as_deref().unwrap_or("")
        );
        writeln!(w, "{}", line.trim_end())?;
        if let Some(m) = d.and_then(|d| d.params.get(i)) {
            let tag = m
                .tag
                .as_ref()
                .map_or_else(String::new, |t| format!(" \"{t}\""));
            writeln!(w, "              {}{tag}", m.meaning)?;
        }
    }
    if let Some(f) = &b.faulting {
        let at = f.module_offset.as_deref().unwrap_or("(not in a module)");
        let function = if f.named {
            f.symbol.as_deref().unwrap_or("")
        } else {
            ""
        };
        let note = f
            .note
            .as_deref()
            .or(f.source_note.as_deref())
            .map_or_else(String::new, |n| format!(" ({n})"));
        let line = f
            .source
            .as_ref()
            .map_or_else(String::new, |l| format!(" ({})", l.short()));
        let at = format!("{at:<24}{function}{line}");
        let line = format!(
            "  faulting    {:<20}{}  [{}]{note}",
            f.address.to_string(),
            at.trim_end(),
            f.from
        );
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_module(w: &mut impl Write, m: &ModuleReport) -> io::Result<()> {
    let pdb = m
        .pdb
        .as_ref()
        .map_or_else(String::new, |p| format!("{} {} {}", p.name, p.guid, p.age));
    let line = format!(
        "  {:<18} {:>#10x} {:<10} {:<28} {}",
        m.base.to_string(),
        m.size,
        opt(&m.timestamp),
        m.name,
        pdb
    );
    writeln!(w, "{}", line.trim_end())
}

/// One line per module: status, then where the PDB came from or why not.
fn write_module_symbols(w: &mut impl Write, m: &ModuleReport) -> io::Result<()> {
    let Some(s) = &m.symbols else { return Ok(()) };
    let detail = if s.status == "found" {
        let via = match (s.pdb_key_from.as_deref(), s.image_source.as_deref()) {
            (Some("image"), Some(src)) => format!(" (key from the image, from {src})"),
            _ => String::new(),
        };
        format!(
            "{} from {}{via}",
            s.pdb.as_ref().map_or("", |p| p.name.as_str()),
            opt(&s.source)
        )
    } else {
        s.error.clone().unwrap_or_default()
    };
    let line = format!("  {:<28} {:<16} {detail}", m.name, s.status);
    writeln!(w, "{}", line.trim_end())
}
