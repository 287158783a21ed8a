//! `GET /problems` and `GET /problems/{id}`: dumps grouped by signature, with counts, first and
//! last seen, kernel builds, driver versions, a chart of occurrences per day and, for support
//! and admin, the workflow form, comments and audit trail (`POST /problems/{id}`,
//! `POST /problems/{id}/comments`). The same rules as the API (`http::problems`).

use super::super::problems::{
    actor, apply, comment_text, listing, save, scope, ticket_summary, Change,
    ListQuery as ApiListQuery,
};
use super::super::AppState;
use super::filters;
use super::{format, percent_encode, render, svg, Nav, PageError, PageUser};
use crate::auth::csrf;
use crate::db::problem_facets::{self, Bugcheck, Dimension, Filter};
use crate::db::problems::{self, Entry, ProblemDetail, ProblemRow, STATUSES};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One problem in a list.
pub struct Item {
    pub href: String,
    pub title: String,
    pub kind: String,
    pub status: String,
    pub dumps: i64,
    pub customers: i64,
    pub first_seen: String,
    pub last_seen: String,
}

impl Item {
    pub fn of(r: &ProblemRow) -> Item {
        Item {
            href: format!("/problems/{}", r.id),
            title: r.title.clone(),
            kind: r.kind.clone(),
            status: r.workflow.status.clone(),
            dumps: r.dumps,
            customers: r.customers,
            first_seen: format::datetime(r.first_seen),
            last_seen: format::datetime(r.last_seen),
        }
    }
}

/// A facet value with its count, as a link that sets (or, when active, clears) its filter.
pub struct Facet {
    pub label: String,
    pub count: usize,
    pub href: String,
    pub active: bool,
}

/// One facet: its heading and values.
pub struct FacetGroup {
    pub name: &'static str,
    pub values: Vec<Facet>,
}

#[derive(Template)]
#[template(path = "problems.html")]
struct ListPage {
    nav: Nav,
    title: &'static str,
    items: Vec<Item>,
    facets: Vec<FacetGroup>,
    /// Filters that could not be applied, as sentences.
    problems: Vec<String>,
    /// The query string of the filters in force (for the CSV link), empty when none.
    query: String,
    filtered: bool,
}

/// The page's filters, as the links and the form send them (empty: no filter).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    bugcheck: String,
    #[serde(default)]
    build: String,
}

impl ListQuery {
    fn pairs(&self) -> [(Dimension, &str); 5] {
        [
            (Dimension::Status, self.status.trim()),
            (Dimension::Driver, self.driver.trim()),
            (Dimension::Tag, self.tag.trim()),
            (Dimension::Bugcheck, self.bugcheck.trim()),
            (Dimension::Build, self.build.trim()),
        ]
    }

    fn api(&self) -> ApiListQuery {
        let opt = |s: &str| Some(s.to_string());
        ApiListQuery {
            status: opt(&self.status),
            driver: opt(&self.driver),
            tag: opt(&self.tag),
            bugcheck: opt(&self.bugcheck),
            build: opt(&self.build),
            tenant: None,
        }
    }

    /// The query string of the filters as given.
    fn current(&self) -> String {
        encode(self.pairs())
    }

    /// The query string with `d` set to `value` (None: removed), the others kept.
    fn with(&self, d: Dimension, value: Option<&str>) -> String {
        encode(self.pairs().map(|(k, v)| {
            if k == d {
                (k, value.unwrap_or(""))
            } else {
                (k, v)
            }
        }))
    }
}

