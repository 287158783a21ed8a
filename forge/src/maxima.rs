//! The pool maxima Windows gives a machine: what a kernel of the profile's version writes to
//! MmMaximumNonPagedPoolInBytes and MmSizeOfPagedPoolInBytes (Windows 10: MiState's
//! `Vs.MaximumNonPagedPoolInPages` / `Vs.SizeOfPagedPoolInPages`) for `--size` bytes of
//! physical memory, so that a forged dump's `!vm` figures are those of a real machine of that
//! size: a busy pool far from its maximum, never above it.
//!
//! Sources:
//! - Microsoft, "Memory Limits for Windows and Windows Server Releases"
//!   (<https://learn.microsoft.com/windows/win32/memory/memory-limits-for-windows-releases>),
//!   "Memory and Address Space Limits": nonpaged pool on x86 Windows XP / Server 2003 "256 MB",
//!   paged pool "Windows XP: 490 MB"; 64-bit Windows 7 / Server 2008 R2 nonpaged pool "75% of RAM
//!   up to a maximum of 128 GB", paged pool 128 GB or the system commit limit, whichever is
//!   smaller; Windows 8.1 / Server 2012 R2 and later nonpaged pool "RAM or 16 TB, whichever is
//!   smaller", paged pool "15.5 TB or system commit limit, whichever is smaller" (the rows the
//!   page applies to later releases, Windows 10 and Server 2022 included).
//! - Mark Russinovich, "Pushing the Limits of Windows: Paged and Nonpaged Pool" (2009): 32-bit
//!   XP and Server 2003 size nonpaged pool from physical memory up to the 256 MB limit, and make
//!   paged pool about twice nonpaged pool within what the system address space leaves; the x64
//!   limits of the page above, and the commit limit as the bound on paged pool (Windows
//!   Internals 6th edition, Table 10-4, gives the same 64-bit maxima).
//! - Microsoft KB Q126402, "How Windows NT calculates NonPagedPoolSize and PagedPoolSize": the
//!   x86 formula the 32-bit kernels follow, MaximumNonPagedPoolSize = 1 MB + (physical MB - 4)
//!   x 400 KB (MaxAdditionNonPagedPoolPerMb), and paged pool = 2 x the nonpaged maximum rounded
//!   up to what one page table maps (512 pages with PAE).
//!
//! The commit limit is physical memory plus the paging files; the forged machine has the two
//! paging files of [`crate::pte::PAGING_FILES`] (2.5 GiB), whether or not the scenario plants
//! their `_MMPAGING_FILE`s.

use crate::profiles::ProfileSpec;
use crate::space::{Paging, PAGE};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// XP / Server 2003 x86: the nonpaged pool limit (Memory Limits page).
const X86_NONPAGED_LIMIT: u64 = 256 * MIB;
/// Windows XP x86: the paged pool limit (Memory Limits page).
const XP_PAGED_LIMIT: u64 = 490 * MIB;
/// KB Q126402: DefaultMaximumNonPagedPool and MaxAdditionNonPagedPoolPerMb.
const X86_NONPAGED_BASE: u64 = MIB;
const X86_NONPAGED_PER_MB: u64 = 400 * KIB;
/// What one PAE page table maps (512 PTEs of 4 KiB): paged pool is sized in these.
const PAE_TABLE_SPAN: u64 = 512 * PAGE;
/// Windows 7 / Server 2008 R2 x64: both pools' 128 GB cap; nonpaged pool is 75% of RAM below it.
const WIN7_POOL_LIMIT: u64 = 128 * GIB;
/// Windows 8.1 and later x64: nonpaged pool at most 16 TB, paged pool 15.5 TB.
const WIN81_NONPAGED_LIMIT: u64 = 16 * TIB;
const WIN81_PAGED_LIMIT: u64 = 31 * TIB / 2;

/// The maxima a kernel of `spec`'s version gives a machine with `memory` bytes of RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolMaxima {
    pub nonpaged: u64,
    pub paged: u64,
}

