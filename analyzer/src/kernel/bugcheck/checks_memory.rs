//! Parameters of the memory-manager checks: MEMORY_MANAGEMENT (0x1A, per Parameter 1),
//! PAGE_FAULT_IN_NONPAGED_AREA (0x50), DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS (0xCB) and
//! KERNEL_MODE_HEAP_CORRUPTION (0x13A, per Parameter 1), from the codes' pages of Microsoft's
//! bug check code reference (MicrosoftDocs/windows-driver-docs: `bug-check-0x1a--...` of
//! 2018-06-28, `bug-check-0x50--...` of 2017-03-28, `bug-check-0xcb--...` of 2017-05-23,
//! `bug-check-0x13a--...` of 2020-02-14). Every Parameter 1 row of 0x1A and 0x13A is here.

use super::describe::{code, mem, val, Case, Check, Layout, RESERVED, UNDOCUMENTED};
use super::ParamMeaning;

const U: ParamMeaning = UNDOCUMENTED;

/// A 0x1A row that says nothing of Parameters 2-4 ("Parameter 1 is the only parameter of
/// interest").
const fn only(values: &'static [u64], cause: &'static str) -> Case {
    Case {
        values,
        cause,
        others: [U, U, U],
    }
}

const MEMORY_MANAGEMENT: &[Case] = &[
    only(
        &[0x1],
        "The fork clone block reference count is corrupt (checked builds only).",
    ),
    only(
        &[0x31],
        "The image relocation fix-up table or code stream has been corrupted; probably a \
         hardware error.",
    ),
    only(
        &[0x403],
        "The page table and PFNs are out of sync; probably a hardware error, especially if \
         Parameters 3 and 4 differ by a single bit.",
    ),
    Case {
        values: &[0x411],
        cause: "A page table entry (PTE) has been corrupted.",
        others: [mem("The address of the PTE"), U, U],
    },
    only(
        &[0x777],
        "The caller is unlocking a system cache address that is not currently locked.",
    ),
    only(
        &[0x778],
        "The system is using the very last system cache view address, instead of preserving \
         it.",
    ),
    only(
        &[0x780, 0x781],
        "The PTEs mapping the argument system cache view have been corrupted.",
    ),
    only(
        &[0x1000],
        "A caller of MmGetSystemAddressForMdl* tried to map a fully-cached physical page as \
         non-cached, with \"bug check on failure\" in the MDL.",
    ),
    only(
        &[0x1010],
        "The caller is unlocking a pageable section that is not currently locked.",
    ),
    Case {
        values: &[0x1233],
        cause: "A driver tried to map a physical memory page that was not locked.",
        others: [
            val("The page frame number of the physical page the driver attempted to map"),
            U,
            U,
        ],
    },
    only(
        &[0x1234],
        "The caller is trying lock a nonexistent pageable section.",
    ),
    only(
        &[0x1235],
        "The caller is trying to protect an MDL with an invalid mapping.",
    ),
    only(
        &[0x3451],
        "The PTEs of a kernel thread stack that has been swapped out are corrupted.",
    ),
    Case {
        values: &[0x4477],
        cause: "A driver tried to write to an unallocated address in the user space of the \
                system process.",
        others: [mem("The address of the attempted write"), U, U],
    },
    only(
        &[0x5003],
        "The working set free list is corrupt; probably a hardware error.",
    ),
    only(
        &[0x5100],
        "The allocation bitmap is corrupt: the memory manager is about to overwrite a virtual \
         address that was already in use.",
    ),
    Case {
        values: &[0x5200],
        cause: "A page on a free pool SLIST has been corrupted: a write-after-free in a driver, \
                or an overrun from a previous page.",
        others: [
            super::describe::block("The address of a free pool block"),
            val("The actual value found at that address"),
            val("The value that was expected at that address"),
        ],
    },
    Case {
        values: &[0x8884],
        cause: "(Windows 7 only) Two pages on the standby list that should have identical page \
                priority values do not.",
        others: [U, U, val("The differing page priority values")],
    },
    only(
        &[0x8888, 0x8889],
        "Internal memory management structures are corrupted.",
    ),
    only(
        &[0x888A],
        "Internal memory management structures (likely the PTE or PFN) are corrupted.",
    ),
    only(
        &[0x41283],
        "The working set index encoded in the PTE is corrupted.",
    ),
    only(&[0x41284], "A PTE or the working set list is corrupted."),
    only(
        &[0x41286],
        "The caller is trying to free an invalid pool address.",
    ),
    Case {
        values: &[0x41287],
        cause: "An illegal page fault occurred while holding working set synchronization.",
        others: [mem("The referenced virtual address"), U, U],
    },
    only(&[0x41785], "The working set list is corrupted."),
    Case {
        values: &[0x41790],
        cause: "A page table page has been corrupted.",
        others: [
            mem(
                "64-bit: the address of the PFN for the corrupted page table page; 32-bit: a \
                 pointer to the number of used PTEs",
            ),
            val("32-bit: the number of used PTEs"),
            U,
        ],
    },
    Case {
        values: &[0x41792],
        cause: "A corrupted PTE has been detected.",
        others: [
            mem("The address of the PTE"),
            val("The low part of the PTE"),
            val("The high part of the PTE"),
        ],
    },
    only(&[0x61940], "A PDE has been unexpectedly invalidated."),
    Case {
        values: &[0x61941],
        cause: "The paging hierarchy is corrupt.",
        others: [mem("The virtual address which caused the fault"), U, U],
    },
    only(
        &[0x61946],
        "The MDL being created is flawed; almost always the driver calling \
         MmProbeAndLockPages is at fault.",
    ),
    Case {
        values: &[0x61949],
        cause: "The IoPageFrameNode is null.",
        others: [val("PageFrameIndex"), U, U],
    },
    only(
        &[0x0303_0303],
        "The boot loader is broken (Intel Itanium only).",
    ),
    Case {
        values: &[0x0303_0308],
        cause: "The range to remove (or truncate) is in use by the loader, so it cannot be \
                safely removed.",
        others: [val("HighestPhysicalPage"), U, U],
    },
];

