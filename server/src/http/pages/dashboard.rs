//! `GET /dashboard` (support and admin): every customer's dumps with filters (customer,
//! driver, bugcheck, date), the drivers most often blamed across them, and the queue's health.
//! Queries: `crate::db::stats` (search_dumps, top_drivers, queue_health).

use super::super::AppState;
use super::filters;
use super::list::{ListQuery, Row};
use super::{format, render, Nav, PageError, PageUser};
use crate::db::{self, stats};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub struct DriverRow {
    pub module: String,
    pub href: String,
    pub verdict_dumps: i64,
    pub dumps: i64,
    pub total: String,
    pub max: String,
    pub last_seen: String,
}

pub struct Health {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
    pub done: i64,
    pub oldest_queued: String,
    pub done_last_hour: i64,
    pub failed_last_hour: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    title: &'static str,
    q: ListQuery,
    health: Health,
    drivers: Vec<DriverRow>,
    /// How often each top driver is the verdict (inline SVG), when any is.
    drivers_chart: Option<super::svg::Svg>,
    rows: Vec<Row>,
    more_href: String,
    /// The open problems (not fixed, not won't-fix) seen most recently, for the customer,
    /// driver and bug check filters: the dashboard leads with them.
    problems: Vec<super::problems::Item>,
    /// The recent dumps' headers (links to the full list sorted by a column).
    heads: Vec<super::list::Head>,
}

/// Problems listed on the dashboard (the full list is one link away).
const TOP_PROBLEMS: usize = 10;

/// Dumps listed on the dashboard (the full list is one link away).
const RECENT: i64 = 25;
const TOP_DRIVERS: i64 = 20;

pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let nav = Nav::new(&user, "dashboard");
    if !user.0.role.sees_all_tenants() {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "The dashboard is for support engineers.",
            &nav,
        )
        .into_response();
    }
    let mut filter = q.filter(&user, RECENT);
    filter.cursor = None;
    let driver_filter = stats::DriverFilter {
        tenant: filter.tenant.clone(),
        since: filter.since,
        until: filter.until,
        module: filter.driver.clone(),
        limit: TOP_DRIVERS,
    };
    let now = db::now_unix();
    let search = super::problems::Search {
        driver: filter.driver.as_deref(),
        bugcheck: filter.bugcheck.as_deref(),
        text: None,
    };
    let (found, top, health, problems) = match tokio::try_join!(
        stats::search_dumps(&app.db, &filter),
        stats::top_drivers(&app.db, &driver_filter),
        stats::queue_health(&app.db, now),
        super::problems::matching(
            &app.db,
            filter.tenant.as_deref(),
            &search,
            true,
            TOP_PROBLEMS,
        ),
    ) {
        Ok(r) => r,
        Err(e) => return PageError::internal("database", e, &nav).into_response(),
    };
    let qs = q.query_string();
    let keep = |extra: &str| {
        // The dashboard's filters, plus one more, for the dump list.
        match (qs.is_empty(), extra.is_empty()) {
            (true, _) => format!("/dumps?{extra}"),
            (false, true) => format!("/dumps?{qs}"),
            (false, false) => format!("/dumps?{qs}&{extra}"),
        }
    };
    let drivers = top
        .iter()
        .map(|d| DriverRow {
            module: d.module.clone(),
            href: keep(&format!(
                "driver={}",
                super::user::percent_encode(&d.module)
            )),
            verdict_dumps: d.verdict_dumps,
            dumps: d.dumps,
            total: format::bytes_i64(d.total_bytes),
            max: format::bytes_i64(d.max_bytes),
            last_seen: format::datetime(d.last_seen),
        })
        .collect();
    let verdicts: Vec<(String, u64)> = top
        .iter()
        .filter(|d| d.verdict_dumps > 0)
        .take(10)
        .map(|d| {
            (
                d.module.clone(),
                u64::try_from(d.verdict_dumps).unwrap_or(0),
            )
        })
        .collect();
    let drivers_chart = (!verdicts.is_empty()).then(|| {
        super::svg::count_chart("Dumps whose verdict names the driver", &verdicts, |n| {
            if n == 1 {
                "1 dump".to_string()
            } else {
                format!("{} dumps", format::count(n))
            }
        })
    });
    render(&DashboardPage {
        nav,
        title: "Support dashboard",
        health: Health {
            queued: health.queued,
            running: health.running,
            failed: health.failed,
            done: health.done,
            oldest_queued: health
                .oldest_queued_age_secs
                .map(format::age)
                .unwrap_or_else(|| "–".into()),
            done_last_hour: health.done_last_hour,
            failed_last_hour: health.failed_last_hour,
        },
        drivers,
        drivers_chart,
        rows: found.items.iter().map(Row::of).collect(),
        more_href: keep(""),
        problems,
        heads: super::list::heads(true, None),
        q,
    })
}
