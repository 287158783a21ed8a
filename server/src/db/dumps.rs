//! Typed queries on `dumps` (one tenant's upload) joined with the job and report of its
//! analysis.
//!
//! A dump's analysis is keyed by `dumps.analysis`: the content's SHA-256 for the analysis
//! shared by every tenant without vendor symbols, `<sha256>@<tenant>` for a tenant whose
//! uploaded symbols it searched first ([`analysis_key`]). Jobs, reports and the report index
//! are keyed by it; the dump file itself by the content.

use super::Db;
use sqlx::Row;

/// A dump as the API shows it: the upload row plus its content's job.
#[derive(Debug, Clone)]
pub struct DumpRow {
    pub id: String,
    pub tenant: String,
    pub sha256: String,
    /// The key of the analysis that answers for it (see the module documentation).
    pub analysis: String,
    pub size: i64,
    pub upload_size: i64,
    pub compression: String,
    pub original_name: Option<String>,
    pub created_at: i64,
    pub state: String,
    pub stage: String,
    pub error: Option<String>,
    pub attempts: i64,
    /// The tenant's system (machine) the dump belongs to.
    pub system: Option<String>,
}

/// What an upload records.
pub struct NewDump<'a> {
    pub tenant: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub upload_size: u64,
    pub compression: &'a str,
    pub original_name: Option<&'a str>,
}

pub(super) const SELECT: &str =
    "SELECT d.id, d.tenant, d.sha256, d.analysis, d.size, d.upload_size, d.compression, d.original_name, \
     d.created_at, d.system, COALESCE(j.state, 'failed') AS state, COALESCE(j.stage, 'lost') AS stage, \
     CASE WHEN j.id IS NULL THEN 'analysis job missing' ELSE j.error END AS error, \
     COALESCE(j.attempts, 0) AS attempts \
     FROM dumps d LEFT JOIN jobs j ON j.sha256 = d.analysis";

/// A [`DumpRow`] from a row with the columns of `SELECT` (search queries select them too).
pub(super) fn from_row(r: &super::Row) -> Result<DumpRow, sqlx::Error> {
    Ok(DumpRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        sha256: r.try_get("sha256")?,
        analysis: r.try_get("analysis")?,
        size: r.try_get("size")?,
        upload_size: r.try_get("upload_size")?,
        compression: r.try_get("compression")?,
        original_name: r.try_get("original_name")?,
        created_at: r.try_get("created_at")?,
        state: r.try_get("state")?,
        stage: r.try_get("stage")?,
        error: r.try_get("error")?,
        attempts: r.try_get("attempts")?,
        system: r.try_get("system")?,
    })
}

/// The key of the analysis of content `sha256` for `tenant`: the content itself (shared) when
/// `scoped` is false, `<sha256>@<tenant>` when the tenant's own symbols are searched first.
/// Tenant names never hold `@` (auth.md), so the key is unambiguous.
pub fn analysis_key(sha256: &str, tenant: &str, scoped: bool) -> String {
    if scoped {
        format!("{sha256}@{tenant}")
    } else {
        sha256.to_string()
    }
}

