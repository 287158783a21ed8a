//! `GET /systems`: the systems (machines) the user may see; `GET /systems/{name}`: one
//! system's trend (pool over time and the fastest-growing tags as inline SVG, the growing
//! tags and drivers with their rates), its dumps in time order with each verdict, and its
//! logs; `POST /systems/{name}/logs`: its log upload form; `POST
//! /systems/{name}/logs/{id}/delete`: the log delete form. Visibility is the
//! API's (`crate::http::systems::scope`): another tenant's system is the same 404 page as one
//! that does not exist.

use super::super::caller::Caller;
use super::super::systems as api;
use super::super::AppState;
use super::filters;
use super::svg::Svg;
use super::trend_charts;
use super::{format, render, Nav, PageError, PageUser};
use crate::auth::csrf;
use analyzer::report::analysis::PoolName;
use analyzer::report::trend::{Fit, TrendReport};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Rows of the tags table (the report lists the fastest-growing first).
const TAG_ROWS: usize = 20;

fn caller(user: &PageUser) -> Caller {
    Caller {
        tenant: user.0.tenant.clone(),
        sees_all_tenants: user.0.role.sees_all_tenants(),
    }
}

fn not_found(nav: &Nav) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "No such system (or not one you may see).",
        nav,
    )
}

fn api_error(e: super::super::ApiError, nav: &Nav) -> PageError {
    match e.status {
        StatusCode::NOT_FOUND => not_found(nav),
        s => PageError::new(s, e.message, nav),
    }
}

struct SystemListRow {
    name: String,
    tenant: String,
    href: String,
    dumps: i64,
    logs: i64,
    first_seen: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "systems.html")]
struct ListPage {
    nav: Nav,
    title: &'static str,
    rows: Vec<SystemListRow>,
}

/// `GET /systems`.
pub async fn list(State(app): State<AppState>, user: PageUser) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "systems");
    let rows = crate::db::systems::list(&app.db, user.tenant_filter())
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?;
    let rows = rows
        .into_iter()
        .map(|s| SystemListRow {
            href: api::urls(&user.0.tenant, &s.tenant, &s.name).1,
            name: s.name,
            tenant: s.tenant,
            dumps: s.dumps,
            logs: s.logs,
            first_seen: format::datetime(s.first_seen),
            last_seen: format::datetime(s.last_seen),
        })
        .collect();
    Ok(render(&ListPage {
        nav,
        title: "Systems",
        rows,
    }))
}

struct DumpLine {
    time: String,
    name: String,
    href: String,
    status: String,
    verdict_kind: String,
    verdict: String,
}

struct LogLine {
    name: String,
    kind: String,
    samples: i64,
    first: String,
    last: String,
    size: String,
    uploaded: String,
    delete_action: String,
}

struct RateRow {
    name: String,
    pool: &'static str,
    drivers: String,
    rate: String,
    r2: String,
    points: usize,
    span: String,
    judgement: String,
    growing: bool,
}

struct TrendView {
    kind: String,
    sentence: String,
    reasons: Vec<String>,
    span: String,
    charts: Vec<Svg>,
    tags: Vec<RateRow>,
    tags_more: usize,
    drivers: Vec<RateRow>,
    warnings: Vec<String>,
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    nav: Nav,
    title: String,
    name: String,
    tenant: String,
    other_tenant: bool,
    api_url: String,
    trend: Option<TrendView>,
    trend_error: Option<String>,
    skipped: Vec<String>,
    dumps: Vec<DumpLine>,
    logs: Vec<LogLine>,
    log_upload_url: String,
}

