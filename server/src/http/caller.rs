//! Who is calling the API, as the dump routes need it: a tenant and whether every tenant's
//! dumps are visible.
//!
//! Built from the authenticated `crate::auth::Principal` (a bearer token or the session cookie):
//! no credentials answer 401 before any handler runs. This is the one place where authentication
//! plugs into the dump API; the handlers in `api.rs` only see a tenant and its visibility.

use crate::auth::{AuthError, AuthState, Principal};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

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

impl<S> FromRequestParts<S> for Caller
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let p = Principal::from_request_parts(parts, state).await?;
        Ok(Caller {
            sees_all_tenants: p.role.sees_all_tenants(),
            tenant: p.tenant,
        })
    }
}
