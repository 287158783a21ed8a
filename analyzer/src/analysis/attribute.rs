//! Joining the pool's tags to the code that allocates them: the loaded drivers' code is
//! scanned for the tags the tag tables and the big page table hold (a real system has a few
//! thousand), and each tag gets its mappings (code evidence, the pooltag file, the built-in
//! table).

use crate::attribution::{Attributor, PoolTagFile};
use crate::kernel::KernelInfo;
use crate::memory::VirtualMemory;
use crate::pool::{PoolScan, Tag};
use crate::symbols::Profile;

/// Most tags searched for in drivers' code bytes.
pub const MAX_CANDIDATE_TAGS: usize = 20_000;

/// The attributor for `scan`'s tags: with `scan_drivers`, every loaded driver's code is read
/// from the dump and scanned.
pub fn attribute(
    mem: &dyn VirtualMemory,
    kernel: &KernelInfo,
    profile: Option<&Profile>,
    scan: &PoolScan,
    pooltag: Option<PoolTagFile>,
    scan_drivers: bool,
) -> Attributor {
    let mut attributor = Attributor::new(pooltag);
    if scan_drivers {
        let ex_allocate_pool = profile
            .and_then(|p| p.global("ExAllocatePool"))
            .and_then(|rva| scan.kernel_base.checked_add(rva));
        attributor.add_modules(
            mem,
            &kernel.modules.modules,
            &candidate_tags(scan),
            ex_allocate_pool,
        );
    }
    attributor
}

/// The tags worth a byte search in drivers' code: those of the tag tables (system and
/// session) and of the big page table.
fn candidate_tags(scan: &PoolScan) -> Vec<Tag> {
    let mut candidates: Vec<Tag> = scan
        .tables
        .iter()
        .flat_map(|t| t.tags.iter().chain(t.session.iter().flatten()))
        .map(|s| s.tag)
        .collect();
    candidates.extend(
        scan.big_pages
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| e.tag)),
    );
    candidates.sort_unstable();
    candidates.dedup();
    candidates.truncate(MAX_CANDIDATE_TAGS);
    candidates
}
