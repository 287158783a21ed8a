//! Webhooks: a signed POST to a URL when a dump's report is ready or its analysis failed.
//!
//! Flow (durable: every step is a database row, so a restart loses nothing):
//! 1. at upload, `crate::http::hooks::after_upload` records one `waiting` delivery per target: the upload's own
//!    `webhook_url` (checked against the allow-list, see [`policy`]), the tenant's default and
//!    the server-wide default (each URL once);
//! 2. the dispatcher ([`start`]) polls: a waiting delivery whose job is done or failed gets its
//!    event body frozen (`pending`);
//! 3. pending deliveries are POSTed (signed, see [`sign`]) with a time limit; a 2xx answer
//!    ends them, anything else (error status, redirect, timeout, refused connection) is retried
//!    after `retry_base × 2^(attempt-1)` (capped at an hour) until `max_attempts`.
//!
//! Event body: `{event: "report.ready"|"dump.failed", delivery, id, status, sha256, verdict?,
//! error?, report_url, page_url, status_url}`; headers `X-Pooltriage-Event`,
//! `X-Pooltriage-Delivery`, `X-Pooltriage-Signature: sha256=<hex>`.
//!
//! Problem events (`problem.updated`, [`problem_event`]) go to the server-wide default only: a
//! problem groups dumps of several tenants, and its workflow (assignee, who changed it) is
//! support's, so neither a tenant's default webhook nor an upload's own URL receives them.

pub mod policy;
pub mod send;
pub mod sign;

use crate::config::WebhookConfig;
use crate::db::{self, stats, webhooks as store, Db};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the dispatcher looks for work.
const POLL: Duration = Duration::from_millis(500);
/// Deliveries sent concurrently (a slow receiver does not hold up the others).
const CONCURRENCY: usize = 4;
/// Longest retry delay.
const MAX_BACKOFF_SECS: u64 = 3600;
/// File of the generated signing key, in the data directory.
pub const SECRET_FILE: &str = "webhook_secret";

/// What the upload handler and the dispatcher need.
#[derive(Clone, Debug)]
pub struct Webhooks {
    pub config: Arc<WebhookConfig>,
    secret: Arc<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("webhook secret file {path}: {source}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error("webhook secret: no randomness: {0}")]
    Random(String),
    #[error("configured webhook {which}: {error}")]
    Url {
        which: String,
        error: policy::UrlError,
    },
}

impl Webhooks {
    /// Checks the configured default URLs and loads (or makes) the signing key.
    pub fn new(config: WebhookConfig, data_dir: &Path) -> Result<Webhooks, SetupError> {
        if let Some(u) = &config.default_url {
            policy::parse(u).map_err(|error| SetupError::Url {
                which: "webhook_url".into(),
                error,
            })?;
        }
        for (tenant, u) in &config.tenant_urls {
            policy::parse(u).map_err(|error| SetupError::Url {
                which: format!("webhook_tenant_urls.{tenant}"),
                error,
            })?;
        }
        let secret = match &config.secret {
            Some(s) => s.as_bytes().to_vec(),
            None => load_or_make_secret(&data_dir.join(SECRET_FILE))?,
        };
        Ok(Webhooks {
            config: Arc::new(config),
            secret: Arc::new(secret),
        })
    }

    /// The delivery targets of an upload: its own URL (already checked), the tenant's
    /// default, the server-wide default; each URL once.
    pub fn targets(&self, tenant: &str, own: Option<&str>) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let candidates = [
            own.map(str::to_string),
            self.config.tenant_urls.get(tenant).cloned(),
            self.config.default_url.clone(),
        ];
        for u in candidates.into_iter().flatten() {
            if !v.contains(&u) {
                v.push(u);
            }
        }
        v
    }
}

impl Webhooks {
    /// The targets of a problem event: the server-wide default webhook only (the operator's,
    /// which already receives every tenant's dump events).
    pub fn problem_targets(&self) -> Vec<String> {
        self.config.default_url.iter().cloned().collect()
    }
}

/// What a workflow change event tells: the problem, the fields before and after, who.
pub struct ProblemChange<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub kind: &'a str,
    pub old: &'a db::problems::Workflow,
    pub new: &'a db::problems::Workflow,
    /// Every tenant's dumps and customers (the receiver is the operator's).
    pub dumps: i64,
    pub customers: i64,
    pub actor: &'a str,
    pub at: i64,
}

