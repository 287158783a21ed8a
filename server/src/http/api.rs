//! REST API v1 for dumps (docs/api.md; OpenAPI document at `/api/v1/openapi.json`).

use super::caller::Caller;
use super::upload_request;
use super::{ApiError, AppState};
use crate::db::{self, dumps};
use crate::storage::ingest::{self, IngestError};
use crate::storage::source::{self, Chunk};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/dumps",
            // The upload enforces its own limits while streaming (UploadLimits).
            axum::routing::post(upload)
                .get(super::stats::search)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/dumps/{id}", get(status).delete(delete))
        .route("/api/v1/dumps/{id}/retry", axum::routing::post(retry))
        .route("/api/v1/dumps/{id}/report", get(report))
        .route("/api/v1/openapi.json", get(openapi))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn status_url(id: &str) -> String {
    format!("/api/v1/dumps/{id}")
}

/// A dump's status object (`GET /api/v1/dumps/{id}`, the retry answer, and the base of each
/// dump list item, `super::stats::item_json`). Fields in alphabetical order, the order of the
/// `json!` map this answer was first built as (serde_json keeps a map's keys sorted).
#[derive(Serialize)]
pub struct DumpJson {
    /// Analyses run so far, retries included.
    attempts: i64,
    /// How the upload was compressed (`none`, `gzip`, ...).
    compression: String,
    created_at: String,
    /// Why the analysis failed; absent unless it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    id: String,
    /// The uploaded file name, for display.
    original_name: Option<String>,
    report_url: String,
    /// SHA-256 of the uncompressed dump.
    sha256: String,
    /// Uncompressed size in bytes.
    size: i64,
    /// The analysis stage reached (docs/api.md).
    stage: String,
    /// The analysis state: `queued`, `running`, `done` or `failed`.
    status: String,
    status_url: String,
    /// The tenant's system (machine) the dump belongs to.
    system: Option<String>,
    tenant: String,
    /// Bytes as uploaded (compressed).
    upload_size: i64,
}

pub fn dump_json(d: &dumps::DumpRow) -> DumpJson {
    DumpJson {
        attempts: d.attempts,
        compression: d.compression.clone(),
        created_at: db::rfc3339(d.created_at),
        error: d.error.clone(),
        id: d.id.clone(),
        original_name: d.original_name.clone(),
        report_url: format!("/api/v1/dumps/{}/report", d.id),
        sha256: d.sha256.clone(),
        size: d.size,
        stage: d.stage.clone(),
        status: d.state.clone(),
        status_url: status_url(&d.id),
        system: d.system.clone(),
        tenant: d.tenant.clone(),
        upload_size: d.upload_size,
    }
}

/// The answer to a dump upload (`POST /api/v1/dumps`), alphabetical as [`DumpJson`].
#[derive(Serialize)]
struct UploadedJson {
    /// True when a dump with the same content was already stored (HTTP 200, not 201).
    duplicate: bool,
    id: String,
    sha256: String,
    size: u64,
    status_url: String,
}

#[derive(Deserialize)]
struct UploadQuery {
    /// Original file name, for display (the multipart file name wins).
    name: Option<String>,
    /// Webhook called when the report is ready or the analysis failed (docs/api.md).
    webhook_url: Option<String>,
    /// The tenant's system (machine) the dump belongs to (docs/api.md, "Systems").
    system: Option<String>,
}

pub(super) fn ingest_error(e: IngestError) -> ApiError {
    let msg = e.to_string();
    match e {
        IngestError::UploadTooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large", msg)
        }
        IngestError::DumpTooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "dump_too_large", msg)
        }
        IngestError::Ratio { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "compression_ratio", msg)
        }
        IngestError::NotADump(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_a_dump", msg)
        }
        IngestError::NotALog(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_a_log", msg)
        }
        IngestError::BadArchive { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_archive", msg)
        }
        IngestError::Incomplete(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "incomplete_upload", msg)
        }
        IngestError::Io(e) => ApiError::internal("storage", e),
    }
}

