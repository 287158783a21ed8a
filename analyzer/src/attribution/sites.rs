//! Allocation call sites: the calls in a driver's code whose target resolves to a pool
//! allocator, with the tag, size and pool type that reach it. A call resolves through
//! - the import slot itself: `call [rip+disp]` (any displacement, negative too), x86
//!   `call [abs]`, or `call reg` after `mov reg, [slot]`;
//! - an import thunk: `call rel32` to a `jmp [slot]` stub;
//! - one of the driver's own wrappers (see [`super::wrappers`]), to two levels;
//! - and the same as tail jumps (`jmp [slot]`, `jmp wrapper`) after some code of the function.
//!
//! The arguments are read from the state [`super::dataflow`] keeps along each linear run of
//! code: a run starts after any jump or return and at every branch or call target, so a value
//! is only known when it was set on the one path the decode follows. A tagged allocation is a
//! site only when its tag is a known printable constant; an untagged one (ExAllocatePool,
//! ExAllocatePoolWithQuota) always is. A tag constant that reaches no allocator call is not a
//! site (it is at most a tag reference, see [`super::scan`]).
//!
//! A linear decode can be out of step where data or odd padding precedes a function. So a
//! candidate tag occurrence that the linear decode did not see as an instruction, and a site
//! whose size or pool type stayed unknown, are decoded again from the 16-byte-aligned
//! addresses just before them (compilers align functions to 16 bytes) that follow padding
//! (`int3`, `nop`, zero) or a `ret`; a window counts only if it decodes exactly onto the
//! instruction, and the nearest window that finds more is taken.

use super::allocators::{paged_of, AllocatorKind, AllocatorSpec, ImportUse, KnownData};
use super::dataflow::{Origin, State, Val};
use super::flow::{direct_target, is_padding, transfer, Flow, Transfer, Walk};
use super::globals::GlobalFacts;
use super::scan::{self, CodeRegion};
use super::wrappers::{callee, roles, Callee, Wrappers};
use crate::pool::Tag;
use iced_x86::{Decoder, DecoderOptions, Instruction, InstructionInfoFactory};
use std::collections::{BTreeMap, HashSet};

/// A module's code and what the scan needs to know about the rest of its image.
pub struct ModuleCode<'a> {
    pub bitness: u32,
    pub regions: &'a [CodeRegion],
    /// What the import slot at an address holds, if it matters (allocators, known data).
    pub imports: &'a dyn Fn(u64) -> Option<ImportUse>,
    /// Reads 4 bytes of the image (a global's value): the initial value in a file, the current
    /// one in a dump.
    pub read_u32: &'a dyn Fn(u64) -> Option<u32>,
}

impl ModuleCode<'_> {
    /// The code bytes from `address` to the end of its region.
    pub fn code_from(&self, address: u64) -> Option<&[u8]> {
        self.regions.iter().find_map(|r| {
            let off = address.checked_sub(r.address)?;
            r.bytes.get(usize::try_from(off).ok()?..)
        })
    }
}

/// What kind of allocation a site makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteKind {
    /// A tagged allocator (ExAllocatePoolWithTag, ExAllocatePool2, NDIS, ...).
    Tagged,
    /// ExAllocatePool / ExAllocatePoolWithQuota: the blocks are tagged "None".
    Untagged,
    /// A lookaside list's initialisation: its entries are allocated later with this tag and size.
    Lookaside,
}

/// What the call goes through on its way to the allocator, when not the import slot itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// The import thunk (`jmp [slot]`) at this address.
    ImportThunk(u64),
    /// The driver's own wrapper function starting at this address.
    Wrapper(u64),
}

/// One allocation call site in a driver's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocSite {
    /// The instruction that holds the tag immediate (`mov r8d, imm32`, `push imm32`, a stack
    /// store, or an earlier `mov reg, imm32` copied to the argument); for an untagged
    /// allocation, or a tag fixed inside a wrapper, the call itself.
    pub address: u64,
    /// The tag; "None" for an untagged allocator call.
    pub tag: Tag,
    /// True for a call that reaches ExAllocatePool / ExAllocatePoolWithQuota.
    pub untagged_call: bool,
    /// The allocator the call reaches (directly, or through `via`).
    pub callee: Option<&'static str>,
    /// Paged (true) or nonpaged (false), when the pool-type (or POOL_FLAGS) argument is known.
    pub paged: Option<bool>,
    /// The requested size (for a lookaside list, its entries' size), when known.
    pub size: Option<u64>,
    /// The call (or tail jump) instruction.
    pub call: u64,
    pub kind: SiteKind,
    pub via: Option<Via>,
    /// Where the tag came from.
    pub tag_from: Origin,
    /// Where the size came from, when known.
    pub size_from: Option<Origin>,
    /// Where the pool type came from, when known.
    pub paged_from: Option<Origin>,
}

