//! Auth endpoints: token management (admin only) and browser login/logout.
//!
//! - `POST /api/v1/tokens` `{tenant, role, name?}` -> 201 with the new token (shown this once)
//! - `GET /api/v1/tokens` -> `{tokens: [...]}` (never the secrets)
//! - `DELETE /api/v1/tokens/{id}` -> 204, or 404 for an unknown or already revoked id
//! - `GET /login` form, `POST /login` (form: token, csrf) -> session cookie, 303 to `/`
//! - `POST /logout` (form: csrf) -> cookie cleared, 303 to `/login`

use super::{cookie, csrf, store, AuthError, AuthState, Principal, Role};
use axum::body::Bytes;
use axum::extract::{FromRef, Path, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The auth routes, for merging into the service's router.
pub fn routes<S>() -> Router<S>
where
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

#[derive(Debug, Deserialize)]
struct CreateToken {
    tenant: String,
    role: Role,
    #[serde(default)]
    name: String,
}

fn require_admin(p: &Principal, headers: &HeaderMap) -> Result<(), AuthError> {
    if !p.is_admin() {
        return Err(AuthError::Forbidden);
    }
    // A browser session calling the API must also show its CSRF token (header), the same as a form.
    if p.csrf.is_some() {
        let h = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        csrf::check_form(p, h)?;
    }
    Ok(())
}

async fn create_token(
    State(auth): State<AuthState>,
    principal: Principal,
    headers: HeaderMap,
    Json(req): Json<CreateToken>,
) -> Result<Response, AuthError> {
    require_admin(&principal, &headers)?;
    let t = store::create_token(
        &auth.pool,
        &req.tenant,
        req.role,
        &req.name,
        store::now_unix(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

async fn list_tokens(
    State(auth): State<AuthState>,
    principal: Principal,
) -> Result<Response, AuthError> {
    // A read: no CSRF token needed (a cross-site page cannot read the answer).
    if !principal.is_admin() {
        return Err(AuthError::Forbidden);
    }
    let tokens = store::list_tokens(&auth.pool).await?;
    Ok(Json(serde_json::json!({ "tokens": tokens })).into_response())
}

async fn revoke_token(
    State(auth): State<AuthState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
    require_admin(&principal, &headers)?;
    if store::revoke_token(&auth.pool, &id, store::now_unix()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AuthError::NotFound)
    }
}

/// Why a sign-in form was refused although the token may be right.
const STALE_FORM: &str = "This sign-in form has expired (a sign-in page was opened again since, \
     perhaps in another tab). Enter your token once more.";

/// The login page. Minimal inline HTML until the askama pages exist; it needs no JavaScript.
fn login_page(
    status: StatusCode,
    csrf_value: &str,
    secure: bool,
    error: Option<&str>,
    next: &str,
) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{e}</p>"))
        .unwrap_or_default();
    let next = html_attr(safe_next(Some(next)));
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pooltriage: sign in</title><link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\"><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
         <body><header class=\"top\"><nav><a class=\"brand\" href=\"/\">pooltriage</a></nav></header>\
         <main class=\"login\"><h1>Sign in</h1>{error}\
         <form method=\"post\" action=\"/login\">\
         <label>API token <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label>\
         <input type=\"hidden\" name=\"{field}\" value=\"{csrf_value}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <button type=\"submit\" class=\"primary\">Sign in</button></form>\
         <p class=\"hint\">Use the API token your administrator gave you (<code>pt_…</code>).</p>\
         </main></body></html>",
        field = csrf::FORM_FIELD,
    );
    (
        status,
        AppendHeaders([(
            SET_COOKIE,
            cookie::set(csrf::LOGIN_COOKIE, csrf_value, 3600, secure),
        )]),
        Html(body),
    )
        .into_response()
}

/// `GET /login?next=/dumps/...`: the page to return to after signing in (the HTML pages send
/// an unauthenticated browser here with it).
#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: a local path only (starts with one `/`, not `//` or `/\`,
/// which browsers read as another host), else `/`. Stops an open redirect through the form.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 2048
                && !n.chars().any(|c| c.is_control()) =>
        {
            n
        }
        _ => "/",
    }
}

