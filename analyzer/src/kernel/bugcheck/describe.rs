//! What a bug check's parameters mean, as the code's page of Microsoft's bug check code
//! reference documents them (the pages are cited per check in the `checks_*` files).
//!
//! Some checks give each parameter one meaning; others (BAD_POOL_HEADER, BAD_POOL_CALLER,
//! DRIVER_VERIFIER_DETECTED_VIOLATION...) let one parameter, usually Parameter 1, select which
//! case applies and so what the others mean. A selecting value the page does not list is
//! reported as such, never guessed.

use super::{base_code, bugcheck_name, BugcheckName};

/// Where the pages live; a check's `page` is appended.
pub const REFERENCE_URL: &str = "https://learn.microsoft.com/windows-hardware/drivers/debugger/";

/// The cause given for a selecting value that a check's page does not list.
pub const UNDOCUMENTED_CASE: &str = "reserved / undocumented value";

/// The cause given for a selecting value outside the cases carried here, for checks whose page
/// lists more cases than this tool carries (only the pool-related ones of 0xC4 are).
pub const CASE_NOT_CARRIED: &str =
    "a value whose meaning this tool does not carry (see the code's reference page)";

/// What kind of value a parameter holds. The address kinds say what a report can do with it:
/// show module+offset, or (for a pool block) the block at that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// An instruction or routine address (module+offset applies).
    Code,
    /// The address of a pool block, its header, or memory inside or just past one.
    PoolBlock,
    /// Another kernel address: referenced memory, a structure (MDL, process, record...).
    Memory,
    /// A pool tag (four characters, little-endian).
    PoolTag,
    /// A POOL_TYPE value (0 nonpaged, 1 paged...).
    PoolType,
    /// A number: a size, a count, an IRQL, a status, flags, a selector.
    Value,
    /// Reserved, zero, or no parameter at all.
    Reserved,
    /// The page documents nothing for this parameter in this case.
    Undocumented,
}

impl ParamKind {
    /// Whether the value is a kernel address.
    pub fn is_address(self) -> bool {
        matches!(
            self,
            ParamKind::Code | ParamKind::PoolBlock | ParamKind::Memory
        )
    }
}

/// The documented meaning of one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamMeaning {
    /// The page's wording, e.g. "The pool entry being checked".
    pub text: &'static str,
    pub kind: ParamKind,
}

/// The case a selecting parameter's value picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseMatch {
    /// 1-based: which parameter selects (Parameter 4 for 0xC1, else Parameter 1).
    pub selector: u8,
    /// The page's "cause of error" for that value, or [`UNDOCUMENTED_CASE`] /
    /// [`CASE_NOT_CARRIED`].
    pub cause: &'static str,
    /// Whether the page lists the value.
    pub documented: bool,
}

/// What the code's reference page says about a crash with these parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageDescription {
    /// The page, e.g. "bug-check-0x19--bad-pool-header" (under [`REFERENCE_URL`]).
    pub page: &'static str,
    /// The page's one-sentence description of the check.
    pub summary: &'static str,
    /// For checks whose parameters depend on a selecting parameter.
    pub case: Option<CaseMatch>,
    pub params: [ParamMeaning; 4],
}

/// A bugcheck with its name and, when this tool carries the code's page, what its parameters
/// mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugcheckDescription {
    pub code: u32,
    /// The code without the "_M" flag: the check whose page applies.
    pub base_code: u32,
    pub name: Option<BugcheckName>,
    /// `None` for a code whose parameters this tool does not describe.
    pub page: Option<PageDescription>,
}

/// One check's page, as the `checks_*` files transcribe it.
#[derive(Debug)]
pub(super) struct Check {
    pub code: u32,
    pub page: &'static str,
    pub summary: &'static str,
    pub layout: Layout,
}

#[derive(Debug)]
pub(super) enum Layout {
    /// The same meaning for each parameter whatever the values.
    Fixed([ParamMeaning; 4]),
    /// Parameter `selector` (1-based) picks a case, which gives the other three meanings.
    Cases {
        selector: u8,
        selector_meaning: ParamMeaning,
        cases: &'static [Case],
        /// Whether `cases` holds every value the page lists.
        complete: bool,
    },
}

/// One documented value (or set of values sharing a row) of a selecting parameter.
#[derive(Debug)]
pub(super) struct Case {
    pub values: &'static [u64],
    pub cause: &'static str,
    /// The other three parameters, in parameter order (the selector left out).
    pub others: [ParamMeaning; 3],
}

