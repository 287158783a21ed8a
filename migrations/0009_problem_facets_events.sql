-- Problem facets and problem webhook events.
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Times are BIGINT Unix seconds.

-- The pool tags a leak verdict names, one per line (tags are four characters that may hold a
-- comma or a space, never a line break), for the problems list's tag facet. NULL for reports
-- indexed before index version 4 (the start-up backfill re-indexes them) and for verdicts
-- without tags.
ALTER TABLE report_summaries ADD COLUMN verdict_tags TEXT;

-- The webhook outbox of problem events (`problem.updated`). Kept apart from
-- `webhook_deliveries`, whose rows belong to a dump (and go with it): a problem event outlives
-- any one dump. A row is `pending` from the start, its body frozen when the change is made;
-- the dispatcher claims and records both outboxes the same way.
CREATE TABLE IF NOT EXISTS problem_deliveries (
    id              TEXT PRIMARY KEY,
    problem_id      TEXT NOT NULL,
    url             TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);

CREATE INDEX IF NOT EXISTS problem_deliveries_state ON problem_deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS problem_deliveries_problem ON problem_deliveries (problem_id, created_at);
