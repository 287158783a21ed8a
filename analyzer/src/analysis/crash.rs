//! The report's `crash` member: the crashing thread's stack walked ([`crate::stack`]), its
//! frames named with the modules' PDBs, the followup module and the bucket id, and for pool
//! bug checks the block at the parameter's address.
//!
//! Images the dump does not hold (every image in a triage dump) are fetched through the symbol
//! path by TimeDateStamp + SizeOfImage, only for the modules the walk reaches; on x86 so are
//! those modules' PDBs, whose frame records walk through code without frame pointers.

use super::Input;
use crate::dump::Dump;
use crate::kernel::bugcheck::{describe, ParamKind};
use crate::kernel::pe::PeFile;
use crate::kernel::KernelInfo;
use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::report::crash::*;
use crate::report::hex::Hex;
use crate::report::pool_at::PoolAtBlock;
use crate::stack::bucket::{bucket_id, followup, SummaryFrame};
use crate::stack::image::ImageFetch;
use crate::stack::{start_context, walk, ContextSource, StackWalk, StartContext};
use crate::symbols::frame_data::FrameTable;
use crate::symbols::resolve::debugger_module_name;
use crate::symbols::resolve::{resolve_module, SymbolState, SymbolStatus};
use crate::symbols::store::{SymbolKey, SymbolStore};
use crate::symbols::symbolizer::{NamedAddress, Symbolizer};
use std::time::Instant;

/// Largest image file mapped for its unwind information (ntoskrnl is about 16 MiB).
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Bug checks whose parameter names a pool block (the base codes).
const POOL_BUGCHECKS: &[u32] = &[0x19, 0xC2, 0xC5, 0xC4, 0x62, 0xCE];

/// A walked stack and where it started.
pub struct Walked {
    pub start: StartContext,
    pub walk: StackWalk,
}

/// Walks the crashing thread's stack; `None` when the dump has no bug check. Without
/// starting registers the walk is empty and says why, so the bug check's other findings (the
/// unloaded drivers, the pool block) still have their place.
pub fn walk_crash(
    dump: &Dump,
    kernel: &KernelInfo,
    store: Option<&SymbolStore>,
    deadline: Option<Instant>,
) -> Option<Walked> {
    let b = &kernel.bugcheck;
    if b.code == 0 {
        return None;
    }
    let arch = dump.header().arch;
    let (mem, unreadable) = match dump.kernel_memory() {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    let params = b.params.clone().map(|p| p.value);
    let header = dump
        .file_bytes()
        .get(..dump.header_size() as usize)
        .unwrap_or_default();
    let Some(start) = start_context(header, arch, b.code, &params, mem.as_deref()) else {
        return Some(not_walked(arch));
    };
    let fetch = StoreImages { store, deadline };
    let empty = crate::kernel::pe::SliceMemory::new(0, &[], 8);
    let mem: &dyn VirtualMemory = mem.as_deref().unwrap_or(&empty);
    let mut walk = walk(&start, arch, &kernel.modules.modules, mem, &fetch);
    if let Some(e) = unreadable {
        // Without virtual memory neither the stack nor the modules' pages were read.
        walk.stop.detail = format!(
            "{} (the dump's virtual memory is not readable: {e})",
            walk.stop.detail
        );
    }
    Some(Walked { start, walk })
}

/// The empty walk of a dump whose starting registers could not be read.
fn not_walked(arch: crate::dump::Arch) -> Walked {
    let detail = match arch {
        crate::dump::Arch::Arm64 => {
            "the dump header's context record is empty or not an ARM64 CONTEXT, and no \
             exception record or trap frame a parameter names could be read (arm64 virtual \
             addresses are translated only through a triage dump's captured blocks)"
        }
        _ => {
            "the dump header's context record is empty or not of this architecture, and the \
             bug check's parameters name no readable exception record or trap frame"
        }
    };
    Walked {
        start: StartContext {
            regs: Default::default(),
            source: ContextSource::None,
            address: None,
        },
        walk: StackWalk {
            frames: Vec::new(),
            stop: crate::stack::Stop {
                reason: crate::stack::StopReason::NoContext,
                detail: detail.to_string(),
            },
            images_fetched: Vec::new(),
        },
    }
}

/// Fetches images through the symbol path by (TimeDateStamp, SizeOfImage).
struct StoreImages<'a> {
    store: Option<&'a SymbolStore>,
    deadline: Option<Instant>,
}

