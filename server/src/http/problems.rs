//! The problems API: dumps grouped by signature (`db::problem_key`), with the support workflow.
//!
//! - `GET /api/v1/problems[?status=][&driver=][&tag=][&bugcheck=][&build=][&tenant=]`: the
//!   problems the caller has dumps in, most recently seen first, with `facets` (the values of
//!   each filter and how many problems have them, `db::problem_facets`); counts are the
//!   caller's own (support and admin: every tenant's, or one with `tenant=`).
//! - `GET /api/v1/problems.csv`: the same list (same filters) as CSV, for spreadsheets.
//! - `GET /api/v1/problems/{id}`: one problem with its dumps, kernel builds, driver versions
//!   and a summary to paste into a ticket; support and admin also get comments and the audit
//!   trail.
//! - `PATCH /api/v1/problems/{id}` (support, admin): status, fixed_in, assignee, ticket_url.
//! - `POST /api/v1/problems/{id}/comments` (support, admin): `{"body": "..."}`.
//! - `GET /api/v1/problems/{id}/webhooks` (support, admin): the `problem.updated` deliveries
//!   of the problem and how each went.
//!
//! A problem with no dump the caller may see answers 404, like a problem that does not exist.

use super::{ApiError, AppState};
use crate::auth::{Principal, Role};
use crate::db::problem_facets::{self as facets, Bugcheck, Filter, DIMENSIONS};
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
        .route("/api/v1/problems/{id}/webhooks", get(deliveries))
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
    pub driver: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub bugcheck: Option<String>,
    #[serde(default)]
    pub build: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Longest driver, tag or bug check filter accepted.
const MAX_FILTER: usize = 255;

impl ListQuery {
    /// The filters that can be applied, and an error (naming the parameter and what it
    /// accepts) for each that cannot: pages show the list without those and say why.
    pub fn parse(&self) -> (Filter, Vec<ApiError>) {
        let mut errors = Vec::new();
        let mut keep = |r: Result<Option<String>, ApiError>| match r {
            Ok(v) => v,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let status = keep(status_param(self.status.as_deref()));
        let driver = keep(filter_text("driver", &self.driver));
        let tag = keep(filter_text("tag", &self.tag));
        let bugcheck = keep(filter_text("bugcheck", &self.bugcheck));
        let build = keep(filter_text("build", &self.build));
        let build = build.and_then(|b| match b.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errors.push(bad(
                    "bad_filter",
                    format!(
                        "Build \u{201c}{b}\u{201d} is not a Windows build number: use one such as 19041."
                    ),
                ));
                None
            }
        });
        let filter = Filter {
            status,
            driver: driver.map(|d| d.to_lowercase()),
            tag,
            bugcheck: bugcheck.map(|b| Bugcheck::parse(&b)),
            build,
        };
        (filter, errors)
    }

    /// The filters, or the first that cannot be applied (the API answers 400 then).
    pub fn filter(&self) -> Result<Filter, ApiError> {
        let (filter, errors) = self.parse();
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(filter),
        }
    }
}

