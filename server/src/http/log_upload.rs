//! `POST /api/v1/systems/{name}/logs`: a pool log (poolmon, poolsnap, typeperf/relog CSV or
//! TSV) uploaded into a system of the caller's tenant, raw or as multipart `file`, as is or in
//! a .gz/.zip. It takes the dump upload's path: the upload permit (rate limit and an upload
//! slot), the CSRF rule for sessions, the multipart guard, the streaming ingest with its size
//! and ratio limits (checking the content is a log the trend reads, by the analyzer's
//! detection), then a full parse with the analyzer's parsers, so that a log the trend cannot
//! read is refused now with the line it fails on. Stored under `logs/` by content; the same
//! content in the same system is the same log (200, `duplicate: true`).

use super::api::{ingest_error, pump};
use super::upload_request;
use super::{ApiError, AppState};
use crate::db::{self, systems};
use crate::storage::ingest::{self, Expect};
use crate::storage::source::{self, Chunk};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct LogQuery {
    /// Original file name, for display (the multipart file name wins).
    name: Option<String>,
}

pub async fn upload(
    State(app): State<AppState>,
    permit: crate::auth::UploadPermit,
    Path(system): Path<String>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = permit.0.tenant.clone();
    let shown = upload_request::csrf_header(req.headers());
    if let Err(e) = crate::auth::csrf::check_form(&permit.0, shown) {
        return Ok(e.into_response());
    }
    // Checked before a byte of the body is read.
    let system = crate::systems::name::validate(&system).map_err(super::systems::bad_name)?;
    let limit = app.limits.max_upload_bytes;
    if upload_request::announces_more_than(req.headers(), limit) {
        return Err(upload_request::too_large(limit));
    }
    let is_multipart = upload_request::is_multipart(req.headers());
    let (row, created) = if is_multipart {
        let (mut mp, gate) = super::multipart_guard::guarded(req)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_multipart", e.body_text()))?;
        let field = loop {
            match mp.next_field().await {
                Ok(Some(f)) if f.name() == Some("file") => {
                    gate.open();
                    break f;
                }
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_multipart",
                        "multipart upload without a `file` field",
                    ))
                }
                Err(e) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_multipart",
                        gate.explain(e.body_text()),
                    ))
                }
            }
        };
        let name = field.file_name().map(str::to_string).or(q.name);
        store(&app, &tenant, &system, name, field).await?
    } else {
        store(
            &app,
            &tenant,
            &system,
            q.name,
            req.into_body().into_data_stream(),
        )
        .await?
    };
    let (url, _) = super::systems::urls(&tenant, &tenant, &system);
    let body = serde_json::to_value(LogUploadedJson {
        log: super::systems::log_json(&row),
        duplicate: !created,
        system_url: url.clone(),
    })
    .map_err(|e| ApiError::internal("log json", e))?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = (code, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The answer to a log upload: the log ([`super::systems::LogJson`]) and what the upload adds.
/// Serialized through a `Value`, which sorts the keys of both as clients have always seen them.
#[derive(Serialize)]
struct LogUploadedJson {
    #[serde(flatten)]
    log: super::systems::LogJson,
    /// True when the system already had a log of the same content (HTTP 200, not 201).
    duplicate: bool,
    system_url: String,
}

/// Streams one log (`body`: the raw body or the form's file part) through the ingest, reads
/// it whole with the analyzer's parsers, stores it under `logs/` and records it in `tenant`'s
/// `system` (checked by the caller). The API and the system page's form both end here.
pub async fn store<S, E>(
    app: &AppState,
    tenant: &str,
    system: &str,
    name: Option<String>,
    body: S,
) -> Result<(systems::LogRow, bool), ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let tmp = app.storage.tmp_dir();
    let limits = app.limits;
    let (tx, reader) = source::channel();
    let ingest_task = tokio::task::spawn_blocking(move || {
        ingest::ingest_expecting(reader, &tmp, &limits, name, Expect::Log)
    });
    let pumped = pump(body, &tx).await;
    if let Err(why) = &pumped {
        let _ = tx.send(Chunk::Failed(why.clone())).await;
    }
    drop(tx);
    let ingested = ingest_task
        .await
        .map_err(|e| ApiError::internal("upload task", e))?
        .map_err(ingest_error)?;
    let storage = app.storage.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let facts =
            crate::systems::log::read(ingested.file.path()).map(|d| crate::systems::log::facts(&d));
        match facts {
            Ok(f) => storage.store_log(ingested).map(|s| Ok((s, f))),
            Err(e) => Ok(Err(e)),
        }
    })
    .await
    .map_err(|e| ApiError::internal("upload task", e))?
    .map_err(|e| ApiError::internal("storage", e))?;
    let (stored, facts) = match stored {
        Ok(x) => x,
        Err(e) if e.is_content() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_log",
                e.to_string(),
            ))
        }
        Err(e) => return Err(ApiError::internal("storage", e)),
    };
    let new = systems::NewLog {
        tenant,
        system,
        sha256: &stored.sha256,
        kind: facts.kind,
        size: stored.size,
        upload_size: stored.received,
        compression: stored.compression,
        original_name: stored.original_name.as_deref(),
        samples: facts.samples as u64,
        first_at: facts.first_ms,
        last_at: facts.last_ms,
    };
    let (row, created) = systems::insert_or_get_log(&app.db, &new, db::now_unix()).await?;
    tracing::info!(log = %row.id, system = %system, sha256 = %row.sha256, created, "log stored");
    Ok((row, created))
}
