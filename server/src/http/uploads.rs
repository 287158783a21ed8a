//! Resumable chunked uploads (docs/api.md, "Resumable upload"): a dropped connection or a
//! server restart does not restart a 10 GB upload.
//!
//! - `POST /api/v1/uploads` `{filename, size}` -> 201 `{id, upload_url, offset: 0, chunk_size}`
//! - `GET /api/v1/uploads/{id}` -> `{id, size, offset, complete, dump_id?, ...}`: where to resume
//! - `PUT /api/v1/uploads/{id}` + `Upload-Offset: N` (or `?offset=N`), body = the next bytes
//!   -> 200 `{offset}`; when the last byte is in, the upload goes through the same ingest as
//!   `POST /api/v1/dumps` and the answer names the dump (`complete: true, dump_id, page_url`).
//!
//! Durability: the bytes go to an append-only file (`storage::chunked`); every
//! [`CHECKPOINT_BYTES`], when a chunk ends, and when its connection breaks, the file is
//! fsynced and then the offset recorded in the database. The recorded offset is the resume
//! point; what a killed server wrote after it is cut off before the next append.

use super::{ApiError, AppState};
use crate::auth::{csrf, AuthError, Principal};
use crate::db::{self, uploads};
use crate::storage::chunked::{self, ChunkFiles, LostBytes};
use crate::storage::ingest::{self, IngestError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Chunk size the server suggests (`chunk_size`). Any size is accepted; this one keeps a lost
/// chunk cheap to resend while each chunk's fsync stays a small part of its time.
pub const CHUNK_SIZE: u64 = 8 << 20;
/// Within one long chunk (a script may send the whole file in one PUT), the offset is made
/// durable this often, so a killed server loses at most this much.
pub const CHECKPOINT_BYTES: u64 = 64 << 20;
/// A chunk whose body stalls this long is treated as interrupted (its bytes so far are kept).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The request and response header carrying the offset (as in the tus protocol).
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
/// The JavaScript of the upload portal (served here: it belongs to this API).
const UPLOAD_JS: &str = include_str!("../../../static/upload.js");

/// Upload state shared by the handlers: the files, the expiry, and which uploads have a chunk
/// being written right now (one writer per upload).
#[derive(Clone)]
pub struct UploadService {
    pub files: ChunkFiles,
    pub expiry: Duration,
    busy: Arc<Mutex<HashSet<String>>>,
}

impl UploadService {
    pub fn new(files: ChunkFiles, expiry: Duration) -> Self {
        UploadService {
            files,
            expiry,
            busy: Arc::default(),
        }
    }

    /// Claims an upload for one writer; `None` while another request writes to it.
    fn claim(&self, id: &str) -> Option<BusyGuard> {
        let mut set = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.to_string()).then(|| BusyGuard {
            busy: self.busy.clone(),
            id: id.to_string(),
        })
    }

    fn is_busy(&self, id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

struct BusyGuard {
    busy: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/uploads", post(create))
        .route(
            "/api/v1/uploads/{id}",
            get(status)
                .put(put_chunk)
                // Chunks are streamed to disk; their size is checked against the upload's.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/static/upload.js", get(upload_js))
}

async fn upload_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        UPLOAD_JS,
    )
        .into_response()
}

fn auth_error(e: AuthError) -> Response {
    e.into_response()
}

/// A session-authenticated call must show the session's CSRF token in `X-CSRF-Token` (bearer
/// calls need none), as for the token endpoints (docs/auth.md).
fn check_csrf(p: &Principal, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let h = super::upload_request::csrf_header(headers);
    csrf::check_form(p, h).map_err(|e| Box::new(auth_error(e)))
}

fn upload_url(id: &str) -> String {
    format!("/api/v1/uploads/{id}")
}

/// `GET /api/v1/uploads/{id}`: where to resume, and what became of a finished upload. Fields
/// in alphabetical order, the order of the `json!` map this answer was first built as.
#[derive(Serialize)]
struct UploadJson {
    /// The chunk size the client should send ([`CHUNK_SIZE`]).
    chunk_size: u64,
    /// True once the last byte is in and the dump was stored.
    complete: bool,
    created_at: String,
    filename: Option<String>,
    id: String,
    /// Bytes received and durable: where to resume.
    offset: i64,
    /// Declared size in bytes.
    size: i64,
    /// `receiving`, `complete` or `failed`.
    state: String,
    updated_at: String,
    upload_url: String,
}

/// An upload's answer with what only some uploads have: the dump it became, why it failed.
/// The flattened members write their keys member by member; going through a `Value` sorts
/// them all, the order clients have always seen.
#[derive(Serialize)]
struct UploadStatusJson {
    #[serde(flatten)]
    upload: UploadJson,
    #[serde(flatten)]
    dump: Option<UploadDumpJson>,
    #[serde(flatten)]
    failure: Option<FailureJson>,
}

/// The dump a completed upload became.
#[derive(Serialize)]
struct UploadDumpJson {
    dump_id: String,
    page_url: String,
    status_url: String,
}

/// Why an upload failed for good.
#[derive(Serialize)]
struct FailureJson {
    /// The machine-readable error code (as an `ApiError`'s).
    code: Option<String>,
    error: String,
}

fn upload_json(u: &uploads::UploadRow) -> serde_json::Value {
    let status = UploadStatusJson {
        upload: UploadJson {
            chunk_size: CHUNK_SIZE,
            complete: u.state == "complete",
            created_at: db::rfc3339(u.created_at),
            filename: u.filename.clone(),
            id: u.id.clone(),
            offset: u.received,
            size: u.size,
            state: u.state.clone(),
            updated_at: db::rfc3339(u.updated_at),
            upload_url: upload_url(&u.id),
        },
        dump: u.dump_id.as_ref().map(|d| UploadDumpJson {
            dump_id: d.clone(),
            page_url: format!("/dumps/{d}"),
            status_url: format!("/api/v1/dumps/{d}"),
        }),
        failure: u.error.as_ref().map(|e| FailureJson {
            code: u.error_code.clone(),
            error: e.clone(),
        }),
    };
    // Strings, numbers and options only: serializing them into a Value cannot fail.
    serde_json::to_value(status).unwrap_or_default()
}

/// `POST /api/v1/uploads`: the new upload. Alphabetical, as [`UploadJson`].
#[derive(Serialize)]
struct CreatedJson {
    chunk_size: u64,
    id: String,
    /// Always 0: nothing is received yet.
    offset: u64,
    size: u64,
    upload_url: String,
}

/// `PUT /api/v1/uploads/{id}` before the last byte: how far the upload got.
#[derive(Serialize)]
struct ProgressJson {
    /// Always false: [`CompletedJson`] answers the last chunk.
    complete: bool,
    id: String,
    offset: u64,
    size: u64,
}

/// `PUT /api/v1/uploads/{id}` with the last byte: the dump the upload became.
#[derive(Serialize)]
struct CompletedJson {
    /// Always true.
    complete: bool,
    dump_id: String,
    /// True when a dump with the same content was already stored.
    duplicate: bool,
    id: String,
    offset: i64,
    page_url: String,
    size: i64,
    status_url: String,
}

fn with_offset(status: StatusCode, offset: i64, body: impl Serialize) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert(UPLOAD_OFFSET, HeaderValue::from(offset.max(0)));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn api_error(status: StatusCode, code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(status, code, msg)
}

#[derive(Deserialize)]
struct CreateBody {
    filename: Option<String>,
    size: u64,
    /// The tenant's system the dump goes into (docs/api.md, "Systems").
    system: Option<String>,
}

/// `POST /api/v1/uploads`: starts an upload (counts against the upload rate limit).
async fn create(
    State(app): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    check_csrf(&principal, &headers).map_err(|r| *r)?;
    // Counts against the rate limit; the slot is taken by each chunk while it flows.
    drop(app.auth.check_upload(&principal).map_err(auth_error)?);
    let req: CreateBody = serde_json::from_slice(&body).map_err(|e| {
        api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected JSON {{\"filename\": \"...\", \"size\": N}}: {e}"),
        )
        .into_response()
    })?;
    let system = crate::systems::name::optional(req.system.as_deref())
        .map_err(|e| super::systems::bad_name(e).into_response())?;
    let limit = app.limits.max_upload_bytes;
    if req.size > limit {
        return Err(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!("upload larger than the limit of {limit} bytes"),
        )
        .into_response());
    }
    if req.size == 0 {
        return Err(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_dump",
            "empty upload: not a kernel dump",
        )
        .into_response());
    }
    let name = crate::storage::name::display_name(req.filename);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let files = app.uploads.files.clone();
    let fid = id.clone();
    // The file first: a row never exists without its file (an orphan file is removed at start).
    tokio::task::spawn_blocking(move || files.create(&fid))
        .await
        .map_err(|e| ApiError::internal("upload task", e).into_response())?
        .map_err(|e| ApiError::internal("upload storage", e).into_response())?;
    uploads::create(
        &app.db,
        &id,
        &principal.tenant,
        &principal.token_id,
        name.as_deref(),
        req.size,
        db::now_unix(),
    )
    .await
    .map_err(|e| ApiError::from(e).into_response())?;
    if let Some(system) = &system {
        uploads::set_system(&app.db, &id, system)
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
    }
    tracing::info!(upload = %id, size = req.size, "resumable upload started");
    let url = upload_url(&id);
    let mut resp = with_offset(
        StatusCode::CREATED,
        0,
        CreatedJson {
            chunk_size: CHUNK_SIZE,
            id,
            offset: 0,
            size: req.size,
            upload_url: url.clone(),
        },
    );
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The upload of this principal's tenant, or 404 (also for an id that is not one of ours).
async fn find(app: &AppState, id: &str, p: &Principal) -> Result<uploads::UploadRow, Response> {
    if !chunked::valid_id(id) {
        return Err(not_found());
    }
    uploads::get(&app.db, id, &p.tenant)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(not_found)
}

fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "not_found", "no such upload").into_response()
}

/// `GET /api/v1/uploads/{id}`: where to resume.
async fn status(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let u = find(&app, &id, &principal).await?;
    Ok(with_offset(StatusCode::OK, u.received, upload_json(&u)))
}

#[derive(Deserialize)]
struct OffsetQuery {
    offset: Option<String>,
}

fn conflict(code: &'static str, msg: String, u: &uploads::UploadRow) -> Response {
    let mut e = api_error(StatusCode::CONFLICT, code, msg);
    e.extra =
        Some(json!({ "offset": u.received, "size": u.size, "complete": u.state == "complete" }));
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(UPLOAD_OFFSET, HeaderValue::from(u.received.max(0)));
    resp
}

/// `PUT /api/v1/uploads/{id}`: appends one chunk at `Upload-Offset`.
async fn put_chunk(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<OffsetQuery>,
    req: Request,
) -> Result<Response, Response> {
    check_csrf(&principal, req.headers()).map_err(|r| *r)?;
    let _slot = app.auth.upload_slot(&principal).map_err(auth_error)?;
    let given = req
        .headers()
        .get(&UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.offset);
    let Some(offset) = given.as_deref().map(|s| s.trim().parse::<u64>()) else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "missing_offset",
            "send the chunk's offset in the Upload-Offset header (or ?offset=N)",
        )
        .into_response());
    };
    let offset = offset.map_err(|_| {
        api_error(
            StatusCode::BAD_REQUEST,
            "bad_offset",
            "Upload-Offset is not a number",
        )
        .into_response()
    })?;
    let u = find(&app, &id, &principal).await?;
    let size = u64::try_from(u.size).unwrap_or(0);
    match u.state.as_str() {
        // The answer to the last chunk was lost: the same answer again.
        "complete" if offset == size => return Ok(completed(&u, false)),
        "complete" => {
            return Err(conflict(
                "upload_complete",
                "this upload is complete".into(),
                &u,
            ))
        }
        "failed" => {
            return Err(conflict(
                "upload_failed",
                format!(
                    "this upload failed: {}",
                    u.error.as_deref().unwrap_or("unknown reason")
                ),
                &u,
            ))
        }
        _ => {}
    }
    let Some(guard) = app.uploads.claim(&u.id) else {
        let mut resp = conflict(
            "upload_busy",
            "another request is writing to this upload; ask for the offset and retry".into(),
            &u,
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(resp);
    };
    // Re-read under the claim: a request that just finished may have moved the offset.
    let u = find(&app, &id, &principal).await?;
    let received = u64::try_from(u.received).unwrap_or(0);
    if u.state != "receiving" || offset != received {
        return Err(conflict(
            "offset_mismatch",
            format!("the upload continues at offset {received}, not {offset}"),
            &u,
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > size.saturating_sub(received)) {
        return Err(chunk_too_large(&u));
    }
    // The writing runs in its own task: if the client goes away and the handler is dropped,
    // the bytes received so far are still made durable and recorded.
    let body = req.into_body().into_data_stream();
    let task = tokio::spawn(write_chunk(app, u, body, guard));
    match task.await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal("upload task", e).into_response()),
    }
}

