//! The durable job queue: claim with a lease, heartbeat, finish, retry, recover expired leases.
//!
//! Every state change is one statement guarded by the expected state and lease owner, so two
//! workers (or two servers on one database) never both own a job, and a worker whose lease was
//! taken away cannot overwrite the new owner's result.

use super::Db;
use sqlx::Row;

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    /// The analysis key (`dumps.analysis`): the content's SHA-256, or `<sha256>@<tenant>`.
    pub sha256: String,
    /// The dump file's content (SHA-256) the analysis reads.
    pub content: String,
    /// The tenant whose uploaded symbols the analysis searches first; None: the shared one.
    pub tenant: Option<String>,
    /// Number of claims including this one.
    pub attempts: i64,
    /// When it was claimed: symbol files added later may not have been seen by it.
    pub claimed_at: i64,
}

/// Atomically takes the oldest queued job that is due, leasing it to `owner` until
/// `now + lease_secs`.
///
/// Safe with any number of claimers, in one process or in several service instances on one
/// database: the UPDATE re-checks `state = 'queued'` on the row it changes, so of two claimers
/// that picked the same id only one changes it and gets it back from RETURNING; the other gets
/// no row (and polls again). On SQLite claimers cannot even overlap (one writer at a time).
/// On PostgreSQL (READ COMMITTED) they can: the subquery there takes the row lock with
/// `FOR UPDATE SKIP LOCKED`, so a second claimer skips a job another transaction is claiming
/// and takes the next one instead of queueing behind that lock and then coming back empty.
/// SQLite has no row locks and no FOR UPDATE, hence the two texts.
pub async fn claim(
    db: &Db,
    owner: &str,
    now: i64,
    lease_secs: i64,
) -> Result<Option<Claimed>, sqlx::Error> {
    let lock = match super::backend(db) {
        super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        super::Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', stage = 'starting', attempts = attempts + 1, \
             lease_owner = $1, lease_expires = $2, updated_at = $3 \
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND not_before <= $3 \
                     ORDER BY created_at, id LIMIT 1{lock}) \
           AND state = 'queued' \
         RETURNING id, sha256, attempts, content, tenant"
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(now + lease_secs)
        .bind(now)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        let sha256: String = r.try_get("sha256")?;
        let content: Option<String> = r.try_get("content")?;
        Ok(Claimed {
            id: r.try_get("id")?,
            content: content.unwrap_or_else(|| sha256.clone()),
            sha256,
            tenant: r.try_get("tenant")?,
            attempts: r.try_get("attempts")?,
            claimed_at: now,
        })
    })
    .transpose()
}

/// Renews the lease and records the stage. Returns false when the job is no longer ours
/// (deleted, or the lease expired and someone else took it): the worker then abandons it.
pub async fn heartbeat(
    db: &Db,
    id: &str,
    owner: &str,
    stage: &str,
    now: i64,
    lease_secs: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE jobs SET lease_expires = $1, stage = $2, updated_at = $3 \
         WHERE id = $4 AND state = 'running' AND lease_owner = $5",
    )
    .bind(now + lease_secs)
    .bind(stage)
    .bind(now)
    .bind(id)
    .bind(owner)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Stores the report and marks the job done, in one transaction (both or neither).
pub async fn complete(
    db: &Db,
    job: &Claimed,
    owner: &str,
    report_json: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE jobs SET state = 'done', stage = 'done', error = NULL, lease_owner = NULL, lease_expires = NULL, \
             updated_at = $1, finished_at = $1 \
         WHERE id = $2 AND state = 'running' AND lease_owner = $3",
    )
    .bind(now)
    .bind(&job.id)
    .bind(owner)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    // A re-analysis (new vendor symbols) replaces the analysis' earlier report.
    sqlx::query(
        "INSERT INTO reports (sha256, json, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sha256) DO UPDATE SET json = excluded.json, created_at = excluded.created_at",
    )
    .bind(&job.sha256)
    .bind(report_json)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Marks the job failed for good with a reason.
pub async fn fail(
    db: &Db,
    job: &Claimed,
    owner: &str,
    stage: &str,
    reason: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE jobs SET state = 'failed', stage = $1, error = $2, lease_owner = NULL, lease_expires = NULL, \
             updated_at = $3, finished_at = $3 \
         WHERE id = $4 AND state = 'running' AND lease_owner = $5",
    )
    .bind(stage)
    .bind(reason)
    .bind(now)
    .bind(&job.id)
    .bind(owner)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Puts the job back in the queue, not to be claimed before `not_before` (retry with backoff).
/// `refund` gives back the attempt (the server shut down: not the job's fault).
pub async fn requeue(
    db: &Db,
    job: &Claimed,
    owner: &str,
    reason: &str,
    not_before: i64,
    refund: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE jobs SET state = 'queued', stage = 'queued', error = $1, not_before = $2, \
             attempts = attempts - $3, lease_owner = NULL, lease_expires = NULL, updated_at = $4 \
         WHERE id = $5 AND state = 'running' AND lease_owner = $6",
    )
    .bind(reason)
    .bind(not_before)
    .bind(i64::from(refund))
    .bind(now)
    .bind(&job.id)
    .bind(owner)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Jobs whose lease expired (their worker or server died): back to the queue, or failed when
