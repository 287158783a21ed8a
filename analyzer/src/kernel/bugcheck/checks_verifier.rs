//! DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4): the Parameter 1 values about pool, from the code's
//! page of Microsoft's bug check code reference (MicrosoftDocs/windows-driver-docs,
//! `bug-check-0xc4--driver-verifier-detected-violation.md` of 2017-10-04). The page lists well
//! over a hundred values (IRQL, spin lock, MDL, I/O, DDI compliance rules...); only those about
//! allocating, freeing and leaking pool are carried, so any other value is reported as not
//! carried rather than undocumented.

use super::describe::{block, mem, val, Case, Check, Layout, POOL_TYPE, RESERVED, ZERO};
use super::ParamMeaning;

const IRQL: ParamMeaning = val("Current IRQL");
const SIZE: ParamMeaning = val("Size of allocation, in bytes");
const POOL_ADDRESS: ParamMeaning = block("Address of pool");
const BASE: ParamMeaning = block("Base address of allocation");
const CHARGED: ParamMeaning = val("Number of charged bytes");
const PAGED_BYTES: ParamMeaning = val("Bytes allocated from paged pool");
const NONPAGED_BYTES: ParamMeaning = val("Bytes allocated from nonpaged pool");
const NOT_FREED: ParamMeaning = val("Total number of allocations that were not freed");
const POOL_START: ParamMeaning = block("Starting address of the pool allocation");
const POOL_SIZE: ParamMeaning = val("Size of the pool allocation");
const OVERRUN_FREED: &str = "The driver attempted to free memory after having written past the \
                             end of the allocation (Pool Tracking).";

const UNLOADING_WITH_POOL: &str = "The driver is unloading without first freeing its pool \
                                   allocations (Pool Tracking).";

const POOL_CASES: &[Case] = &[
    Case {
        values: &[0x00],
        cause: "The driver requested a zero-byte pool allocation.",
        others: [IRQL, POOL_TYPE, ZERO],
    },
    Case {
        values: &[0x01],
        cause: "The driver attempted to allocate paged memory with IRQL > APC_LEVEL.",
        others: [IRQL, POOL_TYPE, SIZE],
    },
    Case {
        values: &[0x02],
        cause: "The driver attempted to allocate nonpaged memory with IRQL > DISPATCH_LEVEL.",
        others: [IRQL, POOL_TYPE, SIZE],
    },
    Case {
        values: &[0x10],
        cause: "The driver attempted to free an address that was not returned from an allocate \
                call.",
        others: [block("Bad Address"), ZERO, ZERO],
    },
    Case {
        values: &[0x11],
        cause: "The driver attempted to free paged pool with IRQL > APC_LEVEL.",
        others: [IRQL, POOL_TYPE, POOL_ADDRESS],
    },
    Case {
        values: &[0x12],
        cause: "The driver attempted to free nonpaged pool with IRQL > DISPATCH_LEVEL.",
        others: [IRQL, POOL_TYPE, POOL_ADDRESS],
    },
    Case {
        values: &[0x13, 0x14],
        cause: "The driver attempted to free memory pool which was already freed.",
        others: [
            RESERVED,
            block("Pointer to pool header"),
            val("Pool header contents"),
        ],
    },
    Case {
        values: &[0x16],
        cause: "The driver attempted to free pool at a bad address, or passed invalid \
                parameters to a memory routine.",
        others: [RESERVED, block("Pool address"), ZERO],
    },
    Case {
        values: &[0x51],
        cause: OVERRUN_FREED,
        others: [
            BASE,
            mem("Address of the reference beyond the allocation"),
            CHARGED,
        ],
    },
    Case {
        values: &[0x52],
        cause: OVERRUN_FREED,
        others: [BASE, RESERVED, CHARGED],
    },
    Case {
        values: &[0x53, 0x54, 0x59],
        cause: OVERRUN_FREED,
        others: [BASE, RESERVED, RESERVED],
    },
    Case {
        values: &[0x60],
        cause: UNLOADING_WITH_POOL,
        others: [PAGED_BYTES, NONPAGED_BYTES, NOT_FREED],
    },
    Case {
        values: &[0x61],
        cause: "A driver thread is attempting to allocate pool memory while the driver is \
                unloading (Pool Tracking).",
        others: [PAGED_BYTES, NONPAGED_BYTES, NOT_FREED],
    },
    Case {
        values: &[0x62],
        cause: UNLOADING_WITH_POOL,
        others: [
            // A parameter cannot hold a name: it is the address of one.
            mem("Name of the driver"),
            RESERVED,
            val(
                "Total number of allocations that were not freed, including both paged and \
                 nonpaged pool",
            ),
        ],
    },
    Case {
        values: &[0xCC],
        cause: "The driver has attempted to free a pool allocation that contains an active \
                lookaside list.",
        others: [mem("Address of the lookaside list"), POOL_START, POOL_SIZE],
    },
    Case {
        values: &[0xD2],
        cause: "The driver has attempted to free a pool allocation that contains an active \
                ERESOURCE structure.",
        others: [
            mem("Address of the ERESOURCE structure"),
            POOL_START,
            POOL_SIZE,
        ],
    },
];

pub(super) const CHECKS: &[Check] = &[Check {
    code: 0xC4,
    page: "bug-check-0xc4--driver-verifier-detected-violation",
    summary: "Driver Verifier found a fatal error in a verified driver.",
    layout: Layout::Cases {
        selector: 1,
        selector_meaning: val("Type of violation"),
        cases: POOL_CASES,
        complete: false,
    },
}];

#[cfg(test)]
mod tests {
    use super::super::describe::CASE_NOT_CARRIED;
    use super::super::{describe, ParamKind};

    #[test]
    fn leaked_by_unloaded_driver() {
        let d = describe(0xC4, [0x62, 0xffff_8a0c_1234_5678, 0, 17]);
        assert_eq!(d.name.unwrap().name, "DRIVER_VERIFIER_DETECTED_VIOLATION");
        let p = d.page.unwrap();
        let case = p.case.unwrap();
        assert!(case.documented);
        assert!(case
            .cause
            .contains("unloading without first freeing its pool"));
        assert_eq!(p.params[1].text, "Name of the driver");
        assert_eq!(p.params[1].kind, ParamKind::Memory);
        assert_eq!(p.params[2].kind, ParamKind::Reserved);
        assert!(p.params[3].text.starts_with("Total number of allocations"));
    }

    #[test]
    fn unloading_with_allocations() {
        let p = describe(0xC4, [0x60, 0x1000, 0x2000, 3]).page.unwrap();
        assert_eq!(p.params[1].text, "Bytes allocated from paged pool");
        assert_eq!(p.params[2].text, "Bytes allocated from nonpaged pool");
        let p = describe(0xC4, [0x13, 0, 0xffff_c001_0000_0ff0, 0])
            .page
            .unwrap();
        assert_eq!(p.params[2].kind, ParamKind::PoolBlock);
    }

    #[test]
    fn other_values_are_not_carried() {
        // 0x30 (KeRaiseIrql misuse) is on the page but not about pool.
        let p = describe(0xC4, [0x30, 2, 1, 0]).page.unwrap();
        let case = p.case.unwrap();
        assert_eq!((case.cause, case.documented), (CASE_NOT_CARRIED, false));
        assert_eq!(p.params[1].kind, ParamKind::Undocumented);
    }
}
