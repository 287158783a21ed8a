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
    /// Corpus directory holding isf/ and pdb/ (default: $POOLTRIAGE_CORPUS, else ../shared/corpus).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Output dump file; the truth goes to FILE.truth.json.
    #[arg(long, required_unless_present = "list")]
    out: Option<PathBuf>,
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
        Err(e) => {
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
                    | ForgeError::CorpusMissing { .. }
                    | ForgeError::Symbols(_)
            );
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}
