//! Headers every answer carries, so that a browser gives a hostile page no foothold:
//! - `Content-Security-Policy`: scripts, styles and images from this origin only (the portal
//!   has no inline script or style), no plugins, no `<base>`, forms post here, and no page may
//!   frame ours (clickjacking: `frame-ancestors`, with `X-Frame-Options` for old browsers);
//! - `X-Content-Type-Options: nosniff`: an uploaded file served back is never run as a script
//!   or page because its bytes look like one;
//! - `Referrer-Policy: no-referrer`: dump ids and report URLs in our addresses stay here when a
//!   page links out (Microsoft's bug check pages);
//! - `Cache-Control: no-store` on everything but the static assets (which set their own): pages
//!   and reports hold a tenant's data and must not stay in shared or browser caches.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The middleware: adds the headers a handler did not set itself.
pub async fn add(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}
