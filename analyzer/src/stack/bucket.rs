//! The `!analyze`-style summary of a walked stack: the followup module and the bucket id.
//!
//! `!analyze` walks from the top frame down and takes the first frame whose owner its
//! triage.ini does not mark "ignore"; the default file ignores the kernel's own dispatch and
//! bug-check paths (nt!Ki*, nt!KeBugCheck*, the HAL...), not Microsoft's drivers in general: a
//! crash in amdppm.sys is followed up to amdppm. The same rule here, by module: the first
//! frame outside [`is_relay_module`] (the kernel image, the HAL, the kernel debugger transports,
//! PSHED, the boot video driver, the kernel error reporter) is the followup.
//!
//! The bucket id is `0x{code}_{module}!{function}` with the bug check code in upper-case hex
//! without the 0x10000000 flag (`!analyze` buckets 0x1000007E as 0x7E), the debugger's module
//! name (`nt` for the kernel, else the file name without extension) and the function without
//! displacement, so that it is the same across builds of the driver; `0x{code}_{file name}`
//! (e.g. `0x7E_amdppm.sys`) when no function is known; and `0x{code}_UNKNOWN_MODULE` when no frame is in
//! a module. The frame is the followup frame, else frame 0.

/// File names of the modules `!analyze` does not follow up (lower case).
const RELAY_MODULES: &[&str] = &[
    "ntoskrnl.exe",
    "ntkrnlmp.exe",
    "ntkrnlpa.exe",
    "ntkrpamp.exe",
    "hal.dll",
    "halmacpi.dll",
    "halacpi.dll",
    "halaacpi.dll",
    "halapic.dll",
    "halmps.dll",
    "kd.dll",
    "kdcom.dll",
    "kdnet.dll",
    "kdstub.dll",
    "pshed.dll",
    "bootvid.dll",
    "werkernel.sys",
];

/// Whether a frame in module `name` (or the kernel image, `is_kernel`) is passed over.
pub fn is_relay_module(name: &str, is_kernel: bool) -> bool {
    is_kernel || RELAY_MODULES.contains(&name.to_ascii_lowercase().as_str())
}

/// A walked frame as the summary sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryFrame<'a> {
    /// The module's file name.
    pub module: Option<&'a str>,
    /// The debugger's short name of the module (`nt`, `amdppm`).
    pub short: Option<&'a str>,
    pub is_kernel: bool,
    pub function: Option<&'a str>,
}

/// The index of the followup frame: the first in a module that is not a relay module.
pub fn followup(frames: &[SummaryFrame<'_>]) -> Option<usize> {
    frames
        .iter()
        .position(|f| f.module.is_some_and(|m| !is_relay_module(m, f.is_kernel)))
}

/// The bucket id of a crash with `code` (see the module documentation).
pub fn bucket_id(code: u32, frames: &[SummaryFrame<'_>]) -> String {
    let code = code & !0x1000_0000;
    let frame = followup(frames)
        .map(|i| frames[i])
        .or(frames.first().copied());
    match frame {
        Some(SummaryFrame {
            short: Some(short),
            function: Some(f),
            ..
        }) => format!("0x{code:X}_{short}!{f}"),
        Some(SummaryFrame {
            module: Some(m), ..
        }) => format!("0x{code:X}_{m}"),
        _ => format!("0x{code:X}_UNKNOWN_MODULE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<'a>(module: &'a str, short: &'a str, k: bool, func: Option<&'a str>) -> SummaryFrame<'a> {
        SummaryFrame {
            module: Some(module),
            short: Some(short),
            is_kernel: k,
            function: func,
        }
    }

    #[test]
    fn followup_passes_over_the_kernel() {
        let frames = [
            f("ntoskrnl.exe", "nt", true, Some("KeBugCheckEx")),
            f("hal.dll", "hal", false, Some("HalpX")),
            f("amdppm.sys", "amdppm", false, Some("WriteIoMemRawEx")),
            f("acpi.sys", "ACPI", false, None),
        ];
        assert_eq!(followup(&frames), Some(2));
        assert_eq!(
            bucket_id(0x1000_007E, &frames),
            "0x7E_amdppm!WriteIoMemRawEx"
        );
        let unnamed = [f("amdppm.sys", "amdppm", false, None)];
        assert_eq!(bucket_id(0xD1, &unnamed), "0xD1_amdppm.sys");
        // Only kernel frames: no followup, the bucket names frame 0.
        let kernel = [f("ntoskrnl.exe", "nt", true, Some("KeBugCheckEx"))];
        assert_eq!(followup(&kernel), None);
        assert_eq!(bucket_id(0xE2, &kernel), "0xE2_nt!KeBugCheckEx");
        assert_eq!(bucket_id(0xE2, &[]), "0xE2_UNKNOWN_MODULE");
    }
}
