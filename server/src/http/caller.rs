//! Who is calling the API, as the dump routes need it: a tenant and whether every tenant's
//! dumps are visible.
//!
//! AUTH HOOK: this is the one place where authentication plugs into the dump API. Until the
//! auth module (`crate::auth`, H5: `Principal { tenant, role }` from `Authorization: Bearer` or
//! the session cookie) is wired in, every caller is the anonymous admin of tenant
//! [`DEFAULT_TENANT`]. Wiring it means: build `Caller` from `crate::auth::Principal` here
//! (`tenant: p.tenant, sees_all_tenants: p.role.sees_all_tenants()`), with `AuthState:
//! FromRef<AppState>`, and map the rejection; the handlers in `api.rs` do not change.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::convert::Infallible;

/// Tenant of uploads made without authentication.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant new uploads belong to.
    pub tenant: String,
    /// Support and admin roles read every tenant's dumps.
    pub sees_all_tenants: bool,
}

impl Caller {
    /// Tenant filter for queries: `None` = every tenant. Another tenant's dump then answers
    /// 404, exactly like a dump that does not exist.
    pub fn tenant_filter(&self) -> Option<&str> {
        (!self.sees_all_tenants).then_some(self.tenant.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller { tenant: DEFAULT_TENANT.to_string(), sees_all_tenants: true })
    }
}
