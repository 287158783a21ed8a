//! Microsoft PDB files, read with the `pdb` crate.
//!
//! Globals come from the public symbols (and S_GDATA32/S_LDATA32 global data where a public
//! symbol is absent), translated from section:offset to RVAs through the PDB's address map.
//! x86 public names carry C decoration (`_PsLoadedModuleList`, `_KeBugCheckEx@20`); they are
//! undecorated, as Volatility's pdbconv does, so profiles from PDB and ISF use the same names.
//! Layouts come from the type stream: every non-forward struct/union with its members and
//! bitfields.

use super::{Field, Profile, SymbolsError, TypeLayout};
use pdb::{FallibleIterator, SymbolData, TypeData, TypeIndex};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn read(path: &Path) -> Result<Profile, SymbolsError> {
    let shown = path.display().to_string();
    let bad = |e: pdb::Error| SymbolsError::Pdb {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let file = super::names::open_pdb(path).map_err(|e| match e {
        super::names::NamesError::Io { source, .. } => SymbolsError::Io {
            path: shown.clone(),
            source,
        },
        super::names::NamesError::Malformed { reason, .. } => SymbolsError::Pdb {
            path: shown.clone(),
            reason,
        },
    })?;
    let mut pdb = pdb::PDB::open(file).map_err(bad)?;

    let info = pdb.pdb_information().map_err(bad)?;
    let guid = info.guid.hyphenated().to_string().to_ascii_uppercase();
    let dbi = pdb.debug_information().map_err(bad)?;
    // The DBI age is the one an image's CodeView record carries (the PDB info age may be higher).
    let age = dbi.age().unwrap_or(info.age);
    let machine = dbi.machine_type().map_err(bad)?;
    let pdb_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| "unknown.pdb".to_string());

    let types = read_types(&mut pdb).map_err(bad)?;
    // Old PDBs (the XP kernel's) leave the DBI machine type 0: fall back to the size of
    // _LIST_ENTRY, which is two pointers.
    let pointer_size = match machine {
        pdb::MachineType::X86 => 4,
        pdb::MachineType::Amd64 | pdb::MachineType::Arm64 | pdb::MachineType::Ia64 => 8,
        _ => match types.get("_LIST_ENTRY").map(|t| t.size) {
            Some(8) => 4,
            Some(16) => 8,
            _ => {
                return Err(SymbolsError::Pdb {
                    path: shown.clone(),
                    reason: "cannot tell the pointer size (no machine type, no _LIST_ENTRY)".into(),
                })
            }
        },
    };
    let globals = read_globals(&mut pdb).map_err(bad)?;
    Ok(Profile {
        pdb_name,
        guid,
        age,
        pointer_size,
        globals,
        types,
        source: super::ProfileSource::Pdb(path.to_path_buf()),
    })
}

fn read_globals(pdb: &mut pdb::PDB<'_, std::fs::File>) -> pdb::Result<BTreeMap<String, u64>> {
    let address_map = pdb.address_map()?;
    let symbols = pdb.global_symbols()?;
    let mut publics = BTreeMap::new();
    let mut data = BTreeMap::new();
    let mut iter = symbols.iter();
    while let Some(symbol) = iter.next()? {
        // Unknown or malformed records are skipped: one odd record must not lose the profile.
        let Ok(parsed) = symbol.parse() else { continue };
        match parsed {
            SymbolData::Public(p) => {
                if let Some(rva) = p.offset.to_rva(&address_map) {
                    let name = undecorate(&p.name.to_string());
                    publics.entry(name).or_insert(u64::from(rva.0));
                }
            }
            SymbolData::Data(d) => {
                if let Some(rva) = d.offset.to_rva(&address_map) {
                    data.entry(undecorate(&d.name.to_string()))
                        .or_insert(u64::from(rva.0));
                }
            }
            _ => {}
        }
    }
    for (name, rva) in data {
        publics.entry(name).or_insert(rva);
    }
    Ok(publics)
}

