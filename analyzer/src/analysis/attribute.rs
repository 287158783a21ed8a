//! Joining the pool's tags to the code that allocates them: the loaded drivers' code is
//! scanned for the tags the tag tables and the big page table hold (a real system has a few
//! thousand), and each tag gets its mappings (code evidence, the pooltag file, the built-in
//! table).

use crate::attribution::{Attributor, PoolTagFile};
use crate::kernel::KernelInfo;
use crate::memory::VirtualMemory;
use crate::pool::bigpages::BigPages;
use crate::pool::tags::TagTables;
use crate::pool::Tag;
use crate::symbols::Profile;

/// Most tags searched for in drivers' code bytes.
pub const MAX_CANDIDATE_TAGS: usize = 20_000;

/// The tags of the pool's tables, as the attribution searches for them.
pub struct PoolTags<'a> {
    pub tables: Option<&'a TagTables>,
    pub big_pages: Option<&'a BigPages>,
}

/// The attributor for the pool's tags: with `scan_drivers`, every loaded driver's code is
/// read from the dump and scanned.
pub fn attribute(
    mem: &dyn VirtualMemory,
    kernel: &KernelInfo,
    profile: Option<&Profile>,
    tags: PoolTags,
    pooltag: Option<PoolTagFile>,
    scan_drivers: bool,
) -> Attributor {
    let mut attributor = Attributor::new(pooltag);
    if scan_drivers {
        let ex_allocate_pool = profile
            .and_then(|p| p.global("ExAllocatePool"))
            .zip(kernel.kernel_base)
            .and_then(|(rva, base)| base.checked_add(rva));
        attributor.add_modules(
            mem,
            &kernel.modules.modules,
            &candidate_tags(&tags),
            ex_allocate_pool,
        );
    }
    attributor
}

/// The tags worth a byte search in drivers' code: those of the tag tables (system and
/// session) and of the big page table.
fn candidate_tags(tags: &PoolTags) -> Vec<Tag> {
    let mut candidates: Vec<Tag> = tags
        .tables
        .iter()
        .flat_map(|t| t.tags.iter().chain(t.session.iter().flatten()))
        .map(|s| s.tag)
        .collect();
    candidates.extend(
        tags.big_pages
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| e.tag)),
    );
    candidates.sort_unstable();
    candidates.dedup();
    candidates.truncate(MAX_CANDIDATE_TAGS);
    candidates
}