impl ImageFetch for StoreImages<'_> {
    fn fetch_image(&self, m: &Module) -> Option<Vec<u8>> {
        let store = self.store?;
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let (timestamp, size) = match &m.pe {
            Some(pe) => (pe.timestamp, pe.size_of_image),
            None => (m.timestamp?, m.size),
        };
        let fetched = store
            .fetch(&SymbolKey::pe(m.name.clone(), timestamp, size))
            .ok()?;
        if std::fs::metadata(&fetched.path).ok()?.len() > MAX_IMAGE_BYTES {
            return None;
        }
        let bytes = std::fs::read(&fetched.path).ok()?;
        let pe = PeFile::new(&bytes).ok()?;
        let info = pe.info().ok()?;
        // The store's file must be the image that was loaded.
        if info.timestamp != timestamp || info.size_of_image != size {
            return None;
        }
        let mut mapped = vec![0u8; size as usize];
        pe.read(pe.base(), &mut mapped).ok()?;
        Some(mapped)
    }

    /// The module's PDB found as the frames' names will be (its CodeView key, from the dump or
    /// the fetched image), read for its frame records. An unreadable PDB counts as none: the
    /// walk follows EBP there, and the module list says why the PDB could not be used.
    fn frame_data(&self, m: &Module) -> Option<FrameTable> {
        let store = self.store?;
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let status = resolve_module(store, m);
        let pdb = status.pdb.filter(|_| status.status == SymbolState::Found)?;
        FrameTable::from_pdb(&pdb).ok()
    }
}

/// The `crash` member from the walk, naming frames with `sym`.
pub fn report(
    w: &Walked,
    dump: &Dump,
    kernel: &KernelInfo,
    sym: &mut Symbolizer<'_>,
) -> CrashReport {
    let mods = &kernel.modules.modules;
    let kernel_base = kernel.kernel_base;
    let named: Vec<Option<NamedAddress>> = w.walk.frames.iter().map(|f| sym.name(f.ip)).collect();
    let frames: Vec<CrashFrame> = w
        .walk
        .frames
        .iter()
        .zip(&named)
        .map(|(f, n)| CrashFrame {
            index: f.index,
            instruction: Hex(f.ip),
            stack_pointer: Hex(f.sp),
            module: f.module.map(|i| mods[i].name.clone()),
            offset: f.module.map(|i| Hex(f.ip - mods[i].base)),
            function: n.as_ref().and_then(|n| n.function.clone()),
            displacement: n.as_ref().and_then(|n| n.displacement).map(Hex),
            unwound_by: f.unwound_by,
            symbol: n
                .as_ref()
                .map_or_else(|| format!("{:#x}", f.ip), |n| n.symbol.clone()),
        })
        .collect();
    let shorts: Vec<Option<String>> = w
        .walk
        .frames
        .iter()
        .map(|f| {
            f.module
                .map(|i| debugger_module_name(&mods[i], kernel_base == Some(mods[i].base)))
        })
        .collect();
    let summary: Vec<SummaryFrame<'_>> = w
        .walk
        .frames
        .iter()
        .zip(&frames)
        .zip(&shorts)
        .map(|((f, c), s)| SummaryFrame {
            module: c.module.as_deref(),
            short: s.as_deref(),
            is_kernel: f.module.is_some_and(|i| kernel_base == Some(mods[i].base)),
            function: c.function.as_deref(),
        })
        .collect();
    let follow = followup(&summary);
    CrashReport {
        context_source: w.start.source,
        context_address: w.start.address.map(Hex),
        stack: CrashStack {
            // x86 keeps its name although frames may be undone with PDB frame records: each
            // frame's `unwound_by` says how.
            method: match dump.header().arch {
                crate::dump::Arch::X86 => "frame_pointer",
                _ => "unwind",
            }
            .to_string(),
            stopped: StackStopped {
                reason: w.walk.stop.reason,
                detail: w.walk.stop.detail.clone(),
            },
            images_from_symbol_path: w.walk.images_fetched.clone(),
            frames: frames.clone(),
        },
        followup_module: follow.and_then(|i| frames[i].module.clone()),
        bucket: bucket_id(kernel.bugcheck.code, &summary),
        pool_block: None,
        unloaded_drivers: Vec::new(),
    }
}

/// The `crash` member for a report that resolved every module's symbols (`statuses` in module
/// order, as `inspect` has them): walks the stack and names its frames.
pub fn crash_for_modules(
    dump: &Dump,
    kernel: &KernelInfo,
    store: Option<&SymbolStore>,
    statuses: &[SymbolStatus],
    deadline: Option<Instant>,
) -> Option<CrashReport> {
    let w = walk_crash(dump, kernel, store, deadline)?;
    let mut sym = Symbolizer::new(&kernel.modules.modules, statuses, kernel.kernel_base);
    Some(report(&w, dump, kernel, &mut sym))
}

/// For a pool bug check, the address its documented pool-block parameter holds.
pub(super) fn pool_address(input: &Input) -> Option<u64> {
    let b = &input.kernel.bugcheck;
    if !POOL_BUGCHECKS.contains(&(b.code & !0x1000_0000)) {
        return None;
    }
    let params = b.params.clone().map(|p| p.value);
    let page = describe(b.code, params).page?;
    (0..4)
        .find(|&i| page.params[i].kind == ParamKind::PoolBlock && params[i] != 0)
        .map(|i| params[i])
}

/// Sets the pool block of the report's crash, when there is one.
pub(super) fn set_pool_block(
    report: &mut crate::report::AnalysisReport,
    block: Option<PoolAtBlock>,
) {
    if let Some(c) = report.crash.as_mut() {
        c.pool_block = block;
    }
}
