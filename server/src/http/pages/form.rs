//! The forms the pages post (delete, retry): their fields, once the session's CSRF token in
//! the form's `csrf` field is checked.

use super::{Nav, PageError, PageUser};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A form with no field but its token (a delete or retry button).
#[derive(Deserialize, Default)]
pub struct Button {}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// The form's fields. A body that does not parse as `T` counts as an empty form, so it is
/// refused for its missing token (403), as is a token not the session's.
pub fn checked<T: DeserializeOwned + Default>(
    user: &PageUser,
    body: &[u8],
    nav: &Nav,
) -> Result<T, PageError> {
    let form = serde_urlencoded::from_bytes::<T>(body).ok();
    let token = form
        .as_ref()
        .and_then(|_| serde_urlencoded::from_bytes::<CsrfField>(body).ok())
        .and_then(|f| f.csrf);
    crate::auth::csrf::check_form(&user.0, token.as_deref())
        .map_err(|e| PageError::new(e.status(), e.to_string(), nav))?;
    Ok(form.unwrap_or_default())
}
