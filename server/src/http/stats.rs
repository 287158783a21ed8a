//! Search and statistics API (docs/api.md): `GET /api/v1/dumps` with filters,
//! `GET /api/v1/drivers`, `GET /api/v1/drivers/{module}`, `GET /api/v1/queue`, and a dump's
//! webhook deliveries. The queries are `crate::db::stats`; this file turns query strings into
//! filters (customers always scoped to their tenant) and rows into JSON.

use super::caller::Caller;
use super::{ApiError, AppState};
use crate::db::{self, stats, webhooks};
use analyzer::report::time::checked_days_from_civil;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/drivers", get(drivers))
        .route("/api/v1/drivers/{module}", get(driver))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/dumps/{id}/webhooks", get(deliveries))
}

/// Unix seconds from `2026-11-25T18:41:14Z`, `2026-11-25` (midnight UTC) or plain seconds;
/// `None` for anything else, an impossible date (`2026-02-30`) included.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, tm)) => (d, Some(tm)),
        None => (t, None),
    };
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) {
        return None;
    }
    let day = checked_days_from_civil(y, m, d)?;
    let secs = match time {
        None => 0,
        Some(tm) => {
            let tm = tm
                .strip_suffix('Z')
                .or_else(|| tm.strip_suffix('z'))
                .or_else(|| tm.strip_suffix("+00:00"))?;
            let tm = tm.split_once('.').map_or(tm, |(whole, _)| whole);
            let mut tp = tm.splitn(3, ':');
            let h: i64 = tp.next()?.parse().ok()?;
            let mi: i64 = tp.next()?.parse().ok()?;
            let s: i64 = tp.next().unwrap_or("0").parse().ok()?;
            if h > 23 || mi > 59 || s > 60 {
                return None;
            }
            h * 3600 + mi * 60 + s
        }
    };
    Some(day * 86_400 + secs)
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => parse_time(t).map(Some).ok_or_else(|| {
            bad(
                "bad_time",
                format!("{name}: expected RFC 3339 (2026-11-25T18:41:14Z), a date or Unix seconds"),
            )
        }),
    }
}

/// The tenant a query may see: customers their own (asking for another answers 403),
/// support and admin the `tenant` parameter or every tenant.
pub(super) fn tenant_scope(
    caller: &Caller,
    asked: &Option<String>,
) -> Result<Option<String>, ApiError> {
    let asked = asked.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if caller.sees_all_tenants {
        return Ok(asked.map(str::to_string));
    }
    match asked {
        Some(t) if t != caller.tenant => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the tenant filter is for support and admin tokens",
        )),
        _ => Ok(Some(caller.tenant.clone())),
    }
}

/// A dump list item (`GET /api/v1/dumps`, a driver's dumps, `GET /api/v1/dumps/{id}`): the
/// dump's status object with what its report's summary adds.
#[derive(Serialize)]
struct ItemJson {
    #[serde(flatten)]
    dump: super::api::DumpJson,
    #[serde(flatten)]
    summary: SummaryJson,
}

/// What an item adds to [`super::api::DumpJson`]. Fields in alphabetical order, as the `json!`
/// map this was first built as wrote them.
#[derive(Serialize)]
struct SummaryJson {
    arch: Option<String>,
    /// Null when the report names no bugcheck.
    bugcheck: Option<BugcheckJson>,
    /// The Windows build number.
    build: Option<i64>,
    /// The filtered driver's figures; only in driver-filtered lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    driver: Option<DriverInDumpJson>,
    /// True once retention deleted the dump file (the report is kept).
    file_deleted: bool,
    file_deleted_at: Option<String>,
    /// Why the file is gone; only when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_note: Option<&'static str>,
    page_url: String,
    /// `analysis`, `inspect` or `other`; null before the report is indexed.
    report_kind: Option<String>,
    /// Null until the analysis reached a verdict.
    verdict: Option<VerdictJson>,
}

#[derive(Serialize)]
struct BugcheckJson {
    code: Option<String>,
    name: Option<String>,
}

