//! What the registers and the argument area of the stack hold, instruction by instruction,
//! along one linear run of code (no path merging): enough to say which constant reaches an
//! allocator's pool-type, size or tag argument, and through which register copies, `lea`s and
//! stack stores it went. A value is known only when every step is understood: a constant
//! (`mov`, `xor r,r`, `push imm`), a copy, `lea` or add/sub/and/or/shift of constants, a load
//! from a fixed address (an import slot, a global), the function's own incoming argument (for
//! wrapper analysis), or an allocator's result. Any other write makes the destination unknown,
//! using iced-x86's list of the registers each instruction writes (implicit ones included).
//!
//! Calls clobber the volatile registers (x64: rax, rcx, rdx, r8-r11; x86: eax, ecx, edx) and
//! forget the stack: callee-saved registers keep their values, as the ABI guarantees. The
//! stack is tracked as offsets from the run's start: pushes, pops and `add/sub rsp, imm` move
//! it; any other write to the stack pointer forgets every slot. Stores through pointers the
//! run did not derive from the stack pointer are assumed not to hit the tracked slots.

use super::allocators::ArgSlot;
use iced_x86::{Instruction, InstructionInfo, Mnemonic, OpAccess, OpKind, Register};

/// Where a known constant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The immediate operand of the instruction at this address (moved, pushed or stored; maybe
    /// copied through registers or stack slots since).
    Immediate(u64),
    /// Computed by the instruction at this address (`lea`, add, shift, ...) from constants.
    Computed(u64),
    /// Read from the driver's default nonpaged pool type global at this address (wdm.h's
    /// `ExDefaultNonPagedPoolType`, or the driver's own equivalent): see `globals`.
    DefaultPoolTypeGlobal(u64),
    /// Read through the import slot at this address, which holds `ExDefaultNonPagedPoolType`.
    DefaultPoolTypeImport(u64),
    /// Implied by the allocator itself (a lookaside list's kind, NDIS, an untagged allocator).
    Allocator,
}

/// What a register or stack slot is known to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Val {
    Unknown,
    Const(u64, Origin),
    /// The function's own argument in this slot, as it was at entry (wrapper analysis).
    Param(ArgSlot),
    /// The value at a fixed image address (an import slot, a global), read `width` bytes wide.
    Load {
        addr: u64,
        width: u8,
    },
    /// The value the pointer held by the import slot at this address points to (imported data).
    ImportData(u64),
    /// The address `stack pointer at the run's start + offset` (a frame pointer).
    StackAddr(i64),
    /// What the allocator call of a wrapper returned.
    AllocResult,
}

impl Val {
    pub fn constant(self) -> Option<u64> {
        match self {
            Val::Const(v, _) => Some(v),
            _ => None,
        }
    }
}

/// A write the run made to a fixed address (a global), for the default pool type analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalWrite {
    pub addr: u64,
    pub width: u8,
    /// The value stored, when it is a known constant written by a plain `mov`.
    pub value: Option<u64>,
}

/// What one instruction did that the caller may want to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    GlobalWrite(GlobalWrite),
    /// The address of a fixed location was taken (`lea r, [rip+x]`).
    AddressTaken(u64),
}

/// Most stack slots tracked at once (a call's arguments need at most a dozen).
const MAX_SLOTS: usize = 64;
/// Incoming argument slots given a `Param` value at a function's entry.
pub const MAX_PARAM_SLOTS: u8 = 8;

#[derive(Debug, Clone, Copy)]
struct Slot {
    off: i64,
    width: u8,
    val: Val,
}

/// Register and stack contents along a linear run.
#[derive(Debug, Clone)]
pub struct State {
    bitness: u32,
    regs: [Val; 16],
    /// The stack pointer, as an offset from its value at the run's start.
    sp: i64,
    slots: Vec<Slot>,
}

/// The index (rax = 0 ... r15 = 15) of a general-purpose register of any width.
fn gpr(r: Register) -> Option<usize> {
    let f = r.full_register();
    f.is_gpr64()
        .then(|| f.number() - Register::RAX.number())
        .filter(|_| !matches!(r, Register::AH | Register::BH | Register::CH | Register::DH))
}

