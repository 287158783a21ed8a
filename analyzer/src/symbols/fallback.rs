//! The profile used when a dump comes with no symbols at all: structure layouts from a built-in
//! per-build table, global addresses from the debugger data block.
//!
//! WHY a table: a support engineer without network access or a symbol cache still needs the pool
//! picture, and the layouts of the structures we read change only between releases. The table
//! ([`super::fallback_table`]) holds the layouts of the builds we know from real symbols (XP SP3
//! PAE 2600, 7601, 17763, 19041, 20348), copied from those symbols by
//! `analyzer/tools/gen_fallback_table.py`; a test re-reads the real files and fails on any
//! difference. Global RVAs differ between every revision of a build, so none are in the table:
//! they come from the debugger data block of the dump itself (which holds the ADDRESS of most
//! globals the pool engine needs), and the globals the block lacks (PoolBigPageTable,
//! ExPoolTagTables, ExPoolState, ...) are simply absent from the profile.
//!
//! Every profile made here has [`ProfileSource::Fallback`], so every output can say which
//! values were assumed ([`Profile::assumed`]).

use super::{Field, Profile, ProfileSource, TypeLayout};
use crate::kernel::kdbg::Kdbg;
use std::collections::BTreeMap;

/// The layouts of one build, as the generated table stores them.
pub struct BuildLayouts {
    pub build: u32,
    pub pointer_size: u8,
    /// `GUID-age` of the kernel PDB the values were copied from.
    pub symbols: &'static str,
    pub types: &'static [TypeRow],
}

/// One structure: fields are `(name, offset, bit_position, bit_length)`, bit_length 0 for a
/// field that is not a bitfield.
pub struct TypeRow {
    pub name: &'static str,
    pub size: u64,
    pub fields: &'static [(&'static str, u64, u32, u32)],
}

/// Debugger-data-block fields that are values rather than addresses of kernel variables.
const NOT_ADDRESSES: &[&str] = &["KernBase", "PteBase"];
/// A global's RVA lies inside the kernel image; anything further is not one of its variables.
const MAX_KERNEL_RVA: u64 = 0x400_0000;

/// `(build, pointer size)` of every build in the table.
pub fn known_builds() -> impl Iterator<Item = (u32, u8)> {
    super::fallback_table::TABLE
        .iter()
        .map(|b| (b.build, b.pointer_size))
}

/// The table entry for `build`: the exact build, else the nearest earlier build of the same
/// pointer size (layouts of a later revision resemble its predecessor more than its successor),
/// else the earliest build of that pointer size.
pub fn table_for(build: u32, pointer_size: u8) -> Option<&'static BuildLayouts> {
    let same_arch = || {
        super::fallback_table::TABLE
            .iter()
            .filter(move |b| b.pointer_size == pointer_size)
    };
    same_arch()
        .filter(|b| b.build <= build)
        .max_by_key(|b| b.build)
        .or_else(|| same_arch().min_by_key(|b| b.build))
}

/// The layouts of a table entry as a profile's type map.
pub fn layouts(entry: &BuildLayouts) -> BTreeMap<String, TypeLayout> {
    entry
        .types
        .iter()
        .map(|t| {
            let fields = t
                .fields
                .iter()
                .map(|&(name, offset, pos, len)| {
                    let (bit_position, bit_length) = if len == 0 {
                        (None, None)
                    } else {
                        (Some(pos), Some(len))
                    };
                    (
                        name.to_string(),
                        Field {
                            offset,
                            bit_position,
                            bit_length,
                        },
                    )
                })
                .collect();
            (
                t.name.to_string(),
                TypeLayout {
                    size: t.size,
                    fields,
                },
            )
        })
        .collect()
}

/// Globals from a debugger data block: every field holding the address of a kernel variable,
/// as an RVA from KernBase. Empty when the block has no KernBase.
pub fn globals_from_kdbg(kdbg: &Kdbg) -> BTreeMap<String, u64> {
    let Some(base) = kdbg.kern_base() else {
        return BTreeMap::new();
    };
    kdbg.fields
        .iter()
        .filter(|(name, _)| !NOT_ADDRESSES.contains(name))
        .filter_map(|&(name, va)| {
            let rva = va.checked_sub(base)?;
            (va != 0 && rva < MAX_KERNEL_RVA).then(|| (name.to_string(), rva))
        })
        .collect()
}

