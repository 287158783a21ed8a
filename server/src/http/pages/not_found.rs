//! The answer to a path no route serves: a branded HTML page for people, the API's JSON error
//! for `/api/` callers (a ticket system parsing JSON must not get an HTML page).
//!
//! The page does not need a signed-in user: an unknown path says nothing about any dump, and a
//! visitor who mistyped a link should see where to go next, not a sign-in form.

use super::super::ApiError;
use askama::Template;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage;

pub async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_route",
            "no such API route (see docs/api.md)",
        )
        .into_response();
    }
    super::render_status(StatusCode::NOT_FOUND, &NotFoundPage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_get_html_and_the_api_gets_json() {
        let page = fallback(Uri::from_static("/no/such/page")).await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        let ct = page.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{ct}");
        let body = axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("Page not found") && html.contains("href=\"/dumps\""));

        let api = fallback(Uri::from_static("/api/v1/nothing")).await;
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(api.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "no_such_route");
    }
}