/// After the ingest side gave up (limit reached, not a dump), this much more of the body is read
/// and dropped before answering, within [`DRAIN_TIME`]: a client that is still sending then
/// reads our answer instead of a connection reset (the "lingering close" of web servers).
const DRAIN_BYTES: u64 = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Moves body chunks into the ingest channel; `Err` when the body failed (client gone, bad
/// framing). Ends with `Chunk::End` only when the body really ended.
pub(super) async fn pump<S, E>(
    stream: S,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), String>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    futures_util::pin_mut!(stream);
    loop {
        match stream.next().await {
            Some(Ok(b)) => {
                if tx.send(Chunk::Data(b)).await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {
                let _ = tx.send(Chunk::End).await;
                return Ok(());
            }
        }
    }
    // The ingest side stopped early: drain a bounded amount so the answer can be read.
    let drain = async {
        let mut drained = 0u64;
        while let Some(Ok(b)) = stream.next().await {
            drained += b.len() as u64;
            if drained > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Ok(())
}

/// `POST /api/v1/dumps`: raw body, or multipart/form-data with the dump in the `file` field.
async fn upload(
    State(app): State<AppState>,
    // Authenticates and takes one upload from the token's bucket (429 + Retry-After when empty),
    // before a byte of the body is read.
    permit: crate::auth::UploadPermit,
    caller: Caller,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    // A caller authenticated by the session cookie must show the session's CSRF token in
    // `X-CSRF-Token` (a cross-site form could otherwise upload as the user); bearer callers
    // need none (docs/auth.md). As the chunked uploads (`uploads::check_csrf`).
    let shown = upload_request::csrf_header(req.headers());
    if let Err(e) = crate::auth::csrf::check_form(&permit.0, shown) {
        // Read (and drop) a bounded part of the body first, so a client still sending reads
        // the 403 instead of a connection reset.
        let drain = async {
            let stream = req.into_body().into_data_stream();
            futures_util::pin_mut!(stream);
            let mut drained = 0u64;
            while let Some(Ok(b)) = stream.next().await {
                drained += b.len() as u64;
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        return Ok(e.into_response());
    }
    // Checked before a byte of the body is read (SSRF rules: crate::webhooks::policy).
    let mut webhook = match q.webhook_url.as_deref() {
        Some(u) => Some(super::hooks::check_webhook(&app, u)?),
        None => None,
    };
    let mut system =
        crate::systems::name::optional(q.system.as_deref()).map_err(super::systems::bad_name)?;
    let limit = app.limits.max_upload_bytes;
    let too_large = || upload_request::too_large(limit);
    // Refuse before reading a byte when the client announces the size.
    if upload_request::announces_more_than(req.headers(), limit) {
        return Err(too_large());
    }
    let is_multipart = upload_request::is_multipart(req.headers());
    let tmp = app.storage.tmp_dir();
    let limits = app.limits;
    let mut name = q.name;
    // The ingest thread starts only when the dump's bytes are about to flow (for multipart,
    // once the `file` part is found), so that no early answer leaves it waiting.
    let start_ingest = |name: Option<String>| {
        let (tx, reader) = source::channel();
        let task = tokio::task::spawn_blocking(move || ingest::ingest(reader, &tmp, &limits, name));
        (tx, task)
    };
    let (tx, ingest_task, pumped) = if is_multipart {
        let (mut mp, gate) = super::multipart_guard::guarded(req)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_multipart", e.body_text()))?;
        let file = loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break None,
                Err(e) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_multipart",
                        gate.explain(e.body_text()),
                    ))
                }
            };
            // A form field before the file (a field after it is not read).
            if field.name() == Some("webhook_url") {
                let text = super::hooks::small_field(field, 4096).await?;
                match super::hooks::check_webhook(&app, &text) {
                    Ok(u) => webhook = Some(u),
                    Err(e) => {
                        super::hooks::drain_form(&mut mp).await;
                        return Err(e);
                    }
                }
                continue;
            }
            if field.name() == Some("system") {
                let text = super::hooks::small_field(field, 1024).await?;
                match crate::systems::name::optional(Some(&text)) {
                    Ok(Some(s)) => system = Some(s),
                    Ok(None) => {}
                    Err(e) => {
                        super::hooks::drain_form(&mut mp).await;
                        return Err(super::systems::bad_name(e));
                    }
                }
                continue;
            }
            if field.name() == Some("file") {
                gate.open();
                break Some(field);
            }
        };
        let Some(field) = file else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_multipart",
                "multipart upload without a `file` field",
            ));
        };
        if let Some(f) = field.file_name() {
            name = Some(f.to_string());
        }
        let (tx, task) = start_ingest(name);
        let pumped = pump(field, &tx).await;
        (tx, task, pumped)
    } else {
        let (tx, task) = start_ingest(name);
        let pumped = pump(req.into_body().into_data_stream(), &tx).await;
        (tx, task, pumped)
    };
    if let Err(why) = &pumped {
        let _ = tx.send(Chunk::Failed(why.clone())).await;
    }
    drop(tx);
    let ingested = ingest_task
        .await
        .map_err(|e| ApiError::internal("upload task", e))?
        .map_err(ingest_error)?;
    let storage = app.storage.clone();
    let stored = tokio::task::spawn_blocking(move || storage.store(ingested))
        .await
        .map_err(|e| ApiError::internal("upload task", e))?
        .map_err(|e| ApiError::internal("storage", e))?;
    let (id, created) = super::hooks::record_upload(
        &app,
        &caller.tenant,
        &stored,
        webhook.as_deref(),
        system.as_deref(),
    )
    .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let url = status_url(&id);
    let body = UploadedJson {
        duplicate: !created,
        id,
        sha256: stored.sha256,
        size: stored.size,
        status_url: url.clone(),
    };
    let mut resp = (code, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/dumps/{id}`.
async fn status(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let d = crate::db::stats::get_dump(&app.db, &id, caller.tenant_filter())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(super::stats::item_json(&d)))
}

/// `GET /api/v1/dumps/{id}/report`: 200 with the analyzer's JSON when done; 409 with the
/// status while queued, running, or failed.
async fn report(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = dumps::get(&app.db, &id, caller.tenant_filter())
        .await?
        .ok_or_else(ApiError::not_found)?;
    if d.state == "done" {
        if let Some(json) = dumps::report(&app.db, &d.analysis).await? {
            return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
        }
    }
    let (code, msg) = match d.state.as_str() {
        "failed" => (
            "analysis_failed",
            format!(
                "analysis failed: {}",
                d.error.as_deref().unwrap_or("unknown reason")
            ),
        ),
        "done" => ("report_missing", "report missing".to_string()),
        _ => (
            "not_ready",
            format!("analysis {} (stage {})", d.state, d.stage),
        ),
    };
    let mut e = ApiError::new(StatusCode::CONFLICT, code, msg);
    e.extra = Some(json!({ "status": d.state, "stage": d.stage }));
    let mut resp = e.into_response();
    if d.state == "queued" || d.state == "running" {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    Ok(resp)
}

/// `DELETE /api/v1/dumps/{id}`: removes the dump; the file and report go with the last
/// reference to the content.
async fn delete(
    State(app): State<AppState>,
    principal: crate::auth::Principal,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A browser session shows its CSRF token, as for every state-changing call it makes (a
    // cross-site page could otherwise delete as the user); bearer callers need none.
    let shown = upload_request::csrf_header(&headers);
    if let Err(e) = crate::auth::csrf::check_form(&principal, shown) {
        return Ok(e.into_response());
    }
    let (sha, last) = dumps::delete(&app.db, &id, caller.tenant_filter())
        .await?
        .ok_or_else(ApiError::not_found)?;
    super::hooks::after_delete(&app, &id, &sha, last).await?;
    if last {
        let storage = app.storage.clone();
        tokio::task::spawn_blocking(move || storage.remove(&sha))
            .await
            .map_err(|e| ApiError::internal("delete task", e))?
            .map_err(|e| ApiError::internal("storage", e))?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/dumps/{id}/retry` (admin): a failed analysis goes back to the queue. 409 when
/// the analysis is not failed, or when retention removed the dump file it would read.
async fn retry(
    State(app): State<AppState>,
    principal: crate::auth::Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shown = upload_request::csrf_header(&headers);
    if let Err(e) = crate::auth::csrf::check_form(&principal, shown) {
        return Ok(e.into_response());
    }
    if !principal.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an admin retries an analysis",
        ));
    }
    let d = dumps::get(&app.db, &id, None)
        .await?
        .ok_or_else(ApiError::not_found)?;
    retry_dump(&app, &d).await?;
    let d = dumps::get(&app.db, &id, None)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::ACCEPTED, Json(dump_json(&d))).into_response())
}

