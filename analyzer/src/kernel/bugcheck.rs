//! Bugcheck codes: names, whether a code concerns pool or memory, and module+offset for the
//! parameters that point into a loaded module.
//!
//! Names follow Microsoft's "Bug check code reference" (learn.microsoft.com, Debugging Tools
//! for Windows) and bugcodes.h. Codes 0x1000_00XX are the same checks raised with the
//! "_M" variant of KeBugCheckEx (the parameters are the same); they are named with the "_M"
//! suffix, as WinDbg prints them.

use super::modules::{find_module, Module};

/// (code, name, pool_or_memory_related)
const TABLE: &[(u32, &str, bool)] = &[
    (0x01, "APC_INDEX_MISMATCH", false),
    (0x0A, "IRQL_NOT_LESS_OR_EQUAL", true),
    (0x18, "REFERENCE_BY_POINTER", false),
    (0x19, "BAD_POOL_HEADER", true),
    (0x1A, "MEMORY_MANAGEMENT", true),
    (0x1B, "PFN_SHARE_COUNT", true),
    (0x1C, "PFN_REFERENCE_COUNT", true),
    (0x1E, "KMODE_EXCEPTION_NOT_HANDLED", false),
    (0x21, "QUOTA_UNDERFLOW", true),
    (0x24, "NTFS_FILE_SYSTEM", false),
    (0x2E, "DATA_BUS_ERROR", true),
    (0x34, "CACHE_MANAGER", false),
    (0x35, "NO_MORE_IRP_STACK_LOCATIONS", false),
    (0x3B, "SYSTEM_SERVICE_EXCEPTION", false),
    (0x3F, "NO_MORE_SYSTEM_PTES", true),
    (0x41, "MUST_SUCCEED_POOL_EMPTY", true),
    (0x44, "MULTIPLE_IRP_COMPLETE_REQUESTS", false),
    (0x4A, "IRQL_GT_ZERO_AT_SYSTEM_SERVICE", false),
    (0x4C, "FATAL_UNHANDLED_HARD_ERROR", false),
    (0x4D, "NO_PAGES_AVAILABLE", true),
    (0x4E, "PFN_LIST_CORRUPT", true),
    (0x50, "PAGE_FAULT_IN_NONPAGED_AREA", true),
    (0x51, "REGISTRY_ERROR", false),
    (0x5C, "HAL_INITIALIZATION_FAILED", false),
    (0x76, "PROCESS_HAS_LOCKED_PAGES", true),
    (0x77, "KERNEL_STACK_INPAGE_ERROR", true),
    (0x7A, "KERNEL_DATA_INPAGE_ERROR", true),
    (0x7B, "INACCESSIBLE_BOOT_DEVICE", false),
    (0x7D, "INSTALL_MORE_MEMORY", true),
    (0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED", false),
    (0x7F, "UNEXPECTED_KERNEL_MODE_TRAP", false),
    (0x80, "NMI_HARDWARE_FAILURE", false),
    (0x8E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED", false),
    (0x9C, "MACHINE_CHECK_EXCEPTION", false),
    (0x9F, "DRIVER_POWER_STATE_FAILURE", false),
    (0xA0, "INTERNAL_POWER_ERROR", false),
    (0xA2, "MEMORY_IMAGE_CORRUPT", true),
    (0xAB, "SESSION_HAS_VALID_POOL_ON_EXIT", true),
    (0xAC, "HAL_MEMORY_ALLOCATION", true),
    (0xBE, "ATTEMPTED_WRITE_TO_READONLY_MEMORY", true),
    (0xC1, "SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION", true),
    (0xC2, "BAD_POOL_CALLER", true),
    (0xC4, "DRIVER_VERIFIER_DETECTED_VIOLATION", true),
    (0xC5, "DRIVER_CORRUPTED_EXPOOL", true),
    (0xC6, "DRIVER_CAUGHT_MODIFYING_FREED_POOL", true),
    (0xC7, "TIMER_OR_DPC_INVALID", false),
    (0xC9, "DRIVER_VERIFIER_IOMANAGER_VIOLATION", false),
    (0xCA, "PNP_DETECTED_FATAL_ERROR", false),
    (0xCB, "DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS", true),
    (0xCC, "PAGE_FAULT_IN_FREED_SPECIAL_POOL", true),
    (0xCD, "PAGE_FAULT_BEYOND_END_OF_ALLOCATION", true),
    (
        0xCE,
        "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS",
        false,
    ),
    (
        0xCF,
        "TERMINAL_SERVER_DRIVER_MADE_INCORRECT_MEMORY_REFERENCE",
        true,
    ),
    (0xD0, "DRIVER_CORRUPTED_MMPOOL", true),
    (0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL", true),
    (0xD3, "DRIVER_PORTION_MUST_BE_NONPAGED", true),
    (0xD5, "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL", true),
    (0xD6, "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION", true),
    (0xD7, "DRIVER_UNMAPPING_INVALID_VIEW", true),
    (0xD8, "DRIVER_USED_EXCESSIVE_PTES", true),
    (0xD9, "LOCKED_PAGES_TRACKER_CORRUPTION", true),
    (0xDA, "SYSTEM_PTE_MISUSE", true),
    (0xDB, "DRIVER_CORRUPTED_SYSPTES", true),
    (0xDE, "POOL_CORRUPTION_IN_FILE_AREA", true),
    (0xE2, "MANUALLY_INITIATED_CRASH", false),
    (0xE3, "RESOURCE_NOT_OWNED", false),
    (0xE6, "DRIVER_VERIFIER_DMA_VIOLATION", true),
    (0xEA, "THREAD_STUCK_IN_DEVICE_DRIVER", false),
    (0xEB, "DIRTY_MAPPED_PAGES_CONGESTION", true),
    (0xEC, "SESSION_HAS_VALID_SPECIAL_POOL_ON_EXIT", true),
    (0xED, "UNMOUNTABLE_BOOT_VOLUME", false),
    (0xEF, "CRITICAL_PROCESS_DIED", false),
    (0xF4, "CRITICAL_OBJECT_TERMINATION", false),
    (0xF5, "FLTMGR_FILE_SYSTEM", false),
    (0xF7, "DRIVER_OVERRAN_STACK_BUFFER", false),
    (0xFC, "ATTEMPTED_EXECUTE_OF_NOEXECUTE_MEMORY", true),
    (0xFD, "DIRTY_NOWRITE_PAGES_CONGESTION", true),
    (0xFE, "BUGCODE_USB_DRIVER", false),
    (0x101, "CLOCK_WATCHDOG_TIMEOUT", false),
    (0x109, "CRITICAL_STRUCTURE_CORRUPTION", true),
    (0x10D, "WDF_VIOLATION", false),
    (0x10E, "VIDEO_MEMORY_MANAGEMENT_INTERNAL", true),
    (0x113, "VIDEO_DXGKRNL_FATAL_ERROR", false),
    (0x116, "VIDEO_TDR_FAILURE", false),
    (0x117, "VIDEO_TDR_TIMEOUT_DETECTED", false),
    (0x119, "VIDEO_SCHEDULER_INTERNAL_ERROR", false),
    (0x124, "WHEA_UNCORRECTABLE_ERROR", false),
    (0x127, "PAGE_NOT_ZERO", true),
    (0x12B, "FAULTY_HARDWARE_CORRUPTED_PAGE", true),
    (0x133, "DPC_WATCHDOG_VIOLATION", false),
    (0x139, "KERNEL_SECURITY_CHECK_FAILURE", true),
    (0x13A, "KERNEL_MODE_HEAP_CORRUPTION", true),
    (0x144, "BUGCODE_USB3_DRIVER", false),
    (0x154, "UNEXPECTED_STORE_EXCEPTION", true),
    (0x155, "SYSTEM_MEMORY_STATE_INVALID", true),
    (0x161, "LIVE_SYSTEM_DUMP", false),
    (0x18B, "SECURE_KERNEL_ERROR", false),
    (0x1CA, "SYNTHETIC_WATCHDOG_TIMEOUT", false),
    (0x1D5, "DRIVER_PNP_WATCHDOG", false),
    (0xC000_021A, "STATUS_SYSTEM_PROCESS_TERMINATED", false),
    (0xDEAD_DEAD, "MANUALLY_INITIATED_CRASH1", false),
];

/// Name and category of a bugcheck code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugcheckName {
    pub name: String,
    /// The code without the 0x1000_0000 "_M" flag.
    pub base_code: u32,
    /// The code is about pool or memory (what this tool is for).
    pub pool_or_memory: bool,
}

fn lookup(code: u32) -> Option<(&'static str, bool)> {
    TABLE
        .iter()
        .find(|&&(c, _, _)| c == code)
        .map(|&(_, n, p)| (n, p))
}

/// The name of `code`, or `None` when it is not in the table.
pub fn bugcheck_name(code: u32) -> Option<BugcheckName> {
    if let Some((name, pool)) = lookup(code) {
        return Some(BugcheckName {
            name: name.into(),
            base_code: code,
            pool_or_memory: pool,
        });
    }
    // 0x1000_00XX: the same check raised by KeBugCheck2 with the "_M" flag.
    if code & 0xF000_0000 == 0x1000_0000 {
        let base = code & 0x0FFF_FFFF;
        if let Some((name, pool)) = lookup(base) {
            return Some(BugcheckName {
                name: format!("{name}_M"),
                base_code: base,
                pool_or_memory: pool,
            });
        }
    }
    None
}

/// A bugcheck parameter with the module it points into, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizedParam {
    pub value: u64,
    /// "module+0xOFFSET" when the value lies inside a loaded module's image.
    pub symbol: Option<String>,
}

/// Symbolizes each parameter against the module list.
pub fn symbolize_params(params: &[u64; 4], modules: &[Module]) -> [SymbolizedParam; 4] {
    params.map(|value| SymbolizedParam {
        value,
        symbol: module_offset(value, modules),
    })
}

/// "name+0xoffset" for an address inside a module. Zero never counts (a null parameter is
/// not an address, even if a broken list has a module at 0).
pub fn module_offset(addr: u64, modules: &[Module]) -> Option<String> {
    if addr == 0 {
        return None;
    }
    find_module(modules, addr).map(|m| {
        let name = if m.name.is_empty() {
            format!("module_{:x}", m.base)
        } else {
            m.name.clone()
        };
        format!("{name}+{:#x}", addr - m.base)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_reference() {
        let n = |c| bugcheck_name(c).map(|b| b.name);
        assert_eq!(n(0x19).as_deref(), Some("BAD_POOL_HEADER"));
        assert_eq!(n(0xC2).as_deref(), Some("BAD_POOL_CALLER"));
        assert_eq!(n(0xC5).as_deref(), Some("DRIVER_CORRUPTED_EXPOOL"));
        assert_eq!(n(0x13A).as_deref(), Some("KERNEL_MODE_HEAP_CORRUPTION"));
        assert_eq!(n(0xE2).as_deref(), Some("MANUALLY_INITIATED_CRASH"));
        assert_eq!(n(0xDEADDEAD).as_deref(), Some("MANUALLY_INITIATED_CRASH1"));
        assert_eq!(
            n(0x1000007E).as_deref(),
            Some("SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M")
        );
        assert_eq!(
            n(0x1000008E).as_deref(),
            Some("KERNEL_MODE_EXCEPTION_NOT_HANDLED_M")
        );
        assert_eq!(n(0x12345), None);
        assert_eq!(n(0x10012345), None);
        let b = bugcheck_name(0x100000C5).unwrap();
        assert_eq!((b.base_code, b.pool_or_memory), (0xC5, true));
        assert!(!bugcheck_name(0x7E).unwrap().pool_or_memory);
    }

    #[test]
    fn table_has_no_duplicates_and_no_m_flags() {
        let mut codes: Vec<u32> = TABLE.iter().map(|t| t.0).collect();
        codes.sort_unstable();
        let len = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), len);
        assert!(TABLE.iter().all(|t| t.0 & 0xF000_0000 != 0x1000_0000));
    }

    #[test]
    fn params_symbolized() {
        let m = Module {
            name: "amdppm.sys".into(),
            path: String::new(),
            base: 0xfffff804_8b580000,
            size: 0x3b000,
            timestamp: None,
            checksum: None,
            ldr_entry: None,
            pe: None,
            pe_error: None,
        };
        let p = symbolize_params(
            &[0xc0000005, 0xfffff804_8b5912a0, 0, 0xfffff804_8b5bb000],
            std::slice::from_ref(&m),
        );
        assert_eq!(p[0].symbol, None);
        assert_eq!(p[1].symbol.as_deref(), Some("amdppm.sys+0x112a0"));
        assert_eq!(p[2].symbol, None);
        assert_eq!(p[3].symbol, None, "one past the end is outside");
    }
}
