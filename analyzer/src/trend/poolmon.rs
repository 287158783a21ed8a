//! poolmon's tables: `poolmon -n FILE` snapshots (optionally `/g` or `/c`, `/b`...) and the
//! display copied from its window.
//!
//! Layout, from Microsoft's PoolMon pages (learn.microsoft.com/windows-hardware/drivers/devtest/
//! poolmon-display, poolmon-examples and poolmon-startup-command; MicrosoftDocs/windows-driver-
//! docs `devtest/poolmon-display.md`, `poolmon-examples.md`):
//!
//! ```text
//!  Memory:  260620K Avail:   65152K  PageFlts:    85   InRam Krnl: 2116K P:19560K
//!  Commit: 237688K Limit: 640916K Peak: 260632K            Pool N: 8500K P:33024K
//!  System pool information
//!  Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc  Mapped_Driver
//!
//!  NtFA Nonp       9112 (   0)      9112 (   0)     0       0 (     0)      0 [ntfs.sys  -  AttrSup.c]
//! ```
//!
//! "Because the snapshot data is static, the columns that show the change in values in the
//! PoolMon display do not appear in a snapshot file" (`/n`): a `-n` row is `Tag Type Allocs
//! Frees Diff Bytes PerAlloc [Mapped_Driver]`; a row copied from the display has the `( n)`
//! change columns, which are dropped here. The pages' examples do not agree on column widths
//! (the `/g` and `/c` examples pad Diff differently), so rows are read by fields, not columns;
//! only the tag is read by position (four characters under the header's "Tag", which may hold
//! spaces: `Io  `). Mapped_Driver is `[driver - description]` from pooltag.txt (`/g`),
//! `[driver]` from localtag.txt (`/c`), both, or `Unknown Driver`.

use super::input::PoolTotals;
use super::limits::MAX_DRIVER_TEXT;

/// The column of "Tag" when `line` is poolmon's table header: "Tag", "Type", "Allocs",
/// "Frees", "Diff", "Bytes", "Per Alloc" with poolmon's spacing (at least four spaces between
/// "Bytes" and "Per Alloc", where poolsnap has two) or a "Mapped_Driver" column.
pub fn header_column(line: &str) -> Option<usize> {
    let col = super::tagtable::table_header_column(line)?;
    let wide = line.contains("Mapped_Driver")
        || line
            .find("Bytes")
            .and_then(|i| line[i + 5..].find("Per Alloc"))
            .is_some_and(|gap| gap >= 4);
    wide.then_some(col)
}

/// The pool totals of poolmon's second header line (`... Pool N: 8500K P:33024K`), in bytes.
pub fn pool_totals(line: &str) -> Option<PoolTotals> {
    let rest = &line[line.find("Pool N:")? + "Pool N:".len()..];
    let (nonpaged, rest) = kilobytes(rest)?;
    let rest = rest.trim_start().strip_prefix("P:")?;
    let (paged, _) = kilobytes(rest)?;
    Some(PoolTotals {
        paged_bytes: paged.checked_mul(1024)?,
        nonpaged_bytes: nonpaged.checked_mul(1024)?,
    })
}

/// `  8500K` -> 8500 and what follows the `K`.
fn kilobytes(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start();
    let end = s.find('K')?;
    let n = s[..end].trim().parse().ok()?;
    Some((n, &s[end + 1..]))
}

/// Whether `line` is the title poolmon prints above a session pool table (`/s`: "All
/// sessions pool information", or one session's) rather than "System pool information".
pub fn is_session_title(line: &str) -> bool {
    let l = line.trim().to_ascii_lowercase();
    l.ends_with("pool information") && l.contains("session")
}

/// The driver a Mapped_Driver text names: the first bracketed name (`[ntfs.sys  -  ...]` ->
/// `ntfs.sys`, `[el90xbc5]` -> `el90xbc5`); `None` for "Unknown Driver" or nothing.
pub fn mapped_driver(text: &str) -> Option<String> {
    let t = text.trim();
    let inner = t.strip_prefix('[')?;
    let end = inner.find(']').unwrap_or(inner.len());
    let name = inner[..end].split(" - ").next()?.trim();
    let name: String = name.chars().take(MAX_DRIVER_TEXT).collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_the_documented_examples() {
        // poolmon-display.md and poolmon-examples.md (Example 2).
        let display =
            " Tag  Type     Allocs            Frees            Diff   Bytes       Per Alloc";
        let g = " Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc  Mapped_Driver";
        let g2 = " Tag  Type        Allocs          Frees      Diff   Bytes      Per Alloc    Mapped_Driver";
        let printer =
            "Tag  Type        Allocs           Frees           Diff  Bytes           Per Alloc";
        assert_eq!(header_column(display), Some(1));
        assert_eq!(header_column(g), Some(1));
        assert_eq!(header_column(g2), Some(1));
        assert_eq!(header_column(printer), Some(0));
        let snap = " Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc";
        assert_eq!(header_column(snap), None);
    }

    #[test]
    fn memory_lines_and_drivers() {
        let l = " Commit: 237688K Limit: 640916K Peak: 260632K            Pool N: 8500K P:33024K";
        assert_eq!(
            pool_totals(l),
            Some(PoolTotals {
                paged_bytes: 33024 * 1024,
                nonpaged_bytes: 8500 * 1024
            })
        );
        let tight =
            "Commit: 193632K Limit:1279764K Peak: 987356K            Pool N:14332K P:18644K";
        assert_eq!(pool_totals(tight).unwrap().nonpaged_bytes, 14332 * 1024);
        assert_eq!(
            pool_totals(
                " Memory:  260620K Avail:   65152K  PageFlts:    85   InRam Krnl: 2116K P:19560K"
            ),
            None
        );
        assert_eq!(
            mapped_driver("[ntfs.sys  -  AttrSup.c]").as_deref(),
            Some("ntfs.sys")
        );
        assert_eq!(mapped_driver("[el90xbc5]").as_deref(), Some("el90xbc5"));
        assert_eq!(
            mapped_driver("[ipsec][ipsec.sys    -  event queue]").as_deref(),
            Some("ipsec")
        );
        assert_eq!(mapped_driver("  Unknown Driver"), None);
        assert!(is_session_title("All sessions pool information"));
        assert!(!is_session_title(" System pool information"));
    }
}
