//! Finding the profile of a dump's kernel, in the order a support engineer expects:
//!
//! 1. a Volatility-style local symbols folder holding the kernel's ISF:
//!    `<dir>/<pdb>/<GUID>-<age>.json.xz` or `<dir>/windows/<pdb>/<GUID>-<age>.json.xz`
//!    (GUID upper-case without dashes, age in decimal, as Volatility names them; `.json` too);
//! 2. the kernel's PDB through the symbol store ([`SymbolStore`], `_NT_SYMBOL_PATH` rules);
//! 3. the built-in fallback ([`super::fallback`]) for the dump's build, with globals from the
//!    debugger data block.
//!
//! Every step tried is recorded in [`FoundProfile::tried`] so a report can say why the
//! fallback was used. The PDB name comes from the dump (whoever wrote it): it is checked with
//! the store's hostile-name rules before it becomes a path component.

use super::store::{check_name, SymbolKey, SymbolStore};
use super::{fallback, Profile};
use crate::kernel::kdbg::{Kdbg, KdbgKeys};
use crate::memory::VirtualMemory;
use std::path::{Path, PathBuf};

/// The kernel's identity from its CodeView record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPdb {
    /// The PDB file name (a full build path is reduced to its file name).
    pub name: String,
    /// Dashed or undashed GUID.
    pub guid: String,
    pub age: u32,
}

/// What is known about the dump's kernel.
pub struct ProfileRequest<'a> {
    pub pdb: Option<KernelPdb>,
    /// NT build number (dump header MinorVersion).
    pub build: u32,
    pub pointer_size: u8,
    pub kdbg: Option<&'a Kdbg>,
    /// Volatility-style symbol folders, tried in order.
    pub isf_dirs: &'a [PathBuf],
    pub store: Option<&'a SymbolStore>,
}

/// One step tried and what it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// "isf", "pdb" or "fallback".
    pub step: &'static str,
    /// What was looked at (a path, a symbol key).
    pub what: String,
    /// "found", "not found", "malformed: ...", "mismatch: ...", or a store status.
    pub outcome: String,
}

#[derive(Debug, Clone)]
pub struct FoundProfile {
    pub profile: Profile,
    pub tried: Vec<Attempt>,
}

#[derive(Debug, thiserror::Error)]
#[error("no kernel profile: {}", describe(tried))]
pub struct NoProfile {
    pub tried: Vec<Attempt>,
}