#[derive(Serialize)]
struct VerdictJson {
    /// Bytes the verdict attributes.
    bytes: Option<i64>,
    /// Lower-case module names.
    drivers: Vec<String>,
    kind: Option<String>,
    pool: Option<String>,
    sentence: Option<String>,
}

#[derive(Serialize)]
struct DriverInDumpJson {
    bytes: i64,
    is_verdict: bool,
    nonpaged_bytes: i64,
    paged_bytes: i64,
}

/// The JSON of a dump with its summary ([`ItemJson`]). Returned as a `Value`: a struct with
/// flattened members writes their keys member by member, the `Value` map sorts them all, the
/// order clients have always seen.
pub fn item_json(item: &stats::DumpItem) -> Value {
    let item = ItemJson {
        dump: super::api::dump_json(&item.dump),
        summary: summary_json(item),
    };
    // Strings, numbers and options only: serializing them into a Value cannot fail.
    serde_json::to_value(item).unwrap_or_default()
}

fn summary_json(item: &stats::DumpItem) -> SummaryJson {
    let s = item.summary.as_ref();
    let verdict = s.filter(|s| s.verdict_kind.is_some()).map(|s| VerdictJson {
        bytes: s.verdict_bytes,
        drivers: s.verdict_drivers.clone(),
        kind: s.verdict_kind.clone(),
        pool: s.verdict_pool.clone(),
        sentence: s.verdict_sentence.clone(),
    });
    let bugcheck = s
        .filter(|s| s.bugcheck_code.is_some() || s.bugcheck_name.is_some())
        .map(|s| BugcheckJson {
            code: s.bugcheck_code.clone(),
            name: s.bugcheck_name.clone(),
        });
    let deleted = item.file_deleted_at;
    SummaryJson {
        arch: s.and_then(|s| s.arch.clone()),
        bugcheck,
        build: s.and_then(|s| s.build),
        driver: item.driver.map(|d| DriverInDumpJson {
            bytes: d.bytes,
            is_verdict: d.is_verdict,
            nonpaged_bytes: d.nonpaged_bytes,
            paged_bytes: d.paged_bytes,
        }),
        file_deleted: deleted.is_some(),
        file_deleted_at: deleted.map(db::rfc3339),
        file_note: deleted.map(|_| crate::retention::REASON),
        page_url: format!("/dumps/{}", item.dump.id),
        report_kind: s.map(|s| s.report_kind.clone()),
        verdict,
    }
}

