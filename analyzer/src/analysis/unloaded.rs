//! The report's `crash.unloaded_drivers`, and for Driver Verifier's 0xC4/0x62 ("a driver
//! unloaded without freeing its pool allocations") the verdict's naming of that driver: it is
//! no longer loaded, so the module list cannot name it; the bugcheck's parameter 2 (its name)
//! and the unloaded list (its range and when it went) do.

use super::Input;
use crate::kernel::unloaded::{read_unloaded, UnloadedDriver};
use crate::memory::VirtualMemory;
use crate::report::analysis::AnalysisReport;
use crate::report::unloaded::UnloadedDriverReport;

const DRIVER_VERIFIER_DETECTED_VIOLATION: u64 = 0xc4;
const UNLOADED_WITH_POOL: u64 = 0x62;
/// Longest driver name read from the bugcheck's parameter, in bytes.
const MAX_NAME_BYTES: u16 = 512;

/// Reads the unloaded list into `report.crash` (a warning when it cannot be read) and, for a
/// 0xC4/0x62 crash, names the driver in the verdict. Runs after the crash member and the
/// verdict are made.
pub fn fill(report: &mut AnalysisReport, input: &Input) {
    let (Some(profile), Some(base)) = (input.profile.as_ref(), input.kernel.kernel_base) else {
        return;
    };
    let Ok(mem) = input.dump.kernel_memory() else {
        return;
    };
    let list = match read_unloaded(mem.as_ref(), base, profile) {
        Ok(l) => l,
        Err(e) => {
            report.warnings.push(format!("unloaded drivers: {e}"));
            return;
        }
    };
    report.warnings.extend(list.warnings.iter().cloned());
    name_leaker(report, mem.as_ref(), &list.drivers);
    // The list joins the crash member; without one (no starting context) only the verdict
    // above names a driver from it.
    if let Some(crash) = report.crash.as_mut() {
        crash.unloaded_drivers = list
            .drivers
            .iter()
            .map(UnloadedDriverReport::from)
            .collect();
    }
}

/// For 0xC4/0x62: the driver parameter 2 names (else the last one unloaded), put first in the
/// verdict's sentence and reasons.
fn name_leaker(report: &mut AnalysisReport, mem: &dyn VirtualMemory, list: &[UnloadedDriver]) {
    let p = &report.bugcheck.params;
    let code = report.bugcheck.code.0 & 0x0fff_ffff;
    if code != DRIVER_VERIFIER_DETECTED_VIOLATION || p[0].0 != UNLOADED_WITH_POOL {
        return;
    }
    let named = unicode_string(mem, p[1].0);
    let entry = match &named {
        Some(n) => list.iter().rev().find(|d| d.name.eq_ignore_ascii_case(n)),
        None => list.last(),
    };
    let Some(name) = named.or_else(|| entry.map(|d| d.name.clone())) else {
        return;
    };
    let when = entry
        .map(|d| {
            let at = crate::report::time::filetime_to_rfc3339(d.unloaded_at)
                .unwrap_or_else(|| "an unreadable time".into());
            format!(" (unloaded at {at}, image {:#x}-{:#x})", d.start, d.end)
        })
        .unwrap_or_default();
    let sentence = format!(
        "Driver Verifier stopped the machine because {name}{when} unloaded with {} pool allocations not freed.",
        p[3].0
    );
    report.verdict.reasons.insert(0, sentence.clone());
    report.verdict.sentence = format!("{sentence} {}", report.verdict.sentence);
}

/// The UNICODE_STRING at `at`, when readable.
fn unicode_string(mem: &dyn VirtualMemory, at: u64) -> Option<String> {
    let len = mem.read_u16(at).ok()?.min(MAX_NAME_BYTES) & !1;
    let buffer = mem.read_ptr(at + u64::from(mem.pointer_size())).ok()?;
    let mut raw = vec![0u8; usize::from(len)];
    mem.read(buffer, &mut raw).ok()?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    (len > 0).then(|| String::from_utf16_lossy(&units))
}
