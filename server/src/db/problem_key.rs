//! A report's problem: the signature that groups dumps of the same trouble, as a crash-reporting
//! service groups crash reports.
//!
//! - **Pool** problems (a verdict that names modules or tags): the kind of verdict family
//!   `pool`, the pool, the verdict's modules and tags, sorted. Call-site offsets are left out on
//!   purpose: they move with every build of the driver, and a support team wants one problem per
//!   leak across the driver's versions (the problem page lists the versions seen).
//! - **Crashes** (a bug check with a faulting place and no pool verdict): the bug check code and
//!   the place of the report's crash bucket (`crash.bucket` `0x7E_amdppm!WriteIoMemRawEx`: the
//!   followup frame's function, from the walked stack) when the report has one; else the
//!   faulting function (`amdppm!WriteIoMemRawEx`, without the offset) or, without symbols, the
//!   faulting module. Both name the function without displacement, so a crash at the faulting
//!   instruction keeps its problem when the report gains a stack.
//! - **Not analysable** dumps with no crash place group apart by bug check.
//!
//! Dumps with no leak found and no crash place are no problem (`None`).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The group a report belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemKey {
    /// The full signature, e.g. `pool|paged|leaky.sys|Leak`.
    pub signature: String,
    /// First 16 hex digits of the signature's SHA-256: the id in URLs.
    pub id: String,
    /// `pool`, `crash` or `not-analyzable`.
    pub kind: &'static str,
    /// A one-line title for lists.
    pub title: String,
}

/// Longest signature part kept (a report is analyzer output, but bounded anyway).
const MAX_PART: usize = 200;

impl ProblemKey {
    fn new(kind: &'static str, parts: &[String], title: String) -> ProblemKey {
        let mut signature = kind.to_string();
        for p in parts {
            signature.push('|');
            signature.push_str(p);
        }
        let digest = Sha256::digest(signature.as_bytes());
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        ProblemKey {
            signature,
            id,
            kind,
            title,
        }
    }
}