/// `GET /systems/{name}`.
pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
    Query(q): Query<api::SystemQuery>,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "systems");
    let who = caller(&user);
    let (tenant, name) =
        api::scope(&who, q.tenant.as_deref(), &name).map_err(|e| api_error(e, &nav))?;
    let offset = api::utc_offset(&q).map_err(|e| api_error(e, &nav))?;
    let (t, logs) = api::load(&app, &tenant, &name, offset)
        .await
        .map_err(|e| api_error(e, &nav))?
        .ok_or_else(|| not_found(&nav))?;
    let (api_url, page_url) = api::urls(&user.0.tenant, &tenant, &name);
    let tenant_q = page_url
        .find('?')
        .map_or("", |i| &page_url[i..])
        .to_string();
    let dumps = t
        .dumps
        .iter()
        .map(|d| {
            let (verdict_kind, verdict) = d.verdict.clone().unwrap_or_default();
            DumpLine {
                time: d
                    .system_time
                    .as_deref()
                    .map(|s| s.replace('T', " ").replace('Z', " UTC"))
                    .unwrap_or_else(|| format!("uploaded {}", format::datetime(d.row.created_at))),
                name: d
                    .row
                    .original_name
                    .clone()
                    .unwrap_or_else(|| d.row.id.clone()),
                href: format!("/dumps/{}", d.row.id),
                status: d.row.state.clone(),
                verdict_kind,
                verdict,
            }
        })
        .collect();
    let logs = logs
        .iter()
        .map(|l| LogLine {
            name: l.original_name.clone().unwrap_or_else(|| l.id.clone()),
            kind: l.kind.clone(),
            samples: l.samples,
            first: l.first_at.map(millis).unwrap_or_default(),
            last: l.last_at.map(millis).unwrap_or_default(),
            size: format::bytes_i64(l.size),
            uploaded: format::datetime(l.created_at),
            delete_action: format!("/systems/{name}/logs/{}/delete{tenant_q}", l.id),
        })
        .collect();
    Ok(render(&SystemPage {
        nav,
        title: format!("System {name}"),
        other_tenant: tenant != user.0.tenant,
        log_upload_url: format!("/api/v1/systems/{name}/logs"),
        name,
        tenant,
        api_url,
        trend: t.trend.as_ref().map(trend_view),
        trend_error: t.trend_error,
        skipped: t.skipped,
        dumps,
        logs,
    }))
}

