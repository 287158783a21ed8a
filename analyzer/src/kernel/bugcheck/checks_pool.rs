//! Parameters of the pool checks whose meanings do not depend on a selecting value (and 0xC1,
//! selected by Parameter 4), from each code's page of Microsoft's bug check code reference
//! (MicrosoftDocs/windows-driver-docs, `windows-driver-docs-pr/debugger/<page>.md`; the pages'
//! revisions of 2017-2018).

use super::describe::{
    block, code, mem, val, Case, Check, Layout, NONE, POOL_TYPE, READ_WRITE, RESERVED, ZERO,
};

/// "Memory referenced" / "IRQL at time of reference" / read-write / "Address that referenced
/// memory": 0xC5 and 0xD0 give the same four.
const EXPOOL_PARAMS: [super::ParamMeaning; 4] = [
    mem("Memory referenced"),
    val("IRQL at time of reference"),
    READ_WRITE,
    code("Address that referenced memory"),
];

/// The special pool page faults (0xCC, 0xCD, 0xD5, 0xD6): the referenced address is in (or
/// just past) a special pool allocation.
const SPECIAL_POOL_FAULT: [super::ParamMeaning; 4] = [
    block("Memory address referenced"),
    READ_WRITE,
    code("Address that referenced memory (if known)"),
    RESERVED,
];

const FREE_ADDR: super::ParamMeaning = block("Address that the driver tried to free");
const IRQL: super::ParamMeaning = val("Current IRQL");

/// 0xC1: Parameter 4 selects.
const SPECIAL_POOL_CASES: &[Case] = &[
    Case {
        values: &[0x20],
        cause: "A driver attempted to free pool which was not allocated.",
        others: [FREE_ADDR, RESERVED, ZERO],
    },
    Case {
        values: &[0x21, 0x22],
        cause: "A driver attempted to free a bad address.",
        others: [
            FREE_ADDR,
            val("Bytes requested"),
            val("Bytes calculated (actually given to the caller)"),
        ],
    },
    Case {
        values: &[0x23],
        cause: "A driver freed an address, but nearby bytes within the same page have been \
                corrupted.",
        others: [FREE_ADDR, mem("Address where bits are corrupted"), RESERVED],
    },
    Case {
        values: &[0x24],
        cause: "A driver freed an address, but bytes occurring after the end of the allocation \
                have been overwritten.",
        others: [FREE_ADDR, mem("Address where bits are corrupted"), RESERVED],
    },
    Case {
        values: &[0x30],
        cause: "A driver attempted to allocate pool at an incorrect IRQL.",
        others: [IRQL, POOL_TYPE, val("Number of bytes")],
    },
    Case {
        values: &[0x31],
        cause: "A driver attempted to free pool at an incorrect IRQL.",
        others: [IRQL, POOL_TYPE, FREE_ADDR],
    },
    Case {
        values: &[0x32],
        cause: "A driver freed an address, but nearby bytes within the same page have a single \
                bit error.",
        others: [
            FREE_ADDR,
            mem("Address where one bit is corrupted"),
            RESERVED,
        ],
    },
];

