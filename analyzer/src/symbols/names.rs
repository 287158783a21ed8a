//! Function names from a PDB: `rva -> Function+0xoff`, as WinDbg prints a code address.
//!
//! Two sources, both read with the `pdb` crate:
//! - procedure symbols (S_GPROC32 / S_LPROC32) from the DBI module streams: they carry the
//!   function's length, so an address inside one is named by it for certain;
//! - public symbols (S_PUB32): no length. Microsoft's public PDBs (what a symbol server hands
//!   out for a vendor's driver or Windows itself) have their module streams stripped, so these
//!   are usually all there is, and the answer is the nearest preceding public, as WinDbg's.
//!
//! x86 public names carry C decoration (`_KeBugCheckEx@20`, `@KfAcquireSpinLock@4`); WinDbg
//! shows them undecorated (`nt!KeBugCheckEx`), so they are undecorated here too. C++ names
//! (`?...`) are left as the PDB has them.
//!
//! Memory is bounded: at most [`MAX_SYMBOLS`] entries and [`MAX_NAME_LEN`] bytes per name, kept
//! in one sorted table plus one string arena (a Windows kernel PDB is ~10^5 symbols, a few MiB).

use pdb::{FallibleIterator, SymbolData};
use std::fs::File;
use std::io::Seek;
use std::path::Path;
use thiserror::Error;

/// Upper bound on symbols kept from one PDB (a hostile or corrupt PDB can claim anything).
pub const MAX_SYMBOLS: usize = 4_000_000;
/// Longer names are cut (on a char boundary): C++ names can be kilobytes, nobody reads that far.
pub const MAX_NAME_LEN: usize = 1024;
/// Upper bound on the arena of names (MAX_SYMBOLS * average name length, generously).
const MAX_ARENA: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum NamesError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a readable PDB: {reason}")]
    Malformed { path: String, reason: String },
}

/// Opens a PDB for the `pdb` crate once its container passed [`super::msf_check`]: a file
/// whose numbers would make the crate allocate gigabytes or read pages twice is refused here,
/// with the reason, before the crate sees it.
pub fn open_pdb(path: &Path) -> Result<File, NamesError> {
    let shown = || path.display().to_string();
    let mut file = File::open(path).map_err(|source| NamesError::Io {
        path: shown(),
        source,
    })?;
    super::msf_check::check(&mut file).map_err(|e| NamesError::Malformed {
        path: shown(),
        reason: e.to_string(),
    })?;
    file.rewind().map_err(|source| NamesError::Io {
        path: shown(),
        source,
    })?;
    Ok(file)
}

/// What kind of record named an address. Order = preference at the same RVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymbolKind {
    /// S_GPROC32 / S_LPROC32 from a module stream: has a length.
    Procedure,
    /// S_PUB32 flagged as a function (or code).
    PublicFunction,
    /// Any other S_PUB32 (data, strings, import thunks).
    PublicData,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    rva: u32,
    /// Procedure length; 0 when unknown (publics).
    len: u32,
    name_start: u32,
    name_len: u32,
    kind: SymbolKind,
}

/// An answer of [`FunctionNames::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolHit<'a> {
    pub name: &'a str,
    /// Where the symbol starts.
    pub rva: u32,
    /// The looked-up RVA minus `rva`.
    pub offset: u32,
    /// The function's length, when the PDB says (procedures only).
    pub len: Option<u32>,
    pub kind: SymbolKind,
}

impl SymbolHit<'_> {
    /// `Function+0xoff`, or `Function` at offset 0 (WinDbg's form, without the module).
    pub fn display(&self) -> String {
        if self.offset == 0 {
            self.name.to_string()
        } else {
            format!("{}+{:#x}", self.name, self.offset)
        }
    }
}

/// How x86 C decoration is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecorate {
    /// From the PDB's machine type; when the PDB leaves it 0 (old PDBs such as XP's kernel),
    /// from the names themselves: x86 C publics almost all start with `_` or `@`.
    Auto,
    /// x86 rules: strip `_`/`@` and a trailing `@N`.
    X86,
    /// Names as stored.
    Never,
}