/// The sites found in a module's code.
#[derive(Debug, Default)]
pub struct SiteScan {
    /// The sites kept (see [`find_sites`]), in address order.
    pub sites: Vec<AllocSite>,
    /// Every site found, by tag ("None" for untagged ones), kept or not.
    pub counts: BTreeMap<Tag, u32>,
    /// More sites matched the filter than were kept.
    pub truncated: bool,
}

/// Most sites found per module before filtering (nt has a few thousand).
const MAX_FOUND: usize = 1 << 16;
/// Aligned starts tried before an instruction the linear decode missed or left undecoded.
const RESYNC_WINDOWS: usize = 8;
/// Bytes decoded after that instruction, to reach its call.
const RESYNC_AFTER: u64 = 96;
/// Most instructions resynchronised per module, for each of the two reasons.
const MAX_RESYNC: usize = 4096;

/// Every allocation call site of `m`. `filter`: keep only untagged sites and tagged ones of
/// these tags (and resynchronise only for these); `None` keeps all. At most `max` are kept.
pub fn find_sites(m: &ModuleCode, filter: Option<&HashSet<Tag>>, max: usize) -> SiteScan {
    let flow = Flow::of(m.bitness, m.regions);
    let wrappers = Wrappers::find(m, &flow);
    let mut runner = Runner {
        m,
        flow: &flow,
        wrappers: &wrappers,
        filter,
        info: InstructionInfoFactory::new(),
    };
    let mut out = RunOut::new(m.regions);
    for r in m.regions {
        runner.run(r.address, &r.bytes, &mut out);
    }
    let RunOut {
        mut sites,
        facts,
        imm_at,
        ..
    } = out;
    resync_missed(&mut runner, &mut sites, &imm_at);
    resync_undecoded(&mut runner, &mut sites);
    for s in &mut sites {
        if let Some(g) = s.global.take() {
            if facts.is_default_nonpaged(g, m.read_u32) {
                s.site.paged = Some(false);
                s.site.paged_from = Some(Origin::DefaultPoolTypeGlobal(g));
            }
        }
    }
    finish(sites.into_iter().map(|s| s.site).collect(), filter, max)
}

/// Counts, filters, orders and bounds the sites.
fn finish(mut all: Vec<AllocSite>, filter: Option<&HashSet<Tag>>, max: usize) -> SiteScan {
    all.sort_by_key(|s| (s.address, s.call));
    all.dedup_by_key(|s| (s.address, s.call));
    let mut scan = SiteScan::default();
    for s in all {
        *scan.counts.entry(s.tag).or_insert(0) += 1;
        let wanted = s.untagged_call || filter.is_none_or(|f| f.contains(&s.tag));
        if !wanted {
            continue;
        }
        if scan.sites.len() < max {
            scan.sites.push(s);
        } else {
            scan.truncated = true;
        }
    }
    scan
}

/// A site and, when its pool type was read from a global, that global (judged at the end).
#[derive(Debug, Clone)]
struct RawSite {
    site: AllocSite,
    global: Option<u64>,
}

impl RawSite {
    /// How many of size and pool type are known (a pool type global counts: it is judged later).
    fn known(&self) -> usize {
        usize::from(self.site.paged.is_some() || self.global.is_some())
            + usize::from(self.site.size.is_some())
    }
}

/// What runs of linear decode found.
struct RunOut {
    sites: Vec<RawSite>,
    facts: GlobalFacts,
    /// Instructions holding a tag of the filter as an immediate.
    imm_at: HashSet<u64>,
    /// Instruction starts, kept only for a resync window (`Some`).
    starts: Option<HashSet<u64>>,
}

impl RunOut {
    fn new(regions: &[CodeRegion]) -> RunOut {
        RunOut {
            sites: Vec::new(),
            facts: GlobalFacts::new(regions),
            imm_at: HashSet::new(),
            starts: None,
        }
    }
}

struct Runner<'a> {
    m: &'a ModuleCode<'a>,
    flow: &'a Flow,
    wrappers: &'a Wrappers,
    filter: Option<&'a HashSet<Tag>>,
    info: InstructionInfoFactory,
}