/// The machine's commit limit: physical memory plus its paging files.
pub fn commit_limit(memory: u64) -> u64 {
    let files: u64 = crate::pte::PAGING_FILES.iter().map(|(_, p)| p * PAGE).sum();
    memory + files
}

fn round_up(v: u64, unit: u64) -> u64 {
    v.div_ceil(unit) * unit
}

/// The nonpaged and paged pool maxima for `spec` and `memory` bytes, page-rounded.
pub fn pool_maxima(spec: &ProfileSpec, memory: u64) -> PoolMaxima {
    let (nonpaged, paged) = if spec.paging != Paging::X64 {
        x86_maxima(memory)
    } else if (spec.nt_major, spec.nt_minor) <= (6, 1) {
        (
            (memory / 4 * 3).min(WIN7_POOL_LIMIT),
            commit_limit(memory).min(WIN7_POOL_LIMIT),
        )
    } else {
        (
            memory.min(WIN81_NONPAGED_LIMIT),
            commit_limit(memory).min(WIN81_PAGED_LIMIT),
        )
    };
    PoolMaxima {
        nonpaged: round_up(nonpaged, PAGE),
        paged: round_up(paged, PAGE),
    }
}

/// 32-bit XP: KB Q126402's formula capped at the documented limits.
fn x86_maxima(memory: u64) -> (u64, u64) {
    let mb = memory / MIB;
    let nonpaged =
        (X86_NONPAGED_BASE + mb.saturating_sub(4) * X86_NONPAGED_PER_MB).min(X86_NONPAGED_LIMIT);
    let paged = round_up(2 * nonpaged, PAE_TABLE_SPAN).min(XP_PAGED_LIMIT);
    (nonpaged, paged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::find;

    fn maxima(profile: &str, memory: u64) -> PoolMaxima {
        pool_maxima(find(profile).unwrap(), memory)
    }

    #[test]
    fn xp_follows_kb_q126402_up_to_the_documented_limits() {
        // 256 MiB: 1 MB + 252 x 400 KB = 99.4 MiB nonpaged, paged twice that in 2 MiB steps.
        let m = maxima("xp-2600-x86pae", 256 * MIB);
        assert_eq!(m.nonpaged, MIB + 252 * 400 * KIB);
        assert_eq!(m.paged, 200 * MIB);
        // 2 GiB and 32 GiB: the 256 MB and 490 MB limits.
        for memory in [2 * GIB, 32 * GIB] {
            let m = maxima("xp-2600-x86pae", memory);
            assert_eq!((m.nonpaged, m.paged), (256 * MIB, 490 * MIB));
        }
    }

    #[test]
    fn windows_7_x64_gives_three_quarters_of_ram_and_the_commit_limit() {
        let m = maxima("win7-7601-x64", 32 * GIB);
        assert_eq!(m.nonpaged, 24 * GIB);
        assert_eq!(m.paged, 32 * GIB + 2560 * MIB);
        let m = maxima("win7-7601-x64", 512 * GIB);
        assert_eq!((m.nonpaged, m.paged), (128 * GIB, 128 * GIB));
    }

    #[test]
    fn windows_10_and_2022_give_ram_and_the_commit_limit() {
        for p in ["win10-17763-x64", "win10-19041-x64", "server2022-20348-x64"] {
            let m = maxima(p, 32 * GIB);
            assert_eq!(
                (m.nonpaged, m.paged),
                (32 * GIB, 32 * GIB + 2560 * MIB),
                "{p}"
            );
        }
    }

    #[test]
    fn maxima_are_whole_pages() {
        for memory in [256 * MIB + 4096, 3 * GIB + 12288] {
            for p in crate::profiles::PROFILES {
                let m = pool_maxima(p, memory);
                assert_eq!((m.nonpaged % PAGE, m.paged % PAGE), (0, 0), "{}", p.name);
            }
        }
    }
}