/// The sorted address table of one PDB.
#[derive(Debug, Default)]
pub struct FunctionNames {
    /// Sorted by (rva, kind).
    entries: Vec<Entry>,
    /// Indices into `entries` of procedures with a length, sorted by rva.
    procs: Vec<u32>,
    arena: String,
    /// Whether x86 undecoration was applied.
    pub undecorated: bool,
    /// What was skipped while reading (unreadable module streams, caps hit), one line each.
    pub warnings: Vec<String>,
}

impl FunctionNames {
    /// Reads the procedures and publics of the PDB at `path`.
    pub fn from_pdb(
        path: impl AsRef<Path>,
        undecorate: Undecorate,
    ) -> Result<FunctionNames, NamesError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file = open_pdb(path)?;
        // The pdb crate parses untrusted bytes; a panic in it must become "malformed", not a
        // crash of the whole inspect run.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(file, undecorate)));
        match result {
            Ok(Ok(names)) => Ok(names),
            Ok(Err(e)) => Err(NamesError::Malformed {
                path: shown,
                reason: e.to_string(),
            }),
            Err(_) => Err(NamesError::Malformed {
                path: shown,
                reason: "the PDB reader gave up (internal panic)".into(),
            }),
        }
    }

    /// Number of symbols in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn name_of(&self, e: &Entry) -> &str {
        let start = e.name_start as usize;
        self.arena
            .get(start..start + e.name_len as usize)
            .unwrap_or("")
    }

    /// The symbol that names `rva`: a procedure whose range contains it if there is one, else
    /// the nearest symbol at or before it (procedures before publics at the same address).
    pub fn lookup(&self, rva: u32) -> Option<SymbolHit<'_>> {
        // Last procedure starting at or before rva; procedures do not overlap in practice.
        let pi = self
            .procs
            .partition_point(|&i| self.entries.get(i as usize).is_some_and(|e| e.rva <= rva));
        if let Some(e) = pi
            .checked_sub(1)
            .and_then(|p| self.procs.get(p))
            .and_then(|&i| self.entries.get(i as usize))
        {
            if u64::from(rva) < u64::from(e.rva) + u64::from(e.len) {
                return Some(self.hit(e, rva));
            }
        }
        // Nearest preceding entry; among several at that RVA the first sorts best.
        let n = self.entries.partition_point(|e| e.rva <= rva);
        let last = self.entries.get(n.checked_sub(1)?)?;
        let first_at = self.entries.partition_point(|e| e.rva < last.rva);
        let e = self.entries.get(first_at)?;
        Some(self.hit(e, rva))
    }

    /// `Function+0xoff` for `rva`, or `None` when no symbol precedes it.
    pub fn name_at(&self, rva: u32) -> Option<String> {
        self.lookup(rva).map(|h| h.display())
    }

    /// The RVA of the symbol named exactly `name` (after undecoration), the best-ranked one.
    pub fn rva_of(&self, name: &str) -> Option<u32> {
        self.entries
            .iter()
            .filter(|e| self.name_of(e) == name)
            .min_by_key(|e| e.kind)
            .map(|e| e.rva)
    }

    fn hit(&self, e: &Entry, rva: u32) -> SymbolHit<'_> {
        SymbolHit {
            name: self.name_of(e),
            rva: e.rva,
            offset: rva.wrapping_sub(e.rva),
            len: (e.kind == SymbolKind::Procedure && e.len > 0).then_some(e.len),
            kind: e.kind,
        }
    }
}

struct Raw {
    rva: u32,
    len: u32,
    name: String,
    kind: SymbolKind,
}

