//! Symbols: kernel profiles (global RVAs and structure layouts) from PDB and ISF files.
//!
//! A [`Profile`] is the small subset of a kernel's debug information that the analyzer and the
//! forge need: where the globals are (RVAs from the image base) and how the structures are laid
//! out (sizes, field offsets, bitfields). It is read either from a Volatility 3 ISF file
//! ([`Profile::from_isf`], `.json` or `.json.xz`) or straight from a Microsoft PDB
//! ([`Profile::from_pdb`]), so that layouts always come from the kernel's own symbols rather
//! than from constants in our code.

pub mod fallback;
mod fallback_table;
pub mod frame_data;
pub mod identify;
mod isf;
pub mod kernel_profile;
pub mod lines;
pub use symstore::msf_check;
pub mod names;
mod pdb_file;
pub mod profile_report;
pub mod resolve;
/// The symbol store client, its own crate (`pooltriage-symstore`): it reads nothing else of
/// the analyzer.
pub use symstore as store;
pub mod symbolizer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where a profile's values came from, so every output can say which were assumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSource {
    /// Read from the kernel's PDB.
    Pdb(PathBuf),
    /// Read from a Volatility 3 ISF file.
    Isf(PathBuf),
    /// No symbols: layouts from the built-in table of `table_build` (the build nearest the
    /// dump's `build`), globals from the debugger data block if `kdbg`.
    Fallback {
        build: u32,
        table_build: u32,
        kdbg: bool,
    },
}

impl ProfileSource {
    /// "pdb", "isf" or "fallback".
    pub fn kind(&self) -> &'static str {
        match self {
            ProfileSource::Pdb(_) => "pdb",
            ProfileSource::Isf(_) => "isf",
            ProfileSource::Fallback { .. } => "fallback",
        }
    }

    /// One line naming the source, e.g. `isf /path/x.json.xz`.
    pub fn describe(&self) -> String {
        match self {
            ProfileSource::Pdb(p) => format!("pdb {}", p.display()),
            ProfileSource::Isf(p) => format!("isf {}", p.display()),
            ProfileSource::Fallback {
                build,
                table_build,
                kdbg,
            } => format!(
                "fallback (no symbols): layouts of build {table_build} from the built-in table{}{}",
                if build != table_build {
                    format!(" assumed for build {build}")
                } else {
                    String::new()
                },
                if *kdbg {
                    ", globals from the debugger data block"
                } else {
                    ", no globals"
                }
            ),
        }
    }
}

/// A kernel's symbols: identity (PDB name, GUID, age), globals and structure layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The PDB file name the image's CodeView record names, e.g. `ntkrnlmp.pdb`.
    pub pdb_name: String,
    /// PDB GUID, upper-case and dashed (8-4-4-4-12), as the rest of the project prints it.
    pub guid: String,
    pub age: u32,
    /// 4 (x86, PAE or not) or 8 (x64).
    pub pointer_size: u8,
    /// Global symbol name -> RVA from the image base.
    pub globals: BTreeMap<String, u64>,
    /// Structure/union name (e.g. `_EPROCESS`) -> layout.
    pub types: BTreeMap<String, TypeLayout>,
    /// Where these values came from.
    pub source: ProfileSource,
}

/// The layout of one structure or union.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypeLayout {
    pub size: u64,
    pub fields: BTreeMap<String, Field>,
}

/// One field of a structure: its byte offset, and for a bitfield the bit range inside the
/// underlying integer at that offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u64,
    pub bit_position: Option<u32>,
    pub bit_length: Option<u32>,
}

#[derive(Debug, Error)]
pub enum SymbolsError {
    #[error("cannot read symbol file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("symbol file {path} is not valid xz: {reason}")]
    Xz { path: String, reason: String },
    #[error("symbol file {path} is not a valid ISF: {reason}")]
    Isf { path: String, reason: String },
    #[error("symbol file {path} is not a readable PDB: {reason}")]
    Pdb { path: String, reason: String },
}

impl Profile {
    /// Reads a Volatility 3 ISF file (`.json`, or `.json.xz` compressed with xz).
    pub fn from_isf(path: impl AsRef<Path>) -> Result<Profile, SymbolsError> {
        isf::read(path.as_ref())
    }

    /// Reads a Microsoft PDB: globals from the public and global symbols mapped to RVAs through
    /// the section map, layouts from the type (TPI) stream.
    pub fn from_pdb(path: impl AsRef<Path>) -> Result<Profile, SymbolsError> {
        pdb_file::read(path.as_ref())
    }

    /// `Some(explanation)` when the values are assumed rather than read from the kernel's own
    /// symbols (the built-in fallback); `None` for a PDB or ISF profile.
    pub fn assumed(&self) -> Option<String> {
        match &self.source {
            ProfileSource::Fallback { .. } => Some(self.source.describe()),
            _ => None,
        }
    }

    /// RVA of a global symbol.
    pub fn global(&self, name: &str) -> Option<u64> {
        self.globals.get(name).copied()
    }

    /// Size of a structure.
    pub fn type_size(&self, ty: &str) -> Option<u64> {
        self.types.get(ty).map(|t| t.size)
    }

    /// A field of a structure.
    pub fn field(&self, ty: &str, field: &str) -> Option<Field> {
        self.types
            .get(ty)
            .and_then(|t| t.fields.get(field))
            .copied()
    }

    /// Byte offset of a field of a structure.
    pub fn offset(&self, ty: &str, field: &str) -> Option<u64> {
        self.field(ty, field).map(|f| f.offset)
    }

    /// The GUID as the 16 bytes a CodeView (RSDS) record stores: Data1..Data3 little-endian,
    /// Data4 as is. `None` if [`Profile::guid`] is not a well-formed GUID string.
    pub fn guid_bytes(&self) -> Option<[u8; 16]> {
        guid_bytes(&self.guid)
    }
}

/// Formats 32 hex digits (the symbol-server form, as ISF metadata stores it) as the dashed
/// upper-case GUID string. Returns `None` for anything but 32 hex digits.
pub fn dashed_guid(hex32: &str) -> Option<String> {
    let h = hex32.trim();
    if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let u = h.to_ascii_uppercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &u[0..8],
        &u[8..12],
        &u[12..16],
        &u[16..20],
        &u[20..32]
    ))
}

/// Parses a dashed (or undashed) GUID string into its 16 on-disk bytes.
pub fn guid_bytes(guid: &str) -> Option<[u8; 16]> {
    let hex: String = guid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // Data1 (4 bytes), Data2 (2), Data3 (2) are stored little-endian.
    raw[0..4].reverse();
    raw[4..6].reverse();
    raw[6..8].reverse();
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip_matches_codeview_byte_order() {
        assert_eq!(
            dashed_guid("5278AFF86C341677D7D7835C85B7B844").as_deref(),
            Some("5278AFF8-6C34-1677-D7D7-835C85B7B844")
        );
        let b = guid_bytes("5278AFF8-6C34-1677-D7D7-835C85B7B844").unwrap();
        assert_eq!(&b[..8], &[0xF8, 0xAF, 0x78, 0x52, 0x34, 0x6C, 0x77, 0x16]);
        assert_eq!(&b[8..], &[0xD7, 0xD7, 0x83, 0x5C, 0x85, 0xB7, 0xB8, 0x44]);
        assert_eq!(dashed_guid("xyz"), None);
    }
}
