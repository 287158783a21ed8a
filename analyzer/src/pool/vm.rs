//! The `!vm` pool summary (pool in use, maximum, commit, with a warning near exhaustion) and
//! pool quota: which process each quota-charged block is billed to, and how much is billed to
//! none (allocations drivers made for themselves).
//!
//! The figures are kernel variables: MmSizeOfPagedPoolInBytes and MmMaximumNonPagedPoolInBytes
//! (bytes), MmPagedPoolCommit and MmAllocatedNonPagedPool (pages). Their addresses come from
//! the debugger data block or the profile; Windows 10 keeps few of them, so when a figure is
//! missing the in-use numbers fall back to the tag tables' outstanding bytes, and each figure
//! says where it came from. Windows 10 keeps the figures inside nt!MiState ([`MiState`]).
//!
//! ProcessBilled: a plain EPROCESS pointer before Windows 8; from Windows 8 on x64 it is stored
//! as `EPROCESS ^ ExpPoolQuotaCookie ^ address of the POOL_HEADER`.

use super::pages::Block;
use super::tags::TagStats;
use super::{hex, hex_opt, KernelContext, PoolError};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use serde::Serialize;
use std::collections::HashMap;

/// Percent of its maximum above which nonpaged pool is near exhaustion: WinDbg's `!vm` prints
/// "Excessive NonPaged Pool Usage" when the pages in use exceed 4/5 of the maximum (the kdexts
/// `!vm` source, memory.c). The one definition: the `!vm` warning here and the analysis
/// report's `pools[].near_exhaustion` both use [`near_exhaustion`].
pub const NONPAGED_EXHAUSTION_PERCENT: u64 = 80;
/// Percent for paged pool: `!vm` prints "Excessive Paged Pool Usage" above 95% of the
/// maximum (paged pool is far larger and pages out, so it warns later).
pub const PAGED_EXHAUSTION_PERCENT: u64 = 95;

/// Whether `in_use` bytes exceed the pool's `!vm` threshold of `max` (strictly, as `!vm`
/// compares); never for an unknown (zero) maximum.
pub fn near_exhaustion(paged: bool, in_use: u64, max: u64) -> bool {
    let pct = if paged {
        PAGED_EXHAUSTION_PERCENT
    } else {
        NONPAGED_EXHAUSTION_PERCENT
    };
    max > 0 && u128::from(in_use) * 100 > u128::from(max) * u128::from(pct)
}
/// Most processes walked.
pub const MAX_PROCESSES: usize = 65_536;

/// One figure of the summary, in bytes, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub bytes: u64,
    /// "kdbg:MmAllocatedNonPagedPool", "profile:MmSizeOfPagedPoolInBytes", "tag tables".
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VmSummary {
    pub paged_in_use: Option<Figure>,
    pub paged_max: Option<Figure>,
    pub paged_commit: Option<Figure>,
    pub nonpaged_in_use: Option<Figure>,
    pub nonpaged_max: Option<Figure>,
    /// "nonpaged pool is at 95% of its maximum ..." lines.
    pub warnings: Vec<String>,
}

