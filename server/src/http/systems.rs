//! REST API v1 for systems (docs/api.md, "Systems"): a tenant's machines, each with its dumps
//! in time order, its pool logs and their trend.
//!
//! - `GET /api/v1/systems`: the systems the caller may see, with counts and first/last upload;
//! - `GET /api/v1/systems/{name}`: dumps (each with its verdict), logs, and the trend JSON;
//! - `POST /api/v1/systems/{name}/logs`: upload a log (`super::log_upload`);
//! - `DELETE /api/v1/systems/{name}/logs/{id}`: remove a log.
//!
//! Visibility is the dump routes' rule: a customer sees its tenant's systems and another
//! tenant's system answers 404, as one that does not exist; support and admin see every
//! tenant's (`?tenant=` names the tenant of a system; default their own).

use super::caller::Caller;
use super::{ApiError, AppState};
use crate::db::{self, dumps, systems};
use crate::systems::trend::{self, LogInput, SystemTrend};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/systems", get(list))
        .route("/api/v1/systems/{name}", get(detail))
        .route(
            "/api/v1/systems/{name}/logs",
            // The upload enforces its own limits while streaming (UploadLimits).
            axum::routing::post(super::log_upload::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/systems/{name}/logs/{id}", delete(delete_log))
}

pub fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such system")
}

/// 400 `bad_system` with the rule a system name breaks.
pub fn bad_name(e: crate::systems::name::NameError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_system", e.to_string())
}

#[derive(Deserialize, Default)]
pub struct SystemQuery {
    /// Support and admin: the tenant whose system is meant (default: the caller's own).
    pub tenant: Option<String>,
    /// The machine's offset from UTC (`+09:00`) for poolmon/poolsnap logs, whose timestamps
    /// name no zone (default: a counter log's bias, else UTC).
    pub utc_offset: Option<String>,
}

/// The tenant of the system a caller asks for, as the dump routes decide: a customer's own
/// (another tenant named answers 404, as a system that does not exist), support and admin
/// the one named or their own. With the system's name, checked; a name that cannot exist is
/// 404 too.
pub fn scope(
    caller: &Caller,
    asked: Option<&str>,
    name: &str,
) -> Result<(String, String), ApiError> {
    let name = crate::systems::name::validate(name).map_err(|_| not_found())?;
    let asked = asked.map(str::trim).filter(|s| !s.is_empty());
    let tenant = match asked {
        Some(t) if caller.sees_all_tenants => t.to_string(),
        Some(t) if t != caller.tenant => return Err(not_found()),
        _ => caller.tenant.clone(),
    };
    Ok((tenant, name))
}

/// Where a system's API and page are, with `?tenant=` when the caller is not of its tenant.
pub fn urls(caller_tenant: &str, tenant: &str, name: &str) -> (String, String) {
    let q = if tenant == caller_tenant {
        String::new()
    } else {
        format!("?tenant={}", super::pages::percent_encode(tenant))
    };
    (
        format!("/api/v1/systems/{name}{q}"),
        format!("/systems/{name}{q}"),
    )
}

#[derive(Deserialize)]
struct ListQuery {
    tenant: Option<String>,
}

/// `GET /api/v1/systems`. Fields in alphabetical order, the order of the `json!` map this
/// answer was first built as (serde_json keeps a map's keys sorted).
#[derive(Serialize)]
struct ListJson {
    systems: Vec<SystemJson>,
}

#[derive(Serialize)]
struct SystemJson {
    dumps: i64,
    first_seen: String,
    last_seen: String,
    logs: i64,
    name: String,
    page_url: String,
    tenant: String,
    url: String,
}

/// `GET /api/v1/systems`.
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListJson>, ApiError> {
    let tenant = super::stats::tenant_scope(&caller, &q.tenant)?;
    let rows = systems::list(&app.db, tenant.as_deref()).await?;
    let systems = rows
        .into_iter()
        .map(|s| {
            let (url, page_url) = urls(&caller.tenant, &s.tenant, &s.name);
            SystemJson {
                dumps: s.dumps,
                first_seen: db::rfc3339(s.first_seen),
                last_seen: db::rfc3339(s.last_seen),
                logs: s.logs,
                name: s.name,
                page_url,
                tenant: s.tenant,
                url,
            }
        })
        .collect();
    Ok(Json(ListJson { systems }))
}

