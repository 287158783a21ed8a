//! The service database: one SQLite file under the data directory (WAL mode), migrations from
//! the repository's `migrations/` folder embedded in the binary and applied at start.
//!
//! SQL in this module is written for both SQLite and PostgreSQL (`$n` placeholders, BIGINT Unix
//! seconds, TEXT ids, `ON CONFLICT ... DO NOTHING`, `UPDATE ... RETURNING`), so that a later
//! PostgreSQL backend changes the pool type, not the queries.

pub mod dumps;
pub mod jobs;
pub mod migrations;
pub mod report_index;
pub mod stats;
pub mod webhooks;
pub mod uploads;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pool type, shared with `crate::auth` (its `DbPool` is the same type).
pub type Db = sqlx::SqlitePool;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "pooltriage.db";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens (creating if needed) `<data_dir>/pooltriage.db` and applies pending migrations.
pub async fn open(data_dir: &Path) -> Result<Db, DbError> {
    let path = data_dir.join(DB_FILE);
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(&path)
        .create_if_missing(true)
        // WAL: readers (status polls) never wait for the writer (workers, uploads).
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit (an acknowledged upload, a finished job) survives an OS crash or power
        // loss too, not only a killed process. Writes are few (uploads, job transitions,
        // heartbeats every few seconds), so the fsyncs cost nothing that matters.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    migrations::migrator().await?.run(&pool).await?;
    Ok(pool)
}

/// An in-memory database with every migration applied (unit tests).
#[cfg(test)]
pub async fn open_memory() -> Db {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    migrations::migrator()
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}

/// Unix seconds now; the one clock of the database.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC text (`2026-11-25T18:41:14Z`) of Unix seconds, for the API.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        // Values from `date -u -d @N +%FT%TZ`.
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_632_074), "2026-11-25T18:41:14Z");
    }
}
