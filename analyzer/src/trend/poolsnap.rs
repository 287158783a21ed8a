//! poolsnap and `memsnap -p` logs: the Resource Kit's pool snapshot tools. Their table header
//! is ` Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc` (two spaces between
//! "Bytes" and "Per Alloc", narrower than poolmon's) and each row is `Tag Type Allocs Frees
//! Diff Bytes PerAlloc`; the tools print no change columns and no driver column.
//!
//! Microsoft documents these tools only by their switches (the Windows 2000 Resource Kit's
//! Tools Help: "memsnap [-t] [-g] [-?] [LogFile]", "-t: add tagging information (GMT, date and
//! computer name)"; poolsnap "logs system pool usage to <logfile>", default poolsnap.log); no
//! public page shows a log, so the header above is the one given in the task and the rows are
//! read by fields. The tools append each run to the same file and write the header once, so a
//! run is told from the next by the timestamp line the collection script writes before it
//! (docs/trend.md): a tag seen twice without one is an error.

/// The column of "Tag" when `line` is poolsnap's table header (no Mapped_Driver column, fewer
/// than four spaces between "Bytes" and "Per Alloc").
pub fn header_column(line: &str) -> Option<usize> {
    let col = super::tagtable::table_header_column(line)?;
    let narrow = !line.contains("Mapped_Driver")
        && line
            .find("Bytes")
            .and_then(|i| line[i + 5..].find("Per Alloc"))
            .is_some_and(|gap| gap < 4);
    narrow.then_some(col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header() {
        assert_eq!(
            header_column(" Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc"),
            Some(1)
        );
        assert_eq!(
            header_column(
                " Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc"
            ),
            None
        );
    }
}
