//! The durable webhook outbox (`webhook_deliveries`): a row per notification an upload asked
//! for, `waiting` for its dump's analysis, then `pending` with the frozen body until it is
//! `delivered` or `failed` (attempts used up).
//!
//! Problem events (`problem.updated`) have their own outbox, `problem_deliveries`: a row is
//! `pending` from the start (the body is frozen when the change is made, in the change's
//! transaction) and outlives any one dump. Both outboxes are claimed and recorded alike
//! ([`Outbox`]).
//!
//! A delivery in flight is leased like a job: [`claim_due`] pushes `next_attempt_at` past the
//! request's time limit, so a server killed mid-request retries the delivery after restart
//! (at least once delivery; receivers de-duplicate on the `X-Pooltriage-Delivery` id).

use super::Db;
use sqlx::Row;

/// Records that `dump_id` wants a notification at `url` when its analysis ends.
pub async fn add_waiting(
    db: &Db,
    dump_id: &str,
    url: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, dump_id, url, state, created_at, updated_at) \
         VALUES ($1, $2, $3, 'waiting', $4, $4)",
    )
    .bind(&id)
    .bind(dump_id)
    .bind(url)
    .bind(now)
    .execute(db)
    .await?;
    Ok(id)
}

/// A waiting delivery whose dump's analysis has ended.
#[derive(Debug, Clone)]
pub struct Ready {
    pub id: String,
    pub dump_id: String,
}

/// Waiting deliveries whose job is done or failed (at most `limit`).
pub async fn ready(db: &Db, limit: i64) -> Result<Vec<Ready>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT w.id, w.dump_id \
         FROM webhook_deliveries w JOIN dumps d ON d.id = w.dump_id \
         JOIN jobs j ON j.sha256 = d.analysis \
         WHERE w.state = 'waiting' AND j.state IN ('done', 'failed') \
         ORDER BY w.created_at, w.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Ready {
                id: r.try_get("id")?,
                dump_id: r.try_get("dump_id")?,
            })
        })
        .collect()
}

/// Freezes the event of a waiting delivery: from now on the same bytes are sent at each try.
pub async fn make_pending(
    db: &Db,
    id: &str,
    event: &str,
    body: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', event = $1, body = $2, \
             next_attempt_at = $3, updated_at = $3 \
         WHERE id = $4 AND state = 'waiting'",
    )
    .bind(event)
    .bind(body)
    .bind(now)
    .bind(id)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The two outbox tables, claimed and recorded the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    /// `webhook_deliveries`: dump events.
    Dumps,
    /// `problem_deliveries`: problem events.
    Problems,
}

impl Outbox {
    pub const ALL: [Outbox; 2] = [Outbox::Dumps, Outbox::Problems];

    fn table(self) -> &'static str {
        match self {
            Outbox::Dumps => "webhook_deliveries",
            Outbox::Problems => "problem_deliveries",
        }
    }
}

/// A problem event to send, frozen when the change is made.
#[derive(Debug, Clone)]
pub struct NewProblemEvent {
    pub id: String,
    pub url: String,
    pub event: &'static str,
    pub body: String,
}

/// Records problem events (pending at once) inside the transaction of the change they report,
/// so a change is never saved without its events nor an event sent for a change not saved.
pub async fn add_problem_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    problem_id: &str,
    events: &[NewProblemEvent],
    now: i64,
) -> Result<(), sqlx::Error> {
    for e in events {
        sqlx::query(
            "INSERT INTO problem_deliveries (id, problem_id, url, state, event, body, \
                 next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6, $6)",
        )
        .bind(&e.id)
        .bind(problem_id)
        .bind(&e.url)
        .bind(e.event)
        .bind(&e.body)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A pending delivery taken for one attempt.
#[derive(Debug, Clone)]
pub struct Due {
    pub outbox: Outbox,
    pub id: String,
    pub url: String,
    pub event: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i64,
}

/// Takes the oldest due pending delivery for one attempt, leasing it until `now + lease`.
/// Several dispatchers (service instances on one PostgreSQL database) never send one attempt
/// twice: as in `jobs::claim`, the UPDATE re-checks the row's state and due time, and on
/// PostgreSQL the subquery skips rows another dispatcher is claiming (`FOR UPDATE SKIP LOCKED`).
pub async fn claim_due(
    db: &Db,
    outbox: Outbox,
    now: i64,
    lease: i64,
) -> Result<Option<Due>, sqlx::Error> {
    let lock = match super::backend(db) {
        super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        super::Backend::Sqlite => "",
    };
    let table = outbox.table();
    let sql = format!(
        "UPDATE {table} SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2 \
         WHERE id = (SELECT id FROM {table} WHERE state = 'pending' AND next_attempt_at <= $2 \
                     ORDER BY next_attempt_at, id LIMIT 1{lock}) \
           AND state = 'pending' AND next_attempt_at <= $2 \
         RETURNING id, url, event, body, attempts"
    );
    let row = sqlx::query(&sql)
        .bind(now + lease)
        .bind(now)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(Due {
            outbox,
            id: r.try_get("id")?,
            url: r.try_get("url")?,
            event: r.try_get::<Option<String>, _>("event")?.unwrap_or_default(),
            body: r.try_get::<Option<String>, _>("body")?.unwrap_or_default(),
            attempts: r.try_get("attempts")?,
        })
    })
    .transpose()
}

