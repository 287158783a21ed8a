//! Retention: dump files are deleted a configurable number of days after the
//! last upload of their content; reports, summaries and dump rows stay, and the API says
//! "dump file deleted by retention".
//!
//! Only contents whose analysis has ended (`done` or `failed`) are touched, so retention never
//! pulls a file from under a running analysis. The file is removed first and the mark written
//! after: a server killed in between finds the content unmarked at the next sweep, removes
//! nothing more (already gone) and writes the mark. A later upload of the same content stores
//! the file again and [`file_restored`] removes the mark.

use crate::config::RetentionConfig;
use crate::db::{self, Db};
use crate::storage::Storage;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The reason stored with the mark and shown by the API and pages.
pub const REASON: &str = "dump file deleted by retention";

/// Contents handled per sweep step.
const BATCH: i64 = 500;

/// Deletes the files of finished contents whose newest upload is at least `days` old at
/// `now`. Returns how many files were deleted (marked).
pub async fn sweep(db: &Db, storage: &Storage, days: u64, now: i64) -> Result<u64, sqlx::Error> {
    let cutoff = now.saturating_sub(i64::try_from(days.saturating_mul(86_400)).unwrap_or(i64::MAX));
    let mut done = 0u64;
    loop {
        // Per content: every analysis of it (the shared one, tenants' own) has ended.
        let batch: Vec<String> = sqlx::query_scalar(
            "SELECT t.c FROM (SELECT COALESCE(j.content, j.sha256) AS c, \
                    SUM(CASE WHEN j.state IN ('done', 'failed') THEN 0 ELSE 1 END) AS busy \
                    FROM jobs j GROUP BY COALESCE(j.content, j.sha256)) t \
             WHERE t.busy = 0 \
               AND NOT EXISTS (SELECT 1 FROM dump_files_deleted f WHERE f.sha256 = t.c) \
               AND (SELECT MAX(d.created_at) FROM dumps d WHERE d.sha256 = t.c) <= $1 \
             ORDER BY t.c LIMIT $2",
        )
        .bind(cutoff)
        .bind(BATCH)
        .fetch_all(db)
        .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for sha in batch {
            let s = storage.clone();
            let sha2 = sha.clone();
            let removed = tokio::task::spawn_blocking(move || s.remove(&sha2)).await;
            match removed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Not marked: retried at the next sweep. Stop this one (the disk is the
                    // problem, not this file).
                    tracing::error!(sha256 = %sha, "retention: cannot delete the dump file: {e}");
                    return Ok(done);
                }
                Err(e) => {
                    tracing::error!("retention task: {e}");
                    return Ok(done);
                }
            }
            sqlx::query(
                "INSERT INTO dump_files_deleted (sha256, deleted_at, reason) VALUES ($1, $2, $3) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&sha)
            .bind(db::now_unix())
            .bind(REASON)
            .execute(db)
            .await?;
            tracing::info!(sha256 = %sha, "dump file deleted by retention");
            done += 1;
        }
    }
}

/// After an upload stored a content's file again: the retention mark no longer applies.
pub async fn file_restored(db: &Db, storage: &Storage, sha256: &str) -> Result<(), sqlx::Error> {
    if storage.dump_path(sha256).is_file() {
        sqlx::query("DELETE FROM dump_files_deleted WHERE sha256 = $1")
            .bind(sha256)
            .execute(db)
            .await?;
    }
    Ok(())
}

/// The content is gone for good (its last upload was deleted): drop its mark too.
pub async fn forget(db: &Db, sha256: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM dump_files_deleted WHERE sha256 = $1")
        .bind(sha256)
        .execute(db)
        .await?;
    Ok(())
}

/// Starts the periodic sweep (now, then every `interval`) when `days` is set.
pub fn start(
    db: Db,
    storage: Storage,
    config: RetentionConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let days = config.days?;
    let every = config.interval.max(Duration::from_secs(1));
    Some(tokio::spawn(async move {
        loop {
            let now = db::now_unix().saturating_add(config.clock_offset_secs);
            match sweep(&db, &storage, days, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, days, "retention sweep"),
                Err(e) => tracing::error!("retention sweep: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dumps::{insert_or_get, NewDump};

    #[tokio::test]
    async fn old_finished_files_go_reports_stay() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let db = crate::db::open_memory().await;
        for (sha, t) in [("old", 0), ("new", 10 * 86_400), ("queued", 0)] {
            std::fs::write(storage.dump_path(sha), b"x").unwrap();
            let nd = NewDump {
                tenant: "t",
                sha256: sha,
                size: 1,
                upload_size: 1,
                compression: "none",
                original_name: None,
            };
            insert_or_get(&db, &nd, t).await.unwrap();
        }
        sqlx::query("UPDATE jobs SET state = 'done' WHERE sha256 <> 'queued'")
            .execute(&db)
            .await
            .unwrap();
        sqlx::query("INSERT INTO reports (sha256, json, created_at) VALUES ('old', '{}', 0)")
            .execute(&db)
            .await
            .unwrap();
        // Day 11 with 7 days of retention: only "old" (day 0, finished) goes.
        assert_eq!(sweep(&db, &storage, 7, 11 * 86_400).await.unwrap(), 1);
        assert!(!storage.dump_path("old").exists());
        assert!(storage.dump_path("new").exists() && storage.dump_path("queued").exists());
        assert_eq!(sweep(&db, &storage, 7, 11 * 86_400).await.unwrap(), 0);
        let report: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(report, 1);
        // The file comes back with a new upload: the mark goes.
        std::fs::write(storage.dump_path("old"), b"x").unwrap();
        file_restored(&db, &storage, "old").await.unwrap();
        let marks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dump_files_deleted")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(marks, 0);
    }
}
