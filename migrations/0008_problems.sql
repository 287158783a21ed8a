-- Problems: dumps grouped by what went wrong (the same leaking module, pool and tags; the same
-- crash), and the support workflow around each group.
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Times are BIGINT Unix seconds.

-- The group of a report, extracted with the rest of its summary (index version 3 and later).
-- `problem_id` is the first 16 hex digits of the SHA-256 of `signature`; NULL when the report
-- is no problem (no leak found, no crash to speak of).
ALTER TABLE report_summaries ADD COLUMN signature TEXT;
ALTER TABLE report_summaries ADD COLUMN problem_id TEXT;
ALTER TABLE report_summaries ADD COLUMN problem_kind TEXT;
ALTER TABLE report_summaries ADD COLUMN problem_title TEXT;

CREATE INDEX IF NOT EXISTS report_summaries_problem ON report_summaries (problem_id);

-- The workflow of a problem, written by support and admin. A problem without a row is `new`.
-- It outlives the dumps: a problem that comes back after "fixed" keeps its history.
CREATE TABLE IF NOT EXISTS problem_workflow (
    problem_id  TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('new', 'investigating', 'fixed', 'wont-fix')),
    fixed_in    TEXT,
    assignee    TEXT,
    ticket_url  TEXT,
    updated_at  BIGINT NOT NULL
);

-- Support's comments on a problem (never shown to customers).
CREATE TABLE IF NOT EXISTS problem_comments (
    id          TEXT PRIMARY KEY,
    problem_id  TEXT NOT NULL,
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS problem_comments_problem ON problem_comments (problem_id, created_at);

-- The audit trail: every workflow change and comment, who made it and when.
CREATE TABLE IF NOT EXISTS problem_events (
    id          TEXT PRIMARY KEY,
    problem_id  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS problem_events_problem ON problem_events (problem_id, at);