/// they have used every attempt (a dump that kills whatever analyses it must not loop forever).
/// Returns (requeued, failed).
pub async fn recover_expired(
    db: &Db,
    now: i64,
    max_attempts: i64,
) -> Result<(u64, u64), sqlx::Error> {
    let failed = sqlx::query(
        "UPDATE jobs SET state = 'failed', error = 'analysis was interrupted ' || attempts || ' times (worker lost)', \
             lease_owner = NULL, lease_expires = NULL, updated_at = $1, finished_at = $1 \
         WHERE state = 'running' AND lease_expires < $1 AND attempts >= $2",
    )
    .bind(now)
    .bind(max_attempts)
    .execute(db)
    .await?
    .rows_affected();
    let requeued = sqlx::query(
        "UPDATE jobs SET state = 'queued', stage = 'queued', error = 'worker lost; retrying', \
             lease_owner = NULL, lease_expires = NULL, updated_at = $1 \
         WHERE state = 'running' AND lease_expires < $1",
    )
    .bind(now)
    .execute(db)
    .await?
    .rows_affected();
    Ok((requeued, failed))
}

/// An administrator's retry of a failed analysis: back to the queue with its attempts reset
/// (the reason it failed may have been fixed: symbols uploaded, limits raised, a new analyzer).
/// Only a failed job moves; returns whether it did.
pub async fn retry_failed(db: &Db, analysis: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE jobs SET state = 'queued', stage = 'queued', error = NULL, attempts = 0, \
             not_before = 0, lease_owner = NULL, lease_expires = NULL, finished_at = NULL, \
             updated_at = $1 \
         WHERE sha256 = $2 AND state = 'failed'",
    )
    .bind(now)
    .bind(analysis)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dumps::{insert_or_get, NewDump};

    async fn queued(db: &Db, sha: &str, now: i64) {
        let d = NewDump {
            tenant: "t",
            sha256: sha,
            size: 1,
            upload_size: 1,
            compression: "none",
            original_name: None,
        };
        insert_or_get(db, &d, now).await.unwrap();
    }

    async fn state(db: &Db, sha: &str) -> (String, i64) {
        let r = sqlx::query("SELECT state, attempts FROM jobs WHERE sha256 = $1")
            .bind(sha)
            .fetch_one(db)
            .await
            .unwrap();
        (r.get(0), r.get(1))
    }

    #[tokio::test]
    async fn a_job_is_claimed_once_oldest_first() {
        let db = crate::db::open_memory().await;
        queued(&db, "old", 1).await;
        queued(&db, "new", 2).await;
        let a = claim(&db, "w1", 10, 30).await.unwrap().unwrap();
        let b = claim(&db, "w2", 10, 30).await.unwrap().unwrap();
        assert_eq!((a.sha256.as_str(), b.sha256.as_str()), ("old", "new"));
        assert!(claim(&db, "w3", 10, 30).await.unwrap().is_none());
        // Not the owner: cannot finish or heartbeat.
        assert!(!heartbeat(&db, &a.id, "w2", "x", 11, 30).await.unwrap());
        assert!(!complete(&db, &a, "w2", "{}", 11).await.unwrap());
        assert!(complete(&db, &a, "w1", "{}", 11).await.unwrap());
        assert_eq!(state(&db, "old").await, ("done".into(), 1));
    }

    #[tokio::test]
    async fn expired_leases_return_to_the_queue_then_fail_after_max_attempts() {
        let db = crate::db::open_memory().await;
        queued(&db, "s", 1).await;
        let job = claim(&db, "w1", 10, 5).await.unwrap().unwrap();
        // Lease still valid: nothing recovered.
        assert_eq!(recover_expired(&db, 14, 2).await.unwrap(), (0, 0));
        assert_eq!(recover_expired(&db, 16, 2).await.unwrap(), (1, 0));
        assert_eq!(state(&db, "s").await, ("queued".into(), 1));
        // The old owner lost it.
        assert!(!complete(&db, &job, "w1", "{}", 17).await.unwrap());
        claim(&db, "w2", 20, 5).await.unwrap().unwrap();
        assert_eq!(recover_expired(&db, 30, 2).await.unwrap(), (0, 1));
        assert_eq!(state(&db, "s").await, ("failed".into(), 2));
    }

    #[tokio::test]
    async fn requeue_honours_backoff_and_refund() {
        let db = crate::db::open_memory().await;
        queued(&db, "s", 1).await;
        let job = claim(&db, "w", 10, 30).await.unwrap().unwrap();
        assert!(requeue(&db, &job, "w", "spawn failed", 20, false, 11)
            .await
            .unwrap());
        assert!(claim(&db, "w", 19, 30).await.unwrap().is_none());
        let job = claim(&db, "w", 20, 30).await.unwrap().unwrap();
        assert_eq!(job.attempts, 2);
        assert!(requeue(&db, &job, "w", "shutdown", 0, true, 21)
            .await
            .unwrap());
        assert_eq!(state(&db, "s").await, ("queued".into(), 1));
    }
}
