//! Symbol-store keys exactly as Microsoft's servers use them, and the checks that keep names
//! written by a dump's author from escaping the cache or a URL.
//!
//! PDB: `name/GUIDAGE/name`, the GUID as 32 upper-case hex digits without dashes followed by
//! the age in hex without leading zeros (an old NB10 PDB: its 8-digit signature instead of the
//! GUID). PE: `name/TIMESTAMPSIZE/name`, TimeDateStamp as `%08X` and SizeOfImage as `%x`.

use super::error::FetchError;
use std::fmt;

/// Formats the 16 GUID bytes of a CodeView (RSDS) record as Windows prints them
/// (`1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3`): Data1..Data3 are stored little-endian.
pub fn format_guid(b: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let d2 = u16::from_le_bytes([b[4], b[5]]);
    let d3 = u16::from_le_bytes([b[6], b[7]]);
    format!(
        "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// Longest file name accepted (NTFS's component limit is 255 UTF-16 units).
pub const MAX_NAME_LEN: usize = 255;

/// Device names Windows resolves in any directory (`NUL.pdb` is the NUL device there).
const RESERVED_STEMS: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// What to fetch: a PDB by its CodeView identity, or an image (PE) by its header identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SymbolKey {
    Pdb {
        /// File name only, e.g. `ntkrnlmp.pdb` (use [`file_name_of`] on a CodeView path).
        name: String,
        /// 32 hex digits (RSDS GUID) or 8 (NB10 signature), upper case, no dashes.
        guid: String,
        age: u32,
    },
    Pe {
        /// File name only, e.g. `amdppm.sys`.
        name: String,
        timestamp: u32,
        size_of_image: u32,
    },
}

impl SymbolKey {
    /// A PDB key. `guid` may be dashed (`1C19FDDB-27BB-...`), braced, or the bare 32 hex digits;
    /// an 8-digit value is an NB10 signature. It is checked by [`SymbolKey::index_path`].
    pub fn pdb(name: impl Into<String>, guid: &str, age: u32) -> SymbolKey {
        let guid: String = guid
            .chars()
            .filter(|c| !matches!(c, '-' | '{' | '}'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        SymbolKey::Pdb {
            name: name.into(),
            guid,
            age,
        }
    }

    /// A PDB key from the 16 GUID bytes as a CodeView (RSDS) record stores them (Data1..Data3
    /// little-endian).
    pub fn pdb_from_guid_bytes(name: impl Into<String>, guid: &[u8; 16], age: u32) -> SymbolKey {
        SymbolKey::Pdb {
            name: name.into(),
            guid: format_guid(guid).replace('-', ""),
            age,
        }
    }

    /// A PE key (TimeDateStamp and SizeOfImage from the image's headers or the module list).
    pub fn pe(name: impl Into<String>, timestamp: u32, size_of_image: u32) -> SymbolKey {
        SymbolKey::Pe {
            name: name.into(),
            timestamp,
            size_of_image,
        }
    }

    /// The file name as given (not yet checked).
    pub fn name(&self) -> &str {
        match self {
            SymbolKey::Pdb { name, .. } | SymbolKey::Pe { name, .. } => name,
        }
    }

    /// "pdb" or "pe".
    pub fn kind(&self) -> &'static str {
        match self {
            SymbolKey::Pdb { .. } => "pdb",
            SymbolKey::Pe { .. } => "pe",
        }
    }

    /// The middle directory: `GUIDAGE` (age `%X`) or `TIMESTAMPSIZE` (`%08X%x`).
    pub fn id(&self) -> String {
        match self {
            SymbolKey::Pdb { guid, age, .. } => format!("{guid}{age:X}"),
            SymbolKey::Pe {
                timestamp,
                size_of_image,
                ..
            } => format!("{timestamp:08X}{size_of_image:x}"),
        }
    }

    /// Checks the name and the GUID; every fetch starts here.
    pub fn validate(&self) -> Result<(), FetchError> {
        check_name(self.name())?;
        if let SymbolKey::Pdb { guid, .. } = self {
            if !(guid.len() == 32 || guid.len() == 8)
                || !guid.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(FetchError::HostileName {
                    name: escaped(guid),
                    reason: "a PDB GUID is 32 hex digits (or an NB10 signature of 8)".into(),
                });
            }
        }
        Ok(())
    }

    /// `name/KEY/name`, the path of the file inside a symbol store (and inside our cache).
    /// Err for a hostile name: it never reaches a path or a URL.
    pub fn index_path(&self) -> Result<String, FetchError> {
        self.validate()?;
        Ok(format!("{}/{}/{}", self.name(), self.id(), self.name()))
    }

    /// The variants of the middle directory a case-sensitive server may hold: ours first, then
    /// the one symstore.py writes (age in lower-case hex), without duplicates.
    pub(crate) fn id_variants(&self) -> Vec<String> {
        let mut v = vec![self.id()];
        if let SymbolKey::Pdb { guid, age, .. } = self {
            let lower_age = format!("{guid}{age:x}");
            if !v.contains(&lower_age) {
                v.push(lower_age);
            }
        }
        v
    }
}

impl fmt::Display for SymbolKey {
    /// `name/KEY` with the name escaped, safe to print even when hostile.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name: String = self
            .name()
            .chars()
            .take(80)
            .flat_map(char::escape_debug)
            .collect();
        write!(f, "{name}/{}", self.id())
    }
}