/// Reads the summary. `kdbg_values` are the dereferenced debugger-data-block variables
/// (`KernelInfo::kdbg_values`); `tags` the tag tables' rows, for the fallback.
pub fn vm_summary(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    kdbg_values: &[(&str, u64)],
    tags: Option<&[TagStats]>,
) -> VmSummary {
    let var = |name: &'static str, unit: u64| -> Option<Figure> {
        if let Some(&(_, v)) = kdbg_values.iter().find(|(n, _)| *n == name) {
            return Some(Figure {
                bytes: v.saturating_mul(unit),
                source: format!("kdbg:{name}"),
            });
        }
        let va = ctx.global(name)?;
        let v = mem.read_ptr(va).ok()?;
        Some(Figure {
            bytes: v.saturating_mul(unit),
            source: format!("profile:{name}"),
        })
    };
    let paged_commit = var("MmPagedPoolCommit", PAGE_SIZE);
    let mi = MiState::read(mem, ctx);
    let mut s = VmSummary {
        // !vm's paged usage: MmPagedPoolInfo where the kernel has it, else MiState's copy
        // (Windows 10), else the commit.
        paged_in_use: paged_pool_info(mem, ctx)
            .or_else(|| mi.paged_in_use.clone())
            .or_else(|| paged_commit.clone()),
        paged_max: var("MmSizeOfPagedPoolInBytes", 1).or_else(|| mi.paged_max.clone()),
        paged_commit,
        nonpaged_in_use: var("MmAllocatedNonPagedPool", PAGE_SIZE)
            .or_else(|| mi.nonpaged_in_use.clone()),
        nonpaged_max: var("MmMaximumNonPagedPoolInBytes", 1).or_else(|| mi.nonpaged_max.clone()),
        warnings: Vec::new(),
    };
    if let Some(rows) = tags {
        let sum = |f: fn(&TagStats) -> u64| rows.iter().fold(0u64, |a, r| a.saturating_add(f(r)));
        if s.paged_in_use.is_none() {
            s.paged_in_use = Some(Figure {
                bytes: sum(|r| r.paged_bytes),
                source: "tag tables".into(),
            });
        }
        if s.nonpaged_in_use.is_none() {
            s.nonpaged_in_use = Some(Figure {
                bytes: sum(|r| r.nonpaged_bytes),
                source: "tag tables".into(),
            });
        }
    }
    for (what, used, max) in [
        ("paged", &s.paged_in_use, &s.paged_max),
        ("nonpaged", &s.nonpaged_in_use, &s.nonpaged_max),
    ] {
        if let (Some(u), Some(m)) = (used, max) {
            if near_exhaustion(what == "paged", u.bytes, m.bytes) {
                let pct = u128::from(u.bytes) * 100 / u128::from(m.bytes);
                s.warnings.push(format!(
                    "{what} pool is near exhaustion: {} of {} bytes in use ({pct}% of the maximum)",
                    u.bytes, m.bytes
                ));
            }
        }
    }
    s
}

/// MmPagedPoolInfo.AllocatedPagedPool (pages), when the profile describes it (XP to 7).
fn paged_pool_info(mem: &dyn VirtualMemory, ctx: &KernelContext) -> Option<Figure> {
    let p = ctx.profile?;
    let info = ctx.global("MmPagedPoolInfo")?;
    let off = p.offset("_MM_PAGED_POOL_INFO", "AllocatedPagedPool")?;
    let pages = mem
        .read_ptr(info.checked_add(off)?)
        .ok()
        .filter(|&p| p != 0)?;
    Some(Figure {
        bytes: pages.saturating_mul(PAGE_SIZE),
        source: "profile:MmPagedPoolInfo.AllocatedPagedPool".into(),
    })
}

/// The pool figures Windows 10 keeps in nt!MiState (`_MI_SYSTEM_INFORMATION`) instead of the
/// variables of earlier kernels: `Vs` (`_MI_VISIBLE_STATE`) holds `PagedPoolInfo`
/// (`_MM_PAGED_POOL_INFO`, AllocatedPagedPool in pages), `SizeOfPagedPoolInPages` and
/// `MaximumNonPagedPoolInPages`; `Pools` (`_MI_POOL_STATE`) holds `AllocatedNonPagedPool`
/// (pages). Names and offsets come from the kernel's profile (the 19041 and 20348 ISFs carry
/// them); each figure is read only if its field is there, and a zero is taken as "not set".
#[derive(Debug, Default)]
struct MiState {
    paged_in_use: Option<Figure>,
    paged_max: Option<Figure>,
    nonpaged_in_use: Option<Figure>,
    nonpaged_max: Option<Figure>,
}

