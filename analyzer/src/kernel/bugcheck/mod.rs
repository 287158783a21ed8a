//! Bugcheck codes: names, whether a code concerns pool or memory, what each parameter means,
//! and module+offset for the parameters that point into a loaded module.
//!
//! Names: [`names`] (Microsoft's bug check code reference and bugcodes.h, one entry a line).
//! Codes 0x1000_00XX are the same checks raised with the "_M" variant of KeBugCheckEx (the
//! parameters are the same); they are named with the "_M" suffix, as WinDbg prints them.
//! Parameter meanings: [`describe`] (the reference's page of each code).

mod checks_memory;
mod checks_pool;
mod checks_pool_header;
mod checks_system;
mod checks_verifier;
pub mod describe;
pub mod names;

pub use describe::{
    describe, BugcheckDescription, CaseMatch, PageDescription, ParamKind, ParamMeaning,
};
pub use names::NameSource;

use super::modules::{find_module, Module};

/// The flag KeBugCheck2 sets on a code raised with the "_M" variant.
const M_FLAG: u32 = 0x1000_0000;

/// Codes (without the "_M" flag) about pool or memory, the subject of this tool: pool headers
/// and pool misuse, page faults and PFN/PTE corruption, paging I/O, memory exhaustion.
const POOL_OR_MEMORY: &[u32] = &[
    0x0A, 0x19, 0x1A, 0x1B, 0x1C, 0x21, 0x2E, 0x3F, 0x41, 0x4D, 0x4E, 0x50, 0x76, 0x77, 0x7A, 0x7D,
    0xA2, 0xAB, 0xAC, 0xBE, 0xC1, 0xC2, 0xC4, 0xC5, 0xC6, 0xCB, 0xCC, 0xCD, 0xCF, 0xD0, 0xD1, 0xD3,
    0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xDB, 0xDE, 0xE6, 0xEB, 0xEC, 0xFC, 0xFD, 0x109, 0x10E,
    0x126, 0x127, 0x12B, 0x139, 0x13A, 0x154,
];

/// Name and category of a bugcheck code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugcheckName {
    pub name: String,
    /// The code without the 0x1000_0000 "_M" flag.
    pub base_code: u32,
    /// The code is about pool or memory (what this tool is for).
    pub pool_or_memory: bool,
    /// Where the name comes from (for a folded "_M" code: the base code's source).
    pub source: NameSource,
}

/// `code` without the "_M" flag (codes 0x1000_00XX and the like), else `code` itself.
pub fn base_code(code: u32) -> u32 {
    if code & 0xF000_0000 == M_FLAG {
        code & !M_FLAG
    } else {
        code
    }
}

/// The name of `code`, or `None` when neither source names it (nor, for an "_M" code, its
/// base code).
pub fn bugcheck_name(code: u32) -> Option<BugcheckName> {
    let base = base_code(code);
    let (name, source) = match names::lookup(code) {
        Some((name, source)) => (name.to_string(), source),
        // 0x1000_00XX: the same check raised by KeBugCheck2 with the "_M" flag.
        None if base != code => names::lookup(base).map(|(n, s)| (format!("{n}_M"), s))?,
        None => return None,
    };
    Some(BugcheckName {
        name,
        base_code: base,
        pool_or_memory: POOL_OR_MEMORY.binary_search(&base).is_ok(),
        source,
    })
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
            n(0x1C8).as_deref(),
            Some("MANUALLY_INITIATED_POWER_BUTTON_HOLD")
        );
        assert_eq!(n(0xC000021A).as_deref(), Some("WINLOGON_FATAL_ERROR"));
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
    fn pool_or_memory_list_is_sorted_and_named() {
        assert!(POOL_OR_MEMORY.windows(2).all(|w| w[0] < w[1]));
        assert!(POOL_OR_MEMORY.iter().all(|&c| names::lookup(c).is_some()));
    }

    #[test]
    fn m_codes_keep_their_base_code() {
        // Named directly by the reference, and folded from the base code: same answer shape.
        let listed = bugcheck_name(0x1000_007E).unwrap();
        assert_eq!(listed.base_code, 0x7E);
        assert_eq!(listed.source, NameSource::Reference);
        let folded = bugcheck_name(0x1000_0019).unwrap();
        assert_eq!(folded.name, "BAD_POOL_HEADER_M");
        assert_eq!((folded.base_code, folded.pool_or_memory), (0x19, true));
        assert_eq!(
            bugcheck_name(0x1000_01C8).unwrap().name,
            "MANUALLY_INITIATED_POWER_BUTTON_HOLD_M"
        );
        assert_eq!(base_code(0xC000_021A), 0xC000_021A);
        assert_eq!(base_code(0x1000_00EA), 0xEA);
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
