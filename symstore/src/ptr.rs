//! `file.ptr`: a store entry that points elsewhere instead of holding the file. symstore.exe
//! writes `PATH:\\server\share\file.pdb` (or `MSG: ...` for a deleted entry); other tools write
//! a bare path or a URL. Followed once: what it points to is read as the file itself.

use std::path::{Path, PathBuf};

/// Largest `file.ptr` read.
pub(crate) const MAX_PTR_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PtrTarget {
    /// A local path; relative paths are relative to the `file.ptr`'s directory.
    Path(PathBuf),
    Url(String),
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

/// Parses a `file.ptr`'s content. `base` is its directory.
pub(crate) fn parse(content: &[u8], base: &Path) -> Result<PtrTarget, String> {
    let text = std::str::from_utf8(content).map_err(|_| "file.ptr is not UTF-8".to_string())?;
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0' || c == '\u{feff}');
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err("file.ptr is empty".into());
    }
    if let Some(msg) = strip_prefix_ci(line, "MSG:") {
        return Err(format!("the store says: {}", msg.trim()));
    }
    let target = strip_prefix_ci(line, "PATH:").map_or(line, str::trim);
    if target.is_empty() || target.contains('\0') || target.chars().any(char::is_control) {
        return Err("file.ptr target is empty or has control characters".into());
    }
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(PtrTarget::Url(target.to_string()));
    }
    if target.contains("://") {
        return Err(format!("file.ptr points to an unsupported URL: {target}"));
    }
    let path = PathBuf::from(target);
    Ok(PtrTarget::Path(if path.is_absolute() {
        path
    } else {
        base.join(path)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let base = Path::new("/store/a.pdb/K");
        assert_eq!(
            parse(b"PATH:/srv/x/a.pdb\r\n", base),
            Ok(PtrTarget::Path("/srv/x/a.pdb".into()))
        );
        assert_eq!(
            parse(b"path: /srv/x/a.pdb", base),
            Ok(PtrTarget::Path("/srv/x/a.pdb".into()))
        );
        assert_eq!(
            parse(b"/srv/x/a.pdb", base),
            Ok(PtrTarget::Path("/srv/x/a.pdb".into()))
        );
        assert_eq!(
            parse(b"rel/a.pdb", base),
            Ok(PtrTarget::Path("/store/a.pdb/K/rel/a.pdb".into()))
        );
        assert_eq!(
            parse(b"https://h/a.pdb", base),
            Ok(PtrTarget::Url("https://h/a.pdb".into()))
        );
        assert_eq!(
            parse(b"PATH:http://h/a.pdb", base),
            Ok(PtrTarget::Url("http://h/a.pdb".into()))
        );
        assert!(parse(b"MSG: deleted by transaction 12", base)
            .unwrap_err()
            .contains("deleted"));
        assert!(parse(b"", base).is_err());
        assert!(parse(b"ftp://h/a", base).is_err());
        assert!(parse(b"\xff\xfe", base).is_err());
        assert!(parse(b"PATH:/a\x01b", base).is_err());
        assert!(
            parse("é€".as_bytes(), base).is_ok(),
            "multi-byte text never splits a character"
        );
    }
}
