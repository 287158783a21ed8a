//! The report's overview figures: the bugcheck, the `!vm` pool gauges, the block walk's
//! totals, and the loaded modules with their symbol status.

use super::blocks::BlockAggregator;
use crate::dump::Dump;
use crate::kernel::KernelInfo;
use crate::pool::BlockSource;
use crate::report::analysis::*;
use crate::report::hex::Hex;
use crate::report::pool::PoolReport;
use crate::symbols::resolve::SymbolStatus;
use std::collections::BTreeMap;

pub(super) fn bugcheck(kernel: &KernelInfo) -> AnalysisBugcheck {
    let b = &kernel.bugcheck;
    let base = b
        .name
        .as_ref()
        .map_or(b.code & !0x1000_0000, |n| n.base_code);
    AnalysisBugcheck {
        code: Hex(u64::from(b.code)),
        name: b.name.as_ref().map(|n| n.name.clone()),
        params: [0, 1, 2, 3].map(|i| Hex(b.params.get(i).map_or(0, |p| p.value))),
        pool_related: POOL_BUGCHECKS.contains(&base),
        faulting: b.faulting.as_ref().and_then(|f| {
            crate::kernel::bugcheck::module_offset(f.address, &kernel.modules.modules)
        }),
        name_source: b.name.as_ref().map(|n| n.source),
        description: crate::report::bugcheck::describe_bugcheck(
            b.code,
            b.params.clone().map(|p| p.value),
            &kernel.modules.modules,
        ),
        faulting_symbol: None,
        faulting_source: None,
    }
}

pub(super) fn pools(pool: &PoolReport) -> Vec<PoolGauge> {
    let vm = &pool.vm;
    let gauge = |name: PoolName,
                 in_use: &Option<crate::pool::vm::Figure>,
                 max: &Option<crate::pool::vm::Figure>,
                 commit: Option<&crate::pool::vm::Figure>| {
        let in_use = in_use.as_ref()?;
        let max = max.as_ref().map(|f| f.bytes).filter(|&m| m > 0);
        let used_fraction = max.map(|m| in_use.bytes as f64 / m as f64);
        Some(PoolGauge {
            pool: name,
            in_use: in_use.bytes,
            max,
            commit: commit.map(|f| f.bytes),
            used_fraction,
            near_exhaustion: near_exhaustion(name, in_use.bytes, max),
            source: in_use.source.clone(),
        })
    };
    [
        gauge(
            PoolName::Paged,
            &vm.paged_in_use,
            &vm.paged_max,
            vm.paged_commit.as_ref(),
        ),
        gauge(
            PoolName::Nonpaged,
            &vm.nonpaged_in_use,
            &vm.nonpaged_max,
            None,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(super) fn block_totals(pool: &PoolReport, agg: &BlockAggregator, dump: &Dump) -> BlockTotals {
    let get = |s: BlockSource| agg.totals.get(&s).copied().unwrap_or_default();
    let missing = pool.missing_pool_pages.unwrap_or(0);
    let seg_ok = pool.dump.build < crate::pool::scan::SEGMENT_HEAP_BUILD
        || pool
            .segment_heap
            .as_ref()
            .is_some_and(|s| !s.truncated && s.problems.is_empty());
    BlockTotals {
        classic: get(BlockSource::Classic),
        big: get(BlockSource::Big),
        lfh: get(BlockSource::Lfh),
        vs: get(BlockSource::Vs),
        free_blocks: agg.free_blocks,
        missing_pool_pages: missing,
        complete: dump.triage().is_none()
            && pool.pages.as_ref().is_some_and(|p| !p.truncated)
            && pool.big_pages.is_some()
            && missing == 0
            && seg_ok,
    }
}

pub(super) fn modules(
    kernel: &KernelInfo,
    statuses: &BTreeMap<String, SymbolStatus>,
) -> Vec<AnalysisModule> {
    kernel
        .modules
        .modules
        .iter()
        .map(|m| {
            let cv = m.pe.as_ref().and_then(|pe| pe.codeview.as_ref());
            AnalysisModule {
                name: m.name.clone(),
                base: Hex(m.base),
                size: u64::from(m.size),
                timestamp: m.timestamp.map(|t| Hex(u64::from(t))),
                pdb: cv.map(|cv| ModulePdb {
                    name: cv.pdb_name().to_string(),
                    guid: cv.guid.clone(),
                    age: cv.age,
                }),
                windows: crate::attribution::windows::windows_basis(m, kernel.kernel_base),
                symbols_source: None,
                line_info: None,
                symbols: statuses
                    .get(&m.name)
                    .map_or("not looked up", |s| s.status.as_str())
                    .to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// The analyze report's bugcheck for the corpus triage dump: named as the inspect report
    /// names it, and described from the 0x7E page.
    #[test]
    fn triage_bugcheck_named_and_described() {
        let path = crate::test_corpus::corpus("dumps/triage_x64.dmp");
        let dump = crate::dump::Dump::open(path).expect("the corpus triage dump opens");
        let b = super::bugcheck(&crate::kernel::read_kernel(&dump));
        assert_eq!(
            b.name.as_deref(),
            Some("SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M")
        );
        assert!(!b.pool_related);
        let d = b.description.expect("described");
        assert_eq!(
            d.params[1].module_offset.as_deref(),
            Some("amdppm.sys+0x334c")
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["params"][1]["kind"], "code");
        assert_eq!(
            json["params"][1]["meaning"],
            "The address where the exception occurred"
        );
    }
}