#[derive(Deserialize)]
pub struct SearchQuery {
    status: Option<String>,
    driver: Option<String>,
    bugcheck: Option<String>,
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// Longest accepted text filter (module names, bugcheck, free text).
const MAX_FILTER_LEN: usize = 256;

fn text_param(name: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) if t.len() > MAX_FILTER_LEN => Err(bad(
            "bad_filter",
            format!("{name}: at most {MAX_FILTER_LEN} bytes"),
        )),
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// `GET /api/v1/dumps`: list and search, newest first (or `sort=` / `order=`), keyset pages.
pub(super) async fn search(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Page>, ApiError> {
    let status = text_param("status", &q.status)?;
    if let Some(s) = &status {
        if !["queued", "running", "done", "failed"].contains(&s.as_str()) {
            return Err(bad(
                "bad_status",
                "status: one of queued, running, done, failed",
            ));
        }
    }
    let sort = crate::db::dump_sort::Sort::parse(q.sort.as_deref(), q.order.as_deref())
        .map_err(|e| bad("bad_sort", e.to_string()))?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(sort.cursor(c).ok_or_else(|| {
            bad(
                "bad_cursor",
                "cursor is not one this API returned for this sort",
            )
        })?),
    };
    let f = stats::DumpFilter {
        sort,
        tenant: tenant_scope(&caller, &q.tenant)?,
        status,
        driver: text_param("driver", &q.driver)?,
        bugcheck: text_param("bugcheck", &q.bugcheck)?,
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
        q: text_param("q", &q.q)?,
        limit: q.limit.unwrap_or(50).clamp(1, stats::MAX_LIMIT),
        cursor,
        driver_contains: false,
    };
    let page = stats::search_dumps(&app.db, &f).await?;
    Ok(Json(Page {
        items: page.items.iter().map(item_json).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize)]
struct DriversQuery {
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

// The bodies of this file. Fields are in alphabetical order: the order these answers have
// always had (built as `json!` maps, which serde_json keeps sorted), for clients that compare
// them byte for byte.

/// `GET /api/v1/drivers`, a dump's webhooks.
#[derive(Serialize)]
struct Items<T> {
    items: Vec<T>,
}

/// `GET /api/v1/dumps`.
#[derive(Serialize)]
pub(super) struct Page {
    items: Vec<Value>,
    next_cursor: Option<String>,
}

/// One driver module across dumps.
#[derive(Serialize)]
struct DriverJson {
    dumps: i64,
    first_seen: String,
    last_seen: String,
    max_bytes: i64,
    module: String,
    total_bytes: i64,
    url: String,
    verdict_dumps: i64,
}

fn driver_json(d: &stats::DriverStats) -> DriverJson {
    DriverJson {
        dumps: d.dumps,
        first_seen: db::rfc3339(d.first_seen),
        last_seen: db::rfc3339(d.last_seen),
        max_bytes: d.max_bytes,
        module: d.module.clone(),
        total_bytes: d.total_bytes,
        url: format!("/api/v1/drivers/{}", d.module),
        verdict_dumps: d.verdict_dumps,
    }
}

/// `GET /api/v1/drivers/{module}`.
#[derive(Serialize)]
struct DriverPageJson {
    items: Vec<Value>,
    module: String,
    next_cursor: Option<String>,
    stats: DriverJson,
}

/// `GET /api/v1/drivers`: per driver module across dumps, most often the verdict first.
async fn drivers(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<DriversQuery>,
) -> Result<Json<Items<DriverJson>>, ApiError> {
    let f = stats::DriverFilter {
        tenant: tenant_scope(&caller, &q.tenant)?,
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
        module: None,
        limit: q.limit.unwrap_or(50).clamp(1, stats::MAX_LIMIT),
    };
    let rows = stats::top_drivers(&app.db, &f).await?;
    Ok(Json(Items {
        items: rows.iter().map(driver_json).collect(),
    }))
}

/// `GET /api/v1/drivers/{module}`: the driver's figures and its dumps (newest first, pages).
/// 404 when no dump the caller may see names it.
async fn driver(
    State(app): State<AppState>,
    caller: Caller,
    Path(module): Path<String>,
    Query(q): Query<DriversQuery>,
) -> Result<Json<DriverPageJson>, ApiError> {
    if module.len() > MAX_FILTER_LEN {
        return Err(bad("bad_filter", "module name too long"));
    }
    let tenant = tenant_scope(&caller, &q.tenant)?;
    let (since, until) = (
        time_param("since", &q.since)?,
        time_param("until", &q.until)?,
    );
    let f = stats::DriverFilter {
        tenant: tenant.clone(),
        since,
        until,
        module: Some(module.clone()),
        limit: 1,
    };
    let Some(st) = stats::top_drivers(&app.db, &f).await?.into_iter().next() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no dump names this driver",
        ));
    };
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            stats::parse_cursor(c)
                .ok_or_else(|| bad("bad_cursor", "cursor is not one this API returned"))?,
        ),
    };
    let page = stats::search_dumps(
        &app.db,
        &stats::DumpFilter {
            tenant,
            driver: Some(module),
            since,
            until,
            limit: q.limit.unwrap_or(50).clamp(1, stats::MAX_LIMIT),
            cursor,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(DriverPageJson {
        items: page.items.iter().map(item_json).collect(),
        stats: driver_json(&st),
        module: st.module,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/queue`.
#[derive(Serialize)]
struct QueueJson {
    done: i64,
    done_last_hour: i64,
    failed: i64,
    failed_last_hour: i64,
    files_deleted_by_retention: i64,
    oldest_queued_age_secs: Option<i64>,
    queued: i64,
    running: i64,
    webhooks_failed: i64,
    webhooks_pending: i64,
}

/// `GET /api/v1/queue`: queue health (support and admin).
async fn queue(State(app): State<AppState>, caller: Caller) -> Result<Json<QueueJson>, ApiError> {
    if !caller.sees_all_tenants {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "queue health is for support and admin tokens",
        ));
    }
    let h = stats::queue_health(&app.db, db::now_unix()).await?;
    Ok(Json(QueueJson {
        done: h.done,
        done_last_hour: h.done_last_hour,
        failed: h.failed,
        failed_last_hour: h.failed_last_hour,
        files_deleted_by_retention: h.files_deleted_by_retention,
        oldest_queued_age_secs: h.oldest_queued_age_secs,
        queued: h.queued,
        running: h.running,
        webhooks_failed: h.webhooks_failed,
        webhooks_pending: h.webhooks_pending,
    }))
}

/// A webhook delivery of a dump.
#[derive(Serialize)]
struct DeliveryJson {
    attempts: i64,
    configured_by: &'static str,
    created_at: String,
    delivered_at: Option<String>,
    event: Option<String>,
    id: String,
    last_error: Option<String>,
    last_status: Option<i64>,
    state: String,
    url: Option<String>,
}

/// `GET /api/v1/dumps/{id}/webhooks`: the dump's webhook deliveries and their state.
async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Items<DeliveryJson>>, ApiError> {
    crate::db::dumps::get(&app.db, &id, caller.tenant_filter())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let rows = webhooks::for_dump(&app.db, &id).await?;
    let config = &app.webhooks.config;
    // The operator's webhooks (server-wide, per tenant) may carry secrets in their URLs: a
    // customer sees that one was called and how it went, not where.
    let operators: Vec<&str> = config
        .default_url
        .iter()
        .chain(config.tenant_urls.values())
        .map(String::as_str)
        .collect();
    let items = rows
        .into_iter()
        .map(|r| {
            let operator = operators.contains(&r.url.as_str());
            let (url, last_error) = if operator && !caller.sees_all_tenants {
                let error = r
                    .last_error
                    .as_deref()
                    .map(|e| e.replace(r.url.as_str(), "the operator's webhook"));
                (None, error)
            } else {
                (Some(r.url), r.last_error)
            };
            DeliveryJson {
                attempts: r.attempts,
                configured_by: if operator { "operator" } else { "upload" },
                created_at: db::rfc3339(r.created_at),
                delivered_at: r.delivered_at.map(db::rfc3339),
                event: r.event,
                id: r.id,
                last_error,
                last_status: r.last_status,
                state: r.state,
                url,
            }
        })
        .collect();
    Ok(Json(Items { items }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn dump_row() -> crate::db::dumps::DumpRow {
        crate::db::dumps::DumpRow {
            id: "d1".into(),
            tenant: "a".into(),
            sha256: "ab".into(),
            analysis: "k".into(),
            size: 100,
            upload_size: 40,
            compression: "gzip".into(),
            original_name: Some("MEMORY.DMP".into()),
            created_at: 0,
            state: "done".into(),
            stage: "report".into(),
            error: None,
            attempts: 1,
            system: None,
        }
    }

    #[test]
    fn an_item_without_summary_is_the_status_object_with_nulls() {
        let item = stats::DumpItem {
            dump: dump_row(),
            summary: None,
            file_deleted_at: None,
            driver: None,
        };
        let text = serde_json::to_string(&item_json(&item)).unwrap();
        assert_eq!(
            text,
            r#"{"arch":null,"attempts":1,"bugcheck":null,"build":null,"compression":"gzip","#
                .to_owned()
                + r#""created_at":"1970-01-01T00:00:00Z","file_deleted":false,"file_deleted_at":null,"#
                + r#""id":"d1","original_name":"MEMORY.DMP","page_url":"/dumps/d1","#
                + r#""report_kind":null,"report_url":"/api/v1/dumps/d1/report","sha256":"ab","#
                + r#""size":100,"stage":"report","status":"done","status_url":"/api/v1/dumps/d1","#
                + r#""system":null,"tenant":"a","upload_size":40,"verdict":null}"#
        );
    }

    #[test]
    fn an_item_with_everything_writes_every_optional_key_sorted() {
        let mut dump = dump_row();
        dump.error = Some("bad".into());
        let item = stats::DumpItem {
            dump,
            summary: Some(stats::Summary {
                report_kind: "analysis".into(),
                verdict_kind: Some("leak".into()),
                verdict_sentence: Some("s".into()),
                verdict_pool: Some("paged".into()),
                verdict_bytes: Some(7),
                verdict_drivers: vec!["x.sys".into()],
                bugcheck_code: Some("0x19".into()),
                bugcheck_name: None,
                build: Some(19041),
                arch: Some("x64".into()),
            }),
            file_deleted_at: Some(1),
            driver: Some(stats::DriverInDump {
                bytes: 5,
                paged_bytes: 3,
                nonpaged_bytes: 2,
                is_verdict: true,
            }),
        };
        let v = item_json(&item);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["driver", "error", "file_note"] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(v["file_note"], crate::retention::REASON);
        assert_eq!(v["file_deleted_at"], "1970-01-01T00:00:01Z");
        assert_eq!(
            serde_json::to_string(&v["verdict"]).unwrap(),
            r#"{"bytes":7,"drivers":["x.sys"],"kind":"leak","pool":"paged","sentence":"s"}"#
        );
        assert_eq!(
            serde_json::to_string(&v["bugcheck"]).unwrap(),
            r#"{"code":"0x19","name":null}"#
        );
        assert_eq!(
            serde_json::to_string(&v["driver"]).unwrap(),
            r#"{"bytes":5,"is_verdict":true,"nonpaged_bytes":2,"paged_bytes":3}"#
        );
    }

    #[test]
    fn times_round_trip_with_rfc3339() {
        for t in [0i64, 951_782_400, 1_795_632_074] {
            assert_eq!(parse_time(&db::rfc3339(t)), Some(t));
        }
        assert_eq!(parse_time("2026-11-25"), Some(1_795_564_800));
        assert_eq!(parse_time("1795632074"), Some(1_795_632_074));
        assert_eq!(parse_time("2026-11-25T18:41:14.5Z"), Some(1_795_632_074));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("2026-02-30"), None);
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_time("2026-11-25T18:41:14+02:00"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    /// Keys in the order a `json!` map writes them (sorted): the bytes these answers had.
    pub(crate) fn assert_map_order<T: Serialize>(v: &T) {
        let typed = serde_json::to_string(v).unwrap();
        let map = serde_json::to_string(&serde_json::to_value(v).unwrap()).unwrap();
        assert_eq!(typed, map);
    }

    #[test]
    fn bodies_keep_the_key_order_of_their_json_maps() {
        let d = driver_json(&stats::DriverStats {
            module: "leaky.sys".into(),
            verdict_dumps: 2,
            dumps: 3,
            total_bytes: 401,
            max_bytes: 300,
            first_seen: 10,
            last_seen: 30,
        });
        assert_map_order(&d);
        let page = DriverPageJson {
            items: vec![serde_json::json!({ "b": 1, "a": 2 })],
            module: "leaky.sys".into(),
            next_cursor: None,
            stats: d,
        };
        assert_map_order(&page);
        assert_map_order(&Page {
            items: vec![],
            next_cursor: Some("10.abc".into()),
        });
        assert_map_order(&QueueJson {
            done: 1,
            done_last_hour: 2,
            failed: 3,
            failed_last_hour: 4,
            files_deleted_by_retention: 5,
            oldest_queued_age_secs: None,
            queued: 6,
            running: 7,
            webhooks_failed: 8,
            webhooks_pending: 9,
        });
        assert_map_order(&Items {
            items: vec![DeliveryJson {
                attempts: 1,
                configured_by: "upload",
                created_at: db::rfc3339(0),
                delivered_at: None,
                event: Some("dump.done".into()),
                id: "d1".into(),
                last_error: None,
                last_status: Some(200),
                state: "delivered".into(),
                url: None,
            }],
        });
    }
}
