//! Parameters of BAD_POOL_HEADER (0x19) and BAD_POOL_CALLER (0xC2), per Parameter 1 value, from
//! the codes' pages of Microsoft's bug check code reference (MicrosoftDocs/windows-driver-docs,
//! `bug-check-0x19--bad-pool-header.md` of 2017-12-07 and `bug-check-0xc2--bad-pool-caller.md`
//! of 2017-05-23). Every row of both pages is here.

use super::describe::{block, code, mem, tag, val, Case, Check, Layout, POOL_TYPE, RESERVED, ZERO};
use super::ParamMeaning;

const TYPE_OF_VIOLATION: ParamMeaning = val("Type of violation");
const BAD_ENTRY: ParamMeaning = block("The bad pool entry");
const MISCALCULATED: ParamMeaning = block("One incorrectly-calculated entry");
const MISCALCULATION_CAUSE: ParamMeaning = block("The bad entry that caused the miscalculation");
const SHOULD_BE_FOUND: ParamMeaning = block("The pool entry that should have been found");
const HEADER_SIZE_CORRUPT: &str = "The pool block header size is corrupt.";

const BAD_POOL_HEADER: &[Case] = &[
    Case {
        values: &[0x2],
        cause: "The special pool pattern check failed (the owner has likely corrupted the pool \
                block).",
        others: [
            block("The pool entry being checked"),
            val("The size of the pool block"),
            ZERO,
        ],
    },
    Case {
        values: &[0x3],
        cause: "The pool freelist is corrupt (in a healthy list, Parameters 2, 3 and 4 are \
                identical).",
        others: [
            block("The pool entry being checked"),
            mem("The read-back flink freelist value"),
            mem("The read-back blink freelist value"),
        ],
    },
    Case {
        values: &[0x5],
        cause: "A pair of adjacent pool entries have headers that contradict each other; at \
                least one of them is corrupt.",
        others: [
            block("One of the pool entries"),
            RESERVED,
            block("The other pool entry"),
        ],
    },
    Case {
        values: &[0x6],
        cause: "The pool block header's previous size is too large.",
        others: [MISCALCULATED, RESERVED, MISCALCULATION_CAUSE],
    },
    Case {
        values: &[0x7],
        cause: HEADER_SIZE_CORRUPT,
        others: [ZERO, RESERVED, BAD_ENTRY],
    },
    Case {
        values: &[0x8],
        cause: "The pool block header size is zero.",
        others: [ZERO, RESERVED, BAD_ENTRY],
    },
    Case {
        values: &[0x9],
        cause: "The pool block header size is corrupted (it is too large).",
        others: [MISCALCULATED, RESERVED, MISCALCULATION_CAUSE],
    },
    Case {
        values: &[0xA],
        cause: HEADER_SIZE_CORRUPT,
        others: [
            SHOULD_BE_FOUND,
            RESERVED,
            mem("The virtual address of the page that should have contained the pool entry"),
        ],
    },
    Case {
        values: &[0xD, 0xE, 0xF, 0x23, 0x24, 0x25],
        cause: "The pool header of a freed block has been modified after it was freed; usually \
                (not always) the block preceding the freed block was overrun.",
        others: [RESERVED, RESERVED, RESERVED],
    },
    Case {
        values: &[0x20],
        cause: HEADER_SIZE_CORRUPT,
        others: [SHOULD_BE_FOUND, block("The next pool entry"), RESERVED],
    },
    Case {
        values: &[0x21],
        cause: "The data following the pool block being freed is corrupt; typically the \
                consumer (call stack) has overrun the block.",
        others: [
            block("The pool pointer being freed"),
            val("The number of bytes allocated for the pool block"),
            val("The corrupted value found following the pool block"),
        ],
    },
    Case {
        values: &[0x22],
        cause: "An address being freed does not have a tracking entry: it was already freed or \
                never allocated.",
        others: [block("The address being freed"), RESERVED, RESERVED],
    },
];

const START: ParamMeaning = block("Starting address");
const IRQL: ParamMeaning = val("Current IRQL");
const POOL_ADDRESS: ParamMeaning = block("Address of pool");
const BYTES_REQUESTED: ParamMeaning = val("Number of bytes requested");
const CALLER: ParamMeaning = code("Caller's address");
const PAGE_FRAME: ParamMeaning = val("Physical page frame");
const HIGHEST_FRAME: ParamMeaning = val("Highest physical page frame");
const ALREADY_FREED: &str = "The current thread attempted to free the pool, which was already \
                             freed.";
