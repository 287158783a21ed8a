//! System names. A name appears in URLs (`/systems/{name}`), file-picker lists and reports,
//! and is typed by people collecting files from a machine: a host name or asset tag, so a
//! conservative charset that needs no escaping in a path segment, and a length bound.

use thiserror::Error;

/// Longest name: a DNS label is 63, a NetBIOS name 15; 64 leaves room for "host-2026".
pub const MAX_LEN: usize = 64;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    #[error("the system name is empty")]
    Empty,
    #[error("the system name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error(
        "the system name may hold only letters A-Z a-z, digits, '.', '_' and '-' (found {0:?})"
    )]
    BadChar(char),
    #[error("the system name must start with a letter or a digit")]
    BadStart,
}

/// The name, trimmed of surrounding spaces, if it is a valid system name.
pub fn validate(raw: &str) -> Result<String, NameError> {
    let name = raw.trim();
    let first = name.chars().next().ok_or(NameError::Empty)?;
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::BadChar(c));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::BadStart);
    }
    Ok(name.to_string())
}

/// An optional name as upload forms give it: absent or blank is no system.
pub fn optional(raw: Option<&str>) -> Result<Option<String>, NameError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => validate(s).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate(" SQL01 ").unwrap(), "SQL01");
        assert_eq!(validate("web-02.corp_x").unwrap(), "web-02.corp_x");
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate("   "), Err(NameError::Empty));
        assert_eq!(validate("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(validate("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(validate("é"), Err(NameError::BadChar('é')));
        assert_eq!(validate("..x"), Err(NameError::BadStart));
        assert_eq!(validate(&"x".repeat(65)), Err(NameError::TooLong));
        assert!(validate(&"x".repeat(64)).is_ok());
        assert_eq!(optional(Some("  ")), Ok(None));
        assert_eq!(optional(None), Ok(None));
    }
}
