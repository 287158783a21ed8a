//! `pooltriage blocks DUMP [--tag PATTERN] [--json]`: every pool block found in the dump, like
//! `!poolfind`: address, size, tag, pool type, allocated or free, and where it was found.

use super::pool_common::{load, notes, parse_tag, provenance, run_analysis, SymbolArgs};
use analyzer::pool::tags::SortKey;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BlocksArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// Only blocks whose tag matches PATTERN (`?` one character, `*` any run).
    #[arg(long, value_name = "PATTERN")]
    pub tag: Option<String>,
    /// Print JSON (docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

pub fn run(args: &BlocksArgs) -> ExitCode {
    let result = (|| {
        let tag = args.tag.as_deref().map(parse_tag).transpose()?;
        let loaded = load(&args.dump, &args.symbols)?;
        run_analysis(&loaded, &args.symbols, SortKey::PagedBytes, tag, true)
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
    let out = {
        let mut s = provenance(&report);
        let blocks = report.blocks.as_deref().unwrap_or(&[]);
        let _ = writeln!(
            s,
            "\n{} blocks{}",
            blocks.len(),
            if report.blocks_truncated {
                " (list truncated)"
            } else {
                ""
            }
        );
        for b in blocks {
            let k = &b.block;
            let _ = writeln!(
                s,
                "  {:#018x} size {:>#8x}  {}  {:<8} {:<9} {}",
                k.address,
                k.size,
                k.tag,
                k.pool_type.kind.as_str(),
                if k.allocated { "allocated" } else { "free" },
                b.source
            );
        }
        if let Some(h) = &report.segment_heap {
            let _ = writeln!(
                s,
                "segment heap: {} heap(s), {} page segment(s), {} LFH and {} VS subsegment(s), {} LFH and {} VS block(s){}",
                h.heaps,
                h.segments,
                h.lfh_subsegments,
                h.vs_subsegments,
                h.lfh_blocks,
                h.vs_blocks,
                if h.segments_invalid + h.subsegments_invalid > 0 {
                    format!(
                        " ({} segment(s), {} subsegment(s) rejected)",
                        h.segments_invalid, h.subsegments_invalid
                    )
                } else {
                    String::new()
                }
            );
        }
        if let Some(m) = report.missing_pool_pages {
            let _ = writeln!(s, "pool pages missing from the dump: {m}");
        }
        s.push_str(&notes(&report));
        s
    };
    super::pool_common::print(&out)
}
