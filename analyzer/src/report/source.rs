//! Source positions in reports: where a named instruction comes from in its driver's source,
//! from the PDB's line information (docs/json.md, `source`).

use crate::symbols::lines::SourceLine;
use serde::{Deserialize, Serialize};

/// A file and line, as the compiler recorded them in the PDB (the file is often an absolute
/// build path on the vendor's machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub file: String,
    pub line: u32,
}

impl From<SourceLine> for SourceRef {
    fn from(l: SourceLine) -> Self {
        SourceRef {
            file: l.file,
            line: l.line,
        }
    }
}

impl SourceRef {
    /// `request.c:118`: the file's last path component and the line.
    pub fn short(&self) -> String {
        let name = self.file.rsplit(['\\', '/']).next().unwrap_or(&self.file);
        format!("{name}:{}", self.line)
    }
}