fn chunk_too_large(u: &uploads::UploadRow) -> Response {
    let mut e = api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "chunk_too_large",
        format!(
            "the chunk goes past the declared size of {} bytes (offset {})",
            u.size, u.received
        ),
    );
    e.extra = Some(json!({ "offset": u.received, "size": u.size }));
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(UPLOAD_OFFSET, HeaderValue::from(u.received.max(0)));
    resp
}

/// Makes `offset` durable: flush, fsync, then record it.
async fn checkpoint(
    app: &AppState,
    id: &str,
    file: &mut tokio::fs::File,
    offset: u64,
) -> Result<(), Response> {
    file.flush()
        .await
        .and(file.sync_data().await)
        .map_err(|e| ApiError::internal("upload storage", e).into_response())?;
    uploads::checkpoint(&app.db, id, offset, db::now_unix())
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    Ok(())
}

async fn write_chunk<S, E>(
    app: AppState,
    u: uploads::UploadRow,
    body: S,
    _guard: BusyGuard,
) -> Result<Response, Response>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let start = u64::try_from(u.received).unwrap_or(0);
    let size = u64::try_from(u.size).unwrap_or(0);
    let files = app.uploads.files.clone();
    let fid = u.id.clone();
    let opened = tokio::task::spawn_blocking(move || files.open_at(&fid, start))
        .await
        .map_err(|e| ApiError::internal("upload task", e).into_response())?;
    let file = match opened {
        Ok(f) => f,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.get_ref().is_some_and(|i| i.is::<LostBytes>()) =>
        {
            let msg = format!("the upload's data was lost on the server ({e}); start again");
            return Err(fail(&app, &u, StatusCode::GONE, "upload_lost", msg).await);
        }
        Err(e) => return Err(ApiError::internal("upload storage", e).into_response()),
    };
    let mut file = tokio::fs::File::from_std(file);
    let mut offset = start;
    // The last offset recorded in the database: the file never gets shorter than this.
    let mut durable = start;
    let mut since_checkpoint = 0u64;
    futures_util::pin_mut!(body);
    let interrupted: Option<String> = loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
            Ok(n) => n,
            Err(_) => break Some(format!("no data for {} s", IDLE_TIMEOUT.as_secs())),
        };
        let bytes = match next {
            None => break None,
            Some(Err(e)) => break Some(e.to_string()),
            Some(Ok(b)) => b,
        };
        let n = bytes.len() as u64;
        if offset + n > size {
            // Past the declared size: the chunk is refused and nothing of it is kept beyond
            // what was already recorded (a long chunk may have passed a checkpoint).
            let _ = file.flush().await;
            drop(file);
            let files = app.uploads.files.clone();
            let fid = u.id.clone();
            let _ = tokio::task::spawn_blocking(move || files.open_at(&fid, durable)).await;
            let mut at = u;
            at.received = i64::try_from(durable).unwrap_or(i64::MAX);
            return Err(chunk_too_large(&at));
        }
        if let Err(e) = file.write_all(&bytes).await {
            // Keep what reached the disk before the failure; the client resumes from there.
            let _ = checkpoint(&app, &u.id, &mut file, offset).await;
            return Err(ApiError::internal("upload storage", e).into_response());
        }
        offset += n;
        since_checkpoint += n;
        if since_checkpoint >= CHECKPOINT_BYTES {
            checkpoint(&app, &u.id, &mut file, offset).await?;
            durable = offset;
            since_checkpoint = 0;
        }
    };
    checkpoint(&app, &u.id, &mut file, offset).await?;
    drop(file);
    if let Some(why) = interrupted {
        tracing::info!(upload = %u.id, offset, "chunk interrupted: {why}");
        let mut e = api_error(
            StatusCode::BAD_REQUEST,
            "incomplete_chunk",
            format!("chunk interrupted ({why}); resume at offset {offset}"),
        );
        e.extra = Some(json!({ "offset": offset, "size": size }));
        return Err(e.into_response());
    }
    if offset < size {
        return Ok(with_offset(
            StatusCode::OK,
            i64::try_from(offset).unwrap_or(i64::MAX),
            ProgressJson {
                complete: false,
                id: u.id,
                offset,
                size,
            },
        ));
    }
    finish(&app, u).await
}

