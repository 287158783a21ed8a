//! `pooltriage pool-at DUMP ADDRESS [--json]`: the pool block holding ADDRESS and its page's
//! neighbours, as WinDbg's `!pool ADDRESS` shows them, with the block's owner (module, call
//! site, evidence), its first bytes and the pointers to it found in the dump (docs/json.md,
//! "pool-at"). Exit code 2 for an unreadable dump or a bad address.

use super::pool_common::{load, SymbolArgs};
use analyzer::analysis::pool_at::pool_at;
use analyzer::report::pool_at::{PoolAtBlock, PoolAtReport};
use analyzer::report::provenance::BlockOwner;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PoolAtArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// A kernel virtual address, hexadecimal (`ffffa10f5a115970`, `0x...`, WinDbg's
    /// `ffffa10f`5a115970`).
    pub address: String,
    /// Print JSON (docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

/// An address as WinDbg prints them: hex with or without `0x`, with or without the backtick.
fn parse_address(s: &str) -> Option<u64> {
    let t = s
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .replace('`', "");
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    u64::from_str_radix(&t, 16).ok()
}

pub fn run(args: &PoolAtArgs) -> ExitCode {
    let result = (|| {
        let address = parse_address(&args.address).ok_or_else(|| {
            format!(
                "bad address '{}': a hexadecimal kernel address",
                args.address
            )
        })?;
        let input = load(&args.dump, &args.symbols)?;
        pool_at(&input, address, !args.symbols.no_scan).map_err(|e| format!("{}: {e}", input.path))
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

/// `!pool`'s layout: one line a block, the block holding the address starred.
fn text(r: &PoolAtReport) -> String {
    let mut s = String::new();
    let region = r
        .block
        .as_ref()
        .map(|b| format!("{} pool", capitalised(b.pool.as_str())))
        .unwrap_or_else(|| "not in any pool block the dump holds".into());
    let _ = writeln!(s, "Pool page {:x} region is {region}", r.address.0);
    for b in &r.page {
        line(&mut s, b);
    }
    if let Some(c) = &r.content {
        let _ = writeln!(s, "\nContents at {:x}:", c.address.0);
        for (i, chunk) in c.hex.as_bytes().chunks(32).enumerate() {
            let hex: Vec<&str> = chunk
                .chunks(2)
                .map(|p| std::str::from_utf8(p).unwrap_or("??"))
                .collect();
            let ascii: String = c.ascii.chars().skip(i * 16).take(16).collect();
            let _ = writeln!(
                s,
                "  {:x}  {:<47}  {ascii}",
                c.address.0 + i as u64 * 16,
                hex.join(" ")
            );
        }
    }
    if r.block.is_some() {
        let _ = writeln!(
            s,
            "\nReferences to the block ({}{}):",
            r.references.len(),
            if r.references_truncated {
                ", more not listed"
            } else {
                ""
            }
        );
        if r.references.is_empty() {
            let _ = writeln!(
                s,
                "  none found in the modules' data or the allocated blocks"
            );
        }
        for x in &r.references {
            let holder = match (&x.module, &x.block, &x.block_tag) {
                (Some(m), _, _) => format!("{m} data"),
                (None, Some(b), Some(t)) => format!("block {:x} '{t}'", b.0),
                _ => "?".into(),
            };
            let _ = writeln!(s, "  {:x} -> {:x}  {holder}", x.at.0, x.value.0);
        }
        if r.references_unread_pages > 0 {
            let _ = writeln!(
                s,
                "  ({} pages could not be read: pointers there are not seen)",
                r.references_unread_pages
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    for e in &r.errors {
        let _ = writeln!(s, "not read: {e}");
    }
    s
}

fn line(s: &mut String, b: &PoolAtBlock) {
    let _ = writeln!(
        s,
        "{}{:x} size: {:>4x} previous size: {:>4x}  ({}) {}{}{}",
        if b.contains { '*' } else { ' ' },
        b.address.0,
        b.size,
        b.previous_size,
        if b.allocated { "Allocated" } else { "Free" },
        if b.contains { '*' } else { ' ' },
        b.tag,
        if b.session { " (Session)" } else { "" }
    );
    if !b.contains {
        return;
    }
    if let Some(d) = &b.description {
        let _ = writeln!(s, "\t\tPooltag {} : {d}", b.tag);
    }
    match &b.owner {
        Some(o) => owner(s, o),
        None => {
            let _ = writeln!(
                s,
                "\t\tOwner: not examined (a tag no third-party code allocates with)"
            );
        }
    }
}

fn owner(s: &mut String, o: &BlockOwner) {
    let evidence: Vec<String> = o
        .evidence
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok()?.as_str().map(str::to_string))
        .collect();
    let conf = o
        .confidence
        .and_then(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_string));
    match &o.module {
        Some(m) => {
            let _ = writeln!(
                s,
                "\t\tOwner: {m}{}, evidence: {}, confidence {}",
                o.site_offset
                    .as_ref()
                    .map(|a| format!(" (call site {a})"))
                    .unwrap_or_default(),
                evidence.join(", "),
                conf.unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(
                s,
                "\t\tOwner: unattributed{}",
                if o.conflict {
                    " (the evidence names different modules)"
                } else {
                    " (no evidence ties it to one module)"
                }
            );
        }
    }
    if o.orphan {
        let _ = writeln!(s, "\t\tOrphan: nothing the dump holds points to it");
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_windbg_prints_them() {
        assert_eq!(parse_address("ffffa10f`5a115970"), Some(0xffffa10f5a115970));
        assert_eq!(parse_address("0xFFFF8000"), Some(0xffff8000));
        assert_eq!(parse_address("zz"), None);
        assert_eq!(parse_address(""), None);
        assert_eq!(parse_address("1ffffffffffffffff"), None);
    }
}