const NONPAGED_NOT_ALLOCATED: &str = "The current thread attempted to free a non-allocated \
                                      nonpaged pool address.";
const PAGED_NOT_ALLOCATED: &str = "The current thread attempted to free a non-allocated paged \
                                   pool address.";

const BAD_POOL_CALLER: &[Case] = &[
    Case {
        values: &[0x00],
        cause: "The current thread requested a zero-byte pool allocation.",
        others: [ZERO, POOL_TYPE, tag("Pool tag")],
    },
    Case {
        values: &[0x01, 0x02, 0x04],
        cause: "The pool header has been corrupted.",
        others: [
            block("Pointer to pool header"),
            val("First part of pool header contents"),
            ZERO,
        ],
    },
    Case {
        values: &[0x06],
        cause: ALREADY_FREED,
        others: [
            RESERVED,
            block("Pointer to pool header"),
            val("Pool header contents"),
        ],
    },
    Case {
        values: &[0x07],
        cause: ALREADY_FREED,
        others: [
            RESERVED,
            val("Pool header contents"),
            block("Address of the block of pool being freed"),
        ],
    },
    Case {
        values: &[0x08],
        cause: "The current thread attempted to allocate the pool at an invalid IRQL.",
        others: [IRQL, POOL_TYPE, val("Size of allocation, in bytes")],
    },
    Case {
        values: &[0x09],
        cause: "The current thread attempted to free the pool at an invalid IRQL.",
        others: [IRQL, POOL_TYPE, POOL_ADDRESS],
    },
    Case {
        values: &[0x0A],
        cause: "The current thread attempted to free pool memory by using the wrong tag (the \
                memory might belong to another component).",
        others: [
            POOL_ADDRESS,
            tag("Allocator's tag"),
            tag("Tag being used in the attempted free"),
        ],
    },
    Case {
        values: &[0x0B, 0x0C, 0x0D],
        cause: "The current thread attempted to release a quota on a corrupted pool allocation.",
        others: [
            POOL_ADDRESS,
            tag("Pool allocation's tag"),
            mem("Bad quota process pointer"),
        ],
    },
    Case {
        values: &[0x40],
        cause: "The current thread attempted to free the kernel pool at a user-mode address.",
        others: [
            mem("Starting address"),
            mem("Start of system address space"),
            ZERO,
        ],
    },
    Case {
        values: &[0x41, 0x47],
        cause: NONPAGED_NOT_ALLOCATED,
        others: [START, PAGE_FRAME, HIGHEST_FRAME],
    },
    Case {
        values: &[0x42, 0x43],
        cause: "The current thread attempted to free a virtual address that was never in any \
                pool.",
        others: [block("Address being freed"), ZERO, ZERO],
    },
    Case {
        values: &[0x44],
        cause: NONPAGED_NOT_ALLOCATED,
        others: [START, RESERVED, ZERO],
    },
    Case {
        values: &[0x46],
        cause: "The current thread attempted to free an invalid pool address.",
        others: [START, ZERO, ZERO],
    },
    Case {
        values: &[0x48],
        cause: PAGED_NOT_ALLOCATED,
        others: [START, RESERVED, RESERVED],
    },
    Case {
        values: &[0x50],
        cause: PAGED_NOT_ALLOCATED,
        others: [
            START,
            val("Start offset, in pages, from beginning of paged pool"),
            val("Size of paged pool, in bytes"),
        ],
    },
    Case {
        values: &[0x60],
        cause: "The current thread attempted to free an invalid contiguous memory address (the \
                caller of MmFreeContiguousMemory is passing a bad pointer).",
        others: [mem("Starting address"), ZERO, ZERO],
    },
    Case {
        values: &[0x99],
        cause: "The current thread attempted to free pool with an invalid address (this code \
                can also indicate corruption in the pool header).",
        others: [block("Address that is being freed"), ZERO, ZERO],
    },
    Case {
        values: &[0x9A],
        cause: "The current thread marked an allocation request MUST_SUCCEED (this pool type \
                is no longer supported).",
        others: [POOL_TYPE, BYTES_REQUESTED, tag("Pool tag")],
    },
    Case {
        values: &[0x9B],
        cause: "The current thread attempted to allocate a pool with a tag of 0 (untrackable).",
        others: [POOL_TYPE, BYTES_REQUESTED, CALLER],
    },
    Case {
        values: &[0x9C],
        cause: "The current thread attempted to allocate a pool with a tag of \"BIG\" \
                (untrackable).",
        others: [POOL_TYPE, BYTES_REQUESTED, CALLER],
    },
    Case {
        values: &[0x9D],
        cause: "The current thread attempted to allocate a pool with a tag that does not \
                contain any letters or digits.",
        others: [tag("Incorrect pool tag used"), POOL_TYPE, CALLER],
    },
    Case {
        values: &[0x41286],
        cause: "The current thread attempted to free a paged pool address in the middle of an \
                allocation.",
        others: [
            RESERVED,
            RESERVED,
            val("Start offset from the beginning of the paged pool, in pages"),
        ],
    },
];

