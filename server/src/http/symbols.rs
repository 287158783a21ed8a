//! REST API v1 for vendor symbols (docs/api.md, "Vendor symbols"): a tenant uploads PDBs and
//! images (one file, or a zip of them: a symstore tree included), lists and deletes them. The
//! upload is received like a dump (streamed to a temporary file, limits, rate limit, CSRF for
//! browser sessions), then read in the sandbox (`crate::vendor_symbols`).

use super::api::pump;
use super::caller::Caller;
use super::upload_request;
use super::{ApiError, AppState};
use crate::db::symbol_files::{self, SymbolFileRow};
use crate::storage::source::{self, Chunk};
use crate::vendor_symbols::receive::{receive, ReceiveError, Received};
use crate::vendor_symbols::requeue::Requeued;
use crate::vendor_symbols::service::{AddError, AddReport};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/symbols",
            axum::routing::post(upload)
                .get(list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/symbols/{id}", get(one).delete(delete))
}

/// A stored file as the API shows it. Fields in alphabetical order, the order of the `json!`
/// map it was first built as (serde_json keeps a map's keys sorted).
#[derive(Serialize)]
pub struct FileJson {
    created_at: String,
    functions: Option<i64>,
    id: String,
    key: String,
    kind: String,
    line_info: Option<bool>,
    line_ranges: Option<i64>,
    name: String,
    original_name: Option<String>,
    path: String,
    sha256: String,
    size: i64,
    tenant: String,
    url: String,
}

pub fn file_json(f: &SymbolFileRow) -> FileJson {
    FileJson {
        created_at: crate::db::rfc3339(f.created_at),
        functions: f.functions,
        id: f.id.clone(),
        key: f.key.clone(),
        kind: f.kind.clone(),
        line_info: f.line_ranges.map(|n| n > 0),
        line_ranges: f.line_ranges,
        name: f.name.clone(),
        original_name: f.original_name.clone(),
        path: format!("{}/{}/{}", f.name, f.key, f.name),
        sha256: f.sha256.clone(),
        size: f.size,
        tenant: f.tenant.clone(),
        url: format!("/api/v1/symbols/{}", f.id),
    }
}

/// `GET /api/v1/symbols`.
#[derive(Serialize)]
struct ListJson {
    items: Vec<FileJson>,
    next_cursor: Option<String>,
}

fn receive_error(e: ReceiveError) -> ApiError {
    let msg = e.to_string();
    match e {
        ReceiveError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large", msg)
        }
        ReceiveError::Incomplete(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "incomplete_upload", msg)
        }
        ReceiveError::Io(e) => ApiError::internal("storage", e),
    }
}

pub(super) fn add_error(e: AddError) -> ApiError {
    match e {
        AddError::Refused(why) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_symbols",
            format!("the upload cannot be read: {why}"),
        ),
        AddError::Internal(why) => ApiError::internal("symbols", why),
    }
}

/// Streams a body into a temporary file with the symbol upload limit.
pub(super) async fn receive_stream<S, E>(app: &AppState, stream: S) -> Result<Received, ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let (tx, reader) = source::channel();
    let tmp = app.storage.tmp_dir();
    let limit = app.symbols.max_upload_bytes();
    let task = tokio::task::spawn_blocking(move || receive(reader, &tmp, limit));
    if let Err(why) = pump(stream, &tx).await {
        let _ = tx.send(Chunk::Failed(why)).await;
    }
    drop(tx);
    task.await
        .map_err(|e| ApiError::internal("upload task", e))?
        .map_err(receive_error)
}

/// 201 when a file was added, 200 when every accepted file was already there, 422 when none
/// was accepted (each file says why).
pub(super) fn add_status(r: &AddReport) -> StatusCode {
    if r.count("added") > 0 {
        StatusCode::CREATED
    } else if r.count("duplicate") > 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

#[derive(Deserialize)]
struct UploadQuery {
    /// The file's name (the multipart file name wins): a single file is stored under it.
    name: Option<String>,
}

/// The answer to a symbol upload: the report, and when no file was accepted (HTTP 422) an
/// error as an `ApiError` writes it. Serialized through a `Value`, which sorts the keys of the
/// flattened members together, the order clients have always seen.
#[derive(Serialize)]
struct AddedJson<'a> {
    #[serde(flatten)]
    report: &'a AddReport,
    #[serde(flatten)]
    rejected: Option<NoFileJson>,
}

#[derive(Serialize)]
struct NoFileJson {
    code: &'static str,
    error: &'static str,
}

/// `DELETE /api/v1/symbols/{id}`: the file that went and what that did to the tenant's dumps.
/// Serialized through a `Value`, as [`AddedJson`].
#[derive(Serialize)]
struct DeletedJson {
    deleted: FileJson,
    #[serde(flatten)]
    requeued: Requeued,
}

