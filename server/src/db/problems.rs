//! Problems: the dumps of each [`super::problem_key::ProblemKey`], counted within what the
//! viewer may see, and the support workflow (status, assignee, ticket, comments, audit trail).
//!
//! Counts are computed from `dumps` joined to `report_summaries` at query time rather than
//! stored: a customer's view and support's view of one problem differ (a customer counts only
//! its own dumps), and deleting a dump must not leave a stale count behind.

use super::conditions::Conditions;
use super::Db;
use sqlx::Row;

/// The workflow states, in the order a problem usually moves through them.
pub const STATUSES: [&str; 4] = ["new", "investigating", "fixed", "wont-fix"];

/// Most problems in one list.
const MAX_LIST: i64 = 500;

/// One problem as a list shows it.
#[derive(Debug, Clone)]
pub struct ProblemRow {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub dumps: i64,
    pub customers: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub workflow: Workflow,
}

/// The workflow fields of a problem (`new` with nothing else until someone changes it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workflow {
    pub status: String,
    pub fixed_in: Option<String>,
    pub assignee: Option<String>,
    pub ticket_url: Option<String>,
}

/// One dump of a problem.
#[derive(Debug, Clone)]
pub struct ProblemDump {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub build: Option<i64>,
    pub sentence: Option<String>,
}

/// A problem with its dumps, the kernel builds and driver versions they came from.
#[derive(Debug, Clone)]
pub struct ProblemDetail {
    pub row: ProblemRow,
    pub signature: String,
    pub dumps: Vec<ProblemDump>,
    pub builds: Vec<i64>,
    /// Image keys (`name/TIMESTAMPsize`) of the problem's modules, as seen in its dumps.
    pub versions: Vec<String>,
}

/// A comment or an audit event.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub action: String,
    pub text: String,
    pub at: i64,
}

const GROUP_SELECT: &str = "SELECT s.problem_id AS id, MIN(s.problem_kind) AS kind, \
     MIN(s.problem_title) AS title, COUNT(d.id) AS dumps, COUNT(DISTINCT d.tenant) AS customers, \
     MIN(d.created_at) AS first_seen, MAX(d.created_at) AS last_seen, \
     MIN(w.status) AS status, MIN(w.fixed_in) AS fixed_in, MIN(w.assignee) AS assignee, \
     MIN(w.ticket_url) AS ticket_url \
     FROM dumps d JOIN report_summaries s ON s.sha256 = d.analysis \
     LEFT JOIN problem_workflow w ON w.problem_id = s.problem_id \
     WHERE s.problem_id IS NOT NULL";

fn row_of(r: &super::Row) -> Result<ProblemRow, sqlx::Error> {
    Ok(ProblemRow {
        id: r.try_get("id")?,
        kind: r.try_get::<Option<String>, _>("kind")?.unwrap_or_default(),
        title: r.try_get::<Option<String>, _>("title")?.unwrap_or_default(),
        dumps: r.try_get("dumps")?,
        customers: r.try_get("customers")?,
        first_seen: r.try_get::<Option<i64>, _>("first_seen")?.unwrap_or(0),
        last_seen: r.try_get::<Option<i64>, _>("last_seen")?.unwrap_or(0),
        workflow: workflow_of(r)?,
    })
}

/// The workflow columns of a row; a problem nobody changed yet (no status) is `new`.
fn workflow_of(r: &super::Row) -> Result<Workflow, sqlx::Error> {
    Ok(Workflow {
        status: r
            .try_get::<Option<String>, _>("status")?
            .unwrap_or_else(|| "new".into()),
        fixed_in: r.try_get("fixed_in")?,
        assignee: r.try_get("assignee")?,
        ticket_url: r.try_get("ticket_url")?,
    })
}

