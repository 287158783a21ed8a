//! `GET /dumps`: the dump list, newest first, filtered by GET query (status, driver, bugcheck,
//! date range, free text; support also by tenant), paged by keyset cursor. Customers only ever
//! see their own tenant's dumps.

use super::super::AppState;
use super::user::percent_encode;
use super::{format, render, Nav, PageError, PageUser};
use crate::db::stats::{self, DumpFilter, DumpItem};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The list's filters, as the form sends them (empty fields are "no filter").
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub bugcheck: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub q: String,
    /// Support and admin only; ignored for customers.
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub cursor: String,
}

pub const STATUSES: [&str; 4] = ["queued", "running", "done", "failed"];

/// Page size of the list.
const PAGE: i64 = 50;

impl ListQuery {
    /// The search filter for this caller: a customer's tenant always wins over the query.
    pub fn filter(&self, user: &PageUser, limit: i64) -> DumpFilter {
        let opt = |s: &str| {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        DumpFilter {
            tenant: match user.tenant_filter() {
                Some(t) => Some(t.to_string()),
                None => opt(&self.tenant),
            },
            status: opt(&self.status).filter(|s| STATUSES.contains(&s.as_str())),
            driver: opt(&self.driver),
            driver_contains: true,
            bugcheck: opt(&self.bugcheck),
            since: format::parse_date(&self.from),
            // Inclusive end date: before the next midnight.
            until: format::parse_date(&self.to).map(|t| t + 86_400),
            q: opt(&self.q),
            limit,
            cursor: stats::parse_cursor(&self.cursor),
        }
    }

    /// The filters that cannot be applied, each as a sentence for the page: the list is then
    /// shown without them, and the person sees why rather than a list that silently ignores
    /// what they typed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let status = self.status.trim();
        if !status.is_empty() && !STATUSES.contains(&status) {
            out.push(format!(
                "Unknown status \u{201c}{status}\u{201d}: choose one of {}.",
                STATUSES.join(", ")
            ));
        }
        for (label, value) in [("From", &self.from), ("To", &self.to)] {
            let v = value.trim();
            if !v.is_empty() && format::parse_date(v).is_none() {
                out.push(format!(
                    "{label} date \u{201c}{v}\u{201d} is not a date: use YYYY-MM-DD."
                ));
            }
        }
        if let (Some(from), Some(to)) =
            (format::parse_date(&self.from), format::parse_date(&self.to))
        {
            if from > to {
                out.push("The From date is after the To date: no dump can match.".into());
            }
        }
        out
    }

