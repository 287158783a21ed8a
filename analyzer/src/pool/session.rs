//! Session pool tag statistics, as `!poolused 8` shows them (WinDbg: "bit 3 (0x8) displays
//! session pool instead of standard pool; use !session to switch between sessions").
//!
//! How Windows keeps them (Vista+ x64; decompiled ntoskrnl in public repositories, the corpus
//! ISFs; docs/pool.md "Session pool"): an allocation whose pool type has the session bit (0x20)
//! is counted in `ExpSessionPoolTrackTable` — a pointer to `_POOL_TRACKER_TABLE` entries of the
//! same layout and hash as PoolTrackTable's, `ExpSessionPoolTrackTableSize` of them, never per
//! processor — and, when its tag finds no free entry there, in the session's expansion table
//! `MM_SESSION_SPACE.PoolTrackTableExpansion` (`PoolTrackTableExpansionSize` entries). The
//! pointer is one session-space address (17763+: `&MmSessionSpace->PoolTags`) that every
//! session maps to its own table, so the tables can only be read through the page tables of a
//! process in that session: the dump's own DirectoryTableBase may belong to a process of
//! another session, or to System, which is in none.
//!
//! So each distinct `EPROCESS.Session` (its MM_SESSION_SPACE) is read through the page tables
//! of its first process, the tables of all sessions are summed (a table reached twice through
//! the same physical page is read once), and each session is listed with its own totals. XP
//! has no session tag table (ntkrnlpa.pdb has no ExpSessionPoolTrackTable).

use super::bigpages::{read_big_table, BigPageLayout, BigPages};
use super::pages::PoolRange;
use super::tags::{check_size, Accumulator, TableInfo, TagStats, TrackerLayout};
use super::vm::Process;
use super::PoolKind;
use super::{hex, KernelContext};
use crate::memory::{
    PageTableMemory, PagingMode, PhysicalMemory, PteFormat, VirtualMemory, PAGE_SIZE,
};
use serde::Serialize;

/// Most sessions read (Windows allows thousands on a terminal server; each costs a table read).
pub const MAX_SESSIONS: usize = 1024;

/// One session found on the process list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    /// Its MM_SESSION_SPACE (EPROCESS.Session).
    pub session_space: u64,
    /// DirectoryTableBase of the first process in it.
    pub dtb: u64,
}

/// One session's totals, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// MM_SESSION_SPACE.SessionId, when readable.
    pub session_id: Option<u32>,
    #[serde(serialize_with = "hex")]
    pub mm_session_space: u64,
    /// Tags with a non-zero key in its tables.
    pub tags: u64,
    pub paged_bytes: u64,
    pub nonpaged_bytes: u64,
    /// Its own rows (table + expansion table), for a per-session `!poolused 8` listing; not
    /// in the JSON (`session_tags` sums every session's, filtered by the tag pattern).
    #[serde(skip)]
    pub tag_rows: Vec<TagStats>,
}

/// What the session tables say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTables {
    /// Summed over every session; `None` when no session table was read or all were empty.
    pub rows: Option<Vec<TagStats>>,
    pub tables: Vec<TableInfo>,
    pub sessions: Vec<SessionInfo>,
    pub warnings: Vec<String>,
}

/// The distinct sessions of `processes` (EPROCESS.Session non-zero), each with the page tables
/// of its first process. Empty without the profile's `_EPROCESS.Session`.
pub fn find_sessions(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    processes: &[Process],
) -> Vec<SessionRef> {
    let Some(p) = ctx.profile else {
        return Vec::new();
    };
    let (Some(session), Some(pcb), Some(dtb)) = (
        p.offset("_EPROCESS", "Session"),
        p.offset("_EPROCESS", "Pcb"),
        p.offset("_KPROCESS", "DirectoryTableBase"),
    ) else {
        return Vec::new();
    };
    let mut out: Vec<SessionRef> = Vec::new();
    for pr in processes {
        let Ok(s) = mem.read_ptr(pr.eprocess.wrapping_add(session)) else {
            continue;
        };
        if s == 0 || out.iter().any(|r| r.session_space == s) {
            continue;
        }
        let Ok(d) = mem.read_ptr(pr.eprocess.wrapping_add(pcb).wrapping_add(dtb)) else {
            continue;
        };
        if d == 0 {
            continue;
        }
        out.push(SessionRef {
            session_space: s,
            dtb: d,
        });
        if out.len() >= MAX_SESSIONS {
            break;
        }
    }
    out
}