impl Runner<'_> {
    /// Decodes `bytes` (at `address`) linearly, collecting sites and facts into `out`.
    fn run(&mut self, address: u64, bytes: &[u8], out: &mut RunOut) {
        let bitness = self.m.bitness;
        let mut walk = Walk::new(self.flow, State::new(bitness), bitness);
        // Instructions other than padding since the function started.
        let mut live = 0usize;
        let mut d = Decoder::with_ip(bitness, bytes, address, DecoderOptions::NONE);
        let mut ins = Instruction::default();
        while d.can_decode() {
            d.decode_out(&mut ins);
            if ins.is_invalid() {
                walk.reset();
                live = 0;
                continue;
            }
            let ip = ins.ip();
            if let Some(s) = &mut out.starts {
                s.insert(ip);
            }
            if self.flow.join(ip).is_some_and(|j| j.called) {
                live = 0;
            } else if self.flow.is_join(ip) {
                // Reached by a branch: inside a function.
                live = live.max(1);
            }
            let st = walk.enter(ip, false);
            self.note_immediates(&ins, out);
            match transfer(&ins, st) {
                Transfer::Next => {
                    out.facts.note(st.step(&ins, self.info.info(&ins)));
                    live += usize::from(!is_padding(&ins));
                    if let Some(t) = direct_target(&ins) {
                        walk.branch(ip, t);
                    }
                }
                Transfer::Call(t) => {
                    let c = callee(self.m, self.wrappers, t);
                    self.push_site(st, c, &ins, false, out);
                    st.after_call();
                    live += 1;
                }
                Transfer::Jump(t) => {
                    // A jump at a function's start is a thunk, not a site of its own.
                    let c = callee(self.m, self.wrappers, t).filter(|_| live > 0);
                    self.push_site(st, c, &ins, true, out);
                    if let Some(t) = direct_target(&ins) {
                        walk.branch(ip, t);
                    }
                    walk.end();
                    live = 0;
                }
                Transfer::End => {
                    walk.end();
                    live = 0;
                }
            }
        }
    }

    fn note_immediates(&self, ins: &Instruction, out: &mut RunOut) {
        out.facts.note_immediates(ins);
        let Some(filter) = self.filter else {
            return;
        };
        if scan::immediates(self.m.bitness, ins).any(|(t, _)| filter.contains(&t)) {
            out.imm_at.insert(ins.ip());
        }
    }

    fn push_site(
        &self,
        st: &State,
        c: Option<Callee>,
        ins: &Instruction,
        tail: bool,
        out: &mut RunOut,
    ) {
        if out.sites.len() >= MAX_FOUND {
            return;
        }
        if let Some(s) = c.and_then(|c| self.site(st, c, ins.ip(), tail)) {
            out.sites.push(s);
        }
    }

    /// The site a call (or tail jump) to `c` at `call` makes, if its tag is known (or it is
    /// untagged).
    fn site(&self, st: &State, c: Callee, call: u64, tail: bool) -> Option<RawSite> {
        let spec = c.spec();
        let r = roles(st, c, self.m.bitness, tail);
        let (tag, tag_from, address) = if spec.kind == AllocatorKind::Untagged {
            (super::UNTAGGED, Origin::Allocator, call)
        } else {
            let Val::Const(v, origin) = r.tag else {
                return None;
            };
            let tag = u32::try_from(v).ok().map(Tag::from_u32)?;
            if !tag.is_printable() || tag.0 == [b' '; 4] {
                return None;
            }
            // A tag fixed inside the wrapper is not an instruction of this call's code.
            let in_wrapper =
                matches!(c, Callee::Wrapper(w) if matches!(w.roles.tag, Val::Const(..)));
            let address = match origin {
                Origin::Immediate(a) if !in_wrapper => a,
                _ => call,
            };
            (tag, origin, address)
        };
        let (paged, paged_from, global) = self.pool(spec, r.pool);
        let (size, size_from) = match r.size {
            Val::Const(v, o) => (Some(v), Some(o)),
            _ => (None, None),
        };
        let via = match c {
            Callee::Wrapper(w) if w.thunk => Some(Via::ImportThunk(w.start)),
            Callee::Wrapper(w) => Some(Via::Wrapper(w.start)),
            Callee::Import(_) => None,
        };
        let kind = match spec.kind {
            AllocatorKind::Untagged => SiteKind::Untagged,
            AllocatorKind::Lookaside => SiteKind::Lookaside,
            _ => SiteKind::Tagged,
        };
        let site = AllocSite {
            address,
            tag,
            untagged_call: kind == SiteKind::Untagged,
            callee: Some(spec.name),
            paged,
            size,
            call,
            kind,
            via,
            tag_from,
            size_from,
            paged_from,
        };
        Some(RawSite { site, global })
    }

    /// The pool a site asks for: implied by the allocator, a known constant, the imported
    /// ExDefaultNonPagedPoolType, or (judged later) a global.
    fn pool(&self, spec: &AllocatorSpec, v: Val) -> (Option<bool>, Option<Origin>, Option<u64>) {
        if let Some(p) = spec.implied_paged {
            return (Some(p), Some(Origin::Allocator), None);
        }
        let pool_type = spec.kind != AllocatorKind::PoolFlags;
        match v {
            Val::Const(c, o) => match paged_of(spec.kind, c) {
                Some(p) => (Some(p), Some(o), None),
                None => (None, None, None),
            },
            Val::Load { addr, width: 4 } if pool_type => (None, None, Some(addr)),
            Val::ImportData(slot)
                if pool_type
                    && (self.m.imports)(slot)
                        == Some(ImportUse::Data(KnownData::DefaultNonPagedPoolType)) =>
            {
                (Some(false), Some(Origin::DefaultPoolTypeImport(slot)), None)
            }
            _ => (None, None, None),
        }
    }

    /// Decodes the aligned windows before `target` (nearest first) and returns the sites of
    /// the first window that decodes onto `target` and for which `accept` finds a site.
    fn window(
        &mut self,
        target: u64,
        accept: &dyn Fn(&[RawSite]) -> Option<RawSite>,
    ) -> Option<RawSite> {
        let r = self
            .m
            .regions
            .iter()
            .find(|r| target >= r.address && target - r.address < r.bytes.len() as u64)?;
        let end = (target - r.address + RESYNC_AFTER).min(r.bytes.len() as u64) as usize;
        let mut start = target & !0xf;
        for _ in 0..RESYNC_WINDOWS {
            let from = start.checked_sub(r.address)? as usize;
            let after_padding = from == 0 || matches!(r.bytes[from - 1], 0xcc | 0x90 | 0 | 0xc3);
            if after_padding {
                let mut out = RunOut::new(self.m.regions);
                out.starts = Some(HashSet::new());
                self.run(start, &r.bytes[from..end], &mut out);
                let landed = out.starts.as_ref().is_some_and(|s| s.contains(&target));
                if let Some(found) = accept(&out.sites).filter(|_| landed) {
                    return Some(found);
                }
            }
            start = start.checked_sub(16).filter(|s| *s >= r.address)?;
        }
        None
    }
}

