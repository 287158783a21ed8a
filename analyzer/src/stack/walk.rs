//! The walk: frame after frame from the starting context until something stops it. It never
//! hangs: the stack pointer must grow from frame to frame (an arm64 leaf may keep it; a
//! machine frame may move it anywhere; an (instruction, stack) pair seen twice is a loop),
//! and at most [`MAX_FRAMES`] frames are produced.

use super::context::{Registers, RSP};
use super::image::{ImageFetch, ModuleImage};
use super::pdata::{FunctionTable, RuntimeFunction};
use super::unwind_x64::{unwind, Frame};
use super::{arm64, x86, StartContext, UnwindError};
use crate::dump::Arch;
use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::symbols::frame_data::FrameTable;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Most frames produced (WinDbg's `k` shows 20 by default; kernel stacks are shallower than
/// this by far).
pub const MAX_FRAMES: usize = 256;

/// How a frame's registers were obtained (JSON `unwound_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnwoundBy {
    /// The starting context itself (frame 0).
    Context,
    /// The callee's RUNTIME_FUNCTION / UNWIND_INFO.
    Pdata,
    /// The callee had no RUNTIME_FUNCTION: a leaf, its return address at [rsp].
    Leaf,
    /// ARM64: the callee's packed unwind data (Flag 1 or 2 in its RUNTIME_FUNCTION).
    PdataPacked,
    /// ARM64: the callee had no RUNTIME_FUNCTION: a leaf, its return address in lr (only
    /// where lr is live: the first frame, or a frame an interruption resumed at).
    LinkRegister,
    /// The callee's saved EBP (x86).
    FramePointer,
    /// The callee's FPO_DATA or FRAMEDATA record from its module's PDB (x86).
    FpoData,
}

/// Why the walk ended (JSON `stopped.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfStack,
    PageMissing,
    OutsideModules,
    NoUnwindInfo,
    Loop,
    FrameLimit,
    /// No starting registers: no frame was walked (see `detail`).
    NoContext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub reason: StopReason,
    /// One sentence.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFrame {
    pub index: usize,
    pub ip: u64,
    pub sp: u64,
    /// Index into the module list of the module holding `ip`.
    pub module: Option<usize>,
    pub unwound_by: UnwoundBy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackWalk {
    pub frames: Vec<StackFrame>,
    pub stop: Stop,
    /// Modules whose unwind information was read from a copy fetched through the symbol path.
    pub images_fetched: Vec<String>,
}

/// One module's image and its function table, read once.
struct Unwinder<'a, T = FunctionTable> {
    image: ModuleImage<'a>,
    table: Result<T, UnwindError>,
}

struct Walker<'a> {
    modules: &'a [Module],
    mem: &'a dyn VirtualMemory,
    fetch: &'a dyn ImageFetch,
    unwinders: HashMap<usize, Unwinder<'a>>,
    /// x86: each module's PDB frame records, looked up once (`None`: no PDB).
    frame_tables: HashMap<usize, Option<FrameTable>>,
    /// x86: parameter bytes the current frame passed to its callee.
    callee_params: u32,
    arm64: HashMap<usize, Unwinder<'a, arm64::FunctionTable>>,
}

/// Walks the stack from `start`. `mem` is the dump's kernel memory (stack and image pages);
/// `fetch` finds images the dump does not hold.
pub fn walk(
    start: &StartContext,
    arch: Arch,
    modules: &[Module],
    mem: &dyn VirtualMemory,
    fetch: &dyn ImageFetch,
) -> StackWalk {
    let mut w = Walker {
        modules,
        mem,
        fetch,
        unwinders: HashMap::new(),
        frame_tables: HashMap::new(),
        callee_params: 0,
        arm64: HashMap::new(),
    };
    let mut frames = Vec::new();
    let mut regs = start.regs;
    let mut by = UnwoundBy::Context;
    // Frame 0's instruction is where the CPU was; later ones are return addresses.
    let mut return_address = false;
    let mut seen = HashSet::from([(regs.ip, regs.sp())]);
    let stop = loop {
        let module = modules.iter().position(|m| m.contains(regs.ip));
        frames.push(StackFrame {
            index: frames.len(),
            ip: regs.ip,
            sp: regs.sp(),
            module,
            unwound_by: by,
        });
        if frames.len() >= MAX_FRAMES {
            break stop(
                StopReason::FrameLimit,
                format!("the walk stops at {MAX_FRAMES} frames"),
            );
        }
        let Some(mi) = module else {
            break stop(
                StopReason::OutsideModules,
                format!("{:#x} is in no loaded module", regs.ip),
            );
        };
        let step = match arch {
            Arch::X86 => match w.step_x86(mi, &regs, return_address) {
                Ok(Some(s)) => Ok(s),
                Ok(None) => {
                    break stop(
                        StopReason::EndOfStack,
                        "EBP is 0: the first frame of the thread".into(),
                    )
                }
                Err(e) => Err(e),
            },
            Arch::X64 => w.step_x64(mi, &regs, return_address),
            Arch::Arm64 => w.step_arm64(mi, &regs, return_address),
        };
        let (next, next_by, machine_frame) = match step {
            Ok(s) => s,
            Err(e) => break failed(&modules[mi], &e),
        };
        if next.ip == 0 {
            break stop(
                StopReason::EndOfStack,
                "the return address is 0: the first frame of the thread".into(),
            );
        }
        // An ARM64 leaf returns through lr without touching sp: an equal sp is progress there
        // (the (instruction, stack) pair seen twice still is a loop).
        let shrinks = match arch {
            Arch::Arm64 => next.sp() < regs.sp(),
            _ => next.sp() <= regs.sp(),
        };
        if (!machine_frame && shrinks) || !seen.insert((next.ip, next.sp())) {
            break stop(
                StopReason::Loop,
                format!(
                    "the stack pointer does not grow ({:#x} after {:#x}): the unwind is going round",
                    next.sp(),
                    regs.sp()
                ),
            );
        }
        regs = next;
        by = next_by;
        return_address = !machine_frame;
    };
    let images = w.unwinders.values().map(|u| &u.image);
    let mut images_fetched: Vec<String> = images
        .chain(w.arm64.values().map(|u| &u.image))
        .filter(|image| image.used_copy())
        .map(|image| image.module.name.clone())
        .collect();
    images_fetched.sort();
    StackWalk {
        frames,
        stop,
        images_fetched,
    }
}

