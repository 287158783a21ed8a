-- API tokens and browser sessions (issue 5, auth).
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. No AUTOINCREMENT/SERIAL (ids are random
-- text made by the application), times are BIGINT Unix seconds (no TIMESTAMP type differences),
-- booleans are expressed as nullable times (revoked_at IS NULL = active).

-- One row per API token. The token itself is shown once at creation and never stored: `hash` is the
-- lowercase hex SHA-256 of the whole token string ("pt_..."), so a leaked database does not leak
-- usable credentials.
CREATE TABLE IF NOT EXISTS tokens (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('customer', 'support', 'admin')),
    name         TEXT NOT NULL DEFAULT '',
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX IF NOT EXISTS tokens_tenant ON tokens (tenant);

-- One row per browser session made by `POST /login`. `id_hash` is the SHA-256 of the cookie value
-- (the cookie is the secret; the table only lets us recognise it). `csrf` is the per-session
-- synchronizer token that every state-changing form carries in a hidden field. A session dies with
-- its token: revoking the token ends every session opened with it (checked on each request).
CREATE TABLE IF NOT EXISTS sessions (
    id_hash    TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS sessions_token ON sessions (token_id);
