-- Dumps, analysis jobs and reports (issue 5: upload, durable queue).
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Ids are random text made by the
-- application, times are BIGINT Unix seconds, sizes BIGINT bytes.

-- The analysis is a function of the dump's content, so jobs and reports are keyed by the
-- SHA-256 of the decompressed dump: the same dump uploaded twice (by anyone) is analysed once.
-- A `dumps` row is one tenant's upload; the same tenant uploading the same content again gets
-- the same row back (UNIQUE (tenant, sha256)).
CREATE TABLE IF NOT EXISTS dumps (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          BIGINT NOT NULL,          -- decompressed dump size
    upload_size   BIGINT NOT NULL,          -- bytes received
    compression   TEXT NOT NULL,            -- none | gzip | zip
    original_name TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant, sha256)
);

CREATE INDEX IF NOT EXISTS dumps_tenant_created ON dumps (tenant, created_at);
CREATE INDEX IF NOT EXISTS dumps_sha256 ON dumps (sha256);

-- One job per distinct content. state: queued | running | done | failed.
-- A running job belongs to `lease_owner` until `lease_expires`; the owner renews the lease while
-- it works (heartbeat). An expired lease sends the job back to the queue, so a killed worker or
-- server loses no job; `attempts` counts claims and bounds the retries.
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    sha256        TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    stage         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    BIGINT NOT NULL DEFAULT 0,  -- retry backoff: not claimed before this time
    lease_owner   TEXT,
    lease_expires BIGINT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);

CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, not_before, created_at);

-- The analyzer's JSON report, verbatim. Kept when the dump file is removed by retention.
CREATE TABLE IF NOT EXISTS reports (
    sha256     TEXT PRIMARY KEY,
    json       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