const RSP: usize = 4;
const X64_ARGS: [usize; 4] = [1, 2, 8, 9];
const X64_VOLATILE: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];
const X86_VOLATILE: [usize; 3] = [0, 1, 2];

/// A memory operand, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mem {
    /// A fixed address (RIP-relative, or an absolute displacement).
    Abs(u64),
    /// A tracked stack offset.
    Stack(i64),
    /// `[reg]` where reg holds what an import slot holds.
    Deref(u64),
    Other,
}

impl State {
    pub fn new(bitness: u32) -> State {
        State {
            bitness,
            regs: [Val::Unknown; 16],
            sp: 0,
            slots: Vec::new(),
        }
    }

    /// The state at a function's entry: its argument slots hold its parameters.
    pub fn entry(bitness: u32) -> State {
        let mut st = State::new(bitness);
        let ptr = st.ptr() as i64;
        for k in 0..MAX_PARAM_SLOTS {
            if bitness == 64 && usize::from(k) < X64_ARGS.len() {
                st.regs[X64_ARGS[usize::from(k)]] = Val::Param(k);
            } else {
                // Past the return address the call pushed.
                st.set_slot(ptr + ptr * i64::from(k), ptr as u8, Val::Param(k));
            }
        }
        st
    }

    fn ptr(&self) -> u8 {
        if self.bitness == 64 {
            8
        } else {
            4
        }
    }

    /// Forgets everything (a join point, a branch, the end of the run).
    pub fn reset(&mut self) {
        *self = State::new(self.bitness);
    }

    /// The value in argument slot `k` at a call, read `width` bytes wide.
    pub fn arg(&self, k: ArgSlot, width: u8) -> Val {
        self.arg_at(k, width, false)
    }

    /// The value in argument slot `k` at a call, or (`tail`) at a tail jump, where the caller's
    /// return address is already on the stack below the arguments.
    pub fn arg_at(&self, k: ArgSlot, width: u8, tail: bool) -> Val {
        let k = usize::from(k);
        if self.bitness == 64 && k < X64_ARGS.len() {
            return self.regs[X64_ARGS[k]];
        }
        let ptr = i64::from(self.ptr());
        let ret = if tail { ptr } else { 0 };
        self.slot(self.sp + ret + ptr * k as i64, width)
    }

    /// The value of a register (any width; the caller judges the width).
    pub fn reg(&self, r: Register) -> Val {
        gpr(r).map_or(Val::Unknown, |i| self.regs[i])
    }

    /// After a call returns: the volatile registers and the stack are unknown.
    pub fn after_call(&mut self) {
        let volatile: &[usize] = if self.bitness == 64 {
            &X64_VOLATILE
        } else {
            &X86_VOLATILE
        };
        for &i in volatile {
            self.regs[i] = Val::Unknown;
        }
        self.slots.clear();
    }

    /// Sets the return register (after a call whose result is known).
    pub fn set_result(&mut self, v: Val) {
        self.regs[0] = v;
    }

    fn slot(&self, off: i64, width: u8) -> Val {
        let Some(s) = self.slots.iter().find(|s| s.off == off) else {
            return Val::Unknown;
        };
        if s.width < width {
            return Val::Unknown;
        }
        narrow(s.val, width, self.bitness)
    }

    fn set_slot(&mut self, off: i64, width: u8, val: Val) {
        let end = off + i64::from(width);
        self.slots
            .retain(|s| s.off + i64::from(s.width) <= off || s.off >= end);
        if self.slots.len() >= MAX_SLOTS {
            self.slots.remove(0);
        }
        self.slots.push(Slot { off, width, val });
    }