impl MiState {
    fn read(mem: &dyn VirtualMemory, ctx: &KernelContext) -> MiState {
        let (Some(p), Some(base)) = (ctx.profile, ctx.global("MiState")) else {
            return MiState::default();
        };
        const SI: &str = "_MI_SYSTEM_INFORMATION";
        let pages = |path: &[(&str, &str)], name: &str| -> Option<Figure> {
            let mut va = base;
            for (ty, field) in path {
                va = va.checked_add(p.offset(ty, field)?)?;
            }
            let v = mem.read_u64(va).ok().filter(|&v| v != 0)?;
            Some(Figure {
                bytes: v.saturating_mul(PAGE_SIZE),
                source: format!("profile:MiState.{name}"),
            })
        };
        const VS: (&str, &str) = (SI, "Vs");
        MiState {
            paged_in_use: pages(
                &[
                    VS,
                    ("_MI_VISIBLE_STATE", "PagedPoolInfo"),
                    ("_MM_PAGED_POOL_INFO", "AllocatedPagedPool"),
                ],
                "Vs.PagedPoolInfo.AllocatedPagedPool",
            ),
            paged_max: pages(
                &[VS, ("_MI_VISIBLE_STATE", "SizeOfPagedPoolInPages")],
                "Vs.SizeOfPagedPoolInPages",
            ),
            nonpaged_in_use: pages(
                &[(SI, "Pools"), ("_MI_POOL_STATE", "AllocatedNonPagedPool")],
                "Pools.AllocatedNonPagedPool",
            ),
            nonpaged_max: pages(
                &[VS, ("_MI_VISIBLE_STATE", "MaximumNonPagedPoolInPages")],
                "Vs.MaximumNonPagedPoolInPages",
            ),
        }
    }
}

/// A process from the active process list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    #[serde(serialize_with = "hex")]
    pub eprocess: u64,
    pub pid: u64,
    pub name: String,
}

/// Walks PsActiveProcessHead with the profile's `_EPROCESS` offsets. Stops (with what it has)
/// at an unreadable link, a loop, or [`MAX_PROCESSES`].
pub fn walk_processes(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    head: u64,
) -> Result<(Vec<Process>, Vec<String>), PoolError> {
    let p = ctx.profile.ok_or_else(|| PoolError::Missing {
        what: "_EPROCESS layout",
        why: "needs the kernel's symbols".into(),
    })?;
    let off = |f: &'static str| {
        p.offset("_EPROCESS", f).ok_or_else(|| PoolError::Missing {
            what: f,
            why: "not in the profile's _EPROCESS".into(),
        })
    };
    let (links, pid_off, name_off) = (
        off("ActiveProcessLinks")?,
        off("UniqueProcessId")?,
        off("ImageFileName")?,
    );
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut link = mem.read_ptr(head).map_err(|source| PoolError::Memory {
        what: "PsActiveProcessHead",
        va: head,
        source,
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut unreadable = Vec::new();
    while link != head && link != 0 {
        if out.len() >= MAX_PROCESSES || !seen.insert(link) {
            warnings.push(format!(
                "process list does not return to its head (stopped at {link:#x})"
            ));
            break;
        }
        let ep = link.wrapping_sub(links);
        let pid = mem.read_ptr(ep.wrapping_add(pid_off));
        let mut name = [0u8; 15];
        let name_ok = mem.read(ep.wrapping_add(name_off), &mut name);
        match (pid, name_ok) {
            (Ok(pid), Ok(())) => {
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                let name = name[..end]
                    .iter()
                    .map(|&b| {
                        if (0x20..0x7f).contains(&b) {
                            b as char
                        } else {
                            '?'
                        }
                    })
                    .collect();
                out.push(Process {
                    eprocess: ep,
                    pid,
                    name,
                });
            }
            _ => unreadable.push(ep),
        }
        match mem.read_ptr(link) {
            Ok(next) => link = next,
            Err(e) => {
                warnings.push(format!("process list broken at {link:#x}: {e}"));
                break;
            }
        }
    }
    if let Some(first) = unreadable.first() {
        warnings.push(format!(
            "{} EPROCESS structures not in the dump (first at {first:#x})",
            unreadable.len()
        ));
    }
    Ok((out, warnings))
}

/// How ProcessBilled is stored on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaEncoding {
    Plain,
    /// Windows 8+ x64: XORed with ExpPoolQuotaCookie and the header's address.
    Cookie(u64),
}