pub(super) const CHECKS: &[Check] = &[
    Check {
        code: 0x19,
        page: "bug-check-0x19--bad-pool-header",
        summary: "A pool header is corrupt.",
        layout: Layout::Cases {
            selector: 1,
            selector_meaning: TYPE_OF_VIOLATION,
            cases: BAD_POOL_HEADER,
            complete: true,
        },
    },
    Check {
        code: 0xC2,
        page: "bug-check-0xc2--bad-pool-caller",
        summary: "The current thread is making a bad pool request.",
        layout: Layout::Cases {
            selector: 1,
            selector_meaning: TYPE_OF_VIOLATION,
            cases: BAD_POOL_CALLER,
            complete: true,
        },
    },
];

#[cfg(test)]
mod tests {
    use super::super::describe::UNDOCUMENTED_CASE;
    use super::super::{describe, ParamKind};

    #[test]
    fn bad_pool_header_per_parameter_1() {
        let d = describe(0x19, [0x21, 0xffff_c001_2345_6780, 0x40, 0x4141_4141]);
        assert_eq!(d.name.unwrap().name, "BAD_POOL_HEADER");
        let p = d.page.unwrap();
        assert!(p
            .case
            .unwrap()
            .cause
            .starts_with("The data following the pool block"));
        assert_eq!(p.params[0].text, "Type of violation");
        assert_eq!(p.params[1].text, "The pool pointer being freed");
        assert_eq!(p.params[1].kind, ParamKind::PoolBlock);
        assert_eq!(p.params[2].kind, ParamKind::Value);
        // One row for several values.
        let p = describe(0x19, [0x24, 0, 0, 0]).page.unwrap();
        assert!(p
            .case
            .unwrap()
            .cause
            .contains("modified after it was freed"));
        let p = describe(0x19, [0x3, 0, 0, 0]).page.unwrap();
        assert_eq!(p.params[3].text, "The read-back blink freelist value");
    }

    #[test]
    fn bad_pool_header_unknown_parameter_1() {
        let p = describe(0x19, [0x1, 0, 0, 0]).page.unwrap();
        let case = p.case.unwrap();
        assert_eq!((case.cause, case.documented), (UNDOCUMENTED_CASE, false));
        assert!(p.params[1..]
            .iter()
            .all(|m| m.kind == ParamKind::Undocumented));
    }

    #[test]
    fn bad_pool_caller_per_parameter_1() {
        let p = describe(
            0xC2,
            [0x0A, 0xffff_c001_0000_1000, 0x6b61_654c, 0x4e6f_6e65],
        )
        .page
        .unwrap();
        assert!(p.case.unwrap().cause.contains("wrong tag"));
        assert_eq!(p.params[1].kind, ParamKind::PoolBlock);
        assert_eq!(p.params[2].kind, ParamKind::PoolTag);
        assert_eq!(p.params[3].text, "Tag being used in the attempted free");
        let p = describe(0x1000_00C2, [0x07, 0, 0x1234, 0xffff_c001_0000_1000])
            .page
            .unwrap();
        assert_eq!(p.params[3].text, "Address of the block of pool being freed");
        let p = describe(0xC2, [0x9B, 0, 0x40, 0xffff_f804_0000_1234])
            .page
            .unwrap();
        assert_eq!(p.params[3].kind, ParamKind::Code);
        let p = describe(0xC2, [0x41286, 0, 0, 3]).page.unwrap();
        assert!(p.case.unwrap().cause.contains("middle of an allocation"));
    }
}