    /// The query string of these filters (without the cursor), for links that keep them.
    pub fn query_string(&self) -> String {
        let pairs = [
            ("status", &self.status),
            ("driver", &self.driver),
            ("bugcheck", &self.bugcheck),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
            ("tenant", &self.tenant),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// One dump in a list.
pub struct Row {
    pub href: String,
    pub name: String,
    pub tenant: String,
    pub status: String,
    pub stage: String,
    pub summary: String,
    pub bugcheck: String,
    pub date: String,
    pub size: String,
    /// Retention removed the dump file (the report stays).
    pub file_deleted: bool,
}

impl Row {
    pub fn of(item: &DumpItem) -> Row {
        let d = &item.dump;
        let summary = match (d.state.as_str(), &item.summary) {
            ("failed", _) => format!(
                "Analysis failed: {}",
                d.error.as_deref().unwrap_or("unknown reason")
            ),
            ("queued" | "running", _) => String::new(),
            (_, Some(s)) => match (&s.verdict_sentence, s.report_kind.as_str()) {
                (Some(v), _) => v.clone(),
                (None, "inspect") => "No pool analysis (module list and bugcheck only).".into(),
                (None, _) => "No verdict.".into(),
            },
            (_, None) => String::new(),
        };
        let bugcheck = item
            .summary
            .as_ref()
            .map(|s| match (&s.bugcheck_code, &s.bugcheck_name) {
                (Some(c), Some(n)) => format!("{n} ({c})"),
                (Some(c), None) => c.clone(),
                (None, Some(n)) => n.clone(),
                (None, None) => String::new(),
            })
            .unwrap_or_default();
        Row {
            href: format!("/dumps/{}", percent_encode(&d.id)),
            name: d.original_name.clone().unwrap_or_else(|| d.id.clone()),
            tenant: d.tenant.clone(),
            status: d.state.clone(),
            stage: d.stage.clone(),
            summary,
            bugcheck,
            date: format::datetime(d.created_at),
            size: format::bytes_i64(d.size),
            file_deleted: item.file_deleted_at.is_some(),
        }
    }
}

pub struct StatusOption {
    pub value: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "dumps.html")]
struct ListPage {
    nav: Nav,
    title: &'static str,
    q: ListQuery,
    statuses: Vec<StatusOption>,
    rows: Vec<Row>,
    /// Filters that could not be applied, as sentences.
    problems: Vec<String>,
    next_href: Option<String>,
    first_href: Option<String>,
}

pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let nav = Nav::new(&user, "dumps");
    let filter = q.filter(&user, PAGE);
    let found = match stats::search_dumps(&app.db, &filter).await {
        Ok(p) => p,
        Err(e) => return PageError::internal("database", e, &nav).into_response(),
    };
    let qs = q.query_string();
    let sep = if qs.is_empty() { "" } else { "&" };
    let next_href = found
        .next_cursor
        .as_ref()
        .map(|c| format!("/dumps?{qs}{sep}cursor={}", percent_encode(c)));
    let first_href = (!q.cursor.is_empty()).then(|| format!("/dumps?{qs}"));
    let statuses = STATUSES
        .iter()
        .map(|s| StatusOption {
            value: s,
            selected: q.status == *s,
        })
        .collect();
    render(&ListPage {
        nav,
        title: "Dumps",
        rows: found.items.iter().map(Row::of).collect(),
        problems: q.problems(),
        q,
        statuses,
        next_href,
        first_href,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Principal, Role};

    fn user(role: Role) -> PageUser {
        PageUser(Principal {
            token_id: "t".into(),
            tenant: "acme".into(),
            role,
            csrf: None,
        })
    }

    #[test]
    fn filters_from_the_form() {
        let q = ListQuery {
            status: "failed".into(),
            driver: " leaky.sys ".into(),
            bugcheck: "0x19".into(),
            from: "2026-11-25".into(),
            to: "2026-11-25".into(),
            q: String::new(),
            tenant: "globex".into(),
            cursor: "12.abc".into(),
        };
        let f = q.filter(&user(Role::Support), 50);
        assert_eq!(f.tenant.as_deref(), Some("globex"));
        assert_eq!(f.status.as_deref(), Some("failed"));
        assert_eq!(f.driver.as_deref(), Some("leaky.sys"));
        // Inclusive dates: the whole of the `to` day (`date -u -d 2026-11-25 +%s` = 1795564800).
        assert_eq!(
            (f.since, f.until),
            (Some(1_795_564_800), Some(1_795_651_200))
        );
        assert_eq!(f.q, None);
        assert_eq!(f.cursor, Some((12, "abc".to_string())));
        // A customer's own tenant always wins over ?tenant=.
        assert_eq!(
            q.filter(&user(Role::Customer), 50).tenant.as_deref(),
            Some("acme")
        );
        // Unknown status and bad dates are no filter.
        let junk = ListQuery {
            status: "everything".into(),
            from: "yesterday".into(),
            ..Default::default()
        };
        let f = junk.filter(&user(Role::Admin), 50);
        assert_eq!((f.status, f.since, f.tenant), (None, None, None));
    }

    #[test]
    fn filters_that_cannot_apply_are_named() {
        let junk = ListQuery {
            status: "bogus".into(),
            from: "notadate".into(),
            to: "2026-02-30".into(),
            ..Default::default()
        };
        let p = junk.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("bogus") && p[0].contains("queued, running, done, failed"));
        assert!(p[1].starts_with("From date") && p[1].contains("notadate"));
        assert!(p[2].starts_with("To date"));
        let backwards = ListQuery {
            from: "2026-03-02".into(),
            to: "2026-03-01".into(),
            ..Default::default()
        };
        assert_eq!(backwards.problems().len(), 1);
        let fine = ListQuery {
            status: "done".into(),
            from: "2026-03-01".into(),
            ..Default::default()
        };
        assert!(fine.problems().is_empty());
    }

    #[test]
    fn links_keep_the_filters_encoded() {
        let q = ListQuery {
            driver: "a&b.sys".into(),
            q: "x y".into(),
            ..Default::default()
        };
        assert_eq!(q.query_string(), "driver=a%26b.sys&q=x%20y");
        assert_eq!(ListQuery::default().query_string(), "");
    }
}