/// Marks the upload failed for good, removes its file, answers the error.
async fn fail(
    app: &AppState,
    u: &uploads::UploadRow,
    status: StatusCode,
    code: &'static str,
    msg: String,
) -> Response {
    if let Err(e) = uploads::fail(&app.db, &u.id, code, &msg, db::now_unix()).await {
        return ApiError::from(e).into_response();
    }
    let files = app.uploads.files.clone();
    let fid = u.id.clone();
    let _ = tokio::task::spawn_blocking(move || files.remove(&fid)).await;
    let mut e = api_error(status, code, msg);
    e.extra = Some(json!({ "offset": u.received, "size": u.size, "complete": false }));
    e.into_response()
}

/// All bytes are in: the same ingest as a streamed upload (decompression with its limits, the
/// dump header check, SHA-256), then storage, dedupe and the analysis job.
async fn finish(app: &AppState, u: uploads::UploadRow) -> Result<Response, Response> {
    let Some(path) = app.uploads.files.path(&u.id) else {
        return Err(not_found());
    };
    let tmp = app.storage.tmp_dir();
    let limits = app.limits;
    let name = u.filename.clone();
    let storage = app.storage.clone();
    let done = tokio::task::spawn_blocking(move || {
        let ingested = ingest::ingest_file(&path, &tmp, &limits, name)?;
        storage.store(ingested).map_err(IngestError::Io)
    })
    .await
    .map_err(|e| ApiError::internal("upload task", e).into_response())?;
    let stored = match done {
        Ok(s) => s,
        Err(IngestError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let msg = "the upload's data was lost on the server; start again".to_string();
            return Err(fail(app, &u, StatusCode::GONE, "upload_lost", msg).await);
        }
        Err(IngestError::Io(e)) => {
            // Kept: an empty PUT at the final offset retries the finish.
            return Err(ApiError::internal("storage", e).into_response());
        }
        Err(e) => {
            let api = super::api::ingest_error(e);
            return Err(fail(app, &u, api.status, api.code, api.message).await);
        }
    };
    let (dump_id, created) =
        super::hooks::record_upload(app, &u.tenant, &stored, None, u.system.as_deref())
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
    uploads::complete(&app.db, &u.id, &dump_id, db::now_unix())
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    // A .gz/.zip upload was decompressed into a new file; the received bytes go now.
    let files = app.uploads.files.clone();
    let fid = u.id.clone();
    let _ = tokio::task::spawn_blocking(move || files.remove(&fid)).await;
    tracing::info!(upload = %u.id, dump = %dump_id, "resumable upload complete");
    let mut done = u;
    done.state = "complete".into();
    done.received = done.size;
    done.dump_id = Some(dump_id);
    Ok(completed(&done, !created))
}

