//! The argument tracking on hand-assembled instructions: each test names its instructions as
//! GNU objdump reads the bytes (`x86_64-w64-mingw32-objdump -D -b binary -M intel`).

use super::*;
use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory};

fn run(bitness: u32, mut st: State, code: &[u8]) -> (State, Vec<Effect>) {
    let mut d = Decoder::with_ip(bitness, code, 0x1000, DecoderOptions::NONE);
    let mut f = InstructionInfoFactory::new();
    let mut effects = Vec::new();
    for ins in &mut d {
        effects.push(st.step(&ins, f.info(&ins)));
    }
    (st, effects)
}

fn c(v: u64) -> Option<u64> {
    Some(v)
}

/// usb2dbg.sys+0x106b: `mov r15d, 0x40; lea r12d, [r15+0x22]; mov edx, r12d;
/// lea ecx, [r15-0x3f]` (objdump) gives edx = 0x62 and ecx = 1 (PagedPool).
#[test]
fn copies_and_lea_of_constants() {
    let code = [
        0x41, 0xbf, 0x40, 0, 0, 0, 0x45, 0x8d, 0x67, 0x22, 0x41, 0x8b, 0xd4, 0x41, 0x8d, 0x4f, 0xc1,
    ];
    let (st, _) = run(64, State::new(64), &code);
    assert_eq!(st.reg(Register::RDX).constant(), c(0x62));
    assert_eq!(st.reg(Register::RCX).constant(), c(1));
    assert_eq!(
        st.reg(Register::RCX),
        Val::Const(1, Origin::Computed(0x100d))
    );
}

/// `mov edi, 0xe8; call x; mov edx, edi`: edi is callee-saved, edx volatile.
#[test]
fn callee_saved_registers_survive_calls() {
    let (mut st, _) = run(64, State::new(64), &[0xbf, 0xe8, 0, 0, 0, 0xba, 1, 0, 0, 0]);
    st.after_call();
    assert_eq!(st.reg(Register::RDX), Val::Unknown);
    let (st, _) = run(64, st, &[0x8b, 0xd7]);
    assert_eq!(
        st.reg(Register::EDX),
        Val::Const(0xe8, Origin::Immediate(0x1000))
    );
}

/// A 16-bit write, `mul` (implicit rdx), and a load through an unknown pointer.
#[test]
fn other_writes_make_registers_unknown() {
    // mov ecx, 1; mov edx, 2; mov r8d, 3; mov cx, 5; mul r8; mov r8d, [rax]
    let code = [
        0xb9, 1, 0, 0, 0, 0xba, 2, 0, 0, 0, 0x41, 0xb8, 3, 0, 0, 0, 0x66, 0xb9, 5, 0, 0x49, 0xf7,
        0xe0, 0x44, 0x8b, 0x00,
    ];
    let (st, _) = run(64, State::new(64), &code);
    assert_eq!(st.reg(Register::RCX), Val::Unknown);
    assert_eq!(st.reg(Register::RDX), Val::Unknown);
    assert_eq!(st.reg(Register::R8), Val::Unknown);
}

/// x64 stack arguments: `mov qword [rsp+0x20], 0x60; mov dword [rsp+0x28], 'Tag1'`, and
/// a slot written 4 bytes wide does not give an 8-byte argument.
#[test]
fn stack_argument_slots() {
    let code = [
        0x48, 0xc7, 0x44, 0x24, 0x20, 0x60, 0, 0, 0, 0xc7, 0x44, 0x24, 0x28, b'T', b'a', b'g', b'1',
    ];
    let (st, _) = run(64, State::new(64), &code);
    assert_eq!(st.arg(4, 8).constant(), c(0x60));
    assert_eq!(st.arg(5, 4).constant(), c(0x3167_6154));
    assert_eq!(st.arg(5, 8), Val::Unknown);
    assert_eq!(st.arg(6, 4), Val::Unknown);
}

/// x86 stdcall: `push 'Tag1'; push [esp+8]; push 0x200` inside a function whose first
/// parameter is at [esp+4] on entry: the pushes read as arguments 0, 1, 2.
#[test]
fn x86_pushes_and_incoming_parameters() {
    let code = [
        0x68, b'T', b'a', b'g', b'1', 0xff, 0x74, 0x24, 0x08, 0x68, 0, 2, 0, 0,
    ];
    let (st, _) = run(32, State::entry(32), &code);
    assert_eq!(st.arg(0, 4).constant(), c(0x200));
    assert_eq!(st.arg(1, 4), Val::Param(0));
    assert_eq!(st.arg(2, 4).constant(), c(0x3167_6154));
}

/// x64 entry: rcx..r9 are parameters 0..3; a copy keeps the parameter.
#[test]
fn x64_parameters_in_registers() {
    // mov rdx, rcx; mov ecx, 0x200
    let (st, _) = run(64, State::entry(64), &[0x48, 0x89, 0xca, 0xb9, 0, 2, 0, 0]);
    assert_eq!(st.arg(1, 8), Val::Param(0));
    assert_eq!(st.arg(0, 4).constant(), c(0x200));
    assert_eq!(st.arg(2, 4), Val::Param(2));
}

/// Loads from fixed addresses, and a dereference of an import slot's pointer:
/// `mov rax, [rip+0x100]; mov ecx, [rax]; mov edx, [rip+0x200]`.
#[test]
fn loads_from_fixed_addresses() {
    let code = [
        0x48, 0x8b, 0x05, 0, 1, 0, 0, 0x8b, 0x08, 0x8b, 0x15, 0, 2, 0, 0,
    ];
    let (st, _) = run(64, State::new(64), &code);
    assert_eq!(
        st.reg(Register::RAX),
        Val::Load {
            addr: 0x1107,
            width: 8
        }
    );
    assert_eq!(st.reg(Register::RCX), Val::ImportData(0x1107));
    assert_eq!(
        st.reg(Register::RDX),
        Val::Load {
            addr: 0x120f,
            width: 4
        }
    );
}

/// Global stores are reported with their value when it is a known constant:
/// `mov ecx, 0x200; mov [rip+0x10], ecx; mov dword [rip+0x10], 0x40000000; inc [rip+0]`.
#[test]
fn global_writes_are_reported() {
    let code = [
        0xb9, 0, 2, 0, 0, 0x89, 0x0d, 0x10, 0, 0, 0, 0xc7, 0x05, 0x10, 0, 0, 0, 0, 0, 0, 0x40,
        0xff, 0x05, 0, 0, 0, 0,
    ];
    let (_, effects) = run(64, State::new(64), &code);
    let w = |addr, width, value| Effect::GlobalWrite(GlobalWrite { addr, width, value });
    assert_eq!(
        effects,
        [
            Effect::None,
            w(0x101b, 4, Some(0x200)),
            w(0x1025, 4, Some(0x4000_0000)),
            w(0x101b, 4, None)
        ]
    );
}
