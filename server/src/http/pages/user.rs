//! Who is looking at a page: the session cookie or a bearer token (`crate::auth::Principal`),
//! with a browser-friendly answer when neither is there.

use crate::auth::{AuthError, AuthState, Principal};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The caller of a page. Without credentials the browser is sent (303) to
/// `/login?next=<this page>`, so it comes back here after signing in; a revoked or expired
/// session is treated the same way. Other auth failures keep their status.
#[derive(Debug, Clone)]
pub struct PageUser(pub Principal);

impl PageUser {
    /// Tenant filter for queries: `Some(tenant)` for a customer, `None` (every tenant) for
    /// support and admin.
    pub fn tenant_filter(&self) -> Option<&str> {
        self.0.tenant_filter()
    }
}

impl<S> FromRequestParts<S> for PageUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await {
            Ok(p) => Ok(PageUser(p)),
            Err(AuthError::Unauthorized) => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map(|pq| pq.as_str())
                    .unwrap_or("/");
                Err(login_redirect(here))
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// `303 See Other` to the login form, carrying the page to come back to.
pub fn login_redirect(next: &str) -> Response {
    let location = format!("/login?next={}", percent_encode(next));
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so `/`, `?`, `&`, `=` of the
/// page address cannot split the login query).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_one_query_value() {
        assert_eq!(
            percent_encode("/dumps?status=done&x=1"),
            "%2Fdumps%3Fstatus%3Ddone%26x%3D1"
        );
        assert_eq!(percent_encode("/a b"), "%2Fa%20b");
        let r = login_redirect("/dumps/abc");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/login?next=%2Fdumps%2Fabc");
    }
}