fn completed(u: &uploads::UploadRow, duplicate: bool) -> Response {
    let dump_id = u.dump_id.clone().unwrap_or_default();
    with_offset(
        StatusCode::OK,
        u.size,
        CompletedJson {
            complete: true,
            dump_id: dump_id.clone(),
            duplicate,
            id: u.id.clone(),
            offset: u.size,
            page_url: format!("/dumps/{dump_id}"),
            size: u.size,
            status_url: format!("/api/v1/dumps/{dump_id}"),
        },
    )
}

/// Removes abandoned uploads: at start every file that belongs to no receiving upload, then
/// every `expiry / 4` (1 s to 10 min) the uploads idle for longer than `expiry`, with their files.
pub fn start_sweeper(
    db: db::Db,
    svc: UploadService,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let listed_at = std::time::SystemTime::now();
        match uploads::receiving_ids(&db).await {
            Ok(ids) => {
                let keep: HashSet<String> = ids.into_iter().collect();
                let files = svc.files.clone();
                match tokio::task::spawn_blocking(move || files.remove_orphans(&keep, listed_at))
                    .await
                {
                    Ok(Ok(n)) if n > 0 => tracing::info!("removed {n} orphaned upload files"),
                    Ok(Err(e)) => tracing::warn!("upload files: {e}"),
                    _ => {}
                }
            }
            Err(e) => tracing::warn!("upload sweeper: {e}"),
        }
        let period = (svc.expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = sweep(&db, &svc).await {
                tracing::warn!("upload sweeper: {e}");
            }
        }
    })
}

