//! Parameters of the common non-pool checks a pool triage meets: the unhandled exceptions
//! (0x1E, 0x3B, 0x7E), the manual crashes (0xE2, 0x1C8), CRITICAL_PROCESS_DIED (0xEF) and
//! DPC_WATCHDOG_VIOLATION (0x133, per Parameter 1), from the codes' pages of Microsoft's bug
//! check code reference (MicrosoftDocs/windows-driver-docs, revisions of 2017-2019).

use super::describe::{code, mem, val, Case, Check, Layout, NONE, RESERVED, ZERO};

const DPC_WATCHDOG: &[Case] = &[
    Case {
        values: &[0],
        cause: "A single DPC or ISR exceeded its time allotment; the offending component can \
                usually be identified with a stack trace.",
        others: [
            val("The DPC time count (in ticks)"),
            val("The DPC time allotment (in ticks)"),
            RESERVED,
        ],
    },
    Case {
        values: &[1],
        cause: "The system cumulatively spent an extended period of time at IRQL \
                DISPATCH_LEVEL or above.",
        others: [val("The watchdog period"), RESERVED, RESERVED],
    },
];

const EXCEPTION_CODE: super::ParamMeaning = val("The exception code that was not handled");

pub(super) const CHECKS: &[Check] = &[
    Check {
        code: 0x1E,
        page: "bug-check-0x1e--kmode-exception-not-handled",
        summary: "A kernel-mode program generated an exception which the error handler did not \
                  catch.",
        layout: Layout::Fixed([
            EXCEPTION_CODE,
            code("The address at which the exception occurred"),
            val("Parameter 0 of the exception"),
            val(
                "Parameter 1 of the exception (for 0xC0000005, the address the driver \
                 attempted to access)",
            ),
        ]),
    },
    Check {
        code: 0x3B,
        page: "bug-check-0x3b--system-service-exception",
        summary: "An exception happened while executing a routine that transitions from \
                  non-privileged code to privileged code.",
        layout: Layout::Fixed([
            val("The exception that caused the bug check"),
            code("The address of the instruction that caused the bug check"),
            mem("The address of the context record for the exception that caused the bug check"),
            ZERO,
        ]),
    },
    Check {
        code: 0x7E,
        page: "bug-check-0x7e--system-thread-exception-not-handled",
        summary: "A system thread generated an exception that the error handler did not catch.",
        layout: Layout::Fixed([
            EXCEPTION_CODE,
            code("The address where the exception occurred"),
            mem("The address of the exception record"),
            mem("The address of the context record"),
        ]),
    },
    Check {
        code: 0xE2,
        page: "bug-check-0xe2--manually-initiated-crash",
        summary: "The user deliberately initiated a crash dump from either the kernel debugger \
                  or the keyboard.",
        layout: Layout::Fixed([NONE; 4]),
    },
    Check {
        code: 0xEF,
        page: "bug-check-0xef--critical-process-died",
        summary: "A critical system process died.",
        layout: Layout::Fixed([
            mem("The process object"),
            val("0: a process died, 1: a thread died"),
            RESERVED,
            RESERVED,
        ]),
    },
    Check {
        code: 0x133,
        page: "bug-check-0x133-dpc-watchdog-violation",
        summary: "The DPC watchdog executed: a single long-running DPC, or a prolonged time at \
                  IRQL DISPATCH_LEVEL or above.",
        layout: Layout::Cases {
            selector: 1,
            selector_meaning: val("Type of violation"),
            cases: DPC_WATCHDOG,
            complete: true,
        },
    },
    Check {
        code: 0x1C8,
        page: "bug-check-0x1c8--manually-initiated-power-button-hold",
        summary: "The system was configured to bug check when the user holds the power button: \
                  a diagnostic dump taken before a hard reset.",
        layout: Layout::Fixed([
            val("Time in milliseconds the power button was held down"),
            mem("Pointer to nt!_POP_POWER_BUTTON_TRIAGE_BLOCK"),
            RESERVED,
            RESERVED,
        ]),
    },
];

#[cfg(test)]
mod tests {
    use super::super::{describe, ParamKind};

    #[test]
    fn corpus_triage_dump_parameters() {
        // triage_x64.dmp: 0x1000007E with the exception address in amdppm.sys.
        let d = describe(
            0x1000_007E,
            [
                0xffff_ffff_c000_0005,
                0xfffff804_8b58334c,
                0xffff8504_29891ee8,
                0,
            ],
        );
        assert_eq!(
            d.name.unwrap().name,
            "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"
        );
        let p = d.page.unwrap();
        assert_eq!(p.params[0].text, "The exception code that was not handled");
        assert_eq!(p.params[1].kind, ParamKind::Code);
        assert_eq!(p.params[2].text, "The address of the exception record");
    }

    #[test]
    fn power_button_and_watchdog() {
        let p = describe(0x1C8, [7000, 0xffff_f000_0000_1000, 0, 0])
            .page
            .unwrap();
        assert_eq!(p.params[1].kind, ParamKind::Memory);
        let p = describe(0x133, [1, 0x1e00, 0, 0]).page.unwrap();
        assert_eq!(p.params[1].text, "The watchdog period");
        let p = describe(0xE2, [0; 4]).page.unwrap();
        assert!(p.params.iter().all(|m| m.kind == ParamKind::Reserved));
    }
}
