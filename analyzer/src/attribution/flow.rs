//! Control flow for the argument tracking: where linear runs of code are joined by other paths
//! (branch and call targets: the values known on the fall-through path no longer hold there),
//! which addresses are called (function starts, the candidates for wrappers), and where a
//! call or jump goes.

use super::dataflow::{State, Val};
use super::scan::CodeRegion;
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, OpKind, Register};

/// Where other paths land: a direct branch or call target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    pub at: u64,
    /// Direct jumps (conditional or not) that land here, over the whole module.
    pub jumps: u32,
    /// A direct call lands here: a function start.
    pub called: bool,
}

/// Branch and call targets of a module's code, from one linear decode.
#[derive(Debug, Default)]
pub struct Flow {
    /// Sorted by address.
    joins: Vec<Join>,
    /// Targets of direct calls, sorted: function starts.
    calls: Vec<u64>,
}

impl Flow {
    /// Decodes `regions` once and collects the targets.
    pub fn of(bitness: u32, regions: &[CodeRegion]) -> Flow {
        let mut targets: Vec<(u64, bool)> = Vec::new();
        let mut ins = Instruction::default();
        for r in regions {
            let mut d = Decoder::with_ip(bitness, &r.bytes, r.address, DecoderOptions::NONE);
            while d.can_decode() {
                d.decode_out(&mut ins);
                if is_direct(&ins) {
                    let call = ins.flow_control() == FlowControl::Call;
                    targets.push((ins.near_branch_target(), call));
                }
            }
        }
        targets.sort_unstable();
        let mut f = Flow::default();
        for (at, call) in targets {
            if f.joins.last().is_none_or(|j| j.at != at) {
                f.joins.push(Join {
                    at,
                    jumps: 0,
                    called: false,
                });
            }
            let j = f.joins.last_mut().expect("pushed above");
            if call {
                j.called = true;
            } else {
                j.jumps += 1;
            }
        }
        f.calls = f.joins.iter().filter(|j| j.called).map(|j| j.at).collect();
        f
    }

    /// The join at `address`, if another path can reach it.
    pub fn join(&self, address: u64) -> Option<&Join> {
        self.joins
            .binary_search_by_key(&address, |j| j.at)
            .ok()
            .map(|i| &self.joins[i])
    }

    /// Whether another path can reach `address` (a branch or call lands there).
    pub fn is_join(&self, address: u64) -> bool {
        self.join(address).is_some()
    }

    /// The targets of direct calls: the function starts.
    pub fn call_targets(&self) -> &[u64] {
        &self.calls
    }
}

/// Most forward branches whose states wait for their target at once.
const MAX_PENDING: usize = 256;

/// The state along a linear decode. Where forward branches land, their states (recorded when
/// the decode passed them) are merged with the fall-through state: a register keeps its value
/// when every path into the join agrees on it. A join that other, unseen paths also reach (a
/// backward branch, a branch from elsewhere, a call: a function start) starts from nothing.
/// Merges keep registers only; the stack slots start empty after a join.
pub struct Walk<'f> {
    flow: &'f Flow,
    bitness: u32,
    /// `None` right after a jump or return: nothing falls through.
    st: Option<State>,
    /// Forward branch targets with the merged state of the branches seen and their count.
    pending: Vec<(u64, State, u32)>,
}

impl<'f> Walk<'f> {
    pub fn new(flow: &'f Flow, start: State, bitness: u32) -> Walk<'f> {
        Walk {
            flow,
            bitness,
            st: Some(start),
            pending: Vec::new(),
        }
    }

    /// The state before the instruction at `ip`; `first` at the walk's own start (whose state
    /// the caller gave, even if other paths reach it too).
    pub fn enter(&mut self, ip: u64, first: bool) -> &mut State {
        let incoming = self
            .pending
            .iter()
            .position(|p| p.0 == ip)
            .map(|i| self.pending.swap_remove(i));
        let join = if first { None } else { self.flow.join(ip) };
        let st = match (join, incoming) {
            (None, _) => self.st.take(),
            (Some(j), Some((_, mut st, n))) if !j.called && n == j.jumps => {
                Some(match self.st.take() {
                    Some(mut fall) => {
                        fall.meet(&st);
                        fall
                    }
                    None => {
                        st.forget_stack();
                        st
                    }
                })
            }
            _ => None,
        };
        let bitness = self.bitness;
        self.st.insert(st.unwrap_or_else(|| State::new(bitness)))
    }

    /// A direct branch at `from` to `target` was decoded: a forward target gets the state.
    pub fn branch(&mut self, from: u64, target: u64) {
        let Some(st) = &self.st else {
            return;
        };
        if target <= from {
            return;
        }
        match self.pending.iter().position(|p| p.0 == target) {
            Some(i) => {
                let p = &mut self.pending[i];
                p.1.meet(st);
                p.2 += 1;
            }
            None if self.pending.len() < MAX_PENDING => {
                self.pending.push((target, st.clone(), 1));
            }
            None => {}
        }
    }

    /// Nothing falls through (after a jump or return).
    pub fn end(&mut self) {
        self.st = None;
    }

    /// An undecodable byte: nothing known, no branch pending.
    pub fn reset(&mut self) {
        self.st = None;
        self.pending.clear();
    }
}

/// The direct target of a branch instruction.
pub fn direct_target(ins: &Instruction) -> Option<u64> {
    is_direct(ins).then(|| ins.near_branch_target())
}

fn is_direct(ins: &Instruction) -> bool {
    !ins.is_invalid()
        && ins.op_count() == 1
        && matches!(
            ins.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
}

/// What an instruction does to the flow of a linear run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Falls through (conditional branches included: the run follows the fall-through path).
    Next,
    Call(Target),
    /// An unconditional jump: a tail call when its target is a function.
    Jump(Target),
    /// Return, interrupt, exception: nothing follows on this path.
    End,
}

/// Where a call or jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Through the pointer at this fixed address (an import slot): `call [rip+x]`,
    /// `call [abs]`, or `call reg` where reg holds what that address holds.
    Slot(u64),
    /// A direct `call rel32` / `jmp rel32`.
    Direct(u64),
    Unknown,
}

