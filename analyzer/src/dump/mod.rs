//! Dump files: the crash-dump header, and the map from physical page numbers to file offsets
//! for every DumpType (run tables, bitmaps, RDMP, triage).
//!
//! The file is memory-mapped; pages are served as slices of the map, never copied.

use serde::Serialize;

/// The processor architecture the dump was written on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86,
    X64,
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// The bugcheck recorded in the header: code and its four parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BugCheck {
    pub code: u32,
    pub params: [u64; 4],
}

/// The fields of the dump header that the analyzer uses, normalised over x86 and x64 layouts.
/// A field the writer left as the "PAGE" filler is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpHeader {
    pub arch: Arch,
    /// x86 only: PAE paging (`PaeEnabled`); always false elsewhere.
    pub pae: bool,
    pub major_version: u32,
    /// `MinorVersion`: the build number (e.g. 19041).
    pub build: u32,
    pub directory_table_base: u64,
    pub pfn_database: Option<u64>,
    pub ps_loaded_module_list: Option<u64>,
    pub ps_active_process_head: Option<u64>,
    pub machine_image_type: u32,
    pub processors: u32,
    pub bugcheck: BugCheck,
    /// Virtual address of the debugger data block (KDDEBUGGER_DATA64).
    pub kd_debugger_data_block: Option<u64>,
    /// Raw DumpType (1, 2, 4, 5, 6, 8, 9, 0xA).
    pub dump_type: u32,
    pub required_dump_space: Option<u64>,
    /// SystemTime as a Windows FILETIME (100 ns since 1601-01-01 UTC).
    pub system_time: Option<u64>,
}
