//! `pooltriage symbols <sub>`: symbol files.
//!
//! `symbols add` writes a local store (as symstore add), `symbols lookup` names an image's
//! addresses or allocation call sites through the symbol path, `symbols ingest` is the
//! service's sandbox for symbol uploads. `symbols fetch` gets a PDB or an image (PE) from the symbol path (WinDbg's syntax, see
//! docs/symbols.md), by key or for the modules of a dump, and says where each file landed and
//! which symbol path entry answered. Exit codes: 0 every file found, 1 some not (each line
//! says why), 2 bad input (arguments, symbol path, unreadable dump).

use analyzer::dump::Dump;
use analyzer::kernel::read_kernel;
use analyzer::symbols::store::{
    FetchError, Fetched, StoreConfig, SymbolKey, SymbolPath, SymbolStore,
};
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// An HTTP proxy for symbol servers (not HTTPS_PROXY: that one also names the proxy for
/// crates.io and PyPI on build machines, where symbol servers may be local).
const PROXY_ENV: &str = "POOLTRIAGE_SYMBOL_PROXY";

/// Set (not "0") to never use the network for symbols: caches and local stores only.
const OFFLINE_ENV: &str = "POOLTRIAGE_OFFLINE";

/// Downloads in parallel for `--dump` (a triage dump lists ~150 drivers).
const FETCH_THREADS: usize = 4;

#[derive(clap::Args)]
pub struct SymbolsArgs {
    #[command(subcommand)]
    pub command: SymbolsCommand,
}

#[derive(clap::Subcommand)]
pub enum SymbolsCommand {
    /// Get a PDB or an image (PE) from the symbol path: by key, or for the modules of a dump.
    Fetch(FetchArgs),
    /// Show the kernel profile (global RVAs, structure layouts) a PDB or ISF file gives.
    Profile(profile_cmd::ProfileArgs),
    /// Add PDBs and images to a local symbol store, keyed by their content (as symstore add).
    Add(add_cmd::AddArgs),
    /// Name addresses of an image, or its allocation call sites, through the symbol path.
    Lookup(lookup_cmd::LookupArgs),
    /// The service's sandbox for symbol uploads (run by `serve`, not by hand).
    #[command(hide = true)]
    Ingest(ingest_cmd::IngestArgs),
}

#[path = "symbols_add.rs"]
mod add_cmd;
#[path = "symbols_ingest.rs"]
mod ingest_cmd;
#[path = "symbols_lookup.rs"]
mod lookup_cmd;
#[path = "symbols_profile.rs"]
mod profile_cmd;

/// Where symbols come from; every command that needs symbols flattens this.
#[derive(clap::Args, Debug, Clone)]
pub struct SymbolPathArgs {
    /// WinDbg-style symbol path, e.g. `srv*C:\cache*https://msdl.microsoft.com/download/symbols;D:\mysyms`.
    /// Default: `_NT_SYMBOL_PATH`, else `srv*DATA_DIR/symbols*https://msdl.microsoft.com/download/symbols`.
    #[arg(long, value_name = "PATH")]
    pub symbol_path: Option<String>,
    /// pooltriage's data directory; the default symbol cache is DATA_DIR/symbols.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "data",
        env = "POOLTRIAGE_DATA_DIR"
    )]
    pub data_dir: PathBuf,
}

impl SymbolPathArgs {
    /// The symbol store these options describe (flag, else `_NT_SYMBOL_PATH`, else default).
    pub fn store(&self) -> Result<SymbolStore, FetchError> {
        let path = SymbolPath::resolve(self.symbol_path.as_deref(), &self.data_dir)?;
        let mut config = StoreConfig::with_data_dir(&self.data_dir);
        config.proxy = std::env::var(PROXY_ENV)
            .ok()
            .filter(|p| !p.trim().is_empty());
        config.offline = std::env::var(OFFLINE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        Ok(SymbolStore::new(path, config))
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["pdb", "pe", "dump"])))]
pub struct FetchArgs {
    /// A PDB by its CodeView identity: file name, GUID (dashed or not), age (decimal or 0x hex).
    #[arg(long, num_args = 3, value_names = ["NAME", "GUID", "AGE"])]
    pub pdb: Option<Vec<String>>,
    /// An image by its header identity: file name, TimeDateStamp, SizeOfImage (0x hex or decimal).
    #[arg(long, num_args = 3, value_names = ["NAME", "TIMESTAMP", "SIZE"])]
    pub pe: Option<Vec<String>>,
    /// Every module of this dump: its PDB when the dump holds its CodeView record, else its
    /// image by the module list's timestamp and size.
    #[arg(long, value_name = "DUMP")]
    pub dump: Option<PathBuf>,
    /// With --dump: only this module (case-insensitive, e.g. amdppm.sys).
    #[arg(long, value_name = "NAME", requires = "dump")]
    pub module: Option<String>,
    #[command(flatten)]
    pub symbols: SymbolPathArgs,
    /// Print JSON instead of one line per file.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &SymbolsArgs) -> ExitCode {
    match &args.command {
        SymbolsCommand::Fetch(a) => fetch(a),
        SymbolsCommand::Profile(a) => profile_cmd::run(a),
        SymbolsCommand::Add(a) => add_cmd::run(a),
        SymbolsCommand::Lookup(a) => lookup_cmd::run(a),
        SymbolsCommand::Ingest(a) => ingest_cmd::run(a),
    }
}

/// One file to fetch.
struct Job {
    module: Option<String>,
    key: Option<SymbolKey>,
    /// Why there is no key.
    no_key: Option<String>,
}