/// Log sample times as the log gives them (poolmon's are the machine's wall clock).
fn millis(ms: i64) -> String {
    analyzer::trend::timestamp::format_millis(ms)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

fn trend_view(r: &TrendReport) -> TrendView {
    let mut charts = Vec::new();
    for pool in [PoolName::Paged, PoolName::Nonpaged] {
        if trend_charts::has_pool(r, pool) {
            charts.push(trend_charts::pool_chart(r, pool));
        }
    }
    charts.extend(trend_charts::tags_chart(r));
    let tags: Vec<RateRow> = r
        .tags
        .iter()
        .map(|t| {
            rate_row(
                format!("'{}'", t.tag),
                t.pool,
                t.drivers.join(", "),
                &t.bytes,
                t.judgement,
            )
        })
        .collect();
    let tags_more = tags.len().saturating_sub(TAG_ROWS) + r.tags_not_listed;
    TrendView {
        kind: kebab(&r.verdict.kind),
        sentence: r.verdict.sentence.clone(),
        reasons: r.verdict.reasons.clone(),
        span: match (&r.first, &r.last) {
            (Some(a), Some(b)) => format!("{a} to {b} ({:.1} h)", r.span_hours),
            _ => String::new(),
        },
        charts,
        tags: tags.into_iter().take(TAG_ROWS).collect(),
        tags_more,
        drivers: r
            .drivers
            .iter()
            .map(|d| {
                rate_row(
                    d.driver.clone(),
                    d.pool,
                    d.tags.join(", "),
                    &d.bytes,
                    d.judgement,
                )
            })
            .collect(),
        warnings: r.warnings.clone(),
    }
}

fn rate_row<J: serde::Serialize + Copy>(
    name: String,
    pool: PoolName,
    drivers: String,
    fit: &Fit,
    judgement: J,
) -> RateRow {
    let judgement = kebab(&judgement);
    RateRow {
        name,
        pool: pool.as_str(),
        drivers,
        rate: rate(fit.slope_per_hour),
        r2: fit.r2.map_or("–".into(), |r| format!("{r:.3}")),
        points: fit.points,
        span: format!("{:.1} h", fit.span_hours),
        growing: judgement == "steady-growth",
        judgement,
    }
}

/// Bytes per hour, signed: "+2.00 MiB/h", "-512 B/h", "0 B/h".
fn rate(per_hour: f64) -> String {
    if !per_hour.is_finite() {
        return "–".into();
    }
    let sign = if per_hour > 0.0 {
        "+"
    } else if per_hour < 0.0 {
        "-"
    } else {
        ""
    };
    format!(
        "{sign}{}/h",
        format::bytes_short(per_hour.abs().round() as u64)
    )
}

fn kebab<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `POST /systems/{name}/logs`: the system page's log form (`multipart/form-data`, the hidden
/// `csrf` field before `file`), without a body limit of its own: the log goes through the
/// API's path (`crate::http::log_upload::store`: ingest with its limits, the analyzer's
/// parsers, dedupe), into the user's own tenant, then 303 back to the system's page.
pub async fn upload_log(
    State(app): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
    req: axum::extract::Request,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "systems");
    let refused = |status: StatusCode, m: String| PageError::new(status, m, &nav);
    // Held until the log is stored: the slot of an upload in flight.
    let _slot = match app.auth.check_upload(&user.0) {
        Ok(slot) => slot,
        Err(e) => return Ok(e.into_response()),
    };
    let system = crate::systems::name::validate(&name)
        .map_err(|e| refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    let (mut mp, gate) = crate::http::multipart_guard::guarded(req)
        .await
        .map_err(|e| refused(StatusCode::BAD_REQUEST, e.body_text()))?;
    // The CSRF token comes before the file: a forged post is refused before a byte is stored.
    let mut csrf_value: Option<String> = None;
    let field = loop {
        match mp.next_field().await {
            Ok(Some(f)) if f.name() == Some(csrf::FORM_FIELD) => {
                csrf_value = Some(
                    crate::http::hooks::small_field(f, 256)
                        .await
                        .map_err(|e| refused(e.status, e.message))?,
                );
            }
            Ok(Some(f)) if f.name() == Some("file") => {
                gate.open();
                break f;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    "The form has no file.".into(),
                ))
            }
            Err(e) => {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    gate.explain(e.body_text()),
                ))
            }
        }
    };
    if let Err(e) = csrf::check_form(&user.0, csrf_value.as_deref()) {
        crate::http::hooks::drain_form(&mut mp).await;
        return Err(refused(e.status(), e.to_string()));
    }
    let file_name = field
        .file_name()
        .map(str::to_string)
        .filter(|n| !n.is_empty());
    crate::http::log_upload::store(&app, &user.0.tenant, &system, file_name, field)
        .await
        .map_err(|e| refused(e.status, e.message))?;
    let back = api::urls(&user.0.tenant, &user.0.tenant, &system).1;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&back) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `POST /systems/{name}/logs/{id}/delete`: the log page's delete button (CSRF-checked).
pub async fn delete_log(
    State(app): State<AppState>,
    user: PageUser,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<api::SystemQuery>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "systems");
    super::form::checked::<super::form::Button>(&user, &body, &nav)?;
    let (tenant, name) =
        api::scope(&caller(&user), q.tenant.as_deref(), &name).map_err(|e| api_error(e, &nav))?;
    api::remove_log(&app, &tenant, &name, &id)
        .await
        .map_err(|e| api_error(e, &nav))?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "No such log.", &nav))?;
    let back = api::urls(&user.0.tenant, &tenant, &name).1;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&back) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates() {
        assert_eq!(rate(2_097_152.0), "+2.00 MiB/h");
        assert_eq!(rate(-512.0), "-512 bytes/h");
        assert_eq!(rate(0.0), "0 bytes/h");
        assert_eq!(rate(f64::NAN), "–");
    }
}
