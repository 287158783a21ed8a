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
use serde_json::Value;

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

/// A log as the API shows it. Fields in alphabetical order, the order of the `json!` map this
/// answer was first built as (serde_json keeps a map's keys sorted).
#[derive(Serialize)]
pub struct LogJson {
    /// How the upload was compressed.
    compression: String,
    created_at: String,
    /// The first sample's time (`format_millis`), null for a log without samples.
    first_sample: Option<String>,
    id: String,
    /// The log format the parser recognised.
    kind: String,
    last_sample: Option<String>,
    original_name: Option<String>,
    samples: i64,
    sha256: String,
    /// Uncompressed size in bytes.
    size: i64,
    system: String,
    /// Bytes as uploaded.
    upload_size: i64,
}

pub fn log_json(l: &systems::LogRow) -> LogJson {
    let ms = |t: Option<i64>| t.map(analyzer::trend::timestamp::format_millis);
    LogJson {
        compression: l.compression.clone(),
        created_at: db::rfc3339(l.created_at),
        first_sample: ms(l.first_at),
        id: l.id.clone(),
        kind: l.kind.clone(),
        last_sample: ms(l.last_at),
        original_name: l.original_name.clone(),
        samples: l.samples,
        sha256: l.sha256.clone(),
        size: l.size,
        system: l.system.clone(),
        upload_size: l.upload_size,
    }
}

/// `GET /api/v1/systems/{name}`, alphabetical as [`LogJson`].
#[derive(Serialize)]
struct DetailJson {
    dumps: Vec<SystemDumpJson>,
    logs: Vec<LogJson>,
    name: String,
    page_url: String,
    /// Inputs left out of the trend, each with its reason.
    skipped: Vec<String>,
    tenant: String,
    /// The trend report through a `Value`, so its keys come out sorted as they always did
    /// (the report's own types write them in declaration order).
    trend: Value,
    /// Why there is no trend (no input yet, inputs of two machines).
    trend_error: Option<String>,
    url: String,
}

/// One of the system's dumps, in time order.
#[derive(Serialize)]
struct SystemDumpJson {
    created_at: String,
    id: String,
    original_name: Option<String>,
    page_url: String,
    stage: String,
    status: String,
    status_url: String,
    /// The dump's SystemTime (UTC, RFC 3339) from its report; null until it is analysed.
    system_time: Option<String>,
    /// The single-dump verdict, once analysed.
    verdict: Option<VerdictJson>,
}

#[derive(Serialize)]
struct VerdictJson {
    kind: String,
    sentence: String,
}

/// `GET /api/v1/systems/{name}`.
async fn detail(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<SystemQuery>,
) -> Result<Json<DetailJson>, ApiError> {
    let (tenant, name) = scope(&caller, q.tenant.as_deref(), &name)?;
    let offset = utc_offset(&q)?;
    let (t, logs) = load(&app, &tenant, &name, offset)
        .await?
        .ok_or_else(not_found)?;
    let trend = serde_json::to_value(&t.trend).map_err(|e| ApiError::internal("trend json", e))?;
    let dumps = t.dumps.into_iter().map(system_dump_json).collect();
    let (url, page_url) = urls(&caller.tenant, &tenant, &name);
    Ok(Json(DetailJson {
        dumps,
        logs: logs.iter().map(log_json).collect(),
        name,
        page_url,
        skipped: t.skipped,
        tenant,
        trend,
        trend_error: t.trend_error,
        url,
    }))
}

fn system_dump_json(d: trend::DumpEntry) -> SystemDumpJson {
    let row = d.row;
    SystemDumpJson {
        created_at: db::rfc3339(row.created_at),
        page_url: format!("/dumps/{}", row.id),
        status_url: format!("/api/v1/dumps/{}", row.id),
        id: row.id,
        original_name: row.original_name,
        stage: row.stage,
        status: row.state,
        system_time: d.system_time,
        verdict: d
            .verdict
            .map(|(kind, sentence)| VerdictJson { kind, sentence }),
    }
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
    fn the_detail_keeps_the_key_order_of_its_json_map() {
        let log = LogJson {
            compression: "none".into(),
            created_at: db::rfc3339(0),
            first_sample: None,
            id: "l1".into(),
            kind: "poolmon".into(),
            last_sample: None,
            original_name: None,
            samples: 0,
            sha256: "ab".into(),
            size: 1,
            system: "web01".into(),
            upload_size: 1,
        };
        super::super::stats::tests::assert_map_order(&DetailJson {
            dumps: vec![SystemDumpJson {
                created_at: db::rfc3339(0),
                id: "d1".into(),
                original_name: None,
                page_url: "/dumps/d1".into(),
                stage: "report".into(),
                status: "done".into(),
                status_url: "/api/v1/dumps/d1".into(),
                system_time: None,
                verdict: Some(VerdictJson {
                    kind: "leak".into(),
                    sentence: "s".into(),
                }),
            }],
            logs: vec![log],
            name: "web01".into(),
            page_url: "/systems/web01".into(),
            skipped: vec![],
            tenant: "a".into(),
            trend: serde_json::json!({ "b": 1, "a": 2 }),
            trend_error: None,
            url: "/api/v1/systems/web01".into(),
        });
    }

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