/// Strips C/stdcall/fastcall decoration the way Volatility's pdbconv does (its `name_strip`),
/// so a profile from a PDB and one from the ISF pdbconv makes of it use the same names:
/// one leading `_`, `@` or DEL is dropped; then a name of exactly two `@`-separated parts
/// whose second part is a number loses that suffix (`_KeBugCheckEx@20` -> `KeBugCheckEx`),
/// a two-part name whose suffix is not a number is kept whole as written (`__real@4147...`),
/// and any other name keeps only the leading character dropped (`__imp_@KfLowerIrql@4` ->
/// `_imp_@KfLowerIrql@4`). C++ names (`?...`) are left as they are. The same rule on x86 and
/// x64, as pdbconv applies it.
fn undecorate(name: &str) -> String {
    let stripped = match name.chars().next() {
        Some('_' | '@' | '\u{7f}') => &name[1..],
        _ => name,
    };
    let parts: Vec<&str> = stripped.split('@').collect();
    if let [first, second] = parts[..] {
        let numeric = !second.is_empty() && second.bytes().all(|b| b.is_ascii_digit());
        return if numeric && !first.is_empty() && !first.starts_with('?') {
            first.to_string()
        } else {
            name.to_string()
        };
    }
    stripped.to_string()
}

/// Anonymous structures and unions all carry the same placeholder name in a PDB; they are
/// named after their type index, `__unnamed_<index hex>`, exactly as Volatility's pdbconv does,
/// so that each keeps its own layout and names agree between PDB and ISF profiles.
fn type_name(name: &str, index: TypeIndex) -> String {
    for tag in ["unnamed", "anonymous"] {
        if name == format!("<{tag}-tag>") || name == format!("__{tag}") {
            return format!("__{tag}_{:x}", index.0);
        }
    }
    name.to_string()
}

/// More types than any real PDB holds (a large kernel's has about 100 000): the type stream's
/// header says how many it has, and the `pdb` crate sizes its index by that number before
/// reading a record, so a lying header would ask for gigabytes.
const MAX_TYPES: usize = 1 << 24;
/// LF_ARGLIST: a function's argument types. Layouts never need them, and the `pdb` crate sizes
/// the list by its declared count before reading it (a lying count asks for gigabytes).
const LF_ARGLIST: u16 = 0x1201;

