//! What a symbol file is and the key it is stored under, read from the file itself, as
//! `symstore.exe add` does: a PDB by its GUID (or NB10 signature) and age, an image (PE) by
//! its TimeDateStamp and SizeOfImage. Never from the file's name: a name says where the file
//! goes (`name/KEY/name`), never which build it is.
//!
//! Identifying a PDB also reads it through: its container ([`super::msf_check`]), its info and
//! DBI streams (the key), its function names and its line programs, so a PDB that would break
//! an analysis is refused when it is added, with the reason, and the caller learns whether it
//! is a private PDB (functions, lines) or a public one. The `pdb` crate runs inside
//! `catch_unwind`; callers that take files from strangers (the service) also run this in a
//! child process with time and memory limits.

use super::lines::SourceLines;
use super::names::{open_pdb, FunctionNames, NamesError, Undecorate};
use super::store::key::{check_name, SymbolKey};
use crate::kernel::pe::{CodeView, PeFile};
use std::io::Read;
use std::path::Path;
use thiserror::Error;

/// Largest image read (ntoskrnl is ~11 MiB; the same bound as the resolver's).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Why a file cannot go into a symbol store.
#[derive(Debug, Error)]
pub enum IdentifyError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{name}: neither a PDB nor a PE image (starts with {head:?})")]
    Neither { name: String, head: String },
    #[error("{name}: refused name: {reason}")]
    Name { name: String, reason: String },
    #[error("{name}: not a readable PDB: {reason}")]
    Pdb { name: String, reason: String },
    #[error("{name}: not a readable PE image: {reason}")]
    Pe { name: String, reason: String },
}

/// A PDB's identity and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbFacts {
    /// 32 upper-case hex digits (RSDS), or the 8-digit NB10 signature.
    pub guid: String,
    /// The DBI stream's age (what images' CodeView records carry).
    pub age: u32,
    /// Procedures and public symbols that name addresses.
    pub functions: usize,
    /// Source line ranges (0: a public PDB, no line information).
    pub line_ranges: usize,
}

/// An image's identity and the PDB it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeFacts {
    pub timestamp: u32,
    pub size_of_image: u32,
    pub machine: u16,
    pub codeview: Option<CodeView>,
}

/// What [`identify`] found.
#[derive(Debug, Clone)]
pub enum Identified {
    Pdb { key: SymbolKey, facts: PdbFacts },
    Pe { key: SymbolKey, facts: PeFacts },
}

impl Identified {
    pub fn key(&self) -> &SymbolKey {
        match self {
            Identified::Pdb { key, .. } | Identified::Pe { key, .. } => key,
        }
    }
}

/// Identifies the file at `path`, to be stored under the file name `name` (checked with the
/// store's name rules; a PDB's name must end in `.pdb`, the name images' CodeView records use).
pub fn identify(path: &Path, name: &str) -> Result<Identified, IdentifyError> {
    check_name(name).map_err(|e| IdentifyError::Name {
        name: shown(name),
        reason: e.to_string(),
    })?;
    let head = read_head(path)?;
    if head.starts_with(b"Microsoft C/C++") {
        if !name.to_ascii_lowercase().ends_with(".pdb") {
            return Err(IdentifyError::Name {
                name: shown(name),
                reason: "a PDB is stored under its own name, NAME.pdb".into(),
            });
        }
        return identify_pdb(path, name);
    }
    if head.starts_with(b"MZ") {
        return identify_pe(path, name);
    }
    Err(IdentifyError::Neither {
        name: shown(name),
        head: String::from_utf8_lossy(&head)
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect(),
    })
}

fn shown(name: &str) -> String {
    name.chars().take(80).flat_map(char::escape_debug).collect()
}

fn read_head(path: &Path) -> Result<Vec<u8>, IdentifyError> {
    let io = |e: std::io::Error| IdentifyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .map_err(io)?
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head)
}

fn identify_pdb(path: &Path, name: &str) -> Result<Identified, IdentifyError> {
    let bad = |reason: String| IdentifyError::Pdb {
        name: shown(name),
        reason,
    };
    let names_err = |e: NamesError| match e {
        NamesError::Malformed { reason, .. } => bad(reason),
        e => bad(e.to_string()),
    };
    let (guid, age) = pdb_key(path).map_err(bad)?;
    let functions = FunctionNames::from_pdb(path, Undecorate::Auto).map_err(names_err)?;
    let lines = SourceLines::from_pdb(path).map_err(names_err)?;
    let key = SymbolKey::pdb(name, &guid, age);
    key.validate().map_err(|e| bad(e.to_string()))?;
    Ok(Identified::Pdb {
        key,
        facts: PdbFacts {
            guid,
            age,
            functions: functions.len(),
            line_ranges: lines.len(),
        },
    })
}

