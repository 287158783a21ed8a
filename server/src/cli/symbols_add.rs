//! `pooltriage symbols add STORE FILE... [--json]`: adds PDBs and images to a local symbol
//! store as `symstore.exe add` does, each under the key read from the file itself (a PDB's
//! GUID and age, an image's TimeDateStamp and SizeOfImage), so vendors can build the store
//! they upload to the service or point `--symbol-path` at. A file that is neither a PDB nor a
//! PE image, or a PDB that cannot be read through, is refused with the reason.
//!
//! Exit codes: 0 every file added (or already there with the same bytes); 1 a file could not
//! be written, or a different file is already stored under its key; 2 a file was refused.

use analyzer::report::symbol_file::SymbolFileReport;
use analyzer::symbols::identify::identify;
use analyzer::symbols::store::add::{add, AddOutcome, Transfer};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AddArgs {
    /// The store directory (created if missing; two-tier when it holds index2.txt).
    #[arg(value_name = "STORE")]
    pub store: PathBuf,
    /// PDBs (.pdb) and PE images (.sys, .dll, .exe...), each stored under its own file name.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON: {store, results: [{file, status, path, error, identity}]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AddReport {
    store: String,
    results: Vec<AddResult>,
}

#[derive(Serialize)]
struct AddResult {
    file: String,
    /// "added" | "duplicate" | "conflict" | "refused" | "failed".
    status: &'static str,
    path: Option<String>,
    error: Option<String>,
    identity: Option<SymbolFileReport>,
}

pub fn run(args: &AddArgs) -> ExitCode {
    let results: Vec<AddResult> = args.files.iter().map(|f| add_one(&args.store, f)).collect();
    let code = exit_code(&results);
    if args.json {
        let report = AddReport {
            store: args.store.display().to_string(),
            results,
        };
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        for r in &results {
            println!("{}", line(r));
        }
    }
    code
}

fn add_one(store: &Path, file: &Path) -> AddResult {
    let shown = file.display().to_string();
    let mut r = AddResult {
        file: shown,
        status: "refused",
        path: None,
        error: None,
        identity: None,
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = match identify(file, &name) {
        Ok(id) => id,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.identity = Some(SymbolFileReport::from(&id));
    match add(store, id.key(), file, Transfer::Copy) {
        Ok(outcome) => {
            r.path = Some(outcome.path().display().to_string());
            r.status = match outcome {
                AddOutcome::Added(_) => "added",
                AddOutcome::Duplicate(_) => "duplicate",
                AddOutcome::Conflict(_) => {
                    r.error = Some("a different file is already stored under this key".into());
                    "conflict"
                }
            };
        }
        Err(e) => {
            r.status = "failed";
            r.error = Some(format!("cannot write to {}: {e}", store.display()));
        }
    }
    r
}

fn exit_code(results: &[AddResult]) -> ExitCode {
    if results.iter().any(|r| r.status == "refused") {
        ExitCode::from(2)
    } else if results
        .iter()
        .any(|r| matches!(r.status, "conflict" | "failed"))
    {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `file: pdb drv.pdb/GUIDAGE added STORE/... (12 functions, line information)`.
fn line(r: &AddResult) -> String {
    match (&r.identity, &r.error) {
        (Some(id), None) => format!(
            "{}: {} {}/{} {} {} ({})",
            r.file,
            id.kind,
            id.name,
            id.key,
            r.status,
            r.path.as_deref().unwrap_or(""),
            id.describe()
        ),
        (Some(id), Some(e)) => format!(
            "{}: {} {}/{} {}: {e}",
            r.file, id.kind, id.name, id.key, r.status
        ),
        (None, e) => format!("{}: {}: {}", r.file, r.status, e.as_deref().unwrap_or("")),
    }
}