/// Records an attempt's outcome: delivered, retry at `retry_at`, or (None) given up.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    db: &Db,
    outbox: Outbox,
    id: &str,
    delivered: bool,
    status: Option<u16>,
    error: Option<&str>,
    retry_at: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let state = if delivered {
        "delivered"
    } else if retry_at.is_some() {
        "pending"
    } else {
        "failed"
    };
    let sql = format!(
        "UPDATE {} SET state = $1, last_status = $2, last_error = $3, \
             next_attempt_at = $4, updated_at = $5, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $5 ELSE delivered_at END \
         WHERE id = $6 AND state = 'pending'",
        outbox.table()
    );
    sqlx::query(&sql)
        .bind(state)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(retry_at.unwrap_or(0))
        .bind(now)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// A delivery as the API shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub url: String,
    pub state: String,
    pub event: Option<String>,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// The deliveries of one dump, oldest first.
pub async fn for_dump(db: &Db, dump_id: &str) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    deliveries(db, "webhook_deliveries WHERE dump_id = $1", dump_id).await
}

/// The event deliveries of one problem, oldest first (at most 1000).
pub async fn for_problem(db: &Db, problem_id: &str) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    deliveries(db, "problem_deliveries WHERE problem_id = $1", problem_id).await
}

async fn deliveries(db: &Db, from: &str, key: &str) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, url, state, event, attempts, last_status, last_error, created_at, delivered_at \
         FROM {from} ORDER BY created_at, id LIMIT 1000"
    );
    let rows = sqlx::query(&sql).bind(key).fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryRow {
                id: r.try_get("id")?,
                url: r.try_get("url")?,
                state: r.try_get("state")?,
                event: r.try_get("event")?,
                attempts: r.try_get("attempts")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                delivered_at: r.try_get("delivered_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dumps::{insert_or_get, NewDump};

    #[tokio::test]
    async fn waiting_until_the_job_ends_then_leased_retried_and_delivered() {
        let db = crate::db::open_memory().await;
        let nd = NewDump {
            tenant: "t",
            sha256: "s",
            size: 1,
            upload_size: 1,
            compression: "none",
            original_name: None,
        };
        let (dump, _) = insert_or_get(&db, &nd, 1).await.unwrap();
        let id = add_waiting(&db, &dump, "http://h/x", 1).await.unwrap();
        assert!(ready(&db, 10).await.unwrap().is_empty(), "job still queued");
        sqlx::query("UPDATE jobs SET state = 'done'")
            .execute(&db)
            .await
            .unwrap();
        let r = ready(&db, 10).await.unwrap();
        assert_eq!((r.len(), r[0].dump_id.as_str()), (1, dump.as_str()));
        assert!(make_pending(&db, &id, "report.ready", "{}", 5)
            .await
            .unwrap());
        assert!(!make_pending(&db, &id, "report.ready", "{}", 5)
            .await
            .unwrap());
        let d = claim_due(&db, Outbox::Dumps, 5, 30).await.unwrap().unwrap();
        assert_eq!(d.attempts, 1);
        // Leased: not claimable again until the lease ends (a killed server retries then).
        assert!(claim_due(&db, Outbox::Dumps, 6, 30)
            .await
            .unwrap()
            .is_none());
        assert!(claim_due(&db, Outbox::Dumps, 35, 30)
            .await
            .unwrap()
            .is_some());
        record(
            &db,
            Outbox::Dumps,
            &id,
            false,
            Some(500),
            Some("500"),
            Some(40),
            36,
        )
        .await
        .unwrap();
        assert!(claim_due(&db, Outbox::Dumps, 39, 30)
            .await
            .unwrap()
            .is_none());
        let d = claim_due(&db, Outbox::Dumps, 40, 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.attempts, 3);
        record(&db, Outbox::Dumps, &id, true, Some(200), None, None, 41)
            .await
            .unwrap();
        let rows = for_dump(&db, &dump).await.unwrap();
        assert_eq!(rows[0].state, "delivered");
        assert_eq!(rows[0].delivered_at, Some(41));
    }

    #[tokio::test]
    async fn problem_events_are_pending_at_once_and_claimed_from_their_own_outbox() {
        let db = crate::db::open_memory().await;
        let mut tx = db.begin().await.unwrap();
        let e = NewProblemEvent {
            id: "d1".into(),
            url: "http://h/p".into(),
            event: "problem.updated",
            body: "{}".into(),
        };
        add_problem_events(&mut tx, "p1", &[e], 7).await.unwrap();
        tx.commit().await.unwrap();
        assert!(claim_due(&db, Outbox::Dumps, 7, 30)
            .await
            .unwrap()
            .is_none());
        let d = claim_due(&db, Outbox::Problems, 7, 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.outbox, d.event.as_str(), d.attempts),
            (Outbox::Problems, "problem.updated", 1)
        );
        record(&db, Outbox::Problems, &d.id, true, Some(204), None, None, 8)
            .await
            .unwrap();
        let rows = for_problem(&db, "p1").await.unwrap();
        assert_eq!(
            (rows[0].state.as_str(), rows[0].delivered_at),
            ("delivered", Some(8))
        );
    }
}
