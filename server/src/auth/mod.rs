//! Authentication and authorisation for the service.
//!
//! - API tokens `pt_<64 hex>`, stored as SHA-256 ([`token`], [`store`]), each with a tenant and a
//!   [`Role`]; sent as `Authorization: Bearer`.
//! - Browser sessions: `POST /login` with a token sets an HttpOnly, SameSite=Lax cookie
//!   ([`routes`], [`cookie`]); forms are protected against CSRF ([`csrf`]).
//! - The [`Principal`] extractor accepts either ([`extract`]); [`can_see`] decides tenant
//!   visibility — a customer asking for another tenant's dump gets 404 ([`AuthError::NotFound`]).
//! - Upload rate limit per token ([`rate_limit`], [`extract::UploadPermit`]).
//!
//! See docs/auth.md.

pub mod config;
pub mod cookie;
pub mod csrf;
pub mod extract;
pub mod rate_limit;
pub mod role;
pub mod routes;
pub mod store;
pub mod token;
pub mod upload_slots;

pub use extract::UploadPermit;
pub use rate_limit::{RateLimit, RateLimiter};
#[allow(unused_imports)]
// can_see: for handlers that load a row first (the dump API filters in SQL)
pub use role::{can_see, Principal, Role};
pub use routes::routes;
pub use store::DbPool;
pub use upload_slots::{UploadSlot, UploadSlots};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Auth settings; part of the service configuration (`[auth]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Mark cookies `Secure` (only sent over HTTPS). Turn on when the service is served over TLS,
    /// directly or behind a TLS-terminating proxy; off by default so plain-HTTP loopback works.
    pub secure_cookies: bool,
    /// Lifetime of a browser session, in seconds.
    pub session_ttl_secs: i64,
    /// Upload rate limit, per token.
    pub upload_rate: RateLimit,
    /// Uploads in flight at once, all tenants; one tenant gets half ([`upload_slots`]).
    pub max_uploads: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secure_cookies: false,
            session_ttl_secs: 12 * 3600,
            upload_rate: RateLimit::default(),
            max_uploads: 64,
        }
    }
}

/// What auth needs at request time. The service's router state holds one and implements
/// `FromRef<AppState> for AuthState` (or uses it as the state directly).
#[derive(Clone)]
pub struct AuthState {
    pub pool: DbPool,
    pub config: Arc<AuthConfig>,
    pub limiter: Arc<RateLimiter>,
    /// Failed authentications per client address ([`FAILED_AUTH_LIMIT`]).
    pub failures: Arc<RateLimiter>,
    /// Uploads in flight, per tenant.
    pub slots: UploadSlots,
}

/// Failed authentications (unknown, revoked or expired tokens and sessions, bad sign-ins) one
/// client address may make: 20 back to back, then 10 a minute. Past it every authentication
/// from that address is answered 429 until the bucket refills: guessing tokens is hopeless
/// (256 random bits) but each guess costs a database lookup and a log line.
pub const FAILED_AUTH_LIMIT: RateLimit = RateLimit {
    burst: 20,
    per_minute: 10.0,
};

impl AuthState {
    pub fn new(pool: DbPool, config: AuthConfig) -> Self {
        let limiter = Arc::new(RateLimiter::new(config.upload_rate));
        let slots = UploadSlots::new(config.max_uploads);
        AuthState {
            pool,
            config: Arc::new(config),
            limiter,
            failures: Arc::new(RateLimiter::new(FAILED_AUTH_LIMIT)),
            slots,
        }
    }

    /// Refuses (429) a client that has used up its failed authentications.
    pub fn check_client(&self, client: Option<std::net::IpAddr>) -> Result<(), AuthError> {
        let Some(ip) = client else { return Ok(()) };
        match self
            .failures
            .empty_for_at(&ip.to_string(), std::time::Instant::now())
        {
            None => Ok(()),
            Some(wait) => Err(AuthError::TooManyFailures {
                retry_after_secs: rate_limit::retry_after_secs(wait),
            }),
        }
    }

    /// A slot for an upload whose bytes are about to flow, held until the request ends.
    pub fn upload_slot(&self, principal: &Principal) -> Result<UploadSlot, AuthError> {
        self.slots
            .take(&principal.tenant)
            .map_err(|busy| AuthError::UploadsBusy {
                tenant: busy == upload_slots::Busy::Tenant,
            })
    }

    /// Counts one failed authentication of `client`.
    pub fn record_failure(&self, client: Option<std::net::IpAddr>) {
        if let Some(ip) = client {
            let _ = self.failures.check(&ip.to_string());
        }
    }

    /// Admits an upload: a slot while its bytes flow (`Err(UploadsBusy)`, 429, when none is
    /// free), then one upload from the principal's bucket (`Err(RateLimited)`, 429, when empty).
    /// The slot is free again when the returned guard is dropped.
    pub fn check_upload(&self, principal: &Principal) -> Result<UploadSlot, AuthError> {
        let slot = self.upload_slot(principal)?;
        self.limiter
            .check(&principal.token_id)
            .map_err(|wait| AuthError::RateLimited {
                retry_after_secs: rate_limit::retry_after_secs(wait),
            })?;
        Ok(slot)
    }
}

/// Why a request is refused. Each maps to one status code, with a JSON body
/// `{"error": "<one line>", "code": "<machine name>"}`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or a token/session that is unknown, revoked or expired.
    #[error("missing, invalid or revoked token")]
    Unauthorized,
    /// Authenticated but the role may not do this (e.g. token management by a non-admin).
    #[error("this token's role may not do that")]
    Forbidden,
    /// The thing does not exist — or exists in a tenant the caller may not see: both answer the
    /// same, so ids of other tenants cannot be probed.
    #[error("not found")]
    NotFound,
    #[error("CSRF token missing or wrong; reload the page and try again")]
    BadCsrf,
    #[error("upload rate limit reached; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("too many failed sign-ins or tokens from this address; retry in {retry_after_secs} s")]
    TooManyFailures { retry_after_secs: u64 },
    /// Every upload slot is taken, or the tenant holds its share ([`upload_slots`]).
    #[error("{}", if *tenant { "this tenant has as many uploads in flight as it may; retry when one finishes" } else { "the server is receiving as many uploads as it can; retry shortly" })]
    UploadsBusy { tenant: bool },
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error")]
    Internal(String),
}

impl From<store::StoreError> for AuthError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::InvalidTenant(_) | store::StoreError::NameTooLong => {
                AuthError::BadRequest(e.to_string())
            }
            other => AuthError::Internal(other.to_string()),
        }
    }
}

impl AuthError {
    /// Machine-readable name, the `code` of the JSON body (same shape as the dump API's errors).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthorized => "unauthorized",
            AuthError::Forbidden => "forbidden",
            AuthError::NotFound => "not_found",
            AuthError::BadCsrf => "csrf",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::TooManyFailures { .. } => "too_many_failures",
            AuthError::UploadsBusy { .. } => "too_many_uploads",
            AuthError::BadRequest(_) => "bad_request",
            AuthError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthorized => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden | AuthError::BadCsrf => StatusCode::FORBIDDEN,
            AuthError::NotFound => StatusCode::NOT_FOUND,
            AuthError::RateLimited { .. }
            | AuthError::TooManyFailures { .. }
            | AuthError::UploadsBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if let AuthError::Internal(detail) = &self {
            // The detail goes to the log, not to the client.
            tracing::error!("auth: {detail}");
        }
        let body =
            axum::Json(serde_json::json!({ "error": self.to_string(), "code": self.code() }));
        let mut resp = (self.status(), body).into_response();
        let headers = resp.headers_mut();
        match &self {
            AuthError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            AuthError::RateLimited { retry_after_secs }
            | AuthError::TooManyFailures { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(*retry_after_secs),
                );
            }
            AuthError::UploadsBusy { .. } => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod http_tests;
