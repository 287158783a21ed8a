//! The vendor symbols page: `GET /symbols` (the tenant's store: its files, an upload form),
//! `POST /symbols` (the form, without JavaScript: the upload goes through the same sandboxed
//! ingest as `POST /api/v1/symbols`, and the page shows what became of each file and which
//! dumps are analysed again), `POST /symbols/{id}/delete`.
//!
//! Customers see and change their own tenant's store only; support and admin see every
//! tenant's files (with the tenant) and upload into their own.

use super::super::symbols::{add_status, receive_stream};
use super::super::AppState;
use super::upload::{drain, small_text};
use super::{format, render_status, Nav, PageError, PageUser};
use crate::auth::{csrf, AuthError};
use crate::db::symbol_files::{self, SymbolFileRow};
use crate::vendor_symbols::service::{AddError, AddReport};
use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use serde::Deserialize;

/// Files listed on the page (newest first); the API pages through the rest.
const PAGE_ROWS: i64 = 200;

#[derive(Template)]
#[template(path = "symbols.html")]
struct SymbolsPage {
    nav: Nav,
    title: &'static str,
    max_upload: String,
    rows: Vec<FileRow>,
    more: bool,
    /// The last upload's outcome, on the page a form post answers with.
    result: Option<ResultView>,
    error: Option<String>,
}

struct FileRow {
    id: String,
    tenant: String,
    name: String,
    kind: &'static str,
    key: String,
    size: String,
    contents: String,
    original_name: String,
    created: String,
}

struct ResultView {
    files: Vec<ResultRow>,
    requeued: Vec<(String, String)>,
    not_requeued: Vec<(String, String)>,
}

struct ResultRow {
    entry: String,
    status: &'static str,
    what: String,
}

fn file_row(f: &SymbolFileRow) -> FileRow {
    let contents = match (f.kind.as_str(), f.line_ranges) {
        ("pdb", Some(n)) if n > 0 => format!(
            "{} functions, source lines",
            f.functions.unwrap_or_default()
        ),
        ("pdb", _) => format!(
            "{} functions, no source lines (a public PDB)",
            f.functions.unwrap_or_default()
        ),
        _ => "image".into(),
    };
    FileRow {
        id: f.id.clone(),
        tenant: f.tenant.clone(),
        name: f.name.clone(),
        kind: if f.kind == "pdb" { "PDB" } else { "image" },
        key: f.key.clone(),
        size: format::bytes_i64(f.size),
        contents,
        original_name: f.original_name.clone().unwrap_or_default(),
        created: format::datetime(f.created_at),
    }
}

fn result_view(r: &AddReport) -> ResultView {
    ResultView {
        files: r
            .files
            .iter()
            .map(|f| ResultRow {
                entry: f.entry.clone(),
                status: f.status,
                what: match (&f.identity, &f.error) {
                    (_, Some(e)) => e.clone(),
                    (Some(id), None) => {
                        format!("{} {}/{}: {}", id.kind, id.name, id.key, id.describe())
                    }
                    (None, None) => String::new(),
                },
            })
            .collect(),
        requeued: r
            .requeued
            .requeued
            .iter()
            .map(|d| {
                (
                    format!("/dumps/{}", d.id),
                    d.original_name.clone().unwrap_or_else(|| d.id.clone()),
                )
            })
            .collect(),
        not_requeued: r
            .requeued
            .not_requeued
            .iter()
            .map(|d| (format!("/dumps/{}", d.id), d.reason.clone()))
            .collect(),
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    tenant: Option<String>,
}

async fn page_with(
    app: &AppState,
    user: &PageUser,
    tenant: Option<&str>,
    status: StatusCode,
    result: Option<ResultView>,
    error: Option<String>,
) -> Response {
    let nav = Nav::new(user, "symbols");
    let filter = user.tenant_filter().or(tenant.filter(|t| !t.is_empty()));
    let rows = match symbol_files::list(&app.db, filter, PAGE_ROWS + 1, None).await {
        Ok(r) => r,
        Err(e) => return PageError::internal("database", e, &nav).into_response(),
    };
    let more = rows.len() as i64 > PAGE_ROWS;
    let page = SymbolsPage {
        nav,
        title: "Vendor symbols",
        max_upload: format::bytes(app.symbols.max_upload_bytes()),
        rows: rows.iter().take(PAGE_ROWS as usize).map(file_row).collect(),
        more,
        result,
        error,
    };
    render_status(status, &page)
}

/// `GET /symbols`.
pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Query(q): Query<ListQuery>,
) -> Response {
    page_with(&app, &user, q.tenant.as_deref(), StatusCode::OK, None, None).await
}

