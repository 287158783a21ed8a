//! Tokens and sessions in the database (tables from `migrations/0002_tokens.sql`).
//!
//! SQL here is written to be accepted by both SQLite and PostgreSQL: `$n` placeholders (SQLite
//! reads `$n` as parameter n), BIGINT Unix seconds, TEXT ids, no RETURNING or UPSERT.

use super::role::{Principal, Role};
use super::token::{self, RandomError};
use serde::Serialize;
use sqlx::Row;
use std::time::{SystemTime, UNIX_EPOCH};

/// The pool type of the service's database (see `crate::db`).
pub type DbPool = crate::db::Db;

/// `last_used_at` is refreshed at most this often per token, so a busy API client does not turn
/// every read into a database write.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("invalid tenant {0:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    InvalidTenant(String),
    #[error("token name longer than 200 characters")]
    NameTooLong,
    #[error("database holds an unknown role {0:?}")]
    CorruptRole(String),
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token just created: the only time its secret exists outside the caller's hands.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

/// A browser session just opened: the cookie value (the secret) and its CSRF secret.
#[derive(Debug, Clone)]
#[allow(dead_code)] // csrf/expires_at: read by tests and by pages that render right after login
pub struct NewSession {
    pub cookie: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Create a token and return it with its secret.
pub async fn create_token(
    pool: &DbPool,
    tenant: &str,
    role: Role,
    name: &str,
    now: i64,
) -> Result<NewToken, StoreError> {
    if !super::role::valid_tenant(tenant) {
        return Err(StoreError::InvalidTenant(tenant.to_string()));
    }
    if name.chars().count() > 200 {
        return Err(StoreError::NameTooLong);
    }
    let id = token::generate_id()?;
    let secret = token::generate_token()?;
    sqlx::query(
        "INSERT INTO tokens (id, tenant, role, name, hash, created_at, last_used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(role.as_str())
    .bind(name)
    .bind(token::hash_token(&secret))
    .bind(now)
    .execute(pool)
    .await?;
    let info = TokenInfo {
        id,
        tenant: tenant.to_string(),
        role,
        name: name.to_string(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    Ok(NewToken {
        info,
        token: secret,
    })
}

/// Every token, newest first, revoked ones included (they say when).
pub async fn list_tokens(pool: &DbPool) -> Result<Vec<TokenInfo>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, tenant, role, name, created_at, last_used_at, revoked_at FROM tokens \
         ORDER BY created_at DESC, id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let role: String = r.try_get("role")?;
            Ok(TokenInfo {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant")?,
                role: role
                    .parse()
                    .map_err(|_| StoreError::CorruptRole(role.clone()))?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revoke token `id` and end its sessions. `Ok(false)` when there is no such active token.
pub async fn revoke_token(pool: &DbPool, id: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done =
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    sqlx::query("DELETE FROM sessions WHERE token_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done > 0)
}

/// The principal of a bearer token, if the token exists and is not revoked.
pub async fn principal_for_token(
    pool: &DbPool,
    secret: &str,
    now: i64,
) -> Result<Option<Principal>, StoreError> {
    if !token::looks_like_token(secret) {
        return Ok(None);
    }
    let hash = token::hash_token(secret);
    let row =
        sqlx::query("SELECT id, tenant, role, hash, last_used_at FROM tokens WHERE hash = $1 AND revoked_at IS NULL")
            .bind(&hash)
            .fetch_optional(pool)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("hash")?;
    if !token::verify_token(secret, &stored) {
        return Ok(None);
    }
    let principal = principal_from_row(&row, None)?;
    touch(pool, &principal.token_id, row.try_get("last_used_at")?, now).await?;
    Ok(Some(principal))
}

/// Open a session for token `token_id`, valid for `ttl_secs`.
pub async fn create_session(
    pool: &DbPool,
    token_id: &str,
    ttl_secs: i64,
    now: i64,
) -> Result<NewSession, StoreError> {
    let cookie = token::random_hex(32)?;
    let csrf = token::random_hex(32)?;
    let expires_at = now.saturating_add(ttl_secs);
    // Expired sessions are swept whenever a new one is made: no background task needed.
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO sessions (id_hash, token_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(token::hash_token(&cookie))
        .bind(token_id)
        .bind(&csrf)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(NewSession {
        cookie,
        csrf,
        expires_at,
    })
}

/// The principal of a session cookie: the session must be unexpired and its token not revoked.
pub async fn principal_for_session(
    pool: &DbPool,
    cookie: &str,
    now: i64,
) -> Result<Option<Principal>, StoreError> {
    // Our cookies are 64 hex digits; anything else is not worth a query.
    if cookie.len() != 64 || !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT t.id AS id, t.tenant AS tenant, t.role AS role, t.last_used_at AS last_used_at, s.csrf AS csrf \
         FROM sessions s \
         JOIN tokens t ON t.id = s.token_id \
         WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
    )
    .bind(token::hash_token(cookie))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let csrf: String = row.try_get("csrf")?;
    let principal = principal_from_row(&row, Some(csrf))?;
    touch(pool, &principal.token_id, row.try_get("last_used_at")?, now).await?;
    Ok(Some(principal))
}

/// End the session of `cookie` (logout). Unknown cookies are ignored.
pub async fn delete_session(pool: &DbPool, cookie: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(token::hash_token(cookie))
        .execute(pool)
        .await?;
    Ok(())
}

fn principal_from_row(row: &crate::db::Row, csrf: Option<String>) -> Result<Principal, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Principal {
        token_id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        role: role
            .parse()
            .map_err(|_| StoreError::CorruptRole(role.clone()))?,
        csrf,
    })
}

/// Record a use of the token. Skipped without a query when the stored time is recent: an UPDATE
/// takes SQLite's single write lock even when it changes nothing, and uploads and workers need it.
async fn touch(
    pool: &DbPool,
    token_id: &str,
    last_used_at: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    if last_used_at.is_some_and(|t| t >= now.saturating_sub(LAST_USED_RESOLUTION_SECS)) {
        return Ok(());
    }
    sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
        .bind(now)
        .bind(token_id)
        .bind(now.saturating_sub(LAST_USED_RESOLUTION_SECS))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory database with only the auth tables: these tests do not depend on the rest of
    /// the schema.
    pub(crate) async fn memory_pool() -> DbPool {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../../../migrations/0002_tokens.sql"))
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_token_authenticates_until_revoked() {
        rt().block_on(async {
            let pool = memory_pool().await;
            let t = create_token(&pool, "acme", Role::Customer, "ci", 1000)
                .await
                .unwrap();
            let p = principal_for_token(&pool, &t.token, 1001)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (p.token_id.as_str(), p.tenant.as_str(), p.role),
                (t.info.id.as_str(), "acme", Role::Customer)
            );
            assert_eq!(p.csrf, None);
            // The secret is not in the database: only its hash.
            let stored: String = sqlx::query_scalar("SELECT hash FROM tokens")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_ne!(stored, t.token);
            assert_eq!(stored, token::hash_token(&t.token));

            let other = token::generate_token().unwrap();
            assert!(principal_for_token(&pool, &other, 1001)
                .await
                .unwrap()
                .is_none());
            assert!(principal_for_token(&pool, "garbage", 1001)
                .await
                .unwrap()
                .is_none());

            assert!(revoke_token(&pool, &t.info.id, 1002).await.unwrap());
            assert!(
                !revoke_token(&pool, &t.info.id, 1003).await.unwrap(),
                "second revoke is a no-op"
            );
            assert!(!revoke_token(&pool, "nope", 1003).await.unwrap());
            assert!(principal_for_token(&pool, &t.token, 1004)
                .await
                .unwrap()
                .is_none());

            let list = list_tokens(&pool).await.unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].revoked_at, Some(1002));
            assert_eq!(list[0].last_used_at, Some(1001));
        });
    }

    #[test]
    fn last_used_is_refreshed_at_most_once_a_minute() {
        rt().block_on(async {
            let pool = memory_pool().await;
            let t = create_token(&pool, "acme", Role::Support, "", 0)
                .await
                .unwrap();
            for now in [100, 130, 159] {
                principal_for_token(&pool, &t.token, now)
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert_eq!(list_tokens(&pool).await.unwrap()[0].last_used_at, Some(100));
            principal_for_token(&pool, &t.token, 161)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(list_tokens(&pool).await.unwrap()[0].last_used_at, Some(161));
        });
    }

    #[test]
    fn sessions_expire_and_die_with_their_token() {
        rt().block_on(async {
            let pool = memory_pool().await;
            let t = create_token(&pool, "acme", Role::Admin, "", 0)
                .await
                .unwrap();
            let s = create_session(&pool, &t.info.id, 100, 10).await.unwrap();
            assert_eq!(s.expires_at, 110);
            let p = principal_for_session(&pool, &s.cookie, 50)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(p.role, Role::Admin);
            assert_eq!(p.csrf.as_deref(), Some(s.csrf.as_str()));
            assert!(
                principal_for_session(&pool, &s.cookie, 110)
                    .await
                    .unwrap()
                    .is_none(),
                "expired"
            );
            // The cookie is not stored, only its hash.
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE id_hash = $1")
                .bind(&s.cookie)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, 0);

            let s2 = create_session(&pool, &t.info.id, 100, 200).await.unwrap();
            assert!(principal_for_session(&pool, &s2.cookie, 201)
                .await
                .unwrap()
                .is_some());
            delete_session(&pool, &s2.cookie).await.unwrap();
            assert!(
                principal_for_session(&pool, &s2.cookie, 201)
                    .await
                    .unwrap()
                    .is_none(),
                "logged out"
            );

            let s3 = create_session(&pool, &t.info.id, 100, 300).await.unwrap();
            revoke_token(&pool, &t.info.id, 301).await.unwrap();
            assert!(
                principal_for_session(&pool, &s3.cookie, 302)
                    .await
                    .unwrap()
                    .is_none(),
                "token revoked"
            );
        });
    }

    #[test]
    fn bad_tenants_and_names_are_refused() {
        rt().block_on(async {
            let pool = memory_pool().await;
            assert!(matches!(
                create_token(&pool, "a/b", Role::Customer, "", 0).await,
                Err(StoreError::InvalidTenant(_))
            ));
            assert!(matches!(
                create_token(&pool, "a", Role::Customer, &"n".repeat(201), 0).await,
                Err(StoreError::NameTooLong)
            ));
            // The schema refuses a role the code does not know, even written by hand.
            let r = sqlx::query(
                "INSERT INTO tokens (id, tenant, role, name, hash, created_at) VALUES ('x','a','root','','h',0)",
            )
            .execute(&pool)
            .await;
            assert!(r.is_err());
        });
    }
}
