//! Static files, embedded in the binary with `include_str!` (one self-contained executable; no
//! directory to ship or find at run time). Served with a content type and a short cache life:
//! they change with the binary, and the pages are small.

use super::super::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const STYLE_CSS: &str = include_str!("../../../../static/style.css");
const FAVICON_SVG: &str = include_str!("../../../../static/favicon.svg");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/style.css", get(style))
        .route("/static/favicon.svg", get(favicon))
        // Browsers ask for /favicon.ico before reading the page's <link rel="icon">; every
        // current browser renders the SVG served there too.
        .route("/favicon.ico", get(favicon))
}

const CACHE: &str = "public, max-age=300";

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE_CSS,
    )
}

async fn favicon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, CACHE),
        ],
        FAVICON_SVG,
    )
}
