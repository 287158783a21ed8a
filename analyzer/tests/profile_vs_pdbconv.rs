//! The globals and layouts OUR PDB reader takes from the XP SP3 PAE kernel PDB
//! (corpus/pdb/ntkrnlpa.pdb) equal those Volatility 3's `pdbconv` extracts from the same file.
//!
//! The pdbconv ISF is made by scripts/test.sh at
//! `$POOLTRIAGE_VOL_SYMBOLS/windows/ntkrnlpa.pdb/30B5FB31AE7E4ACAABA750AA241FF331-1.json.xz`
//! (default `.cache/vol-symbols` at the repo root). The ISF is parsed here with serde_json
//! directly, not with our ISF reader, so the comparison shares no code with the profile code
//! beyond the PDB side under test.
//!
//! Every global and every structure/union field is compared, and the sets of names must be
//! equal. Two naming rules are pdbconv's and our PDB reader follows them on purpose (see
//! `symbols/pdb_file.rs`): x86 decoration is stripped with pdbconv's `name_strip` rule, and
//! anonymous structures/unions are named `__unnamed_<type index hex>`. Measured on the corpus
//! PDB: 10445 globals and 568 types with 4446 fields, all equal.

use analyzer::symbols::Profile;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const ISF_REL: &str = "windows/ntkrnlpa.pdb/30B5FB31AE7E4ACAABA750AA241FF331-1.json.xz";

fn pdbconv_isf() -> Value {
    let dir = std::env::var_os("POOLTRIAGE_VOL_SYMBOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../.cache/vol-symbols"
            ))
        });
    let path = dir.join(ISF_REL);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "the pdbconv ISF {} is missing ({e}): run scripts/test.sh (it makes it with Volatility 3's pdbconv \
             from corpus/pdb/ntkrnlpa.pdb) or set POOLTRIAGE_VOL_SYMBOLS",
            path.display()
        )
    });
    let mut json = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut json)
        .expect("pdbconv ISF is valid xz");
    serde_json::from_slice(&json).expect("pdbconv ISF is valid JSON")
}