async fn sweep(db: &db::Db, svc: &UploadService) -> Result<(), sqlx::Error> {
    let expiry = i64::try_from(svc.expiry.as_secs()).unwrap_or(i64::MAX);
    let before = db::now_unix().saturating_sub(expiry);
    for id in uploads::idle_since(db, before).await? {
        // A chunk being written right now is activity, whatever the row says.
        if svc.is_busy(&id) || !uploads::delete_idle(db, &id, before).await? {
            continue;
        }
        let files = svc.files.clone();
        let fid = id.clone();
        match tokio::task::spawn_blocking(move || files.remove(&fid)).await {
            Ok(Err(e)) => tracing::warn!(upload = %id, "cannot remove expired upload: {e}"),
            _ => tracing::info!(upload = %id, "abandoned upload expired"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_keep_the_key_order_of_their_json_maps() {
        use crate::http::stats::tests::assert_map_order;
        assert_map_order(&CreatedJson {
            chunk_size: CHUNK_SIZE,
            id: "u".into(),
            offset: 0,
            size: 1,
            upload_url: upload_url("u"),
        });
        assert_map_order(&ProgressJson {
            complete: false,
            id: "u".into(),
            offset: 0,
            size: 1,
        });
        assert_map_order(&CompletedJson {
            complete: true,
            dump_id: "d".into(),
            duplicate: false,
            id: "u".into(),
            offset: 1,
            page_url: "/dumps/d".into(),
            size: 1,
            status_url: "/api/v1/dumps/d".into(),
        });
    }

    #[test]
    fn a_failed_upload_names_its_error_and_code_among_sorted_keys() {
        let u = uploads::UploadRow {
            id: "u".into(),
            tenant: "a".into(),
            filename: None,
            size: 10,
            received: 4,
            state: "failed".into(),
            dump_id: None,
            error: Some("bad dump".into()),
            error_code: None,
            created_at: 0,
            updated_at: 1,
            system: None,
        };
        let text = serde_json::to_string(&upload_json(&u)).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"chunk_size\":{CHUNK_SIZE},\"code\":null,\"complete\":false,\
                 \"created_at\":\"1970-01-01T00:00:00Z\",\"error\":\"bad dump\",\
                 \"filename\":null,\"id\":\"u\",\"offset\":4,\"size\":10,\
                 \"state\":\"failed\",\"updated_at\":\"1970-01-01T00:00:01Z\",\
                 \"upload_url\":\"/api/v1/uploads/u\"}}"
            )
        );
    }

    #[test]
    fn one_writer_per_upload() {
        let dir = tempfile::tempdir().unwrap();
        let svc = UploadService::new(
            ChunkFiles::open(dir.path()).unwrap(),
            Duration::from_secs(1),
        );
        let g = svc.claim("a").unwrap();
        assert!(svc.claim("a").is_none());
        assert!(svc.is_busy("a"));
        assert!(svc.claim("b").is_some());
        drop(g);
        assert!(!svc.is_busy("a"));
        assert!(svc.claim("a").is_some());
    }
}
