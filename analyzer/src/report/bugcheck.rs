//! The `bugcheck.description` member of the inspect and analyze reports: what the code's page of
//! Microsoft's bug check code reference says the four parameters mean, with module+offset for
//! the addresses and the characters of pool tags (docs/json.md, "bugcheck description").

use super::hex::Hex;
use crate::kernel::bugcheck::describe::REFERENCE_URL;
use crate::kernel::bugcheck::{describe, module_offset, ParamKind, ParamMeaning};
use crate::kernel::Module;
use crate::pool::tag::Tag;
use serde::{Deserialize, Serialize};

/// What the code's page says, for a code whose page this tool carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BugcheckDescriptionReport {
    /// The page's one-sentence description of the check.
    pub summary: String,
    /// The page's address.
    pub page: String,
    /// 1-based: the parameter whose value selects what the others mean; null when each
    /// parameter has one meaning.
    pub selected_by: Option<u8>,
    /// What the page says the selecting value means; "reserved / undocumented value" when the
    /// page does not list it; null when nothing selects.
    pub cause: Option<String>,
    /// Whether the page lists the selecting value; null when nothing selects.
    pub case_documented: Option<bool>,
    pub params: [ParamDescriptionReport; 4],
}

/// One parameter with its documented meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDescriptionReport {
    pub value: Hex,
    /// The page's wording, e.g. "The pool entry being checked".
    pub meaning: String,
    pub kind: ParamKind,
    /// Whether the value is a kernel address (kind code, pool_block or memory).
    pub address: bool,
    /// "module+0xoffset" for an address inside a loaded module, else null.
    pub module_offset: Option<String>,
    /// A pool tag's four characters (non-printable bytes as `\xNN`), else null.
    pub tag: Option<String>,
}

/// The description of `code` with `params`, or `None` when this tool does not carry the code's
/// page.
pub fn describe_bugcheck(
    code: u32,
    params: [u64; 4],
    modules: &[Module],
) -> Option<BugcheckDescriptionReport> {
    let page = describe(code, params).page?;
    // `i` < 4: both arrays have four elements.
    let params = std::array::from_fn(|i| param_report(params[i], page.params[i], modules));
    Some(BugcheckDescriptionReport {
        summary: page.summary.to_string(),
        page: format!("{REFERENCE_URL}{}", page.page),
        selected_by: page.case.map(|c| c.selector),
        cause: page.case.map(|c| c.cause.to_string()),
        case_documented: page.case.map(|c| c.documented),
        params,
    })
}

fn param_report(value: u64, meaning: ParamMeaning, modules: &[Module]) -> ParamDescriptionReport {
    let address = meaning.kind.is_address();
    ParamDescriptionReport {
        value: Hex(value),
        meaning: meaning.text.to_string(),
        kind: meaning.kind,
        address,
        module_offset: address.then(|| module_offset(value, modules)).flatten(),
        // A tag is a ULONG: the low four bytes.
        tag: (meaning.kind == ParamKind::PoolTag).then(|| Tag::from_u32(value as u32).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pool_caller_wrong_tag() {
        let r = describe_bugcheck(
            0xC2,
            [0x0A, 0xffff_c001_0000_1000, 0x6b61_654c, 0x656e_6f4e],
            &[],
        )
        .unwrap();
        assert_eq!(r.selected_by, Some(1));
        assert_eq!(r.case_documented, Some(true));
        assert!(r.page.ends_with("/bug-check-0xc2--bad-pool-caller"));
        assert_eq!(r.params[1].kind, ParamKind::PoolBlock);
        assert!(r.params[1].address);
        assert_eq!(r.params[2].tag.as_deref(), Some("Leak"));
        assert_eq!(r.params[3].tag.as_deref(), Some("None"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["params"][1]["kind"], "pool_block");
        assert_eq!(json["params"][2]["value"], "0x6b61654c");
    }

    #[test]
    fn fixed_layout_and_unknown_code() {
        let r = describe_bugcheck(0xD6, [0xffff_c001_0000_2000, 1, 0, 0], &[]).unwrap();
        assert_eq!(
            (r.selected_by, r.cause, r.case_documented),
            (None, None, None)
        );
        assert_eq!(r.params[2].module_offset, None, "no modules");
        assert_eq!(describe_bugcheck(0x1C6, [0; 4], &[]), None);
    }
}
