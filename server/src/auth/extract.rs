//! Axum extractors: who is calling, from `Authorization: Bearer` or the session cookie.

use super::{cookie, store, AuthError, AuthState, Principal};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

impl<S> FromRequestParts<S> for Principal
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A middleware (the upload rate limit) may already have authenticated this request.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let auth = AuthState::from_ref(state);
        let client = client_ip(parts);
        auth.check_client(client)?;
        let principal = match authenticate(&auth, parts).await {
            Err(AuthError::Unauthorized) => {
                // Nothing presented is not a failed attempt (the portal redirects to sign in).
                if presents_credentials(parts) {
                    auth.record_failure(client);
                }
                return Err(AuthError::Unauthorized);
            }
            other => other?,
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// Bearer token first; if an `Authorization` header is present it alone decides (a wrong token is
/// 401 even with a valid cookie, so a client never silently acts as someone else). Otherwise the
/// session cookie.
async fn authenticate(auth: &AuthState, parts: &Parts) -> Result<Principal, AuthError> {
    let now = store::now_unix();
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Unauthorized)?;
        let secret = bearer(value).ok_or(AuthError::Unauthorized)?;
        return store::principal_for_token(&auth.pool, secret, now)
            .await?
            .ok_or(AuthError::Unauthorized);
    }
    if let Some(c) = cookie::get(&parts.headers, cookie::SESSION_COOKIE) {
        return store::principal_for_session(&auth.pool, c, now)
            .await?
            .ok_or(AuthError::Unauthorized);
    }
    Err(AuthError::Unauthorized)
}

/// The client's address, when the connection loop recorded it.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

fn presents_credentials(parts: &Parts) -> bool {
    parts.headers.contains_key(AUTHORIZATION)
        || cookie::get(&parts.headers, cookie::SESSION_COOKIE).is_some()
}

/// The credentials of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Extractor for a handler that starts an upload: authenticates (like [`Principal`]) and takes one
/// upload from the token's bucket, rejecting with 429 + `Retry-After` when it is empty. Put it
/// before the body extractor, so a refused upload is answered before its body is read:
/// `async fn upload(_permit: UploadPermit, caller: Caller, req: Request)`.
#[derive(Debug, Clone)]
pub struct UploadPermit(
    #[allow(dead_code)] pub Principal,
    /// The upload's slot, held while the handler runs.
    #[allow(dead_code)]
    pub std::sync::Arc<super::UploadSlot>,
);

impl<S> FromRequestParts<S> for UploadPermit
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let slot = AuthState::from_ref(state).check_upload(&principal)?;
        Ok(UploadPermit(principal, std::sync::Arc::new(slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme_parsing() {
        assert_eq!(bearer("Bearer pt_abc"), Some("pt_abc"));
        assert_eq!(bearer("bearer  pt_abc "), Some("pt_abc"));
        assert_eq!(bearer("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer(""), None);
    }
}
