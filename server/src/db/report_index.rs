//! The report index: a summary row and per-driver rows extracted from each stored report, so
//! that search and per-driver statistics are SQL queries instead of parsing every report.
//!
//! Reports are parsed leniently as `serde_json::Value`: the store holds `inspect` reports
//! (before the workers ran `analyze`) and `"kind": "analysis"` reports side by side, and a
//! report from a newer analyzer may add fields. A field that is missing or of the wrong type is
//! simply not indexed; it never fails the job. The report stays the source of truth: bump
//! [`INDEX_VERSION`] when the extraction changes and the start-up backfill re-indexes.

use super::Db;
use serde_json::Value;
use std::collections::BTreeMap;

/// Version of the extraction rules; rows with an older version are rebuilt at start.
pub const INDEX_VERSION: i64 = 5;

/// Longest module name indexed (a report is analyzer output, but bounded anyway).
const MAX_MODULE_LEN: usize = 255;
/// Longest pool tag kept (tags are four characters; a longer one is not from the analyzer).
const MAX_TAG_LEN: usize = 16;
/// Longest verdict sentence kept in the index.
const MAX_SENTENCE_LEN: usize = 2000;

/// What the index keeps of one report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// `analysis`, `inspect`, or `other` (valid JSON of an unknown shape).
    pub report_kind: &'static str,
    pub verdict_kind: Option<String>,
    pub verdict_sentence: Option<String>,
    pub verdict_pool: Option<String>,
    pub verdict_bytes: Option<i64>,
    /// Lower-case module names of the verdict, in report order.
    pub verdict_drivers: Vec<String>,
    /// Pool tags of the verdict as written (case matters), in report order (since index
    /// version 4).
    pub verdict_tags: Vec<String>,
    pub bugcheck_code: Option<String>,
    pub bugcheck_name: Option<String>,
    pub build: Option<i64>,
    pub arch: Option<String>,
    /// Per module (lower-case), merged if a report names a module twice.
    pub drivers: BTreeMap<String, DriverBytes>,
    /// Every module's symbol-store keys (`report_modules`, since index version 2).
    pub modules: Vec<super::report_modules::ModuleKeys>,
    /// The problem the report belongs to (since index version 3).
    pub problem: Option<super::problem_key::ProblemKey>,
    /// The crash's followup module, else its first frame's module, lower-case (since index
    /// version 5).
    pub crash_module: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverBytes {
    pub bytes: i64,
    pub paged_bytes: i64,
    pub nonpaged_bytes: i64,
    pub is_verdict: bool,
}

fn text(v: &Value, max: usize) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(max).collect())
}

/// A byte count: a JSON number, or (leniently) a "0x..." hex string. Clamped to i64.
fn count(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|u| i64::try_from(u).unwrap_or(i64::MAX))
            .or_else(|| n.as_i64().map(|i| i.max(0))),
        Value::String(s) => s
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .map(|u| i64::try_from(u).unwrap_or(i64::MAX)),
        _ => None,
    }
}

/// A module name as indexed: trimmed, lower-case, bounded; None when empty.
pub fn module_key(name: &str) -> Option<String> {
    let t = name.trim();
    if t.is_empty() {
        return None;
    }
    Some(
        t.chars()
            .take(MAX_MODULE_LEN)
            .collect::<String>()
            .to_lowercase(),
    )
}

/// A bugcheck code as indexed and searched: `0x` + lower-case hex without leading zeros.
/// Accepts `0x0000007E`, `7e`, `0x7e`; None when it is not hex.
pub fn normalize_bugcheck_code(code: &str) -> Option<String> {
    let t = code.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16)
        .ok()
        .map(|v| format!("{v:#x}"))
}

