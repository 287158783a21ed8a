//! `crash.unloaded_drivers` of the analyze report (docs/json.md "crash"): which drivers the
//! kernel remembers unloading, when, and where their images were. A driver that leaked pool and
//! then unloaded is only named here.

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
