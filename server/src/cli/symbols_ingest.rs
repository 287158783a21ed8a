//! `pooltriage symbols ingest --out DIR [--name NAME] [limits] UPLOAD`: the service's sandbox
//! for symbol uploads (docs/symbols.md, "Vendor symbols"). The server runs it in a child
//! process with the analyses' time and memory limits (`jobs::runner::ingest_symbols`): it
//! unpacks the upload (one file, or a zip), identifies every file from its content and prints
//! what it found as JSON on stdout (`vendor_symbols::ingest::IngestOutput`). Not meant to be
//! run by hand (`symbols add` is the command for building a store).
//!
//! Exit codes: 0 with the JSON (even when every file was refused: each says why); 2 the upload
//! itself is unreadable (a broken zip, a single file without a name), with one line.

use crate::vendor_symbols::ingest::IngestLimits;
use crate::vendor_symbols::unpack::unpack;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct IngestArgs {
    /// The uploaded file: a PDB, a PE image, or a zip of them (a symstore tree included).
    #[arg(value_name = "UPLOAD")]
    pub upload: PathBuf,
    /// An empty directory for the accepted files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The upload's file name (for a single file: the name it is stored under).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[arg(long, default_value_t = 4 << 30)]
    pub max_file_bytes: u64,
    #[arg(long, default_value_t = 10_000)]
    pub max_files: usize,
    #[arg(long, default_value_t = 16 << 30)]
    pub max_total_bytes: u64,
    #[arg(long, default_value_t = 100)]
    pub max_ratio: u64,
    #[arg(long, default_value_t = 16 << 20)]
    pub ratio_floor_bytes: u64,
}

pub fn run(args: &IngestArgs) -> ExitCode {
    let limits = IngestLimits {
        max_file_bytes: args.max_file_bytes,
        max_files: args.max_files,
        max_total_bytes: args.max_total_bytes,
        max_ratio: args.max_ratio,
        ratio_floor_bytes: args.ratio_floor_bytes,
    };
    match unpack(&args.upload, args.name.as_deref(), &args.out, &limits) {
        Ok(out) => match serde_json::to_string(&out) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