/// A session's paged pool range (`MM_SESSION_SPACE.PagedPoolStart` .. `PagedPoolEnd`, the end
/// holding the last byte), read through that session's page tables: before 19H1 session pool is
/// classic pool pages there. `None` when the profile lacks the fields or they are unset or
/// implausible (over [`MAX_SESSION_POOL`]).
pub fn session_paged_pool(
    phys: &dyn PhysicalMemory,
    format: PteFormat,
    ctx: &KernelContext,
    s: &SessionRef,
) -> Option<PoolRange> {
    let p = ctx.profile?;
    let start_off = p.offset("_MM_SESSION_SPACE", "PagedPoolStart")?;
    let end_off = p.offset("_MM_SESSION_SPACE", "PagedPoolEnd")?;
    let mem = session_memory(phys, format, s);
    let start = mem.read_ptr(s.session_space.wrapping_add(start_off)).ok()? & !(PAGE_SIZE - 1);
    let last = mem.read_ptr(s.session_space.wrapping_add(end_off)).ok()?;
    let end = last.checked_add(1)?.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    (start != 0 && end > start && end - start <= MAX_SESSION_POOL).then_some(PoolRange {
        start,
        end,
        kind: PoolKind::Paged,
    })
}

/// Every session's big page table (`MM_SESSION_SPACE.PoolTrackBigPages`,
/// `PoolTrackBigPagesSize` entries), read through the session's page tables: the same
/// `_POOL_TRACKER_BIG_PAGES` entries as PoolBigPageTable (decompiled ExGetBigPoolInfo reads
/// either with one loop; ExGetSessionBigPoolInformation attaches to each session to read its
/// own). Entries of all sessions are merged, in session order; `None` when no session has one.
pub fn read_session_big_pages(
    phys: &dyn PhysicalMemory,
    format: PteFormat,
    ctx: &KernelContext,
    sessions: &[SessionRef],
    warnings: &mut Vec<String>,
) -> Option<BigPages> {
    let p = ctx.profile?;
    let layout = BigPageLayout::for_kernel(ctx)?;
    let table_off = p.offset("_MM_SESSION_SPACE", "PoolTrackBigPages")?;
    let size_off = p.offset("_MM_SESSION_SPACE", "PoolTrackBigPagesSize")?;
    let mut out: Option<BigPages> = None;
    for s in sessions {
        let mem = session_memory(phys, format, s);
        let (Ok(table), Ok(n)) = (
            mem.read_ptr(s.session_space.wrapping_add(table_off)),
            mem.read_ptr(s.session_space.wrapping_add(size_off)),
        ) else {
            continue;
        };
        if table == 0 || n == 0 {
            continue;
        }
        match read_big_table(
            &mem,
            layout,
            "MM_SESSION_SPACE.PoolTrackBigPagesSize",
            table,
            n,
        ) {
            Ok(b) => match out.as_mut() {
                None => out = Some(b),
                Some(all) => {
                    all.entries.extend(b.entries);
                    all.table_size += b.table_size;
                    all.free += b.free;
                    all.unreadable += b.unreadable;
                }
            },
            Err(e) => warnings.push(format!("session big pages at {:#x}: {e}", s.session_space)),
        }
    }
    out
}

/// Largest session paged pool range walked (x64 session paged pool is at most a few GiB).
pub const MAX_SESSION_POOL: u64 = 64 << 30;

/// The session's address space: its first process's page tables.
pub fn session_memory<'m>(
    phys: &'m dyn PhysicalMemory,
    format: PteFormat,
    s: &SessionRef,
) -> PageTableMemory<'m> {
    PageTableMemory::with_format(phys, table_base(s.dtb, format.mode), format)
}

/// CR3 bits that are not part of the table address: x64 PCID / flags (low 12 bits), PAE the
/// low 5 bits.
fn table_base(dtb: u64, mode: PagingMode) -> u64 {
    match mode {
        PagingMode::X64 | PagingMode::X86 => dtb & !0xfff,
        PagingMode::X86Pae => dtb & !0x1f,
    }
}

