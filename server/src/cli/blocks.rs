//! `pooltriage blocks DUMP [--tag PATTERN] [--pool nonpaged|paged|special|session] [--json]`:
//! every pool block found in the dump, like `!poolfind`: address, size, previous size,
//! allocated or free, tag, pool (session marked), where it was found, the process a quota block
//! is charged to, and its owner (`poolfind_text` gives the line and the filter).
//!
//! The listing is streamed: each block the walks find goes to a spill file (an anonymous
//! temporary file) as it is found, and is copied to stdout after the report's head. Keeping
//! the list in memory cost ~87 bytes a block (174 MiB for a busy 8 GiB server's 2 million
//! blocks, bench/RESULTS.md); streaming keeps resident memory bounded whatever the dump.

use super::pool_common::{load, notes, parse_tag, provenance, run_pool_with_owners, SymbolArgs};
use super::poolfind_text::{line, PoolFilter};
use analyzer::pool::tags::SortKey;
use analyzer::pool::{SeenBlock, TagPattern};
use analyzer::report::pool::{ListedBlock, PoolReport, MAX_LISTED_BLOCKS};
use analyzer::report::provenance::BlockOwner;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BlocksArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// Only blocks whose tag matches PATTERN (`?` one character, `*` any run).
    #[arg(long, value_name = "PATTERN")]
    pub tag: Option<String>,
    /// Only blocks of one pool, as `!poolfind`'s PoolType: nonpaged, paged (both outside
    /// session space), special (the segment heap's special pool heaps), session.
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// Print JSON (docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

/// The blocks listed so far, one line each (compact JSON or text) in an anonymous temp file.
struct Spill {
    out: BufWriter<File>,
    json: bool,
    filter: Option<TagPattern>,
    /// `--pool`; special pool is decided at the end (each line then starts with its block's
    /// address and a space, taken off when the list is copied out).
    pool: Option<PoolFilter>,
    count: usize,
    truncated: bool,
    /// The first write error; the rest of the walk still runs, the command then fails.
    error: Option<std::io::Error>,
}

impl Spill {
    fn new(
        json: bool,
        filter: Option<TagPattern>,
        pool: Option<PoolFilter>,
    ) -> Result<Spill, String> {
        let file = tempfile::tempfile()
            .map_err(|e| format!("cannot create a temporary file for the listing: {e}"))?;
        Ok(Spill {
            out: BufWriter::with_capacity(1 << 20, file),
            json,
            filter,
            pool,
            count: 0,
            truncated: false,
            error: None,
        })
    }

    fn push(&mut self, b: SeenBlock, owner: Option<BlockOwner>) {
        let tag = b.block.tag;
        if let Some(p) = &self.filter {
            if !(p.matches(tag) || p.matches(tag.unprotected())) {
                return;
            }
        }
        if self.pool.and_then(|p| p.matches(&b)) == Some(false) {
            return;
        }
        if self.pool == Some(PoolFilter::Special) {
            if let Err(e) = write!(self.out, "{:x} ", b.block.address) {
                self.error = Some(e);
                return;
            }
        }
        if self.count >= MAX_LISTED_BLOCKS {
            self.truncated = true;
            return;
        }
        if self.error.is_some() {
            return;
        }
        let written = if self.json {
            let listed = ListedBlock {
                block: *b.block,
                billed_process: b.billed_process,
                source: b.source,
                owner,
            };
            serde_json::to_writer(&mut self.out, &listed)
                .map_err(std::io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"))
        } else {
            let owner = owner.as_ref().map(owner_text).unwrap_or_default();
            writeln!(self.out, "{}", line(&b, &owner))
        };
        match written {
            Ok(()) => self.count += 1,
            Err(e) => self.error = Some(e),
        }
    }

    /// A new spill with the lines of blocks in a special pool heap's ranges (the report's,
    /// known once the walk is done), their address keys taken off.
    fn keep_special(self, report: &PoolReport) -> Result<Spill, String> {
        let (json, filter) = (self.json, self.filter.clone());
        let truncated = self.truncated;
        let mut out = Spill::new(json, filter, None)?;
        out.truncated = truncated;
        let special = |va: u64| {
            report
                .segment_heap
                .as_ref()
                .is_some_and(|h| h.in_special(va))
        };
        for l in self.lines()? {
            let l = l.map_err(|e| format!("cannot read back the listing: {e}"))?;
            let Some((key, rest)) = l.split_once(' ') else {
                continue;
            };
            if u64::from_str_radix(key, 16).is_ok_and(special) {
                writeln!(out.out, "{rest}")
                    .map_err(|e| format!("cannot write the listing: {e}"))?;
                out.count += 1;
            }
        }
        Ok(out)
    }

    /// The spilled lines, from the start.
    fn lines(self) -> Result<impl Iterator<Item = std::io::Result<String>>, String> {
        if let Some(e) = self.error {
            return Err(format!("cannot write the listing to a temporary file: {e}"));
        }
        let mut file = self.out.into_inner().map_err(|e| {
            format!(
                "cannot write the listing to a temporary file: {}",
                e.error()
            )
        })?;
        file.rewind()
            .map_err(|e| format!("cannot read back the listing: {e}"))?;
        Ok(BufReader::with_capacity(1 << 20, file).lines())
    }
}

/// ` owner [evidence] orphan`, or ` unattributed`.
fn owner_text(o: &BlockOwner) -> String {
    let who = o.module.as_deref().unwrap_or("unattributed");
    let evidence: Vec<String> = o
        .evidence
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok()?.as_str().map(str::to_string))
        .collect();
    format!(
        " {who}{}{}{}",
        if evidence.is_empty() {
            String::new()
        } else {
            format!(" [{}]", evidence.join(","))
        },
        if o.conflict { " conflict" } else { "" },
        if o.orphan { " ORPHAN" } else { "" }
    )
}

