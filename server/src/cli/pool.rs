//! `pooltriage pool DUMP [--sort paged|nonpaged|allocs] [--tag PATTERN] [--json]`: pool usage
//! per tag like `!poolused`, the `!vm` pool summary, quota charges, and the drivers behind the
//! tags.

use super::pool_common::{load, notes, parse_sort, parse_tag, provenance, run_pool, SymbolArgs};
use analyzer::pool::verifier::VerifierTracking;
use analyzer::report::pool::{PoolReport, TagRow};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PoolArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// Sort order: paged (bytes), nonpaged (bytes), allocs (outstanding allocations).
    #[arg(long, default_value = "paged", value_name = "KEY")]
    pub sort: String,
    /// Only tags matching PATTERN (`?` one character, `*` any run), case-sensitive.
    #[arg(long, value_name = "PATTERN")]
    pub tag: Option<String>,
    /// Print the JSON report (docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

pub fn run(args: &PoolArgs) -> ExitCode {
    let result = (|| {
        let sort = parse_sort(&args.sort)?;
        let tag = args.tag.as_deref().map(parse_tag).transpose()?;
        let loaded = load(&args.dump, &args.symbols)?;
        run_pool(&loaded, &args.symbols, sort, tag, &mut |_| {})
    })();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        return super::pool_common::print_json(&report);
    }
    super::pool_common::print(&text(&report))
}

/// One `!poolused` table: a header line and a row per tag.
fn tag_rows(s: &mut String, tags: &[TagRow]) {
    let _ = writeln!(
        s,
        "  {:<6} {:>10} {:>14} {:>10} {:>14}  Driver",
        "Tag", "NP allocs", "NP bytes", "P allocs", "P bytes"
    );
    for t in tags {
        let d = t.drivers.first().map_or(String::new(), |m| {
            let source = serde_json::to_value(m.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            let who = match (&m.module, &m.description) {
                (Some(module), _) => module.clone(),
                (None, Some(d)) => format!("({})", d.chars().take(40).collect::<String>()),
                (None, None) => "?".into(),
            };
            format!("{who} [{}]", source.unwrap_or_default())
        });
        let _ = writeln!(
            s,
            "  {:<6} {:>10} {:>14} {:>10} {:>14}  {d}",
            t.stats.tag.to_string(),
            t.nonpaged_outstanding,
            t.stats.nonpaged_bytes,
            t.paged_outstanding,
            t.stats.paged_bytes
        );
    }
}

/// Driver Verifier's tracked allocations (`!verifier 3`): per driver its count and bytes
/// beside the kernel's own count, then its callers by bytes.
fn verifier_rows(s: &mut String, v: &VerifierTracking) {
    let _ = writeln!(
        s,
        "\nDriver Verifier pool tracking (!verifier 3, level {:#x}):",
        v.level
    );
    for d in &v.drivers {
        let bytes: u64 = d.allocations.iter().map(|a| a.size).sum();
        let counted = d
            .counters
            .map_or("?".to_string(), |c| c.current_allocations().to_string());
        let _ = writeln!(
            s,
            "  {:<20} {:>8} allocations {:>12} bytes  (the kernel counts {counted})",
            d.name.as_deref().unwrap_or("?"),
            d.allocations.len(),
            bytes
        );
        let mut callers: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for a in &d.allocations {
            let c = callers.entry(a.caller).or_default();
            c.0 += 1;
            c.1 += a.size;
        }
        let mut rows: Vec<(u64, (u64, u64))> = callers.into_iter().collect();
        rows.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));
        for (caller, (n, bytes)) in rows.iter().take(10) {
            let _ = writeln!(
                s,
                "    caller {caller:#x} {n:>8} allocations {bytes:>12} bytes"
            );
        }
    }
}

