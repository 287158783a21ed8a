//! `pooltriage pool`'s tag tables, laid out as WinDbg's `!poolused 1` and poolmon print them
//! (docs/pool.md "`!poolused`" cites both):
//!
//! ```text
//!  Tag     NP Allocs     NP Frees      NP Diff     NP Bytes NP Per Alloc     P Allocs      P Frees       P Diff      P Bytes  P Per Alloc
//!  Irp          1234         1200           34       123456         3631            0            0            0            0            0\tOwner
//! TOTAL  ...
//! ```
//!
//! `!poolused 1` prints Allocs, Frees, Diff and Used per pool with a `TOTAL` row; poolmon names
//! the columns Allocs, Frees, Diff, Bytes and Per Alloc (Bytes / Diff). The owner follows a tab
//! as in `!poolused`: the strongest mapping, or `UNKNOWN pooltag 'Tag ', please update
//! pooltag.txt`. Tags print as `!pool` prints them: four characters (a trailing space kept),
//! non-printable bytes as `.`, the protected bit (PROTECTED_POOL, bit 31) cleared and
//! ` (Protected)` said.

use analyzer::attribution::Mapping;
use analyzer::pool::Tag;
use analyzer::report::pool::{per_alloc, TagRow, TagTotals};
use std::fmt::Write as _;

/// Width of each number column (the longest header, "NP Per Alloc", and a space).
const W: usize = 13;

/// The header line of a tag table.
pub fn header() -> String {
    let cols = [
        "NP Allocs",
        "NP Frees",
        "NP Diff",
        "NP Bytes",
        "NP Per Alloc",
        "P Allocs",
        "P Frees",
        "P Diff",
        "P Bytes",
        "P Per Alloc",
    ];
    let mut s = format!("{:<5}", " Tag");
    for c in cols {
        let _ = write!(s, "{c:>W$}");
    }
    s.push_str("\tOwner");
    s
}

/// The ten counters of one row: Allocs, Frees, Diff, Bytes, Per Alloc, nonpaged then paged.
fn numbers(t: &TagTotals) -> String {
    let mut s = String::new();
    for (allocs, frees, diff, bytes) in [
        (
            t.nonpaged_allocs,
            t.nonpaged_frees,
            t.nonpaged_outstanding,
            t.nonpaged_bytes,
        ),
        (
            t.paged_allocs,
            t.paged_frees,
            t.paged_outstanding,
            t.paged_bytes,
        ),
    ] {
        for v in [allocs, frees, diff, bytes, per_alloc(bytes, diff)] {
            let _ = write!(s, "{v:>W$}");
        }
    }
    s
}

/// A tag as `!pool` prints it, and whether its protected bit was set.
pub fn windbg_tag(tag: Tag) -> (String, bool) {
    let text = tag
        .unprotected()
        .0
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    (text, tag.as_u32() & 0x8000_0000 != 0)
}

/// The owner column: the strongest mapping as `!poolused` words it, with its evidence.
fn owner(tag: &str, drivers: &[Mapping]) -> String {
    let Some(m) = drivers.first() else {
        return format!("UNKNOWN pooltag '{tag}', please update pooltag.txt");
    };
    let who = match (&m.module, &m.description) {
        (Some(module), Some(d)) => format!("{d} , Binary: {module}"),
        (Some(module), None) => format!("Binary: {module}"),
        (None, Some(d)) => d.clone(),
        (None, None) => String::new(),
    };
    let source = serde_json::to_value(m.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{who} [{source}]")
}

/// One table: the header, a row per tag, and the `TOTAL` row.
pub fn table(s: &mut String, rows: &[TagRow]) {
    let _ = writeln!(s, "{}", header());
    for r in rows {
        let (tag, protected) = windbg_tag(r.stats.tag);
        let one = TagTotals::of(std::slice::from_ref(r));
        let _ = writeln!(
            s,
            " {tag:<4}{}\t{}{}",
            numbers(&one),
            if protected { "(Protected) " } else { "" },
            owner(&tag, &r.drivers)
        );
    }
    let _ = writeln!(s, "{:<5}{}", "TOTAL", numbers(&TagTotals::of(rows)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzer::attribution::Source;
    use analyzer::pool::tags::TagStats;

    fn row(tag: &[u8; 4], drivers: Vec<Mapping>) -> TagRow {
        let stats = TagStats {
            tag: Tag(*tag),
            paged_allocs: 10,
            paged_frees: 4,
            paged_bytes: 600,
            nonpaged_allocs: 3,
            nonpaged_frees: 3,
            nonpaged_bytes: 0,
        };
        TagRow {
            stats,
            paged_outstanding: 6,
            nonpaged_outstanding: 0,
            drivers,
        }
    }

    #[test]
    fn rows_and_total_line_up_under_the_header() {
        let leaky = Mapping {
            module: Some("leaky.sys".into()),
            description: None,
            source: Source::DriverCodeAllocation,
            count: 2,
            line: None,
            address: None,
        };
        let rows = [row(b"Irp ", vec![]), row(b"Leak", vec![leaky])];
        let mut s = String::new();
        table(&mut s, &rows);
        let lines: Vec<&str> = s.lines().collect();
        let num = |v: u64| format!("{v:>13}");
        let cols = |np: [u64; 5], p: [u64; 5]| -> String {
            np.iter().chain(p.iter()).map(|&v| num(v)).collect()
        };
        assert_eq!(
            lines[1],
            format!(
                " Irp {}\tUNKNOWN pooltag 'Irp ', please update pooltag.txt",
                cols([3, 3, 0, 0, 0], [10, 4, 6, 600, 100])
            )
        );
        assert!(lines[2].ends_with("\tBinary: leaky.sys [driver-code-allocation]"));
        assert_eq!(
            lines[3],
            format!("TOTAL{}", cols([6, 6, 0, 0, 0], [20, 8, 12, 1200, 100]))
        );
        // Every number column ends where its header does.
        let head = lines[0].split('\t').next().unwrap();
        assert_eq!(head.len(), lines[3].len());
    }

    #[test]
    fn tags_print_as_windbg_prints_them() {
        assert_eq!(windbg_tag(Tag(*b"Irp ")), ("Irp ".to_string(), false));
        assert_eq!(
            windbg_tag(Tag::from_u32(0x6b61_654c | 0x8000_0000)),
            ("Leak".to_string(), true)
        );
        assert_eq!(
            windbg_tag(Tag([b'A', 0, 0xff, b'z'])),
            ("A..z".to_string(), false)
        );
    }
}