/// The names of the workflow fields a change alters, in a fixed order.
pub fn changed_fields(
    old: &db::problems::Workflow,
    new: &db::problems::Workflow,
) -> Vec<&'static str> {
    let pairs = [
        ("status", old.status.as_str() != new.status.as_str()),
        ("fixed_in", old.fixed_in != new.fixed_in),
        ("assignee", old.assignee != new.assignee),
        ("ticket_url", old.ticket_url != new.ticket_url),
    ];
    pairs.iter().filter(|(_, c)| *c).map(|(f, _)| *f).collect()
}

/// The `problem.updated` deliveries of a change, one per target (none when nothing changed
/// or no server-wide webhook is configured).
pub fn problem_event(hooks: &Webhooks, c: &ProblemChange<'_>) -> Vec<store::NewProblemEvent> {
    let changed = changed_fields(c.old, c.new);
    if changed.is_empty() {
        return Vec::new();
    }
    hooks
        .problem_targets()
        .into_iter()
        .map(|url| {
            let delivery = uuid::Uuid::new_v4().simple().to_string();
            let body = json!({
                "event": "problem.updated",
                "delivery": delivery,
                "id": c.id,
                "title": c.title,
                "kind": c.kind,
                "changed": changed,
                "status": c.new.status,
                "previous_status": c.old.status,
                "fixed_in": c.new.fixed_in,
                "assignee": c.new.assignee,
                "previous_assignee": c.old.assignee,
                "ticket_url": c.new.ticket_url,
                "actor": c.actor,
                "at": db::rfc3339(c.at),
                "dumps": c.dumps,
                "customers": c.customers,
                "page_url": link(hooks, &format!("/problems/{}", c.id)),
                "problem_url": link(hooks, &format!("/api/v1/problems/{}", c.id)),
            });
            store::NewProblemEvent {
                id: delivery,
                url,
                event: "problem.updated",
                body: body.to_string(),
            }
        })
        .collect()
}

/// Reads the key file, or writes a new random key (64 hex characters, mode 0600) the first
/// time, so that signatures work with no set-up and the operator can read the key to give it
/// to receivers.
fn load_or_make_secret(path: &Path) -> Result<Vec<u8>, SetupError> {
    let err = |source| SetupError::Secret {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| SetupError::Random(e.to_string()))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Several instances may share the data directory (PostgreSQL scale-out) and start
    // together. The key is written to a file of our own, then hard-linked into place: that
    // succeeds for exactly one instance, and the others read the winner's complete key (a
    // plain create_new would let them fail, or read a half-written file).
    let own = path.with_extension(format!("new-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&own)?;
        f.write_all(hex.as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&own, path)
    })();
    let _ = std::fs::remove_file(&own);
    match written {
        Ok(()) => Ok(hex.into_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = std::fs::read_to_string(path).map_err(err)?;
            if s.trim().is_empty() {
                return Err(err(std::io::Error::other("the key file is empty")));
            }
            Ok(s.trim().as_bytes().to_vec())
        }
        Err(e) => Err(err(e)),
    }
}

