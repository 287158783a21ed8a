//! `pooltriage symbols profile PDB_OR_ISF [--json]`: the kernel profile (global RVAs and
//! structure layouts) a PDB or a Volatility 3 ISF file gives, as the pool engine would use it;
//! or with `--fallback BUILD` the built-in layouts used when a dump comes with no symbols.
//! JSON schema in docs/symbols.md. Exit codes: 0 success, 2 unreadable or malformed file /
//! bad arguments.

use analyzer::symbols::{fallback, profile_report, Profile};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file", "fallback"])))]
pub struct ProfileArgs {
    /// A kernel PDB (e.g. ntkrnlmp.pdb) or a Volatility 3 ISF file (.json or .json.xz).
    #[arg(value_name = "PDB_OR_ISF")]
    pub file: Option<PathBuf>,
    /// Show the built-in fallback layouts for this NT build instead (no globals: those come
    /// from a dump's debugger data block).
    #[arg(long, value_name = "BUILD")]
    pub fallback: Option<u32>,
    /// With --fallback: a 32-bit kernel (default 64-bit).
    #[arg(long, requires = "fallback")]
    pub x86: bool,
    /// Print JSON: {source, pdb, pointer_size, globals, types}.
    #[arg(long)]
    pub json: bool,
}

/// PDB files start with the MSF 7.0 signature; anything else is taken for an ISF.
fn is_pdb(path: &std::path::Path) -> bool {
    let mut magic = [0u8; 24];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map(|_| &magic == b"Microsoft C/C++ MSF 7.00")
        .unwrap_or(false)
}

pub fn run(args: &ProfileArgs) -> ExitCode {
    let profile = match (&args.file, args.fallback) {
        (Some(path), _) => {
            let read = if is_pdb(path) {
                Profile::from_pdb(path)
            } else {
                Profile::from_isf(path)
            };
            match read {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        (None, Some(build)) => match fallback::profile(build, if args.x86 { 4 } else { 8 }, None) {
            Some(p) => p,
            None => {
                eprintln!("error: no built-in layouts for this architecture");
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("error: give a PDB or ISF file, or --fallback BUILD");
            return ExitCode::from(2);
        }
    };
    let text = if args.json {
        match serde_json::to_string_pretty(&profile_report::to_json(&profile)) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        profile_report::to_text(&profile)
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    ExitCode::SUCCESS
}
