//! Source lines from a PDB: `rva -> (file, line)`, as WinDbg's `ln` and `llvm-pdbutil dump -l`
//! read them.
//!
//! A private PDB (what a vendor's linker writes) keeps, per object file, a C13 line program:
//! blocks of code with the source line each instruction range comes from, and the file's name
//! in the PDB's string table. Microsoft's public PDBs carry none (their module streams are
//! stripped): [`SourceLines::is_empty`] then says so, which the reports state instead of a
//! line. Ranges the compiler marks as having no line (line 0, or Microsoft's 0xF00F00 and
//! 0xFEEFEE markers) answer no line rather than the line before them.
//!
//! Memory is bounded: at most [`MAX_LINES`] ranges and [`MAX_FILES`] file names of at most
//! [`MAX_FILE_NAME_LEN`] bytes, sorted once into a table.

use super::names::{open_pdb, NamesError};
use pdb::FallibleIterator;
use std::collections::HashMap;
use std::path::Path;

/// Most line ranges kept from one PDB.
pub const MAX_LINES: usize = 8_000_000;
/// Most distinct source files kept from one PDB.
pub const MAX_FILES: usize = 1_000_000;
/// Longer file names are cut (on a char boundary).
pub const MAX_FILE_NAME_LEN: usize = 1024;
/// Line numbers from here up are Microsoft's "no source line" markers (0xF00F00, 0xFEEFEE).
const HIDDEN_LINE: u32 = 0xF0_0F00;

/// Where an instruction comes from in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceLine {
    /// The file as the compiler recorded it (often an absolute build path).
    pub file: String,
    pub line: u32,
}

impl SourceLine {
    /// `request.c:118`: the file's last path component (either separator) and the line, the
    /// short form pages and text output print after a function name.
    pub fn short(&self) -> String {
        let name = self.file.rsplit(['\\', '/']).next().unwrap_or(&self.file);
        format!("{name}:{}", self.line)
    }
}

#[derive(Debug, Clone, Copy)]
struct Range {
    rva: u32,
    /// 0 when the PDB gives no length (then it reaches the next range).
    len: u32,
    file: u32,
    line: u32,
}

/// The sorted line table of one PDB.
#[derive(Debug, Default)]
pub struct SourceLines {
    ranges: Vec<Range>,
    files: Vec<String>,
    /// What was skipped while reading (unreadable line programs, caps hit), one line each.
    pub warnings: Vec<String>,
}

impl SourceLines {
    /// Reads every module's line program of the PDB at `path` (after the container check).
    pub fn from_pdb(path: impl AsRef<Path>) -> Result<SourceLines, NamesError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file = open_pdb(path)?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(file)));
        match result {
            Ok(Ok(lines)) => Ok(lines),
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

    /// No line information at all (a public PDB).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of line ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The source line of the instruction at `rva`: the range that starts at or before it and
    /// still covers it.
    pub fn lookup(&self, rva: u32) -> Option<SourceLine> {
        let n = self.ranges.partition_point(|r| r.rva <= rva);
        let r = self.ranges.get(n.checked_sub(1)?)?;
        let next = self.ranges.get(n).map(|x| x.rva);
        let end = match r.len {
            0 => next.unwrap_or(u32::MAX),
            len => r.rva.saturating_add(len),
        };
        if rva >= end || r.line == 0 || r.line >= HIDDEN_LINE {
            return None;
        }
        Some(SourceLine {
            file: self.files.get(r.file as usize)?.clone(),
            line: r.line,
        })
    }
}

/// File names met so far, by their offset in the PDB's string table.
struct Files<'t, 's> {
    strings: Option<&'t pdb::StringTable<'s>>,
    by_ref: HashMap<u32, u32>,
    names: Vec<String>,
}

impl Files<'_, '_> {
    /// The index of the file a line record names, `None` past [`MAX_FILES`] or when the
    /// record's file cannot be read.
    fn index(&mut self, program: &pdb::LineProgram<'_>, file: pdb::FileIndex) -> Option<u32> {
        let info = program.get_file_info(file).ok()?;
        if let Some(&i) = self.by_ref.get(&info.name.0) {
            return Some(i);
        }
        if self.names.len() >= MAX_FILES {
            return None;
        }
        let name = self
            .strings
            .and_then(|s| info.name.to_string_lossy(s).ok())
            .map(|n| cut(&n))
            .unwrap_or_else(|| format!("<file {:#x}>", info.name.0));
        let i = self.names.len() as u32;
        self.names.push(name);
        self.by_ref.insert(info.name.0, i);
        Some(i)
    }
}

