//! `pooltriage inspect DUMP [--json]`: what a dump is and what the kernel layer reads from it.
//!
//! Bad input (unreadable, truncated or malformed dump) exits with code 2 and one line on
//! stderr naming the file and the problem, so that a ticket shows the cause at a glance.

use analyzer::dump::{Dump, DumpError};
use analyzer::kernel::read_kernel;
use analyzer::report::inspect::{InspectReport, ModuleReport};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The dump file (any kernel dump: triage, kernel, complete, bitmap).
    pub dump: PathBuf,
    /// Print the JSON report (docs/json.md) instead of the text summary.
    #[arg(long)]
    pub json: bool,
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
    let kernel = read_kernel(&dump);
    let report = InspectReport::build(&path, &dump, &kernel);
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

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), |v| v.to_string())
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
    writeln!(w, "System time   {}", d.system_time_utc.as_deref().unwrap_or("-"))?;
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

    let b = &r.bugcheck;
    writeln!(
        w,
        "Bugcheck      {} {}{}",
        b.code,
        b.name.as_deref().unwrap_or("(unknown code)"),
        if b.pool_or_memory { "  [pool/memory]" } else { "" }
    )?;
    for (i, (p, s)) in b.params.iter().zip(&b.params_symbolized).enumerate() {
        let line = format!(
            "  param {}     {:<20}{}",
            i + 1,
            p.to_string(),
            s.as_deref().unwrap_or("")
        );
        writeln!(w, "{}", line.trim_end())?;
    }

    let k = &r.kernel;
    match (&k.base, &k.name) {
        (Some(base), name) => writeln!(
            w,
            "Kernel        {} at {base}, size {}",
            name.as_deref().unwrap_or("(no module entry)"),
            k.size.map_or_else(|| "-".to_string(), |s| format!("{s:#x}"))
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
        for name in ["MmPfnDatabase", "PoolTrackTable", "MmPagedPoolCommit", "MmAllocatedNonPagedPool"] {
            if let Some(v) = g.values.get(name) {
                writeln!(w, "  {name:<26}{v}")?;
            }
        }
    } else {
        writeln!(w, "KDBG          not read: {}", g.error.as_deref().unwrap_or("-"))?;
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
    if !r.warnings.is_empty() {
        writeln!(w, "Warnings")?;
        for x in &r.warnings {
            writeln!(w, "  - {x}")?;
        }
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