/// 0x13A: Parameters 2-4 mean the same for every Parameter 1 value.
const HEAP: [ParamMeaning; 3] = [
    mem("Address of the heap that reported the corruption"),
    mem("Address at which the corruption was detected"),
    RESERVED,
];

const fn heap(values: &'static [u64], cause: &'static str) -> Case {
    Case {
        values,
        cause,
        others: HEAP,
    }
}

const INVALID_STATE: &str = "The heap detected invalid internal state during the current \
                             operation, usually the result of a buffer overflow.";

const KERNEL_MODE_HEAP_CORRUPTION: &[Case] = &[
    heap(&[0x3], "A corrupt entry header was detected."),
    heap(&[0x4], "Multiple corrupt entry headers were detected."),
    heap(
        &[0x5],
        "A corrupt entry header in a large allocation was detected.",
    ),
    heap(
        &[0x6],
        "A corruption was detected with features consistent with a buffer overrun.",
    ),
    heap(
        &[0x7],
        "A corruption was detected with features consistent with a buffer underrun.",
    ),
    heap(
        &[0x8, 0xF],
        "A free block was passed to an operation that is only valid for busy blocks.",
    ),
    heap(
        &[0x9],
        "An invalid argument was specified for the current operation.",
    ),
    heap(&[0xA], "An invalid allocation type was detected."),
    heap(
        &[0xB],
        "A corruption was detected with features consistent with a use-after-free error.",
    ),
    heap(
        &[0xC],
        "The wrong heap was specified for the current operation.",
    ),
    heap(&[0xD], "A corrupt free list was detected."),
    heap(
        &[0xE],
        "The heap detected list corruption in a list other than the free list.",
    ),
    heap(&[0x10, 0x11, 0x12], INVALID_STATE),
    heap(&[0x13], "The heap API was passed a NULL heap handle."),
    heap(
        &[0x14],
        "The requested heap allocation is larger than the current allocation limit.",
    ),
    heap(
        &[0x15],
        "Performing a commit request would exceed the current commit limit.",
    ),
    heap(
        &[0x16],
        "A query of the size of a VA Manager allocation was invalid.",
    ),
];

