//! Per-session pool figures, as `!vm 4` ("terminal server memory usage", learn.microsoft.com
//! debuggercmds/-vm) shows each session's paged pool and commit: read from each session's
//! `MM_SESSION_SPACE` through the page tables of a process in that session (session space is
//! mapped per session; docs/pool.md "Session pool").
//!
//! Fields by symbol file: `CommittedPages` (pages; all five), `PagedPoolInfo` with
//! `_MM_PAGED_POOL_INFO.AllocatedPagedPool` (pages; 7601, 17763, 19041, 20348), XP's
//! `PagedPoolBytes` and `NonPagedPoolBytes` (ULONG bytes, which XP's MiSessionPoolAllocated
//! keeps), and `SessionPoolAllocationFailures[4]` (ULONG; XP, 7601, 17763).

use super::hex;
use super::session::{session_memory, SessionRef};
use super::vm::Figure;
use super::KernelContext;
use crate::memory::{PhysicalMemory, PteFormat, VirtualMemory, PAGE_SIZE};
use serde::Serialize;

const SS: &str = "_MM_SESSION_SPACE";

/// One session's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionVm {
    pub session_id: Option<u32>,
    #[serde(serialize_with = "hex")]
    pub mm_session_space: u64,
    pub paged_in_use: Option<Figure>,
    pub nonpaged_in_use: Option<Figure>,
    pub commit: Option<Figure>,
    /// `SessionPoolAllocationFailures[0..4]`, where the kernel keeps them.
    pub allocation_failures: Option<Vec<u32>>,
}

/// Each session's figures, through its own page tables.
pub fn session_figures(
    phys: &dyn PhysicalMemory,
    format: PteFormat,
    ctx: &KernelContext,
    sessions: &[SessionRef],
) -> Vec<SessionVm> {
    let Some(p) = ctx.profile else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in sessions {
        let mem = session_memory(phys, format, s);
        let at = |f: &str| s.session_space.checked_add(p.offset(SS, f)?);
        let figure = |va: Option<u64>, unit: u64, what: &str, ulong: bool| -> Option<Figure> {
            let va = va?;
            let v = if ulong {
                mem.read_u32(va).ok().map(u64::from)
            } else {
                mem.read_ptr(va).ok()
            }?;
            Some(Figure {
                bytes: v.saturating_mul(unit),
                source: format!("profile:{SS}.{what}"),
            })
        };
        let info = at("PagedPoolInfo")
            .zip(p.offset("_MM_PAGED_POOL_INFO", "AllocatedPagedPool"))
            .map(|(a, o)| a + o);
        let paged = figure(at("PagedPoolBytes"), 1, "PagedPoolBytes", true)
            .or_else(|| figure(info, PAGE_SIZE, "PagedPoolInfo.AllocatedPagedPool", false));
        let failures = at("SessionPoolAllocationFailures").and_then(|a| {
            (0..4u64)
                .map(|i| mem.read_u32(a + 4 * i).ok())
                .collect::<Option<Vec<u32>>>()
        });
        out.push(SessionVm {
            session_id: at("SessionId").and_then(|a| mem.read_u32(a).ok()),
            mm_session_space: s.session_space,
            paged_in_use: paged,
            nonpaged_in_use: figure(at("NonPagedPoolBytes"), 1, "NonPagedPoolBytes", true),
            commit: figure(at("CommittedPages"), PAGE_SIZE, "CommittedPages", false),
            allocation_failures: failures,
        });
    }
    out
}

/// The sessions' commit summed (the per-session `CommittedPages` of every session read).
pub fn session_commit(sessions: &[SessionVm]) -> Option<Figure> {
    let commits: Vec<u64> = sessions
        .iter()
        .filter_map(|s| s.commit.as_ref().map(|f| f.bytes))
        .collect();
    (!commits.is_empty()).then(|| Figure {
        bytes: commits.iter().fold(0u64, |a, b| a.saturating_add(*b)),
        source: format!(
            "profile:{SS}.CommittedPages (sum of {} session(s))",
            commits.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PagingMode;
    use crate::pool::testmem::{isf, W17763};
    use std::collections::HashMap;

    /// Physical pages by frame number.
    struct Phys(HashMap<u64, Vec<u8>>);

    impl Phys {
        fn put(&mut self, pa: u64, bytes: &[u8]) {
            let page = self.0.entry(pa >> 12).or_insert_with(|| vec![0; 0x1000]);
            let off = (pa & 0xfff) as usize;
            page[off..off + bytes.len()].copy_from_slice(bytes);
        }
    }

    impl PhysicalMemory for Phys {
        fn page(&self, pfn: u64) -> Option<&[u8]> {
            self.0.get(&pfn).map(|v| v.as_slice())
        }
    }

    #[test]
    fn a_sessions_pool_commit_and_failures_through_its_page_tables() {
        // 17763 ISF by hand: _MM_SESSION_SPACE SessionId +0x8, CommittedPages +0x30,
        // SessionPoolAllocationFailures +0x58, PagedPoolInfo +0xa0 (AllocatedPagedPool +0x30
        // in it). The session's tables: PML4 0x1000 -> 0x2000 -> 0x3000 -> PT 0x4000 -> 0x5000.
        let p = isf(W17763);
        let space = 0xffff_d000_0000_0000u64;
        let mut m = Phys(HashMap::new());
        let idx = |shift: u32| ((space >> shift) & 0x1ff) * 8;
        m.put(0x1000 + idx(39), &(0x2000u64 | 3).to_le_bytes());
        m.put(0x2000 + idx(30), &(0x3000u64 | 3).to_le_bytes());
        m.put(0x3000 + idx(21), &(0x4000u64 | 3).to_le_bytes());
        m.put(0x4000 + idx(12), &(0x5000u64 | 3).to_le_bytes());
        m.put(0x5000 + 0x8, &3u32.to_le_bytes());
        m.put(0x5000 + 0x30, &0x200u64.to_le_bytes());
        m.put(0x5000 + 0x58 + 4, &7u32.to_le_bytes());
        m.put(0x5000 + 0xa0 + 0x30, &0x80u64.to_le_bytes());
        let ctx = KernelContext {
            kernel_base: 0xffff_f800_0000_0000,
            pointer_size: 8,
            build: 17763,
            processors: 1,
            profile: Some(&p),
        };
        let refs = [SessionRef {
            session_space: space,
            dtb: 0x1000,
        }];
        let format = PteFormat::built_in(PagingMode::X64);
        let s = session_figures(&m, format, &ctx, &refs);
        assert_eq!(s.len(), 1);
        let f = |x: &Option<Figure>| x.as_ref().map(|f| (f.bytes, f.source.clone()));
        assert_eq!(s[0].session_id, Some(3));
        assert_eq!(
            f(&s[0].commit),
            Some((0x20_0000, "profile:_MM_SESSION_SPACE.CommittedPages".into()))
        );
        assert_eq!(
            f(&s[0].paged_in_use),
            Some((
                0x8_0000,
                "profile:_MM_SESSION_SPACE.PagedPoolInfo.AllocatedPagedPool".into()
            ))
        );
        assert_eq!(
            s[0].nonpaged_in_use, None,
            "only XP counts session nonpaged bytes"
        );
        assert_eq!(s[0].allocation_failures, Some(vec![0, 7, 0, 0]));
        let total = session_commit(&s).unwrap();
        assert_eq!(total.bytes, 0x20_0000);
    }
}