pub(super) const CHECKS: &[Check] = &[
    Check {
        code: 0x41,
        page: "bug-check-0x41--must-succeed-pool-empty",
        summary: "A kernel-mode thread has requested too much must-succeed pool.",
        layout: Layout::Fixed([
            val("The size of the request that could not be satisfied"),
            val("The number of pages used from nonpaged pool"),
            val("The number of requests from nonpaged pool larger than PAGE_SIZE"),
            val("The number of pages available"),
        ]),
    },
    Check {
        code: 0x4D,
        page: "bug-check-0x4d--no-pages-available",
        summary: "No free pages are available to continue operations.",
        layout: Layout::Fixed([
            val("The total number of dirty pages"),
            val("The number of dirty pages destined for the page file"),
            val("The size of the nonpaged pool available at the time the bug check occurred"),
            val("The most recent modified write error status"),
        ]),
    },
    Check {
        code: 0xAB,
        page: "bug-check-0xab--session-has-valid-pool-on-exit",
        summary: "A session unload occurred while a session driver still held memory.",
        layout: Layout::Fixed([
            val("The session ID"),
            val("The number of paged pool bytes that are leaking"),
            val("The number of nonpaged pool bytes that are leaking"),
            val(
                "The total number of paged and nonpaged allocations that are leaking \
                 (nonpaged in the upper half of the value, paged in the lower half)",
            ),
        ]),
    },
    Check {
        code: 0xC1,
        page: "bug-check-0xc1--special-pool-detected-memory-corruption",
        summary: "The driver wrote to an invalid section of the special pool.",
        layout: Layout::Cases {
            selector: 4,
            selector_meaning: val("Type of violation"),
            cases: SPECIAL_POOL_CASES,
            complete: true,
        },
    },
    Check {
        code: 0xC5,
        page: "bug-check-0xc5--driver-corrupted-expool",
        summary: "The system attempted to access invalid memory at a process IRQL that was too \
                  high; almost certainly a driver corrupted a small (less than PAGE_SIZE) pool \
                  allocation.",
        layout: Layout::Fixed(EXPOOL_PARAMS),
    },
    Check {
        code: 0xC6,
        page: "bug-check-0xc6--driver-caught-modifying-freed-pool",
        summary: "The driver attempted to access a freed memory pool.",
        layout: Layout::Fixed([
            block("Memory referenced"),
            READ_WRITE,
            val("0: kernel mode, 1: user mode"),
            RESERVED,
        ]),
    },
    Check {
        code: 0xCC,
        page: "bug-check-0xcc--page-fault-in-freed-special-pool",
        summary: "The system has referenced memory which was earlier freed (caught by the \
                  Driver Verifier special pool).",
        layout: Layout::Fixed(SPECIAL_POOL_FAULT),
    },
    Check {
        code: 0xCD,
        page: "bug-check-0xcd--page-fault-beyond-end-of-allocation",
        summary: "The system accessed memory beyond the end of some driver's pool allocation.",
        layout: Layout::Fixed(SPECIAL_POOL_FAULT),
    },
    Check {
        code: 0xCE,
        page: "bug-check-0xce--driver-unloaded-without-cancelling-pending-operations",
        summary: "A driver failed to cancel pending operations (lookaside lists, DPCs, worker \
                  threads...) before unloading.",
        layout: Layout::Fixed([
            mem("Memory address referenced"),
            READ_WRITE,
            code("Address that referenced memory (if known)"),
            RESERVED,
        ]),
    },
    Check {
        code: 0xD0,
        page: "bug-check-0xd0--driver-corrupted-mmpool",
        summary: "The system attempted to access invalid memory at a process IRQL that was too \
                  high; almost certainly a driver corrupted a large (PAGE_SIZE or larger) pool \
                  allocation.",
        layout: Layout::Fixed(EXPOOL_PARAMS),
    },
    Check {
        code: 0xD5,
        page: "bug-check-0xd5--driver-page-fault-in-freed-special-pool",
        summary: "A driver has referenced memory which was earlier freed (caught by the Driver \
                  Verifier special pool).",
        layout: Layout::Fixed(SPECIAL_POOL_FAULT),
    },
    Check {
        code: 0xD6,
        page: "bug-check-0xd6--driver-page-fault-beyond-end-of-allocation",
        summary: "The driver accessed memory beyond the end of its pool allocation (caught by \
                  the Driver Verifier special pool).",
        layout: Layout::Fixed(SPECIAL_POOL_FAULT),
    },
    Check {
        code: 0xDE,
        page: "bug-check-0xde--pool-corruption-in-file-area",
        summary: "A driver has corrupted pool memory that is used for holding pages destined \
                  for disk.",
        layout: Layout::Fixed([NONE; 4]),
    },
    Check {
        code: 0xEC,
        page: "bug-check-0xec--session-has-valid-special-pool-on-exit",
        summary: "A session unload occurred while a session driver still held special pool.",
        layout: Layout::Fixed([
            val("The session ID"),
            val("The number of special pool pages that are leaking"),
            RESERVED,
            RESERVED,
        ]),
    },
];

#[cfg(test)]
mod tests {
    use super::super::{describe, ParamKind};

    #[test]
    fn special_pool_selected_by_parameter_4() {
        let p = describe(0xC1, [0xffff_a000_1000_0ff0, 0x10, 0x20, 0x21])
            .page
            .unwrap();
        let case = p.case.unwrap();
        assert_eq!((case.selector, case.documented), (4, true));
        assert_eq!(case.cause, "A driver attempted to free a bad address.");
        assert_eq!(p.params[0].kind, ParamKind::PoolBlock);
        assert_eq!(p.params[1].text, "Bytes requested");
        assert_eq!(p.params[3].text, "Type of violation");
    }

    #[test]
    fn session_pool_leak() {
        let p = describe(0xAB, [1, 0x2000, 0x3000, 0x0002_0005])
            .page
            .unwrap();
        assert_eq!(p.case, None);
        assert!(p.params[3].text.contains("upper half"));
        assert!(p.params.iter().all(|m| !m.kind.is_address()));
    }
}
