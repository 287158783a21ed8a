//! The report as the rule reads it: pools in use and their maxima, Windows modules and tags,
//! each tag's owners.

use super::Facts;
use crate::attribution::{builtin, Source};
use crate::report::analysis::*;
use std::collections::BTreeSet;

pub(super) struct Ctx<'a> {
    pub r: &'a AnalysisReport,
    pub facts: &'a Facts,
    windows_modules: BTreeSet<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(r: &'a AnalysisReport, facts: &'a Facts) -> Self {
        let mut windows_modules: BTreeSet<String> = ["nt", "hal.dll", "<any>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (_, b, _) in builtin::BUILT_IN {
            windows_modules.insert(b.to_ascii_lowercase());
        }
        if let Some(kb) = r.dump.kernel_base {
            for m in r.modules.iter().filter(|m| m.base == kb) {
                windows_modules.insert(m.name.to_ascii_lowercase());
            }
        }
        for m in r.modules.iter().filter(|m| m.windows.is_some()) {
            windows_modules.insert(m.name.to_ascii_lowercase());
        }
        Ctx {
            r,
            facts,
            windows_modules,
        }
    }

    pub fn is_windows_module(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        n == "<any>" || n.starts_with("nt!") || self.windows_modules.contains(&n)
    }

    /// A pool's bytes in use: `!vm`'s figure, else the sum of its tags' outstanding bytes.
    pub fn in_use(&self, pool: PoolName) -> Option<u64> {
        match self.gauge(pool) {
            Some(g) if g.in_use > 0 => Some(g.in_use),
            _ => {
                let sum: u64 = self.r.tags.iter().map(|t| bytes_in(t, pool)).sum();
                (sum > 0).then_some(sum)
            }
        }
    }

    pub fn gauge(&self, pool: PoolName) -> Option<&PoolGauge> {
        self.r.pools.iter().find(|p| p.pool == pool)
    }

    pub fn near(&self, pool: PoolName) -> bool {
        self.gauge(pool).is_some_and(|g| g.near_exhaustion)
    }

    /// Windows gives the tag to itself in the built-in table, or only Windows modules' code
    /// allocates with it. A pooltag-file line (a description) never decides it: Microsoft's
    /// own pooltag.txt gives 'None' to nt!Vf. (A driver's share of a Windows tag it also
    /// allocates with is still its own when provenance splits the tag's blocks.)
    pub fn windows_tag(&self, t: &TagReport) -> bool {
        let built_in = t.owners.iter().any(|o| {
            o.source == Source::BuiltIn
                && o.module
                    .as_deref()
                    .is_some_and(|m| m != "<any>" && self.is_windows_module(m))
        });
        let code: Vec<&str> = t
            .owners
            .iter()
            .filter(|o| is_code(o.source))
            .filter_map(|o| o.module.as_deref())
            .collect();
        built_in || (!code.is_empty() && code.iter().all(|m| self.is_windows_module(m)))
    }

    /// The tag's non-Windows owners and whether the evidence is their code (or blocks);
    /// failing both, the loaded modules a pooltag-file line names.
    pub fn owners(&self, t: &TagReport) -> (Vec<String>, bool) {
        if self.windows_tag(t) {
            return (Vec::new(), false);
        }
        let mut code: Vec<String> = t
            .owners
            .iter()
            .filter(|o| {
                is_code(o.source)
                    && (t.tag != "None" || o.source == Source::DriverCallsUntaggedAllocator)
            })
            .filter_map(|o| o.module.clone())
            .filter(|m| !self.is_windows_module(m))
            .collect();
        code.sort();
        code.dedup();
        if !code.is_empty() {
            return (code, true);
        }
        let mut named: Vec<String> = t
            .owners
            .iter()
            .filter(|o| o.source == Source::PoolTagFile)
            .filter_map(|o| o.module.clone())
            .filter(|m| !self.is_windows_module(m))
            .filter_map(|m| {
                self.r
                    .drivers
                    .iter()
                    .find(|d| d.module.eq_ignore_ascii_case(&m))
                    .map(|d| d.module.clone())
            })
            .collect();
        named.sort();
        named.dedup();
        (named, false)
    }

    pub fn tag(&self, name: &str) -> Option<&TagReport> {
        self.r.tags.iter().find(|t| t.tag == name)
    }

    /// The largest tag of a pool.
    pub fn top_tag(&self, pool: PoolName) -> Option<&TagReport> {
        self.r
            .tags
            .iter()
            .filter(|t| bytes_in(t, pool) > 0)
            .max_by(|a, b| {
                bytes_in(a, pool)
                    .cmp(&bytes_in(b, pool))
                    .then(b.tag.cmp(&a.tag))
            })
    }
}

pub(super) fn is_code(s: Source) -> bool {
    matches!(
        s,
        Source::DriverCodeAllocation | Source::DriverCallsUntaggedAllocator
    )
}

pub(super) fn bytes_in(t: &TagReport, pool: PoolName) -> u64 {
    match pool {
        PoolName::Paged => t.paged_bytes,
        PoolName::Nonpaged => t.nonpaged_bytes,
    }
}

pub(super) fn total(t: &TagReport) -> u64 {
    t.paged_bytes.saturating_add(t.nonpaged_bytes)
}

pub(super) fn main_pool(paged: u64, nonpaged: u64) -> PoolName {
    if nonpaged > paged {
        PoolName::Nonpaged
    } else {
        PoolName::Paged
    }
}
