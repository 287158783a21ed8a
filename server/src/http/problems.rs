//! The problems API: dumps grouped by signature (`db::problem_key`), with the support workflow.
//!
//! - `GET /api/v1/problems[?status=][&tenant=]`: the problems the caller has dumps in, most
//!   recently seen first; counts are the caller's own (support and admin: every tenant's, or
//!   one with `tenant=`).
//! - `GET /api/v1/problems.csv`: the same list as CSV, for spreadsheets.
//! - `GET /api/v1/problems/{id}`: one problem with its dumps, kernel builds, driver versions
//!   and a summary to paste into a ticket; support and admin also get comments and the audit
//!   trail.
//! - `PATCH /api/v1/problems/{id}` (support, admin): status, fixed_in, assignee, ticket_url.
//! - `POST /api/v1/problems/{id}/comments` (support, admin): `{"body": "..."}`.
//!
//! A problem with no dump the caller may see answers 404, like a problem that does not exist.

use super::{ApiError, AppState};
use crate::auth::{Principal, Role};
use crate::db::problems::{self, ProblemDetail, ProblemRow, Workflow, STATUSES};
use crate::db::{now_unix, rfc3339};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Longest assignee, fixed-in version and ticket URL accepted.
const MAX_FIELD: usize = 200;
const MAX_URL: usize = 2000;
/// Longest comment accepted.
const MAX_COMMENT: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/problems", get(list))
        .route("/api/v1/problems.csv", get(csv))
        .route("/api/v1/problems/{id}", get(one).patch(update))
        .route("/api/v1/problems/{id}/comments", post(comment))
}

/// A problem in the JSON API.
#[derive(Debug, Serialize)]
pub struct ProblemJson {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub dumps: i64,
    pub customers: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub status: String,
    pub fixed_in: Option<String>,
    pub assignee: Option<String>,
    pub ticket_url: Option<String>,
    pub page_url: String,
}