fn encode(pairs: [(Dimension, &str); 5]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", k.key(), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether facet value `c` of `d` is the filter in force (as the filter reads it: drivers in
/// lower case, bug check codes normalized, names in any case, tags exact).
fn is_active(filter: &Filter, d: Dimension, c: &problem_facets::Count) -> bool {
    match d {
        Dimension::Status => filter.status.as_deref() == Some(c.value.as_str()),
        Dimension::Driver => filter.driver.as_deref() == Some(c.value.as_str()),
        Dimension::Tag => filter.tag.as_deref() == Some(c.value.as_str()),
        Dimension::Bugcheck => match &filter.bugcheck {
            Some(Bugcheck::Code(code)) => *code == c.value,
            Some(Bugcheck::Name(name)) => c
                .label
                .split(" (")
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name)),
            None => false,
        },
        Dimension::Build => filter.build.map(|b| b.to_string()).as_deref() == Some(&c.value),
    }
}

fn href(query: String) -> String {
    if query.is_empty() {
        "/problems".into()
    } else {
        format!("/problems?{query}")
    }
}

/// The facet links: each value sets its filter; the active one clears it.
fn groups(
    q: &ListQuery,
    filter: &Filter,
    facets: Vec<(Dimension, Vec<problem_facets::Count>)>,
) -> Vec<FacetGroup> {
    facets
        .into_iter()
        .map(|(d, counts)| FacetGroup {
            name: match d {
                Dimension::Status => "Status",
                Dimension::Driver => "Driver",
                Dimension::Tag => "Pool tag",
                Dimension::Bugcheck => "Bug check",
                Dimension::Build => "Windows build",
            },
            values: counts
                .into_iter()
                .map(|c| {
                    let active = is_active(filter, d, &c);
                    let set = (!active).then_some(c.value.as_str());
                    Facet {
                        href: href(q.with(d, set)),
                        label: c.label,
                        count: c.count,
                        active,
                    }
                })
                .collect(),
        })
        .collect()
}

pub async fn list(
    State(app): State<AppState>,
    user: PageUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let nav = Nav::new(&user, "problems");
    let tenant = scope(&user.0, None);
    let (filter, errors) = q.api().parse();
    let listing = match listing(&app.db, tenant.as_deref(), &filter).await {
        Ok(l) => l,
        Err(e) => return PageError::internal("database", e, &nav).into_response(),
    };
    render(&ListPage {
        nav,
        title: "Problems",
        items: listing.rows.iter().map(Item::of).collect(),
        facets: groups(&q, &filter, listing.facets),
        problems: errors.into_iter().map(|e| e.message).collect(),
        filtered: filter != Default::default(),
        query: q.current(),
    })
}

/// What a dump search asks for, applied to problems so the search leads with them.
#[derive(Debug, Default)]
pub struct Search<'a> {
    /// Part of a verdict driver's name, any case (as the dump list's driver filter).
    pub driver: Option<&'a str>,
    pub bugcheck: Option<&'a str>,
    /// Part of the problem's title, any case.
    pub text: Option<&'a str>,
}

impl Search<'_> {
    pub fn is_empty(&self) -> bool {
        self.driver.is_none() && self.bugcheck.is_none() && self.text.is_none()
    }

    fn matches(&self, row: &ProblemRow, a: &problem_facets::Attributes) -> bool {
        let driver = self.driver.map(str::to_lowercase);
        let text = self.text.map(str::to_lowercase);
        driver
            .as_ref()
            .is_none_or(|d| a.drivers.iter().any(|m| m.contains(d.as_str())))
            && self.bugcheck.is_none_or(|b| {
                let one = problem_facets::Filter {
                    bugcheck: Some(problem_facets::Bugcheck::parse(b)),
                    ..Default::default()
                };
                one.matches(row, a)
            })
            && text
                .as_ref()
                .is_none_or(|t| row.title.to_lowercase().contains(t.as_str()))
    }
}