/// Reads every session's tag tables through its own page tables and sums them.
pub fn read_session_tables(
    phys: &dyn PhysicalMemory,
    format: PteFormat,
    ctx: &KernelContext,
    layout: TrackerLayout,
    sessions: &[SessionRef],
) -> SessionTables {
    let mut out = SessionTables::default();
    let (Some(g_table), Some(g_size)) = (
        ctx.global("ExpSessionPoolTrackTable"),
        ctx.global("ExpSessionPoolTrackTableSize"),
    ) else {
        return out;
    };
    let p = ctx.profile;
    let exp_off = p.and_then(|p| p.offset("_MM_SESSION_SPACE", "PoolTrackTableExpansion"));
    let exp_size_off = p.and_then(|p| p.offset("_MM_SESSION_SPACE", "PoolTrackTableExpansionSize"));
    let id_off = p.and_then(|p| p.offset("_MM_SESSION_SPACE", "SessionId"));
    let mut total = Accumulator::new(layout);
    let mut seen_tables: Vec<u64> = Vec::new();
    for s in sessions {
        let mem = session_memory(phys, format, s);
        let id = id_off.and_then(|o| mem.read_u32(s.session_space.wrapping_add(o)).ok());
        let label = match id {
            Some(id) => format!("session {id}"),
            None => format!("session at {:#x}", s.session_space),
        };
        let mut one = Accumulator::new(layout);
        match (mem.read_ptr(g_table), mem.read_ptr(g_size)) {
            (Ok(0), _) | (_, Ok(0)) => {}
            (Ok(t), Ok(n)) => match (
                check_size("ExpSessionPoolTrackTableSize", n),
                mem.translate(t),
            ) {
                (Err(e), _) => out.warnings.push(format!("{label}: {e}")),
                (Ok(()), Ok(pa)) if seen_tables.contains(&pa) => {}
                (Ok(()), pa) => {
                    if let Ok(pa) = pa {
                        seen_tables.push(pa);
                    }
                    let name = format!("ExpSessionPoolTrackTable ({label})");
                    total.add_table(&mem, name.clone(), t, n);
                    out.tables.push(one.add_table(&mem, name, t, n));
                }
            },
            (Err(e), _) | (_, Err(e)) => out
                .warnings
                .push(format!("{label}: ExpSessionPoolTrackTable unreadable: {e}")),
        }
        if let (Some(xo), Some(so)) = (exp_off, exp_size_off) {
            let at = s.session_space;
            match (
                mem.read_ptr(at.wrapping_add(xo)),
                mem.read_ptr(at.wrapping_add(so)),
            ) {
                (Ok(0), _) | (_, Ok(0)) => {}
                (Ok(t), Ok(n)) => {
                    match check_size("MM_SESSION_SPACE.PoolTrackTableExpansionSize", n) {
                        Ok(()) => {
                            let name =
                                format!("MM_SESSION_SPACE.PoolTrackTableExpansion ({label})");
                            total.add_table(&mem, name.clone(), t, n);
                            out.tables.push(one.add_table(&mem, name, t, n));
                        }
                        Err(e) => out.warnings.push(format!("{label}: {e}")),
                    }
                }
                (Err(e), _) | (_, Err(e)) => out.warnings.push(format!(
                    "{label}: MM_SESSION_SPACE at {at:#x} unreadable: {e}"
                )),
            }
        }
        let rows = one.finish();
        if !rows.is_empty() {
            out.sessions.push(SessionInfo {
                session_id: id,
                mm_session_space: s.session_space,
                tags: rows.len() as u64,
                paged_bytes: rows
                    .iter()
                    .fold(0u64, |a, r| a.saturating_add(r.paged_bytes)),
                nonpaged_bytes: rows
                    .iter()
                    .fold(0u64, |a, r| a.saturating_add(r.nonpaged_bytes)),
                tag_rows: rows,
            });
        }
    }
    let rows = total.finish();
    out.rows = (!rows.is_empty()).then_some(rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pool::testmem::{isf, Image, W19041};

    /// Distinct EPROCESS.Session values, each with its first process's CR3; System (no
    /// session) and unreadable processes are skipped; without the profile, nothing.
    #[test]
    fn one_session_ref_per_distinct_session_with_its_first_processes_page_tables() {
        let p = isf(W19041);
        let session = p.offset("_EPROCESS", "Session").unwrap();
        let dtb = p.offset("_EPROCESS", "Pcb").unwrap()
            + p.offset("_KPROCESS", "DirectoryTableBase").unwrap();
        let mut img = Image::new(8);
        let procs: Vec<Process> = [
            (0xffff_a000_0000_1000u64, 0u64, 0x1aa000u64), // System: no session
            (0xffff_a000_0000_3000, 0xffff_9000_0000_0000, 0x2bb002), // session 0
            (0xffff_a000_0000_5000, 0xffff_9000_0000_0000, 0x2cc000), // session 0 again
            (0xffff_a000_0000_7000, 0xffff_9000_0010_0000, 0x2dd000), // session 1
        ]
        .iter()
        .map(|&(ep, s, cr3)| {
            img.u64(ep + session, s);
            img.u64(ep + dtb, cr3);
            Process {
                eprocess: ep,
                pid: 0,
                name: String::new(),
            }
        })
        .chain(std::iter::once(Process {
            eprocess: 0xffff_a000_0000_9000, // not in the dump
            pid: 0,
            name: String::new(),
        }))
        .collect();
        let ctx = KernelContext {
            kernel_base: 0xfffff800_00000000,
            pointer_size: 8,
            build: 19041,
            processors: 1,
            profile: Some(&p),
        };
        let refs = find_sessions(img.memory(), &ctx, &procs);
        assert_eq!(
            refs,
            vec![
                SessionRef {
                    session_space: 0xffff_9000_0000_0000,
                    dtb: 0x2bb002
                },
                SessionRef {
                    session_space: 0xffff_9000_0010_0000,
                    dtb: 0x2dd000
                },
            ]
        );
        let none = KernelContext {
            profile: None,
            ..ctx
        };
        assert!(find_sessions(img.memory(), &none, &procs).is_empty());
    }

    #[test]
    fn cr3_flag_bits_are_not_part_of_the_table_address() {
        assert_eq!(table_base(0x1ad002, PagingMode::X64), 0x1ad000);
        assert_eq!(
            table_base(0x2f0_0c60 | 0x18, PagingMode::X86Pae),
            0x2f0_0c60
        );
    }
}
