//! A driver's own allocation functions: import thunks (`jmp [IAT slot]`, what a linker makes
//! for a call to an import not declared `dllimport`) and small wrappers (`MyAlloc(size)` that
//! calls ExAllocatePoolWithTag with its own pool type and tag, and returns the result). For
//! each function start (a direct call target) the map says which allocator it reaches and what
//! becomes that allocator's pool type, size and tag: one of the function's own argument slots,
//! a constant of its own, or a global. A call to such a function is then an allocation site
//! whose arguments are read in the caller, as for a call to the allocator itself.
//!
//! Bounded on purpose: a wrapper reaches its allocator within [`MAX_BEFORE`] instructions of
//! its start on the fall-through path (conditional branches are followed, jumps are not), and
//! after a `call` returns the allocator's result within [`MAX_AFTER`] instructions without
//! storing it anywhere but its own stack (or jumps to the allocator as a tail call): a function
//! that keeps the block in a global or a structure allocates for itself, and its callers are
//! not allocation sites. Wrappers of wrappers are followed to [`MAX_DEPTH`] levels.
//! Arguments a wrapper changes (`size + 16`) are unknown, not guessed.

use super::allocators::{spec_of, AllocatorKind, AllocatorSpec, ImportUse};
use super::dataflow::{State, Val};
use super::flow::{direct_target, transfer, Flow, Target, Transfer, Walk};
use super::sites::ModuleCode;
use iced_x86::{Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, Register};
use std::collections::HashMap;

/// Instructions from a wrapper's start to its allocator call.
pub const MAX_BEFORE: usize = 48;
/// Instructions from the allocator call to the `ret` that returns its result.
pub const MAX_AFTER: usize = 24;
/// Wrapper levels followed (a wrapper of a wrapper of the allocator is level 2).
pub const MAX_DEPTH: u8 = 2;
/// Most wrappers kept per module.
pub const MAX_WRAPPERS: usize = 4096;

/// The allocator's pool type (or flags), size and tag at a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub pool: Val,
    pub size: Val,
    pub tag: Val,
}

/// A function whose calls are allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wrapper {
    pub start: u64,
    pub spec: &'static AllocatorSpec,
    /// In the wrapper's terms: `Val::Param(k)` is its own argument slot `k`.
    pub roles: Roles,
    /// A bare `jmp [slot]`: an import thunk.
    pub thunk: bool,
    /// 0 for a thunk, 1 for a wrapper of the allocator (or its thunk), 2 for a wrapper of that.
    pub depth: u8,
}

/// Where a call goes when it reaches an allocator.
#[derive(Debug, Clone, Copy)]
pub enum Callee<'a> {
    Import(&'static AllocatorSpec),
    Wrapper(&'a Wrapper),
}

impl Callee<'_> {
    pub fn spec(&self) -> &'static AllocatorSpec {
        match self {
            Callee::Import(s) => s,
            Callee::Wrapper(w) => w.spec,
        }
    }

    fn depth(&self) -> u8 {
        match self {
            Callee::Import(_) => 0,
            Callee::Wrapper(w) => w.depth,
        }
    }
}

/// The wrappers of one module, by start address.
#[derive(Debug, Default)]
pub struct Wrappers {
    map: HashMap<u64, Wrapper>,
}

impl Wrappers {
    pub fn get(&self, start: u64) -> Option<&Wrapper> {
        self.map.get(&start)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Finds the thunks and wrappers among the module's call targets.
    pub fn find(m: &ModuleCode, flow: &Flow) -> Wrappers {
        let mut w = Wrappers::default();
        let mut info = InstructionInfoFactory::new();
        for depth in 0..=MAX_DEPTH {
            let found: Vec<Wrapper> = flow
                .call_targets()
                .iter()
                .filter(|t| !w.map.contains_key(t))
                .filter_map(|&t| analyse(m, flow, &w, t, depth, &mut info))
                .collect();
            for x in found {
                if w.map.len() < MAX_WRAPPERS {
                    w.map.insert(x.start, x);
                }
            }
        }
        w
    }
}

/// The allocator (import or wrapper) a call target reaches.
pub fn callee<'a>(m: &ModuleCode, wrappers: &'a Wrappers, t: Target) -> Option<Callee<'a>> {
    match t {
        Target::Slot(slot) => match (m.imports)(slot)? {
            ImportUse::Allocator(a) => Some(Callee::Import(spec_of(a))),
            ImportUse::Data(_) => None,
        },
        Target::Direct(start) => wrappers.get(start).map(Callee::Wrapper),
        Target::Unknown => None,
    }
}

