//! The few cookie operations auth needs, written out rather than pulling in a cookie crate:
//! find one cookie in a `Cookie` header, and build a `Set-Cookie` value with the right flags.

use axum::http::header::COOKIE;
use axum::http::HeaderMap;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "pt_session";

/// The value of cookie `name` in the request's `Cookie` headers, if present.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value: HttpOnly (scripts cannot read it), SameSite=Lax (not sent on cross-site
/// POSTs), Path=/, and Secure when the service is served over TLS (a Secure cookie is never sent
/// over plain HTTP, which would break a plain-HTTP deployment, hence the switch).
/// `max_age_secs` 0 deletes the cookie.
pub fn set(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}");
    if secure {
        s.push_str("; Secure");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_a_cookie_among_several_headers_and_pairs() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; pt_session_x=no"));
        h.append(COOKIE, HeaderValue::from_static("b=2;pt_session=abc ; c=3"));
        assert_eq!(get(&h, "pt_session"), Some("abc"));
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "missing"), None);
        assert_eq!(get(&HeaderMap::new(), "a"), None);
    }

    #[test]
    fn set_cookie_carries_the_security_flags() {
        let v = set("pt_session", "abc", 3600, false);
        assert_eq!(
            v,
            "pt_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"
        );
        assert!(set("pt_session", "abc", 0, true).ends_with("Max-Age=0; Secure"));
    }
}