/// A verdict's pool tags: trimmed of the padding spaces, bounded, each once; a tag with a
/// control character is not a tag (the index stores them one per line).
fn tags(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
        let t: String = t.trim().chars().take(MAX_TAG_LEN).collect();
        if !t.is_empty() && !t.chars().any(char::is_control) && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// The module a crash is filed under: the followup module, else the first frame in a module.
fn crash_module(crash: &Value) -> Option<String> {
    let first_framed = || {
        crash["stack"]["frames"]
            .as_array()?
            .iter()
            .find_map(|f| f["module"].as_str())
    };
    crash["followup_module"]
        .as_str()
        .or_else(first_framed)
        .and_then(module_key)
}

/// Extracts the index rows of a report. None when the text is not a JSON object.
pub fn extract(json: &str) -> Option<Extracted> {
    let v: Value = serde_json::from_str(json).ok()?;
    let obj = v.as_object()?;
    let is_analysis = obj.get("kind").and_then(Value::as_str) == Some("analysis");
    let is_inspect = !is_analysis && obj.contains_key("dump") && obj.contains_key("modules");
    let mut e = Extracted {
        report_kind: if is_analysis {
            "analysis"
        } else if is_inspect {
            "inspect"
        } else {
            "other"
        },
        ..Default::default()
    };
    // Both report kinds share `dump` and `bugcheck`.
    let dump = &v["dump"];
    e.build = count(&dump["build"]);
    e.arch = text(&dump["arch"], 32);
    let bc = &v["bugcheck"];
    e.bugcheck_code = bc["code"].as_str().and_then(normalize_bugcheck_code);
    e.bugcheck_name = text(&bc["name"], 200);
    e.modules = super::report_modules::extract(&v);
    e.problem = super::problem_key::of_report(&v);
    e.crash_module = crash_module(&v["crash"]);
    if !is_analysis {
        return Some(e);
    }
    let verdict = &v["verdict"];
    e.verdict_kind = text(&verdict["kind"], 64);
    e.verdict_sentence = text(&verdict["sentence"], MAX_SENTENCE_LEN);
    e.verdict_pool = text(&verdict["pool"], 32);
    e.verdict_bytes = count(&verdict["bytes"]);
    if let Some(names) = verdict["drivers"].as_array() {
        for key in names
            .iter()
            .filter_map(Value::as_str)
            .filter_map(module_key)
        {
            if !e.verdict_drivers.contains(&key) {
                e.verdict_drivers.push(key);
            }
        }
    }
    e.verdict_tags = tags(&verdict["tags"]);
    if let Some(drivers) = v["drivers"].as_array() {
        for d in drivers {
            let Some(key) = d["module"].as_str().and_then(module_key) else {
                continue;
            };
            let paged = count(&d["paged_bytes"]).unwrap_or(0);
            let nonpaged = count(&d["nonpaged_bytes"]).unwrap_or(0);
            let bytes = count(&d["bytes"]).unwrap_or_else(|| paged.saturating_add(nonpaged));
            let slot = e.drivers.entry(key).or_default();
            slot.bytes = slot.bytes.saturating_add(bytes);
            slot.paged_bytes = slot.paged_bytes.saturating_add(paged);
            slot.nonpaged_bytes = slot.nonpaged_bytes.saturating_add(nonpaged);
        }
    }
    // A verdict driver is always a row, even when drivers[] does not list it (0 bytes then:
    // the index never invents a figure the report does not give per driver).
    for key in &e.verdict_drivers {
        e.drivers.entry(key.clone()).or_default().is_verdict = true;
    }
    Some(e)
}

/// Indexes the report of one content (replacing older rows). A report that is not a JSON
/// object gets a summary of kind `other`, so the backfill does not retry it at every start.
pub async fn index(db: &Db, sha256: &str, json: &str, now: i64) -> Result<(), sqlx::Error> {
    let text = json.to_string();
    // Parsing a large report is CPU work: keep it off the async workers.
    let e = tokio::task::spawn_blocking(move || extract(&text))
        .await
        .ok()
        .flatten()
        .unwrap_or(Extracted {
            report_kind: "other",
            ..Default::default()
        });
    store(db, sha256, &e, now).await
}

async fn store(db: &Db, sha256: &str, e: &Extracted, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    // A write first: the transaction takes the write lock before it reads anything, so two
    // indexers of one report (worker, start-up backfill, a status read) simply take turns
    // (a read-then-write transaction would fail to upgrade after the other one committed).
    sqlx::query("DELETE FROM report_summaries WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM report_drivers WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM report_modules WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    // Nothing to index when the report was deleted meanwhile (the summary references it).
    // On PostgreSQL two indexers are not serialized by a database-wide write lock: the second
    // one's INSERT waits for the first to commit and then finds its row (DO NOTHING, 0 rows),
    // and leaves the driver rows to it. (SQLite needs the WHERE before ON CONFLICT to parse an
    // upsert of a SELECT; it has one.)
    let inserted = sqlx::query(
        "INSERT INTO report_summaries (sha256, index_version, report_kind, verdict_kind, \
             verdict_sentence, verdict_pool, verdict_bytes, verdict_drivers, bugcheck_code, \
             bugcheck_name, build, arch, indexed_at, signature, problem_id, problem_kind, \
             problem_title, verdict_tags, crash_module) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                $19 \
         WHERE EXISTS (SELECT 1 FROM reports WHERE sha256 = $1) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(sha256)
    .bind(INDEX_VERSION)
    .bind(e.report_kind)
    .bind(&e.verdict_kind)
    .bind(&e.verdict_sentence)
    .bind(&e.verdict_pool)
    .bind(e.verdict_bytes)
    .bind(e.verdict_drivers.join(","))
    .bind(&e.bugcheck_code)
    .bind(&e.bugcheck_name)
    .bind(e.build)
    .bind(&e.arch)
    .bind(now)
    .bind(e.problem.as_ref().map(|p| p.signature.as_str()))
    .bind(e.problem.as_ref().map(|p| p.id.as_str()))
    .bind(e.problem.as_ref().map(|p| p.kind))
    .bind(e.problem.as_ref().map(|p| p.title.as_str()))
    .bind((!e.verdict_tags.is_empty()).then(|| e.verdict_tags.join("\n")))
    .bind(&e.crash_module)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return tx.commit().await;
    }
    for (module, d) in &e.drivers {
        sqlx::query(
            "INSERT INTO report_drivers (sha256, module, bytes, paged_bytes, nonpaged_bytes, is_verdict) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sha256)
        .bind(module)
        .bind(d.bytes)
        .bind(d.paged_bytes)
        .bind(d.nonpaged_bytes)
        .bind(i16::from(d.is_verdict))
        .execute(&mut *tx)
        .await?;
    }
    for m in &e.modules {
        sqlx::query(
            "INSERT INTO report_modules (sha256, module, image_key, pdb_key) VALUES ($1, $2, $3, $4)",
        )
        .bind(sha256)
        .bind(&m.module)
        .bind(&m.image_key)
        .bind(&m.pdb_key)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Indexes every report without a current summary (start-up backfill). Idempotent: a second
/// run finds nothing to do. Returns the number of reports indexed.
pub async fn backfill(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut done = 0u64;
    loop {
        // In batches, so a large store is not loaded at once.
        let batch: Vec<String> = sqlx::query_scalar(
            "SELECT r.sha256 FROM reports r LEFT JOIN report_summaries s ON s.sha256 = r.sha256 \
             WHERE s.sha256 IS NULL OR s.index_version < $1 ORDER BY r.sha256 LIMIT 100",
        )
        .bind(INDEX_VERSION)
        .fetch_all(db)
        .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for sha in batch {
            let json: Option<String> =
                sqlx::query_scalar("SELECT json FROM reports WHERE sha256 = $1")
                    .bind(&sha)
                    .fetch_optional(db)
                    .await?;
            if let Some(json) = json {
                index(db, &sha, &json, now).await?;
                done += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An analysis report in the shape of the contract (notes: analysis.md), hand-written.
    const ANALYSIS: &str = r#"{
      "schema_version": 1, "kind": "analysis",
      "dump": {"format": "kernel-bitmap", "arch": "x64", "build": 19041},
      "bugcheck": {"code": "0x000000E2", "name": "MANUALLY_INITIATED_CRASH"},
      "verdict": {"kind": "driver-leak", "sentence": "leaky.sys is the likely leaker.",
                  "pool": "paged", "drivers": ["Leaky.sys"], "bytes": 462848,
                  "tags": ["Leak", "Ntf ", "Leak", "", "a\nb"]},
      "drivers": [
        {"module": "leaky.sys", "paged_bytes": 462848, "nonpaged_bytes": 0, "bytes": 462848},
        {"module": "other.sys", "paged_bytes": 10, "nonpaged_bytes": 20, "bytes": 30},
        {"module": "", "bytes": 5},
        {"bytes": 7}
      ]
    }"#;

    #[test]
    fn analysis_report_gives_verdict_and_driver_rows() {
        let e = extract(ANALYSIS).unwrap();
        assert_eq!(e.report_kind, "analysis");
        assert_eq!(e.verdict_kind.as_deref(), Some("driver-leak"));
        assert_eq!(e.verdict_drivers, ["leaky.sys"]);
        // Tags keep their case, lose the padding, once each; a line break is no tag.
        assert_eq!(e.verdict_tags, ["Leak", "Ntf"]);
        assert_eq!(e.bugcheck_code.as_deref(), Some("0xe2"));
        assert_eq!((e.build, e.arch.as_deref()), (Some(19041), Some("x64")));
        assert_eq!(e.drivers.len(), 2, "nameless driver entries are skipped");
        let leaky = e.drivers["leaky.sys"];
        assert!(leaky.is_verdict);
        assert_eq!((leaky.bytes, leaky.paged_bytes), (462848, 462848));
        assert!(!e.drivers["other.sys"].is_verdict);
    }

    #[test]
    fn inspect_report_gives_bugcheck_and_no_drivers() {
        let e = extract(
            r#"{"schema_version":1,"dump":{"arch":"x64","build":19041},
                "bugcheck":{"code":"0x1000007e","name":"SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"},
                "modules":[{"name":"amdppm.sys"}]}"#,
        )
        .unwrap();
        assert_eq!(e.report_kind, "inspect");
        assert_eq!(e.bugcheck_code.as_deref(), Some("0x1000007e"));
        assert!(e.verdict_kind.is_none() && e.drivers.is_empty());
    }

    #[test]
    fn a_crash_is_filed_under_its_followup_else_its_first_module() {
        let with = |crash: &str| {
            extract(&format!(r#"{{"dump":{{}},"modules":[],"crash":{crash}}}"#))
                .unwrap()
                .crash_module
        };
        let frames = r#""stack":{"frames":[{"module":null},{"module":"Acme.sys"}]}"#;
        assert_eq!(
            with(&format!(r#"{{"followup_module":"AMDPPM.SYS",{frames}}}"#)).as_deref(),
            Some("amdppm.sys")
        );
        assert_eq!(
            with(&format!(r#"{{"followup_module":null,{frames}}}"#)).as_deref(),
            Some("acme.sys")
        );
        assert_eq!(with(r#"{"stack":{"frames":[]}}"#), None);
        assert_eq!(with("null"), None);
    }

    #[test]
    fn hostile_or_odd_shapes_do_not_fail() {
        assert!(extract("not json").is_none());
        assert!(extract("[1,2]").is_none());
        let e = extract(r#"{"kind":"analysis","verdict":{"drivers":[1,null,"A.SYS","a.sys"]},"drivers":{"x":1}}"#).unwrap();
        assert_eq!(e.verdict_drivers, ["a.sys"]);
        assert_eq!(e.drivers.len(), 1);
        assert_eq!(extract("{}").unwrap().report_kind, "other");
    }

    #[test]
    fn bugcheck_codes_normalize() {
        assert_eq!(
            normalize_bugcheck_code("0x0000007E").as_deref(),
            Some("0x7e")
        );
        assert_eq!(normalize_bugcheck_code("7e").as_deref(), Some("0x7e"));
        assert_eq!(normalize_bugcheck_code("DRIVER_X"), None);
        assert_eq!(normalize_bugcheck_code(""), None);
    }

    #[tokio::test]
    async fn backfill_is_idempotent_and_rows_go_with_the_report() {
        let db = crate::db::open_memory().await;
        sqlx::query("INSERT INTO reports (sha256, json, created_at) VALUES ('s1', $1, 1), ('s2', 'garbage', 1)")
            .bind(ANALYSIS)
            .execute(&db)
            .await
            .unwrap();
        assert_eq!(backfill(&db, 5).await.unwrap(), 2);
        assert_eq!(backfill(&db, 6).await.unwrap(), 0);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM report_drivers WHERE sha256 = 's1'")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(n, 2);
        // Re-indexing replaces, never duplicates.
        index(&db, "s1", ANALYSIS, 7).await.unwrap();
        sqlx::query("DELETE FROM reports WHERE sha256 = 's1'")
            .execute(&db)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM report_drivers")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(n, 0, "driver rows cascade with the report");
    }
}