#[derive(Serialize)]
struct FetchReport {
    symbol_path: String,
    results: Vec<FetchResult>,
}

#[derive(Serialize)]
struct FetchResult {
    /// The dump module this file is for (with --dump).
    module: Option<String>,
    /// "pdb" | "pe" | null (no key).
    kind: Option<&'static str>,
    name: Option<String>,
    /// The store key directory (GUIDAGE or TIMESTAMPSIZE).
    key: Option<String>,
    /// "found", or FetchError::status(), or "no key".
    status: String,
    path: Option<String>,
    source: Option<String>,
    origin: Option<String>,
    error: Option<String>,
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// 0x-prefixed hex or decimal.
fn number(what: &str, s: &str) -> Result<u32, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{what} {s:?} is not a number (use 0x for hex)"))
}

fn jobs_from_args(args: &FetchArgs) -> Result<Vec<Job>, String> {
    let one = |key: SymbolKey| -> Result<Vec<Job>, String> {
        key.validate().map_err(|e| e.to_string())?;
        Ok(vec![Job {
            module: None,
            key: Some(key),
            no_key: None,
        }])
    };
    if let Some(v) = &args.pdb {
        let [name, guid, age] = v.as_slice() else {
            return Err("--pdb takes NAME GUID AGE".into());
        };
        return one(SymbolKey::pdb(name.as_str(), guid, number("age", age)?));
    }
    if let Some(v) = &args.pe {
        let [name, ts, size] = v.as_slice() else {
            return Err("--pe takes NAME TIMESTAMP SIZE".into());
        };
        return one(SymbolKey::pe(
            name.as_str(),
            number("timestamp", ts)?,
            number("size", size)?,
        ));
    }
    let Some(path) = &args.dump else {
        return Err("one of --pdb, --pe, --dump is required".into());
    };
    let dump = Dump::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let kernel = read_kernel(&dump);
    let mut jobs = Vec::new();
    for m in &kernel.modules.modules {
        if args
            .module
            .as_deref()
            .is_some_and(|want| !want.eq_ignore_ascii_case(&m.name))
        {
            continue;
        }
        let cv = m.pe.as_ref().and_then(|pe| pe.codeview.as_ref());
        let job = match (cv, m.timestamp) {
            (Some(cv), _) => Job {
                module: Some(m.name.clone()),
                key: Some(SymbolKey::pdb(cv.pdb_name(), &cv.guid, cv.age)),
                no_key: None,
            },
            (None, Some(ts)) if m.size != 0 => Job {
                module: Some(m.name.clone()),
                key: Some(SymbolKey::pe(m.name.as_str(), ts, m.size)),
                no_key: None,
            },
            _ => Job {
                module: Some(m.name.clone()),
                key: None,
                no_key: Some("no CodeView record and no timestamp/size in the dump".into()),
            },
        };
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Err(match &args.module {
            Some(name) => format!("{}: no module named {name:?}", path.display()),
            None => format!("{}: no modules found", path.display()),
        });
    }
    Ok(jobs)
}

fn result_for(job: &Job, outcome: Option<Result<Fetched, FetchError>>) -> FetchResult {
    let mut r = FetchResult {
        module: job.module.clone(),
        kind: job.key.as_ref().map(SymbolKey::kind),
        name: job.key.as_ref().map(|k| k.name().to_string()),
        key: job.key.as_ref().map(SymbolKey::id),
        status: String::new(),
        path: None,
        source: None,
        origin: None,
        error: None,
    };
    match outcome {
        None => {
            r.status = "no key".into();
            r.error = job.no_key.clone();
        }
        Some(Ok(f)) => {
            r.status = "found".into();
            r.path = Some(f.path.display().to_string());
            r.source = Some(f.source);
            r.origin = Some(f.origin);
        }
        Some(Err(e)) => {
            r.status = e.status().into();
            r.error = Some(e.to_string());
        }
    }
    r
}

fn fetch(args: &FetchArgs) -> ExitCode {
    let jobs = match jobs_from_args(args) {
        Ok(j) => j,
        Err(e) => return bad(e),
    };
    let store = match args.symbols.store() {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let keys: Vec<SymbolKey> = jobs.iter().filter_map(|j| j.key.clone()).collect();
    let mut fetched = store.fetch_many(&keys, FETCH_THREADS).into_iter();
    let results: Vec<FetchResult> = jobs
        .iter()
        .map(|job| {
            let outcome = if job.key.is_some() {
                fetched.next()
            } else {
                None
            };
            result_for(job, outcome)
        })
        .collect();
    let all_found = results.iter().all(|r| r.status == "found");
    let report = FetchReport {
        symbol_path: store.symbol_path().to_string(),
        results,
    };
    let mut out = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &report)
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        // `pooltriage symbols fetch ... | head` is not a failure.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("error: writing the report: {e}");
            return ExitCode::from(1);
        }
    }
    if all_found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Control characters in names from a dump are shown escaped.
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn write_text(w: &mut impl Write, report: &FetchReport) -> io::Result<()> {
    for r in &report.results {
        if let Some(m) = &r.module {
            write!(w, "{}: ", clean(m))?;
        }
        let what = match (&r.name, &r.key) {
            (Some(n), Some(k)) => format!("{}/{k}", clean(n)),
            _ => "-".into(),
        };
        match (&r.path, &r.source) {
            (Some(path), Some(source)) => writeln!(w, "{what}  found  {path}  (from {source})")?,
            _ => writeln!(
                w,
                "{what}  {}  {}",
                r.status,
                clean(r.error.as_deref().unwrap_or(""))
            )?,
        }
    }
    Ok(())
}
