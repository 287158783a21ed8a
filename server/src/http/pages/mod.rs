//! Server-rendered HTML pages: the upload portal, the dump list, a dump's page
//! (live status, then the report), a driver's drill-down and the support dashboard.
//!
//! Why server-rendered: support engineers open these pages from tickets, often on locked-down
//! machines; every page works without JavaScript (the upload page's `static/upload.js` only adds
//! drag and drop, progress and resumable uploads on top of a plain form). Templates are askama
//! files in `templates/` at the repository root (compiled into the binary, escaped by default);
//! CSS is embedded with `include_str!` so the single binary needs no files beside it.
//!
//! Everything that comes from a dump (module names, tags, paths) is hostile input: it only ever
//! reaches HTML through askama's escaping or through [`svg`]'s own escaping. See docs/pages.md.

mod assets;
mod dashboard;
mod dump;
pub(crate) mod format;
mod list;
mod not_found;
mod problems;
mod provenance_view;
mod report_view;
mod stack_view;
pub(crate) mod svg;
mod symbols;
mod systems;
pub(crate) mod trend_charts;
mod upload;
mod user;

use super::AppState;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
pub use not_found::fallback;
pub use user::{percent_encode, PageUser};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(upload::page))
        .route("/upload", upload::post_route())
        .route("/dumps", get(list::page))
        .route("/dumps/{id}", get(dump::page))
        .route("/dumps/{id}/drivers/{module}", get(dump::driver_page))
        .route("/dumps/{id}/delete", axum::routing::post(dump::delete))
        .route("/dumps/{id}/retry", axum::routing::post(dump::retry))
        .route("/systems", get(systems::list))
        .route("/systems/{name}", get(systems::page))
        .route(
            "/systems/{name}/logs",
            axum::routing::post(systems::upload_log)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/systems/{name}/logs/{id}/delete",
            axum::routing::post(systems::delete_log),
        )
        .route("/dashboard", get(dashboard::page))
        .route("/problems", get(problems::list))
        .route("/problems/{id}", get(problems::page).post(problems::update))
        .route(
            "/problems/{id}/comments",
            axum::routing::post(problems::comment),
        )
        .route("/symbols", get(symbols::page).merge(symbols::post_route()))
        .route("/symbols/{id}/delete", axum::routing::post(symbols::delete))
        .merge(assets::routes())
}

/// What the base layout (`templates/base.html`) needs on every page: who is signed in and the
/// session's CSRF token for the logout form (absent for a bearer-token request, which has no
/// session to end).
#[derive(Debug, Clone)]
pub struct Nav {
    pub tenant: String,
    pub role: &'static str,
    pub support: bool,
    pub csrf: Option<String>,
    /// Which nav entry is the current page ("upload", "dumps", "dashboard").
    pub active: &'static str,
}

impl Nav {
    pub fn new(user: &PageUser, active: &'static str) -> Nav {
        Nav {
            tenant: user.0.tenant.clone(),
            role: user.0.role.as_str(),
            support: user.0.role.sees_all_tenants(),
            csrf: user.0.csrf.clone(),
            active,
        }
    }

    /// The CSRF token for forms and `<meta name="csrf-token">` (empty for a bearer request, which
    /// needs none).
    pub fn csrf_token(&self) -> &str {
        self.csrf.as_deref().unwrap_or("")
    }
}

/// Renders a template as a 200 HTML page (a template error is logged and answered with 500).
pub fn render<T: Template>(t: &T) -> Response {
    render_status(StatusCode::OK, t)
}

pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("template: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (template)",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    title: &'a str,
    message: &'a str,
    status: u16,
}

/// An error as an HTML page: the same answer for "does not exist" and "another tenant's", so
/// ids cannot be probed.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    pub nav: Nav,
}

impl PageError {
    pub fn not_found(nav: &Nav) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: "No such dump (or not one you may see).".into(),
            nav: nav.clone(),
        }
    }

    pub fn new(status: StatusCode, message: impl Into<String>, nav: &Nav) -> PageError {
        PageError {
            status,
            message: message.into(),
            nav: nav.clone(),
        }
    }

    pub fn internal(what: &str, e: impl std::fmt::Display, nav: &Nav) -> PageError {
        tracing::error!("{what}: {e}");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal error ({what})."),
            nav,
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        render_status(
            self.status,
            &ErrorPage {
                nav: self.nav,
                title,
                message: &self.message,
                status: self.status.as_u16(),
            },
        )
    }
}