fn read_types(pdb: &mut pdb::PDB<'_, std::fs::File>) -> pdb::Result<BTreeMap<String, TypeLayout>> {
    let tpi = pdb.type_information()?;
    if tpi.len() > MAX_TYPES {
        return Err(pdb::Error::UnimplementedFeature(
            "a type stream claiming more types than any real PDB holds",
        ));
    }
    let mut finder = tpi.finder();
    let mut records: Vec<(String, u64, TypeIndex)> = Vec::new();
    let mut iter = tpi.iter();
    while let Some(item) = iter.next()? {
        finder.update(&iter);
        if item.len() < 2 || item.raw_kind() == LF_ARGLIST {
            continue;
        }
        let Ok(data) = item.parse() else { continue };
        match data {
            TypeData::Class(c) if !c.properties.forward_reference() => {
                if let Some(fields) = c.fields {
                    records.push((type_name(&c.name.to_string(), item.index()), c.size, fields));
                }
            }
            TypeData::Union(u) if !u.properties.forward_reference() => {
                records.push((
                    type_name(&u.name.to_string(), item.index()),
                    u.size,
                    u.fields,
                ));
            }
            _ => {}
        }
    }

    let mut types = BTreeMap::new();
    for (name, size, field_list) in records {
        if types.contains_key(&name) {
            continue;
        }
        let mut fields = BTreeMap::new();
        let mut next = Some(field_list);
        // Field lists chain through `continuation`; the bound stops a malformed loop.
        let mut hops = 0;
        while let Some(index) = next.take() {
            hops += 1;
            if hops > 1024 {
                break;
            }
            let Ok(TypeData::FieldList(list)) = finder.find(index).and_then(|t| t.parse()) else {
                break;
            };
            for member in list.fields {
                if let TypeData::Member(m) = member {
                    let (bit_position, bit_length) =
                        match finder.find(m.field_type).and_then(|t| t.parse()) {
                            Ok(TypeData::Bitfield(b)) => {
                                (Some(u32::from(b.position)), Some(u32::from(b.length)))
                            }
                            _ => (None, None),
                        };
                    fields
                        .entry(m.name.to_string().into_owned())
                        .or_insert(Field {
                            offset: m.offset,
                            bit_position,
                            bit_length,
                        });
                }
            }
            next = list.continuation;
        }
        types.insert(name, TypeLayout { size, fields });
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::super::Profile;
    use super::undecorate;

    fn xp_pdb() -> std::path::PathBuf {
        crate::test_corpus::corpus("pdb/ntkrnlpa.pdb")
    }

    #[test]
    fn undecorates_as_pdbconv_does() {
        // Expected values: what pdbconv wrote for these names of ntkrnlpa.pdb (symbols.* keys).
        assert_eq!(undecorate("_PsLoadedModuleList"), "PsLoadedModuleList");
        assert_eq!(undecorate("_KeBugCheckEx@20"), "KeBugCheckEx");
        assert_eq!(
            undecorate("@ExfInterlockedPushEntryList@8"),
            "ExfInterlockedPushEntryList"
        );
        assert_eq!(undecorate("?foo@@YAXXZ"), "?foo@@YAXXZ");
        assert_eq!(undecorate("__imp_@KfLowerIrql@4"), "_imp_@KfLowerIrql@4");
        assert_eq!(
            undecorate("__real@4147ffff80000000"),
            "__real@4147ffff80000000"
        );
        assert_eq!(
            undecorate("\u{7f}HAL_NULL_THUNK_DATA"),
            "HAL_NULL_THUNK_DATA"
        );
        assert_eq!(undecorate("KiWaitNever"), "KiWaitNever");
    }

    /// Expected values: the XP SP3 PAE kernel as Volatility's pdbconv reads the same PDB
    /// (`python -m volatility3.framework.symbols.windows.pdbconv -f ntkrnlpa.pdb`), and the
    /// corpus README (GUID, 8-byte _POOL_HEADER).
    #[test]
    fn xp_sp3_pae_layouts_match_pdbconv() {
        let p = Profile::from_pdb(xp_pdb()).unwrap();
        assert_eq!(p.pdb_name, "ntkrnlpa.pdb");
        assert_eq!(p.guid, "30B5FB31-AE7E-4ACA-ABA7-50AA241FF331");
        assert_eq!(p.pointer_size, 4);
        assert_eq!(p.type_size("_POOL_HEADER"), Some(8));
        let bs = p.field("_POOL_HEADER", "BlockSize").unwrap();
        assert_eq!(
            (bs.offset, bs.bit_position, bs.bit_length),
            (2, Some(0), Some(9))
        );
        assert_eq!(p.offset("_POOL_HEADER", "PoolTag"), Some(4));
        assert_eq!(p.offset("_LDR_DATA_TABLE_ENTRY", "DllBase"), Some(0x18));
        assert_eq!(p.offset("_LDR_DATA_TABLE_ENTRY", "SizeOfImage"), Some(0x20));
        assert_eq!(p.offset("_EPROCESS", "UniqueProcessId"), Some(0x84));
        assert_eq!(p.offset("_EPROCESS", "ActiveProcessLinks"), Some(0x88));
        assert_eq!(p.offset("_EPROCESS", "ImageFileName"), Some(0x174));
        assert_eq!(p.type_size("_EPROCESS"), Some(0x260));
        // RVAs as pdbconv writes them (symbols.*.address).
        assert_eq!(p.global("PsLoadedModuleList"), Some(511936));
        assert_eq!(p.global("PsActiveProcessHead"), Some(536920));
        assert_eq!(p.global("KdDebuggerDataBlock"), Some(453344));
        assert_eq!(p.global("NtBuildLab"), Some(3164));
        assert_eq!(p.global("PoolBigPageTable"), Some(546292));
        assert_eq!(p.offset("_KPROCESS", "DirectoryTableBase"), Some(24));
    }

    /// Set in the child process [`hostile_counts_stay_within_memory`] starts.
    const IN_CHILD: &str = "POOLTRIAGE_PDB_MEMORY_CHILD";

    /// A PDB (found by fuzzing) whose argument list declares about 3 billion entries, for which
    /// the `pdb` crate would reserve 12 GB before reading one. The reading runs in a child
    /// process limited to 1 GiB of address space, where such a reservation aborts it.
    #[test]
    fn hostile_counts_stay_within_memory() {
        let input = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/pdb/arglist_count_asks_for_gigabytes");
        if std::env::var_os(IN_CHILD).is_some() {
            let _ = Profile::from_pdb(&input);
            return;
        }
        let out = std::process::Command::new("prlimit")
            .arg(format!("--as={}", 1u64 << 30))
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "symbols::pdb_file::tests::hostile_counts_stay_within_memory",
            ])
            .env(IN_CHILD, "1")
            .output()
            .expect("prlimit (util-linux) runs the child");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
}
