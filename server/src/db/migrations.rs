//! The SQL migrations of `migrations/` (repository root), embedded in the binary so a fresh
//! data directory needs no set-up.
//!
//! Listed by hand rather than with `sqlx::migrate!`, which needs sqlx's proc-macro crate (a
//! second sqlx-core build for the host, minutes of CI on 2 cores). The unit test below fails
//! when a file in `migrations/` is missing from [`EMBEDDED`], so the list cannot drift.

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// (file name, contents), in version order. File names are `<version>_<description>.sql`.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "0001_dumps_jobs.sql",
        include_str!("../../../migrations/0001_dumps_jobs.sql"),
    ),
    (
        "0002_tokens.sql",
        include_str!("../../../migrations/0002_tokens.sql"),
    ),
    (
        "0003_uploads.sql",
        include_str!("../../../migrations/0003_uploads.sql"),
    ),
    (
        "0004_report_index.sql",
        include_str!("../../../migrations/0004_report_index.sql"),
    ),
    (
        "0005_search_indexes.sql",
        include_str!("../../../migrations/0005_search_indexes.sql"),
    ),
    (
        "0006_vendor_symbols.sql",
        include_str!("../../../migrations/0006_vendor_symbols.sql"),
    ),
    (
        "0007_systems.sql",
        include_str!("../../../migrations/0007_systems.sql"),
    ),
    (
        "0008_problems.sql",
        include_str!("../../../migrations/0008_problems.sql"),
    ),
    (
        "0009_problem_facets_events.sql",
        include_str!("../../../migrations/0009_problem_facets_events.sql"),
    ),
    (
        "0010_crash_module.sql",
        include_str!("../../../migrations/0010_crash_module.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

type BoxDynError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move { migrations().map_err(|e| e.into()) })
    }
}

fn migrations() -> Result<Vec<Migration>, String> {
    EMBEDDED
        .iter()
        .map(|(name, sql)| {
            let stem = name
                .strip_suffix(".sql")
                .ok_or_else(|| format!("migration {name}: not a .sql file"))?;
            let (version, description) = stem
                .split_once('_')
                .ok_or_else(|| format!("migration {name}: no version prefix"))?;
            let version: i64 = version
                .parse()
                .map_err(|_| format!("migration {name}: bad version"))?;
            Ok(Migration::new(
                version,
                Cow::Owned(description.replace('_', " ")),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            ))
        })
        .collect()
}

pub async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, embedded);
        for (name, sql) in EMBEDDED {
            assert_eq!(
                std::fs::read_to_string(format!("{dir}/{name}")).unwrap(),
                *sql
            );
        }
        assert!(migrations().is_ok());
    }
}
