//! The stages of one analysis, in the order they run. `pooltriage analyze --progress` announces
//! each on stderr (`progress: <name>`) and the service shows the latest as the job's stage, so
//! a long analysis says where it is. The names are part of the API (docs/api.md): few, stable,
//! named after what the analyzer is doing, not after functions.
//!
//! The library announces every stage it runs ([`crate::analysis::run`]: opening the dump to
//! attributing); the caller announces writing the report. The library never prints.

/// One stage of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Opening and validating the dump file (headers, physical memory map).
    OpeningDump,
    /// The kernel: its base, the module list, the debugger data block.
    ReadingKernel,
    /// The kernel's profile: its ISF, or its PDB through the symbol path (may download).
    LoadingSymbols,
    /// The pool engine: tag tables, every block (classic, big, segment heap), quota, and the
    /// scan of the drivers' code for tags.
    ReadingPool,
    /// Joining tags, blocks and call sites per driver (with the drivers' PDBs for function
    /// names, which may download), and the verdict.
    Attributing,
    /// Serialising the report.
    WritingReport,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 6] = [
        Stage::OpeningDump,
        Stage::ReadingKernel,
        Stage::LoadingSymbols,
        Stage::ReadingPool,
        Stage::Attributing,
        Stage::WritingReport,
    ];

    /// The stable name (lower case and `-`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::OpeningDump => "opening-dump",
            Stage::ReadingKernel => "reading-kernel",
            Stage::LoadingSymbols => "loading-symbols",
            Stage::ReadingPool => "reading-pool",
            Stage::Attributing => "attributing",
            Stage::WritingReport => "writing-report",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_lower_case_and_in_order() {
        let names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        let mut sorted = Stage::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Stage::ALL, "ALL is in pipeline order");
        let set: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(set.len(), names.len());
        for n in names {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{n}"
            );
        }
    }
}