#[test]
fn xp_pdb_profile_equals_pdbconv() {
    let ours = Profile::from_pdb(analyzer::test_corpus::corpus("pdb/ntkrnlpa.pdb"))
        .expect("our reader reads ntkrnlpa.pdb");
    let isf = pdbconv_isf();

    // Identity: pdbconv writes the GUID without dashes and the DBI age.
    let meta = &isf["metadata"]["windows"]["pdb"];
    assert_eq!(meta["GUID"].as_str().unwrap(), ours.guid.replace('-', ""));
    assert_eq!(meta["age"].as_u64().unwrap(), u64::from(ours.age));
    assert_eq!(
        isf["base_types"]["pointer"]["size"].as_u64().unwrap(),
        u64::from(ours.pointer_size)
    );

    // ---- Globals --------------------------------------------------------------------------
    // pdbconv keeps, per name, the address of the public symbol (S_PUB32) with its x86
    // decoration stripped (leading `_` or `@`, trailing `@N`), and of S_GDATA32/S_LDATA32 data;
    // our reader does the same. Compare every name present in both.
    let theirs: BTreeMap<String, u64> = isf["symbols"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| v["address"].as_u64().map(|a| (k.clone(), a)))
        .collect();
    let mut compared = 0;
    let mut differ = Vec::new();
    for (name, &rva) in &theirs {
        if let Some(&our) = ours.globals.get(name) {
            compared += 1;
            if our != rva {
                differ.push(format!("{name}: ours {our:#x} pdbconv {rva:#x}"));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {compared} globals differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    let only_theirs: Vec<&String> = theirs
        .keys()
        .filter(|k| !ours.globals.contains_key(*k))
        .collect();
    let only_ours: Vec<&String> = ours
        .globals
        .keys()
        .filter(|k| !theirs.contains_key(*k))
        .collect();
    eprintln!(
        "globals: {compared} compared and equal; {} only in pdbconv, {} only in ours",
        only_theirs.len(),
        only_ours.len()
    );
    // The pool engine's globals must be in both and equal (checked above).
    for g in [
        "PoolTrackTable",
        "PoolTrackTableSize",
        "PoolBigPageTable",
        "PoolBigPageTableSize",
        "MmSizeOfPagedPoolInBytes",
        "MmMaximumNonPagedPoolInBytes",
        "MmPagedPoolCommit",
        "MmAllocatedNonPagedPool",
        "MmNonPagedPoolStart",
        "MmNonPagedPoolEnd",
        "MmPagedPoolStart",
        "MmPagedPoolEnd",
        "KdDebuggerDataBlock",
        "PsLoadedModuleList",
        "PsActiveProcessHead",
        "KeNumberProcessors",
    ] {
        assert!(
            ours.globals.contains_key(g) && theirs.contains_key(g),
            "{g}"
        );
    }
    // With pdbconv's own decoration rule (see pdb_file.rs `undecorate`) the name sets are equal.
    assert!(
        only_theirs.is_empty(),
        "globals pdbconv has and we lack: {only_theirs:?}"
    );
    assert!(
        only_ours.is_empty(),
        "globals we have and pdbconv lacks: {only_ours:?}"
    );
    assert!(compared > 10_000, "too few globals compared: {compared}");

    // ---- Types ----------------------------------------------------------------------------
    let user_types = isf["user_types"].as_object().unwrap();
    let mut types_compared = 0;
    let mut fields_compared = 0;
    let mut differ = Vec::new();
    let mut missing_fields = Vec::new();
    for (name, t) in user_types {
        let Some(our) = ours.types.get(name) else {
            continue;
        };
        types_compared += 1;
        let size = t["size"].as_u64().unwrap();
        if our.size != size {
            differ.push(format!("{name}: size ours {} pdbconv {size}", our.size));
        }
        let fields = t["fields"].as_object().unwrap();
        for (fname, f) in fields {
            let Some(of) = our.fields.get(fname) else {
                missing_fields.push(format!("{name}.{fname}"));
                continue;
            };
            fields_compared += 1;
            let off = f["offset"].as_u64().unwrap();
            let ty = &f["type"];
            let (pos, len) = if ty["kind"] == "bitfield" {
                (
                    ty["bit_position"].as_u64().map(|v| v as u32),
                    ty["bit_length"].as_u64().map(|v| v as u32),
                )
            } else {
                (None, None)
            };
            if (of.offset, of.bit_position, of.bit_length) != (off, pos, len) {
                differ.push(format!(
                    "{name}.{fname}: ours ({}, {:?}, {:?}) pdbconv ({off}, {pos:?}, {len:?})",
                    of.offset, of.bit_position, of.bit_length
                ));
            }
        }
        let theirs_names: BTreeSet<&String> = fields.keys().collect();
        for f in our.fields.keys() {
            if !theirs_names.contains(f) {
                missing_fields.push(format!("{name}.{f} (ours only)"));
            }
        }
    }
    eprintln!("types: {types_compared} compared, {fields_compared} fields equal");
    assert!(
        differ.is_empty(),
        "{} type/field values differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(
        missing_fields.is_empty(),
        "fields present on one side only:\n{}",
        missing_fields.join("\n")
    );
    let only_theirs: Vec<&String> = user_types
        .keys()
        .filter(|k| !ours.types.contains_key(*k))
        .collect();
    let only_ours: Vec<&String> = ours
        .types
        .keys()
        .filter(|k| !user_types.contains_key(*k))
        .collect();
    eprintln!(
        "types only in pdbconv: {}, only in ours: {}",
        only_theirs.len(),
        only_ours.len()
    );
    assert!(
        only_theirs.is_empty(),
        "types pdbconv has and we lack: {only_theirs:?}"
    );
    assert!(
        only_ours.is_empty(),
        "types we have and pdbconv lacks: {only_ours:?}"
    );
    assert!(
        types_compared > 500 && fields_compared > 3000,
        "too little compared: {types_compared} / {fields_compared}"
    );
}
