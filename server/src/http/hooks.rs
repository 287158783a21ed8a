//! What follows every stored upload, whichever route took it (API, resumable upload, browser
//! form): the dump is recorded for the tenant with its analysis job, webhook deliveries are
//! recorded, and a file that retention had deleted and that the upload brought back loses its
//! "deleted" mark.

use super::AppState;
use crate::db::{self, dumps};
use crate::storage::StoredDump;

/// Records a stored dump for `tenant` (a new dump and, for new content, its analysis job; or
/// the tenant's existing dump of the same content), then [`after_upload`]. Returns the dump id
/// and whether it is new. `system`: the tenant's system the dump goes into (already checked
/// with `crate::systems::name`); the latest upload naming one wins.
pub async fn record_upload(
    app: &AppState,
    tenant: &str,
    stored: &StoredDump,
    own_webhook: Option<&str>,
    system: Option<&str>,
) -> Result<(String, bool), sqlx::Error> {
    let new = dumps::NewDump {
        tenant,
        sha256: &stored.sha256,
        size: stored.size,
        upload_size: stored.received,
        compression: stored.compression,
        original_name: stored.original_name.as_deref(),
    };
    let (id, created) = dumps::insert_or_get(&app.db, &new, db::now_unix()).await?;
    if let Some(system) = system {
        db::systems::set_dump_system(&app.db, &id, system).await?;
    }
    after_upload(app, &id, tenant, &stored.sha256, created, own_webhook).await;
    tracing::info!(dump = %id, sha256 = %stored.sha256, size = stored.size,
        received = stored.received, created, "upload stored");
    Ok((id, created))
}

/// Called by [`record_upload`] once the dump is recorded. `created`: the dump row is new (a
/// re-upload of the same content by the same tenant does not notify the default webhooks
/// again). `own_webhook`: the upload's `webhook_url`, already checked with
/// `crate::webhooks::policy::check_upload_url`. Errors are logged, never fail the upload.
async fn after_upload(
    app: &AppState,
    dump_id: &str,
    tenant: &str,
    sha256: &str,
    created: bool,
    own_webhook: Option<&str>,
) {
    let now = crate::db::now_unix();
    let hooks = &app.webhooks;
    let targets: Vec<String> = if created {
        hooks.targets(tenant, own_webhook)
    } else {
        own_webhook.map(str::to_string).into_iter().collect()
    };
    for url in targets {
        if let Err(e) = crate::db::webhooks::add_waiting(&app.db, dump_id, &url, now).await {
            tracing::error!(dump = %dump_id, "recording a webhook delivery: {e}");
        }
    }
    if let Err(e) = crate::retention::file_restored(&app.db, &app.storage, sha256).await {
        tracing::error!(dump = %dump_id, "clearing a retention mark: {e}");
    }
}

/// Checks an upload's `webhook_url` (query parameter or form field): 400 `bad_webhook_url`
/// naming the rule it breaks (scheme, credentials, not on the allow-list...).
pub fn check_webhook(app: &AppState, url: &str) -> Result<String, super::ApiError> {
    crate::webhooks::policy::check_upload_url(url, &app.webhooks.config.allowed_hosts).map_err(
        |e| {
            super::ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_webhook_url",
                e.to_string(),
            )
        },
    )
}

/// Reads a small text form field (at most `max` bytes): 400 `bad_multipart` beyond.
pub async fn small_field(
    mut field: axum::extract::multipart::Field<'_>,
    max: usize,
) -> Result<String, super::ApiError> {
    let bad =
        |m: String| super::ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_multipart", m);
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
        if buf.len() + chunk.len() > max {
            return Err(bad(format!("form field larger than {max} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| bad("form field is not UTF-8".into()))
}

/// Reads and drops what is left of a form (at most 16 MiB, within 2 s) before an error answer,
/// so that a client still sending its file reads the answer instead of a broken pipe.
pub async fn drain_form(mp: &mut axum::extract::Multipart) {
    let drain = async {
        let mut drained = 0usize;
        while let Ok(Some(mut field)) = mp.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                drained += chunk.len();
                if drained > 16 << 20 {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

/// Call after `db::dumps::delete` removed dump `dump_id` (`last`: it was the last upload of
/// its content, whose job, report and index rows went with it). Removes what else names the
/// dump or its content: a completed resumable upload's record (its file name) and the
/// retention mark. Webhook deliveries go with the dump row (foreign key cascade).
pub async fn after_delete(
    app: &AppState,
    dump_id: &str,
    sha256: &str,
    last: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM uploads WHERE dump_id = $1")
        .bind(dump_id)
        .execute(&app.db)
        .await?;
    if last {
        crate::retention::forget(&app.db, sha256).await?;
    }
    Ok(())
}