/// Sites behind candidate tag occurrences that the linear decode did not see as instructions.
fn resync_missed(runner: &mut Runner, sites: &mut Vec<RawSite>, imm_at: &HashSet<u64>) {
    let Some(filter) = runner.filter else {
        return;
    };
    let missed: Vec<u64> = scan::anchored_instructions(runner.m.bitness, runner.m.regions, filter)
        .into_iter()
        .filter(|(ip, _)| !imm_at.contains(ip))
        .map(|(ip, _)| ip)
        .take(MAX_RESYNC)
        .collect();
    let mut known: HashSet<u64> = sites.iter().map(|s| s.site.call).collect();
    for ip in missed {
        let accept = |found: &[RawSite]| {
            found
                .iter()
                .find(|s| s.site.address == ip && !known.contains(&s.site.call))
                .cloned()
        };
        if let Some(s) = runner.window(ip, &accept) {
            known.insert(s.site.call);
            sites.push(s);
        }
    }
}

/// Sites whose size or pool type stayed unknown, decoded again from an aligned start.
fn resync_undecoded(runner: &mut Runner, sites: &mut [RawSite]) {
    let mut tried = 0;
    for raw in sites.iter_mut() {
        let s = &raw.site;
        let wanted = runner.filter.is_none_or(|f| f.contains(&s.tag));
        let known = raw.known();
        if known == 2 || !wanted || tried >= MAX_RESYNC {
            continue;
        }
        tried += 1;
        let (call, tag, address) = (s.call, s.tag, s.address);
        let accept = |found: &[RawSite]| {
            found
                .iter()
                .find(|f| f.site.call == call && f.site.tag == tag && f.known() > known)
                .cloned()
        };
        if let Some(better) = runner.window(address, &accept) {
            *raw = better;
        }
    }
}

#[cfg(test)]
#[path = "sites_tests.rs"]
mod tests;
