//! Template filters (askama finds `filters::NAME` in the scope of a template's struct: page
//! modules whose templates use one import this module as `filters`).

use askama::{Result, Values};

/// `{{ n|grouped }}`: an integer with thousands separators (`1,234,567`), as
/// [`super::format::count`]; text that is not an integer is left as it is.
#[askama::filter_fn]
pub fn grouped(n: impl std::fmt::Display, _: &dyn Values) -> Result<String> {
    Ok(super::format::count(n))
}
