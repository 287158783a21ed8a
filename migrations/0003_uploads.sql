-- Resumable chunked uploads (issue 5, item 2): a browser or a script sends a large dump in
-- chunks and, after a dropped connection or a server restart, asks where to resume.
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Ids are random text made by the
-- application, times are BIGINT Unix seconds, sizes BIGINT bytes.

-- One row per upload session. The bytes live in `<data-dir>/uploads/<id>` (append-only);
-- `received` is the durable resume point: the file is fsynced up to it before it is written
-- here, so bytes below it are never lost, and bytes past it (written after the last
-- checkpoint by a server that was then killed) are cut off at the next access.
-- state: receiving | complete | failed. A complete upload names the dump it became.
CREATE TABLE IF NOT EXISTS uploads (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    filename    TEXT,
    size        BIGINT NOT NULL,           -- declared total size, bytes
    received    BIGINT NOT NULL DEFAULT 0, -- durable offset: bytes [0, received) are on disk
    state       TEXT NOT NULL CHECK (state IN ('receiving', 'complete', 'failed')),
    dump_id     TEXT,
    error       TEXT,
    error_code  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL            -- last activity; abandoned uploads expire from it
);

CREATE INDEX IF NOT EXISTS uploads_updated ON uploads (updated_at);
CREATE INDEX IF NOT EXISTS uploads_tenant ON uploads (tenant);