    /// Where paths join: a register keeps its value only when `other` agrees; the stack is
    /// forgotten (the paths' stack pointers need not match).
    pub fn meet(&mut self, other: &State) {
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter()) {
            // The same constant from different instructions is still that constant.
            let same = match (*a, *b) {
                (Val::Const(x, _), Val::Const(y, _)) => x == y,
                (x, y) => x == y,
            };
            if !same {
                *a = Val::Unknown;
            }
        }
        self.forget_stack();
    }

    /// Forgets the stack slots and the frame addresses held in registers.
    pub fn forget_stack(&mut self) {
        self.rebase();
    }

    /// The stack pointer moved in a way not tracked: forget the slots and frame pointers.
    fn rebase(&mut self) {
        self.slots.clear();
        for r in &mut self.regs {
            if matches!(r, Val::StackAddr(_)) {
                *r = Val::Unknown;
            }
        }
    }

    fn mem(&self, ins: &Instruction) -> Mem {
        if matches!(ins.memory_segment(), Register::FS | Register::GS) {
            return Mem::Other;
        }
        if ins.is_ip_rel_memory_operand() {
            return Mem::Abs(ins.ip_rel_memory_address());
        }
        if ins.memory_index() != Register::None {
            return Mem::Other;
        }
        let disp = ins.memory_displacement64();
        let base = ins.memory_base();
        if base == Register::None {
            return Mem::Abs(disp);
        }
        match (gpr(base), self.reg(base)) {
            (Some(RSP), _) => Mem::Stack(self.sp.wrapping_add(disp as i64)),
            (_, Val::StackAddr(o)) => Mem::Stack(o.wrapping_add(disp as i64)),
            (_, Val::Load { addr, width }) if disp == 0 && width == self.ptr() => Mem::Deref(addr),
            _ => Mem::Other,
        }
    }

    /// The value a memory operand holds, read `width` bytes wide.
    fn load(&self, ins: &Instruction, width: u8) -> Val {
        match self.mem(ins) {
            Mem::Abs(addr) => Val::Load { addr, width },
            Mem::Stack(off) => self.slot(off, width),
            Mem::Deref(slot) => Val::ImportData(slot),
            Mem::Other => Val::Unknown,
        }
    }

    /// The value of operand `i` (register, immediate or memory) read `width` bytes wide.
    fn operand(&self, ins: &Instruction, i: u32, width: u8) -> Val {
        match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                if gpr(r).is_none() || r.size() < 4 {
                    return Val::Unknown;
                }
                narrow(self.reg(r), width, self.bitness)
            }
            OpKind::Memory => self.load(ins, width),
            k if is_immediate(k) => {
                Val::Const(mask(ins.immediate(i), width), Origin::Immediate(ins.ip()))
            }
            _ => Val::Unknown,
        }
    }

    fn set_reg(&mut self, r: Register, v: Val) {
        if let Some(i) = gpr(r) {
            // Writes of 8 or 16 bits keep the rest of the register: the whole is unknown.
            self.regs[i] = if r.size() < 4 {
                Val::Unknown
            } else {
                narrow(v, r.size() as u8, self.bitness)
            };
            if i == RSP {
                self.rebase();
            }
        }
    }

    /// Applies one instruction that is not a call, jump or return.
    pub fn step(&mut self, ins: &Instruction, info: &InstructionInfo) -> Effect {
        if let Some(effect) = self.modelled(ins) {
            return effect;
        }
        for u in info.used_registers() {
            if writes(u.access()) {
                self.set_reg(u.register(), Val::Unknown);
            }
        }
        if ins.op_count() > 0 && ins.op0_kind() == OpKind::Memory && writes(info.op0_access()) {
            let width = ins.memory_size().size() as u8;
            return self.store(ins, width, Val::Unknown, false);
        }
        Effect::None
    }

    /// The instructions whose effect is modelled exactly; `None` for the others.
    fn modelled(&mut self, ins: &Instruction) -> Option<Effect> {
        let dest_reg = ins.op_count() > 0 && ins.op0_kind() == OpKind::Register;
        match ins.mnemonic() {
            Mnemonic::Mov if dest_reg => {
                let r = ins.op0_register();
                let v = self.operand(ins, 1, r.size() as u8);
                self.set_reg(r, v);
                Some(Effect::None)
            }
            Mnemonic::Mov if ins.op0_kind() == OpKind::Memory => {
                let width = ins.memory_size().size() as u8;
                let v = self.operand(ins, 1, width);
                Some(self.store(ins, width, v, true))
            }
            Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd if dest_reg => {
                let v = self.extended(ins);
                self.set_reg(ins.op0_register(), v);
                Some(Effect::None)
            }
            Mnemonic::Lea if dest_reg => Some(self.lea(ins)),
            Mnemonic::Push => Some(self.push(ins)),
            Mnemonic::Pop if dest_reg => {
                let ptr = self.ptr();
                let v = self.slot(self.sp, ptr);
                self.sp += i64::from(ptr);
                self.set_reg(ins.op0_register(), v);
                Some(Effect::None)
            }
            Mnemonic::Xor | Mnemonic::Sub
                if dest_reg
                    && ins.op1_kind() == OpKind::Register
                    && ins.op1_register() == ins.op0_register() =>
            {
                let r = ins.op0_register();
                self.set_reg(r, Val::Const(0, Origin::Immediate(ins.ip())));
                Some(Effect::None)
            }
            m if is_arith(m) && ins.op_count() == 2 && is_immediate(ins.op1_kind()) => {
                self.arith(ins)
            }
            _ => None,
        }
    }

    /// Whether `ins` stores a wrapper's allocation result anywhere but the stack (a function
    /// that keeps the block itself is not a wrapper that hands it to its caller).
    pub fn stores_result(&self, ins: &Instruction) -> bool {
        ins.mnemonic() == Mnemonic::Mov
            && ins.op_count() == 2
            && ins.op0_kind() == OpKind::Memory
            && ins.op1_kind() == OpKind::Register
            && self.reg(ins.op1_register()) == Val::AllocResult
            && !matches!(self.mem(ins), Mem::Stack(_))
    }

    fn store(&mut self, ins: &Instruction, width: u8, v: Val, plain: bool) -> Effect {
        match self.mem(ins) {
            Mem::Stack(off) => {
                self.set_slot(off, width, v);
                Effect::None
            }
            Mem::Abs(addr) => Effect::GlobalWrite(GlobalWrite {
                addr,
                width,
                value: v.constant().filter(|_| plain),
            }),
            _ => Effect::None,
        }
    }

    /// movzx / movsx / movsxd of a known constant register.
    fn extended(&self, ins: &Instruction) -> Val {
        if ins.op1_kind() != OpKind::Register {
            return Val::Unknown;
        }
        let src = ins.op1_register();
        let Some(v) = self.reg(src).constant() else {
            return Val::Unknown;
        };
        let bits = src.size() as u32 * 8;
        let low = if bits >= 64 {
            v
        } else {
            v & ((1u64 << bits) - 1)
        };
        let v = if ins.mnemonic() == Mnemonic::Movzx || (low >> (bits - 1)) & 1 == 0 {
            low
        } else {
            low | !((1u64 << bits) - 1)
        };
        Val::Const(v, Origin::Computed(ins.ip()))
    }

    fn lea(&mut self, ins: &Instruction) -> Effect {
        let r = ins.op0_register();
        let disp = ins.memory_displacement64();
        let (mut effect, mut v) = (Effect::None, Val::Unknown);
        if ins.is_ip_rel_memory_operand() {
            let a = ins.ip_rel_memory_address();
            (effect, v) = (
                Effect::AddressTaken(a),
                Val::Const(a, Origin::Computed(ins.ip())),
            );
        } else {
            let base = ins.memory_base();
            let index = ins.memory_index();
            let part = |reg: Register| match reg {
                Register::None => Some(0),
                r => self.reg(r).constant(),
            };
            if gpr(base) == Some(RSP) && index == Register::None {
                v = Val::StackAddr(self.sp.wrapping_add(disp as i64));
            } else if let (Val::StackAddr(o), Register::None) = (self.reg(base), index) {
                v = Val::StackAddr(o.wrapping_add(disp as i64));
            } else if let (Some(b), Some(i)) = (part(base), part(index)) {
                let sum = b
                    .wrapping_add(i.wrapping_mul(u64::from(ins.memory_index_scale())))
                    .wrapping_add(disp);
                v = Val::Const(sum, Origin::Computed(ins.ip()));
                if base == Register::None && index == Register::None {
                    effect = Effect::AddressTaken(sum);
                }
            }
        }
        self.set_reg(r, v);
        effect
    }

    fn push(&mut self, ins: &Instruction) -> Effect {
        let ptr = self.ptr();
        let v = if ins.op_count() == 1 {
            self.operand(ins, 0, ptr)
        } else {
            Val::Unknown
        };
        self.sp -= i64::from(ptr);
        self.set_slot(self.sp, ptr, v);
        Effect::None
    }

    /// add/sub/and/or/xor/shl/shr/sar with an immediate.
    fn arith(&mut self, ins: &Instruction) -> Option<Effect> {
        let imm = ins.immediate(1);
        let m = ins.mnemonic();
        if ins.op0_kind() == OpKind::Memory {
            let width = ins.memory_size().size() as u8;
            // `and [slot], 0` is how MSVC writes a zero argument.
            let v = if m == Mnemonic::And && imm == 0 {
                Val::Const(0, Origin::Immediate(ins.ip()))
            } else {
                Val::Unknown
            };
            return Some(self.store(ins, width, v, false));
        }
        let r = ins.op0_register();
        if gpr(r) == Some(RSP) {
            match m {
                Mnemonic::Add => self.sp = self.sp.wrapping_add(imm as i64),
                Mnemonic::Sub => self.sp = self.sp.wrapping_sub(imm as i64),
                _ => self.rebase(),
            }
            return Some(Effect::None);
        }
        let v = match (self.reg(r), r.size()) {
            (_, size) if size < 4 => Val::Unknown,
            (Val::Const(c, _), _) => compute(m, c, imm)
                .map_or(Val::Unknown, |v| Val::Const(v, Origin::Computed(ins.ip()))),
            (Val::StackAddr(o), _) if m == Mnemonic::Add => Val::StackAddr(o + imm as i64),
            (Val::StackAddr(o), _) if m == Mnemonic::Sub => Val::StackAddr(o - imm as i64),
            _ => Val::Unknown,
        };
        self.set_reg(r, v);
        Some(Effect::None)
    }
}