fn text(r: &PoolReport) -> String {
    let mut s = provenance(r);
    let _ = writeln!(s);
    let vm = &r.vm;
    let fig = |f: &Option<analyzer::pool::vm::Figure>| {
        f.as_ref().map_or("?".to_string(), |f| {
            format!("{} KB ({})", f.bytes / 1024, f.source)
        })
    };
    let _ = writeln!(s, "Pool summary (!vm)");
    let _ = writeln!(s, "  NonPagedPool usage: {}", fig(&vm.nonpaged_in_use));
    let _ = writeln!(s, "  NonPagedPool max:   {}", fig(&vm.nonpaged_max));
    let _ = writeln!(s, "  PagedPool usage:    {}", fig(&vm.paged_in_use));
    let _ = writeln!(s, "  PagedPool max:      {}", fig(&vm.paged_max));
    let _ = writeln!(s, "  PagedPool commit:   {}", fig(&vm.paged_commit));
    let _ = writeln!(s);
    match &r.tags {
        Some(tags) => {
            let _ = writeln!(
                s,
                "Pool tags (!poolused, sorted by {}{}): {} tags",
                r.sort,
                r.tag_filter
                    .as_ref()
                    .map(|f| format!(", tag {f}"))
                    .unwrap_or_default(),
                tags.len()
            );
            tag_rows(&mut s, tags);
            // Session pool apart, as `!poolused 8` shows it (summed over the sessions read).
            if let Some(st) = &r.session_tags {
                let ids: Vec<String> = r
                    .sessions
                    .iter()
                    .map(|x| {
                        x.session_id
                            .map_or(format!("{:#x}", x.mm_session_space), |i| i.to_string())
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "\nSession pool tags (!poolused 8{}): {} tags",
                    if ids.is_empty() {
                        String::new()
                    } else {
                        format!(", session {}", ids.join(", "))
                    },
                    st.len()
                );
                tag_rows(&mut s, st);
            }
        }
        None => {
            let _ = writeln!(s, "Pool tags: not read");
        }
    }
    if let Some(b) = &r.big_pages {
        let bytes: u64 = b.entries.iter().map(|e| e.size).sum();
        let _ = writeln!(
            s,
            "\nBig allocations: {} ({} bytes), {} free slots, {} unreadable",
            b.entries.len(),
            bytes,
            b.free,
            b.unreadable
        );
    }
    if let Some(b) = &r.session_big_pages {
        let bytes: u64 = b.entries.iter().map(|e| e.size).sum();
        let _ = writeln!(
            s,
            "Session big allocations: {} ({} bytes), {} free slots, {} unreadable",
            b.entries.len(),
            bytes,
            b.free,
            b.unreadable
        );
    }
    if let Some(p) = &r.pages {
        let _ = writeln!(
            s,
            "Pool pages ({}): {} valid, {} not pool pages, {} in big allocations, {} missing from the dump",
            p.mode, p.pages_valid, p.pages_invalid, p.pages_big, p.missing_pool_pages
        );
    }
    if let Some(q) = &r.quota {
        let _ = writeln!(s, "\nQuota charged to processes:");
        for p in q.processes.iter().take(20) {
            let _ = writeln!(
                s,
                "  {:#x} {:>6} {:<16} {:>8} blocks {:>12} bytes",
                p.eprocess,
                p.pid.map(|v| v.to_string()).unwrap_or("?".into()),
                p.name.as_deref().unwrap_or("?"),
                p.blocks,
                p.bytes
            );
        }
        let _ = writeln!(
            s,
            "  charged to no process: {} blocks, {} bytes",
            q.uncharged_blocks, q.uncharged_bytes
        );
    }
    if let Some(v) = &r.verifier {
        verifier_rows(&mut s, v);
    }
    if !r.drivers.is_empty() {
        let _ = writeln!(s, "\nDrivers whose code allocates with these tags:");
        for d in &r.drivers {
            let tags: Vec<String> = d.tags.iter().map(|t| t.to_string()).collect();
            let _ = writeln!(
                s,
                "  {:<20} {:>14} bytes  {}",
                d.module,
                d.bytes,
                tags.join(" ")
            );
        }
    }
    let n = notes(r);
    if !n.is_empty() {
        let _ = writeln!(s);
        s.push_str(&n);
    }
    s
}