fn strings(v: &Value, lower: bool) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s: String = s.chars().take(MAX_PART).collect();
            if lower {
                s.to_lowercase()
            } else {
                s
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `amdppm!WriteIoMemRawEx+0x70` -> `amdppm!WriteIoMemRawEx`; `amdppm.sys+0x334c` -> `amdppm.sys`.
fn without_offset(place: &str) -> String {
    let base = match place.rfind("+0x") {
        Some(i) => &place[..i],
        None => place,
    };
    base.chars().take(MAX_PART).collect()
}

/// The problem of an analysis or inspect report (lenient: missing fields mean no key).
pub fn of_report(v: &Value) -> Option<ProblemKey> {
    let verdict = &v["verdict"];
    let kind = verdict["kind"].as_str().unwrap_or("");
    let modules = strings(&verdict["drivers"], true);
    let tags = strings(&verdict["tags"], false);
    if v["kind"] == "analysis" && kind != "not-analyzable" && kind != "no-leak-found" {
        let pool = verdict["pool"].as_str().unwrap_or("pool").to_string();
        if !modules.is_empty() || !tags.is_empty() {
            let who = if modules.is_empty() {
                "no module named".to_string()
            } else {
                modules.join(", ")
            };
            let title = if tags.is_empty() {
                format!("{who} · {pool} pool")
            } else {
                format!("{who} · {pool} pool · tag {}", tags.join(", "))
            };
            return Some(ProblemKey::new(
                "pool",
                &[pool, modules.join(","), tags.join(",")],
                title,
            ));
        }
    }
    let bc = &v["bugcheck"];
    let code = bc["code"]
        .as_str()
        .and_then(super::report_index::normalize_bugcheck_code)?;
    let name = bc["name"].as_str().unwrap_or(&code).to_string();
    // The bucket's code is the bug check's without the 0x10000000 flag, as `!analyze` files it.
    let bucket = v["crash"]["bucket"]
        .as_str()
        .and_then(|b| b.split_once('_'))
        // A bucket that names no module (no frame, or none in a module) groups less well than
        // the faulting instruction below.
        .filter(|(_, place)| !place.is_empty() && *place != "UNKNOWN_MODULE")
        .and_then(|(c, place)| Some((super::report_index::normalize_bugcheck_code(c)?, place)));
    let code = bucket.as_ref().map_or(code, |(c, _)| c.clone());
    let bucket_place = bucket.map(|(_, place)| place);
    let place = bucket_place
        .or_else(|| bc["faulting_symbol"].as_str())
        .or_else(|| bc["faulting"].as_str())
        .or_else(|| bc["faulting"]["symbol"].as_str())
        .or_else(|| bc["faulting"]["module_offset"].as_str())
        .map(without_offset);
    match place {
        Some(place) => Some(ProblemKey::new(
            "crash",
            &[code, place.clone()],
            format!("{name} in {place}"),
        )),
        None if kind == "not-analyzable" => Some(ProblemKey::new(
            "not-analyzable",
            &[code],
            format!("{name}: dumps that cannot be analysed"),
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leak(drivers: &[&str], tags: &[&str]) -> Value {
        json!({ "kind": "analysis",
                "verdict": { "kind": "driver-leak", "pool": "paged", "drivers": drivers, "tags": tags },
                "bugcheck": { "code": "0xe2", "name": "MANUALLY_INITIATED_CRASH" } })
    }

    #[test]
    fn one_leak_one_key_whatever_the_order_and_case() {
        let a = of_report(&leak(&["Leaky.sys", "helper.sys"], &["Leak", "Lea2"])).unwrap();
        let b = of_report(&leak(&["helper.sys", "leaky.sys"], &["Lea2", "Leak"])).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.signature, "pool|paged|helper.sys,leaky.sys|Lea2,Leak");
        assert_eq!(a.kind, "pool");
        assert_eq!(a.id.len(), 16);
        // Tags are case-sensitive (pool tags are four bytes): another tag, another problem.
        let c = of_report(&leak(&["leaky.sys", "helper.sys"], &["leak", "Lea2"])).unwrap();
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn crashes_group_by_code_and_function_without_offset() {
        let r = |place: &str| {
            json!({ "kind": "analysis", "verdict": { "kind": "not-analyzable" },
                    "bugcheck": { "code": "0x0000007E", "name": "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
                                  "faulting_symbol": place } })
        };
        let a = of_report(&r("amdppm!WriteIoMemRawEx+0x70")).unwrap();
        let b = of_report(&r("amdppm!WriteIoMemRawEx+0x9c")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.signature, "crash|0x7e|amdppm!WriteIoMemRawEx");
        assert_eq!(
            a.title,
            "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED in amdppm!WriteIoMemRawEx"
        );
        // An inspect report's faulting object.
        let i = json!({ "bugcheck": { "code": "0x7e", "faulting": { "symbol": "amdppm!WriteIoMemRawEx+0x70" } } });
        assert_eq!(of_report(&i).unwrap().id, a.id);
    }

    #[test]
    fn the_crash_bucket_wins_over_the_faulting_instruction() {
        let r = json!({ "kind": "analysis", "verdict": { "kind": "not-analyzable" },
                        "bugcheck": { "code": "0x1000007e", "faulting_symbol": "nt!KiPageFault+0x3c" },
                        "crash": { "bucket": "0x7E_amdppm!WriteIoMemRawEx" } });
        let k = of_report(&r).unwrap();
        assert_eq!(k.signature, "crash|0x7e|amdppm!WriteIoMemRawEx");
        let no_function = json!({ "kind": "analysis", "verdict": { "kind": "not-analyzable" },
                        "bugcheck": { "code": "0xd1" }, "crash": { "bucket": "0xD1_acme.sys" } });
        assert_eq!(
            of_report(&no_function).unwrap().signature,
            "crash|0xd1|acme.sys"
        );
        // A report without a crash member keeps the faulting instruction's place.
        let old = json!({ "kind": "analysis", "verdict": { "kind": "not-analyzable" },
                        "bugcheck": { "code": "0x7e", "faulting_symbol": "amdppm!WriteIoMemRawEx+0x70" } });
        assert_eq!(of_report(&old).unwrap().id, k.id);
        // So does a crash whose bucket names no module (a walk with no frame in a module).
        let unknown = json!({ "kind": "analysis", "verdict": { "kind": "not-analyzable" },
                        "bugcheck": { "code": "0x7e", "faulting_symbol": "amdppm!WriteIoMemRawEx+0x70" },
                        "crash": { "bucket": "0x7E_UNKNOWN_MODULE" } });
        assert_eq!(of_report(&unknown).unwrap().id, k.id);
    }

    #[test]
    fn no_leak_and_no_crash_place_is_no_problem() {
        let r = json!({ "kind": "analysis", "verdict": { "kind": "no-leak-found", "pool": "paged" },
                        "bugcheck": { "code": "0xe2" } });
        assert_eq!(of_report(&r), None);
        let na = json!({ "kind": "analysis", "verdict": { "kind": "not-analyzable" },
                         "bugcheck": { "code": "0xe2", "name": "MANUALLY_INITIATED_CRASH" } });
        assert_eq!(of_report(&na).unwrap().kind, "not-analyzable");
        assert_eq!(of_report(&json!({})), None);
    }
}