/// HTML attribute escaping for the one request value the login page echoes (`next`).
fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

async fn login_form(
    State(auth): State<AuthState>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Response, AuthError> {
    let v = super::token::random_hex(32).map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(login_page(
        StatusCode::OK,
        &v,
        auth.config.secure_cookies,
        None,
        safe_next(q.next.as_deref()),
    ))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: Option<String>,
    /// The page to return to (`safe_next`).
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn login(
    State(auth): State<AuthState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let client = peer.map(|p| p.0 .0.ip());
    auth.check_client(client)?;
    if !is_form(&headers) {
        return Err(AuthError::BadRequest(
            "expected an application/x-www-form-urlencoded form".into(),
        ));
    }
    let form: LoginForm =
        serde_urlencoded::from_bytes(&body).map_err(|e| AuthError::BadRequest(e.to_string()))?;
    let secure = auth.config.secure_cookies;
    // A second sign-in tab replaces the first one's cookie: the first form then fails the
    // check. The person gets the form again with a fresh token and a sentence, not a JSON error.
    if csrf::check_double_submit(
        cookie::get(&headers, csrf::LOGIN_COOKIE),
        form.csrf.as_deref(),
    )
    .is_err()
    {
        let v = super::token::random_hex(32).map_err(|e| AuthError::Internal(e.to_string()))?;
        return Ok(login_page(
            StatusCode::FORBIDDEN,
            &v,
            secure,
            Some(STALE_FORM),
            safe_next(form.next.as_deref()),
        ));
    }
    let now = store::now_unix();
    let Some(principal) = store::principal_for_token(&auth.pool, form.token.trim(), now).await?
    else {
        auth.record_failure(client);
        let v = super::token::random_hex(32).map_err(|e| AuthError::Internal(e.to_string()))?;
        return Ok(login_page(
            StatusCode::UNAUTHORIZED,
            &v,
            secure,
            Some("That token is not valid."),
            safe_next(form.next.as_deref()),
        ));
    };
    let ttl = auth.config.session_ttl_secs.max(60);
    let session = store::create_session(&auth.pool, &principal.token_id, ttl, now).await?;
    let max_age = u64::try_from(ttl).unwrap_or(0);
    Ok((
        AppendHeaders([
            (
                SET_COOKIE,
                cookie::set(cookie::SESSION_COOKIE, &session.cookie, max_age, secure),
            ),
            (SET_COOKIE, cookie::set(csrf::LOGIN_COOKIE, "", 0, secure)),
        ]),
        Redirect::to(safe_next(form.next.as_deref())),
    )
        .into_response())
}

async fn logout(
    State(auth): State<AuthState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let form: CsrfForm = if is_form(&headers) {
        serde_urlencoded::from_bytes(&body).map_err(|e| AuthError::BadRequest(e.to_string()))?
    } else {
        CsrfForm { csrf: None }
    };
    csrf::check_form(&principal, form.csrf.as_deref())?;
    if let Some(c) = cookie::get(&headers, cookie::SESSION_COOKIE) {
        store::delete_session(&auth.pool, c).await?;
    }
    Ok((
        AppendHeaders([(
            SET_COOKIE,
            cookie::set(cookie::SESSION_COOKIE, "", 0, auth.config.secure_cookies),
        )]),
        Redirect::to("/login"),
    )
        .into_response())
}

#[cfg(test)]
mod next_tests {
    use super::{html_attr, safe_next};

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/dumps/abc?sort=tag")),
            "/dumps/abc?sort=tag"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/a\nb")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            html_attr("/x?a=1&b=\"<>'"),
            "/x?a=1&amp;b=&quot;&lt;&gt;&#39;"
        );
    }
}
