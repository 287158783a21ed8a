//! Typed queries for systems (migrations/0007_systems.sql): which dumps and logs a tenant's
//! system holds. A system has no row of its own: it exists while a dump or a log names it, so
//! deleting its last dump and log leaves nothing behind.

use super::dumps::{self, DumpRow};
use super::Db;
use sqlx::Row;

/// Most dumps of one system read for its page and trend (newest kept): a dump a day for
/// over a year; the trend's own bounds (`analyzer::trend::limits`) apply on top.
pub const MAX_DUMPS: i64 = 500;
/// Most logs of one system read for its trend.
pub const MAX_LOGS: i64 = 200;

/// One system as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRow {
    pub tenant: String,
    pub name: String,
    pub dumps: i64,
    pub logs: i64,
    /// First and last upload into it, Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
}

/// A log of a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub id: String,
    pub tenant: String,
    pub system: String,
    pub sha256: String,
    pub kind: String,
    pub size: i64,
    pub upload_size: i64,
    pub compression: String,
    pub original_name: Option<String>,
    pub samples: i64,
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
    pub created_at: i64,
}

/// What a log upload records.
pub struct NewLog<'a> {
    pub tenant: &'a str,
    pub system: &'a str,
    pub sha256: &'a str,
    pub kind: &'a str,
    pub size: u64,
    pub upload_size: u64,
    pub compression: &'a str,
    pub original_name: Option<&'a str>,
    pub samples: u64,
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
}

/// Puts dump `id` into `system` of its tenant.
pub async fn set_dump_system(db: &Db, id: &str, system: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dumps SET system = $1 WHERE id = $2")
        .bind(system)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// The systems `tenant` (None = every tenant) may see, most recently used first.
pub async fn list(db: &Db, tenant: Option<&str>) -> Result<Vec<SystemRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT tenant, system, CAST(SUM(n_dumps) AS BIGINT) AS n_dumps, \
         CAST(SUM(n_logs) AS BIGINT) AS n_logs, MIN(first_seen) AS first_seen, \
         MAX(last_seen) AS last_seen FROM ( \
           SELECT tenant, system, COUNT(*) AS n_dumps, 0 AS n_logs, \
                  MIN(created_at) AS first_seen, MAX(created_at) AS last_seen \
           FROM dumps WHERE system IS NOT NULL AND ($1 IS NULL OR tenant = $1) \
           GROUP BY tenant, system \
           UNION ALL \
           SELECT tenant, system, 0 AS n_dumps, COUNT(*) AS n_logs, \
                  MIN(created_at) AS first_seen, MAX(created_at) AS last_seen \
           FROM system_logs WHERE ($1 IS NULL OR tenant = $1) \
           GROUP BY tenant, system \
         ) s GROUP BY tenant, system ORDER BY MAX(last_seen) DESC, tenant, system",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SystemRow {
                tenant: r.try_get("tenant")?,
                name: r.try_get("system")?,
                dumps: r.try_get("n_dumps")?,
                logs: r.try_get("n_logs")?,
                first_seen: r.try_get("first_seen")?,
                last_seen: r.try_get("last_seen")?,
            })
        })
        .collect()
}

/// The names of `tenant`'s systems, for upload pickers.
pub async fn names(db: &Db, tenant: &str) -> Result<Vec<String>, sqlx::Error> {
    let mut names: Vec<String> = list(db, Some(tenant))
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    Ok(names)
}