pub(super) const CHECKS: &[Check] = &[
    Check {
        code: 0x1A,
        page: "bug-check-0x1a--memory-management",
        summary: "A severe memory management error occurred.",
        layout: Layout::Cases {
            selector: 1,
            selector_meaning: val("Type of violation (the only parameter of interest)"),
            cases: MEMORY_MANAGEMENT,
            complete: true,
        },
    },
    Check {
        code: 0x50,
        page: "bug-check-0x50--page-fault-in-nonpaged-area",
        summary: "Invalid system memory has been referenced: typically the address is wrong or \
                  points at freed memory.",
        layout: Layout::Fixed([
            mem("Memory address referenced"),
            val("0: read, 1: write, 2 or 8: execute"),
            code("Address that referenced memory (if known)"),
            val(
                "Type of page fault (0x3: NONPAGED_BUGCHECK_WRONG_SESSION, 0x4: \
                 NONPAGED_BUGCHECK_VA_NOT_CANONICAL)",
            ),
        ]),
    },
    Check {
        code: 0xCB,
        page: "bug-check-0xcb--driver-left-locked-pages-in-process",
        summary: "A driver or the I/O manager failed to release locked pages after an I/O \
                  operation.",
        layout: Layout::Fixed([
            code(
                "Calling address in the driver that locked the pages (if the I/O manager \
                  locked them: the dispatch routine of the top driver the IRP was sent to)",
            ),
            mem(
                "Caller of that calling address (if the I/O manager locked the pages: the \
                 device object of the top driver the IRP was sent to)",
            ),
            mem("Address of the MDL containing the locked pages"),
            val("Number of locked pages"),
        ]),
    },
    Check {
        code: 0x13A,
        page: "bug-check-0x13a--kernel-mode-heap-corruption",
        summary: "The kernel mode heap manager has detected corruption in a heap.",
        layout: Layout::Cases {
            selector: 1,
            selector_meaning: val("Type of corruption detected"),
            cases: KERNEL_MODE_HEAP_CORRUPTION,
            complete: true,
        },
    },
];

#[cfg(test)]
mod tests {
    use super::super::describe::UNDOCUMENTED_CASE;
    use super::super::{describe, ParamKind};

    #[test]
    fn heap_corruption_per_parameter_1() {
        let d = describe(
            0x13A,
            [0x11, 0xffff_e001_0000_0000, 0xffff_e001_0000_2340, 0],
        );
        assert_eq!(d.name.unwrap().name, "KERNEL_MODE_HEAP_CORRUPTION");
        let p = d.page.unwrap();
        assert!(p.case.unwrap().cause.contains("buffer overflow"));
        assert_eq!(p.params[0].text, "Type of corruption detected");
        assert_eq!(
            p.params[1].text,
            "Address of the heap that reported the corruption"
        );
        assert!(p.params[2].kind.is_address());
        assert_eq!(p.params[3].kind, ParamKind::Reserved);
        let p = describe(0x13A, [0xB, 0, 0, 0]).page.unwrap();
        assert!(p.case.unwrap().cause.contains("use-after-free"));
        let p = describe(0x13A, [0x2, 0, 0, 0]).page.unwrap();
        assert_eq!(p.case.unwrap().cause, UNDOCUMENTED_CASE);
    }

    #[test]
    fn memory_management_free_pool_slist() {
        let p = describe(0x1A, [0x5200, 0xffff_c001_0000_1000, 1, 2])
            .page
            .unwrap();
        assert_eq!(p.params[1].kind, ParamKind::PoolBlock);
        assert_eq!(
            p.params[3].text,
            "The value that was expected at that address"
        );
        let p = describe(0x1A, [0x41790, 0, 0, 0]).page.unwrap();
        assert_eq!(p.params[3].kind, ParamKind::Undocumented);
    }
}