/// A profile without symbols: layouts from the table entry nearest `build`, globals from
/// `kdbg` if given. `None` when the table has nothing for this pointer size.
pub fn profile(build: u32, pointer_size: u8, kdbg: Option<&Kdbg>) -> Option<Profile> {
    let entry = table_for(build, pointer_size)?;
    let globals = kdbg.map(globals_from_kdbg).unwrap_or_default();
    Some(Profile {
        pdb_name: String::new(),
        guid: String::new(),
        age: 0,
        pointer_size,
        globals,
        types: layouts(entry),
        source: ProfileSource::Fallback {
            build,
            table_build: entry.build,
            kdbg: kdbg.is_some(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus(rel: &str) -> PathBuf {
        crate::test_corpus::corpus(rel)
    }

    /// The table must equal the kernels' own symbols, read by our ISF and PDB readers from the
    /// corpus files (the XP entry from ntkrnlpa.pdb itself, not from the ISF it was generated
    /// from). Any drift (a hand edit, a regenerated table from other files) fails here.
    #[test]
    fn table_matches_the_real_symbol_files() {
        let real: Vec<(u32, Profile)> = vec![
            (2600, Profile::from_pdb(corpus("pdb/ntkrnlpa.pdb")).unwrap()),
            (
                7601,
                Profile::from_isf(corpus(
                    "isf/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-1.json.xz",
                ))
                .unwrap(),
            ),
            (
                17763,
                Profile::from_isf(corpus(
                    "isf/ntkrnlmp.pdb/8B11040A5928757B11390AC78F6B6925-1.json.xz",
                ))
                .unwrap(),
            ),
            (
                19041,
                Profile::from_isf(corpus(
                    "isf/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz",
                ))
                .unwrap(),
            ),
            (
                20348,
                Profile::from_isf(corpus(
                    "isf/ntkrnlmp.pdb/C2EADB24A615E9472CE47C8ADD31F130-1.json.xz",
                ))
                .unwrap(),
            ),
        ];
        assert_eq!(known_builds().count(), real.len());
        for (build, p) in &real {
            let entry = table_for(*build, p.pointer_size).unwrap();
            assert_eq!(entry.build, *build);
            assert_eq!(entry.pointer_size, p.pointer_size);
            let key = format!("{}-{}", p.guid.replace('-', ""), p.age);
            assert_eq!(entry.symbols, key, "build {build}");
            for (name, t) in layouts(entry) {
                let r = p
                    .types
                    .get(&name)
                    .unwrap_or_else(|| panic!("{build}: {name} not in the real symbols"));
                assert_eq!(t.size, r.size, "{build} {name} size");
                for (f, v) in &t.fields {
                    assert_eq!(Some(v), r.fields.get(f), "{build} {name}.{f}");
                }
            }
        }
    }

    /// The builds the pool engine depends on carry the structures it reads.
    #[test]
    fn table_has_the_pool_structures() {
        for (build, ptr) in known_builds() {
            let t = layouts(table_for(build, ptr).unwrap());
            for ty in [
                "_POOL_HEADER",
                "_POOL_TRACKER_TABLE",
                "_POOL_TRACKER_BIG_PAGES",
                "_LDR_DATA_TABLE_ENTRY",
                "_EPROCESS",
                "_KPROCESS",
            ] {
                assert!(t.contains_key(ty), "{build}: {ty}");
            }
            if build >= 18362 {
                for ty in [
                    "_EX_POOL_HEAP_MANAGER_STATE",
                    "_SEGMENT_HEAP",
                    "_HEAP_PAGE_SEGMENT",
                    "_HEAP_LFH_SUBSEGMENT",
                    "_HEAP_VS_SUBSEGMENT",
                    "_HEAP_VS_CHUNK_HEADER",
                ] {
                    assert!(t.contains_key(ty), "{build}: {ty}");
                }
            }
        }
        // Big page entry sizes from windows-internals.md: XP 12, 7601/19041 0x18, 20348 0x20.
        let big = |b, p| layouts(table_for(b, p).unwrap())["_POOL_TRACKER_BIG_PAGES"].size;
        assert_eq!(big(2600, 4), 12);
        assert_eq!(big(7601, 8), 0x18);
        assert_eq!(big(19041, 8), 0x18);
        assert_eq!(big(20348, 8), 0x20);
    }

    #[test]
    fn nearest_build_and_kdbg_globals() {
        assert_eq!(table_for(19044, 8).unwrap().build, 19041);
        assert_eq!(table_for(22621, 8).unwrap().build, 20348);
        assert_eq!(table_for(3790, 4).unwrap().build, 2600);
        assert_eq!(table_for(6002, 8).unwrap().build, 7601);
        assert!(table_for(19041, 2).is_none());

        let kdbg = Kdbg {
            va: 0xffff_f800_1000_0000 + 0x400,
            size: 0x368,
            was_encoded: false,
            fields: vec![
                ("KernBase", 0xffff_f800_1000_0000),
                ("PsLoadedModuleList", 0xffff_f800_1000_0000 + 0xc2a2b0),
                ("PoolTrackTable", 0xffff_f800_1000_0000 + 0xcfc000),
                ("MmPagedPoolStart", 0),
                ("PteBase", 0xffff_f680_0000_0000),
            ],
        };
        let p = profile(19041, 8, Some(&kdbg)).unwrap();
        assert_eq!(p.global("PsLoadedModuleList"), Some(0xc2a2b0));
        assert_eq!(p.global("PoolTrackTable"), Some(0xcfc000));
        assert_eq!(p.global("MmPagedPoolStart"), None);
        assert_eq!(p.global("PteBase"), None);
        assert_eq!(p.global("KernBase"), None);
        assert!(p.assumed().unwrap().contains("19041"));
        assert_eq!(p.type_size("_POOL_HEADER"), Some(16));
    }
}
