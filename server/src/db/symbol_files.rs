//! Typed queries on `symbol_files`: the vendor symbol files in each tenant's store
//! (migrations/0006_vendor_symbols.sql).

use super::Db;
use sqlx::Row;

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolFileRow {
    pub id: String,
    pub tenant: String,
    /// "pdb" | "pe".
    pub kind: String,
    pub name: String,
    pub key: String,
    /// `name/KEY`, lower case.
    pub store_key: String,
    /// The PDB it is or names, lower-case `pdbname/GUIDAGE`.
    pub pdb_key: Option<String>,
    pub sha256: String,
    pub size: i64,
    pub functions: Option<i64>,
    pub line_ranges: Option<i64>,
    pub original_name: Option<String>,
    pub created_at: i64,
}

/// What an accepted file records.
pub struct NewSymbolFile<'a> {
    pub tenant: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub key: &'a str,
    pub pdb_key: Option<&'a str>,
    pub sha256: &'a str,
    pub size: u64,
    pub functions: Option<u64>,
    pub line_ranges: Option<u64>,
    pub original_name: Option<&'a str>,
}

const COLUMNS: &str = "id, tenant, kind, name, key, store_key, pdb_key, sha256, size, \
                       functions, line_ranges, original_name, created_at";

fn from_row(r: &super::Row) -> Result<SymbolFileRow, sqlx::Error> {
    Ok(SymbolFileRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        key: r.try_get("key")?,
        store_key: r.try_get("store_key")?,
        pdb_key: r.try_get("pdb_key")?,
        sha256: r.try_get("sha256")?,
        size: r.try_get("size")?,
        functions: r.try_get("functions")?,
        line_ranges: r.try_get("line_ranges")?,
        original_name: r.try_get("original_name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Records a file of a tenant's store. Returns its id and whether the row is new (false: the
/// tenant's store already had a file under this name and key).
pub async fn insert(
    db: &Db,
    f: &NewSymbolFile<'_>,
    now: i64,
) -> Result<(String, bool), sqlx::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let store_key = super::report_modules::store_key(f.name, f.key);
    let sql = format!(
        "INSERT INTO symbol_files ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (tenant, store_key) DO NOTHING"
    );
    let inserted = sqlx::query(&sql)
        .bind(&id)
        .bind(f.tenant)
        .bind(f.kind)
        .bind(f.name)
        .bind(f.key)
        .bind(&store_key)
        .bind(f.pdb_key)
        .bind(f.sha256)
        .bind(to_i64(f.size))
        .bind(f.functions.map(to_i64))
        .bind(f.line_ranges.map(to_i64))
        .bind(f.original_name)
        .bind(now)
        .execute(db)
        .await?
        .rows_affected()
        == 1;
    if inserted {
        return Ok((id, true));
    }
    let id: String =
        sqlx::query_scalar("SELECT id FROM symbol_files WHERE tenant = $1 AND store_key = $2")
            .bind(f.tenant)
            .bind(&store_key)
            .fetch_one(db)
            .await?;
    Ok((id, false))
}

/// A page of files, newest first; `tenant` None = every tenant. `before`: (created_at, id) of
/// the last row of the previous page.
pub async fn list(
    db: &Db,
    tenant: Option<&str>,
    limit: i64,
    before: Option<(i64, &str)>,
) -> Result<Vec<SymbolFileRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM symbol_files WHERE ($1 IS NULL OR tenant = $1) \
         AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1))
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}

/// One file, if it exists and `tenant` (None = every tenant) may see it.
pub async fn get(
    db: &Db,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<SymbolFileRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM symbol_files WHERE {ONE_FILE}");
    one_file(db, &sql, id, tenant).await
}

/// Deletes one file's row; returns it (the caller removes the file and re-queues).
pub async fn delete(
    db: &Db,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<SymbolFileRow>, sqlx::Error> {
    let sql = format!("DELETE FROM symbol_files WHERE {ONE_FILE} RETURNING {COLUMNS}");
    one_file(db, &sql, id, tenant).await
}

/// The file `$1` when tenant `$2` (NULL = every tenant) may see it.
const ONE_FILE: &str = "id = $1 AND ($2 IS NULL OR tenant = $2)";

/// Runs `sql` (a statement over [`ONE_FILE`] returning [`COLUMNS`]) for one file.
async fn one_file(
    db: &Db,
    sql: &str,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<SymbolFileRow>, sqlx::Error> {
    let row = sqlx::query(sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The image keys (`store_key`) of a tenant's images whose CodeView record names `pdb_key`: a
/// triage dump's module is known by its image key only, so a PDB arriving reaches it through
/// the image that names it.
pub async fn images_naming(
    db: &Db,
    tenant: &str,
    pdb_key: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT store_key FROM symbol_files WHERE tenant = $1 AND kind = 'pe' AND pdb_key = $2",
    )
    .bind(tenant)
    .bind(pdb_key)
    .fetch_all(db)
    .await
}

/// Files of the tenants using analysis `key` that were added at or after `since`.
pub async fn added_since_for_analysis(
    db: &Db,
    key: &str,
    since: i64,
) -> Result<Vec<SymbolFileRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM symbol_files WHERE created_at >= $2 \
         AND tenant IN (SELECT tenant FROM dumps WHERE analysis = $1)"
    );
    let rows = sqlx::query(&sql)
        .bind(key)
        .bind(since)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}