/// A text filter: trimmed, empty is none, bounded, no control characters.
fn filter_text(key: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() > MAX_FILTER || s.chars().any(char::is_control) => Err(bad(
            "bad_filter",
            format!("The {key} filter is too long or holds control characters: at most {MAX_FILTER} characters."),
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
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
        Some(s) => Err(bad(
            "bad_status",
            format!(
                "Unknown status \u{201c}{s}\u{201d}: choose one of {}.",
                STATUSES.join(", ")
            ),
        )),
    }
}

/// The problems a caller's list shows (filtered) and the facets of the unfiltered list.
pub struct Listing {
    pub rows: Vec<ProblemRow>,
    pub facets: Vec<(facets::Dimension, Vec<facets::Count>)>,
}

/// The caller's problems within its rights, the filters applied, with the facet counts.
pub async fn listing(
    db: &crate::db::Db,
    tenant: Option<&str>,
    filter: &Filter,
) -> Result<Listing, sqlx::Error> {
    let (all, attrs) = tokio::try_join!(
        problems::list(db, tenant, None),
        facets::attributes(db, tenant)
    )?;
    let none = facets::Attributes::default();
    let facets = DIMENSIONS
        .iter()
        .map(|d| (*d, facets::count(*d, &all, &attrs, filter)))
        .collect();
    let rows = all
        .into_iter()
        .filter(|r| filter.matches(r, attrs.get(&r.id).unwrap_or(&none)))
        .collect();
    Ok(Listing { rows, facets })
}

async fn rows(app: &AppState, p: &Principal, q: &ListQuery) -> Result<Listing, ApiError> {
    let filter = q.filter()?;
    let tenant = scope(p, q.tenant.as_deref());
    listing(&app.db, tenant.as_deref(), &filter)
        .await
        .map_err(|e| ApiError::internal("database", e))
}

/// One facet value in the JSON API.
#[derive(Serialize)]
struct CountJson {
    value: String,
    label: String,
    count: usize,
}

#[derive(Serialize)]
struct ListJson {
    problems: Vec<ProblemJson>,
    /// Per filter (`status`, `driver`, `tag`, `bugcheck`, `build`): its values with the number
    /// of problems having each, counted over the problems the other filters select.
    facets: std::collections::BTreeMap<&'static str, Vec<CountJson>>,
}

async fn list(
    State(app): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListJson>, ApiError> {
    let listing = rows(&app, &p, &q).await?;
    let facets = listing
        .facets
        .into_iter()
        .map(|(d, counts)| {
            let counts = counts
                .into_iter()
                .map(|c| CountJson {
                    value: c.value,
                    label: c.label,
                    count: c.count,
                })
                .collect();
            (d.key(), counts)
        })
        .collect();
    Ok(Json(ListJson {
        problems: listing.rows.iter().map(ProblemJson::of).collect(),
        facets,
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
    let rows = rows(&app, &p, &q).await?.rows;
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
    save(&app, &d, &p, &new)
        .await
        .map_err(|e| ApiError::internal("database", e))?;
    let mut row = d.row;
    row.workflow = new;
    Ok(Json(ProblemJson::of(&row)))
}

/// Saves a workflow change with its audit events and its `problem.updated` webhook events
/// (`crate::webhooks::problem_event`), in one transaction. `d`: the problem as support sees
/// it (every tenant's counts).
pub async fn save(
    app: &AppState,
    d: &ProblemDetail,
    p: &Principal,
    new: &Workflow,
) -> Result<(), sqlx::Error> {
    let who = actor(p);
    let now = now_unix();
    let notify = |old: &Workflow| {
        let change = crate::webhooks::ProblemChange {
            id: &d.row.id,
            title: &d.row.title,
            kind: &d.row.kind,
            old,
            new,
            dumps: d.row.dumps,
            customers: d.row.customers,
            actor: &who,
            at: now,
        };
        crate::webhooks::problem_event(&app.webhooks, &change)
    };
    problems::update(&app.db, &d.row.id, &who, new, now, notify).await?;
    Ok(())
}

/// A problem event delivery in the JSON API.
#[derive(Serialize)]
struct DeliveryJson {
    id: String,
    url: String,
    event: Option<String>,
    state: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

#[derive(Serialize)]
struct DeliveriesJson {
    items: Vec<DeliveryJson>,
}

async fn deliveries(
    State(app): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<DeliveriesJson>, ApiError> {
    if !p.role.sees_all_tenants() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "problem events go to the operator's webhook: support and admin only",
        ));
    }
    load(&app, &p, &id).await?;
    let rows = crate::db::webhooks::for_problem(&app.db, &id)
        .await
        .map_err(|e| ApiError::internal("database", e))?;
    let items = rows
        .into_iter()
        .map(|r| DeliveryJson {
            id: r.id,
            url: r.url,
            event: r.event,
            state: r.state,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: rfc3339(r.created_at),
            delivered_at: r.delivered_at.map(rfc3339),
        })
        .collect();
    Ok(Json(DeliveriesJson { items }))
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
