//! `pooltriage pool DUMP [--sort tag|paged|nonpaged|allocs] [--tag PATTERN] [--json]`: the
//! `!vm` figures, pool usage per tag like `!poolused` (system pool, then each session's as
//! `!poolused 8`), quota charges, and the drivers behind the tags. The layouts are
//! `vm_text`'s and `poolused_text`'s (docs/pool.md cites WinDbg's and poolmon's).

use super::pool_common::{load, notes, parse_sort, parse_tag, provenance, run_pool, SymbolArgs};
use super::poolused_text::table;
use super::vm_text::vm_text;
use analyzer::pool::tags::{sort_tags, SortKey};
use analyzer::pool::verifier::VerifierTracking;
use analyzer::pool::TagPattern;
use analyzer::report::pool::{PoolReport, TagRow};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PoolArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// Sort order: tag (WinDbg's !poolused default), paged (bytes), nonpaged (bytes), allocs
    /// (outstanding allocations, Diff).
    #[arg(long, default_value = "tag", value_name = "KEY")]
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
        run_pool(&loaded, &args.symbols, sort, tag, &mut |_| {}).map(|r| (r, sort))
    })();
    let (report, sort) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        return super::pool_common::print_json(&report);
    }
    super::pool_common::print(&text(&report, sort))
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

fn text(r: &PoolReport, sort: SortKey) -> String {
    let mut s = provenance(r);
    let _ = writeln!(s);
    s.push_str(&vm_text(&r.vm));
    let _ = writeln!(s);
    let order = match sort {
        SortKey::Tag => "Tag (WinDbg's default)",
        SortKey::PagedBytes => "Paged Pool Consumed",
        SortKey::NonpagedBytes => "NonPaged Pool Consumed",
        SortKey::Allocs => "outstanding allocations (Diff)",
    };
    let filter = r
        .tag_filter
        .as_ref()
        .map(|f| format!(", tag {f}"))
        .unwrap_or_default();
    match &r.tags {
        Some(tags) => {
            let _ = writeln!(
                s,
                "Pool tags (!poolused 1): sorting by {order}{filter}: {} tags",
                tags.len()
            );
            table(&mut s, tags);
            session_tables(&mut s, r, sort, &filter);
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
            "Pool pages ({}): {} valid, {} not pool pages, {} in big allocations, {} missing",
            p.mode, p.pages_valid, p.pages_invalid, p.pages_big, p.missing_pool_pages
        );
    }
    if let Some(st) = &r.page_states {
        let _ = writeln!(
            s,
            "Pool pages by PTE: {} paged out, {} not in the dump, {} prototype, {} in transition (read), {} never committed",
            st.paged_out, st.not_in_dump, st.prototype, st.in_transition, st.never_committed
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

/// Session pool as `!poolused 8` shows it, one table per session (each session's own tag
/// table and expansion table); the summed rows when the tables were read through the dump's
/// own page tables only (no session known).
fn session_tables(s: &mut String, r: &PoolReport, sort: SortKey, filter: &str) {
    let Some(all) = &r.session_tags else {
        return;
    };
    if r.sessions.is_empty() {
        let _ = writeln!(
            s,
            "\nSession pool tags (!poolused 9){filter}: {} tags",
            all.len()
        );
        table(s, all);
        return;
    }
    let pattern = r.tag_filter.as_deref().and_then(TagPattern::parse);
    for x in &r.sessions {
        let mut stats = x.tag_rows.clone();
        stats.retain(|t| pattern.as_ref().is_none_or(|p| p.matches(t.tag)));
        sort_tags(&mut stats, sort);
        let rows: Vec<TagRow> = stats
            .iter()
            .map(|t| TagRow {
                stats: *t,
                paged_outstanding: t.paged_outstanding(),
                nonpaged_outstanding: t.nonpaged_outstanding(),
                drivers: all
                    .iter()
                    .find(|a| a.stats.tag == t.tag)
                    .map(|a| a.drivers.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let id = x
            .session_id
            .map_or(format!("at {:#x}", x.mm_session_space), |i| i.to_string());
        let _ = writeln!(
            s,
            "\nSession pool tags (!poolused 9), session {id}{filter}: {} tags",
            rows.len()
        );
        table(s, &rows);
    }
}