/// Records an upload and queues its analysis unless that exists already, in one transaction.
/// A tenant with vendor symbols gets its own analysis; the others share one per content.
/// Returns the dump id and whether the row is new (false: this tenant had uploaded the same
/// content before, and gets that dump's id and analysis back).
pub async fn insert_or_get(
    db: &Db,
    new: &NewDump<'_>,
    now: i64,
) -> Result<(String, bool), sqlx::Error> {
    let mut tx = db.begin().await?;
    // The INSERT first: on SQLite the transaction then holds the write lock before it reads
    // (a read first fails with SQLITE_BUSY_SNAPSHOT when another upload commits meanwhile).
    let id = uuid::Uuid::new_v4().simple().to_string();
    let inserted = sqlx::query(
        "INSERT INTO dumps (id, tenant, sha256, analysis, size, upload_size, compression, original_name, created_at) \
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, sha256) DO NOTHING",
    )
    .bind(&id)
    .bind(new.tenant)
    .bind(new.sha256)
    .bind(new.size as i64)
    .bind(new.upload_size as i64)
    .bind(new.compression)
    .bind(new.original_name)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let (id, key) = if inserted {
        let scoped: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM symbol_files WHERE tenant = $1 LIMIT 1")
                .bind(new.tenant)
                .fetch_optional(&mut *tx)
                .await?;
        let key = analysis_key(new.sha256, new.tenant, scoped.is_some());
        if scoped.is_some() {
            sqlx::query("UPDATE dumps SET analysis = $1 WHERE id = $2")
                .bind(&key)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        (id, key)
    } else {
        let r = sqlx::query("SELECT id, analysis FROM dumps WHERE tenant = $1 AND sha256 = $2")
            .bind(new.tenant)
            .bind(new.sha256)
            .fetch_one(&mut *tx)
            .await?;
        (r.try_get("id")?, r.try_get("analysis")?)
    };
    queue_analysis(&mut tx, &key, new.sha256, new.tenant, now).await?;
    tx.commit().await?;
    Ok((id, inserted))
}

/// Makes sure the job of analysis `key` (of content `sha256`) exists, queued if new.
pub async fn queue_analysis(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &str,
    sha256: &str,
    tenant: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let scoped = key != sha256;
    sqlx::query(
        "INSERT INTO jobs (id, sha256, content, tenant, state, stage, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', 'queued', $5, $5) ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(key)
    .bind(scoped.then_some(sha256))
    .bind(scoped.then_some(tenant))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One dump, if it exists and `tenant` (None = every tenant) may see it.
pub async fn get(db: &Db, id: &str, tenant: Option<&str>) -> Result<Option<DumpRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE d.id = $1 AND ($2 IS NULL OR d.tenant = $2)");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of dumps, newest first. `before` is the cursor: (created_at, id) of the last row of
/// the previous page. The API lists through `db::stats::search_dumps` (filters, summaries);
/// this unfiltered form is kept for callers that need only the rows.
#[allow(dead_code)]
pub async fn list(
    db: &Db,
    tenant: Option<&str>,
    limit: i64,
    before: Option<(i64, &str)>,
) -> Result<Vec<DumpRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE ($1 IS NULL OR d.tenant = $1) \
         AND ($2 IS NULL OR d.created_at < $2 OR (d.created_at = $2 AND d.id < $3)) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1))
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The report of an analysis (key: [`DumpRow::analysis`]), if it is done.
pub async fn report(db: &Db, analysis: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT json FROM reports WHERE sha256 = $1")
        .bind(analysis)
        .fetch_optional(db)
        .await
}

/// Deletes one dump row. Returns `Some(true)` when it was the last reference to its content
/// (the caller removes the file). The job and report of its analysis go with the last dump
/// that uses them.
pub async fn delete(
    db: &Db,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The first statement writes: SQLite then takes the write lock before reading, and waits
    // (busy timeout) for another writer. A SELECT first made the later DELETE fail at once
    // with SQLITE_BUSY_SNAPSHOT whenever a worker committed in between (a 500 on DELETE).
    let row = sqlx::query(
        "DELETE FROM dumps WHERE id = $1 AND ($2 IS NULL OR tenant = $2) RETURNING sha256, analysis",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sha: String = row.try_get("sha256")?;
    let analysis: Option<String> = row.try_get("analysis")?;
    let analysis = analysis.unwrap_or_else(|| sha.clone());
    drop_unused_analysis(&mut tx, &analysis).await?;
    let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dumps WHERE sha256 = $1")
        .bind(&sha)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some((sha, others == 0)))
}

/// Deletes the job and report of analysis `key` when no dump uses it any more.
pub async fn drop_unused_analysis(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &str,
) -> Result<(), sqlx::Error> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dumps WHERE analysis = $1")
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    if users == 0 {
        sqlx::query("DELETE FROM jobs WHERE sha256 = $1")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM reports WHERE sha256 = $1")
            .bind(key)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(tenant: &'a str, sha: &'a str) -> NewDump<'a> {
        NewDump {
            tenant,
            sha256: sha,
            size: 10,
            upload_size: 5,
            compression: "gzip",
            original_name: Some("a.dmp.gz"),
        }
    }

    #[tokio::test]
    async fn same_tenant_same_content_same_id_one_job() {
        let db = super::super::open_memory().await;
        let (a, new_a) = insert_or_get(&db, &new("t1", "aa"), 1).await.unwrap();
        let (b, new_b) = insert_or_get(&db, &new("t1", "aa"), 2).await.unwrap();
        let (c, new_c) = insert_or_get(&db, &new("t2", "aa"), 3).await.unwrap();
        assert!(new_a && !new_b && new_c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(jobs, 1);
        // Tenant filter: t2 cannot see t1's dump.
        assert!(get(&db, &a, Some("t2")).await.unwrap().is_none());
        assert_eq!(get(&db, &a, None).await.unwrap().unwrap().state, "queued");
        // Deleting one reference keeps the content; deleting the last removes the job.
        assert_eq!(
            delete(&db, &a, None).await.unwrap(),
            Some(("aa".into(), false))
        );
        assert_eq!(
            delete(&db, &c, Some("t2")).await.unwrap(),
            Some(("aa".into(), true))
        );
        let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(jobs, 0);
    }

    #[tokio::test]
    async fn list_pages_newest_first() {
        let db = super::super::open_memory().await;
        for (i, sha) in ["a", "b", "c"].iter().enumerate() {
            insert_or_get(&db, &new("t", sha), i as i64).await.unwrap();
        }
        let p1 = list(&db, None, 2, None).await.unwrap();
        assert_eq!(
            p1.iter().map(|d| d.sha256.as_str()).collect::<Vec<_>>(),
            ["c", "b"]
        );
        let last = p1.last().unwrap();
        let p2 = list(&db, None, 2, Some((last.created_at, &last.id)))
            .await
            .unwrap();
        assert_eq!(
            p2.iter().map(|d| d.sha256.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
    }
}
