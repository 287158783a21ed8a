//! The HTTP service: router, shared state, JSON errors.

pub mod api;
pub mod caller;
pub mod connections;
pub mod hooks;
pub mod log_upload;
pub mod multipart_guard;
pub mod pages;
pub mod problems;
pub mod security_headers;
pub mod stats;
pub mod symbols;
pub mod systems;
pub mod upload_request;
pub mod uploads;

use crate::config::UploadLimits;
use crate::db::Db;
use crate::storage::Storage;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub limits: UploadLimits,
    /// Tokens, sessions and the upload rate limit (`crate::auth`).
    pub auth: crate::auth::AuthState,
    /// Resumable chunked uploads (`uploads`).
    pub uploads: uploads::UploadService,
    /// Webhook settings and signing key (`crate::webhooks`).
    pub webhooks: crate::webhooks::Webhooks,
    /// Vendor symbol uploads (`crate::vendor_symbols`).
    pub symbols: crate::vendor_symbols::service::SymbolService,
}

impl axum::extract::FromRef<AppState> for crate::auth::AuthState {
    fn from_ref(app: &AppState) -> Self {
        app.auth.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(stats::routes())
        .merge(problems::routes())
        .merge(uploads::routes())
        .merge(symbols::routes())
        .merge(systems::routes())
        .merge(crate::auth::routes())
        .merge(pages::routes())
        .fallback(pages::fallback)
        .layer(axum::middleware::from_fn(security_headers::add))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// An API error: a status and a JSON body `{"error": "<one line>", "code": "<machine name>"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such dump")
    }

    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        // Details go to the log, not to the client.
        tracing::error!("{what}: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error ({what})"),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal("database", e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message, "code": self.code });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.extra, body.as_object_mut())
        {
            obj.extend(extra);
        }
        (self.status, axum::Json(body)).into_response()
    }
}