/// `POST /symbols`, without a body limit of its own (the receive enforces the symbol limit).
pub fn post_route() -> MethodRouter<AppState> {
    post(upload).layer(DefaultBodyLimit::disable())
}

async fn upload(State(app): State<AppState>, user: PageUser, req: Request) -> Response {
    let nav = Nav::new(&user, "symbols");
    // Held until the upload is stored: the slot of an upload in flight.
    let _slot = match app.auth.check_upload(&user.0) {
        Ok(slot) => slot,
        Err(e @ (AuthError::RateLimited { .. } | AuthError::UploadsBusy { .. })) => {
            let msg = e.to_string();
            return page_with(
                &app,
                &user,
                None,
                StatusCode::TOO_MANY_REQUESTS,
                None,
                Some(msg),
            )
            .await;
        }
        Err(e) => return e.into_response(),
    };
    let refused = |status: StatusCode, msg: String| {
        let (app, user) = (app.clone(), user.clone());
        async move { page_with(&app, &user, None, status, None, Some(msg)).await }
    };
    let (mut mp, gate) = match crate::http::multipart_guard::guarded(req).await {
        Ok(guarded) => guarded,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e.body_text()).await,
    };
    // The CSRF field comes first: a forged post is refused before a byte is stored.
    let mut token: Option<String> = None;
    let field = loop {
        match mp.next_field().await {
            Ok(Some(f)) if f.name() == Some(csrf::FORM_FIELD) => token = small_text(f, 256).await,
            Ok(Some(f)) if f.name() == Some("file") => {
                gate.open();
                break f;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return refused(StatusCode::BAD_REQUEST, "The form has no file.".into()).await
            }
            Err(e) => return refused(StatusCode::BAD_REQUEST, gate.explain(e.body_text())).await,
        }
    };
    if let Err(e) = csrf::check_form(&user.0, token.as_deref()) {
        drain(field).await;
        return PageError::new(e.status(), e.to_string(), &nav).into_response();
    }
    let name = field
        .file_name()
        .map(str::to_string)
        .filter(|n| !n.is_empty());
    let received = match receive_stream(&app, field).await {
        Ok(r) => r,
        Err(e) => return refused(e.status, e.message).await,
    };
    let tmp = app.storage.tmp_dir();
    match app
        .symbols
        .add(&app.db, &tmp, &user.0.tenant, received, name)
        .await
    {
        Ok(report) => {
            let status = add_status(&report);
            page_with(&app, &user, None, status, Some(result_view(&report)), None).await
        }
        Err(AddError::Refused(why)) => {
            refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The upload cannot be read: {why}"),
            )
            .await
        }
        Err(e @ AddError::Internal(_)) => PageError::internal("symbols", e, &nav).into_response(),
    }
}

/// `POST /symbols/{id}/delete`: removes the file, then back to the list.
pub async fn delete(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "symbols");
    super::form::checked::<super::form::Button>(&user, &body, &nav)?;
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "No such symbol file (or not one you may see).",
            &nav,
        )
    };
    app.symbols
        .delete(&app.db, &id, user.tenant_filter())
        .await
        .map_err(|e| PageError::internal("symbols", e, &nav))?
        .ok_or_else(not_found)?;
    Ok(axum::response::Redirect::to("/symbols").into_response())
}
