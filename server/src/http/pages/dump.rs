//! `GET /dumps/{id}`: a dump's live status while it waits or runs (the page refreshes itself
//! every 3 s with `<meta http-equiv=refresh>`, no script), then its report; and
//! `GET /dumps/{id}/drivers/{module}`: one driver's tags, call sites and largest blocks.
//! Another tenant's dump answers the same 404 page as a dump that does not exist.

use super::super::AppState;
use super::filters;
use super::report_view::{self, AnalysisView, DriverView, InspectView, Stored, TagSort};
use super::user::percent_encode;
use super::{format, render, Nav, PageError, PageUser};
use crate::db::dumps::{self, DumpRow};
use crate::db::stats;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Seconds between refreshes of a page whose analysis is not finished.
const REFRESH_SECS: u32 = 3;

/// The dump's own facts, above the report.
pub struct DumpFacts {
    pub name: String,
    pub tenant: String,
    pub status: String,
    pub stage: String,
    pub error: Option<String>,
    pub attempts: i64,
    pub size: String,
    pub upload: String,
    pub sha256: String,
    pub date: String,
    pub report_url: String,
    /// Set when retention removed the dump file (the report stays).
    pub file_deleted: Option<String>,
    /// Where the delete form posts.
    pub delete_action: String,
    pub retry_action: String,
    /// The system (machine) the dump belongs to, and its page.
    pub system: Option<(String, String)>,
}

impl DumpFacts {
    fn of(d: &DumpRow, file_deleted_at: Option<i64>) -> DumpFacts {
        DumpFacts {
            name: d.original_name.clone().unwrap_or_else(|| d.id.clone()),
            tenant: d.tenant.clone(),
            status: d.state.clone(),
            stage: d.stage.clone(),
            error: d.error.clone(),
            attempts: d.attempts,
            size: format::bytes_i64(d.size),
            upload: match d.compression.as_str() {
                "none" => format!("{} uploaded as is", format::bytes_i64(d.upload_size)),
                c => format!("{} uploaded ({c})", format::bytes_i64(d.upload_size)),
            },
            sha256: d.sha256.clone(),
            date: format::datetime(d.created_at),
            report_url: format!("/api/v1/dumps/{}/report", percent_encode(&d.id)),
            file_deleted: file_deleted_at.map(format::datetime),
            delete_action: format!("/dumps/{}/delete", percent_encode(&d.id)),
            retry_action: format!("/dumps/{}/retry", percent_encode(&d.id)),
            system: None,
        }
    }
}

#[derive(Template)]
#[template(path = "dump.html")]
struct DumpPage {
    nav: Nav,
    title: String,
    d: DumpFacts,
    refresh: Option<u32>,
    analysis: Option<AnalysisView>,
    inspect: Option<InspectView>,
    unreadable: Option<String>,
    /// The tag table's filter, as typed (empty: none).
    tag_filter: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    sort: Option<String>,
    /// `all`: every tag row instead of the first [`report_view::TAG_ROWS`].
    #[serde(default)]
    tags: Option<String>,
    /// Keeps the tag rows whose tag or owners contain this text (case-insensitive).
    #[serde(default)]
    tag: Option<String>,
}

/// The dump if this user may see it (else the 404 page), with when retention removed its
/// file.
async fn load(
    app: &AppState,
    user: &PageUser,
    nav: &Nav,
    id: &str,
) -> Result<(DumpRow, Option<i64>), PageError> {
    let item = stats::get_dump(&app.db, id, user.tenant_filter())
        .await
        .map_err(|e| PageError::internal("database", e, nav))?
        .ok_or_else(|| PageError::not_found(nav))?;
    Ok((item.dump, item.file_deleted_at))
}

async fn load_report(app: &AppState, nav: &Nav, d: &DumpRow) -> Result<Option<Stored>, PageError> {
    if d.state != "done" {
        return Ok(None);
    }
    let json = dumps::report(&app.db, &d.analysis)
        .await
        .map_err(|e| PageError::internal("database", e, nav))?;
    Ok(Some(match json {
        Some(j) => report_view::parse(&j),
        None => Stored::Unreadable("the analysis is done but its report is missing".into()),
    }))
}

pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "dumps");
    let (d, file_deleted_at) = load(&app, &user, &nav, &id).await?;
    let stored = load_report(&app, &nav, &d).await?;
    let sort = TagSort::parse(q.sort.as_deref());
    let all_tags = q.tags.as_deref() == Some("all");
    let tag_filter = q
        .tag
        .as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(64)
        .collect::<String>();
    let (mut analysis, mut inspect, mut unreadable) = (None, None, None);
    match stored {
        Some(Stored::Analysis(r)) => {
            let mut v = AnalysisView::build(&d.id, &r, sort, all_tags || !tag_filter.is_empty());
            v.filter_tags(&tag_filter);
            analysis = Some(v)
        }
        Some(Stored::Inspect(r)) => inspect = Some(InspectView::build(&r)),
        Some(Stored::Unreadable(why)) => unreadable = Some(why),
        None => {}
    }
    let refresh = matches!(d.state.as_str(), "queued" | "running").then_some(REFRESH_SECS);
    let mut facts = DumpFacts::of(&d, file_deleted_at);
    facts.system = d.system.clone().map(|s| {
        let href = crate::http::systems::urls(&user.0.tenant, &d.tenant, &s).1;
        (s, href)
    });
    Ok(render(&DumpPage {
        nav,
        title: format!("Dump {}", facts.name),
        d: facts,
        refresh,
        analysis,
        inspect,
        unreadable,
        tag_filter,
    }))
}

#[derive(Template)]
#[template(path = "driver.html")]
struct DriverPage {
    nav: Nav,
    title: String,
    dump_href: String,
    dump_name: String,
    v: DriverView,
    /// "Seen in N of the dumps you may see (M with it in the verdict)", linking to them.
    seen: Option<(i64, i64)>,
    seen_href: String,
}

pub async fn driver_page(
    State(app): State<AppState>,
    user: PageUser,
    Path((id, module)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "dumps");
    let (d, _) = load(&app, &user, &nav, &id).await?;
    let no_driver = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "This dump's report names no such driver.",
            &nav,
        )
    };
    let Some(Stored::Analysis(r)) = load_report(&app, &nav, &d).await? else {
        return Err(no_driver());
    };
    let driver = report_view::find_driver(&r, &module).ok_or_else(no_driver)?;
    let v = DriverView::build(driver);
    let across = stats::top_drivers(
        &app.db,
        &stats::DriverFilter {
            tenant: user.tenant_filter().map(str::to_string),
            module: Some(v.module.clone()),
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| PageError::internal("database", e, &nav))?;
    let seen = across.first().map(|s| (s.dumps, s.verdict_dumps));
    let seen_href = format!("/dumps?driver={}", percent_encode(&v.module));
    Ok(render(&DriverPage {
        title: format!(
            "{} in dump {}",
            v.module,
            d.original_name.as_deref().unwrap_or(&d.id)
        ),
        nav,
        dump_href: format!("/dumps/{}", percent_encode(&d.id)),
        dump_name: d.original_name.clone().unwrap_or_else(|| d.id.clone()),
        v,
        seen,
        seen_href,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteForm {
    /// The form's checkbox: a delete is never one stray click.
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /dumps/{id}/delete` (form fields `csrf`, `confirm=yes`): deletes the dump as
/// `DELETE /api/v1/dumps/{id}` does (its row; with the last upload of the content, the file, the
/// job and the report), then 303 to the list.
pub async fn delete(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "dumps");
    let form: DeleteForm = super::form::checked(&user, &body, &nav)?;
    if form.confirm.as_deref() != Some("yes") {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Tick the box to confirm the deletion.",
            &nav,
        ));
    }
    let (sha, last) = dumps::delete(&app.db, &id, user.tenant_filter())
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?
        .ok_or_else(|| PageError::not_found(&nav))?;
    crate::http::hooks::after_delete(&app, &id, &sha, last)
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?;
    if last {
        let storage = app.storage.clone();
        tokio::task::spawn_blocking(move || storage.remove(&sha))
            .await
            .map_err(|e| PageError::internal("delete task", e, &nav))?
            .map_err(|e| PageError::internal("storage", e, &nav))?;
    }
    tracing::info!(dump = %id, "deleted (form)");
    Ok(axum::response::Redirect::to("/dumps").into_response())
}

/// `POST /dumps/{id}/retry` (admin): the failed analysis goes back to the queue, and the page
/// shows it live again.
pub async fn retry(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "dumps");
    super::form::checked::<super::form::Button>(&user, &body, &nav)?;
    if !user.0.is_admin() {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Only an admin retries an analysis.",
            &nav,
        ));
    }
    let d = crate::db::dumps::get(&app.db, &id, None)
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?
        .ok_or_else(|| PageError::not_found(&nav))?;
    super::super::api::retry_dump(&app, &d)
        .await
        .map_err(|e| PageError::new(e.status, e.message, &nav))?;
    Ok(
        axum::response::Redirect::to(&format!("/dumps/{}", super::user::percent_encode(&id)))
            .into_response(),
    )
}