impl ProblemJson {
    pub fn of(r: &ProblemRow) -> ProblemJson {
        ProblemJson {
            id: r.id.clone(),
            kind: r.kind.clone(),
            title: r.title.clone(),
            dumps: r.dumps,
            customers: r.customers,
            first_seen: rfc3339(r.first_seen),
            last_seen: rfc3339(r.last_seen),
            status: r.workflow.status.clone(),
            fixed_in: r.workflow.fixed_in.clone(),
            assignee: r.workflow.assignee.clone(),
            ticket_url: r.workflow.ticket_url.clone(),
            page_url: format!("/problems/{}", r.id),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The tenant a caller's query covers: customers their own, support and admin `tenant` or all.
pub fn scope(p: &Principal, asked: Option<&str>) -> Option<String> {
    if p.role.sees_all_tenants() {
        asked
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    } else {
        Some(p.tenant.clone())
    }
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

fn status_param(s: Option<&str>) -> Result<Option<String>, ApiError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if STATUSES.contains(&s) => Ok(Some(s.to_string())),
        Some(_) => Err(bad(
            "bad_status",
            format!("status: one of {}", STATUSES.join(", ")),
        )),
    }
}

async fn rows(app: &AppState, p: &Principal, q: &ListQuery) -> Result<Vec<ProblemRow>, ApiError> {
    let status = status_param(q.status.as_deref())?;
    let tenant = scope(p, q.tenant.as_deref());
    problems::list(&app.db, tenant.as_deref(), status.as_deref())
        .await
        .map_err(|e| ApiError::internal("database", e))
}

#[derive(Serialize)]
struct ListJson {
    problems: Vec<ProblemJson>,
}

async fn list(
    State(app): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListJson>, ApiError> {
    let rows = rows(&app, &p, &q).await?;
    Ok(Json(ListJson {
        problems: rows.iter().map(ProblemJson::of).collect(),
    }))
}

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-`
/// or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

async fn csv(
    State(app): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let rows = rows(&app, &p, &q).await?;
    let mut out = String::from(
        "id,kind,title,dumps,customers,first_seen,last_seen,status,fixed_in,assignee,ticket_url\r\n",
    );
    for r in rows.iter().map(ProblemJson::of) {
        let fields = [
            r.id,
            r.kind,
            r.title,
            r.dumps.to_string(),
            r.customers.to_string(),
            r.first_seen,
            r.last_seen,
            r.status,
            r.fixed_in.unwrap_or_default(),
            r.assignee.unwrap_or_default(),
            r.ticket_url.unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"problems.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

/// A dump of a problem in the JSON API.
#[derive(Serialize)]
struct DumpJson {
    id: String,
    tenant: String,
    name: Option<String>,
    uploaded_at: String,
    build: Option<i64>,
    verdict: Option<String>,
    page_url: String,
}

#[derive(Serialize)]
struct EntryJson {
    actor: String,
    action: String,
    text: String,
    at: String,
}

#[derive(Serialize)]
struct DetailJson {
    #[serde(flatten)]
    problem: ProblemJson,
    signature: String,
    builds: Vec<i64>,
    driver_versions: Vec<String>,
    dumps: Vec<DumpJson>,
    ticket_summary: String,
    /// Support and admin only; absent for customers.
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<Vec<EntryJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EntryJson>>,
}

fn entries(v: Vec<problems::Entry>) -> Vec<EntryJson> {
    v.into_iter()
        .map(|e| EntryJson {
            actor: e.actor,
            action: e.action,
            text: e.text,
            at: rfc3339(e.at),
        })
        .collect()
}

/// Plain text for a ticket: what, how often, where, and the link.
pub fn ticket_summary(d: &ProblemDetail) -> String {
    let r = &d.row;
    let mut s = format!(
        "Problem {}: {}\nSeen in {} dump(s) from {} customer(s), {} to {}.\nStatus: {}",
        r.id,
        r.title,
        r.dumps,
        r.customers,
        rfc3339(r.first_seen),
        rfc3339(r.last_seen),
        r.workflow.status
    );
    if let Some(v) = &r.workflow.fixed_in {
        s.push_str(&format!(" (fixed in {v})"));
    }
    if !d.builds.is_empty() {
        let b: Vec<String> = d.builds.iter().map(i64::to_string).collect();
        s.push_str(&format!("\nWindows builds: {}", b.join(", ")));
    }
    if !d.versions.is_empty() {
        s.push_str(&format!("\nDriver images: {}", d.versions.join(", ")));
    }
    if let Some(latest) = d.dumps.first().and_then(|x| x.sentence.as_ref()) {
        s.push_str(&format!("\nLatest verdict: {latest}"));
    }
    s.push_str(&format!("\nSignature: {}", d.signature));
    s
}

async fn load(app: &AppState, p: &Principal, id: &str) -> Result<ProblemDetail, ApiError> {
    let tenant = scope(p, None);
    problems::detail(&app.db, id, tenant.as_deref())
        .await
        .map_err(|e| ApiError::internal("database", e))?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such problem"))
}

async fn one(
    State(app): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let d = load(&app, &p, &id).await?;
    let support = p.role.sees_all_tenants();
    let (comments, events) = if support {
        let c = problems::comments(&app.db, &id).await;
        let e = problems::events(&app.db, &id).await;
        (
            Some(entries(c.map_err(|e| ApiError::internal("database", e))?)),
            Some(entries(e.map_err(|e| ApiError::internal("database", e))?)),
        )
    } else {
        (None, None)
    };
    let body = DetailJson {
        problem: ProblemJson::of(&d.row),
        signature: d.signature.clone(),
        builds: d.builds.clone(),
        driver_versions: d.versions.clone(),
        dumps: d
            .dumps
            .iter()
            .map(|x| DumpJson {
                id: x.id.clone(),
                tenant: x.tenant.clone(),
                name: x.name.clone(),
                uploaded_at: rfc3339(x.created_at),
                build: x.build,
                verdict: x.sentence.clone(),
                page_url: format!("/dumps/{}", x.id),
            })
            .collect(),
        ticket_summary: ticket_summary(&d),
        comments,
        events,
    };
    serde_json::to_value(body)
        .map(Json)
        .map_err(|e| ApiError::internal("json", e))
}

/// Support and admin change the workflow; a session caller also sends its CSRF token.
pub fn may_write(p: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    if !matches!(p.role, Role::Support | Role::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only support and admin change a problem",
        ));
    }
    let shown = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    crate::auth::csrf::check_form(p, shown)
        .map_err(|e| ApiError::new(e.status(), "csrf", e.to_string()))
}

/// A workflow change as sent: absent fields keep their value, `""` clears one.
#[derive(Debug, Default, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub fixed_in: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub ticket_url: Option<String>,
}

fn optional(
    field: &str,
    v: Option<&str>,
    old: &Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match v.map(str::trim) {
        None => Ok(old.clone()),
        Some("") => Ok(None),
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => Err(bad(
            "bad_field",
            format!("{field}: at most {max} characters, no control characters"),
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// The workflow after `change`, validated.
pub fn apply(old: &Workflow, change: &Change) -> Result<Workflow, ApiError> {
    let status = match status_param(change.status.as_deref())? {
        Some(s) => s,
        None => old.status.clone(),
    };
    let ticket_url = optional(
        "ticket_url",
        change.ticket_url.as_deref(),
        &old.ticket_url,
        MAX_URL,
    )?;
    if let Some(u) = &ticket_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(bad("bad_field", "ticket_url: an http:// or https:// URL"));
        }
    }
    Ok(Workflow {
        status,
        fixed_in: optional(
            "fixed_in",
            change.fixed_in.as_deref(),
            &old.fixed_in,
            MAX_FIELD,
        )?,
        assignee: optional(
            "assignee",
            change.assignee.as_deref(),
            &old.assignee,
            MAX_FIELD,
        )?,
        ticket_url,
    })
}

/// Who did it, for the audit trail: the tenant and role of the token (tokens have no person).
pub fn actor(p: &Principal) -> String {
    format!("{} ({})", p.tenant, p.role.as_str())
}

async fn update(
    State(app): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(change): Json<Change>,
) -> Result<Json<ProblemJson>, ApiError> {
    may_write(&p, &headers)?;
    let d = load(&app, &p, &id).await?;
    let new = apply(&d.row.workflow, &change)?;
    problems::update(&app.db, &id, &actor(&p), &new, now_unix())
        .await
        .map_err(|e| ApiError::internal("database", e))?;
    let mut row = d.row;
    row.workflow = new;
    Ok(Json(ProblemJson::of(&row)))
}

#[derive(Deserialize)]
struct CommentBody {
    body: String,
}

/// A comment's text, validated.
pub fn comment_text(body: &str) -> Result<&str, ApiError> {
    let t = body.trim();
    if t.is_empty() || t.chars().count() > MAX_COMMENT {
        return Err(bad(
            "bad_comment",
            format!("body: 1 to {MAX_COMMENT} characters"),
        ));
    }
    Ok(t)
}

async fn comment(
    State(app): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(c): Json<CommentBody>,
) -> Result<StatusCode, ApiError> {
    may_write(&p, &headers)?;
    load(&app, &p, &id).await?;
    let text = comment_text(&c.body)?;
    problems::comment(&app.db, &id, &actor(&p), text, now_unix())
        .await
        .map_err(|e| ApiError::internal("database", e))?;
    Ok(StatusCode::CREATED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn changes_keep_clear_and_validate() {
        let old = Workflow {
            status: "new".into(),
            assignee: Some("ana".into()),
            ..Default::default()
        };
        let w = apply(
            &old,
            &Change {
                status: Some("fixed".into()),
                fixed_in: Some("2.4.1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                w.status.as_str(),
                w.fixed_in.as_deref(),
                w.assignee.as_deref()
            ),
            ("fixed", Some("2.4.1"), Some("ana"))
        );
        let cleared = apply(
            &w,
            &Change {
                assignee: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(cleared.assignee, None);
        let bogus = |c: Change| apply(&old, &c).unwrap_err().code;
        assert_eq!(
            bogus(Change {
                status: Some("done".into()),
                ..Default::default()
            }),
            "bad_status"
        );
        assert_eq!(
            bogus(Change {
                ticket_url: Some("javascript:alert(1)".into()),
                ..Default::default()
            }),
            "bad_field"
        );
        assert!(comment_text("  ").is_err());
        assert_eq!(comment_text(" ok ").unwrap(), "ok");
    }
}
