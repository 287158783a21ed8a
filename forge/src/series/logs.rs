//! The same machine's pool as poolmon and typeperf log it, written from each step's truth (the
//! tag tables and `!vm` figures planted in that step's dump): `poolmon.log` as the collection
//! loop of docs/trend.md writes it (cmd's `echo %date% %time%`, then `poolmon -n FILE /c`'s
//! snapshot appended) and `typeperf.csv` as `typeperf -cf counters.txt -f CSV` writes it. The
//! layouts are those the trend parsers read, from Microsoft's pages (see
//! analyzer/src/trend/poolmon.rs and counters.rs).

use super::clock_text::{cmd_en_us, local, pdh};
use crate::ForgeError;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The forged machine's time zone: Tokyo has no daylight saving time, so one bias holds for
/// any date.
pub const ZONE: &str = "Tokyo Standard Time";
pub const BIAS_MINUTES: i64 = -540;
/// The computer name its counter paths carry.
pub const HOST: &str = "PTFORGE";

/// One step's figures.
pub struct Step<'a> {
    /// FILETIME of the dump.
    pub system_time: u64,
    /// The truth's `pool` member.
    pub pool: &'a Value,
    /// Physical memory of the machine in bytes.
    pub memory: u64,
}

/// A tag row of a step: (tag, "Nonp"|"Paged", allocs, frees, bytes).
fn rows(pool: &Value) -> Vec<(String, &'static str, u64, u64, u64)> {
    let mut out = Vec::new();
    for t in pool["tags"].as_array().into_iter().flatten() {
        let tag = t["tag"].as_str().unwrap_or("");
        if tag.chars().count() != 4 || tag.contains('\\') {
            continue;
        }
        for (ty, p) in [("Nonp", "nonpaged"), ("Paged", "paged")] {
            let g = |f: &str| t[format!("{p}_{f}")].as_u64().unwrap_or(0);
            let (a, f, b) = (g("allocs"), g("frees"), g("bytes"));
            if a != 0 || f != 0 || b != 0 {
                out.push((tag.to_string(), ty, a, f, b));
            }
        }
    }
    out.sort();
    out
}

/// The driver poolmon's `/c` names for a tag (localtag.txt lists the local drivers' tags).
fn mapped(tag: &str) -> &'static str {
    match tag {
        "Leak" => "[leaky.sys]",
        _ => "Unknown Driver",
    }
}

/// `poolmon.log`.
pub fn write_poolmon(path: &Path, steps: &[Step]) -> Result<(), ForgeError> {
    let mut s = String::new();
    for (i, st) in steps.iter().enumerate() {
        let vm = &st.pool["vm"];
        let kb = |f: &str| vm[f].as_u64().unwrap_or(0) / 1024;
        let mem = st.memory / 1024;
        let _ = write!(
            s,
            "{}\r\n Memory:{:>8}K Avail:{:>8}K  PageFlts:{:>6}   InRam Krnl:{:>5}K P:{:>5}K\r\n Commit:{:>7}K Limit:{:>7}K Peak:{:>7}K            Pool N:{:>5}K P:{:>5}K\r\n System pool information\r\n Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc  Mapped_Driver\r\n\r\n",
            cmd_en_us(&local(st.system_time, BIAS_MINUTES)),
            mem,
            mem / 2,
            120 + i,
            4096,
            kb("paged_in_use") / 2,
            mem / 3,
            mem + mem / 2,
            mem / 3 + 1024,
            kb("nonpaged_in_use"),
            kb("paged_in_use"),
        );
        for (tag, ty, a, f, b) in rows(st.pool) {
            let d = a.saturating_sub(f);
            let per = b.checked_div(d).unwrap_or(0);
            let _ = write!(
                s,
                " {tag} {ty:<5} {a:>10} {f:>9} {d:>8} {b:>8} {per:>6} {}\r\n",
                mapped(&tag)
            );
        }
        s.push_str("\r\n");
    }
    std::fs::write(path, s).map_err(|e| ForgeError::Io(path.display().to_string(), e))
}

/// The processes whose pool quota the counter log carries, with their constant paged and
/// nonpaged bytes (the leak is a driver's: no process is charged for it).
const PROCESSES: [(&str, u64, u64); 3] = [
    ("System", 0, 0),
    ("explorer", 412_160, 28_672),
    ("svchost#1", 233_472, 17_408),
];

/// `typeperf.csv`: the \Memory pool counters and the processes' pool quota at each step.
pub fn write_typeperf(path: &Path, steps: &[Step]) -> Result<(), ForgeError> {
    let q = |v: &str| format!("\"{v}\"");
    let mut cols = vec![q(&format!("(PDH-CSV 4.0) ({ZONE})({BIAS_MINUTES})"))];
    for c in [
        "Pool Paged Bytes",
        "Pool Nonpaged Bytes",
        "Pool Paged Allocs",
        "Pool Nonpaged Allocs",
    ] {
        cols.push(q(&format!("\\\\{HOST}\\Memory\\{c}")));
    }
    for (name, _, _) in PROCESSES.iter().chain([("_Total", 0, 0)].iter()) {
        for c in ["Pool Paged Bytes", "Pool Nonpaged Bytes"] {
            cols.push(q(&format!("\\\\{HOST}\\Process({name})\\{c}")));
        }
    }
    let mut s = cols.join(",") + "\r\n";
    for st in steps {
        let vm = &st.pool["vm"];
        let r = rows(st.pool);
        let outstanding = |ty: &str| -> u64 {
            r.iter()
                .filter(|x| x.1 == ty)
                .map(|x| x.2.saturating_sub(x.3))
                .sum()
        };
        let mut v = vec![
            vm["paged_in_use"].as_u64().unwrap_or(0),
            vm["nonpaged_in_use"].as_u64().unwrap_or(0),
            outstanding("Paged"),
            outstanding("Nonp"),
        ];
        for (_, p, n) in PROCESSES {
            v.extend([p, n]);
        }
        v.extend([
            PROCESSES.iter().map(|p| p.1).sum::<u64>(),
            PROCESSES.iter().map(|p| p.2).sum::<u64>(),
        ]);
        let mut row = vec![q(&pdh(&local(st.system_time, BIAS_MINUTES)))];
        row.extend(v.iter().map(|x| q(&format!("{x}.000000"))));
        s.push_str(&(row.join(",") + "\r\n"));
    }
    std::fs::write(path, s).map_err(|e| ForgeError::Io(path.display().to_string(), e))
}
