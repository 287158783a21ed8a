//! The modules of each indexed report by their symbol-store keys (`report_modules`), so that
//! a vendor symbol file arriving finds the tenant's dumps it names without reading every
//! report: an image by `name/TIMESTAMPsize` (the module list's own key, which even a triage
//! dump holds), a PDB by `pdbname/GUIDAGE` (from the dump's PE headers, or from the image an
//! analysis fetched). Keys are lower case, as local stores match names case-insensitively.

use serde_json::Value;

/// Longest module or PDB name indexed (a name longer than a file name is not a key).
const MAX_NAME_LEN: usize = 255;
/// Most modules indexed per report (a module list is a few hundred).
pub const MAX_MODULES: usize = 4096;

/// One module's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleKeys {
    pub module: String,
    pub image_key: Option<String>,
    pub pdb_key: Option<String>,
}

/// `name/KEY` in lower case: a file's identity in a symbol store.
pub fn store_key(name: &str, key: &str) -> String {
    format!("{name}/{key}").to_lowercase()
}

/// The image key of a module: `name/TIMESTAMP%08X` + `SizeOfImage%x`, lower case.
pub fn image_key(name: &str, timestamp: u32, size: u32) -> String {
    store_key(name, &format!("{timestamp:08X}{size:x}"))
}

/// The PDB key: `pdbname/GUID` (no dashes or braces) + age `%X`, lower case.
pub fn pdb_key(pdb_name: &str, guid: &str, age: u32) -> String {
    let guid: String = guid.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    store_key(pdb_name, &format!("{guid}{age:X}"))
}

fn hex_or_number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => u64::from_str_radix(s.strip_prefix("0x")?, 16).ok(),
        _ => None,
    }
}

fn name(v: &Value) -> Option<&str> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_NAME_LEN)
}

/// The keys of `modules[]` of an analysis or inspect report (lenient: a module without a
/// usable field is indexed without that key).
pub fn extract(report: &Value) -> Vec<ModuleKeys> {
    let Some(mods) = report["modules"].as_array() else {
        return Vec::new();
    };
    mods.iter()
        .take(MAX_MODULES)
        .filter_map(|m| {
            let module = name(&m["name"])?;
            let ts = hex_or_number(&m["timestamp"]).and_then(|t| u32::try_from(t).ok());
            let size = hex_or_number(&m["size"]).and_then(|s| u32::try_from(s).ok());
            let image_key = match (ts, size) {
                (Some(t), Some(s)) if t != 0 && s != 0 => Some(image_key(module, t, s)),
                _ => None,
            };
            let pdb = &m["pdb"];
            let pdb_key = match (
                name(&pdb["name"]),
                pdb["guid"].as_str(),
                pdb["age"].as_u64(),
            ) {
                (Some(n), Some(g), Some(a)) => u32::try_from(a).ok().map(|a| pdb_key(n, g, a)),
                _ => None,
            };
            Some(ModuleKeys {
                module: module.to_lowercase(),
                image_key,
                pdb_key,
            })
        })
        .filter(|k| k.image_key.is_some() || k.pdb_key.is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The corpus store's directory names are the keys Microsoft's tools wrote: ours spell
    /// them the same (lower case).
    #[test]
    fn keys_are_the_store_paths() {
        assert_eq!(
            image_key("amdppm.sys", 0xC9C03000, 0x3b000),
            "amdppm.sys/c9c030003b000"
        );
        assert_eq!(
            pdb_key("AMDPPM.pdb", "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 1),
            "amdppm.pdb/1c19fddb27bb3399d9b45973efeafcf31"
        );
        let r = serde_json::json!({"modules": [
            {"name": "amdppm.sys", "size": 241664, "timestamp": "0xc9c03000", "pdb": null},
            {"name": "x.sys", "size": 4096, "timestamp": null,
             "pdb": {"name": "x.pdb", "guid": "00000000-0000-0000-0000-00000000000A", "age": 2}},
            {"name": "", "size": 1, "timestamp": "0x1"},
            {"name": "nokey.sys", "size": 4096, "timestamp": null, "pdb": null}
        ]});
        let k = extract(&r);
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].image_key.as_deref(), Some("amdppm.sys/c9c030003b000"));
        assert_eq!(
            k[1].pdb_key.as_deref(),
            Some("x.pdb/0000000000000000000000000000000a2")
        );
    }
}
