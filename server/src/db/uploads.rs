//! Typed queries on `uploads`: resumable chunked upload sessions (migrations/0003_uploads.sql).
//!
//! Every lookup takes the caller's tenant: an upload id of another tenant is "not found", like a
//! dump id. Writes to `received` only move it forward (`received <= $n` guards), so a late
//! checkpoint of an older request can never move the resume point back over bytes that a newer
//! request has already made durable.

use super::Db;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub id: String,
    pub tenant: String,
    pub filename: Option<String>,
    pub size: i64,
    pub received: i64,
    /// receiving | complete | failed
    pub state: String,
    pub dump_id: Option<String>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The system the dump goes into (checked when the upload started).
    pub system: Option<String>,
}

const SELECT: &str = "SELECT id, tenant, filename, size, received, state, dump_id, error, \
                      error_code, created_at, updated_at, system FROM uploads";

fn from_row(r: &super::Row) -> Result<UploadRow, sqlx::Error> {
    Ok(UploadRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        filename: r.try_get("filename")?,
        size: r.try_get("size")?,
        received: r.try_get("received")?,
        state: r.try_get("state")?,
        dump_id: r.try_get("dump_id")?,
        error: r.try_get("error")?,
        error_code: r.try_get("error_code")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        system: r.try_get("system")?,
    })
}

/// Starts an upload session `id` (made by the caller, who creates its file first).
pub async fn create(
    db: &Db,
    id: &str,
    tenant: &str,
    token_id: &str,
    filename: Option<&str>,
    size: u64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO uploads (id, tenant, token_id, filename, size, received, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 0, 'receiving', $6, $6)",
    )
    .bind(id)
    .bind(tenant)
    .bind(token_id)
    .bind(filename)
    .bind(i64::try_from(size).unwrap_or(i64::MAX))
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Names the system upload `id`'s dump goes into.
pub async fn set_system(db: &Db, id: &str, system: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE uploads SET system = $1 WHERE id = $2")
        .bind(system)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// One upload of `tenant`.
pub async fn get(db: &Db, id: &str, tenant: &str) -> Result<Option<UploadRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND tenant = $2");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Records a durable offset (the file is fsynced up to it). Only moves forward; returns whether
/// the row is still receiving.
pub async fn checkpoint(db: &Db, id: &str, received: u64, now: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE uploads SET received = $2, updated_at = $3 \
         WHERE id = $1 AND state = 'receiving' AND received <= $2",
    )
    .bind(id)
    .bind(i64::try_from(received).unwrap_or(i64::MAX))
    .bind(now)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Marks a finished upload complete with the dump it became.
pub async fn complete(db: &Db, id: &str, dump_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE uploads SET state = 'complete', dump_id = $2, received = size, updated_at = $3 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(dump_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks an upload failed for good (its content was refused: not a dump, a limit, a bad archive).
pub async fn fail(db: &Db, id: &str, code: &str, error: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE uploads SET state = 'failed', error_code = $2, error = $3, updated_at = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(code)
    .bind(error)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Ids of uploads with no activity since `before` (any state): candidates for expiry.
pub async fn idle_since(db: &Db, before: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
        .bind(before)
        .fetch_all(db)
        .await
}

/// Deletes one upload if it is still idle since `before`; returns whether it was deleted (the
/// caller then removes its file).
pub async fn delete_idle(db: &Db, id: &str, before: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("DELETE FROM uploads WHERE id = $1 AND updated_at < $2")
        .bind(id)
        .bind(before)
        .execute(db)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Ids of every upload still receiving (its file must exist); used at start to remove files
/// that belong to no upload.
pub async fn receiving_ids(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM uploads WHERE state = 'receiving'")
        .fetch_all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offsets_only_move_forward_and_tenants_are_apart() {
        let db = super::super::open_memory().await;
        let id = "a".repeat(32);
        create(&db, &id, "acme", "tok", Some("a.dmp"), 100, 10)
            .await
            .unwrap();
        assert!(get(&db, &id, "other").await.unwrap().is_none());
        let u = get(&db, &id, "acme").await.unwrap().unwrap();
        assert_eq!(
            (u.size, u.received, u.state.as_str()),
            (100, 0, "receiving")
        );
        assert!(checkpoint(&db, &id, 40, 11).await.unwrap());
        // An older, smaller checkpoint does not move the offset back.
        assert!(!checkpoint(&db, &id, 30, 12).await.unwrap());
        assert_eq!(get(&db, &id, "acme").await.unwrap().unwrap().received, 40);
        complete(&db, &id, "dump1", 13).await.unwrap();
        let u = get(&db, &id, "acme").await.unwrap().unwrap();
        assert_eq!((u.received, u.state.as_str()), (100, "complete"));
        assert_eq!(u.dump_id.as_deref(), Some("dump1"));
        // A complete upload takes no more checkpoints.
        assert!(!checkpoint(&db, &id, 100, 14).await.unwrap());
        assert!(receiving_ids(&db).await.unwrap().is_empty());
        // Expiry by last activity.
        let old = "b".repeat(32);
        create(&db, &old, "acme", "tok", None, 5, 1).await.unwrap();
        assert_eq!(idle_since(&db, 5).await.unwrap(), vec![old.clone()]);
        assert!(!delete_idle(&db, &id, 5).await.unwrap());
        assert!(delete_idle(&db, &old, 5).await.unwrap());
        assert!(get(&db, &id, "acme").await.unwrap().is_some());
    }
}
