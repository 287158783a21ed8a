//! Pool tags: four bytes, case-sensitive, shown as WinDbg shows them, and `!poolfind`-style
//! patterns over them.

use serde::{Serialize, Serializer};
use std::fmt;

/// A pool tag as stored: the four bytes of the little-endian ULONG, first character first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub [u8; 4]);

impl Tag {
    pub fn from_u32(v: u32) -> Tag {
        Tag(v.to_le_bytes())
    }
    pub fn as_u32(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
    /// The tag with bit 31 cleared: XP-era kernels set it (PROTECTED_POOL) on tags that must
    /// be freed with the same tag, and `!pool` shows the tag without it.
    pub fn unprotected(self) -> Tag {
        Tag::from_u32(self.as_u32() & 0x7fff_ffff)
    }
    /// A tag from up to four characters of text, padded with spaces as `poolmon` pads short
    /// tags (`"Ip"` is `"Ip  "`). `None` for more than four bytes.
    pub fn from_text(s: &str) -> Option<Tag> {
        let b = s.as_bytes();
        if b.len() > 4 {
            return None;
        }
        let mut t = [b' '; 4];
        t[..b.len()].copy_from_slice(b);
        Some(Tag(t))
    }
    /// True when all four bytes are printable ASCII: what a real allocation's tag looks like.
    pub fn is_printable(self) -> bool {
        self.0.iter().all(|b| (0x20..0x7f).contains(b))
    }
}

impl fmt::Display for Tag {
    /// Printable bytes as they are; anything else as `\xNN` so that a damaged or binary tag is
    /// visible and never corrupts a terminal. A backslash is doubled.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A tag pattern as `!poolfind` and `poolmon` take it: `?` matches any one byte, `*` any run of
/// bytes (including none). Matching is case-sensitive, as tags are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    bytes: Vec<u8>,
}

impl TagPattern {
    /// `None` when the pattern is empty or longer than a tag could ever match (more than four
    /// non-`*` bytes).
    pub fn parse(s: &str) -> Option<TagPattern> {
        let bytes = s.as_bytes().to_vec();
        let fixed = bytes.iter().filter(|&&b| b != b'*').count();
        (!bytes.is_empty() && fixed <= 4).then_some(TagPattern { bytes })
    }

    /// A pattern without wildcards shorter than four bytes matches the tag padded with
    /// spaces (`Ip` is `Ip  `), as poolmon pads short tags.
    pub fn matches(&self, tag: Tag) -> bool {
        let has_wild = self.bytes.iter().any(|&b| b == b'*' || b == b'?');
        if !has_wild && self.bytes.len() < 4 {
            let mut padded = self.bytes.clone();
            padded.resize(4, b' ');
            return padded == tag.0;
        }
        glob(&self.bytes, &tag.0)
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

/// Classic iterative glob with backtracking to the last `*`: linear in practice, no recursion.
fn glob(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Tag {
        Tag::from_text(s).unwrap()
    }

    #[test]
    fn display_escapes_non_printables() {
        assert_eq!(Tag(*b"Leak").to_string(), "Leak");
        assert_eq!(Tag([b'A', 0, 0xff, b'\\']).to_string(), "A\\x00\\xff\\\\");
        assert_eq!(Tag::from_u32(0x6b61_654c).to_string(), "Leak");
        assert_eq!(Tag::from_u32(0xeb61_654c).unprotected(), t("Leak"));
    }

    #[test]
    fn wildcards_like_poolfind() {
        let p = |s| TagPattern::parse(s).unwrap();
        assert!(p("Le?k").matches(t("Leak")));
        assert!(!p("Le?k").matches(t("leak")), "case-sensitive");
        assert!(p("L*").matches(t("Leak")));
        assert!(p("*k").matches(t("Leak")));
        assert!(!p("*x").matches(t("Leak")));
        assert!(p("*").matches(t("Leak")));
        assert!(p("L**k").matches(t("Leak")));
        assert!(p("Ip").matches(t("Ip")), "short tags are space-padded");
        assert!(!p("Ip").matches(t("IpXY")));
        assert!(p("Ip*").matches(t("IpXY")));
        assert!(p("????").matches(Tag([0, 1, 2, 3])));
        assert!(!p("???").matches(t("Leak")));
        assert_eq!(TagPattern::parse(""), None);
        assert_eq!(TagPattern::parse("Leaky"), None);
    }
}