fn stop(reason: StopReason, detail: String) -> Stop {
    Stop { reason, detail }
}

/// The stop for an unwind that failed in module `m`.
fn failed(m: &Module, e: &UnwindError) -> Stop {
    match e {
        UnwindError::Missing { what, address } if *what == "stack" => stop(
            StopReason::PageMissing,
            format!("the stack at {address:#x} is not in the dump"),
        ),
        UnwindError::Missing { address, .. } => stop(
            StopReason::PageMissing,
            format!(
                "{}'s unwind information (at {address:#x}) is not in the dump and the symbol path has no copy of the image",
                m.name
            ),
        ),
        UnwindError::NoTable => stop(
            StopReason::NoUnwindInfo,
            format!("{} has no exception directory (.pdata)", m.name),
        ),
        UnwindError::Malformed { .. }
        | UnwindError::FrameData { .. }
        | UnwindError::NoFunction { .. } => {
            stop(StopReason::NoUnwindInfo, format!("{}: {e}", m.name))
        }
    }
}

impl<'a> Walker<'a> {
    fn unwinder(&mut self, mi: usize) -> &mut Unwinder<'a> {
        let (modules, mem, fetch) = (self.modules, self.mem, self.fetch);
        self.unwinders.entry(mi).or_insert_with(|| {
            let mut image = ModuleImage::new(&modules[mi], Some(mem), fetch);
            let table = FunctionTable::read(&mut image).and_then(|t| t.ok_or(UnwindError::NoTable));
            Unwinder { image, table }
        })
    }

    /// One x86 frame: with the module's PDB frame records where one covers the instruction,
    /// else along the EBP chain; `None` at the chain's end.
    fn step_x86(
        &mut self,
        mi: usize,
        regs: &Registers,
        return_address: bool,
    ) -> Result<Option<(Registers, UnwoundBy, bool)>, UnwindError> {
        let m = &self.modules[mi];
        let fetch = self.fetch;
        let table = self
            .frame_tables
            .entry(mi)
            .or_insert_with(|| fetch.frame_data(m));
        let rva = regs
            .ip
            .wrapping_sub(m.base)
            .wrapping_sub(u64::from(return_address));
        let at = x86::Position {
            regs,
            rva: u32::try_from(rva).ok(),
            exact: !return_address,
            callee_params: self.callee_params,
        };
        let Some(done) = x86::unwind(at, table.as_ref(), self.mem)? else {
            return Ok(None);
        };
        self.callee_params = done.params;
        Ok(Some((done.regs, done.by, false)))
    }

    /// One arm64 frame: (caller's registers, how, whether through an interruption's record).
    fn step_arm64(
        &mut self,
        mi: usize,
        regs: &Registers,
        return_address: bool,
    ) -> Result<(Registers, UnwoundBy, bool), UnwindError> {
        let (modules, mem, fetch) = (self.modules, self.mem, self.fetch);
        let u = self.arm64.entry(mi).or_insert_with(|| {
            let mut image = ModuleImage::new(&modules[mi], Some(mem), fetch);
            let table =
                arm64::FunctionTable::read(&mut image).and_then(|t| t.ok_or(UnwindError::NoTable));
            Unwinder { image, table }
        });
        let base = modules[mi].base;
        let s = arm64::step(&mut u.image, &u.table, base, regs, return_address, mem)?;
        Ok((s.regs, s.by, s.interrupted))
    }

    /// One x64 frame: (caller's registers, how, whether through a machine frame).
    fn step_x64(
        &mut self,
        mi: usize,
        regs: &Registers,
        return_address: bool,
    ) -> Result<(Registers, UnwoundBy, bool), UnwindError> {
        let base = self.modules[mi].base;
        let mem = self.mem;
        let u = self.unwinder(mi);
        let table = u.table.clone()?;
        // A return address may be the first byte after its function (a call as the last
        // instruction): look up the call instead.
        let lookup = regs
            .ip
            .wrapping_sub(base)
            .wrapping_sub(u64::from(return_address)) as u32;
        let Some(mut function) = table.lookup(&mut u.image, lookup)? else {
            let mut next = *regs;
            next.ip = mem.read_u64(regs.sp()).map_err(|_| UnwindError::Missing {
                what: "stack",
                address: regs.sp(),
            })?;
            next.gpr[RSP] = regs.sp().wrapping_add(8);
            return Ok((next, UnwoundBy::Leaf, false));
        };
        if function.unwind & 1 == 1 {
            // UnwindData pointing at another RUNTIME_FUNCTION (shared unwind information).
            let mut b = [0u8; 12];
            use super::image::ImageRead;
            u.image.read_rva(function.unwind & !1, &mut b)?;
            function = RuntimeFunction::parse(&b);
        }
        let mut next = *regs;
        let done = unwind(
            Frame {
                image: &mut u.image,
                base,
                function,
                may_be_in_epilog: !return_address,
            },
            &mut next,
            mem,
        )?;
        Ok((next, UnwoundBy::Pdata, done.machine_frame))
    }
}