/// The problems `tenant` (None = every tenant) has dumps in, most recently seen first;
/// `status` keeps one workflow state.
pub async fn list(
    db: &Db,
    tenant: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<ProblemRow>, sqlx::Error> {
    let mut c = Conditions::default();
    c.equals("d.tenant", tenant);
    let mut having = String::new();
    if let Some(s) = status {
        having = format!(" HAVING COALESCE(MIN(w.status), 'new') = {}", c.text(s));
    }
    let sql = format!(
        "{GROUP_SELECT}{} GROUP BY s.problem_id{having} \
         ORDER BY MAX(d.created_at) DESC, s.problem_id LIMIT {MAX_LIST}",
        c.and_clause()
    );
    let rows = c.bind(sqlx::query(&sql)).fetch_all(db).await?;
    rows.iter().map(row_of).collect()
}

/// One problem as `tenant` (None = every tenant) sees it; None when it has no dump there.
pub async fn detail(
    db: &Db,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<ProblemDetail>, sqlx::Error> {
    let c = problem_scope(id, tenant);
    let sql = format!("{GROUP_SELECT}{} GROUP BY s.problem_id", c.and_clause());
    let Some(row) = c.bind(sqlx::query(&sql)).fetch_optional(db).await? else {
        return Ok(None);
    };
    let row = row_of(&row)?;
    let sql = format!(
        "SELECT d.id, d.tenant, d.original_name, d.created_at, s.build, s.verdict_sentence, \
         s.signature FROM dumps d JOIN report_summaries s ON s.sha256 = d.analysis\
         {} ORDER BY d.created_at DESC, d.id LIMIT 1000",
        c.where_clause()
    );
    let rows = c.bind(sqlx::query(&sql)).fetch_all(db).await?;
    let mut signature = String::new();
    let mut dumps = Vec::with_capacity(rows.len());
    for r in &rows {
        signature = r
            .try_get::<Option<String>, _>("signature")?
            .unwrap_or_default();
        dumps.push(ProblemDump {
            id: r.try_get("id")?,
            tenant: r.try_get("tenant")?,
            name: r.try_get("original_name")?,
            created_at: r.try_get("created_at")?,
            build: r.try_get("build")?,
            sentence: r.try_get("verdict_sentence")?,
        });
    }
    let mut builds: Vec<i64> = dumps.iter().filter_map(|d| d.build).collect();
    builds.sort_unstable();
    builds.dedup();
    let versions = versions(db, &c).await?;
    Ok(Some(ProblemDetail {
        row,
        signature,
        dumps,
        builds,
        versions,
    }))
}

/// A problem's dumps that `tenant` (None = every tenant) may see.
fn problem_scope(id: &str, tenant: Option<&str>) -> Conditions {
    let mut c = Conditions::default();
    c.equals("s.problem_id", Some(id));
    c.equals("d.tenant", tenant);
    c
}

/// The image keys of the modules a problem's verdicts name, over its dumps (`scope`).
async fn versions(db: &Db, scope: &Conditions) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT DISTINCT m.image_key FROM dumps d \
         JOIN report_summaries s ON s.sha256 = d.analysis \
         JOIN report_drivers rd ON rd.sha256 = s.sha256 AND rd.is_verdict = 1 \
         JOIN report_modules m ON m.sha256 = s.sha256 AND m.module = rd.module\
         {} AND m.image_key IS NOT NULL ORDER BY m.image_key LIMIT 100",
        scope.where_clause()
    );
    let rows = scope.bind(sqlx::query(&sql)).fetch_all(db).await?;
    rows.iter().map(|r| r.try_get("image_key")).collect()
}

/// An id that sorts in the order rows were written (nanoseconds since the epoch, then random):
/// the audit trail lists several changes made in the same second in the order they were made.
fn ordered_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:020}-{}", uuid::Uuid::new_v4().simple())
}

/// Sets the workflow fields and records one audit event per changed field and the webhook
/// deliveries `notify` makes of the change (given the workflow before it), in one
/// transaction. Returns the workflow before the change.
pub async fn update(
    db: &Db,
    id: &str,
    actor: &str,
    new: &Workflow,
    now: i64,
    notify: impl FnOnce(&Workflow) -> Vec<super::webhooks::NewProblemEvent>,
) -> Result<Workflow, sqlx::Error> {
    let mut tx = db.begin().await?;
    let old: Option<super::Row> = sqlx::query(
        "SELECT status, fixed_in, assignee, ticket_url FROM problem_workflow WHERE problem_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let old = match old {
        Some(r) => workflow_of(&r)?,
        None => Workflow {
            status: "new".into(),
            ..Default::default()
        },
    };
    sqlx::query(
        "INSERT INTO problem_workflow (problem_id, status, fixed_in, assignee, ticket_url, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (problem_id) DO UPDATE SET status = $2, fixed_in = $3, assignee = $4, \
         ticket_url = $5, updated_at = $6",
    )
    .bind(id)
    .bind(&new.status)
    .bind(&new.fixed_in)
    .bind(&new.assignee)
    .bind(&new.ticket_url)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let changes = [
        ("status", old.status.clone(), new.status.clone()),
        ("fixed_in", show(&old.fixed_in), show(&new.fixed_in)),
        ("assignee", show(&old.assignee), show(&new.assignee)),
        ("ticket_url", show(&old.ticket_url), show(&new.ticket_url)),
    ];
    for (field, before, after) in changes {
        if before != after {
            event(
                &mut tx,
                id,
                actor,
                field,
                &format!("{before} → {after}"),
                now,
            )
            .await?;
        }
    }
    super::webhooks::add_problem_events(&mut tx, id, &notify(&old), now).await?;
    tx.commit().await?;
    Ok(old)
}

async fn event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    actor: &str,
    action: &str,
    detail: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO problem_events (id, problem_id, actor, action, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ordered_id())
    .bind(id)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds a comment (and its audit event).
pub async fn comment(
    db: &Db,
    id: &str,
    actor: &str,
    body: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO problem_comments (id, problem_id, author, body, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ordered_id())
    .bind(id)
    .bind(actor)
    .bind(body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let preview: String = body.chars().take(80).collect();
    event(&mut tx, id, actor, "comment", &preview, now).await?;
    tx.commit().await
}

/// The comments, oldest first.
pub async fn comments(db: &Db, id: &str) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT author, body, created_at FROM problem_comments WHERE problem_id = $1 \
         ORDER BY created_at, id LIMIT 1000",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                actor: r.try_get("author")?,
                action: "comment".into(),
                text: r.try_get("body")?,
                at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The audit trail, oldest first.
pub async fn events(db: &Db, id: &str) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT actor, action, detail, at FROM problem_events WHERE problem_id = $1 \
         ORDER BY at, id LIMIT 1000",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                text: r.try_get("detail")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}