/// The system's dumps, logs and trend; `None` when it has neither a dump nor a log.
pub async fn load(
    app: &AppState,
    tenant: &str,
    name: &str,
    utc_offset_minutes: Option<i32>,
) -> Result<Option<(SystemTrend, Vec<systems::LogRow>)>, ApiError> {
    let rows = systems::dumps_of(&app.db, tenant, name).await?;
    let logs = systems::logs_of(&app.db, tenant, name).await?;
    if rows.is_empty() && logs.is_empty() {
        return Ok(None);
    }
    let mut reports = Vec::with_capacity(rows.len());
    for d in rows {
        let json = if d.state == "done" {
            dumps::report(&app.db, &d.analysis).await?
        } else {
            None
        };
        reports.push((d, json));
    }
    let inputs: Vec<LogInput> = logs
        .iter()
        .map(|l| LogInput {
            row: l.clone(),
            path: app.storage.log_path(&l.sha256),
        })
        .collect();
    let computed =
        tokio::task::spawn_blocking(move || trend::compute(reports, inputs, utc_offset_minutes))
            .await
            .map_err(|e| ApiError::internal("trend task", e))?;
    Ok(Some((computed, logs)))
}

/// The `utc_offset` parameter in minutes: 400 `bad_utc_offset` when it does not read.
pub fn utc_offset(q: &SystemQuery) -> Result<Option<i32>, ApiError> {
    q.utc_offset
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| crate::cli::parse_utc_offset(s.trim()))
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_utc_offset", e))
}

/// A log as the API shows it.
pub fn log_json(l: &systems::LogRow) -> Value {
    let ms = |t: Option<i64>| t.map(analyzer::trend::timestamp::format_millis);
    json!({
        "id": l.id,
        "system": l.system,
        "kind": l.kind,
        "original_name": l.original_name,
        "sha256": l.sha256,
        "size": l.size,
        "upload_size": l.upload_size,
        "compression": l.compression,
        "samples": l.samples,
        "first_sample": ms(l.first_at),
        "last_sample": ms(l.last_at),
        "created_at": db::rfc3339(l.created_at),
    })
}

/// `GET /api/v1/systems/{name}`.
async fn detail(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<SystemQuery>,
) -> Result<Json<Value>, ApiError> {
    let (tenant, name) = scope(&caller, q.tenant.as_deref(), &name)?;
    let offset = utc_offset(&q)?;
    let (t, logs) = load(&app, &tenant, &name, offset)
        .await?
        .ok_or_else(not_found)?;
    let dumps: Vec<Value> = t
        .dumps
        .iter()
        .map(|d| {
            json!({
                "id": d.row.id,
                "original_name": d.row.original_name,
                "status": d.row.state,
                "stage": d.row.stage,
                "system_time": d.system_time,
                "created_at": db::rfc3339(d.row.created_at),
                "verdict": d.verdict.as_ref().map(|(k, s)| json!({ "kind": k, "sentence": s })),
                "status_url": format!("/api/v1/dumps/{}", d.row.id),
                "page_url": format!("/dumps/{}", d.row.id),
            })
        })
        .collect();
    let (url, page) = urls(&caller.tenant, &tenant, &name);
    Ok(Json(json!({
        "tenant": tenant,
        "name": name,
        "url": url,
        "page_url": page,
        "dumps": dumps,
        "logs": logs.iter().map(log_json).collect::<Vec<_>>(),
        "trend": t.trend,
        "trend_error": t.trend_error,
        "skipped": t.skipped,
    })))
}

/// `DELETE /api/v1/systems/{name}/logs/{id}`: the log goes; its file with the last log of
/// that content.
async fn delete_log(
    State(app): State<AppState>,
    principal: crate::auth::Principal,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<SystemQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A browser session shows its CSRF token, as for a dump's delete.
    let shown = super::upload_request::csrf_header(&headers);
    if let Err(e) = crate::auth::csrf::check_form(&principal, shown) {
        return Ok(e.into_response());
    }
    let (tenant, name) = scope(&caller, q.tenant.as_deref(), &name)?;
    remove_log(&app, &tenant, &name, &id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such log"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes a log row and, when it was the last of its content, the file. `None`: no such log.
pub async fn remove_log(
    app: &AppState,
    tenant: &str,
    name: &str,
    id: &str,
) -> Result<Option<()>, ApiError> {
    let Some((sha, last)) = systems::delete_log(&app.db, tenant, name, id).await? else {
        return Ok(None);
    };
    if last {
        let storage = app.storage.clone();
        tokio::task::spawn_blocking(move || storage.remove_log(&sha))
            .await
            .map_err(|e| ApiError::internal("delete task", e))?
            .map_err(|e| ApiError::internal("storage", e))?;
    }
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keeps_the_key_order_of_its_json_map() {
        super::super::stats::tests::assert_map_order(&ListJson {
            systems: vec![SystemJson {
                dumps: 1,
                first_seen: db::rfc3339(0),
                last_seen: db::rfc3339(1),
                logs: 2,
                name: "web01".into(),
                page_url: "/systems/web01".into(),
                tenant: "a".into(),
                url: "/api/v1/systems/web01".into(),
            }],
        });
    }
}
