//! CSRF protection for HTML forms.
//!
//! Two mechanisms, each where it fits:
//! - **Synchronizer token** for a logged-in browser: each session has a random secret (stored with
//!   the session); every state-changing form carries it in the hidden field [`FORM_FIELD`] and the
//!   handler calls [`check_form`]. A cross-site page cannot read it, so it cannot forge the POST.
//! - **Double submit** for the login form itself (there is no session yet): `GET /login` sets the
//!   cookie [`LOGIN_COOKIE`] and puts the same random value in the form; `POST /login` requires
//!   both to match ([`check_double_submit`]). This stops "login CSRF" (a site logging the victim in
//!   with the attacker's token).
//!
//! SameSite=Lax on the cookies is a second layer, not the only one.

use super::role::Principal;
use super::token::constant_time_eq;
use super::AuthError;

/// Name of the hidden form field that carries the CSRF token.
pub const FORM_FIELD: &str = "csrf";

/// Cookie that carries the login form's double-submit value.
pub const LOGIN_COOKIE: &str = "pt_login_csrf";

/// Check a state-changing form POST. A bearer-token request passes (browsers never send that
/// header by themselves); a session request must carry its session's secret.
pub fn check_form(principal: &Principal, submitted: Option<&str>) -> Result<(), AuthError> {
    match &principal.csrf {
        None => Ok(()),
        Some(secret) => match submitted {
            Some(s) if !secret.is_empty() && constant_time_eq(s.as_bytes(), secret.as_bytes()) => {
                Ok(())
            }
            _ => Err(AuthError::BadCsrf),
        },
    }
}

/// Check the login form: the hidden field must equal the cookie set with the form.
pub fn check_double_submit(cookie: Option<&str>, field: Option<&str>) -> Result<(), AuthError> {
    match (cookie, field) {
        (Some(c), Some(f)) if c.len() >= 32 && constant_time_eq(c.as_bytes(), f.as_bytes()) => {
            Ok(())
        }
        _ => Err(AuthError::BadCsrf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn session(csrf: Option<&str>) -> Principal {
        Principal {
            token_id: "t".into(),
            tenant: "acme".into(),
            role: Role::Customer,
            csrf: csrf.map(str::to_string),
        }
    }

    #[test]
    fn session_forms_need_the_session_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        let p = session(Some(secret));
        assert!(check_form(&p, Some(secret)).is_ok());
        assert!(matches!(check_form(&p, None), Err(AuthError::BadCsrf)));
        assert!(matches!(check_form(&p, Some("")), Err(AuthError::BadCsrf)));
        assert!(matches!(
            check_form(&p, Some("0123456789abcdef0123456789abcdee")),
            Err(AuthError::BadCsrf)
        ));
        // Another session's secret is not this session's.
        assert!(check_form(
            &session(Some("ffffffffffffffffffffffffffffffff")),
            Some(secret)
        )
        .is_err());
        // A session whose secret is somehow empty never accepts an empty field.
        assert!(check_form(&session(Some("")), Some("")).is_err());
    }

    #[test]
    fn bearer_requests_need_no_form_token() {
        assert!(check_form(&session(None), None).is_ok());
    }

    #[test]
    fn login_double_submit_needs_matching_cookie_and_field() {
        let v = "a".repeat(64);
        assert!(check_double_submit(Some(&v), Some(&v)).is_ok());
        assert!(check_double_submit(None, Some(&v)).is_err());
        assert!(check_double_submit(Some(&v), None).is_err());
        assert!(check_double_submit(Some(&v), Some(&"b".repeat(64))).is_err());
        // Too short to be one we made.
        assert!(check_double_submit(Some("x"), Some("x")).is_err());
    }
}
