//! The debugger's `pooltag.txt` (`Tag - binary - description` lines), and any user file in the
//! same format given with `--pooltag`.
//!
//! Format as the Windows SDK ships it: `rem`/`REM` and `//` lines are comments; a tag of fewer
//! than four characters is space-padded (`PX1` is `PX1 `); `?` and `*` are wildcards (`Afd?`,
//! `Aml*`); the binary is a file name, `nt!subsystem`, or `<unknown>`; a line with only two
//! parts has no binary.

use crate::pool::{Tag, TagPattern};

/// Longest file we parse (the SDK's is about 300 KB).
pub const MAX_FILE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTagEntry {
    pub pattern: TagPattern,
    /// `None` for `<unknown>` or a line without a binary.
    pub binary: Option<String>,
    pub description: String,
    /// 1-based line in the file.
    pub line: usize,
}

/// A parsed pooltag file. Exact tags are looked up before wildcard patterns, so that `AfdB`
/// wins over `Afd?`.
#[derive(Debug, Clone, Default)]
pub struct PoolTagFile {
    pub entries: Vec<PoolTagEntry>,
    /// Lines that were neither comments, blank, nor entries.
    pub skipped_lines: usize,
}

impl PoolTagFile {
    pub fn parse(text: &str) -> PoolTagFile {
        let mut out = PoolTagFile::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            let t = line.trim_start();
            if t.is_empty()
                || t.starts_with("//")
                || t.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("rem"))
            {
                continue;
            }
            match parse_line(line, i + 1) {
                Some(e) => out.entries.push(e),
                None => out.skipped_lines += 1,
            }
        }
        out
    }

    /// Every entry for `tag`: exact (non-wildcard) entries first, then wildcard ones, each in
    /// file order.
    pub fn lookup(&self, tag: Tag) -> Vec<&PoolTagEntry> {
        let wild = |e: &&PoolTagEntry| e.pattern.to_string().contains(['?', '*']);
        let hits: Vec<&PoolTagEntry> = self
            .entries
            .iter()
            .filter(|e| e.pattern.matches(tag))
            .collect();
        let (w, mut exact): (Vec<_>, Vec<_>) = hits.into_iter().partition(wild);
        exact.extend(w);
        exact
    }
}

fn parse_line(line: &str, n: usize) -> Option<PoolTagEntry> {
    let mut parts = line.splitn(3, " - ");
    let tag = parts.next()?.trim_end();
    let second = parts.next()?.trim();
    let third = parts.next().map(str::trim);
    if tag.is_empty() || tag.starts_with(' ') {
        return None;
    }
    let pattern = TagPattern::parse(tag)?;
    let (binary, description) = match third {
        Some(d) => (Some(second), d),
        None => (None, second),
    };
    let binary = binary
        .filter(|b| !b.is_empty() && !b.eq_ignore_ascii_case("<unknown>"))
        .map(str::to_string);
    Some(PoolTagEntry {
        pattern,
        binary,
        description: description.to_string(),
        line: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        Tag::from_text(s).unwrap()
    }

    #[test]
    fn parses_the_sdk_formats() {
        let f = PoolTagFile::parse(
            "//\n// header\nrem comment\nREM Another\n\n@MP  - <unknown>    - (Intel video driver) Miniport\nAfd? - afd.sys      - AFD objects\nAfdB - afd.sys      - AFD data buffer\nPX1 - ndproxy.sys - PX_EVENT_TAG\nATmp - AppTag mount point\n       <unknown>\nAfdTooLong - x - y\n",
        );
        assert_eq!(f.entries.len(), 5);
        assert_eq!(f.skipped_lines, 2);
        let mp = &f.lookup(tag("@MP"))[0];
        assert_eq!(
            (mp.binary.as_deref(), mp.description.as_str(), mp.line),
            (None, "(Intel video driver) Miniport", 6)
        );
        let afd = f.lookup(tag("AfdB"));
        assert_eq!(afd.len(), 2);
        assert_eq!(
            afd[0].description, "AFD data buffer",
            "exact before wildcard"
        );
        assert_eq!(f.lookup(tag("AfdX"))[0].binary.as_deref(), Some("afd.sys"));
        assert_eq!(f.lookup(tag("PX1"))[0].description, "PX_EVENT_TAG");
        assert_eq!(f.lookup(tag("ATmp"))[0].binary, None);
        assert!(f.lookup(tag("Zzzz")).is_empty());
    }

    /// The real SDK file: entries checked against lines read with grep.
    #[test]
    fn real_sdk_pooltag_txt() {
        let path = crate::pool::testmem::corpus("pooltag.txt");
        let text = std::fs::read_to_string(path).unwrap();
        let f = PoolTagFile::parse(&text);
        assert!(f.entries.len() > 4000, "{}", f.entries.len());
        // grep '^USBD ' pooltag.txt: "USBD - <unknown>    - Universal Serial Bus Class Driver"
        let usbd = f.lookup(tag("USBD"));
        assert_eq!(
            (usbd[0].binary.as_deref(), usbd[0].description.as_str()),
            (None, "Universal Serial Bus Class Driver")
        );
        // grep '^AcpA ': "AcpA - acpi.sys     - ACPI arbiter data"
        assert_eq!(f.lookup(tag("AcpA"))[0].binary.as_deref(), Some("acpi.sys"));
        // "CM?? - nt!cm        - Internal Configuration manager allocations"
        assert_eq!(
            f.lookup(tag("CM31")).last().unwrap().binary.as_deref(),
            Some("nt!cm")
        );
    }
}