/// The allocator's arguments at a call (or, `tail`, a tail jump) to `c`, in the caller's terms.
pub fn roles(st: &State, c: Callee, bitness: u32, tail: bool) -> Roles {
    let spec = c.spec();
    let size_width = size_width(spec, bitness);
    match c {
        Callee::Import(spec) => {
            let s = spec.slots(bitness);
            let read = |k: Option<u8>, width| k.map_or(Val::Unknown, |k| st.arg_at(k, width, tail));
            Roles {
                pool: read(s.pool, 4),
                size: read(Some(s.size), size_width),
                tag: read(s.tag, 4),
            }
        }
        Callee::Wrapper(w) => Roles {
            pool: bind(w.roles.pool, st, 4, tail),
            size: bind(w.roles.size, st, size_width, tail),
            tag: bind(w.roles.tag, st, 4, tail),
        },
    }
}

/// Bytes of the size argument: SIZE_T, but NDIS takes a UINT.
fn size_width(spec: &AllocatorSpec, bitness: u32) -> u8 {
    if bitness == 64 && spec.kind != AllocatorKind::Ndis {
        8
    } else {
        4
    }
}

/// A wrapper's value in the caller: its argument slots are read at the call; constants and
/// module-wide loads stay as they are.
fn bind(v: Val, st: &State, width: u8, tail: bool) -> Val {
    match v {
        Val::Param(k) => st.arg_at(k, width, tail),
        Val::Const(..) | Val::Load { .. } | Val::ImportData(_) => v,
        _ => Val::Unknown,
    }
}

/// Whether the function at `start` is a thunk (pass 0) or a wrapper of allocators and
/// wrappers below level `depth` (passes 1, 2).
fn analyse(
    m: &ModuleCode,
    flow: &Flow,
    known: &Wrappers,
    start: u64,
    depth: u8,
    info: &mut InstructionInfoFactory,
) -> Option<Wrapper> {
    let bytes = m.code_from(start)?;
    let mut d = Decoder::with_ip(m.bitness, bytes, start, DecoderOptions::NONE);
    let mut walk = Walk::new(flow, State::entry(m.bitness), m.bitness);
    let mut found: Option<(Callee, Roles, usize)> = None;
    let wrapper = |c: Callee, roles: Roles, thunk: bool| Wrapper {
        start,
        spec: c.spec(),
        roles,
        thunk,
        depth: if thunk { 0 } else { c.depth() + 1 },
    };
    for (n, ins) in d.iter().enumerate() {
        let limit = found.map_or(MAX_BEFORE, |(_, _, at)| at + MAX_AFTER);
        if ins.is_invalid() || n >= limit {
            return None;
        }
        let st = walk.enter(ins.ip(), n == 0);
        let reachable = |t| callee(m, known, t).filter(|c| c.depth() < depth.max(1));
        match transfer(&ins, st) {
            Transfer::Next => {
                if found.is_some() && st.stores_result(&ins) {
                    return None;
                }
                st.step(&ins, info.info(&ins));
                if let Some(t) = direct_target(&ins) {
                    walk.branch(ins.ip(), t);
                }
            }
            Transfer::Call(t) => {
                if depth == 0 {
                    return None;
                }
                let c = found.is_none().then(|| reachable(t)).flatten();
                let r = c.map(|c| roles(st, c, m.bitness, false));
                st.after_call();
                if let (Some(c), Some(r)) = (c, r) {
                    found = Some((c, r, n));
                    st.set_result(Val::AllocResult);
                }
            }
            Transfer::Jump(t) => {
                let c = found.is_none().then(|| reachable(t)).flatten()?;
                let thunk = n == 0 && matches!(c, Callee::Import(_));
                if thunk != (depth == 0) {
                    return None;
                }
                return Some(wrapper(c, roles(st, c, m.bitness, true), thunk));
            }
            Transfer::End => {
                let (c, r, _) = found?;
                let returns = ins.flow_control() == FlowControl::Return
                    && st.reg(Register::RAX) == Val::AllocResult;
                return returns.then(|| wrapper(c, r, false));
            }
        }
    }
    None
}