/// Queues a failed dump's analysis again (shared by the API and the dump page).
pub async fn retry_dump(app: &AppState, d: &dumps::DumpRow) -> Result<(), ApiError> {
    if !app.storage.dump_path(&d.sha256).exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "file_deleted",
            "the dump file was deleted (retention): upload it again to analyse it",
        ));
    }
    let now = crate::db::now_unix();
    if !crate::db::jobs::retry_failed(&app.db, &d.analysis, now).await? {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "not_failed",
            "only a failed analysis is retried",
        );
        e.extra = Some(json!({ "status": d.state }));
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::stats::tests::assert_map_order;

    #[test]
    fn bodies_keep_the_key_order_of_their_json_maps() {
        assert_map_order(&DumpJson {
            attempts: 1,
            compression: "none".into(),
            created_at: db::rfc3339(0),
            error: Some("bad".into()),
            id: "d1".into(),
            original_name: None,
            report_url: "/api/v1/dumps/d1/report".into(),
            sha256: "ab".into(),
            size: 1,
            stage: "queued".into(),
            status: "queued".into(),
            status_url: status_url("d1"),
            system: Some("web01".into()),
            tenant: "a".into(),
            upload_size: 1,
        });
        assert_map_order(&UploadedJson {
            duplicate: false,
            id: "d1".into(),
            sha256: "ab".into(),
            size: 1,
            status_url: status_url("d1"),
        });
    }
}
