//! Adding an upload to a tenant's store and removing a file from it, as the API and the
//! portal do: the sandboxed ingest child, then the files moved into place, recorded, and the
//! tenant's matching dumps queued again.

use super::ingest::{EntryStatus, IngestLimits, IngestOutput, IngestedFile};
use super::receive::Received;
use super::requeue::{keys_of, requeue_matching, Requeued};
use crate::db::report_modules::pdb_key;
use crate::db::symbol_files::{self, NewSymbolFile, SymbolFileRow};
use crate::db::Db;
use crate::jobs::runner::{self, Outcome};
use analyzer::report::symbol_file::SymbolFileReport;
use analyzer::symbols::store::add::AddOutcome;
use analyzer::symbols::store::SymbolKey;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Most files of one archive.
const MAX_FILES: usize = 10_000;

/// Settings and the child slots of symbol uploads (one per worker: ingests are analyses' kin).
#[derive(Clone)]
pub struct SymbolService {
    data_dir: PathBuf,
    program: Option<PathBuf>,
    timeout: Duration,
    memory_bytes: u64,
    limits: IngestLimits,
    max_upload_bytes: u64,
    slots: Arc<Semaphore>,
}

/// How one file of an upload fared.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// Its name in the archive, or the upload's name.
    pub entry: String,
    /// "added" | "duplicate" | "conflict" | "refused" | "skipped".
    pub status: &'static str,
    /// The file's id in the store (added, duplicate).
    pub id: Option<String>,
    pub error: Option<String>,
    /// What it is, read from its content.
    pub identity: Option<SymbolFileReport>,
}

/// What an upload did.
#[derive(Debug, Clone, Serialize)]
pub struct AddReport {
    pub files: Vec<FileResult>,
    #[serde(flatten)]
    pub requeued: Requeued,
}