/// Starts the dispatcher; it stops when `shutdown` turns true.
pub fn start(db: Db, hooks: Webhooks, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = promote(&db, &hooks).await {
                tracing::error!("webhooks: preparing events: {e}");
            }
            if let Err(e) = send_due(&db, &hooks).await {
                tracing::error!("webhooks: sending: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    })
}

fn link(hooks: &Webhooks, path: &str) -> String {
    match &hooks.config.public_url {
        Some(base) => format!("{base}{path}"),
        None => path.to_string(),
    }
}

/// The event body of a finished dump.
pub fn event_body(
    hooks: &Webhooks,
    delivery: &str,
    item: &stats::DumpItem,
) -> (&'static str, String) {
    let d = &item.dump;
    let event = if d.state == "done" {
        "report.ready"
    } else {
        "dump.failed"
    };
    let mut v = json!({
        "event": event,
        "delivery": delivery,
        "id": d.id,
        "status": d.state,
        "sha256": d.sha256,
        "report_url": link(hooks, &format!("/api/v1/dumps/{}/report", d.id)),
        "page_url": link(hooks, &format!("/dumps/{}", d.id)),
        "status_url": link(hooks, &format!("/api/v1/dumps/{}", d.id)),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(s) = item.summary.as_ref().filter(|s| s.verdict_kind.is_some()) {
            obj.insert(
                "verdict".into(),
                json!({
                    "kind": s.verdict_kind,
                    "sentence": s.verdict_sentence,
                    "drivers": s.verdict_drivers,
                    "pool": s.verdict_pool,
                    "bytes": s.verdict_bytes,
                }),
            );
        }
        if event == "dump.failed" {
            obj.insert("error".into(), json!(d.error));
        }
    }
    (event, v.to_string())
}

/// Freezes the bodies of waiting deliveries whose dump's analysis ended.
async fn promote(db: &Db, hooks: &Webhooks) -> Result<(), sqlx::Error> {
    for r in store::ready(db, 100).await? {
        // get_dump indexes a report the worker stored but did not index yet, so the event
        // carries the verdict.
        let item = stats::get_dump(db, &r.dump_id, None).await?;
        // The dump was deleted meanwhile: its deliveries went with it (cascade).
        let Some(item) = item else { continue };
        let (event, body) = event_body(hooks, &r.id, &item);
        store::make_pending(db, &r.id, event, &body, db::now_unix()).await?;
    }
    Ok(())
}

/// Sends every due delivery, a few at a time.
async fn send_due(db: &Db, hooks: &Webhooks) -> Result<(), sqlx::Error> {
    let timeout = hooks.config.timeout;
    // The lease outlives the request: a server killed mid-request retries after it.
    let lease = timeout.as_secs() as i64 + 30;
    loop {
        let mut batch = Vec::new();
        for outbox in store::Outbox::ALL {
            while batch.len() < CONCURRENCY {
                match store::claim_due(db, outbox, db::now_unix(), lease).await? {
                    Some(d) => batch.push(d),
                    None => break,
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut set = tokio::task::JoinSet::new();
        for due in batch {
            let secret = hooks.secret.clone();
            set.spawn_blocking(move || {
                let result = send::post(&due, &secret, timeout);
                (due, result)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((due, result)) = joined else { continue };
            let now = db::now_unix();
            match result {
                Ok(status) => {
                    tracing::info!(delivery = %due.id, status, "webhook delivered");
                    store::record(db, due.outbox, &due.id, true, Some(status), None, None, now)
                        .await?;
                }
                Err(fail) => {
                    let retry_at =
                        (due.attempts < i64::from(hooks.config.max_attempts)).then(|| {
                            let base = hooks.config.retry_base.as_secs();
                            let exp = (due.attempts - 1).clamp(0, 20) as u32;
                            let delay = base.saturating_mul(1u64 << exp).min(MAX_BACKOFF_SECS);
                            now + delay as i64
                        });
                    tracing::warn!(delivery = %due.id, attempt = due.attempts, retry_at, "webhook attempt failed: {}", fail.message);
                    store::record(
                        db,
                        due.outbox,
                        &due.id,
                        false,
                        fail.status,
                        Some(&fail.message),
                        retry_at,
                        now,
                    )
                    .await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_own_then_tenant_then_server_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = WebhookConfig {
            default_url: Some("https://ops.example.com/all".into()),
            secret: Some("k".into()),
            ..Default::default()
        };
        config
            .tenant_urls
            .insert("acme".into(), "https://acme.example.com/h".into());
        let hooks = Webhooks::new(config, dir.path()).unwrap();
        assert_eq!(
            hooks.targets("acme", Some("https://own.example.com/x")),
            [
                "https://own.example.com/x",
                "https://acme.example.com/h",
                "https://ops.example.com/all"
            ]
        );
        assert_eq!(
            hooks.targets("globex", None),
            ["https://ops.example.com/all"]
        );
        assert_eq!(
            hooks.targets("globex", Some("https://ops.example.com/all")),
            ["https://ops.example.com/all"]
        );
    }

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Webhooks::new(WebhookConfig::default(), dir.path()).unwrap();
        let b = Webhooks::new(WebhookConfig::default(), dir.path()).unwrap();
        assert_eq!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 64);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn instances_starting_together_share_one_generated_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_FILE);
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_make_secret(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 64));
        assert_eq!(std::fs::read(&path).unwrap(), keys[0]);
        // Only the key file is left (no per-instance files).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_bad_configured_url_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = WebhookConfig {
            default_url: Some("ftp://x/".into()),
            secret: Some("k".into()),
            ..Default::default()
        };
        assert!(Webhooks::new(config, dir.path()).is_err());
    }
}