fn read(file: File, undecorate: Undecorate) -> pdb::Result<FunctionNames> {
    let mut pdb = pdb::PDB::open(file)?;
    let mut warnings = Vec::new();
    let dbi = pdb.debug_information()?;
    let machine = dbi.machine_type().unwrap_or(pdb::MachineType::Unknown);
    let address_map = pdb.address_map()?;
    let mut raw: Vec<Raw> = Vec::new();
    // Total name bytes so far: with MAX_SYMBOLS it bounds the memory a hostile PDB can cost.
    let mut name_bytes = 0usize;
    let mut capped = false;

    // Publics (and nothing else) from the global symbol stream.
    let globals = pdb.global_symbols()?;
    let mut iter = globals.iter();
    loop {
        let symbol = match iter.next() {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => {
                warnings.push(format!("public symbols: stopped at a bad record: {e}"));
                break;
            }
        };
        if raw.len() >= MAX_SYMBOLS || name_bytes >= MAX_ARENA {
            capped = true;
            break;
        }
        if let Ok(SymbolData::Public(p)) = symbol.parse() {
            if let Some(rva) = p.offset.to_rva(&address_map) {
                let kind = if p.function || p.code {
                    SymbolKind::PublicFunction
                } else {
                    SymbolKind::PublicData
                };
                name_bytes += p.name.as_bytes().len().min(MAX_NAME_LEN);
                raw.push(Raw {
                    rva: rva.0,
                    len: 0,
                    name: cut(&p.name.to_string()),
                    kind,
                });
            }
        }
    }

    // Procedures from every module stream (absent in stripped public PDBs: that is normal).
    let mut modules = dbi.modules()?;
    let mut unreadable = 0usize;
    'modules: loop {
        let module = match modules.next() {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                warnings.push(format!("module list: stopped at a bad entry: {e}"));
                break;
            }
        };
        let info = match pdb.module_info(&module) {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(_) => {
                unreadable += 1;
                continue;
            }
        };
        let Ok(mut symbols) = info.symbols() else {
            unreadable += 1;
            continue;
        };
        loop {
            let symbol = match symbols.next() {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(_) => {
                    unreadable += 1;
                    break;
                }
            };
            if raw.len() >= MAX_SYMBOLS || name_bytes >= MAX_ARENA {
                capped = true;
                break 'modules;
            }
            if let Ok(SymbolData::Procedure(p)) = symbol.parse() {
                if let Some(rva) = p.offset.to_rva(&address_map) {
                    name_bytes += p.name.as_bytes().len().min(MAX_NAME_LEN);
                    raw.push(Raw {
                        rva: rva.0,
                        len: p.len,
                        name: cut(&p.name.to_string()),
                        kind: SymbolKind::Procedure,
                    });
                }
            }
        }
    }
    if unreadable > 0 {
        warnings.push(format!(
            "{unreadable} module symbol streams could not be read completely"
        ));
    }
    if capped {
        warnings.push(format!(
            "symbol table cut at {} entries ({MAX_SYMBOLS} or {MAX_ARENA} name bytes at most)",
            raw.len()
        ));
    }

    let x86 = match undecorate {
        Undecorate::X86 => true,
        Undecorate::Never => false,
        Undecorate::Auto => match machine {
            pdb::MachineType::X86 => true,
            pdb::MachineType::Unknown => looks_x86_decorated(&raw),
            _ => false,
        },
    };
    Ok(build(raw, x86, warnings))
}

/// x86 C publics are all decorated (`_name`, `_name@N`, `@name@N`); on x64 most are plain.
fn looks_x86_decorated(raw: &[Raw]) -> bool {
    let c_names = raw
        .iter()
        .filter(|r| r.kind != SymbolKind::Procedure && !r.name.starts_with('?'));
    let (mut total, mut decorated) = (0usize, 0usize);
    for r in c_names {
        total += 1;
        if r.name.starts_with('_') || r.name.starts_with('@') {
            decorated += 1;
        }
    }
    total > 0 && decorated * 10 >= total * 9
}

fn build(mut raw: Vec<Raw>, x86: bool, mut warnings: Vec<String>) -> FunctionNames {
    raw.sort_by(|a, b| (a.rva, a.kind, &a.name).cmp(&(b.rva, b.kind, &b.name)));
    raw.dedup_by(|b, a| a.rva == b.rva && a.kind == b.kind && a.name == b.name);
    let mut arena = String::new();
    let mut entries = Vec::with_capacity(raw.len());
    for r in raw {
        // Procedure names in module streams are already undecorated; publics are not.
        let name = if x86 && r.kind != SymbolKind::Procedure {
            undecorate_x86(&r.name)
        } else {
            &r.name
        };
        if arena.len() + name.len() > MAX_ARENA {
            warnings.push("symbol names cut: name arena full".into());
            break;
        }
        let name_start = arena.len() as u32;
        arena.push_str(name);
        entries.push(Entry {
            rva: r.rva,
            len: r.len,
            name_start,
            name_len: name.len() as u32,
            kind: r.kind,
        });
    }
    let procs = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == SymbolKind::Procedure && e.len > 0)
        .map(|(i, _)| i as u32)
        .collect();
    FunctionNames {
        entries,
        procs,
        arena,
        undecorated: x86,
        warnings,
    }
}