/// The problems (within the viewer's rights) a dump search matches, most recently seen first,
/// at most `limit`; `open_only` leaves out fixed and won't-fix ones.
pub async fn matching(
    db: &crate::db::Db,
    tenant: Option<&str>,
    search: &Search<'_>,
    open_only: bool,
    limit: usize,
) -> Result<Vec<Item>, sqlx::Error> {
    let (rows, attrs) = tokio::try_join!(
        problems::list(db, tenant, None),
        problem_facets::attributes(db, tenant)
    )?;
    let none = problem_facets::Attributes::default();
    Ok(rows
        .iter()
        .filter(|r| !open_only || matches!(r.workflow.status.as_str(), "new" | "investigating"))
        .filter(|r| search.matches(r, attrs.get(&r.id).unwrap_or(&none)))
        .take(limit)
        .map(Item::of)
        .collect())
}

pub struct DumpLine {
    pub href: String,
    pub name: String,
    pub tenant: String,
    pub date: String,
    pub build: String,
    pub verdict: String,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    nav: Nav,
    title: String,
    id: String,
    p: Item,
    fixed_in: String,
    assignee: String,
    ticket_url: String,
    signature: String,
    builds: String,
    versions: Vec<String>,
    chart: Option<svg::Svg>,
    dumps: Vec<DumpLine>,
    summary: String,
    statuses: Vec<(&'static str, bool)>,
    comments: Vec<EntryLine>,
    events: Vec<EntryLine>,
}

/// A comment or audit event with its time as text.
pub struct EntryLine {
    pub actor: String,
    pub action: String,
    pub text: String,
    pub at: String,
}

fn lines(v: Vec<Entry>) -> Vec<EntryLine> {
    v.into_iter()
        .map(|e| EntryLine {
            actor: e.actor,
            action: e.action,
            text: e.text,
            at: format::datetime(e.at),
        })
        .collect()
}

/// Dumps per day (UTC), oldest first, the last 30 days that had any.
fn per_day(d: &ProblemDetail) -> Vec<(String, u64)> {
    let mut days: BTreeMap<i64, u64> = BTreeMap::new();
    for x in &d.dumps {
        *days.entry(x.created_at.div_euclid(86_400)).or_default() += 1;
    }
    let skip = days.len().saturating_sub(30);
    days.into_iter()
        .skip(skip)
        .map(|(day, n)| {
            let t = format::datetime(day * 86_400);
            (t.get(..10).unwrap_or(&t).to_string(), n)
        })
        .collect()
}

pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "problems");
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "No such problem (or none of its dumps is one you may see).",
            &nav,
        )
    };
    let tenant = scope(&user.0, None);
    let d = problems::detail(&app.db, &id, tenant.as_deref())
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?
        .ok_or_else(not_found)?;
    let support = user.0.role.sees_all_tenants();
    let (comments, events) = if support {
        let c = problems::comments(&app.db, &id).await;
        let e = problems::events(&app.db, &id).await;
        let c = c.map_err(|e| PageError::internal("database", e, &nav))?;
        let e = e.map_err(|e| PageError::internal("database", e, &nav))?;
        (lines(c), lines(e))
    } else {
        (Vec::new(), Vec::new())
    };
    let days = per_day(&d);
    let chart = (!days.is_empty()).then(|| {
        svg::count_chart("Dumps per day", &days, |n| {
            format!("{} dump(s)", format::count(n))
        })
    });
    let w = &d.row.workflow;
    let builds: Vec<String> = d.builds.iter().map(i64::to_string).collect();
    Ok(render(&ProblemPage {
        nav,
        title: d.row.title.clone(),
        id: d.row.id.clone(),
        p: Item::of(&d.row),
        fixed_in: w.fixed_in.clone().unwrap_or_default(),
        assignee: w.assignee.clone().unwrap_or_default(),
        ticket_url: w.ticket_url.clone().unwrap_or_default(),
        signature: d.signature.clone(),
        builds: builds.join(", "),
        versions: d.versions.clone(),
        chart,
        dumps: d
            .dumps
            .iter()
            .map(|x| DumpLine {
                href: format!("/dumps/{}", x.id),
                name: x.name.clone().unwrap_or_else(|| x.id.clone()),
                tenant: x.tenant.clone(),
                date: format::datetime(x.created_at),
                build: x.build.map(|b| b.to_string()).unwrap_or_default(),
                verdict: x.sentence.clone().unwrap_or_default(),
            })
            .collect(),
        summary: ticket_summary(&d),
        statuses: STATUSES.iter().map(|s| (*s, *s == w.status)).collect(),
        comments,
        events,
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct WorkflowForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    fixed_in: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    ticket_url: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// Support and admin only, with the session's CSRF token; then the problem must exist.
async fn writable(
    app: &AppState,
    user: &PageUser,
    id: &str,
    form: &WorkflowForm,
    nav: &Nav,
) -> Result<ProblemDetail, PageError> {
    if !user.0.role.sees_all_tenants() {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Only support and admin change a problem.",
            nav,
        ));
    }
    csrf::check_form(&user.0, form.csrf.as_deref())
        .map_err(|e| PageError::new(e.status(), e.to_string(), nav))?;
    problems::detail(&app.db, id, None)
        .await
        .map_err(|e| PageError::internal("database", e, nav))?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "No such problem.", nav))
}

