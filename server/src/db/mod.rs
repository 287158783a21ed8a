//! The service database: by default one SQLite file under the data directory (WAL mode); for
//! scale-out (several service instances sharing one queue) a PostgreSQL database, chosen by
//! `--database-url postgres://...`. Migrations from the repository's `migrations/` folder are
//! embedded in the binary and applied at start (on PostgreSQL under sqlx's advisory lock, so
//! instances starting together apply them once).
//!
//! One pool type serves both: sqlx's `Any` driver picks the backend from the URL at run time.
//! SQL in this crate is therefore written for both (`$n` placeholders, BIGINT Unix seconds and
//! sizes, 0/1 integers instead of booleans, TEXT ids, `ON CONFLICT ... DO NOTHING`,
//! `UPDATE ... RETURNING`, `CAST(SUM(..) AS BIGINT)` since PostgreSQL sums BIGINT to NUMERIC,
//! which the `Any` driver cannot decode). The one place where the backends need different
//! text is the queue claim ([`Backend`], see `jobs::claim`). tests/service_postgres.rs and the
//! service suites run with `POOLTRIAGE_TEST_DATABASE=postgres` check it on a real server.

mod conditions;
pub mod dump_sort;
pub mod dumps;
pub mod jobs;
pub mod migrations;
pub mod problem_facets;
pub mod problem_key;
pub mod problems;
pub mod report_index;
pub mod report_modules;
pub mod stats;
pub mod symbol_files;
pub mod systems;
pub mod uploads;
pub mod webhooks;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Connection, Executor};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pool type, shared with `crate::auth` (its `DbPool` is the same type).
pub type Db = sqlx::AnyPool;

/// A row of either backend.
pub type Row = AnyRow;

/// File name of the SQLite database inside the data directory.
pub const DB_FILE: &str = "pooltriage.db";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Connecting failed; the URL is shown without its password.
    #[error("cannot connect to database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error(
        "database URL {0}: only postgres:// (or postgresql://) and sqlite: URLs are supported"
    )]
    UnsupportedUrl(String),
    #[error("database file {path}: {source}")]
    Path {
        path: String,
        source: std::io::Error,
    },
}

/// The server behind a pool. Almost every statement is the same text on both; the few that
/// are not (row locking in the queue claims) ask this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend of `db`, from its URL scheme.
pub fn backend(db: &Db) -> Backend {
    if db
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
    {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the database and applies pending migrations: `database_url` when given (PostgreSQL,
/// or an explicit SQLite URL), else `<data_dir>/pooltriage.db`, created if missing.
pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Db, DbError> {
    sqlx::any::install_default_drivers();
    let (url, pool) = match database_url {
        None => {
            let url = sqlite_url(&data_dir.join(DB_FILE))?;
            let pool = open_sqlite(&url, 8).await;
            (url, pool)
        }
        Some(url) if is_postgres_url(url) => {
            // One plain connection first: a refused connection, a bad password or a missing
            // database fails here at once with the server's reason. (The pool would retry
            // until its acquire timeout and then report only "pool timed out".)
            match sqlx::AnyConnection::connect(url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                }
                Err(source) => {
                    return Err(DbError::Connect {
                        url: redact(url),
                        source,
                    })
                }
            }
            // 16 per instance: 8 workers' heartbeats and transitions, HTTP handlers, the
            // webhook dispatcher. Several instances share the server's max_connections (100 by
            // default), so this stays well below it for a handful of instances.
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await;
            (url.to_string(), pool)
        }
        Some(url) if url.starts_with("sqlite:") => (url.to_string(), open_sqlite(url, 8).await),
        Some(url) => return Err(DbError::UnsupportedUrl(redact(url))),
    };
    let pool = pool.map_err(|source| DbError::Connect {
        url: redact(&url),
        source,
    })?;
    migrations::migrator().await?.run(&pool).await?;
    Ok(pool)
}

/// SQLite with the settings the service relies on, set on every new connection (the `Any`
/// driver takes a URL, which carries none of them).
async fn open_sqlite(url: &str, max_connections: u32) -> Result<Db, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL: readers (status polls) never wait for the writer (workers, uploads).
                // FULL: a commit (an acknowledged upload, a finished job) survives an OS crash
                // or power loss too, not only a killed process. Writes are few (uploads, job
                // transitions, heartbeats every few seconds), so the fsyncs cost little.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// `sqlite:///abs/path?mode=rwc` for a database file (created if missing). The path is made
/// absolute (a relative one would parse as a URL host) and percent-encoded.
fn sqlite_url(path: &Path) -> Result<String, DbError> {
    let abs = std::path::absolute(path).map_err(|source| DbError::Path {
        path: path.display().to_string(),
        source,
    })?;
    let mut url = String::from("sqlite://");
    for b in abs.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// The URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.has_host() => {
            if u.password().is_some() && u.set_password(Some("***")).is_err() {
                return "(database URL not shown)".to_string();
            }
            u.to_string()
        }
        // Not a URL with a host: it may still hold a password (`user:pw@host`).
        _ => match url.rfind('@') {
            Some(at) => format!("***@{}", &url[at + 1..]),
            None => url.to_string(),
        },
    }
}

/// An in-memory SQLite database with every migration applied (unit tests).
#[cfg(test)]
pub async fn open_memory() -> Db {
    sqlx::any::install_default_drivers();
    let pool = open_sqlite("sqlite::memory:", 1).await.unwrap();
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
    analyzer::report::time::unix_to_rfc3339(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_are_absolute_and_encoded() {
        let url = sqlite_url(Path::new("/tmp/a b/pool#1.db")).unwrap();
        assert_eq!(url, "sqlite:///tmp/a%20b/pool%231.db?mode=rwc");
        let rel = sqlite_url(Path::new("data/pooltriage.db")).unwrap();
        assert!(rel.starts_with("sqlite:///"), "{rel}");
        assert!(rel.ends_with("/data/pooltriage.db?mode=rwc"), "{rel}");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("u:secret@h/db"), "***@h/db");
    }

    #[tokio::test]
    async fn sqlite_file_gets_wal_and_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), None).await.unwrap();
        assert_eq!(backend(&db), Backend::Sqlite);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dumps")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert!(dir.path().join(DB_FILE).is_file());
    }

    #[tokio::test]
    async fn other_url_schemes_are_refused_without_their_password() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path(), Some("mysql://u:hunter2@h/db"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("only postgres://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn rfc3339_known_instants() {
        // Values from `date -u -d @N +%FT%TZ`.
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_632_074), "2026-11-25T18:41:14Z");
    }
}