/// How `ins` transfers control, with its target resolved against the run's state.
pub fn transfer(ins: &Instruction, st: &State) -> Transfer {
    match ins.flow_control() {
        FlowControl::Next | FlowControl::ConditionalBranch => Transfer::Next,
        FlowControl::Call | FlowControl::IndirectCall => Transfer::Call(target(ins, st)),
        FlowControl::UnconditionalBranch | FlowControl::IndirectBranch => {
            Transfer::Jump(target(ins, st))
        }
        _ => Transfer::End,
    }
}

fn target(ins: &Instruction, st: &State) -> Target {
    if is_direct(ins) {
        return Target::Direct(ins.near_branch_target());
    }
    if ins.op_count() != 1 {
        return Target::Unknown;
    }
    let ptr = if ins.code_size() == iced_x86::CodeSize::Code64 {
        8
    } else {
        4
    };
    match ins.op0_kind() {
        OpKind::Memory if ins.is_ip_rel_memory_operand() => {
            Target::Slot(ins.ip_rel_memory_address())
        }
        OpKind::Memory
            if ins.memory_base() == Register::None && ins.memory_index() == Register::None =>
        {
            Target::Slot(ins.memory_displacement64())
        }
        OpKind::Register => match st.reg(ins.op0_register()) {
            Val::Load { addr, width } if width == ptr => Target::Slot(addr),
            _ => Target::Unknown,
        },
        _ => Target::Unknown,
    }
}

/// Padding and no-ops: they do not make a run "live" (a jump right after them is still at a
/// function's start).
pub fn is_padding(ins: &Instruction) -> bool {
    matches!(
        ins.mnemonic(),
        iced_x86::Mnemonic::Nop | iced_x86::Mnemonic::Int3
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `call 0x1010; jne 0x1008; jmp [rip+0]; ...`: joins are the three targets, the call
    /// target is a function start; `call rax` after `mov rax, [rip+x]` goes through slot x.
    #[test]
    fn targets_and_transfers() {
        let code = vec![
            0xe8, 0x0b, 0, 0, 0, // 1000 call 1010
            0x75, 0x01, // 1005 jne 1008
            0x90, // 1007
            0xeb, 0xf6, // 1008 jmp 1000
            0x48, 0x8b, 0x05, 0, 1, 0, 0, // 100a mov rax, [rip+0x100] -> 0x1111
            0xff, 0xd0, // 1011 call rax (misaligned on purpose: 1010 is inside)
        ];
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: code.clone(),
        }];
        let f = Flow::of(64, &regions);
        assert_eq!(f.call_targets(), [0x1010]);
        assert!(f.is_join(0x1000) && f.is_join(0x1008) && f.is_join(0x1010));
        assert!(!f.is_join(0x1005));
        assert_eq!(
            f.join(0x1010),
            Some(&Join {
                at: 0x1010,
                jumps: 0,
                called: true
            })
        );
        assert_eq!(
            f.join(0x1008).map(|j| (j.jumps, j.called)),
            Some((1, false))
        );
        let mut d = Decoder::with_ip(64, &code[0xa..], 0x100a, DecoderOptions::NONE);
        let mut st = State::new(64);
        let mov = d.decode();
        let mut info = iced_x86::InstructionInfoFactory::new();
        st.step(&mov, info.info(&mov));
        let call = d.decode();
        assert_eq!(transfer(&call, &st), Transfer::Call(Target::Slot(0x1111)));
    }
}
