//! The faulting address of a crash: the instruction the bugcheck is about.
//!
//! Where WinDbg's `!analyze` takes it from: for the exception bugchecks the parameters say it
//! (Microsoft's bug check code reference gives the parameter for each code, table below); for
//! any other code, the instruction pointer of the context record the dump writer saved in the
//! header (the CPU state at the crash, usually inside KeBugCheckEx's caller).

use super::bytes::{u32_at, u64_at};
use crate::dump::Arch;

/// (code, 1-based parameter that holds the faulting instruction's address), from the bug check
/// code reference ("The address at which the exception occurred", "the address of the
/// instruction that caused the exception", "the address that referenced memory").
/// Codes 0x1000_00XX (the "_M" variant) use the same parameters.
const PARAM_TABLE: &[(u32, u8)] = &[
    (0x0A, 4), // IRQL_NOT_LESS_OR_EQUAL: address that referenced memory
    (0x1E, 2), // KMODE_EXCEPTION_NOT_HANDLED: address at which the exception occurred
    (0x3B, 2), // SYSTEM_SERVICE_EXCEPTION: address of the instruction that caused it
    (0x50, 3), // PAGE_FAULT_IN_NONPAGED_AREA: address of the instruction, if known
    (0x7E, 2), // SYSTEM_THREAD_EXCEPTION_NOT_HANDLED: address where the exception occurred
    (0x8E, 2), // KERNEL_MODE_EXCEPTION_NOT_HANDLED: address where the exception occurred
    (0xC5, 4), // DRIVER_CORRUPTED_EXPOOL: address that referenced memory
    (0xCC, 3), // PAGE_FAULT_IN_FREED_SPECIAL_POOL: address that referenced memory
    (0xCD, 3), // PAGE_FAULT_BEYOND_END_OF_ALLOCATION: address that referenced memory
    (0xD0, 4), // DRIVER_CORRUPTED_MMPOOL: address that referenced memory
    (0xD1, 4), // DRIVER_IRQL_NOT_LESS_OR_EQUAL: address that referenced memory
    (0xD5, 3), // DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL: address that referenced memory
    (0xD6, 3), // DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION: address that referenced memory
];

/// Header offsets of the CONTEXT record (DUMP_HEADER32 / DUMP_HEADER64).
const CONTEXT_X86: usize = 0x320;
const CONTEXT_64: usize = 0x348;
/// CONTEXT_i386 / CONTEXT_AMD64 / CONTEXT_ARM64 in ContextFlags (winnt.h).
const FLAG_I386: u32 = 0x0001_0000;
const FLAG_AMD64: u32 = 0x0010_0000;
const FLAG_ARM64: u32 = 0x0040_0000;
/// "PAGE": what an unwritten header field is filled with.
const PAGE_FILL: u32 = 0x4547_4150;

/// Where the faulting address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSource {
    /// A bugcheck parameter (1-based).
    Param(u8),
    /// The instruction pointer of the header's context record.
    ContextRecord,
}

impl FaultSource {
    /// "param 2" | "context record"
    pub fn describe(self) -> String {
        match self {
            FaultSource::Param(i) => format!("param {i}"),
            FaultSource::ContextRecord => "context record".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultingAddress {
    pub address: u64,
    pub source: FaultSource,
}

/// The 1-based parameter holding the faulting instruction for `code`, if the reference says.
pub fn fault_param(code: u32) -> Option<u8> {
    let base = if code & 0xF000_0000 == 0x1000_0000 {
        code & 0x0FFF_FFFF
    } else {
        code
    };
    PARAM_TABLE
        .iter()
        .find(|&&(c, _)| c == base)
        .map(|&(_, p)| p)
}

/// The instruction pointer (Eip / Rip / Pc) of the context record in the header `bytes`, when
/// the record is there (its ContextFlags carry the architecture's flag).
pub fn context_instruction_pointer(bytes: &[u8], arch: Arch) -> Option<u64> {
    let (flags_at, flag, ip) = match arch {
        Arch::X86 => (
            CONTEXT_X86,
            FLAG_I386,
            u32_at(bytes, CONTEXT_X86 + 0xB8).map(u64::from),
        ),
        Arch::X64 => (
            CONTEXT_64 + 0x30,
            FLAG_AMD64,
            u64_at(bytes, CONTEXT_64 + 0xF8),
        ),
        Arch::Arm64 => (CONTEXT_64, FLAG_ARM64, u64_at(bytes, CONTEXT_64 + 0x108)),
    };
    let flags = u32_at(bytes, flags_at)?;
    if flags == PAGE_FILL || flags & flag == 0 {
        return None;
    }
    ip.filter(|&v| v != 0 && v as u32 != PAGE_FILL)
}

/// The faulting address: the documented parameter for exception bugchecks (when non-zero),
/// else the context record's instruction pointer.
pub fn faulting_address(
    code: u32,
    params: &[u64; 4],
    context_ip: Option<u64>,
) -> Option<FaultingAddress> {
    if let Some(p) = fault_param(code) {
        if let Some(&v) = params.get(usize::from(p) - 1) {
            if v != 0 {
                return Some(FaultingAddress {
                    address: v,
                    source: FaultSource::Param(p),
                });
            }
        }
    }
    context_ip.map(|address| FaultingAddress {
        address,
        source: FaultSource::ContextRecord,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_from_the_reference() {
        assert_eq!(fault_param(0x7E), Some(2));
        assert_eq!(fault_param(0x1000_007E), Some(2));
        assert_eq!(fault_param(0x8E), Some(2));
        assert_eq!(fault_param(0x1000_008E), Some(2));
        assert_eq!(fault_param(0xD1), Some(4));
        assert_eq!(fault_param(0xE2), None);
        let f = faulting_address(
            0x1000_007E,
            &[0xc0000005, 0xfffff804_8b58334c, 1, 2],
            Some(7),
        )
        .unwrap();
        assert_eq!(
            (f.address, f.source),
            (0xfffff804_8b58334c, FaultSource::Param(2))
        );
        // Unknown parameter or a zero one: the context record.
        let f = faulting_address(0xE2, &[0; 4], Some(0x1234)).unwrap();
        assert_eq!(f.source, FaultSource::ContextRecord);
        assert_eq!(faulting_address(0x50, &[1, 0, 0, 0], None), None);
    }

    #[test]
    fn context_record_needs_its_flags() {
        let mut h = vec![0u8; 0x2000];
        assert_eq!(context_instruction_pointer(&h, Arch::X64), None);
        h[0x348 + 0x30..0x348 + 0x34].copy_from_slice(&0x0010_001fu32.to_le_bytes());
        h[0x440..0x448].copy_from_slice(&0xfffff804_8b58334cu64.to_le_bytes());
        assert_eq!(
            context_instruction_pointer(&h, Arch::X64),
            Some(0xfffff804_8b58334c)
        );
        let mut x = vec![0u8; 0x1000];
        x[0x320..0x324].copy_from_slice(&0x0001_0007u32.to_le_bytes());
        x[0x3d8..0x3dc].copy_from_slice(&0x8050_1234u32.to_le_bytes());
        assert_eq!(
            context_instruction_pointer(&x, Arch::X86),
            Some(0x8050_1234)
        );
        let fill: Vec<u8> = b"PAGE".iter().copied().cycle().take(0x2000).collect();
        assert_eq!(context_instruction_pointer(&fill, Arch::X64), None);
        assert_eq!(context_instruction_pointer(&[], Arch::Arm64), None);
    }
}
