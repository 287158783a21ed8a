//! The forge: synthetic Windows kernel dumps that follow real kernel layouts exactly, each with
//! a ground-truth file of what was planted.
//!
//! Layouts and global RVAs come from the kernel's own symbols in the corpus (ISF files for the
//! x64 kernels, ntkrnlpa.pdb for XP), read at run time through [`analyzer::symbols::Profile`].
//! The same arguments always produce the same bytes (seeded [`rng::SplitMix64`]).
//!
//! Flow: [`profiles`] (which kernel) -> [`system::System::build`] (memory contents on a
//! [`space::Machine`]) -> [`scenario`] (what the dump is about) -> [`writer`] (file layout) and
//! [`truth`] (FILE.truth.json).

pub mod busy_server;
pub mod code;
pub mod crash;
pub mod devices;
pub mod maxima;
pub mod objects;
pub mod ownership;
pub mod pe;
pub mod pool;
pub mod pool_scenarios;
pub mod poolstate;
pub mod profiles;
pub mod provenance;
pub mod provenance_truth;
pub mod pte;
pub mod rng;
pub mod scenario;
pub mod segheap;
pub mod series;
pub mod session;
pub mod shared_tag;
pub mod space;
pub mod system;
pub mod trim;
pub mod truth;
pub mod verifier;
pub mod verifier_tracking;
pub mod writer;

use analyzer::symbols::{Profile, SymbolsError};
use std::path::{Path, PathBuf};
use thiserror::Error;
use truth::hex;

pub use writer::Format;

pub const DEFAULT_SIZE: u64 = 2 << 30;
pub const MIN_SIZE: u64 = 256 << 20;
pub const MAX_SIZE: u64 = 1 << 40;
pub const DEFAULT_PROCESSORS: u32 = 2;
/// Environment variable naming the corpus directory (symbols).
pub const CORPUS_ENV: &str = "POOLTRIAGE_CORPUS";

