//! The `crash` member of the analyze report as far as the unloaded-driver list goes
//! (docs/json.md "crash"): which drivers the kernel remembers unloading, when, and where their
//! images were. A driver that leaked pool and then unloaded is only named here.

use super::hex::Hex;
use crate::kernel::unloaded::UnloadedDriver;
use serde::{Deserialize, Serialize};

/// One MmUnloadedDrivers entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnloadedDriverReport {
    pub name: String,
    pub start: Hex,
    pub end: Hex,
    /// "YYYY-MM-DDTHH:MM:SSZ"; null when the FILETIME is out of range.
    pub unloaded_at: Option<String>,
}

impl From<&UnloadedDriver> for UnloadedDriverReport {
    fn from(d: &UnloadedDriver) -> Self {
        UnloadedDriverReport {
            name: d.name.clone(),
            start: Hex(d.start),
            end: Hex(d.end),
            unloaded_at: super::time::filetime_to_rfc3339(d.unloaded_at),
        }
    }
}

/// What the report says about the crash itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CrashReport {
    /// Oldest unload first; empty when the list is empty or could not be read (then a
    /// warning says why).
    #[serde(default)]
    pub unloaded_drivers: Vec<UnloadedDriverReport>,
}
