//! `pooltriage symbols lookup IMAGE [--sites] [RVA...] [--symbol-path P] [--json]`: what the
//! symbol path makes of an image's code, without a dump: the image's PDB found by its
//! CodeView record (and checked against it, as WinDbg refuses a mismatched PDB), then each
//! RVA, or each allocation call site `analyze` would report for it (`--sites`), named
//! `module!Function+0xoff` with its source line. A vendor checks with it that the store it is
//! about to upload names its driver.
//!
//! Exit codes: 0 the PDB was found and read; 1 it was not (the status says why: not found,
//! GUID or age mismatch, unreadable); 2 bad input (unreadable image, bad RVA, bad symbol path).

use super::SymbolPathArgs;
use analyzer::attribution::scan_pe_file;
use analyzer::kernel::{Module, PeFile};
use analyzer::report::SourceRef;
use analyzer::symbols::identify::MAX_IMAGE_BYTES;
use analyzer::symbols::resolve::{resolve_module, SymbolState, SymbolStatus};
use analyzer::symbols::symbolizer::{NamedAddress, Symbolizer};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct LookupArgs {
    /// The image (a driver .sys, a .dll, an .exe).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Addresses to name, as RVAs (0x hex or decimal).
    #[arg(value_name = "RVA")]
    pub rvas: Vec<String>,
    /// Name every allocation call site of the image (as `analyze` reports them).
    #[arg(long)]
    pub sites: bool,
    #[command(flatten)]
    pub symbols: SymbolPathArgs,
    /// Print JSON: {image, symbols, addresses, sites}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct LookupReport {
    image: String,
    symbols: StatusReport,
    addresses: Vec<Named>,
    sites: Vec<Site>,
}

#[derive(Serialize)]
struct StatusReport {
    /// As `inspect` says it: "found", "not found", "malformed" (a mismatched PDB)...
    status: String,
    source: Option<String>,
    pdb_path: Option<String>,
    /// Whether the PDB carries source line information (null when not read).
    line_info: Option<bool>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Named {
    rva: String,
    symbol: String,
    named: bool,
    source: Option<SourceRef>,
    note: Option<String>,
    source_note: Option<String>,
}

#[derive(Serialize)]
struct Site {
    /// RVA of the instruction that holds the tag (the call itself when untagged).
    rva: String,
    /// RVA of the allocation call.
    call: String,
    tag: String,
    callee: Option<String>,
    size: Option<u64>,
    /// Function at `rva`.
    symbol: Option<String>,
    /// Source line of the call.
    source: Option<SourceRef>,
}

fn rva(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    v.map_err(|_| format!("RVA {s:?} is not a number (use 0x for hex)"))
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

pub fn run(args: &LookupArgs) -> ExitCode {
    let rvas: Result<Vec<u32>, String> = args.rvas.iter().map(|s| rva(s)).collect();
    let rvas = match rvas {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    let shown = args.image.display();
    match std::fs::metadata(&args.image) {
        Ok(m) if m.len() > MAX_IMAGE_BYTES => {
            return bad(format!("{shown}: larger than {MAX_IMAGE_BYTES} bytes"))
        }
        Err(e) => return bad(format!("{shown}: {e}")),
        Ok(_) => {}
    }
    let bytes = match std::fs::read(&args.image) {
        Ok(b) => b,
        Err(e) => return bad(format!("{shown}: {e}")),
    };
    let module = match module_of(&args.image, &bytes) {
        Ok(m) => m,
        Err(e) => return bad(format!("{shown}: {e}")),
    };
    let store = match args.symbols.store() {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let status = resolve_module(&store, &module);
    let report = lookup(args, &bytes, &module, &status, &rvas);
    print(args.json, &report);
    if status.status == SymbolState::Found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The image as a loaded module at its preferred base, with its own headers (and so its
/// CodeView record: the PDB key).
fn module_of(path: &std::path::Path, bytes: &[u8]) -> Result<Module, String> {
    let file = PeFile::new(bytes).map_err(|e| e.to_string())?;
    let pe = file.info().map_err(|e| e.to_string())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Module {
        name,
        path: path.display().to_string(),
        base: file.base(),
        size: pe.size_of_image,
        timestamp: Some(pe.timestamp),
        checksum: Some(pe.checksum),
        ldr_entry: None,
        pe: Some(pe),
        pe_error: None,
    })
}

fn lookup(
    args: &LookupArgs,
    bytes: &[u8],
    module: &Module,
    status: &SymbolStatus,
    rvas: &[u32],
) -> LookupReport {
    let modules = std::slice::from_ref(module);
    let statuses = std::slice::from_ref(status);
    let mut sym = Symbolizer::new(modules, statuses, None);
    let base = module.base;
    let addresses = rvas
        .iter()
        .filter_map(|&r| sym.name(base + u64::from(r)).map(|n| named(r, n)))
        .collect();
    let sites = if args.sites {
        sites(bytes, base, &mut sym)
    } else {
        Vec::new()
    };
    LookupReport {
        image: args.image.display().to_string(),
        symbols: StatusReport {
            status: status.status.as_str().to_string(),
            source: status.source.clone(),
            pdb_path: status.pdb.as_ref().map(|p| p.display().to_string()),
            line_info: sym.has_lines(&module.name),
            error: status.error.clone(),
        },
        addresses,
        sites,
    }
}

fn named(rva: u32, n: NamedAddress) -> Named {
    Named {
        rva: format!("{rva:#x}"),
        symbol: n.symbol,
        named: n.named,
        source: n.source.map(SourceRef::from),
        note: n.note,
        source_note: n.source_note,
    }
}

fn sites(bytes: &[u8], base: u64, sym: &mut Symbolizer<'_>) -> Vec<Site> {
    let Ok(scan) = scan_pe_file(bytes) else {
        return Vec::new();
    };
    scan.sites
        .iter()
        .map(|s| Site {
            rva: format!("{:#x}", s.address.wrapping_sub(base)),
            call: format!("{:#x}", s.call.wrapping_sub(base)),
            tag: s.tag.to_string(),
            callee: s.callee.map(str::to_string),
            size: s.size,
            symbol: sym.name(s.address).filter(|n| n.named).map(|n| n.symbol),
            source: sym.name(s.call).and_then(|n| n.source).map(SourceRef::from),
        })
        .collect()
}

fn print(json: bool, r: &LookupReport) {
    if json {
        match serde_json::to_string_pretty(r) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
        return;
    }
    let s = &r.symbols;
    let lines = match s.line_info {
        Some(true) => " (line information)",
        Some(false) => " (no line information: a public PDB)",
        None => "",
    };
    println!(
        "{}: PDB {}{}{}{}",
        r.image,
        s.status,
        s.pdb_path
            .as_deref()
            .map_or(String::new(), |p| format!(" {p}")),
        lines,
        s.error
            .as_deref()
            .map_or(String::new(), |e| format!(": {e}"))
    );
    for a in &r.addresses {
        let line = a
            .source
            .as_ref()
            .map_or(String::new(), |l| format!(" ({})", l.short()));
        println!("  {:>10}  {}{line}", a.rva, a.symbol);
    }
    for x in &r.sites {
        let line = x
            .source
            .as_ref()
            .map_or(String::new(), |l| format!(" ({})", l.short()));
        println!(
            "  {:>10}  {}{line}  '{}'{}",
            x.rva,
            x.symbol.as_deref().unwrap_or("?"),
            x.tag,
            x.callee
                .as_deref()
                .map_or(String::new(), |c| format!(" -> {c}"))
        );
    }
}
