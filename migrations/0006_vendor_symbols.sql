-- Vendor symbols: PDBs and images a tenant uploads for its own drivers, and the analysis key
-- that lets that tenant's dumps be analysed with them while other tenants share theirs.
--
-- Portable SQL: accepted as is by SQLite and PostgreSQL. Ids are random text made by the
-- application, times are BIGINT Unix seconds, sizes BIGINT bytes.

-- One row per file in a tenant's store, `<data-dir>/vendor-symbols/<tenant>/name/KEY/name`,
-- laid out as Microsoft's symbol stores. The key is read from the file itself (a PDB's GUID
-- and age, an image's TimeDateStamp and SizeOfImage), never from the upload's name.
-- `store_key` is `name/KEY` in lower case (local stores match names case-insensitively): the
-- file's identity in the store, so a second upload of it is a duplicate. `pdb_key` is the PDB
-- the file is (a PDB) or names (an image's CodeView record), as `report_modules.pdb_key`.
CREATE TABLE IF NOT EXISTS symbol_files (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('pdb', 'pe')),
    name          TEXT NOT NULL,
    key           TEXT NOT NULL,
    store_key     TEXT NOT NULL,
    pdb_key       TEXT,
    sha256        TEXT NOT NULL,
    size          BIGINT NOT NULL,
    functions     BIGINT,                  -- a PDB's procedures and publics
    line_ranges   BIGINT,                  -- a PDB's source line ranges (0: a public PDB)
    original_name TEXT,                    -- the upload's file name or archive entry
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant, store_key)
);

CREATE INDEX IF NOT EXISTS symbol_files_tenant_created ON symbol_files (tenant, created_at);
CREATE INDEX IF NOT EXISTS symbol_files_pdb_key ON symbol_files (tenant, pdb_key);

-- The analysis that answers for a dump. From here on `jobs.sha256`, `reports.sha256`,
-- `report_summaries.sha256`, `report_drivers.sha256` and `report_modules.sha256` hold this
-- analysis key: the content's SHA-256 for the analysis shared by every tenant without vendor
-- symbols (what they held before), `<sha256>@<tenant>` for an analysis that searched that
-- tenant's store first. `dumps.sha256` and `dump_files_deleted.sha256` stay the content.
ALTER TABLE dumps ADD COLUMN analysis TEXT;
UPDATE dumps SET analysis = sha256 WHERE analysis IS NULL;
CREATE INDEX IF NOT EXISTS dumps_analysis ON dumps (analysis);

-- For a tenant's own analysis: the content (dump file) it reads and the tenant whose store it
-- searches first. Both NULL for the shared analysis, whose key is the content.
ALTER TABLE jobs ADD COLUMN content TEXT;
ALTER TABLE jobs ADD COLUMN tenant TEXT;

-- Each indexed report's modules by their symbol-store keys (lower case), so that a symbol
-- file arriving finds the reports naming it: `image_key` = `name/TIMESTAMPsize` (even a triage
-- dump holds it), `pdb_key` = `pdbname/GUIDAGE`. Goes with its summary, as report_drivers.
CREATE TABLE IF NOT EXISTS report_modules (
    sha256    TEXT NOT NULL REFERENCES report_summaries (sha256) ON DELETE CASCADE,
    module    TEXT NOT NULL,
    image_key TEXT,
    pdb_key   TEXT
);

CREATE INDEX IF NOT EXISTS report_modules_sha256 ON report_modules (sha256);
CREATE INDEX IF NOT EXISTS report_modules_image ON report_modules (image_key);
CREATE INDEX IF NOT EXISTS report_modules_pdb ON report_modules (pdb_key);
