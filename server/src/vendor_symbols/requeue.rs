//! Re-analysis when a tenant's store changes: the tenant's dumps whose reports name a module
//! with the key of a file added (or removed) are analysed again, in the tenant's own analysis
//! (`<sha256>@<tenant>`, which searches its store first).
//!
//! Matching reads the report index (`report_modules`): an image matches a module by its image
//! key (`name/TIMESTAMPsize`, which even a triage dump's module list holds); a PDB by its PDB
//! key (from the dump's PE headers, or the image the earlier analysis fetched), and also
//! through the tenant's images whose CodeView record names it. A dump whose analysis is
//! running when the file arrives is checked again when that analysis ends
//! ([`after_analysis`]). A dump whose file retention deleted cannot be analysed again: it is
//! listed as not re-queued, with the reason.

use crate::db::dumps::{analysis_key, drop_unused_analysis, queue_analysis};
use crate::db::symbol_files::{self, SymbolFileRow};
use crate::db::Db;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeSet;

/// What a change of a tenant's store did to its dumps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requeued {
    /// Dumps queued for analysis again.
    pub requeued: Vec<DumpRef>,
    /// Dumps that match but were not queued, each with the reason.
    pub not_requeued: Vec<NotRequeued>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpRef {
    pub id: String,
    pub original_name: Option<String>,
    pub status_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRequeued {
    pub id: String,
    pub reason: String,
}

/// A dump that matched.
struct Match {
    id: String,
    sha256: String,
    analysis: String,
    original_name: Option<String>,
    file_deleted: bool,
}

/// The keys reports are matched on for these files of `tenant`'s store.
pub async fn keys_of(
    db: &Db,
    tenant: &str,
    files: &[SymbolFileRow],
) -> Result<BTreeSet<String>, sqlx::Error> {
    let mut keys = BTreeSet::new();
    for f in files {
        match (f.kind.as_str(), &f.pdb_key) {
            ("pdb", Some(pdb)) => {
                keys.insert(pdb.clone());
                keys.extend(symbol_files::images_naming(db, tenant, pdb).await?);
            }
            _ => {
                keys.insert(f.store_key.clone());
            }
        }
    }
    Ok(keys)
}

/// Re-queues `tenant`'s dumps whose reports name a module with one of `keys` (only those of
/// analysis `only` when given).
pub async fn requeue_matching(
    db: &Db,
    tenant: &str,
    keys: &BTreeSet<String>,
    only: Option<&str>,
    now: i64,
) -> Result<Requeued, sqlx::Error> {
    let mut out = Requeued::default();
    let mut seen = BTreeSet::new();
    for key in keys {
        for m in matching(db, tenant, key, only).await? {
            if !seen.insert(m.id.clone()) {
                continue;
            }
            if m.file_deleted {
                out.not_requeued.push(NotRequeued {
                    id: m.id,
                    reason: "dump file deleted by retention".into(),
                });
                continue;
            }
            requeue_one(db, tenant, &m, now).await?;
            out.requeued.push(DumpRef {
                status_url: format!("/api/v1/dumps/{}", m.id),
                id: m.id,
                original_name: m.original_name,
            });
        }
    }
    Ok(out)
}

async fn matching(
    db: &Db,
    tenant: &str,
    key: &str,
    only: Option<&str>,
) -> Result<Vec<Match>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT d.id, d.sha256, d.analysis, d.original_name, \
             CAST(CASE WHEN fd.sha256 IS NULL THEN 0 ELSE 1 END AS BIGINT) AS deleted \
         FROM dumps d JOIN report_modules m ON m.sha256 = d.analysis \
         LEFT JOIN dump_files_deleted fd ON fd.sha256 = d.sha256 \
         WHERE d.tenant = $1 AND (m.image_key = $2 OR m.pdb_key = $2) \
           AND ($3 IS NULL OR d.analysis = $3) \
         ORDER BY d.id",
    )
    .bind(tenant)
    .bind(key)
    .bind(only)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let deleted: i64 = r.try_get("deleted")?;
            Ok(Match {
                id: r.try_get("id")?,
                sha256: r.try_get("sha256")?,
                analysis: r.try_get("analysis")?,
                original_name: r.try_get("original_name")?,
                file_deleted: deleted != 0,
            })
        })
        .collect()
}

/// Moves the dump to the tenant's own analysis (leaving the shared one to the others) and
/// queues that analysis again unless it is queued or running.
async fn requeue_one(db: &Db, tenant: &str, m: &Match, now: i64) -> Result<(), sqlx::Error> {
    let own = analysis_key(&m.sha256, tenant, true);
    let mut tx = db.begin().await?;
    if m.analysis != own {
        sqlx::query("UPDATE dumps SET analysis = $1 WHERE id = $2")
            .bind(&own)
            .bind(&m.id)
            .execute(&mut *tx)
            .await?;
        queue_analysis(&mut tx, &own, &m.sha256, tenant, now).await?;
        drop_unused_analysis(&mut tx, &m.analysis).await?;
    }
    sqlx::query(
        "UPDATE jobs SET state = 'queued', stage = 'queued', attempts = 0, error = NULL, \
             not_before = 0, lease_owner = NULL, lease_expires = NULL, updated_at = $1, \
             finished_at = NULL \
         WHERE sha256 = $2 AND state IN ('done', 'failed')",
    )
    .bind(now)
    .bind(&own)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// After analysis `job` stored its report: files its tenants added since it was claimed may
/// name its modules (it may not have seen them), so its dumps that match are queued again.
pub async fn after_analysis(
    db: &Db,
    job: &crate::db::jobs::Claimed,
    now: i64,
) -> Result<(), sqlx::Error> {
    let added = symbol_files::added_since_for_analysis(db, &job.sha256, job.claimed_at).await?;
    let tenants: BTreeSet<&str> = added.iter().map(|f| f.tenant.as_str()).collect();
    for tenant in tenants {
        let files: Vec<SymbolFileRow> = added
            .iter()
            .filter(|f| f.tenant == tenant)
            .cloned()
            .collect();
        let keys = keys_of(db, tenant, &files).await?;
        let r = requeue_matching(db, tenant, &keys, Some(&job.sha256), now).await?;
        if !r.requeued.is_empty() {
            tracing::info!(job = %job.id, tenant, dumps = r.requeued.len(),
                "symbol files arrived during the analysis: queued again");
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "requeue_tests.rs"]
mod tests;
