-- Systems: a customer's machine, named by the tenant, whose dumps and pool logs are trended
-- together (docs/trend.md, "The service").
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Ids are random text made by the
-- application, times are BIGINT Unix seconds, sizes BIGINT bytes.

-- A dump belongs to at most one system of its tenant (a dump is one machine at one time);
-- NULL: none. The upload that names a system sets it (the latest upload naming one wins).
ALTER TABLE dumps ADD COLUMN system TEXT;
CREATE INDEX IF NOT EXISTS dumps_tenant_system ON dumps (tenant, system);

-- The system a resumable upload's dump goes to, given when the upload starts.
ALTER TABLE uploads ADD COLUMN system TEXT;

-- One row per log file (poolmon, poolsnap, typeperf/relog CSV or TSV) uploaded into a system.
-- The file is `<data-dir>/logs/<sha256>`, named by its content as dumps are; the same content
-- uploaded again into the same system is the same row (UNIQUE), into another system (or by
-- another tenant) a row of its own sharing the file. `kind` is what the analyzer read it as,
-- `samples` its snapshots or counter samples, `first_at`/`last_at` their times (Unix ms, UTC or
-- the machine's local clock for poolmon/poolsnap, as the log gives them).
CREATE TABLE IF NOT EXISTS system_logs (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    system        TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('poolmon', 'poolsnap', 'counters')),
    size          BIGINT NOT NULL,
    upload_size   BIGINT NOT NULL,
    compression   TEXT NOT NULL,
    original_name TEXT,
    samples       BIGINT NOT NULL,
    first_at      BIGINT,
    last_at       BIGINT,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant, system, sha256)
);

CREATE INDEX IF NOT EXISTS system_logs_sha256 ON system_logs (sha256);