impl QuotaEncoding {
    /// Encoded when the kernel has ExpPoolQuotaCookie (x64 Windows 8+) and it is readable.
    pub fn for_kernel(
        mem: &dyn VirtualMemory,
        ctx: &KernelContext,
    ) -> Result<QuotaEncoding, PoolError> {
        if !ctx.is_x64() || ctx.build < 9200 {
            return Ok(QuotaEncoding::Plain);
        }
        let va = ctx
            .global("ExpPoolQuotaCookie")
            .ok_or_else(|| PoolError::Missing {
                what: "ExpPoolQuotaCookie",
                why: "ProcessBilled is encoded on this kernel and decoding needs its symbols"
                    .into(),
            })?;
        let cookie = mem.read_u64(va).map_err(|source| PoolError::Memory {
            what: "ExpPoolQuotaCookie",
            va,
            source,
        })?;
        Ok(QuotaEncoding::Cookie(cookie))
    }

    pub fn decode(self, process_billed: u64, header_address: u64) -> u64 {
        match self {
            QuotaEncoding::Plain => process_billed,
            QuotaEncoding::Cookie(c) => process_billed ^ c ^ header_address,
        }
    }
}

/// Pool charged to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaCharge {
    #[serde(serialize_with = "hex")]
    pub eprocess: u64,
    /// `None` when the EPROCESS is not in the active process list (exited, or decoding wrong).
    pub pid: Option<u64>,
    pub name: Option<String>,
    pub blocks: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuotaReport {
    /// Largest first.
    pub processes: Vec<QuotaCharge>,
    /// Allocated blocks charged to no process, and their bytes.
    pub uncharged_blocks: u64,
    pub uncharged_bytes: u64,
    #[serde(serialize_with = "hex_opt")]
    pub cookie: Option<u64>,
}

/// Adds up allocated blocks by the process they are charged to.
pub struct QuotaAccumulator {
    encoding: QuotaEncoding,
    by_process: HashMap<u64, (u64, u64)>,
    uncharged: (u64, u64),
}

impl QuotaAccumulator {
    pub fn new(encoding: QuotaEncoding) -> Self {
        QuotaAccumulator {
            encoding,
            by_process: HashMap::new(),
            uncharged: (0, 0),
        }
    }

    pub fn add(&mut self, b: &Block) {
        if !b.allocated {
            return;
        }
        match b.process_billed.filter(|_| b.pool_type.quota) {
            Some(raw) => {
                let ep = self.encoding.decode(raw, b.address);
                let e = self.by_process.entry(ep).or_insert((0, 0));
                e.0 += 1;
                e.1 = e.1.saturating_add(b.size);
            }
            None => {
                self.uncharged.0 += 1;
                self.uncharged.1 = self.uncharged.1.saturating_add(b.size);
            }
        }
    }

    pub fn finish(self, processes: &[Process]) -> QuotaReport {
        let mut rows: Vec<QuotaCharge> = self
            .by_process
            .into_iter()
            .map(|(ep, (blocks, bytes))| {
                let p = processes.iter().find(|p| p.eprocess == ep);
                QuotaCharge {
                    eprocess: ep,
                    pid: p.map(|p| p.pid),
                    name: p.map(|p| p.name.clone()),
                    blocks,
                    bytes,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.eprocess.cmp(&b.eprocess)));
        QuotaReport {
            processes: rows,
            uncharged_blocks: self.uncharged.0,
            uncharged_bytes: self.uncharged.1,
            cookie: match self.encoding {
                QuotaEncoding::Cookie(c) => Some(c),
                QuotaEncoding::Plain => None,
            },
        }
    }
}

#[cfg(test)]
#[path = "vm_tests.rs"]
mod tests;