fn cut(name: &str) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name.to_string();
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// DbgHelp's undecoration of x86 C names, as WinDbg shows them: `_name` -> `name`,
/// `_name@20` / `@name@8` (stdcall / fastcall) -> `name`. C++ names (`?...`) and anything
/// that does not match those shapes are left alone.
pub fn undecorate_x86(name: &str) -> &str {
    if name.starts_with('?') {
        return name;
    }
    let (body, fastcall) = match (name.strip_prefix('_'), name.strip_prefix('@')) {
        (Some(b), _) => (b, false),
        (None, Some(b)) => (b, true),
        _ => return name,
    };
    if body.is_empty() {
        return name;
    }
    match body.rfind('@') {
        Some(at)
            if at > 0
                && at + 1 < body.len()
                && body[at + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &body[..at]
        }
        // `@name` without the byte count is not fastcall decoration.
        _ if fastcall => name,
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(u32, u32, &str, SymbolKind)]) -> FunctionNames {
        let raw = entries
            .iter()
            .map(|&(rva, len, name, kind)| Raw {
                rva,
                len,
                name: name.to_string(),
                kind,
            })
            .collect();
        build(raw, false, Vec::new())
    }

    #[test]
    fn undecoration_follows_dbghelp_for_c_names() {
        assert_eq!(undecorate_x86("_KeBugCheckEx@20"), "KeBugCheckEx");
        assert_eq!(undecorate_x86("_PoolTrackTable"), "PoolTrackTable");
        assert_eq!(undecorate_x86("@KfAcquireSpinLock@4"), "KfAcquireSpinLock");
        assert_eq!(undecorate_x86("__SEH_prolog"), "_SEH_prolog");
        assert_eq!(undecorate_x86("?Foo@@YAXXZ"), "?Foo@@YAXXZ");
        assert_eq!(undecorate_x86("@odd"), "@odd");
        assert_eq!(undecorate_x86("_"), "_");
        assert_eq!(undecorate_x86("plain"), "plain");
    }

    #[test]
    fn nearest_preceding_and_procedure_ranges() {
        let t = table(&[
            (0x1000, 0, "A", SymbolKind::PublicFunction),
            (0x1100, 0x80, "B", SymbolKind::Procedure),
            (0x1100, 0, "B_public", SymbolKind::PublicFunction),
            (0x1120, 0, "label_inside_b", SymbolKind::PublicData),
            (0x1300, 0, "C", SymbolKind::PublicFunction),
        ]);
        assert_eq!(t.lookup(0xfff), None);
        assert_eq!(t.name_at(0x1000).as_deref(), Some("A"));
        assert_eq!(t.name_at(0x10ff).as_deref(), Some("A+0xff"));
        // Inside B's range: B, even past a public in between.
        assert_eq!(t.name_at(0x1100).as_deref(), Some("B"));
        assert_eq!(t.name_at(0x1130).as_deref(), Some("B+0x30"));
        let h = t.lookup(0x1130).unwrap();
        assert_eq!((h.kind, h.len), (SymbolKind::Procedure, Some(0x80)));
        // Past B's end: the nearest preceding symbol.
        assert_eq!(t.name_at(0x1180).as_deref(), Some("label_inside_b+0x60"));
        assert_eq!(t.name_at(0xffff_ffff).as_deref(), Some("C+0xffffecff"));
        assert_eq!(t.rva_of("C"), Some(0x1300));
        assert_eq!(t.rva_of("nope"), None);
    }

    #[test]
    fn empty_table_answers_nothing() {
        let t = table(&[]);
        assert!(t.is_empty());
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(u32::MAX), None);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 0x9e37_79b9u32;
        for (i, len) in [0usize, 10, 4096, 70_000].into_iter().enumerate() {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if i % 2 == 1 && bytes.len() > 32 {
                bytes[..32].copy_from_slice(b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0");
            }
            let p = dir.path().join(format!("g{i}.pdb"));
            std::fs::write(&p, &bytes).unwrap();
            assert!(matches!(
                FunctionNames::from_pdb(&p, Undecorate::Auto),
                Err(NamesError::Malformed { .. })
            ));
        }
        assert!(matches!(
            FunctionNames::from_pdb(dir.path().join("missing.pdb"), Undecorate::Auto),
            Err(NamesError::Io { .. })
        ));
    }
}
