//! What the upload routes read from a request's headers before its body: the CSRF header of a
//! cookie-authenticated caller, the size the client announces, and whether the body is a
//! multipart form. One reading of each, so the dump, log and symbol uploads agree.

use super::ApiError;
use axum::http::{header, HeaderMap, StatusCode};

/// Bytes a multipart body may carry beyond its file: boundaries, part headers, small fields.
const MULTIPART_FRAMING: u64 = 64 * 1024;

/// The `X-CSRF-Token` header a session-authenticated caller must send (bearer callers need
/// none; `crate::auth::csrf::check_form` decides).
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

/// The body is `multipart/form-data` (a browser form); else it is the file's raw bytes.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// `Content-Length` announces more than `limit` bytes of file (with room for multipart
/// framing): refused before a byte is read. No or an unreadable header: not known yet.
pub fn announces_more_than(headers: &HeaderMap, limit: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit.saturating_add(MULTIPART_FRAMING))
}

/// 413 `upload_too_large`.
pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("upload larger than the limit of {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn announced_size_is_judged_with_room_for_the_form() {
        assert!(!announces_more_than(&headers(&[]), 10));
        assert!(!announces_more_than(
            &headers(&[("content-length", "x")]),
            10
        ));
        assert!(!announces_more_than(
            &headers(&[("content-length", "65546")]),
            10
        ));
        assert!(announces_more_than(
            &headers(&[("content-length", "65547")]),
            10
        ));
        assert!(!announces_more_than(
            &headers(&[("content-length", "5")]),
            u64::MAX
        ));
    }

    #[test]
    fn multipart_and_csrf_headers() {
        let h = headers(&[
            ("content-type", "Multipart/Form-Data; boundary=x"),
            ("x-csrf-token", "abc"),
        ]);
        assert!(is_multipart(&h));
        assert_eq!(csrf_header(&h), Some("abc"));
        let raw = headers(&[("content-type", "application/octet-stream")]);
        assert!(!is_multipart(&raw) && !is_multipart(&headers(&[])));
        assert_eq!(csrf_header(&raw), None);
    }
}