#[derive(Debug, Error)]
pub enum ForgeError {
    #[error("unknown profile {0:?} (see `forge --list`)")]
    UnknownProfile(String),
    #[error("unknown format {0:?} (full, kernel-bitmap, full-bitmap)")]
    UnknownFormat(String),
    #[error("unknown scenario {0:?} (see `forge --list`)")]
    UnknownScenario(String),
    #[error("memory size {0} is out of range (256 MiB .. 1 TiB, multiple of 4096)")]
    BadSize(u64),
    #[error("processor count {0} is out of range (1..={1} for this profile)")]
    BadProcessors(u32, u32),
    #[error("scenario {scenario} is not available on profile {profile}: {reason}")]
    ScenarioUnsupported {
        scenario: String,
        profile: String,
        reason: String,
    },
    #[error("memory size too small for the forged system")]
    TooSmall,
    /// A series asked for that cannot be forged (count, interval, scenario).
    #[error("series: {0}")]
    BadSeries(String),
    #[error("symbols for profile {profile} not found (looked at {tried}): pass --isf-dir DIR (a Volatility 3 symbol folder holding ntkrnlmp.pdb/<GUID>-<AGE>.json.xz, as `analyze --isf-dir`), or --corpus DIR / {CORPUS_ENV} (a folder holding isf/ and pdb/)")]
    CorpusMissing { profile: String, tried: String },
    #[error(transparent)]
    Symbols(#[from] SymbolsError),
    #[error("the profile's symbols lack {0}")]
    MissingSymbol(String),
    #[error("internal forge error: write to unmapped address {0:#x}")]
    Unmapped(u64),
    #[error("cannot write {0}: {1}")]
    Io(String, std::io::Error),
    #[error("internal forge error: {0}")]
    Internal(String),
}

/// What to forge.
#[derive(Debug, Clone)]
pub struct Options {
    pub profile: String,
    pub format: String,
    pub size: u64,
    pub scenario: String,
    pub processors: u32,
    /// Corpus directory; `None`: searched (see [`symbol_candidates`]).
    pub corpus: Option<PathBuf>,
    /// A Volatility 3 symbol folder (`ntkrnlmp.pdb/<GUID>-<AGE>.json.xz`), as `analyze
    /// --isf-dir`: where a user outside the development tree keeps kernel layouts.
    pub isf_dir: Option<PathBuf>,
}

impl Options {
    pub fn new(profile: &str, format: &str) -> Options {
        Options {
            profile: profile.to_string(),
            format: format.to_string(),
            size: DEFAULT_SIZE,
            scenario: "baseline".to_string(),
            processors: DEFAULT_PROCESSORS,
            corpus: None,
            isf_dir: None,
        }
    }
}

/// Where a profile's symbols may be, in order: an explicit corpus alone; otherwise
/// $POOLTRIAGE_CORPUS, the ISF folder (`isf_dir`, for ISF profiles), the development tree the
/// executable was built in (`<repo>/target/<profile>/pooltriage` -> `<repo>/../shared/corpus`)
/// and `../shared/corpus` from the working directory. The forge works wherever the binary is,
/// given the kernel's layouts through one of these.
pub fn symbol_candidates(spec: &profiles::ProfileSpec, opts: &Options) -> Vec<PathBuf> {
    if let Some(c) = &opts.corpus {
        return vec![spec.symbol_path(c)];
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(CORPUS_ENV).filter(|p| !p.is_empty()) {
        out.push(spec.symbol_path(Path::new(&p)));
    }
    if let (Some(dir), Some(rel)) = (&opts.isf_dir, spec.isf_relative()) {
        out.push(dir.join(rel));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(spec.symbol_path(&exe_dir.join("../../../shared/corpus")));
    }
    out.push(spec.symbol_path(Path::new("../shared/corpus")));
    out
}

/// Reads a profile's symbols from the first of `candidates` that exists.
pub fn load_profile_from(
    spec: &profiles::ProfileSpec,
    candidates: &[PathBuf],
) -> Result<Profile, ForgeError> {
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(ForgeError::CorpusMissing {
            profile: spec.name.to_string(),
            tried: tried.join(", "),
        });
    };
    read_profile(spec, path)
}

/// Reads a profile's symbols from the corpus.
pub fn load_profile(spec: &profiles::ProfileSpec, corpus: &Path) -> Result<Profile, ForgeError> {
    load_profile_from(spec, &[spec.symbol_path(corpus)])
}

fn read_profile(spec: &profiles::ProfileSpec, path: &Path) -> Result<Profile, ForgeError> {
    Ok(match spec.symbols {
        profiles::SymbolSource::Isf(_) => Profile::from_isf(path)?,
        profiles::SymbolSource::Pdb(_) => Profile::from_pdb(path)?,
    })
}

/// Forges a dump at `out` and its truth file at `out` + ".truth.json"; returns the truth.
pub fn forge(opts: &Options, out: &Path) -> Result<truth::Truth, ForgeError> {
    let scenario = scenario::find(&opts.scenario)
        .ok_or_else(|| ForgeError::UnknownScenario(opts.scenario.clone()))?;
    forge_with(opts, out, scenario.as_ref(), None)
}

/// As [`forge`], with the scenario given (ignoring `opts.scenario`) and the machine's clock
/// (default: the profile's crash time): the series forge makes one machine's dumps at later
/// times this way. The seed depends on the scenario's name, not its state, so dumps of one
/// series share their base system (modules, processes, addresses).
pub fn forge_with(
    opts: &Options,
    out: &Path,
    scenario: &dyn scenario::Scenario,
    clock: Option<system::Clock>,
) -> Result<truth::Truth, ForgeError> {
    let spec = profiles::find(&opts.profile)
        .ok_or_else(|| ForgeError::UnknownProfile(opts.profile.clone()))?;
    let format = Format::parse(&opts.format)
        .ok_or_else(|| ForgeError::UnknownFormat(opts.format.clone()))?;
    let clock = clock.unwrap_or_else(|| system::Clock::of(spec));
    if scenario.kernel_bitmap_only() && format != Format::KernelBitmap {
        return Err(ForgeError::ScenarioUnsupported {
            scenario: scenario.name().into(),
            profile: spec.name.into(),
            reason: format!(
                "it leaves pages out of the dump, which only kernel-bitmap can ({} stores every page)",
                format.as_str()
            ),
        });
    }
    if !(MIN_SIZE..=MAX_SIZE).contains(&opts.size) || opts.size & (space::PAGE - 1) != 0 {
        return Err(ForgeError::BadSize(opts.size));
    }
    // KiProcessorBlock holds 32 entries on x86, 64 on x64 (without processor groups).
    let max_cpus = if spec.paging == space::Paging::X86Pae {
        32
    } else {
        64
    };
    if !(1..=max_cpus).contains(&opts.processors) {
        return Err(ForgeError::BadProcessors(opts.processors, max_cpus));
    }
    let processors = opts.processors;
    let profile = load_profile_from(spec, &symbol_candidates(spec, opts))?;

    let runs = writer::physical_runs(opts.size);
    // Forged pages stay in the first 3 GiB run, below the end of low memory.
    let data_limit = runs.get(1).map(|r| r.0 + r.1).unwrap_or(0);
    // The seed ignores the format, so every format of one profile holds the same memory.
    let seed = format!(
        "{}/{}/{}/{}",
        spec.name,
        scenario.name(),
        opts.size,
        processors
    );
    let mut sys = system::System::build(
        spec,
        profile,
        opts.size,
        processors,
        &seed,
        data_limit,
        &scenario.drivers(),
        clock,
    )?;
    let pool = scenario.plant(&mut sys)?;
    // Close the last classic pool page and seal open VS subsegments (also for scenarios that
    // plant no pool of their own: the base system's blocks are in the pool too).
    {
        let system::System {
            machine,
            nonpaged,
            paged,
            ..
        } = &mut sys;
        nonpaged.close_page(machine)?;
        paged.close_page(machine)?;
    }
    sys.machine.finish();
    // Low physical memory (1-16 MiB) is stored too; pages in 0x1000-0xFF000 never are (that is
    // where Volatility looks for the boot trampoline).
    sys.machine.store_zero_frames(0x100, 0x1000);

    let values = writer::HeaderValues {
        build: spec.build,
        directory_table_base: sys.machine.dtb,
        pfn_database: sys.pfn_database,
        ps_loaded_module_list: sys.ps_loaded_module_list,
        ps_active_process_head: sys.ps_active_process_head,
        kd_debugger_data_block: sys.kdbg,
        processors,
        bugcheck_code: sys
            .crash
            .as_ref()
            .map_or(system::BUGCHECK_MANUALLY_INITIATED_CRASH, |c| c.code),
        bugcheck_params: sys.crash.as_ref().map_or([0; 4], |c| c.params),
        context: sys.crash.as_ref().and_then(|c| c.context.clone()),
        exception: sys.crash.as_ref().and_then(|c| c.exception.clone()),
        system_time: clock.system_time,
        system_up_time: sys.up_time(),
        product_type: spec.product_type,
    };
    let written = writer::write_dump(out, format, spec.paging, &values, &runs, &sys.machine)?;

    let kernel = sys.modules.first().cloned();
    let truth = truth::Truth {
        schema: 1,
        profile: spec.name.to_string(),
        format: format.as_str().to_string(),
        scenario: scenario.name().to_string(),
        arch: spec.arch().to_string(),
        pae: spec.paging == space::Paging::X86Pae,
        build: spec.build,
        dump_type: format.dump_type(),
        processors,
        file_size: written.file_size,
        physical_pages_stored: written.pages_stored,
        directory_table_base: hex(sys.machine.dtb),
        system_time: hex(clock.system_time),
        system_up_time: hex(clock.up_time),
        bugcheck: truth::BugcheckJson {
            code: hex(u64::from(values.bugcheck_code)),
            params: values.bugcheck_params.map(hex),
        },
        kdbg: hex(sys.kdbg),
        ps_loaded_module_list: hex(sys.ps_loaded_module_list),
        ps_active_process_head: hex(sys.ps_active_process_head),
        kernel: truth::KernelJson {
            base: hex(sys.kernel_base),
            size: sys.kernel_size,
            pdb: kernel.and_then(|k| k.pdb),
        },
        modules: sys.modules.iter().map(truth::ModuleJson::from).collect(),
        processes: sys.processes.iter().map(truth::ProcessJson::from).collect(),
        driver_objects: devices::truth(&sys.driver_objects),
        mapped: sys
            .mapped()
            .into_iter()
            .map(|(va, size)| truth::RangeJson { va: hex(va), size })
            .collect(),
        pool,
        crash: sys.crash.map(|c| c.truth),
    };
    let truth_path = truth_path(out);
    let json =
        serde_json::to_vec_pretty(&truth).map_err(|e| ForgeError::Internal(e.to_string()))?;
    std::fs::write(&truth_path, json)
        .map_err(|e| ForgeError::Io(truth_path.display().to_string(), e))?;
    Ok(truth)
}

/// `FILE.truth.json` beside `FILE`.
pub fn truth_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(".truth.json");
    PathBuf::from(s)
}

/// The text of `forge --list`.
pub fn listing() -> String {
    let mut s = String::from("profiles:\n");
    for p in profiles::PROFILES {
        s.push_str(&format!("  {:<22} {}\n", p.name, p.description));
    }
    s.push_str("formats:\n");
    for f in Format::ALL {
        s.push_str(&format!("  {:<22} {}\n", f.as_str(), f.describe()));
    }
    s.push_str("scenarios:\n");
    for sc in scenario::registry() {
        s.push_str(&format!("  {:<22} {}\n", sc.name(), sc.description()));
    }
    s
}
