//! x86 frame layouts from a module's PDB: how a function built without a frame pointer (FPO)
//! lays out its frame, so that the stack walk finds its return address.
//!
//! A PDB carries two kinds of records (cvinfo.h, the PE/COFF specification):
//! - FPO_DATA, the `dbgFPO` debug stream of older toolchains: the sizes of the locals, the
//!   saved registers and the parameters, whether the function uses EBP as a general register
//!   (it then saved the caller's EBP with the other registers), and a frame type;
//! - FRAMEDATA, the `dbgFRAMEDATA` stream of newer ones (MSVC, and LLVM from the
//!   DEBUG_S_FRAMEDATA subsections lld-link gathers): the same sizes and a *program string* in
//!   the PDB's string table (`/names`) that computes the caller's registers, evaluated by
//!   [`crate::stack::program`]. LLVM writes one record per prolog instruction, each covering the
//!   function from there to its end.
//!
//! The `pdb` crate reads both streams; this module turns them into one table keyed by image
//! RVA that the x86 walk looks addresses up in ([`crate::stack::fpo`]).

use pdb::FallibleIterator;
use std::path::Path;
use thiserror::Error;

/// Most records read from one PDB (the XP SP3 kernel's has a few thousand; a file claiming
/// more than this is not a module's).
const MAX_RECORDS: usize = 2_000_000;
/// Longest program string accepted (real ones are under 200 bytes).
pub const MAX_PROGRAM: usize = 512;
/// Records looked at below an address for one that covers it (records of one function nest or
/// follow each other; a longer search would only find a stale one).
const LOOKBACK: usize = 16;

/// How the caller's registers are found from a frame the record covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameRule {
    /// An FPO_DATA record: the return address lies above the locals and saved registers;
    /// `uses_base_pointer`: the function uses EBP as a general register, the caller's EBP is
    /// among the saved registers.
    Fpo { uses_base_pointer: bool },
    /// A FRAMEDATA record's program string.
    Program(String),
    /// A FRAMEDATA record whose program string could not be read: why.
    BadProgram(String),
    /// An FPO_DATA record of a frame with EBP set up (a standard frame, or a kernel trap or
    /// TSS frame whose EBP points at the trap frame's debug links): the EBP chain applies.
    FramePointer,
}

/// One record, by image RVA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    pub rva: u32,
    pub size: u32,
    /// Bytes of locals (FPO_DATA counts dwords; converted).
    pub locals: u32,
    /// Bytes of parameters the caller pushed.
    pub params: u32,
    /// Bytes of registers the function saved.
    pub saved_regs: u32,
    /// The record starts the function (FRAMEDATA's fIsFunctionStart; FPO_DATA records always
    /// start their function).
    pub function_start: bool,
    pub rule: FrameRule,
}

impl FrameRecord {
    pub fn contains(&self, rva: u32) -> bool {
        rva >= self.rva && rva - self.rva < self.size
    }
}

/// A module's frame records sorted by RVA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameTable {
    records: Vec<FrameRecord>,
}

#[derive(Debug, Error)]
pub enum FrameDataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: frame data unreadable: {reason}")]
    Malformed { path: String, reason: String },
}

impl FrameTable {
    /// The table of `records` in any order; a record of size 0 covers nothing and is dropped.
    pub fn new(mut records: Vec<FrameRecord>) -> FrameTable {
        records.retain(|r| r.size > 0);
        records.sort_by_key(|r| r.rva);
        FrameTable { records }
    }