pub fn run(args: &BlocksArgs) -> ExitCode {
    let result = (|| {
        let tag = args.tag.as_deref().map(parse_tag).transpose()?;
        let pool = args.pool.as_deref().map(PoolFilter::parse).transpose()?;
        let loaded = load(&args.dump, &args.symbols)?;
        let mut spill = Spill::new(args.json, tag.clone(), pool)?;
        let mut report = run_pool_with_owners(
            &loaded,
            &args.symbols,
            SortKey::PagedBytes,
            tag,
            &mut |b, o| spill.push(b, o),
        )?;
        report.blocks_truncated = spill.truncated;
        Ok::<_, String>((report, spill))
    })();
    let (report, spill) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let spill = match spill.pool {
        Some(PoolFilter::Special) => spill.keep_special(&report),
        _ => Ok(spill),
    };
    let (count, lines) = match spill.and_then(|s| Ok((s.count, s.lines()?))) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let written = if args.json {
        write_json(&mut out, &report, lines)
    } else {
        write_text(&mut out, &report, args.pool.as_deref(), count, lines)
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::from(1)
        }
    }
}

/// The report as `pool --json` prints it, with `blocks` the streamed list (one compact object a
/// line). The report is serialized with `blocks: null`; that one top-level line (two-space
/// indent, unique at that depth) is where the list goes.
fn write_json(
    out: &mut impl Write,
    report: &PoolReport,
    lines: impl Iterator<Item = std::io::Result<String>>,
) -> std::io::Result<()> {
    const SLOT: &str = "\n  \"blocks\": null,\n";
    let head = serde_json::to_string_pretty(report).map_err(std::io::Error::from)?;
    let (before, after) = match head.split_once(SLOT) {
        Some((b, a)) if !a.contains(SLOT) => (b, a),
        _ => {
            return Err(std::io::Error::other(
                "the report has no single top-level blocks field",
            ))
        }
    };
    out.write_all(before.as_bytes())?;
    out.write_all(b"\n  \"blocks\": [")?;
    let mut first = true;
    for line in lines {
        out.write_all(if first { b"\n    " } else { b",\n    " })?;
        out.write_all(line?.as_bytes())?;
        first = false;
    }
    out.write_all(if first { b"],\n" } else { b"\n  ],\n" })?;
    out.write_all(after.as_bytes())?;
    out.write_all(b"\n")
}

fn write_text(
    out: &mut impl Write,
    report: &PoolReport,
    pool: Option<&str>,
    count: usize,
    lines: impl Iterator<Item = std::io::Result<String>>,
) -> std::io::Result<()> {
    let mut s = provenance(report);
    let _ = writeln!(
        s,
        "\n{count} blocks{}{} (!poolfind: address, size, previous size, state, tag, pool, found in, Process: the EPROCESS a quota block is charged to, owner)",
        pool.map(|p| format!(" in {p} pool")).unwrap_or_default(),
        if report.blocks_truncated {
            " (list truncated)"
        } else {
            ""
        }
    );
    out.write_all(s.as_bytes())?;
    for line in lines {
        out.write_all(line?.as_bytes())?;
        out.write_all(b"\n")?;
    }
    let mut s = String::new();
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
        let _ = writeln!(s, "pool pages missing (committed, not read): {m}");
    }
    if let Some(st) = &report.page_states {
        let _ = writeln!(
            s,
            "pool pages by PTE: {} paged out, {} not in the dump, {} prototype, {} in transition (read), {} never committed",
            st.paged_out, st.not_in_dump, st.prototype, st.in_transition, st.never_committed
        );
    }
    s.push_str(&notes(report));
    out.write_all(s.as_bytes())
}