fn describe(tried: &[Attempt]) -> String {
    tried
        .iter()
        .map(|a| format!("{} {}: {}", a.step, a.what, a.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Upper-case GUID without dashes or braces.
fn bare_guid(guid: &str) -> String {
    guid.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The PDB file name of a CodeView path (`d:\build\ntkrnlmp.pdb` -> `ntkrnlmp.pdb`).
fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// Why the keys of an encoded debugger data block cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdbgKeyError {
    #[error("the kernel profile has no {0}")]
    NoSymbol(&'static str),
    #[error("{name}: {source}")]
    Unreadable {
        name: &'static str,
        source: crate::memory::MemoryError,
    },
}

/// The keys that decode a Windows 8+ encoded debugger data block: the values of nt!KiWaitNever
/// and nt!KiWaitAlways and the address of nt!KdpDataBlockEncoded, at the RVAs `profile` gives
/// from the kernel base. Only a profile read from the kernel's own symbols (PDB or ISF) knows
/// those RVAs; the fallback does not. `Err` names what is missing.
pub fn kdbg_keys(
    mem: &dyn VirtualMemory,
    kernel_base: u64,
    profile: &Profile,
) -> Result<KdbgKeys, KdbgKeyError> {
    let rva = |name: &'static str| profile.global(name).ok_or(KdbgKeyError::NoSymbol(name));
    let at = |name: &'static str| rva(name).map(|r| kernel_base.wrapping_add(r));
    let read = |name: &'static str| {
        let va = at(name)?;
        mem.read_u64(va)
            .map_err(|source| KdbgKeyError::Unreadable { name, source })
    };
    Ok(KdbgKeys {
        ki_wait_never: read("KiWaitNever")?,
        ki_wait_always: read("KiWaitAlways")?,
        kdp_data_block_encoded: at("KdpDataBlockEncoded")?,
    })
}

/// Candidate ISF paths for a kernel in one symbols folder.
pub fn isf_candidates(dir: &Path, pdb: &KernelPdb) -> Vec<PathBuf> {
    let name = file_name(&pdb.name);
    if check_name(name).is_err() {
        return Vec::new();
    }
    let guid = bare_guid(&pdb.guid);
    let mut names = vec![name.to_string()];
    if name.to_ascii_lowercase() != name {
        names.push(name.to_ascii_lowercase());
    }
    let mut out = Vec::new();
    for sub in [None, Some("windows")] {
        for n in &names {
            for ext in ["json.xz", "json"] {
                let base = match sub {
                    Some(s) => dir.join(s),
                    None => dir.to_path_buf(),
                };
                out.push(base.join(n).join(format!("{guid}-{}.{ext}", pdb.age)));
            }
        }
    }
    out
}

/// Finds the kernel's profile (see the module doc for the order).
pub fn find(req: &ProfileRequest<'_>) -> Result<FoundProfile, NoProfile> {
    let mut tried = Vec::new();
    if let Some(pdb) = &req.pdb {
        let name = file_name(&pdb.name).to_string();
        let want_guid = bare_guid(&pdb.guid);
        if let Err(e) = check_name(&name) {
            tried.push(Attempt {
                step: "isf",
                what: format!("{:?}", pdb.name),
                outcome: e.to_string(),
            });
        } else {
            for dir in req.isf_dirs {
                for path in isf_candidates(dir, pdb) {
                    if !path.is_file() {
                        continue;
                    }
                    let what = path.display().to_string();
                    match Profile::from_isf(&path) {
                        Ok(p) if bare_guid(&p.guid) == want_guid && p.age == pdb.age => {
                            tried.push(Attempt {
                                step: "isf",
                                what,
                                outcome: "found".into(),
                            });
                            return Ok(FoundProfile { profile: p, tried });
                        }
                        Ok(p) => tried.push(Attempt {
                            step: "isf",
                            what,
                            outcome: format!("mismatch: the file is for {}-{}", p.guid, p.age),
                        }),
                        Err(e) => tried.push(Attempt {
                            step: "isf",
                            what,
                            outcome: format!("malformed: {e}"),
                        }),
                    }
                }
            }
            if !tried.iter().any(|a| a.step == "isf") {
                let dirs: Vec<String> = req
                    .isf_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                tried.push(Attempt {
                    step: "isf",
                    what: format!("{name}/{want_guid}-{} in [{}]", pdb.age, dirs.join(", ")),
                    outcome: "not found".into(),
                });
            }
            if let Some(store) = req.store {
                let key = SymbolKey::pdb(name.clone(), &pdb.guid, pdb.age);
                let what = key.index_path().unwrap_or_else(|_| key.id());
                match store.fetch(&key) {
                    Ok(fetched) => match Profile::from_pdb(&fetched.path) {
                        Ok(mut p) => {
                            // The cache names the file after the key; keep the CodeView name.
                            p.pdb_name = name.clone();
                            tried.push(Attempt {
                                step: "pdb",
                                what,
                                outcome: format!("found ({})", fetched.source),
                            });
                            return Ok(FoundProfile { profile: p, tried });
                        }
                        Err(e) => tried.push(Attempt {
                            step: "pdb",
                            what,
                            outcome: format!("malformed: {e}"),
                        }),
                    },
                    Err(e) => tried.push(Attempt {
                        step: "pdb",
                        what,
                        outcome: e.to_string(),
                    }),
                }
            }
        }
    }
    match fallback::profile(req.build, req.pointer_size, req.kdbg) {
        Some(mut p) => {
            if let Some(pdb) = &req.pdb {
                p.pdb_name = file_name(&pdb.name).to_string();
                p.guid = pdb.guid.clone();
                p.age = pdb.age;
            }
            tried.push(Attempt {
                step: "fallback",
                what: format!("build {}", req.build),
                outcome: p.source.describe(),
            });
            Ok(FoundProfile { profile: p, tried })
        }
        None => {
            tried.push(Attempt {
                step: "fallback",
                what: format!("build {}", req.build),
                outcome: format!(
                    "no built-in layouts for {}-bit kernels",
                    u32::from(req.pointer_size) * 8
                ),
            });
            Err(NoProfile { tried })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::store::{StoreConfig, SymbolPath};
    use crate::symbols::ProfileSource;

    use crate::test_corpus::corpus;

    fn kernel_19041() -> KernelPdb {
        KernelPdb {
            name: "ntkrnlmp.pdb".into(),
            guid: "5278AFF8-6C34-1677-D7D7-835C85B7B844".into(),
            age: 1,
        }
    }

    fn req<'a>(
        pdb: Option<KernelPdb>,
        dirs: &'a [PathBuf],
        store: Option<&'a SymbolStore>,
    ) -> ProfileRequest<'a> {
        ProfileRequest {
            pdb,
            build: 19041,
            pointer_size: 8,
            kdbg: None,
            isf_dirs: dirs,
            store,
        }
    }

    /// The corpus `isf/` folder is laid out as Volatility's `symbols/windows/`.
    #[test]
    fn finds_the_isf_in_a_volatility_folder() {
        let dirs = [corpus("isf")];
        let found = find(&req(Some(kernel_19041()), &dirs, None)).unwrap();
        assert_eq!(found.profile.source.kind(), "isf");
        assert_eq!(found.profile.guid, "5278AFF8-6C34-1677-D7D7-835C85B7B844");
        assert!(found.profile.assumed().is_none());
        // The same folder one level up, as `<dir>/windows/...`.
        let tmp = tempfile::tempdir().unwrap();
        let win = tmp.path().join("windows").join("ntkrnlmp.pdb");
        std::fs::create_dir_all(&win).unwrap();
        let src = corpus("isf/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz");
        std::fs::copy(src, win.join("5278AFF86C341677D7D7835C85B7B844-1.json.xz")).unwrap();
        let dirs = [tmp.path().to_path_buf()];
        // Upper-case PDB name and a full build path in the CodeView record still match.
        let pdb = KernelPdb {
            name: "d:\\os\\obj\\NTKRNLMP.PDB".into(),
            ..kernel_19041()
        };
        let found = find(&req(Some(pdb), &dirs, None)).unwrap();
        assert_eq!(found.profile.source.kind(), "isf");
    }

    #[test]
    fn a_file_for_another_kernel_is_a_mismatch_not_a_match() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ntkrnlmp.pdb");
        std::fs::create_dir_all(&dir).unwrap();
        // The 7601 ISF, misnamed as the 19041 kernel's.
        let src = corpus("isf/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-1.json.xz");
        std::fs::copy(src, dir.join("5278AFF86C341677D7D7835C85B7B844-1.json.xz")).unwrap();
        let dirs = [tmp.path().to_path_buf()];
        let found = find(&req(Some(kernel_19041()), &dirs, None)).unwrap();
        assert_eq!(found.profile.source.kind(), "fallback");
        assert!(
            found.tried[0].outcome.starts_with("mismatch"),
            "{:?}",
            found.tried
        );
    }

    /// With neither ISF nor PDB: the fallback, saying so, keeping the CodeView identity.
    #[test]
    fn falls_back_by_build() {
        let found = find(&req(Some(kernel_19041()), &[], None)).unwrap();
        let p = &found.profile;
        assert_eq!(
            p.source,
            ProfileSource::Fallback {
                build: 19041,
                table_build: 19041,
                kdbg: false
            }
        );
        assert!(p.assumed().is_some());
        assert_eq!(p.guid, "5278AFF8-6C34-1677-D7D7-835C85B7B844");
        assert_eq!(p.type_size("_POOL_TRACKER_TABLE"), Some(0x38));
        assert_eq!(found.tried.last().unwrap().step, "fallback");
        let none = find(&ProfileRequest {
            pointer_size: 2,
            ..req(None, &[], None)
        });
        assert!(none.is_err());
    }

    /// Names from the dump never lead outside the symbols folder: a path keeps only its file
    /// name (as WinDbg does), and names the store refuses give no candidate at all.
    #[test]
    fn hostile_pdb_names_stay_inside_the_folder() {
        let dir = corpus("isf");
        for name in [
            "../../etc/passwd",
            "..\\..\\x.pdb",
            "..",
            "a\0b.pdb",
            "c:evil.pdb",
            "CON.pdb",
            "/",
        ] {
            let pdb = KernelPdb {
                name: name.into(),
                ..kernel_19041()
            };
            for c in isf_candidates(&dir, &pdb) {
                let rel = c
                    .strip_prefix(&dir)
                    .unwrap_or_else(|_| panic!("{name}: {}", c.display()));
                assert!(
                    rel.components()
                        .all(|p| matches!(p, std::path::Component::Normal(_))),
                    "{name}: {}",
                    c.display()
                );
            }
            let found = find(&req(Some(pdb), std::slice::from_ref(&dir), None)).unwrap();
            assert_eq!(found.profile.source.kind(), "fallback", "{name}");
        }
        for name in ["..", "a\0b.pdb", "c:evil.pdb", "CON.pdb", "/"] {
            let pdb = KernelPdb {
                name: name.into(),
                ..kernel_19041()
            };
            assert!(isf_candidates(&dir, &pdb).is_empty(), "{name}");
        }
    }

    /// The XP kernel's PDB from a local symbol store (the plain `name/GUIDAGE/name` layout).
    #[test]
    fn finds_the_pdb_through_the_symbol_store() {
        let tmp = tempfile::tempdir().unwrap();
        let key_dir = tmp
            .path()
            .join("store/ntkrnlpa.pdb/30B5FB31AE7E4ACAABA750AA241FF3311");
        std::fs::create_dir_all(&key_dir).unwrap();
        std::fs::copy(corpus("pdb/ntkrnlpa.pdb"), key_dir.join("ntkrnlpa.pdb")).unwrap();
        let path = SymbolPath::parse(&tmp.path().join("store").display().to_string()).unwrap();
        let store = SymbolStore::new(path, StoreConfig::with_data_dir(tmp.path().join("data")));
        let pdb = KernelPdb {
            name: "ntkrnlpa.pdb".into(),
            guid: "30B5FB31-AE7E-4ACA-ABA7-50AA241FF331".into(),
            age: 1,
        };
        let r = ProfileRequest {
            pdb: Some(pdb),
            build: 2600,
            pointer_size: 4,
            kdbg: None,
            isf_dirs: &[],
            store: Some(&store),
        };
        let found = find(&r).unwrap();
        assert_eq!(found.profile.source.kind(), "pdb");
        assert_eq!(found.profile.type_size("_POOL_HEADER"), Some(8));
        assert!(found
            .tried
            .iter()
            .any(|a| a.step == "isf" && a.outcome == "not found"));
    }
}