    /// Reads both frame-data streams of the PDB at `path`. A PDB without them gives an empty
    /// table; a PDB the `pdb` crate cannot read (or panics on) gives an error.
    pub fn from_pdb(path: &Path) -> Result<FrameTable, FrameDataError> {
        let shown = || path.display().to_string();
        let file = super::names::open_pdb(path).map_err(|e| match e {
            super::names::NamesError::Io { source, .. } => FrameDataError::Io {
                path: shown(),
                source,
            },
            super::names::NamesError::Malformed { reason, .. } => FrameDataError::Malformed {
                path: shown(),
                reason,
            },
        })?;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(file)));
        let reason = match outcome {
            Ok(Ok(records)) => return Ok(FrameTable::new(records)),
            Ok(Err(reason)) => reason,
            Err(_) => "the PDB reader gave up (internal panic)".to_string(),
        };
        Err(FrameDataError::Malformed {
            path: shown(),
            reason,
        })
    }

    /// The record covering `rva`: the nearest one starting at or below it that reaches it.
    pub fn lookup(&self, rva: u32) -> Option<&FrameRecord> {
        let end = self.records.partition_point(|r| r.rva <= rva);
        self.records[..end]
            .iter()
            .rev()
            .take(LOOKBACK)
            .find(|r| r.contains(rva))
    }

    pub fn records(&self) -> &[FrameRecord] {
        &self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

fn read(file: std::fs::File) -> Result<Vec<FrameRecord>, String> {
    let text = |e: pdb::Error| e.to_string();
    let mut pdb = pdb::PDB::open(file).map_err(text)?;
    let table = pdb.frame_table().map_err(text)?;
    if table.is_empty() {
        return Ok(Vec::new());
    }
    let map = pdb.address_map().map_err(text)?;
    // Only FRAMEDATA records need the string table; a PDB with FPO_DATA alone may lack it.
    let strings = pdb.string_table().map_err(text);
    let mut records = Vec::new();
    let mut iter = table.iter();
    while let Some(fd) = iter.next().map_err(text)? {
        if records.len() >= MAX_RECORDS {
            return Err(format!("more than {MAX_RECORDS} frame records"));
        }
        // A record of code the image no longer has (dropped by OMAP) covers nothing.
        let Some(rva) = fd.code_start.to_rva(&map) else {
            continue;
        };
        let rule = match fd.ty {
            pdb::FrameType::FrameData => program(fd.program, &strings),
            pdb::FrameType::FPO => FrameRule::Fpo {
                uses_base_pointer: fd.uses_base_pointer,
            },
            _ => FrameRule::FramePointer,
        };
        records.push(FrameRecord {
            rva: rva.0,
            size: fd.code_size,
            locals: fd.locals_size,
            params: fd.params_size,
            saved_regs: u32::from(fd.saved_regs_size),
            function_start: fd.is_function_start || fd.ty != pdb::FrameType::FrameData,
            rule,
        });
    }
    Ok(records)
}

/// A FRAMEDATA record's program string, checked: present, printable ASCII, not too long.
fn program(
    at: Option<pdb::StringRef>,
    strings: &Result<pdb::StringTable<'_>, String>,
) -> FrameRule {
    let Some(at) = at else {
        return FrameRule::BadProgram("the record names no program string".into());
    };
    let strings = match strings {
        Ok(s) => s,
        Err(e) => return FrameRule::BadProgram(format!("no string table: {e}")),
    };
    match strings.get(at) {
        Err(e) => FrameRule::BadProgram(format!("program string at {}: {e}", at.0)),
        Ok(raw) => {
            let bytes = raw.as_bytes();
            if bytes.len() > MAX_PROGRAM {
                FrameRule::BadProgram(format!(
                    "program string of {} bytes (more than {MAX_PROGRAM})",
                    bytes.len()
                ))
            } else if !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                FrameRule::BadProgram("program string is not printable ASCII".into())
            } else {
                FrameRule::Program(String::from_utf8_lossy(bytes).into_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rva: u32, size: u32, locals: u32) -> FrameRecord {
        FrameRecord {
            rva,
            size,
            locals,
            params: 0,
            saved_regs: 0,
            function_start: false,
            rule: FrameRule::Fpo {
                uses_base_pointer: false,
            },
        }
    }

    #[test]
    fn lookup_takes_the_nearest_record_that_covers() {
        // One function at 0x1000..0x1040 described from three prolog points, as LLVM writes
        // them; another at 0x2000 ending at 0x2010; nothing at 0x1040..0x2000.
        let t = FrameTable::new(vec![
            rec(0x2000, 0x10, 9),
            rec(0x1003, 0x3d, 2),
            rec(0x1000, 0x40, 1),
            rec(0x1001, 0x3f, 0),
            rec(0x3000, 0, 7),
        ]);
        assert_eq!(t.records().len(), 4, "the empty record is dropped");
        assert_eq!(t.lookup(0x1000).map(|r| r.locals), Some(1));
        assert_eq!(t.lookup(0x1002).map(|r| r.locals), Some(0));
        assert_eq!(t.lookup(0x103f).map(|r| r.locals), Some(2));
        assert_eq!(t.lookup(0x1040), None);
        assert_eq!(t.lookup(0x200f).map(|r| r.locals), Some(9));
        assert_eq!(t.lookup(0x2010), None);
        assert_eq!(t.lookup(0xfff), None);
        assert_eq!(t.lookup(u32::MAX), None);
    }

    #[test]
    fn a_file_that_is_no_pdb_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pdb");
        std::fs::write(&p, b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0 garbage").unwrap();
        assert!(matches!(
            FrameTable::from_pdb(&p),
            Err(FrameDataError::Malformed { .. })
        ));
        assert!(matches!(
            FrameTable::from_pdb(&dir.path().join("absent.pdb")),
            Err(FrameDataError::Io { .. })
        ));
    }

    /// The XP SP3 kernel's public PDB (Microsoft's toolchain) carries both kinds:
    /// `llvm-pdbutil dump -fpo ntkrnlpa.pdb` lists 15560 FRAMEDATA records and 1961 FPO_DATA
    /// records, 460 of them at an address no FRAMEDATA record starts at (the others give way
    /// to it); tests/fpo_real.rs compares every record.
    #[test]
    fn xp_kernel_pdb_has_frame_records() {
        let t = FrameTable::from_pdb(&crate::test_corpus::corpus("pdb/ntkrnlpa.pdb")).unwrap();
        let programs = t
            .records()
            .iter()
            .filter(|r| matches!(r.rule, FrameRule::Program(_)))
            .count();
        assert_eq!((programs, t.records().len() - programs), (15560, 460));
        assert!(t.records().windows(2).all(|w| w[0].rva <= w[1].rva));
    }
}
