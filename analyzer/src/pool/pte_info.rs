//! Which PTE layout the pool walks read invalid entries with, and the kernel's swizzle mask:
//! chosen once per dump (`memory::pte` decodes; this says what was used, for the report).

use super::{hex_opt, LayoutSource};
use crate::memory::pte::read_invalid_pte_mask;
use crate::memory::{PagingMode, PteFormat, PteFormatSource, VirtualMemory};
use crate::symbols::Profile;
use serde::Serialize;

/// The PTE layout of a walk, as the report gives it (docs/json.md `pte_layout`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PteInfo {
    /// `"profile"`: `_MMPTE_SOFTWARE`/`_MMPTE_TRANSITION` of the kernel's symbols;
    /// `"built-in"`: the paging mode's usual positions (memory::pte).
    pub source: LayoutSource,
    /// The kernel's `InvalidPteMask`, when read (x64 kernels that swizzle invalid PTEs).
    #[serde(serialize_with = "hex_opt")]
    pub invalid_pte_mask: Option<u64>,
    /// `"MiInvalidPteMask"` or `"MiState.Hardware.InvalidPteMask"`.
    pub invalid_pte_mask_source: Option<&'static str>,
}

impl PteInfo {
    /// Whether a swizzled invalid PTE may have been misread (x64 layout with a SwizzleBit
    /// and no mask): a warning when the walks then count pages paged out.
    pub fn swizzle_unknown(&self, format: &PteFormat) -> bool {
        format.swizzle.is_some() && self.invalid_pte_mask.is_none()
    }
}

/// The kernel's PTE layout for `mode` and its mask, read through `mem` (the kernel image's
/// data is always valid memory, whatever the layout).
pub fn kernel_pte_format(
    mem: &dyn VirtualMemory,
    profile: Option<&Profile>,
    kernel_base: u64,
    mode: PagingMode,
) -> (PteFormat, PteInfo) {
    let format = PteFormat::for_kernel(profile, mode);
    let mask = match (profile, format.swizzle) {
        (Some(p), Some(_)) => read_invalid_pte_mask(mem, p, kernel_base),
        _ => None,
    };
    let info = PteInfo {
        source: match format.source {
            PteFormatSource::Profile => LayoutSource::Profile,
            PteFormatSource::BuiltIn => LayoutSource::BuiltIn,
        },
        invalid_pte_mask: mask.map(|m| m.0),
        invalid_pte_mask_source: mask.map(|m| m.1),
    };
    let format = format.with_invalid_pte_mask(mask.map_or(0, |m| m.0));
    (format, info)
}
