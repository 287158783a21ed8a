-- The module a crash is filed under, for the problems list's driver facet.
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL.

-- The lower-case file name of the crash's followup module (else the first frame's module),
-- from the report's `crash` member: a crash problem counts under the driver it happened in,
-- as a leak problem counts under the drivers its verdict names. NULL for reports without a
-- walked frame in a module, and for reports indexed before index version 5 (the start-up
-- backfill re-indexes them).
ALTER TABLE report_summaries ADD COLUMN crash_module TEXT;
