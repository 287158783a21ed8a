//! Volatility 3 Intermediate Symbol Format (ISF) files: JSON, often xz-compressed.
//!
//! Only the parts a profile needs are deserialised: `metadata.windows.pdb`, `base_types.pointer`,
//! `symbols.*.address` (RVAs) and `user_types.*` sizes and field offsets/bitfields.

use super::{dashed_guid, Field, Profile, SymbolsError, TypeLayout};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

#[derive(Deserialize)]
struct Isf {
    metadata: Metadata,
    #[serde(default)]
    base_types: BTreeMap<String, BaseType>,
    #[serde(default)]
    symbols: BTreeMap<String, Symbol>,
    #[serde(default)]
    user_types: BTreeMap<String, UserType>,
}

#[derive(Deserialize)]
struct Metadata {
    windows: Option<WindowsMeta>,
}

#[derive(Deserialize)]
struct WindowsMeta {
    pdb: Option<PdbMeta>,
}

#[derive(Deserialize)]
struct PdbMeta {
    #[serde(rename = "GUID")]
    guid: String,
    age: u32,
    database: String,
}

#[derive(Deserialize)]
struct BaseType {
    size: u64,
}

#[derive(Deserialize)]
struct Symbol {
    address: Option<u64>,
}

#[derive(Deserialize)]
struct UserType {
    size: u64,
    #[serde(default)]
    fields: BTreeMap<String, UserField>,
}

#[derive(Deserialize)]
struct UserField {
    offset: u64,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Deserialize)]
struct TypeRef {
    kind: String,
    bit_position: Option<u32>,
    bit_length: Option<u32>,
}

pub(super) fn read(path: &Path) -> Result<Profile, SymbolsError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| SymbolsError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let isf: Isf = if shown.ends_with(".xz") {
        let mut json = Vec::new();
        lzma_rs::xz_decompress(&mut reader, &mut json).map_err(|e| SymbolsError::Xz {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        serde_json::from_slice(&json)
    } else {
        serde_json::from_reader(reader)
    }
    .map_err(|e| SymbolsError::Isf {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    to_profile(isf, &shown, super::ProfileSource::Isf(path.to_path_buf()))
}

fn to_profile(
    isf: Isf,
    shown: &str,
    source: super::ProfileSource,
) -> Result<Profile, SymbolsError> {
    let bad = |reason: &str| SymbolsError::Isf {
        path: shown.to_string(),
        reason: reason.to_string(),
    };
    let pdb = isf
        .metadata
        .windows
        .and_then(|w| w.pdb)
        .ok_or_else(|| bad("no metadata.windows.pdb (not a Windows kernel ISF)"))?;
    let guid = dashed_guid(&pdb.guid)
        .ok_or_else(|| bad("metadata.windows.pdb.GUID is not 32 hex digits"))?;
    let pointer_size = match isf.base_types.get("pointer").map(|p| p.size) {
        Some(4) => 4,
        Some(8) => 8,
        _ => return Err(bad("base_types.pointer.size is neither 4 nor 8")),
    };
    let globals = isf
        .symbols
        .into_iter()
        .filter_map(|(name, s)| s.address.map(|a| (name, a)))
        .collect();
    let types = isf
        .user_types
        .into_iter()
        .map(|(name, t)| {
            let fields = t
                .fields
                .into_iter()
                .map(|(fname, f)| {
                    let bitfield = f.ty.kind == "bitfield";
                    let field = Field {
                        offset: f.offset,
                        bit_position: if bitfield { f.ty.bit_position } else { None },
                        bit_length: if bitfield { f.ty.bit_length } else { None },
                    };
                    (fname, field)
                })
                .collect();
            (
                name,
                TypeLayout {
                    size: t.size,
                    fields,
                },
            )
        })
        .collect();
    Ok(Profile {
        pdb_name: pdb.database,
        guid,
        age: pdb.age,
        pointer_size,
        globals,
        types,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Profile;
    use std::path::PathBuf;

    fn isf(name: &str) -> PathBuf {
        crate::test_corpus::corpus("isf/ntkrnlmp.pdb").join(name)
    }

    /// Expected values read by hand with `xz -dc FILE | python3 -c 'import json,sys; ...'`.
    #[test]
    fn win10_19041_layouts_match_the_isf() {
        let p = Profile::from_isf(isf("5278AFF86C341677D7D7835C85B7B844-1.json.xz")).unwrap();
        assert_eq!(p.pdb_name, "ntkrnlmp.pdb");
        assert_eq!(p.guid, "5278AFF8-6C34-1677-D7D7-835C85B7B844");
        assert_eq!(p.age, 1);
        assert_eq!(p.pointer_size, 8);
        assert_eq!(p.global("PsLoadedModuleList"), Some(12755856));
        assert_eq!(p.global("PsActiveProcessHead"), Some(12706304));
        assert_eq!(p.global("KdDebuggerDataBlock"), Some(12585760));
        assert_eq!(p.type_size("_EPROCESS"), Some(2624));
        assert_eq!(p.offset("_EPROCESS", "UniqueProcessId"), Some(1088));
        assert_eq!(p.offset("_EPROCESS", "ActiveProcessLinks"), Some(1096));
        assert_eq!(p.offset("_EPROCESS", "ImageFileName"), Some(1448));
        assert_eq!(p.offset("_KPROCESS", "DirectoryTableBase"), Some(40));
        assert_eq!(p.type_size("_LDR_DATA_TABLE_ENTRY"), Some(288));
        assert_eq!(p.offset("_LDR_DATA_TABLE_ENTRY", "DllBase"), Some(48));
        assert_eq!(p.offset("_LDR_DATA_TABLE_ENTRY", "SizeOfImage"), Some(64));
        let cr = p.field("_EPROCESS", "CreateReported").unwrap();
        assert_eq!(
            (cr.offset, cr.bit_position, cr.bit_length),
            (1124, Some(0), Some(1))
        );
        let bs = p.field("_POOL_HEADER", "BlockSize").unwrap();
        assert_eq!(
            (bs.offset, bs.bit_position, bs.bit_length),
            (2, Some(0), Some(8))
        );
        // A plain field is not a bitfield.
        assert_eq!(
            p.field("_EPROCESS", "ActiveThreads").unwrap().bit_length,
            None
        );
    }

    #[test]
    fn win7_7601_has_its_own_layout() {
        let p = Profile::from_isf(isf("339E74133576439CBCDF7E0229DA3773-1.json.xz")).unwrap();
        assert_eq!(p.guid, "339E7413-3576-439C-BCDF-7E0229DA3773");
        assert_eq!(p.offset("_EPROCESS", "UniqueProcessId"), Some(0x180));
        assert_eq!(p.offset("_EPROCESS", "ImageFileName"), Some(0x2e0));
        assert_eq!(p.type_size("_POOL_HEADER"), Some(16));
    }

    #[test]
    fn missing_and_malformed_files_are_errors() {
        assert!(Profile::from_isf("/nonexistent/x.json.xz").is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.json");
        std::fs::write(&f, b"{\"metadata\": {}}").unwrap();
        let e = Profile::from_isf(&f).unwrap_err().to_string();
        assert!(e.contains("metadata.windows.pdb"), "{e}");
        let f = dir.path().join("bad.json.xz");
        std::fs::write(&f, b"not xz").unwrap();
        assert!(Profile::from_isf(&f).is_err());
    }
}
