//! `pooltriage pool`'s `!vm` section: the lines WinDbg's `!vm` prints that the dump holds, in
//! `!vm`'s order and words (learn.microsoft.com debuggercmds/-vm; the kdexts memory.c source as
//! published in public repositories), pages then Kb, each followed by where it was read:
//!
//! ```text
//! *** Virtual Memory Usage ***
//!   Available Pages:          5543   (     22172 Kb)  profile:MmAvailablePages
//!   NonPagedPool Usage:        877   (      3508 Kb)  profile:MmAllocatedNonPagedPool
//!   ...
//! ```
//!
//! "Peak commitment", the allocation failure counters and the per-session lines (`!vm 4`) follow
//! under their own headings.

use analyzer::pool::vm::{Figure, VmSummary};
use analyzer::pool::vm_descriptors::PoolDescriptorUsage;
use std::fmt::Write as _;

const PAGE: u64 = 0x1000;

/// One `!vm` line: label, pages, Kb, source.
fn line(s: &mut String, label: &str, f: &Figure) {
    let _ = writeln!(
        s,
        "  {:<22}{:>10}   ({:>10} Kb)  {}",
        format!("{label}:"),
        f.bytes / PAGE,
        f.bytes / 1024,
        f.source
    );
}

/// A line that is printed whether or not the figure was read (the pool lines).
fn always(s: &mut String, label: &str, f: &Option<Figure>) {
    match f {
        Some(f) => line(s, label, f),
        None => {
            let _ = writeln!(
                s,
                "  {:<22}{:>10}   (not in the dump or not kept by this kernel)",
                format!("{label}:"),
                "?"
            );
        }
    }
}

fn optional(s: &mut String, label: &str, f: &Option<Figure>) {
    if let Some(f) = f {
        line(s, label, f);
    }
}

fn descriptors(s: &mut String, what: &str, verb: &str, d: &[PoolDescriptorUsage]) {
    for u in d {
        line(s, &format!("{what} {} {verb}", u.index), &u.usage);
    }
}

/// Whether `!vm` would print its "Excessive ... Pool Usage" line for this pool.
fn excessive(vm: &VmSummary, pool: &str) -> bool {
    vm.warnings
        .iter()
        .any(|w| w.starts_with(&format!("{pool} pool is near exhaustion")))
}

/// The `!vm` section.
pub fn vm_text(vm: &VmSummary) -> String {
    let mut s = String::from("*** Virtual Memory Usage *** (!vm, from the dump)\n");
    optional(&mut s, "Available Pages", &vm.available);
    descriptors(&mut s, "NonPagedPool", "Used", &vm.nonpaged_pools);
    always(&mut s, "NonPagedPool Usage", &vm.nonpaged_in_use);
    always(&mut s, "NonPagedPool Max", &vm.nonpaged_max);
    if excessive(vm, "nonpaged") {
        s.push_str("  ********** Excessive NonPaged Pool Usage *****\n");
    }
    descriptors(&mut s, "PagedPool", "Usage", &vm.paged_pools);
    if excessive(vm, "paged") {
        s.push_str("  ********** Excessive Paged Pool Usage *****\n");
    }
    always(&mut s, "PagedPool Usage", &vm.paged_in_use);
    always(&mut s, "PagedPool Maximum", &vm.paged_max);
    optional(&mut s, "Session Commit", &vm.session_commit);
    optional(&mut s, "Special Pool", &vm.special_pool);
    optional(&mut s, "PagedPool Commit", &vm.paged_commit);
    optional(&mut s, "Committed pages", &vm.commit_charge);
    optional(&mut s, "Commit limit", &vm.commit_limit);
    if vm
        .warnings
        .iter()
        .any(|w| w.starts_with("committed pages are near"))
    {
        s.push_str("  ********** Number of committed pages is near limit ********\n");
    }
    optional(&mut s, "Peak commitment", &vm.commit_peak);
    failures(&mut s, vm);
    sessions(&mut s, vm);
    s
}

/// The allocation failure counters the kernel keeps: the non-zero ones, or that all are zero.
fn failures(s: &mut String, vm: &VmSummary) {
    if vm.failures.is_empty() {
        return;
    }
    let nonzero: Vec<_> = vm.failures.iter().filter(|f| f.count != 0).collect();
    if nonzero.is_empty() {
        let _ = writeln!(
            s,
            "  Pool allocation failures: none ({} counters read, all zero)",
            vm.failures.len()
        );
        return;
    }
    let _ = writeln!(s, "  Pool allocation failures:");
    for f in nonzero {
        let _ = writeln!(s, "    {:<34}{:>10}  {}", f.counter, f.count, f.source);
    }
}

/// Each session's paged pool and commit, as `!vm 4` shows them.
fn sessions(s: &mut String, vm: &VmSummary) {
    for x in &vm.sessions {
        let id = x
            .session_id
            .map_or(format!("at {:#x}", x.mm_session_space), |i| i.to_string());
        let _ = writeln!(s, "  Session {id} (!vm 4):");
        let mut sub = String::new();
        optional(&mut sub, "Paged Pool Usage", &x.paged_in_use);
        optional(&mut sub, "NonPaged Pool Usage", &x.nonpaged_in_use);
        optional(&mut sub, "Commit Usage", &x.commit);
        for l in sub.lines() {
            let _ = writeln!(s, "  {l}");
        }
        if let Some(f) = &x.allocation_failures {
            let _ = writeln!(s, "    Session pool allocation failures: {f:?}");
        }
    }
}
