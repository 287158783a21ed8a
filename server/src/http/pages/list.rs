//! `GET /dumps`: the dump list, newest first or sorted by a column (`sort=`, `order=`: the
//! table's header links), filtered by GET query (status, driver, bugcheck, date range, free
//! text; support also by tenant), paged by keyset cursor. Customers only ever see their own
//! tenant's dumps. A search leads with the problems it matches.

use super::super::AppState;
use super::filters;
use super::user::percent_encode;
use super::{format, render, Nav, PageError, PageUser};
use crate::db::dump_sort::{Column, Sort};
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
    /// A column of [`Column::ALL`] (`uploaded` when empty).
    #[serde(default)]
    pub sort: String,
    /// `asc` or `desc` (the column's natural direction when empty).
    #[serde(default)]
    pub order: String,
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
        let sort = self.sort();
        DumpFilter {
            sort,
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
            cursor: sort.cursor(&self.cursor),
        }
    }

    /// The order asked for; an unknown one is the default (and named by [`Self::problems`]).
    pub fn sort(&self) -> Sort {
        Sort::parse(Some(&self.sort), Some(&self.order)).unwrap_or_default()
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
        if let Err(e) = Sort::parse(Some(&self.sort), Some(&self.order)) {
            out.push(format!("{e} The list is newest first."));
        }
        out
    }

    /// The query string of these filters and order (without the cursor), for links that
    /// keep them.
    pub fn query_string(&self) -> String {
        let sorted = [("sort", &self.sort), ("order", &self.order)];
        let order = sorted
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())));
        let mut parts: Vec<String> = self.filters_string().into_iter().collect();
        parts.extend(order);
        parts.join("&")
    }

    /// The query string of the filters alone (no order, no cursor); None when there are none.
    fn filters_string(&self) -> Option<String> {
        let pairs = [
            ("status", &self.status),
            ("driver", &self.driver),
            ("bugcheck", &self.bugcheck),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
            ("tenant", &self.tenant),
        ];
        let s = pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
            .collect::<Vec<_>>()
            .join("&");
        (!s.is_empty()).then_some(s)
    }
}

/// A header of the dump table: sortable ones link to the list sorted by them.
pub struct Head {
    pub label: &'static str,
    pub class: &'static str,
    pub href: Option<String>,
    /// `ascending` / `descending` on the column the list is sorted by.
    pub aria_sort: Option<&'static str>,
    /// `▲` / `▼` beside the sorted column's label (decoration: aria-sort says it).
    pub arrow: &'static str,
}

/// The table's headers. `q`: the list's query, whose filters the links keep (None: the
/// dashboard, whose headers link to the full list sorted).
pub fn heads(support: bool, q: Option<&ListQuery>) -> Vec<Head> {
    let sort = q.map(ListQuery::sort).unwrap_or_default();
    let filters = q.and_then(ListQuery::filters_string);
    let link = |c: Column| {
        let descending = if c == sort.column {
            !sort.descending
        } else {
            c.natural_descending()
        };
        let order = if descending { "desc" } else { "asc" };
        let keep = filters
            .as_ref()
            .map(|f| format!("{f}&"))
            .unwrap_or_default();
        Some(format!("/dumps?{keep}sort={}&order={order}", c.key()))
    };
    let head = |label, class, c: Option<Column>| {
        let current = c.filter(|c| *c == sort.column && q.is_some());
        Head {
            label,
            class,
            href: c.and_then(link),
            aria_sort: current.map(|_| {
                if sort.descending {
                    "descending"
                } else {
                    "ascending"
                }
            }),
            arrow: match current {
                Some(_) if sort.descending => " ▼",
                Some(_) => " ▲",
                None => "",
            },
        }
    };
    let mut v = vec![head("Dump", "", Some(Column::Name))];
    if support {
        v.push(head("Customer", "", Some(Column::Customer)));
    }
    v.push(head("Status", "", Some(Column::Status)));
    v.push(head("Verdict", "", None));
    v.push(head("Bugcheck", "", Some(Column::Bugcheck)));
    v.push(head("Uploaded", "", Some(Column::Uploaded)));
    v.push(head("Size", "num", Some(Column::Size)));
    v
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
    /// The problems a search matches (first page of a search only): the list leads with them.
    lead: Vec<super::problems::Item>,
    heads: Vec<Head>,
}

/// Problems shown above a search's dumps.
const LEAD_PROBLEMS: usize = 10;

pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let nav = Nav::new(&user, "dumps");
    let filter = q.filter(&user, PAGE);
    let search = super::problems::Search {
        driver: filter.driver.as_deref(),
        bugcheck: filter.bugcheck.as_deref(),
        text: filter.q.as_deref(),
    };
    let lead = async {
        if search.is_empty() || filter.cursor.is_some() {
            return Ok(Vec::new());
        }
        let tenant = filter.tenant.as_deref();
        super::problems::matching(&app.db, tenant, &search, false, LEAD_PROBLEMS).await
    };
    let (found, lead) = match tokio::try_join!(stats::search_dumps(&app.db, &filter), lead) {
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
    let heads = heads(user.0.role.sees_all_tenants(), Some(&q));
    render(&ListPage {
        nav,
        title: "Dumps",
        rows: found.items.iter().map(Row::of).collect(),
        problems: q.problems(),
        q,
        statuses,
        next_href,
        first_href,
        lead,
        heads,
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
            ..Default::default()
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
        let cursor = f.cursor.unwrap();
        assert_eq!(
            (cursor.value, cursor.id.as_str()),
            (crate::db::dump_sort::Value::Int(12), "abc")
        );
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
