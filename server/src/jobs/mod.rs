//! Worker tasks: take jobs from the durable queue in the database, analyse in a child process
//! ([`runner`]), record the stage, store the report, retry transient failures with backoff, and
//! fail for good, with the reason, a dump that breaks the analyzer.

pub mod runner;
pub mod scrub;

use crate::config::JobLimits;
use crate::db::{self, jobs, Db};
use crate::storage::Storage;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often an idle worker looks for a job.
const POLL: Duration = Duration::from_millis(250);
/// A stage the analyzer announces is written at most this often (else with the next heartbeat).
const STAGE_WRITE_INTERVAL: Duration = Duration::from_secs(1);
/// The stage recorded from the start of the child until it announces one.
const CHILD_STAGE: &str = "analyzing";

#[derive(Clone)]
pub struct WorkerContext {
    pub db: Db,
    pub storage: Storage,
    pub limits: JobLimits,
    /// Working directory of the analyzer children.
    pub work_dir: PathBuf,
    /// Analyzer program; None = this executable.
    pub analyzer: Option<PathBuf>,
    /// Symbol settings handed to every analysis.
    pub symbols: crate::config::SymbolConfig,
}

/// Starts `count` workers and the lease reaper; they stop when `shutdown` turns true.
pub fn start(
    ctx: WorkerContext,
    count: usize,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let mut handles: Vec<JoinHandle<()>> = (0..count)
        .map(|i| {
            let owner = format!("{}-{i}", instance.get(..12).unwrap_or(&instance));
            tokio::spawn(worker(ctx.clone(), owner, shutdown.clone()))
        })
        .collect();
    handles.push(tokio::spawn(reaper(ctx, shutdown)));
    handles
}

