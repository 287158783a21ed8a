//! The JSON of one symbol file's identity (docs/symbols.md, "Adding files to a store"): what
//! `symbols add --json` prints per file, what the service's sandboxed ingest hands back, and
//! what `POST /api/v1/symbols` answers.

use crate::report::Hex;
use crate::symbols::identify::Identified;
use serde::{Deserialize, Serialize};

/// A file's identity as read from its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolFileReport {
    /// The name it is stored under (`name/KEY/name`).
    pub name: String,
    /// "pdb" | "pe".
    pub kind: String,
    /// The key directory: GUID+age (`%X`) for a PDB, TimeDateStamp `%08X` + SizeOfImage `%x`
    /// for an image.
    pub key: String,
    /// For a PDB: what it holds.
    pub pdb: Option<PdbReport>,
    /// For an image: its header identity and the PDB its CodeView record names.
    pub pe: Option<PeReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdbReport {
    /// 32 upper-case hex digits (or the 8-digit NB10 signature).
    pub guid: String,
    pub age: u32,
    /// Procedures and public symbols that name addresses.
    pub functions: u64,
    /// Source line ranges; 0 for a public PDB (function names only, no lines).
    pub line_ranges: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeReport {
    pub timestamp: Hex,
    pub size_of_image: u64,
    pub machine: Hex,
    /// The PDB the image names (its CodeView record), null when it names none.
    pub codeview: Option<CodeViewReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeViewReport {
    pub name: String,
    /// As the record holds it: dashed GUID (or 8-digit NB10 signature).
    pub guid: String,
    pub age: u32,
    /// The PDB's key directory (`GUID` without dashes + age `%X`).
    pub key: String,
}

impl From<&Identified> for SymbolFileReport {
    fn from(id: &Identified) -> Self {
        let key = id.key();
        let (pdb, pe) = match id {
            Identified::Pdb { facts, .. } => (
                Some(PdbReport {
                    guid: facts.guid.clone(),
                    age: facts.age,
                    functions: facts.functions as u64,
                    line_ranges: facts.line_ranges as u64,
                }),
                None,
            ),
            Identified::Pe { facts, .. } => (
                None,
                Some(PeReport {
                    timestamp: Hex(u64::from(facts.timestamp)),
                    size_of_image: u64::from(facts.size_of_image),
                    machine: Hex(u64::from(facts.machine)),
                    codeview: facts.codeview.as_ref().map(|cv| CodeViewReport {
                        name: cv.pdb_name().to_string(),
                        guid: cv.guid.clone(),
                        age: cv.age,
                        key: cv.symstore_key(),
                    }),
                }),
            ),
        };
        SymbolFileReport {
            name: key.name().to_string(),
            kind: key.kind().to_string(),
            key: key.id(),
            pdb,
            pe,
        }
    }
}

impl SymbolFileReport {
    /// "1234 functions, line information" / "no line information (a public PDB)" / "names
    /// amdppm.pdb 1C19...1": what text output says after the key.
    pub fn describe(&self) -> String {
        match (&self.pdb, &self.pe) {
            (Some(p), _) if p.line_ranges > 0 => format!(
                "{} functions, line information ({} ranges)",
                p.functions, p.line_ranges
            ),
            (Some(p), _) => format!(
                "{} functions, no line information (a public PDB)",
                p.functions
            ),
            (
                _,
                Some(PeReport {
                    codeview: Some(cv), ..
                }),
            ) => format!("names {}/{}", cv.name, cv.key),
            _ => "names no PDB".into(),
        }
    }
}