fn read(file: std::fs::File) -> pdb::Result<SourceLines> {
    let mut pdb = pdb::PDB::open(file)?;
    let dbi = pdb.debug_information()?;
    let address_map = pdb.address_map()?;
    // No name table: no file names (public PDBs often lack it; then there are no lines either).
    let strings = pdb.string_table().ok();
    let mut files = Files {
        strings: strings.as_ref(),
        by_ref: HashMap::new(),
        names: Vec::new(),
    };
    let mut ranges = Vec::new();
    let mut warnings = Vec::new();
    let mut unreadable = 0usize;
    let mut modules = dbi.modules()?;
    while let Some(module) = next_or_warn(&mut modules, &mut warnings) {
        let Ok(Some(info)) = pdb.module_info(&module) else {
            continue;
        };
        // A module without lines (assembler objects, import libraries) is not an error.
        let Ok(program) = info.line_program() else {
            continue;
        };
        if !module_lines(&program, &address_map, &mut files, &mut ranges) {
            unreadable += 1;
        }
        if ranges.len() >= MAX_LINES {
            warnings.push(format!("line table cut at {MAX_LINES} ranges"));
            break;
        }
    }
    if unreadable > 0 {
        warnings.push(format!(
            "{unreadable} line programs could not be read completely"
        ));
    }
    ranges.sort_by_key(|r: &Range| (r.rva, r.len));
    ranges.dedup_by_key(|r| r.rva);
    Ok(SourceLines {
        ranges,
        files: files.names,
        warnings,
    })
}

/// Adds one module's line ranges; false when its program stopped at a bad record.
fn module_lines(
    program: &pdb::LineProgram<'_>,
    address_map: &pdb::AddressMap<'_>,
    files: &mut Files<'_, '_>,
    ranges: &mut Vec<Range>,
) -> bool {
    let mut lines = program.lines();
    loop {
        let l = match lines.next() {
            Ok(Some(l)) => l,
            Ok(None) => return true,
            Err(_) => return false,
        };
        if ranges.len() >= MAX_LINES {
            return true;
        }
        // An empty range covers no instruction (a line the compiler folded into the next).
        if l.length == Some(0) {
            continue;
        }
        let (Some(rva), Some(file)) = (
            l.offset.to_rva(address_map),
            files.index(program, l.file_index),
        ) else {
            continue;
        };
        ranges.push(Range {
            rva: rva.0,
            len: l.length.unwrap_or(0),
            file,
            line: l.line_start,
        });
    }
}

fn next_or_warn<'a>(
    modules: &mut pdb::ModuleIter<'a>,
    warnings: &mut Vec<String>,
) -> Option<pdb::Module<'a>> {
    match modules.next() {
        Ok(m) => m,
        Err(e) => {
            warnings.push(format!("module list: stopped at a bad entry: {e}"));
            None
        }
    }
}

fn cut(name: &str) -> String {
    if name.len() <= MAX_FILE_NAME_LEN {
        return name.to_string();
    }
    let mut end = MAX_FILE_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ranges: &[(u32, u32, u32)], files: &[&str]) -> SourceLines {
        SourceLines {
            ranges: ranges
                .iter()
                .map(|&(rva, len, line)| Range {
                    rva,
                    len,
                    file: 0,
                    line,
                })
                .collect(),
            files: files.iter().map(|s| s.to_string()).collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn ranges_cover_their_length_and_hidden_lines_answer_none() {
        let t = table(
            &[
                (0x1000, 4, 10),
                (0x1004, 0, 11),
                (0x1010, 2, 0),
                (0x1020, 8, 0xFEEFEE),
            ],
            &[r"d:\src\request.c"],
        );
        assert_eq!(t.lookup(0xfff), None);
        let l = t.lookup(0x1003).unwrap();
        assert_eq!((l.line, l.short()), (10, "request.c:10".into()));
        // No length: reaches the next range.
        assert_eq!(t.lookup(0x100f).unwrap().line, 11);
        assert_eq!(t.lookup(0x1010), None, "line 0: compiler-generated");
        assert_eq!(t.lookup(0x1013), None, "past a range with a length");
        assert_eq!(t.lookup(0x1021), None, "0xFEEFEE marker");
        assert_eq!(t.lookup(0x1028), None);
    }

    #[test]
    fn short_names_take_the_last_component() {
        let l = SourceLine {
            file: "/build/drv/sites.c".into(),
            line: 7,
        };
        assert_eq!(l.short(), "sites.c:7");
        let l = SourceLine {
            file: "plain.c".into(),
            line: 1,
        };
        assert_eq!(l.short(), "plain.c:1");
    }

    /// The corpus amdppm.pdb is Microsoft's public PDB: no line program at all (llvm-pdbutil
    /// `dump -l` lists its modules without a line).
    #[test]
    fn the_public_corpus_pdb_has_no_lines() {
        let p = crate::test_corpus::corpus(
            "symstore/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb",
        );
        let t = SourceLines::from_pdb(p).expect("readable");
        assert!(t.is_empty(), "{} ranges", t.len());
    }
}
