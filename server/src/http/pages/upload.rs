//! The upload portal: `GET /` (the page) and `POST /upload` (its form, without JavaScript).
//!
//! The form posts `multipart/form-data` with the hidden `csrf` field FIRST and the dump in
//! `file`; the handler streams it through the same ingest as `POST /api/v1/dumps`
//! (`crate::storage::ingest`: .gz/.zip by magic, limits, SHA-256, header check) and answers
//! 303 to the dump's page. `static/upload.js` (drag and drop, progress, resumable chunks over
//! `/api/v1/uploads`) takes the same form over when scripts run; the element ids
//! `#drop-zone`, `#file-input`, `#upload-form`, `#progress`, `#upload-status` and
//! `<meta name="csrf-token">` are its contract with this page.

use super::super::api::{ingest_error, pump};
use super::super::AppState;
use super::{format, render, render_status, Nav, PageError, PageUser};
use crate::auth::{csrf, AuthError};
use crate::storage::ingest;
use crate::storage::source::{self, Chunk};
use askama::Template;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    nav: Nav,
    title: &'static str,
    max_upload: String,
    error: Option<String>,
    /// The tenant's systems, offered in the system field's list (free text is accepted too).
    systems: Vec<String>,
}

fn upload_page(app: &AppState, nav: Nav, error: Option<String>) -> UploadPage {
    UploadPage {
        nav,
        title: "Upload a dump",
        max_upload: format::bytes(app.limits.max_upload_bytes),
        error,
        systems: Vec::new(),
    }
}

/// `GET /`.
pub async fn page(State(app): State<AppState>, user: PageUser) -> Response {
    let mut p = upload_page(&app, Nav::new(&user, "upload"), None);
    match crate::db::systems::names(&app.db, &user.0.tenant).await {
        Ok(names) => p.systems = names,
        // The picker is a convenience: the form works without it.
        Err(e) => tracing::warn!("systems for the upload form: {e}"),
    }
    render(&p)
}

/// `POST /upload`, without a body limit of its own: the ingest enforces the upload limits
/// while streaming.
pub fn post_route() -> MethodRouter<AppState> {
    post(upload).layer(DefaultBodyLimit::disable())
}

/// An upload refused: the portal again, with the reason and the matching status.
fn refused(app: &AppState, nav: &Nav, status: StatusCode, message: String) -> Response {
    render_status(status, &upload_page(app, nav.clone(), Some(message)))
}

async fn upload(State(app): State<AppState>, user: PageUser, req: Request) -> Response {
    let nav = Nav::new(&user, "upload");
    // Held until the dump is stored: the slot of an upload in flight.
    let _slot = match app.auth.check_upload(&user.0) {
        Ok(slot) => slot,
        Err(e @ (AuthError::RateLimited { .. } | AuthError::UploadsBusy { .. })) => {
            return refused(&app, &nav, StatusCode::TOO_MANY_REQUESTS, e.to_string());
        }
        Err(e) => return e.into_response(),
    };
    let is_multipart = crate::http::upload_request::is_multipart(req.headers());
    if !is_multipart {
        return refused(
            &app,
            &nav,
            StatusCode::BAD_REQUEST,
            "The form must be sent as multipart/form-data.".into(),
        );
    }
    let (mut mp, gate) = match crate::http::multipart_guard::guarded(req).await {
        Ok(guarded) => guarded,
        Err(e) => return refused(&app, &nav, StatusCode::BAD_REQUEST, e.body_text()),
    };
    // Fields in document order: the CSRF token must come before the file, so a forged post is
    // refused before a byte of its dump is stored.
    let mut csrf_value: Option<String> = None;
    let mut system: Option<String> = None;
    let field = loop {
        match mp.next_field().await {
            Ok(Some(f)) if f.name() == Some(csrf::FORM_FIELD) => match small_text(f, 256).await {
                Some(t) => csrf_value = Some(t),
                None => {
                    let e = AuthError::BadCsrf;
                    return PageError::new(e.status(), e.to_string(), &nav).into_response();
                }
            },
            Ok(Some(f)) if f.name() == Some("system") => {
                let text = small_text(f, 1024)
                    .await
                    .unwrap_or_else(|| "\u{fffd}".into());
                match crate::systems::name::optional(Some(&text)) {
                    Ok(s) => system = s,
                    Err(e) => {
                        crate::http::hooks::drain_form(&mut mp).await;
                        return refused(&app, &nav, StatusCode::BAD_REQUEST, e.to_string());
                    }
                }
            }
            Ok(Some(f)) if f.name() == Some("file") => {
                gate.open();
                break f;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return refused(
                    &app,
                    &nav,
                    StatusCode::BAD_REQUEST,
                    "The form has no file.".into(),
                );
            }
            Err(e) => {
                let why = gate.explain(e.body_text());
                return refused(&app, &nav, StatusCode::BAD_REQUEST, why);
            }
        }
    };
    if let Err(e) = csrf::check_form(&user.0, csrf_value.as_deref()) {
        // Read (and drop) a bounded part of the file first, so a browser still sending can
        // read the answer instead of a reset connection.
        drain(field).await;
        return PageError::new(e.status(), e.to_string(), &nav).into_response();
    }
    let name = field
        .file_name()
        .map(str::to_string)
        .filter(|n| !n.is_empty());
    let (tx, reader) = source::channel();
    let tmp = app.storage.tmp_dir();
    let limits = app.limits;
    let ingest_task =
        tokio::task::spawn_blocking(move || ingest::ingest(reader, &tmp, &limits, name));
    let pumped = pump(field, &tx).await;
    if let Err(why) = &pumped {
        let _ = tx.send(Chunk::Failed(why.clone())).await;
    }
    drop(tx);
    let ingested = match ingest_task.await {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => {
            let e = ingest_error(e);
            return refused(&app, &nav, e.status, e.message);
        }
        Err(e) => return PageError::internal("upload task", e, &nav).into_response(),
    };
    let storage = app.storage.clone();
    let stored = match tokio::task::spawn_blocking(move || storage.store(ingested)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return PageError::internal("storage", e, &nav).into_response(),
        Err(e) => return PageError::internal("upload task", e, &nav).into_response(),
    };
    let id = match crate::http::hooks::record_upload(
        &app,
        &user.0.tenant,
        &stored,
        None,
        system.as_deref(),
    )
    .await
    {
        Ok((id, _)) => id,
        Err(e) => return PageError::internal("database", e, &nav).into_response(),
    };
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/dumps/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The text of a small form field, read chunk by chunk up to `max` bytes; `None` when it is
/// longer or not UTF-8 (a CSRF token is 64 hex digits: anything long is not one).
pub(super) async fn small_text(
    mut f: axum::extract::multipart::Field<'_>,
    max: usize,
) -> Option<String> {
    let mut buf = Vec::new();
    loop {
        match f.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > max {
                    return None;
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    String::from_utf8(buf).ok()
}

/// After an early refusal, this much more of the file is read and dropped, within
/// [`DRAIN_TIME`] (as the API does after a 413/422).
const DRAIN_BYTES: usize = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) async fn drain(mut f: axum::extract::multipart::Field<'_>) {
    let read = async {
        let mut n = 0usize;
        while let Ok(Some(chunk)) = f.chunk().await {
            n += chunk.len();
            if n > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}