pub(super) const fn code(text: &'static str) -> ParamMeaning {
    ParamMeaning {
        text,
        kind: ParamKind::Code,
    }
}
pub(super) const fn block(text: &'static str) -> ParamMeaning {
    ParamMeaning {
        text,
        kind: ParamKind::PoolBlock,
    }
}
pub(super) const fn mem(text: &'static str) -> ParamMeaning {
    ParamMeaning {
        text,
        kind: ParamKind::Memory,
    }
}
pub(super) const fn tag(text: &'static str) -> ParamMeaning {
    ParamMeaning {
        text,
        kind: ParamKind::PoolTag,
    }
}
pub(super) const fn val(text: &'static str) -> ParamMeaning {
    ParamMeaning {
        text,
        kind: ParamKind::Value,
    }
}
pub(super) const fn reserved(text: &'static str) -> ParamMeaning {
    ParamMeaning {
        text,
        kind: ParamKind::Reserved,
    }
}
pub(super) const POOL_TYPE: ParamMeaning = ParamMeaning {
    text: "Pool type",
    kind: ParamKind::PoolType,
};
pub(super) const RESERVED: ParamMeaning = reserved("Reserved");
pub(super) const ZERO: ParamMeaning = reserved("0");
/// For pages whose parameter section reads "None".
pub(super) const NONE: ParamMeaning = reserved("None (the page documents no parameters)");
pub(super) const UNDOCUMENTED: ParamMeaning = ParamMeaning {
    text: "Not documented for this value",
    kind: ParamKind::Undocumented,
};
/// "0: Read, 1: Write", as most page-fault checks give Parameter 2 or 3.
pub(super) const READ_WRITE: ParamMeaning = val("0: read, 1: write");

/// Every check whose page is transcribed (no code twice: a test checks it).
fn checks() -> impl Iterator<Item = &'static Check> {
    [
        super::checks_pool::CHECKS,
        super::checks_pool_header::CHECKS,
        super::checks_verifier::CHECKS,
        super::checks_memory::CHECKS,
        super::checks_system::CHECKS,
    ]
    .into_iter()
    .flatten()
}

fn find_check(base: u32) -> Option<&'static Check> {
    checks().find(|c| c.code == base)
}

/// The name of `code` and, when its page is transcribed, what `params` mean. Codes 0x1000_00XX
/// are described by their base code's page.
pub fn describe(code: u32, params: [u64; 4]) -> BugcheckDescription {
    let base = base_code(code);
    BugcheckDescription {
        code,
        base_code: base,
        name: bugcheck_name(code),
        page: find_check(base).map(|c| page_description(c, &params)),
    }
}

fn page_description(check: &Check, params: &[u64; 4]) -> PageDescription {
    let (case, meanings) = match &check.layout {
        Layout::Fixed(p) => (None, *p),
        Layout::Cases {
            selector,
            selector_meaning,
            cases,
            complete,
        } => select(*selector, *selector_meaning, cases, *complete, params),
    };
    PageDescription {
        page: check.page,
        summary: check.summary,
        case,
        params: meanings,
    }
}

/// The case the selecting parameter's value picks, and the four meanings.
fn select(
    selector: u8,
    selector_meaning: ParamMeaning,
    cases: &[Case],
    complete: bool,
    params: &[u64; 4],
) -> (Option<CaseMatch>, [ParamMeaning; 4]) {
    let slot = usize::from(selector.clamp(1, 4) - 1);
    let value = params.get(slot).copied().unwrap_or(0);
    let found = cases.iter().find(|c| c.values.contains(&value));
    let (cause, others) = match found {
        Some(c) => (c.cause, c.others),
        None if complete => (UNDOCUMENTED_CASE, [UNDOCUMENTED; 3]),
        None => (CASE_NOT_CARRIED, [UNDOCUMENTED; 3]),
    };
    let mut others = others.into_iter();
    let meanings = std::array::from_fn(|i| {
        if i == slot {
            selector_meaning
        } else {
            others.next().unwrap_or(UNDOCUMENTED)
        }
    });
    let case = CaseMatch {
        selector: selector.clamp(1, 4),
        cause,
        documented: found.is_some(),
    };
    (Some(case), meanings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_unique_and_named_as_their_pages() {
        let codes: Vec<u32> = checks().map(|c| c.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "a code transcribed twice");
        for c in checks() {
            let name = bugcheck_name(c.code)
                .expect("named")
                .name
                .to_ascii_lowercase();
            let slug = name.replace('_', "-");
            assert!(c.page.starts_with("bug-check-0x"), "{}", c.page);
            assert!(c.page.ends_with(&slug), "{} {}", c.page, slug);
        }
    }

    #[test]
    fn case_values_unique_within_a_check() {
        for c in checks() {
            if let Layout::Cases { cases, .. } = &c.layout {
                let mut v: Vec<u64> = cases
                    .iter()
                    .flat_map(|k| k.values.iter().copied())
                    .collect();
                let n = v.len();
                v.sort_unstable();
                v.dedup();
                assert_eq!(v.len(), n, "{:#x}", c.code);
            }
        }
    }

    #[test]
    fn unknown_code_has_no_page() {
        let d = describe(0x12345, [0; 4]);
        assert_eq!((d.name, d.page), (None, None));
        let d = describe(0x1000_007E, [0xC000_0005, 0xfffff804_8b58334c, 0, 0]);
        assert_eq!(d.base_code, 0x7E);
        let p = d.page.expect("0x7E page");
        assert_eq!(p.params[1].kind, ParamKind::Code);
        assert_eq!(p.case, None);
    }
}