/// The dumps of `tenant`'s system `name`, newest upload first (at most [`MAX_DUMPS`]).
pub async fn dumps_of(db: &Db, tenant: &str, name: &str) -> Result<Vec<DumpRow>, sqlx::Error> {
    let sql = format!(
        "{} WHERE d.tenant = $1 AND d.system = $2 ORDER BY d.created_at DESC, d.id DESC LIMIT $3",
        dumps::SELECT
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(name)
        .bind(MAX_DUMPS)
        .fetch_all(db)
        .await?;
    rows.iter().map(dumps::from_row).collect()
}

const LOG_SELECT: &str =
    "SELECT id, tenant, system, sha256, kind, size, upload_size, compression, \
     original_name, samples, first_at, last_at, created_at FROM system_logs";

fn log_from_row(r: &super::Row) -> Result<LogRow, sqlx::Error> {
    Ok(LogRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        system: r.try_get("system")?,
        sha256: r.try_get("sha256")?,
        kind: r.try_get("kind")?,
        size: r.try_get("size")?,
        upload_size: r.try_get("upload_size")?,
        compression: r.try_get("compression")?,
        original_name: r.try_get("original_name")?,
        samples: r.try_get("samples")?,
        first_at: r.try_get("first_at")?,
        last_at: r.try_get("last_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The logs of `tenant`'s system `name`, oldest upload first (at most [`MAX_LOGS`]).
pub async fn logs_of(db: &Db, tenant: &str, name: &str) -> Result<Vec<LogRow>, sqlx::Error> {
    let sql =
        format!("{LOG_SELECT} WHERE tenant = $1 AND system = $2 ORDER BY created_at, id LIMIT $3");
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(name)
        .bind(MAX_LOGS)
        .fetch_all(db)
        .await?;
    rows.iter().map(log_from_row).collect()
}

/// Records a log; the same content in the same system of the same tenant is the row already
/// there. Returns the log and whether it is new.
pub async fn insert_or_get_log(
    db: &Db,
    new: &NewLog<'_>,
    now: i64,
) -> Result<(LogRow, bool), sqlx::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let inserted = sqlx::query(
        "INSERT INTO system_logs (id, tenant, system, sha256, kind, size, upload_size, compression, \
         original_name, samples, first_at, last_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (tenant, system, sha256) DO NOTHING",
    )
    .bind(&id)
    .bind(new.tenant)
    .bind(new.system)
    .bind(new.sha256)
    .bind(new.kind)
    .bind(i64::try_from(new.size).unwrap_or(i64::MAX))
    .bind(i64::try_from(new.upload_size).unwrap_or(i64::MAX))
    .bind(new.compression)
    .bind(new.original_name)
    .bind(i64::try_from(new.samples).unwrap_or(i64::MAX))
    .bind(new.first_at)
    .bind(new.last_at)
    .bind(now)
    .execute(db)
    .await?
    .rows_affected()
        == 1;
    let sql = format!("{LOG_SELECT} WHERE tenant = $1 AND system = $2 AND sha256 = $3");
    let row = sqlx::query(&sql)
        .bind(new.tenant)
        .bind(new.system)
        .bind(new.sha256)
        .fetch_one(db)
        .await?;
    Ok((log_from_row(&row)?, inserted))
}

/// Deletes log `id` of `tenant`'s system `name`. `Some(true)` when no other log row uses its
/// content (the caller removes the file); `None` when there is no such log.
pub async fn delete_log(
    db: &Db,
    tenant: &str,
    name: &str,
    id: &str,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The write first, as in `dumps::delete`: SQLite then holds the write lock before reading.
    let row = sqlx::query(
        "DELETE FROM system_logs WHERE id = $1 AND tenant = $2 AND system = $3 RETURNING sha256",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sha: String = row.try_get("sha256")?;
    let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM system_logs WHERE sha256 = $1")
        .bind(&sha)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some((sha, others == 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dumps::{insert_or_get, NewDump};

    fn log<'a>(tenant: &'a str, system: &'a str, sha: &'a str) -> NewLog<'a> {
        NewLog {
            tenant,
            system,
            sha256: sha,
            kind: "poolmon",
            size: 10,
            upload_size: 10,
            compression: "none",
            original_name: Some("poolmon.log"),
            samples: 3,
            first_at: Some(1),
            last_at: Some(2),
        }
    }

    #[tokio::test]
    async fn systems_are_tenant_scoped_and_logs_deduplicated() {
        let db = crate::db::open_memory().await;
        let nd = NewDump {
            tenant: "a",
            sha256: "d1",
            size: 1,
            upload_size: 1,
            compression: "none",
            original_name: None,
        };
        let (dump, _) = insert_or_get(&db, &nd, 5).await.unwrap();
        set_dump_system(&db, &dump, "sql01").await.unwrap();
        let (l1, new1) = insert_or_get_log(&db, &log("a", "sql01", "l1"), 7)
            .await
            .unwrap();
        let (l1b, new1b) = insert_or_get_log(&db, &log("a", "sql01", "l1"), 8)
            .await
            .unwrap();
        assert!(new1 && !new1b);
        assert_eq!(l1.id, l1b.id);
        insert_or_get_log(&db, &log("b", "sql01", "l1"), 9)
            .await
            .unwrap();
        let a = list(&db, Some("a")).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].dumps, a[0].logs, a[0].first_seen, a[0].last_seen),
            (1, 1, 5, 7)
        );
        assert_eq!(list(&db, None).await.unwrap().len(), 2);
        assert_eq!(dumps_of(&db, "a", "sql01").await.unwrap().len(), 1);
        assert!(dumps_of(&db, "b", "sql01").await.unwrap().is_empty());
        assert_eq!(logs_of(&db, "a", "sql01").await.unwrap().len(), 1);
        // Another tenant cannot delete it; the file stays while tenant b's row uses it.
        assert_eq!(delete_log(&db, "b", "sql01", &l1.id).await.unwrap(), None);
        assert_eq!(
            delete_log(&db, "a", "sql01", &l1.id).await.unwrap(),
            Some(("l1".into(), false))
        );
    }
}