/// The compressed name Microsoft's stores use: the last character replaced by `_`
/// (`amdppm.pdb` -> `amdppm.pd_`).
pub fn compressed_name(name: &str) -> String {
    let mut s = name.to_string();
    s.pop();
    s.push('_');
    s
}

/// The file name of a path as a CodeView record or a module list writes it (either separator).
pub fn file_name_of(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// A name for messages: control characters and quotes escaped, cut to 80 characters.
pub(crate) fn escaped(name: &str) -> String {
    let mut s: String = name.chars().take(80).flat_map(char::escape_debug).collect();
    if name.chars().count() > 80 {
        s.push_str("...");
    }
    format!("\"{s}\"")
}

/// A file name safe to use as one path component on any OS and inside a URL path (after
/// percent-encoding): not empty, at most [`MAX_NAME_LEN`] bytes, no separators, drive
/// letters or stream names (`:`), no `.`/`..`, no NUL or control characters, none of the
/// characters Windows forbids in names, no trailing dot or space, no device name.
pub fn check_name(name: &str) -> Result<(), FetchError> {
    let bad = |reason: &str| {
        Err(FetchError::HostileName {
            name: escaped(name),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 255 bytes");
    }
    if name.contains('\0') {
        return bad("NUL byte");
    }
    if name.chars().any(char::is_control) {
        return bad("control character");
    }
    if name.contains(['/', '\\']) {
        return bad("path separator");
    }
    if name.contains(':') {
        return bad("drive letter or stream name (':')");
    }
    if name.chars().all(|c| c == '.') {
        return bad("'.' or '..'");
    }
    if name.contains(['*', '?', '"', '<', '>', '|']) {
        return bad("wildcard or character Windows forbids in file names");
    }
    if name.ends_with(['.', ' ']) {
        return bad("trailing dot or space (Windows strips it)");
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    if RESERVED_STEMS.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return bad("Windows device name");
    }
    Ok(())
}

/// Percent-encodes one URL path segment: everything but RFC 3986 unreserved characters.
pub(crate) fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile(name: &str) -> String {
        match SymbolKey::pdb(name, "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 1).index_path() {
            Err(FetchError::HostileName { reason, .. }) => reason,
            other => panic!("{name:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn keys_as_microsoft_writes_them() {
        // The corpus store's directories (rizinorg/test-pdb-repository, from Microsoft's server).
        let pdb = SymbolKey::pdb("amdppm.pdb", "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 1);
        assert_eq!(
            pdb.index_path().unwrap(),
            "amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"
        );
        let pe = SymbolKey::pe("amdppm.sys", 0xC9C0_3000, 0x3B000);
        assert!(pe.id().eq_ignore_ascii_case("c9c030003b000"));
        // %08X%x: the time stamp upper case and zero-padded, the size lower case.
        assert_eq!(
            SymbolKey::pe("a.sys", 0x1234, 0xABC00).id(),
            "00001234abc00"
        );
        // Age in hex, no padding.
        assert_eq!(
            SymbolKey::pdb("a.pdb", &"ab".repeat(16), 0x1a).id(),
            format!("{}1A", "AB".repeat(16))
        );
        // NB10: 8-digit signature.
        assert_eq!(
            SymbolKey::pdb("a.pdb", "3b7d8a1f", 2).index_path().unwrap(),
            "a.pdb/3B7D8A1F2/a.pdb"
        );
    }

    #[test]
    fn guid_bytes_in_codeview_order() {
        let raw = [
            0xDB, 0xFD, 0x19, 0x1C, 0xBB, 0x27, 0x99, 0x33, 0xD9, 0xB4, 0x59, 0x73, 0xEF, 0xEA,
            0xFC, 0xF3,
        ];
        assert_eq!(
            SymbolKey::pdb_from_guid_bytes("amdppm.pdb", &raw, 1),
            SymbolKey::pdb("amdppm.pdb", "1c19fddb-27bb-3399-d9b4-5973efeafcf3", 1)
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(hostile("../../etc/passwd"), "path separator");
        assert_eq!(hostile("..\\..\\windows\\x.pdb"), "path separator");
        assert_eq!(hostile("sub/x.pdb"), "path separator");
        assert_eq!(hostile(".."), "'.' or '..'");
        assert_eq!(hostile("."), "'.' or '..'");
        assert_eq!(hostile("C:x.pdb"), "drive letter or stream name (':')");
        assert_eq!(hostile("x.pdb:stream"), "drive letter or stream name (':')");
        assert_eq!(hostile("x\0.pdb"), "NUL byte");
        assert_eq!(hostile("x\n.pdb"), "control character");
        assert_eq!(hostile("x\u{7f}.pdb"), "control character");
        assert_eq!(hostile("x\u{85}.pdb"), "control character");
        assert_eq!(hostile(&"a".repeat(300)), "longer than 255 bytes");
        assert_eq!(hostile(""), "empty name");
        assert_eq!(
            hostile("x*.pdb"),
            "wildcard or character Windows forbids in file names"
        );
        assert_eq!(
            hostile("x.pdb."),
            "trailing dot or space (Windows strips it)"
        );
        assert_eq!(hostile("NUL.pdb"), "Windows device name");
        assert_eq!(hostile("con"), "Windows device name");
    }

    #[test]
    fn bad_guids_are_refused() {
        for g in [
            "",
            "123",
            "ZZ19FDDB27BB3399D9B45973EFEAFCF3",
            "1C19FDDB27BB3399D9B45973EFEAFCF3/..",
            "../x",
        ] {
            assert!(
                matches!(
                    SymbolKey::pdb("a.pdb", g, 1).index_path(),
                    Err(FetchError::HostileName { .. })
                ),
                "{g:?}"
            );
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for n in [
            "ntkrnlmp.pdb",
            "amdppm.sys",
            "Ntfs.sys",
            "win32k base.sys",
            "a",
            "100%.pdb",
            "naïve.pdb",
            "x..y.pdb",
        ] {
            check_name(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn names_are_escaped_in_urls_and_messages() {
        assert_eq!(url_segment("win32k base.sys"), "win32k%20base.sys");
        assert_eq!(url_segment("100%.pdb"), "100%25.pdb");
        assert_eq!(url_segment("naïve"), "na%C3%AFve");
        assert_eq!(escaped("a\nb"), "\"a\\nb\"");
        assert_eq!(
            SymbolKey::pe("a\nb.sys", 1, 0x1000).to_string(),
            "a\\nb.sys/000000011000"
        );
        assert_eq!(compressed_name("amdppm.pdb"), "amdppm.pd_");
        assert_eq!(file_name_of("d:\\build\\amdppm.pdb"), "amdppm.pdb");
    }
}