pub async fn update(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "problems");
    let form: WorkflowForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let d = writable(&app, &user, &id, &form, &nav).await?;
    let change = Change {
        status: form.status,
        fixed_in: form.fixed_in,
        assignee: form.assignee,
        ticket_url: form.ticket_url,
    };
    let new = apply(&d.row.workflow, &change)
        .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.message, &nav))?;
    save(&app, &d, &user.0, &new)
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?;
    Ok(Redirect::to(&format!("/problems/{id}")).into_response())
}

pub async fn comment(
    State(app): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let nav = Nav::new(&user, "problems");
    let form: WorkflowForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    writable(&app, &user, &id, &form, &nav).await?;
    let text = comment_text(form.body.as_deref().unwrap_or(""))
        .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.message, &nav))?;
    problems::comment(&app.db, &id, &actor(&user.0), text, crate::db::now_unix())
        .await
        .map_err(|e| PageError::internal("database", e, &nav))?;
    Ok(Redirect::to(&format!("/problems/{id}#comments")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use problem_facets::Count;

    fn count(value: &str, label: &str) -> Count {
        Count {
            value: value.into(),
            label: label.into(),
            count: 2,
        }
    }

    #[test]
    fn facet_links_set_their_filter_keep_the_others_and_the_active_one_clears() {
        let q = ListQuery {
            driver: "Leaky.SYS".into(),
            bugcheck: "e2".into(),
            ..Default::default()
        };
        let (filter, errors) = q.api().parse();
        assert!(errors.is_empty());
        let facets = vec![
            (
                Dimension::Driver,
                vec![count("leaky.sys", "leaky.sys"), count("a&b.sys", "a&b.sys")],
            ),
            (
                Dimension::Bugcheck,
                vec![count("0xe2", "MANUALLY_INITIATED_CRASH (0xe2)")],
            ),
            (Dimension::Tag, vec![count("Leak", "Leak")]),
        ];
        let g = groups(&q, &filter, facets);
        let leaky = &g[0].values[0];
        assert!(leaky.active, "the filter reads drivers in lower case");
        assert_eq!(leaky.href, "/problems?bugcheck=e2");
        let other = &g[0].values[1];
        assert!(!other.active);
        assert_eq!(other.href, "/problems?driver=a%26b.sys&bugcheck=e2");
        assert!(g[1].values[0].active, "0xe2 and e2 are one code");
        assert_eq!(
            g[2].values[0].href,
            "/problems?driver=Leaky.SYS&tag=Leak&bugcheck=e2"
        );
        let by_name = ListQuery {
            bugcheck: "manually_initiated_crash".into(),
            ..Default::default()
        };
        let (f, _) = by_name.api().parse();
        let c = count("0xe2", "MANUALLY_INITIATED_CRASH (0xe2)");
        assert!(is_active(&f, Dimension::Bugcheck, &c));
    }
}