/// `POST /api/v1/symbols`: raw body (with `?name=`), or multipart with the file in `file`.
async fn upload(
    State(app): State<AppState>,
    permit: crate::auth::UploadPermit,
    caller: Caller,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let shown = upload_request::csrf_header(req.headers());
    if let Err(e) = crate::auth::csrf::check_form(&permit.0, shown) {
        return Ok(e.into_response());
    }
    let limit = app.symbols.max_upload_bytes();
    if upload_request::announces_more_than(req.headers(), limit) {
        return Err(receive_error(ReceiveError::TooLarge { limit }));
    }
    let (received, name) = receive_request(&app, req, q.name).await?;
    let report = app
        .symbols
        .add(
            &app.db,
            &app.storage.tmp_dir(),
            &caller.tenant,
            received,
            name,
        )
        .await
        .map_err(add_error)?;
    let status = add_status(&report);
    let body = AddedJson {
        report: &report,
        rejected: (status == StatusCode::UNPROCESSABLE_ENTITY).then_some(NoFileJson {
            code: "no_symbol_files",
            error: "no file of the upload was accepted",
        }),
    };
    let body = serde_json::to_value(body).map_err(|e| ApiError::internal("json", e))?;
    Ok((status, Json(body)).into_response())
}

/// The upload's bytes and name, from a raw body or the multipart `file` field.
async fn receive_request(
    app: &AppState,
    req: Request,
    name: Option<String>,
) -> Result<(Received, Option<String>), ApiError> {
    let is_multipart = upload_request::is_multipart(req.headers());
    if !is_multipart {
        let r = receive_stream(app, req.into_body().into_data_stream()).await?;
        return Ok((r, name));
    }
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_multipart", m);
    let (mut mp, gate) = super::multipart_guard::guarded(req)
        .await
        .map_err(|e| bad(e.body_text()))?;
    loop {
        match mp.next_field().await {
            Ok(Some(f)) if f.name() == Some("file") => {
                gate.open();
                let name = f.file_name().map(str::to_string).or(name);
                let r = receive_stream(app, f).await?;
                return Ok((r, name));
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err(bad("multipart upload without a `file` field".into())),
            Err(e) => return Err(bad(gate.explain(e.body_text()))),
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    tenant: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/symbols`: newest first; customers see their tenant's files only.
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListJson>, ApiError> {
    let tenant = match (caller.tenant_filter(), q.tenant.as_deref()) {
        (Some(own), Some(t)) if t != own => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "customers see their own tenant's symbols only",
            ))
        }
        (Some(own), _) => Some(own.to_string()),
        (None, t) => t.map(str::to_string),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let before =
        match q.cursor.as_deref() {
            Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", "bad cursor")
            })?),
            None => None,
        };
    let rows = symbol_files::list(
        &app.db,
        tenant.as_deref(),
        limit + 1,
        before.as_ref().map(|(t, id)| (*t, id.as_str())),
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<_> = rows.iter().take(limit as usize).collect();
    let next = more
        .then(|| items.last().map(|r| format!("{}.{}", r.created_at, r.id)))
        .flatten();
    Ok(Json(ListJson {
        items: items.iter().map(|r| file_json(r)).collect(),
        next_cursor: next,
    }))
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('.')?;
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((t.parse().ok()?, id.to_string()))
}

/// `GET /api/v1/symbols/{id}`.
async fn one(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FileJson>, ApiError> {
    let f = symbol_files::get(&app.db, &id, caller.tenant_filter())
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(file_json(&f)))
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such symbol file")
}

/// `DELETE /api/v1/symbols/{id}`: removes the file; the dumps it named are analysed again.
async fn delete(
    State(app): State<AppState>,
    principal: crate::auth::Principal,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    // A browser session shows its CSRF token, as for every state-changing call it makes.
    let shown = upload_request::csrf_header(&headers);
    if let Err(e) = crate::auth::csrf::check_form(&principal, shown) {
        return Ok(e.into_response());
    }
    let (row, requeued) = app
        .symbols
        .delete(&app.db, &id, caller.tenant_filter())
        .await
        .map_err(add_error)?
        .ok_or_else(not_found)?;
    let body = DeletedJson {
        deleted: file_json(&row),
        requeued,
    };
    let body = serde_json::to_value(body).map_err(|e| ApiError::internal("json", e))?;
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_the_key_order_of_their_json_map() {
        let f = SymbolFileRow {
            id: "f1".into(),
            tenant: "a".into(),
            kind: "pdb".into(),
            name: "amdppm.pdb".into(),
            key: "1C19FDDB27BB3399D9B45973EFEAFCF31".into(),
            store_key: "amdppm.pdb/1c19fddb27bb3399d9b45973efeafcf31".into(),
            pdb_key: None,
            sha256: "00".into(),
            size: 1,
            functions: Some(2),
            line_ranges: Some(0),
            original_name: None,
            created_at: 0,
        };
        let page = ListJson {
            items: vec![file_json(&f)],
            next_cursor: None,
        };
        super::super::stats::tests::assert_map_order(&page);
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        assert_eq!(parse_cursor("12.abc"), Some((12, "abc".into())));
        assert_eq!(parse_cursor("12"), None);
        assert_eq!(parse_cursor("x.abc"), None);
        assert_eq!(parse_cursor("1.a/b"), None);
    }
}
