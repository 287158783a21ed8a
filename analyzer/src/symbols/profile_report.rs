//! `pooltriage symbols profile`: a profile as JSON (documented in docs/symbols.md) or as a short
//! readable summary.
//!
//! JSON: `{ "source": {kind, path?|build..}, "pdb": {name, guid, age}, "pointer_size",
//! "globals": {name: "0x..rva"}, "types": {name: {size, fields: {name: {offset, bit_position?,
//! bit_length?}}}} }`. RVAs are hex strings (house rule for addresses), sizes and offsets numbers.

use super::{Profile, ProfileSource};
use serde_json::{json, Map, Value};

/// Globals and types the pool engine reads, listed first in the text summary.
const POOL_GLOBALS: &[&str] = &[
    "PoolTrackTable",
    "PoolTrackTableSize",
    "ExPoolTagTables",
    "PoolTrackTableExpansion",
    "PoolTrackTableExpansionSize",
    "PoolBigPageTable",
    "PoolBigPageTableSize",
    "ExPoolState",
    "ExpPoolQuotaCookie",
    "MmSizeOfPagedPoolInBytes",
    "MmMaximumNonPagedPoolInBytes",
    "MmPagedPoolCommit",
    "MmAllocatedNonPagedPool",
    "MmNonPagedPoolStart",
    "MmNonPagedPoolEnd",
    "MmPagedPoolStart",
    "MmPagedPoolEnd",
    "MiState",
    "KdDebuggerDataBlock",
    "KiWaitNever",
    "KiWaitAlways",
    "KdpDataBlockEncoded",
    "PsLoadedModuleList",
    "PsActiveProcessHead",
    "KeNumberProcessors",
];
const POOL_TYPES: &[&str] = &[
    "_POOL_HEADER",
    "_POOL_TRACKER_TABLE",
    "_POOL_TRACKER_BIG_PAGES",
    "_LDR_DATA_TABLE_ENTRY",
    "_EPROCESS",
    "_KPROCESS",
    "_EX_POOL_HEAP_MANAGER_STATE",
    "_SEGMENT_HEAP",
    "_HEAP_PAGE_SEGMENT",
    "_HEAP_LFH_SUBSEGMENT",
    "_HEAP_VS_SUBSEGMENT",
    "_HEAP_VS_CHUNK_HEADER",
];

fn source_json(s: &ProfileSource) -> Value {
    match s {
        ProfileSource::Pdb(p) => json!({ "kind": "pdb", "path": p.display().to_string() }),
        ProfileSource::Isf(p) => json!({ "kind": "isf", "path": p.display().to_string() }),
        ProfileSource::Fallback {
            build,
            table_build,
            kdbg,
        } => json!({
            "kind": "fallback", "build": build, "table_build": table_build, "globals_from_kdbg": kdbg,
            "assumed": s.describe(),
        }),
    }
}

/// The profile as the `symbols profile --json` document.
pub fn to_json(p: &Profile) -> Value {
    let globals: Map<String, Value> = p
        .globals
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(format!("{v:#x}"))))
        .collect();
    let types: Map<String, Value> = p
        .types
        .iter()
        .map(|(name, t)| {
            let fields: Map<String, Value> = t
                .fields
                .iter()
                .map(|(f, v)| {
                    let mut o = Map::new();
                    o.insert("offset".into(), json!(v.offset));
                    if let (Some(pos), Some(len)) = (v.bit_position, v.bit_length) {
                        o.insert("bit_position".into(), json!(pos));
                        o.insert("bit_length".into(), json!(len));
                    }
                    (f.clone(), Value::Object(o))
                })
                .collect();
            (name.clone(), json!({ "size": t.size, "fields": fields }))
        })
        .collect();
    json!({
        "source": source_json(&p.source),
        "pdb": { "name": p.pdb_name, "guid": p.guid, "age": p.age },
        "pointer_size": p.pointer_size,
        "globals": globals,
        "types": types,
    })
}

/// A readable summary: identity, source, counts, the pool engine's globals and structure sizes.
pub fn to_text(p: &Profile) -> String {
    let mut s = String::new();
    if p.pdb_name.is_empty() {
        s.push_str("PDB:      (none)\n");
    } else {
        s.push_str(&format!(
            "PDB:      {} {} age {}\n",
            p.pdb_name, p.guid, p.age
        ));
    }
    s.push_str(&format!("Source:   {}\n", p.source.describe()));
    if let Some(a) = p.assumed() {
        s.push_str(&format!("ASSUMED:  {a}\n"));
    }
    s.push_str(&format!("Pointer:  {} bytes\n", p.pointer_size));
    s.push_str(&format!(
        "Globals:  {}    Types: {}\n",
        p.globals.len(),
        p.types.len()
    ));
    s.push_str("\nPool engine globals (RVA):\n");
    for g in POOL_GLOBALS {
        match p.global(g) {
            Some(rva) => s.push_str(&format!("  {g:<32} {rva:#x}\n")),
            None => s.push_str(&format!("  {g:<32} -\n")),
        }
    }
    s.push_str("\nPool engine structures (size, fields):\n");
    for t in POOL_TYPES {
        match p.types.get(*t) {
            Some(l) => s.push_str(&format!(
                "  {t:<32} {:#x} ({} fields)\n",
                l.size,
                l.fields.len()
            )),
            None => s.push_str(&format!("  {t:<32} -\n")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the 19041 ISF as read by hand (`xz -dc | python3 -m json.tool`).
    #[test]
    fn json_has_hex_rvas_and_bitfields() {
        let path = crate::test_corpus::corpus(
            "isf/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz",
        );
        let p = Profile::from_isf(path).unwrap();
        let j = to_json(&p);
        assert_eq!(j["source"]["kind"], "isf");
        assert_eq!(j["pdb"]["guid"], "5278AFF8-6C34-1677-D7D7-835C85B7B844");
        assert_eq!(
            j["globals"]["PsLoadedModuleList"],
            format!("{:#x}", 12755856)
        );
        let bs = &j["types"]["_POOL_HEADER"]["fields"]["BlockSize"];
        assert_eq!(
            (
                bs["offset"].as_u64(),
                bs["bit_position"].as_u64(),
                bs["bit_length"].as_u64()
            ),
            (Some(2), Some(0), Some(8))
        );
        assert!(j["types"]["_POOL_HEADER"]["fields"]["PoolTag"]
            .get("bit_position")
            .is_none());
        let t = to_text(&p);
        assert!(
            t.contains("PoolBigPageTable") && !t.contains("ASSUMED"),
            "{t}"
        );
    }
}