fn is_arith(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Add
            | Mnemonic::Sub
            | Mnemonic::And
            | Mnemonic::Or
            | Mnemonic::Xor
            | Mnemonic::Shl
            | Mnemonic::Shr
            | Mnemonic::Sar
    )
}

fn compute(m: Mnemonic, a: u64, b: u64) -> Option<u64> {
    Some(match m {
        Mnemonic::Add => a.wrapping_add(b),
        Mnemonic::Sub => a.wrapping_sub(b),
        Mnemonic::And => a & b,
        Mnemonic::Or => a | b,
        Mnemonic::Xor => a ^ b,
        Mnemonic::Shl => a.checked_shl(b as u32)?,
        Mnemonic::Shr => a.checked_shr(b as u32)?,
        _ => return None,
    })
}

fn writes(a: OpAccess) -> bool {
    matches!(
        a,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

pub fn is_immediate(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

fn mask(v: u64, width: u8) -> u64 {
    if width >= 8 {
        v
    } else {
        v & ((1u64 << (u32::from(width) * 8)) - 1)
    }
}

/// A value as seen through a narrower register or slot: constants are truncated, the others
/// kept only where truncation keeps their meaning (parameters and results are used at their
/// own width; on x64 a 32-bit copy of a pointer or frame address means nothing).
fn narrow(v: Val, width: u8, bitness: u32) -> Val {
    let full = if bitness == 64 { 8 } else { 4 };
    match v {
        Val::Const(c, o) => Val::Const(mask(c, width), o),
        Val::Load { addr, width: w } if width < w => Val::Load { addr, width },
        Val::StackAddr(_) if width < full => Val::Unknown,
        v => v,
    }
}

#[cfg(test)]
#[path = "dataflow_tests.rs"]
mod tests;
