//! FILE.truth.json: what the forge planted, in the schema agreed in /work/notes/api.md
//! (consumed by the end-to-end tests). Addresses and 64-bit values are "0x..." lower-case hex
//! strings; counts and sizes are numbers; PDB GUIDs upper-case and dashed.

use serde::Serialize;

/// Formats a value as a lower-case "0x..." hex string.
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

#[derive(Debug, Clone, Serialize)]
pub struct PdbTruth {
    pub name: String,
    pub guid: String,
    pub age: u32,
}

/// A loaded module as planted (in-memory values, not serialised directly).
#[derive(Debug, Clone)]
pub struct ModuleTruth {
    pub name: String,
    pub path: String,
    pub base: u64,
    pub size: u32,
    pub timestamp: u32,
    pub checksum: u32,
    pub pdb: Option<PdbTruth>,
}

#[derive(Debug, Clone)]
pub struct ProcessTruth {
    pub pid: u64,
    pub ppid: u64,
    pub name: String,
    pub eprocess: u64,
    pub create_time: u64,
    pub threads: u32,
    pub directory_table_base: u64,
}

#[derive(Debug, Serialize)]
pub struct Truth {
    pub schema: u32,
    pub profile: String,
    pub format: String,
    pub scenario: String,
    pub arch: String,
    pub pae: bool,
    pub build: u32,
    pub dump_type: u32,
    pub processors: u32,
    pub file_size: u64,
    pub physical_pages_stored: u64,
    pub directory_table_base: String,
    pub system_time: String,
    /// Additive: the header's SystemUpTime (100 ns since boot).
    pub system_up_time: String,
    pub bugcheck: BugcheckJson,
    pub kdbg: String,
    pub ps_loaded_module_list: String,
    pub ps_active_process_head: String,
    pub kernel: KernelJson,
    pub modules: Vec<ModuleJson>,
    pub processes: Vec<ProcessJson>,
    /// Additive: every driver's `_DRIVER_OBJECT` and device objects ([`crate::devices`]).
    pub driver_objects: serde_json::Value,
    pub mapped: Vec<RangeJson>,
    pub pool: Option<serde_json::Value>,
    /// Additive, crash scenarios only: the stack a walker must find and the unloaded drivers
    /// ([`crate::crash::CrashTruth`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<crate::crash::CrashTruth>,
}

#[derive(Debug, Serialize)]
pub struct BugcheckJson {
    pub code: String,
    pub params: [String; 4],
}

#[derive(Debug, Serialize)]
pub struct KernelJson {
    pub base: String,
    pub size: u32,
    pub pdb: Option<PdbTruth>,
}

#[derive(Debug, Serialize)]
pub struct ModuleJson {
    pub name: String,
    pub path: String,
    pub base: String,
    pub size: u32,
    pub timestamp: String,
    pub checksum: String,
    pub pdb: Option<PdbTruth>,
}

impl From<&ModuleTruth> for ModuleJson {
    fn from(m: &ModuleTruth) -> Self {
        ModuleJson {
            name: m.name.clone(),
            path: m.path.clone(),
            base: hex(m.base),
            size: m.size,
            timestamp: hex(u64::from(m.timestamp)),
            checksum: hex(u64::from(m.checksum)),
            pdb: m.pdb.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProcessJson {
    pub pid: u64,
    pub ppid: u64,
    pub name: String,
    pub eprocess: String,
    /// Additions beyond api.md (additive): CreateTime FILETIME, ActiveThreads, the process CR3.
    pub create_time: String,
    pub threads: u32,
    pub directory_table_base: String,
}

impl From<&ProcessTruth> for ProcessJson {
    fn from(p: &ProcessTruth) -> Self {
        ProcessJson {
            pid: p.pid,
            ppid: p.ppid,
            name: p.name.clone(),
            eprocess: hex(p.eprocess),
            create_time: hex(p.create_time),
            threads: p.threads,
            directory_table_base: hex(p.directory_table_base),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RangeJson {
    pub va: String,
    pub size: u64,
}