/// Returns expired leases to the queue, now and then every half lease.
async fn reaper(ctx: WorkerContext, mut shutdown: watch::Receiver<bool>) {
    let every = (ctx.limits.lease / 2).max(Duration::from_secs(1));
    loop {
        match jobs::recover_expired(&ctx.db, db::now_unix(), i64::from(ctx.limits.max_attempts))
            .await
        {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::info!(requeued, failed, "expired job leases recovered")
            }
            Err(e) => tracing::error!("lease recovery: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn worker(ctx: WorkerContext, owner: String, mut shutdown: watch::Receiver<bool>) {
    let lease = ctx.limits.lease.as_secs() as i64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let claimed = match jobs::claim(&ctx.db, &owner, db::now_unix(), lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("claiming a job: {e}");
                None
            }
        };
        let Some(job) = claimed else {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        tracing::info!(job = %job.id, sha256 = %job.sha256, attempt = job.attempts, "analysis started");
        if let Err(e) = run_one(&ctx, &owner, &job, &mut shutdown).await {
            tracing::error!(job = %job.id, "recording the job's result: {e}");
        }
    }
}

/// Runs one claimed job to an outcome, heartbeating the lease meanwhile.
async fn run_one(
    ctx: &WorkerContext,
    owner: &str,
    job: &jobs::Claimed,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), sqlx::Error> {
    let lease = ctx.limits.lease.as_secs() as i64;
    let now = db::now_unix;
    let dump = ctx.storage.dump_path(&job.content);
    if !dump.is_file() {
        jobs::fail(
            &ctx.db,
            job,
            owner,
            "analyzing",
            "the dump file is missing from storage",
            now(),
        )
        .await?;
        return Ok(());
    }
    if !jobs::heartbeat(&ctx.db, &job.id, owner, CHILD_STAGE, now(), lease).await? {
        return Ok(());
    }
    // Relative to the child's working directory (the data directory): the report names the
    // dump by its content, not by a server path.
    let shown = dump.strip_prefix(&ctx.work_dir).unwrap_or(&dump);
    let scrub = scrub::Scrubber::new(&ctx.work_dir, shown, &ctx.symbols);
    let (stage_tx, mut stage_rx) = watch::channel(CHILD_STAGE.to_string());
    // A tenant's own analysis searches its uploaded symbols first (when it has a store).
    let vendor_store = job
        .tenant
        .as_deref()
        .map(crate::vendor_symbols::store::relative_dir)
        .filter(|rel| ctx.work_dir.join(rel).is_dir());
    let analysis = runner::analyze(
        runner::ChildSpec {
            program: ctx.analyzer.as_deref(),
            dump: shown,
            work_dir: &ctx.work_dir,
            timeout: ctx.limits.timeout,
            memory_bytes: ctx.limits.memory_bytes,
            symbols: &ctx.symbols,
            vendor_store: vendor_store.as_deref(),
        },
        stage_tx,
    );
    tokio::pin!(analysis);
    let beat = (ctx.limits.lease / 3).max(Duration::from_millis(500));
    // The stage rides on the heartbeat: a new stage is written at most once per
    // STAGE_WRITE_INTERVAL, else the lease is renewed every `beat` with the current stage.
    let mut written = CHILD_STAGE.to_string();
    let mut last_write = tokio::time::Instant::now();
    let mut stages_open = true;
    let outcome = loop {
        let current = stage_rx.borrow().clone();
        let due = if current != written {
            last_write + STAGE_WRITE_INTERVAL
        } else {
            last_write + beat
        };
        tokio::select! {
            o = &mut analysis => break o,
            _ = tokio::time::sleep_until(due) => {
                last_write = tokio::time::Instant::now();
                match jobs::heartbeat(&ctx.db, &job.id, owner, &current, now(), lease).await {
                    // Deleted, or taken over after our lease expired: drop (and kill) the child.
                    Ok(false) => { tracing::warn!(job = %job.id, "job no longer ours; analysis abandoned"); return Ok(()); }
                    Ok(true) => written = current,
                    Err(e) => tracing::error!(job = %job.id, "heartbeat: {e}"),
                }
            }
            changed = stage_rx.changed(), if stages_open => {
                // The sender is gone once the child's stderr closed; the loop goes on until
                // the analysis future finishes.
                if changed.is_err() {
                    stages_open = false;
                }
            }
            _ = shutdown.changed() => {
                // Server stopping: the child is killed on drop; the job goes back to the queue
                // without spending an attempt.
                jobs::requeue(&ctx.db, job, owner, "server shut down during analysis", 0, true, now()).await?;
                return Ok(());
            }
        }
    };
    // The stage a failed analysis stopped in.
    let last_stage = stage_rx.borrow().clone();
    let outcome = match outcome {
        runner::Outcome::Report(json) => runner::Outcome::Report(scrub_report(&scrub, json)),
        runner::Outcome::Broken(r) => runner::Outcome::Broken(scrub.text(&r)),
        runner::Outcome::Transient(r) => runner::Outcome::Transient(scrub.text(&r)),
        runner::Outcome::Killed(r) => runner::Outcome::Killed(scrub.text(&r)),
    };
    match outcome {
        runner::Outcome::Report(json) => {
            jobs::heartbeat(&ctx.db, &job.id, owner, "storing", now(), lease).await?;
            let stored = jobs::complete(&ctx.db, job, owner, &json, now()).await?;
            // Search and per-driver statistics read the report index. A failure here only
            // delays them: the start-up backfill indexes every report without a summary.
            if stored {
                if let Err(e) = db::report_index::index(&ctx.db, &job.sha256, &json, now()).await {
                    tracing::error!(job = %job.id, "indexing the report: {e}");
                }
                // Symbol files that arrived while it ran may name its modules: analyse again.
                if let Err(e) =
                    crate::vendor_symbols::requeue::after_analysis(&ctx.db, job, now()).await
                {
                    tracing::error!(job = %job.id, "re-analysis check: {e}");
                }
            }
            tracing::info!(job = %job.id, "analysis done");
        }
        runner::Outcome::Broken(reason) => {
            tracing::warn!(job = %job.id, "analysis failed: {reason}");
            jobs::fail(&ctx.db, job, owner, &last_stage, &reason, now()).await?;
        }
        // A second kill by a signal is no accident: the dump is what kills the analyzer.
        runner::Outcome::Killed(reason) if job.attempts >= 2 => {
            let reason = format!("{reason} (twice)");
            tracing::warn!(job = %job.id, "analysis failed: {reason}");
            jobs::fail(&ctx.db, job, owner, &last_stage, &reason, now()).await?;
        }
        runner::Outcome::Transient(reason) | runner::Outcome::Killed(reason)
            if job.attempts >= i64::from(ctx.limits.max_attempts) =>
        {
            let reason = format!("{reason} (after {} attempts)", job.attempts);
            tracing::warn!(job = %job.id, "analysis failed: {reason}");
            jobs::fail(&ctx.db, job, owner, &last_stage, &reason, now()).await?;
        }
        runner::Outcome::Transient(reason) | runner::Outcome::Killed(reason) => {
            // Backoff: 2, 4, 8... seconds.
            let delay = 1i64 << job.attempts.clamp(1, 10);
            tracing::warn!(job = %job.id, "analysis attempt {} failed, retrying in {delay} s: {reason}", job.attempts);
            jobs::requeue(&ctx.db, job, owner, &reason, now() + delay, false, now()).await?;
        }
    }
    Ok(())
}

/// The report with server paths removed ([`scrub`]); a report that does not parse is kept as
/// it is (the runner has checked it is JSON).
fn scrub_report(scrub: &scrub::Scrubber, json: String) -> String {
    if !scrub.mentioned_in(&json) {
        return json;
    }
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(mut v) => {
            scrub.json(&mut v);
            serde_json::to_string(&v).unwrap_or(json)
        }
        Err(_) => json,
    }
}
