//! Pool quota: the active process list, and which process each quota-charged block is
//! billed to, and how much is billed to none (allocations drivers made for themselves).
//!
//! ProcessBilled: a plain EPROCESS pointer before Windows 8; from Windows 8 on x64 it is stored
//! as `EPROCESS ^ ExpPoolQuotaCookie ^ address of the POOL_HEADER`.

use super::pages::Block;
use super::{hex, hex_opt, KernelContext, PoolError};
use crate::memory::VirtualMemory;
use serde::Serialize;
use std::collections::HashMap;

/// Most processes walked.
pub const MAX_PROCESSES: usize = 65_536;

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
