//! `pooltriage forge`: writes a synthetic kernel dump and FILE.truth.json beside it.

use clap::Args;
use forge::{ForgeError, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ForgeArgs {
    /// List profiles, formats and scenarios.
    #[arg(long)]
    list: bool,
    /// Kernel profile, e.g. win10-19041-x64 (see --list).
    #[arg(long, required_unless_present = "list")]
    profile: Option<String>,
    /// Dump format: full, kernel-bitmap or full-bitmap.
    #[arg(long, required_unless_present = "list")]
    format: Option<String>,
    /// Physical memory size of the forged machine in bytes (default 2 GiB).
    #[arg(long, default_value_t = forge::DEFAULT_SIZE)]
    size: u64,
    /// What the dump is about (see --list).
    #[arg(long, default_value = "baseline")]
    scenario: String,
    /// Number of processors.
    #[arg(long, default_value_t = forge::DEFAULT_PROCESSORS)]
    processors: u32,
    /// Corpus directory holding isf/ and pdb/ (default: searched, see --isf-dir).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// A Volatility 3 symbol folder with the kernel's ISF (ntkrnlmp.pdb/<GUID>-<AGE>.json.xz),
    /// as for `analyze`: how the forge finds a profile's layouts outside the development tree.
    #[arg(long, value_name = "DIR", env = "POOLTRIAGE_ISF_DIR")]
    isf_dir: Option<PathBuf>,
    /// Output dump file; the truth goes to FILE.truth.json. With --series, a directory.
    #[arg(long, required_unless_present = "list")]
    out: Option<PathBuf>,
    /// Forge N dumps of one machine (scenario growing-leak or steady-state) into the --out
    /// directory, with poolmon.log, typeperf.csv and series.truth.json (docs/forge.md).
    #[arg(long, value_name = "N")]
    series: Option<u32>,
    /// Time between the series' dumps: 30m, 1h, 2d... (default 1h).
    #[arg(
        long,
        value_name = "DURATION",
        requires = "series",
        default_value = "1h"
    )]
    interval: String,
    /// The growing leak's rate in bytes per hour (default: 1 024 blocks of ~2 KiB per step).
    #[arg(long, value_name = "BYTES_PER_HOUR", requires = "series")]
    rate: Option<u64>,
}

pub fn run(args: &ForgeArgs) -> ExitCode {
    if args.list {
        print!("{}", forge::listing());
        return ExitCode::SUCCESS;
    }
    let (Some(profile), Some(format), Some(out)) = (&args.profile, &args.format, &args.out) else {
        eprintln!("error: --profile, --format and --out are required");
        return ExitCode::from(2);
    };
    let mut opts = Options::new(profile, format);
    opts.size = args.size;
    opts.scenario = args.scenario.clone();
    opts.processors = args.processors;
    opts.corpus = args.corpus.clone();
    opts.isf_dir = args.isf_dir.clone();
    if let Some(count) = args.series {
        return series(args, opts, count, out);
    }
    let start = std::time::Instant::now();
    match forge::forge(&opts, out) {
        Ok(truth) => {
            println!(
                "wrote {} ({} {} {}, {} bytes, {} pages stored) and {} in {:.2}s",
                out.display(),
                truth.profile,
                truth.format,
                truth.scenario,
                truth.file_size,
                truth.physical_pages_stored,
                forge::truth_path(out).display(),
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `--series N`: the dumps, the logs and series.truth.json in the --out directory.
fn series(args: &ForgeArgs, base: Options, count: u32, dir: &std::path::Path) -> ExitCode {
    let Some(interval_secs) = forge::series::parse_duration(&args.interval) else {
        eprintln!(
            "error: --interval {:?}: a number with s, m, h or d (e.g. 1h)",
            args.interval
        );
        return ExitCode::from(2);
    };
    let opts = forge::series::SeriesOptions {
        base,
        count,
        interval_secs,
        bytes_per_hour: args.rate,
    };
    let start = std::time::Instant::now();
    match forge::series::forge_series(&opts, dir) {
        Ok(truth) => {
            println!(
                "wrote {count} dumps, poolmon.log, typeperf.csv and series.truth.json to {} in {:.2}s (leak: {})",
                dir.display(),
                start.elapsed().as_secs_f64(),
                truth["leak"]["bytes_per_hour"]
                    .as_f64()
                    .map_or("none".into(), |r| format!("{r:.0} bytes/h"))
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &ForgeError) -> ExitCode {
    eprintln!("error: {e}");
    let bad_input = matches!(
        e,
        ForgeError::UnknownProfile(_)
            | ForgeError::UnknownFormat(_)
            | ForgeError::UnknownScenario(_)
            | ForgeError::ScenarioUnsupported { .. }
            | ForgeError::BadSize(_)
            | ForgeError::BadProcessors(..)
            | ForgeError::TooSmall
            | ForgeError::BadSeries(_)
            | ForgeError::CorpusMissing { .. }
            | ForgeError::Symbols(_)
    );
    ExitCode::from(if bad_input { 2 } else { 1 })
}