impl AddReport {
    pub fn count(&self, status: &str) -> usize {
        self.files.iter().filter(|f| f.status == status).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The upload as a whole cannot be read (a broken zip, the sandbox's limits).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
}

impl SymbolService {
    pub fn new(config: &crate::config::Config) -> SymbolService {
        let max = config.limits.max_symbol_bytes;
        SymbolService {
            data_dir: config.data_dir.clone(),
            program: config.analyzer.clone(),
            timeout: config.job.timeout,
            memory_bytes: config.job.memory_bytes,
            limits: IngestLimits {
                max_file_bytes: max,
                max_files: MAX_FILES,
                max_total_bytes: max.saturating_mul(4),
                max_ratio: config.limits.max_ratio,
                ratio_floor_bytes: config.limits.ratio_floor_bytes,
            },
            max_upload_bytes: max,
            slots: Arc::new(Semaphore::new(config.workers)),
        }
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// Adds an upload to `tenant`'s store.
    pub async fn add(
        &self,
        db: &Db,
        tmp_dir: &Path,
        tenant: &str,
        upload: Received,
        name: Option<String>,
    ) -> Result<AddReport, AddError> {
        tracing::info!(tenant, bytes = upload.size, "symbol upload received");
        let out = tmp_dir.join(format!("symbols-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&out).map_err(|e| AddError::Internal(e.to_string()))?;
        let result = self.ingest_and_place(db, &out, tenant, &upload, name).await;
        let _ = tokio::fs::remove_dir_all(&out).await;
        drop(upload);
        let files = result?;
        let added: Vec<SymbolFileRow> = files.1;
        let now = crate::db::now_unix();
        let keys = keys_of(db, tenant, &added).await.map_err(internal)?;
        let requeued = requeue_matching(db, tenant, &keys, None, now)
            .await
            .map_err(internal)?;
        Ok(AddReport {
            files: files.0,
            requeued,
        })
    }

    async fn ingest_and_place(
        &self,
        db: &Db,
        out: &Path,
        tenant: &str,
        upload: &Received,
        name: Option<String>,
    ) -> Result<(Vec<FileResult>, Vec<SymbolFileRow>), AddError> {
        let output = self.ingest(upload, out, name.as_deref()).await?;
        let mut results = Vec::new();
        let mut added = Vec::new();
        for f in output.files {
            let (r, row) = self.place_one(db, out, tenant, f).await?;
            results.push(r);
            added.extend(row);
        }
        Ok((results, added))
    }

    /// Runs the sandboxed child on the upload.
    async fn ingest(
        &self,
        upload: &Received,
        out: &Path,
        name: Option<&str>,
    ) -> Result<IngestOutput, AddError> {
        let _slot = self.slots.acquire().await.map_err(internal)?;
        let outcome = runner::ingest_symbols(runner::IngestSpec {
            program: self.program.as_deref(),
            upload: upload.file.path(),
            out,
            name,
            limits: self.limits,
            work_dir: &self.data_dir,
            timeout: self.timeout,
            memory_bytes: self.memory_bytes,
        })
        .await;
        match outcome {
            Outcome::Report(json) => serde_json::from_str(&json)
                .map_err(|e| AddError::Internal(format!("the symbol reader's answer: {e}"))),
            Outcome::Broken(r) | Outcome::Killed(r) => Err(AddError::Refused(r)),
            Outcome::Transient(r) => Err(AddError::Internal(r)),
        }
    }

    /// Moves one identified file into the store and records it.
    async fn place_one(
        &self,
        db: &Db,
        out: &Path,
        tenant: &str,
        f: IngestedFile,
    ) -> Result<(FileResult, Option<SymbolFileRow>), AddError> {
        let mut r = FileResult {
            entry: f.entry.clone(),
            status: "refused",
            id: None,
            error: f.error.clone(),
            identity: f.identity.clone(),
        };
        match f.status {
            EntryStatus::Skipped => r.status = "skipped",
            EntryStatus::Refused => {}
            EntryStatus::Ok => match checked(&f, out) {
                Err(why) => r.error = Some(why),
                Ok(accepted) => return self.record(db, tenant, &f, accepted, r).await,
            },
        }
        Ok((r, None))
    }

    async fn record(
        &self,
        db: &Db,
        tenant: &str,
        f: &IngestedFile,
        accepted: Accepted,
        mut r: FileResult,
    ) -> Result<(FileResult, Option<SymbolFileRow>), AddError> {
        let Accepted { key, src, id } = accepted;
        let (data_dir, t, k) = (self.data_dir.clone(), tenant.to_string(), key.clone());
        let placed =
            tokio::task::spawn_blocking(move || super::store::place(&data_dir, &t, &k, &src))
                .await
                .map_err(internal)?
                .map_err(|e| AddError::Internal(format!("the tenant's symbol store: {e}")))?;
        if let AddOutcome::Conflict(_) = placed {
            r.status = "conflict";
            r.error = Some("a different file is already stored under this name and key".into());
            return Ok((r, None));
        }
        let pdb = pdb_key_of(&id);
        let new = NewSymbolFile {
            tenant,
            kind: key.kind(),
            name: key.name(),
            key: &id.key,
            pdb_key: pdb.as_deref(),
            sha256: f.sha256.as_deref().unwrap_or_default(),
            size: f.size,
            functions: id.pdb.as_ref().map(|p| p.functions),
            line_ranges: id.pdb.as_ref().map(|p| p.line_ranges),
            original_name: Some(&f.entry),
        };
        let (file_id, new_row) = symbol_files::insert(db, &new, crate::db::now_unix())
            .await
            .map_err(internal)?;
        r.id = Some(file_id.clone());
        let is_new = matches!(placed, AddOutcome::Added(_)) || new_row;
        r.status = if is_new { "added" } else { "duplicate" };
        let row = if is_new {
            symbol_files::get(db, &file_id, Some(tenant))
                .await
                .map_err(internal)?
        } else {
            None
        };
        Ok((r, row))
    }

    /// Removes a file from its tenant's store and queues the dumps it named again. `None` when
    /// there is no such file the caller may see.
    pub async fn delete(
        &self,
        db: &Db,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<(SymbolFileRow, Requeued)>, AddError> {
        let Some(row) = symbol_files::delete(db, id, tenant)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let (data_dir, r) = (self.data_dir.clone(), row.clone());
        tokio::task::spawn_blocking(move || {
            super::store::remove(&data_dir, &r.tenant, &r.name, &r.key)
        })
        .await
        .map_err(internal)?
        .map_err(|e| AddError::Internal(format!("the tenant's symbol store: {e}")))?;
        let keys = keys_of(db, &row.tenant, std::slice::from_ref(&row))
            .await
            .map_err(internal)?;
        let requeued = requeue_matching(db, &row.tenant, &keys, None, crate::db::now_unix())
            .await
            .map_err(internal)?;
        Ok(Some((row, requeued)))
    }
}

fn internal(e: impl std::fmt::Display) -> AddError {
    AddError::Internal(e.to_string())
}

/// A file the child identified, with its store key and its place in the output directory.
struct Accepted {
    key: SymbolKey,
    src: PathBuf,
    id: SymbolFileReport,
}

/// The child's answer for one file, re-checked before it becomes a path: the child parsed
/// hostile bytes, so its output is not trusted further than its shape.
fn checked(f: &IngestedFile, out: &Path) -> Result<Accepted, String> {
    let bad = |what: &str| format!("the symbol reader's answer is malformed ({what})");
    let id = f.identity.clone().ok_or_else(|| bad("no identity"))?;
    let file = f.file.as_deref().ok_or_else(|| bad("no file"))?;
    if file.is_empty() || !file.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("file name"));
    }
    let key = match (id.kind.as_str(), &id.pdb, &id.pe) {
        ("pdb", Some(p), _) => SymbolKey::pdb(id.name.as_str(), &p.guid, p.age),
        ("pe", _, Some(pe)) => {
            let ts = u32::try_from(pe.timestamp.0).map_err(|_| bad("timestamp"))?;
            let size = u32::try_from(pe.size_of_image).map_err(|_| bad("size"))?;
            SymbolKey::pe(id.name.as_str(), ts, size)
        }
        _ => return Err(bad("kind")),
    };
    key.validate().map_err(|e| e.to_string())?;
    if key.id() != id.key {
        return Err(bad("key"));
    }
    Ok(Accepted {
        key,
        src: out.join(file),
        id,
    })
}

/// The PDB a file is or names, as `report_modules.pdb_key` spells it.
fn pdb_key_of(id: &SymbolFileReport) -> Option<String> {
    match (&id.pdb, &id.pe) {
        (Some(p), _) => Some(pdb_key(&id.name, &p.guid, p.age)),
        (_, Some(pe)) => pe
            .codeview
            .as_ref()
            .map(|cv| pdb_key(&cv.name, &cv.guid, cv.age)),
        _ => None,
    }
}