/// (GUID as 32 upper-case hex digits, or the NB10 signature as 8; the DBI age, else the info
/// stream's).
fn pdb_key(path: &Path) -> Result<(String, u32), String> {
    let file = open_pdb(path).map_err(|e| match e {
        NamesError::Malformed { reason, .. } => reason,
        e => e.to_string(),
    })?;
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || -> Result<(String, u32), String> {
            let mut pdb = pdb::PDB::open(file).map_err(|e| e.to_string())?;
            let info = pdb.pdb_information().map_err(|e| e.to_string())?;
            let dbi = pdb.debug_information().map_err(|e| e.to_string())?;
            let age = dbi.age().unwrap_or(info.age);
            let guid = if info.guid.is_nil() {
                format!("{:08X}", info.signature)
            } else {
                info.guid.simple().to_string().to_ascii_uppercase()
            };
            Ok((guid, age))
        },
    ));
    read.unwrap_or_else(|_| Err("the PDB reader gave up (internal panic)".into()))
}

fn identify_pe(path: &Path, name: &str) -> Result<Identified, IdentifyError> {
    let bad = |reason: String| IdentifyError::Pe {
        name: shown(name),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if len > MAX_IMAGE_BYTES {
        return Err(bad(format!(
            "{len} bytes, more than the {MAX_IMAGE_BYTES}-byte limit for an image"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let pe = PeFile::new(&bytes).map_err(|e| bad(e.to_string()))?;
    let info = pe.info().map_err(|e| bad(e.to_string()))?;
    if info.timestamp == 0 || info.size_of_image == 0 {
        return Err(bad("TimeDateStamp or SizeOfImage is 0: no store key".into()));
    }
    Ok(Identified::Pe {
        key: SymbolKey::pe(name, info.timestamp, info.size_of_image),
        facts: PeFacts {
            timestamp: info.timestamp,
            size_of_image: info.size_of_image,
            machine: info.machine,
            codeview: info.codeview,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> String {
        crate::test_corpus::corpus_str("symstore")
    }

    /// The corpus store's own keys (its directory names, written by Microsoft's tools) are
    /// what identification reads from the files.
    #[test]
    fn corpus_files_get_the_corpus_store_keys() {
        let pdb = format!(
            "{}/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb",
            store()
        );
        let got = identify(Path::new(&pdb), "amdppm.pdb").unwrap();
        assert_eq!(got.key().id(), "1C19FDDB27BB3399D9B45973EFEAFCF31");
        let Identified::Pdb { facts, .. } = got else {
            panic!("a PDB")
        };
        assert_eq!(facts.line_ranges, 0, "a public PDB");
        assert!(facts.functions > 10);
        let sys = format!("{}/amdppm.sys/c9c030003b000/amdppm.sys", store());
        let got = identify(Path::new(&sys), "amdppm.sys").unwrap();
        assert_eq!(got.key().id().to_ascii_lowercase(), "c9c030003b000");
        let Identified::Pe { facts, .. } = got else {
            panic!("a PE")
        };
        let cv = facts.codeview.expect("a CodeView record");
        assert_eq!(cv.pdb_name(), "amdppm.pdb");
        assert_eq!(cv.symstore_key(), "1C19FDDB27BB3399D9B45973EFEAFCF31");
    }

    #[test]
    fn names_and_contents_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"hello\x01world").unwrap();
        assert!(matches!(
            identify(&text, "notes.txt"),
            Err(IdentifyError::Neither { .. })
        ));
        let pdb = format!(
            "{}/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb",
            store()
        );
        assert!(matches!(
            identify(Path::new(&pdb), "amdppm.bin"),
            Err(IdentifyError::Name { .. })
        ));
        assert!(matches!(
            identify(Path::new(&pdb), "../amdppm.pdb"),
            Err(IdentifyError::Name { .. })
        ));
        let half = dir.path().join("half.pdb");
        let bytes = std::fs::read(&pdb).unwrap();
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        let e = identify(&half, "half.pdb").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mz = dir.path().join("x.sys");
        std::fs::write(&mz, b"MZ not really").unwrap();
        assert!(matches!(
            identify(&mz, "x.sys"),
            Err(IdentifyError::Pe { .. })
        ));
    }
}
