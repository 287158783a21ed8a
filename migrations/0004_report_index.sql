-- Report index (search, per-driver statistics), webhook deliveries and retention marks
-- (issue 5, items 5 and 7).
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Times are BIGINT Unix seconds, booleans
-- SMALLINT 0/1, ids random text made by the application.

-- One row per stored report, extracted from its JSON when the job finishes (and backfilled at
-- start for reports stored before this table existed, or by an older `index_version`). The
-- report stays the source of truth: these rows are a query index that can be rebuilt from it.
-- Goes with its report (a deletion of the last upload of a content deletes the report).
CREATE TABLE IF NOT EXISTS report_summaries (
    sha256           TEXT PRIMARY KEY REFERENCES reports (sha256) ON DELETE CASCADE,
    index_version    INTEGER NOT NULL,
    report_kind      TEXT NOT NULL,          -- analysis | inspect | other
    verdict_kind     TEXT,                   -- analysis reports only
    verdict_sentence TEXT,
    verdict_pool     TEXT,
    verdict_bytes    BIGINT,
    verdict_drivers  TEXT NOT NULL DEFAULT '', -- lower-case module names, comma-separated (display)
    bugcheck_code    TEXT,                   -- "0x..." lower-case, as in the report
    bugcheck_name    TEXT,
    build            BIGINT,
    arch             TEXT,
    indexed_at       BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS report_summaries_bugcheck ON report_summaries (bugcheck_code);

-- One row per (report, driver module) of an analysis report: the report's drivers[] plus the
-- verdict's drivers. `module` is lower-case (Windows module names are case-insensitive).
CREATE TABLE IF NOT EXISTS report_drivers (
    sha256         TEXT NOT NULL REFERENCES report_summaries (sha256) ON DELETE CASCADE,
    module         TEXT NOT NULL,
    bytes          BIGINT NOT NULL,
    paged_bytes    BIGINT NOT NULL,
    nonpaged_bytes BIGINT NOT NULL,
    is_verdict     SMALLINT NOT NULL,
    PRIMARY KEY (sha256, module)
);

CREATE INDEX IF NOT EXISTS report_drivers_module ON report_drivers (module, is_verdict);

-- Webhook deliveries, durable: a row is written when the upload asks for a notification (or a
-- default webhook applies) in state `waiting`; when the dump's job is done or failed, the
-- dispatcher freezes the event body (`pending`) and POSTs it until a 2xx (`delivered`) or
-- the attempts run out (`failed`). A restart resumes `waiting` and `pending` rows.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              TEXT PRIMARY KEY,
    dump_id         TEXT NOT NULL REFERENCES dumps (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('waiting', 'pending', 'delivered', 'failed')),
    event           TEXT,                    -- report.ready | dump.failed, once pending
    body            TEXT,                    -- the exact JSON that is signed and sent
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0, -- backoff, and the lease of a delivery in flight
    last_status     INTEGER,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);

CREATE INDEX IF NOT EXISTS webhook_deliveries_state ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_dump ON webhook_deliveries (dump_id);

-- Dump files removed by retention (per content). The report and its summary stay; the API and
-- pages say "dump file deleted by retention". A later upload of the same content stores the
-- file again and removes the mark.
CREATE TABLE IF NOT EXISTS dump_files_deleted (
    sha256     TEXT PRIMARY KEY,
    deleted_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
