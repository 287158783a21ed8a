//! Evidence from drivers' code: a pool tag is a 32-bit constant, and the code that allocates
//! with it holds it as an immediate operand. On x64 the tag is ExAllocatePoolWithTag's (and
//! ExAllocatePool2's) third argument, loaded with `mov r8d, imm32`; on x86 it is pushed first
//! (`push imm32`). Those are the strong signal; the same constant in any other instruction
//! (ExFreePoolWithTag's `mov edx, imm32`, comparisons) is a weaker one; the four bytes found
//! anywhere in the image (data, strings) the weakest.
//!
//! Code is decoded linearly, section by section, with iced-x86; a wrong start inside data
//! resynchronises within a few instructions, and only printable four-byte constants count.

use crate::kernel::{PeInfo, Section};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::Tag;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Largest executable section decoded (real drivers' are under a few MB).
pub const MAX_SECTION_BYTES: u64 = 64 << 20;
const IMAGE_SCN_CNT_CODE: u32 = 0x20;
const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;

/// Where a tag was seen in one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TagHits {
    /// `mov r8d, imm32` (x64) or `push imm32` (x86): the tag argument of an allocation.
    pub alloc_argument: u32,
    /// The constant in any other instruction.
    pub other_immediate: u32,
    /// Address of the first instruction that holds it.
    #[serde(serialize_with = "crate::pool::hex")]
    pub first: u64,
}

/// A run of code bytes at a virtual address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRegion {
    pub address: u64,
    pub bytes: Vec<u8>,
}

/// What a linear decode of an image's code found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeScan {
    /// Every printable four-byte immediate, by tag.
    pub tags: BTreeMap<Tag, TagHits>,
    /// Memory operands of indirect calls (`call [mem]`: an import's IAT slot), with counts.
    pub indirect_calls: BTreeMap<u64, u32>,
}

/// The printable four-byte immediates of one instruction, with whether each is an allocation's
/// tag argument.
fn immediates(bitness: u32, ins: &Instruction) -> impl Iterator<Item = (Tag, bool)> + '_ {
    (0..ins.op_count()).filter_map(move |i| {
        if !matches!(
            ins.op_kind(i),
            OpKind::Immediate32 | OpKind::Immediate32to64
        ) {
            return None;
        }
        let tag = Tag::from_u32(ins.immediate(i) as u32);
        if !tag.is_printable() || tag.0 == [b' '; 4] {
            return None;
        }
        let alloc = match ins.mnemonic() {
            Mnemonic::Mov => i == 1 && matches!(ins.op0_register(), Register::R8D | Register::R8),
            Mnemonic::Push => bitness == 32,
            _ => false,
        };
        Some((tag, alloc))
    })
}

fn add_hit(h: &mut BTreeMap<Tag, TagHits>, tag: Tag, alloc: bool, ip: u64) {
    let e = h.entry(tag).or_insert(TagHits {
        first: ip,
        ..TagHits::default()
    });
    if alloc {
        e.alloc_argument += 1;
    } else {
        e.other_immediate += 1;
    }
}

/// Every printable four-byte immediate in `regions`, by tag.
pub fn scan_code(bitness: u32, regions: &[CodeRegion]) -> BTreeMap<Tag, TagHits> {
    scan(bitness, regions).tags
}

/// Linear decode of `regions`: immediates and indirect call targets.
pub fn scan(bitness: u32, regions: &[CodeRegion]) -> CodeScan {
    let mut out = CodeScan::default();
    let mut ins = Instruction::default();
    for r in regions {
        let mut d = Decoder::with_ip(bitness, &r.bytes, r.address, DecoderOptions::NONE);
        while d.can_decode() {
            d.decode_out(&mut ins);
            if ins.is_invalid() {
                continue;
            }
            for (tag, alloc) in immediates(bitness, &ins) {
                add_hit(&mut out.tags, tag, alloc, ins.ip());
            }
            if ins.mnemonic() == Mnemonic::Call
                && ins.op_count() == 1
                && ins.op0_kind() == OpKind::Memory
            {
                let target = if ins.is_ip_rel_memory_operand() {
                    Some(ins.ip_rel_memory_address())
                } else if ins.memory_base() == Register::None
                    && ins.memory_index() == Register::None
                {
                    Some(ins.memory_displacement64())
                } else {
                    None
                };
                if let Some(t) = target {
                    *out.indirect_calls.entry(t).or_insert(0) += 1;
                }
            }
        }
    }
    out
}

/// How an allocator import takes its arguments. Names and argument orders from wdm.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorKind {
    /// `ExAllocatePool(POOL_TYPE, size)` / `ExAllocatePoolWithQuota`: the kernel tags the block
    /// "None".
    Untagged,
    /// `ExAllocatePoolWithTag(POOL_TYPE, size, tag)`, `...WithQuotaTag`, `...WithTagPriority`.
    PoolType,
    /// `ExAllocatePool2(POOL_FLAGS, size, tag)`, `ExAllocatePool3`: flags, not a POOL_TYPE.
    PoolFlags,
}

/// An allocator a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocator {
    pub kind: AllocatorKind,
    /// The import's name ("ExAllocatePoolWithTag").
    pub name: &'static str,
}

/// nt's pool allocators by export name.
pub const ALLOCATORS: &[(&str, AllocatorKind)] = &[
    ("ExAllocatePool", AllocatorKind::Untagged),
    ("ExAllocatePoolWithQuota", AllocatorKind::Untagged),
    ("ExAllocatePoolWithTag", AllocatorKind::PoolType),
    ("ExAllocatePoolWithQuotaTag", AllocatorKind::PoolType),
    ("ExAllocatePoolWithTagPriority", AllocatorKind::PoolType),
    ("ExAllocatePool2", AllocatorKind::PoolFlags),
    ("ExAllocatePool3", AllocatorKind::PoolFlags),
];

/// The allocator an imported function name is, if it is one.
pub fn allocator_named(name: &str) -> Option<Allocator> {
    ALLOCATORS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(name, kind)| Allocator { kind, name })
}

/// POOL_FLAGS bits (wdm.h) that say which pool ExAllocatePool2 takes.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
const POOL_FLAG_NON_PAGED_EXECUTE: u64 = 0x80;
const POOL_FLAG_PAGED: u64 = 0x100;

/// One allocation call site in a driver's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocSite {
    /// The instruction: the tag argument (`mov r8d, imm32` / `push imm32`), or for an untagged
    /// allocation the `call [import]` itself.
    pub address: u64,
    /// The tag; "None" for an untagged allocator call.
    pub tag: Tag,
    /// True for `call [ExAllocatePool import]`.
    pub untagged_call: bool,
    /// The allocator the next call goes to, when it is an import we recognise.
    pub callee: Option<&'static str>,
    /// Paged (true) or nonpaged (false), from a plain immediate pool-type (or POOL_FLAGS)
    /// argument set before the call.
    pub paged: Option<bool>,
    /// The requested size, from a plain immediate size argument.
    pub size: Option<u64>,
}

impl AllocSite {
    /// A tag argument whose call was never reached on its linear path (a branch or the end of
    /// the code came first): where and which tag, nothing decoded.
    fn undecoded(address: u64, tag: Tag) -> AllocSite {
        AllocSite {
            address,
            tag,
            untagged_call: false,
            callee: None,
            paged: None,
            size: None,
        }
    }
}

/// What is known of an argument register between two control-flow instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    Unknown,
    Imm(u64),
}

/// Argument tracking for one linear run of code: the x64 rcx/rdx values and the x86 pushes
/// since the last call or branch, and the tag arguments waiting for their call.
#[derive(Default)]
struct ArgState {
    rcx: Option<Arg>,
    rdx: Option<Arg>,
    /// x86: each push since the last call, as its immediate when it pushes one.
    pushes: Vec<Option<u64>>,
    /// Tag arguments seen: (address, tag, index into `pushes` on x86).
    pending: Vec<(u64, Tag, usize)>,
}

impl ArgState {
    fn reset(&mut self) {
        self.rcx = None;
        self.rdx = None;
        self.pushes.clear();
        self.pending.clear();
    }
}

fn arg_value(a: Option<Arg>) -> Option<u64> {
    match a {
        Some(Arg::Imm(v)) => Some(v),
        _ => None,
    }
}

/// Which pool a pool-type or flags argument asks for.
fn paged_of(kind: AllocatorKind, v: u64) -> Option<bool> {
    match kind {
        // POOL_TYPE: bit 0 is the paged bit (BASE_POOL_TYPE_MASK); only values a POOL_TYPE can
        // take (< 0x400: NonPagedPoolNx 0x200, session 0x20, quota 8, ...).
        AllocatorKind::Untagged | AllocatorKind::PoolType => (v < 0x400).then_some(v & 1 == 1),
        AllocatorKind::PoolFlags => {
            let paged = v & POOL_FLAG_PAGED != 0;
            let nonpaged = v & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE) != 0;
            match (paged, nonpaged) {
                (true, false) => Some(true),
                (false, true) => Some(false),
                _ => None,
            }
        }
    }
}

/// The register family an operand register belongs to, for rcx and rdx.
fn family(r: Register) -> Option<bool> {
    match r {
        Register::RCX | Register::ECX | Register::CX | Register::CL | Register::CH => Some(true),
        Register::RDX | Register::EDX | Register::DX | Register::DL | Register::DH => Some(false),
        _ => None,
    }
}

/// Updates the x64 argument registers for one instruction. A `mov reg, imm` or `xor reg, reg`
/// gives a known value; any other write to the register (explicit first operand, or the
/// implicit writes of mul/div/cdq/rdtsc/cpuid/rep/loop) makes it unknown.
fn track_x64(st: &mut ArgState, ins: &Instruction) {
    let set = |st: &mut ArgState, rcx: bool, v: Arg| {
        if rcx {
            st.rcx = Some(v);
        } else {
            st.rdx = Some(v);
        }
    };
    let m = ins.mnemonic();
    if matches!(
        m,
        Mnemonic::Mul
            | Mnemonic::Div
            | Mnemonic::Idiv
            | Mnemonic::Cdq
            | Mnemonic::Cqo
            | Mnemonic::Cwd
            | Mnemonic::Rdtsc
            | Mnemonic::Rdtscp
            | Mnemonic::Rdmsr
            | Mnemonic::Cpuid
            | Mnemonic::Xgetbv
    ) || (m == Mnemonic::Imul && ins.op_count() == 1)
    {
        set(st, false, Arg::Unknown);
    }
    if matches!(
        m,
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne | Mnemonic::Cpuid | Mnemonic::Rdtscp
    ) || ins.has_rep_prefix()
        || ins.has_repne_prefix()
    {
        set(st, true, Arg::Unknown);
    }
    if ins.op_count() == 0 || ins.op0_kind() != OpKind::Register {
        return;
    }
    let Some(rcx) = family(ins.op0_register()) else {
        return;
    };
    if matches!(
        m,
        Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push | Mnemonic::Bt
    ) {
        return;
    }
    let full = matches!(
        ins.op0_register(),
        Register::RCX | Register::ECX | Register::RDX | Register::EDX
    );
    let v = if m == Mnemonic::Mov
        && full
        && matches!(
            ins.op1_kind(),
            OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64
        ) {
        // A 32-bit mov zero-extends; a 64-bit one sign-extends its imm32 (iced gives the value).
        let v = ins.immediate(1);
        Arg::Imm(
            if ins.op0_register() == Register::ECX || ins.op0_register() == Register::EDX {
                v & 0xffff_ffff
            } else {
                v
            },
        )
    } else if m == Mnemonic::Xor
        && full
        && ins.op1_kind() == OpKind::Register
        && ins.op1_register() == ins.op0_register()
    {
        Arg::Imm(0)
    } else {
        Arg::Unknown
    };
    set(st, rcx, v);
}

/// The memory slot (or direct target) a call goes through.
fn call_target(ins: &Instruction) -> Option<u64> {
    if ins.op_count() != 1 {
        return None;
    }
    match ins.op0_kind() {
        OpKind::Memory if ins.is_ip_rel_memory_operand() => Some(ins.ip_rel_memory_address()),
        OpKind::Memory
            if ins.memory_base() == Register::None && ins.memory_index() == Register::None =>
        {
            Some(ins.memory_displacement64())
        }
        _ => None,
    }
}

/// Every allocation call site in `regions`, decoded linearly: each tag argument (`mov r8d,
/// imm32` on x64, `push imm32` on x86) of a tag in `tags`, and each `call` through a slot that
/// `allocator` says is ExAllocatePool (untagged). When the following call goes to a known
/// allocator, its pool-type/flags and size arguments are decoded when they are plain
/// immediates set since the last call or branch (x64: rcx/ecx and rdx/edx; x86: the pushes
/// after the tag, last pushed = first argument). At most `max` sites; the flag says more
/// were found.
///
/// A linear decode can be out of step where a function starts (an odd run of padding bytes
/// before it swallows its first instruction), losing the argument moves before the tag. So a
/// site whose call or arguments were not all seen is decoded again from the 16-byte-aligned
/// addresses just before it (MSVC aligns functions to 16 bytes), nearest first; a window
/// counts only if its decode lands exactly on the site's instruction, and the first window
/// that decodes more of them is taken.
pub fn alloc_sites(
    bitness: u32,
    regions: &[CodeRegion],
    tags: &HashSet<Tag>,
    allocator: &dyn Fn(u64) -> Option<Allocator>,
    max: usize,
) -> (Vec<AllocSite>, bool) {
    let (mut sites, mut truncated) = linear_sites(bitness, regions, tags, allocator, max);
    for (address, tag) in anchored_alloc_sites(bitness, regions, tags) {
        if sites.iter().any(|s| s.address == address) {
            continue;
        }
        if sites.len() >= max {
            truncated = true;
            break;
        }
        sites.push(AllocSite {
            address,
            tag,
            untagged_call: false,
            callee: None,
            paged: None,
            size: None,
        });
    }
    let known = |s: &AllocSite| {
        usize::from(s.callee.is_some())
            + usize::from(s.paged.is_some())
            + usize::from(s.size.is_some())
    };
    for site in sites.iter_mut().filter(|s| known(s) < 3) {
        let Some(r) = regions
            .iter()
            .find(|r| site.address >= r.address && site.address - r.address < r.bytes.len() as u64)
        else {
            continue;
        };
        let off = (site.address - r.address) as usize;
        let mut start = site.address & !0xf;
        for _ in 0..RESYNC_WINDOWS {
            let Some(from) = start.checked_sub(r.address).map(|v| v as usize) else {
                break;
            };
            let end = (off + RESYNC_AFTER).min(r.bytes.len());
            if let Some(bytes) = r.bytes.get(from..end) {
                let window = [CodeRegion {
                    address: start,
                    bytes: bytes.to_vec(),
                }];
                let (again, _) = linear_sites(bitness, &window, tags, allocator, 16);
                if let Some(better) = again
                    .into_iter()
                    .find(|s| {
                        s.address == site.address
                            && s.untagged_call == site.untagged_call
                            && s.callee.is_some()
                    })
                    .filter(|s| known(s) > known(site))
                {
                    *site = better;
                    break;
                }
            }
            match start.checked_sub(16) {
                Some(s) if s >= r.address => start = s,
                _ => break,
            }
        }
    }
    (sites, truncated)
}

/// Aligned starts tried before a site whose arguments the linear decode missed.
const RESYNC_WINDOWS: usize = 8;
/// Bytes decoded after such a site to reach its call.
const RESYNC_AFTER: usize = 96;

fn linear_sites(
    bitness: u32,
    regions: &[CodeRegion],
    tags: &HashSet<Tag>,
    allocator: &dyn Fn(u64) -> Option<Allocator>,
    max: usize,
) -> (Vec<AllocSite>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    let mut push = |out: &mut Vec<AllocSite>, s: AllocSite| {
        if out.len() < max {
            out.push(s);
        } else {
            truncated = true;
        }
    };
    let mut ins = Instruction::default();
    let mut st = ArgState::default();
    for r in regions {
        st.reset();
        let mut d = Decoder::with_ip(bitness, &r.bytes, r.address, DecoderOptions::NONE);
        while d.can_decode() {
            d.decode_out(&mut ins);
            if ins.is_invalid() {
                st.reset();
                continue;
            }
            let m = ins.mnemonic();
            if m == Mnemonic::Call {
                let alloc = call_target(&ins).and_then(allocator);
                let (a1, a2) = if bitness == 64 {
                    (arg_value(st.rcx), arg_value(st.rdx))
                } else {
                    let n = st.pushes.len();
                    let at = |k: usize| {
                        n.checked_sub(k)
                            .and_then(|i| st.pushes.get(i).copied().flatten())
                    };
                    (at(1), at(2))
                };
                for &(address, tag, idx) in &st.pending {
                    // x86: the tag is the third argument, pushed two pushes before the call.
                    let in_place = bitness == 64 || idx + 3 == st.pushes.len();
                    let decoded = alloc.filter(|a| a.kind != AllocatorKind::Untagged && in_place);
                    push(
                        &mut out,
                        AllocSite {
                            address,
                            tag,
                            untagged_call: false,
                            callee: alloc.map(|a| a.name),
                            paged: decoded.and_then(|a| a1.and_then(|v| paged_of(a.kind, v))),
                            size: decoded.and(a2),
                        },
                    );
                }
                if let Some(a) = alloc.filter(|a| a.kind == AllocatorKind::Untagged) {
                    push(
                        &mut out,
                        AllocSite {
                            address: ins.ip(),
                            tag: super::UNTAGGED,
                            untagged_call: true,
                            callee: Some(a.name),
                            paged: a1.and_then(|v| paged_of(a.kind, v)),
                            size: a2,
                        },
                    );
                }
                st.reset();
                continue;
            }
            let near_branch = ins.op_count() > 0
                && matches!(
                    ins.op0_kind(),
                    OpKind::NearBranch16
                        | OpKind::NearBranch32
                        | OpKind::NearBranch64
                        | OpKind::FarBranch16
                        | OpKind::FarBranch32
                );
            if near_branch
                || matches!(
                    m,
                    Mnemonic::Ret
                        | Mnemonic::Retf
                        | Mnemonic::Jmp
                        | Mnemonic::Int3
                        | Mnemonic::Int
                        | Mnemonic::Ud2
                        | Mnemonic::Iret
                        | Mnemonic::Iretd
                        | Mnemonic::Iretq
                        | Mnemonic::Loop
                        | Mnemonic::Loope
                        | Mnemonic::Loopne
                )
            {
                // The arguments seen so far reach no call on this path: report the tag
                // arguments without decoded values.
                for &(address, tag, _) in &st.pending {
                    push(&mut out, AllocSite::undecoded(address, tag));
                }
                st.reset();
                continue;
            }
            for (tag, alloc) in immediates(bitness, &ins) {
                if alloc && tags.contains(&tag) {
                    st.pending.push((ins.ip(), tag, st.pushes.len()));
                }
            }
            if bitness == 64 {
                track_x64(&mut st, &ins);
            } else if m == Mnemonic::Push {
                let imm = matches!(
                    ins.op0_kind(),
                    OpKind::Immediate8to32
                        | OpKind::Immediate32
                        | OpKind::Immediate8
                        | OpKind::Immediate16
                )
                .then(|| ins.immediate(0) & 0xffff_ffff);
                st.pushes.push(imm);
            } else if ins.op_count() > 0
                && ins.op0_kind() == OpKind::Register
                && matches!(ins.op0_register(), Register::ESP | Register::SP)
            {
                // The stack pointer moved: the pushes no longer line up with arguments.
                st.pushes.clear();
                st.pending.clear();
            }
        }
        for &(address, tag, _) in &st.pending {
            push(&mut out, AllocSite::undecoded(address, tag));
        }
    }
    (out, truncated)
}

/// Longest x86 instruction: an anchored decode starts at most this far before the tag.
const MAX_INSTRUCTION: usize = 15;

/// Instruction evidence for `tag` at each byte offset where its four bytes occur: see
/// [`anchored_all`]. Returns the hits and the number of byte occurrences.
pub fn anchored_hits(bitness: u32, regions: &[CodeRegion], tag: Tag) -> (Option<TagHits>, u32) {
    let (mut hits, bytes) = anchored_all(bitness, regions, &HashSet::from([tag]));
    (hits.remove(&tag), bytes.get(&tag).copied().unwrap_or(0))
}

/// For every byte offset where one of `candidates` occurs (one pass, a set lookup per
/// offset), an anchored decode: an instruction that starts up to 15 bytes before the
/// occurrence and ends exactly after it, with the tag as its immediate. This finds call sites
/// that a linear decode misses when it is out of step (data or padding before a function).
/// Returns the instruction hits and the byte-occurrence counts, by tag.
pub fn anchored_all(
    bitness: u32,
    regions: &[CodeRegion],
    candidates: &HashSet<Tag>,
) -> (BTreeMap<Tag, TagHits>, BTreeMap<Tag, u32>) {
    let mut hits = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    if candidates.is_empty() {
        return (hits, bytes);
    }
    let mut ins = Instruction::default();
    for r in regions {
        for (o, w) in r.bytes.windows(4).enumerate() {
            let tag = Tag([w[0], w[1], w[2], w[3]]);
            if !candidates.contains(&tag) {
                continue;
            }
            *bytes.entry(tag).or_insert(0u32) += 1;
            if let Some((ip, alloc)) = anchored_at(bitness, r, o, tag, &mut ins) {
                add_hit(&mut hits, tag, alloc, ip);
            }
        }
    }
    (hits, bytes)
}

/// The instruction that ends exactly after the tag's bytes at offset `o` of `r` and holds the
/// tag as its immediate: an allocation-argument reading when there is one (x64 `41 b8 imm32`
/// is `mov r8d, imm32`, while its last five bytes alone read as `mov eax, imm32`), else the
/// shortest other reading. Returns its address and whether it is an allocation argument.
fn anchored_at(
    bitness: u32,
    r: &CodeRegion,
    o: usize,
    tag: Tag,
    ins: &mut Instruction,
) -> Option<(u64, bool)> {
    let mut other = None;
    for back in 1..=MAX_INSTRUCTION.min(o) {
        let start = o - back;
        let Some(code) = r.bytes.get(start..o + 4) else {
            continue;
        };
        let mut d = Decoder::with_ip(
            bitness,
            code,
            r.address + start as u64,
            DecoderOptions::NONE,
        );
        d.decode_out(ins);
        if ins.is_invalid() || ins.len() != code.len() {
            continue;
        }
        if let Some((_, alloc)) = immediates(bitness, ins).find(|(t, _)| *t == tag) {
            if alloc {
                return Some((ins.ip(), true));
            }
            other.get_or_insert((ins.ip(), false));
        }
    }
    other
}

/// Addresses of the allocation-argument instructions (`mov r8d, imm32` / `push imm32`) that
/// hold one of `tags`, found by an anchored decode at every byte occurrence (see
/// [`anchored_all`]): the sites a linear decode out of step misses.
pub fn anchored_alloc_sites(
    bitness: u32,
    regions: &[CodeRegion],
    tags: &HashSet<Tag>,
) -> Vec<(u64, Tag)> {
    let mut out = Vec::new();
    if tags.is_empty() {
        return out;
    }
    let mut ins = Instruction::default();
    for r in regions {
        for (o, w) in r.bytes.windows(4).enumerate() {
            let tag = Tag([w[0], w[1], w[2], w[3]]);
            if !tags.contains(&tag) {
                continue;
            }
            if let Some((ip, true)) = anchored_at(bitness, r, o, tag, &mut ins) {
                out.push((ip, tag));
            }
        }
    }
    out
}

/// The code sections of a PE file on disk, and the bitness to decode them with.
pub fn code_regions_from_file(bytes: &[u8]) -> Result<(u32, Vec<CodeRegion>), String> {
    use object::{Object, ObjectSection, SectionKind};
    let file = object::File::parse(bytes).map_err(|e| format!("not a PE image: {e}"))?;
    let bitness = if file.is_64() { 64 } else { 32 };
    let mut regions = Vec::new();
    for s in file.sections() {
        if s.kind() != SectionKind::Text || s.size() > MAX_SECTION_BYTES {
            continue;
        }
        let data = s
            .data()
            .map_err(|e| format!("section {}: {e}", s.name().unwrap_or("?")))?;
        let len = data.len().min(s.size() as usize);
        regions.push(CodeRegion {
            address: s.address(),
            bytes: data[..len].to_vec(),
        });
    }
    Ok((bitness, regions))
}

/// The executable sections of a loaded image, read from the dump page by page; pages not in
/// the dump split a section into separate runs (and are counted).
pub fn code_regions_from_memory(
    mem: &dyn VirtualMemory,
    base: u64,
    pe: &PeInfo,
) -> (u32, Vec<CodeRegion>, u64) {
    let bitness = if pe.is_64 { 64 } else { 32 };
    let mut regions = Vec::new();
    let mut missing = 0u64;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for s in pe.sections.iter().filter(|s| is_code(s)) {
        let size = u64::from(s.virtual_size.max(s.raw_size)).min(MAX_SECTION_BYTES);
        let start = base.wrapping_add(u64::from(s.virtual_address));
        let mut run: Option<CodeRegion> = None;
        let mut off = 0u64;
        while off < size {
            let va = start.wrapping_add(off);
            let n = (PAGE_SIZE - (va & (PAGE_SIZE - 1))).min(size - off) as usize;
            match mem.read(va, &mut page[..n]) {
                Ok(()) => run
                    .get_or_insert_with(|| CodeRegion {
                        address: va,
                        bytes: Vec::new(),
                    })
                    .bytes
                    .extend_from_slice(&page[..n]),
                Err(_) => {
                    missing += 1;
                    regions.extend(run.take());
                }
            }
            off += n as u64;
        }
        regions.extend(run);
    }
    (bitness, regions, missing)
}

fn is_code(s: &Section) -> bool {
    s.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE) != 0
}

/// How many times each of `tags` occurs as four raw bytes anywhere in `bytes`.
pub fn byte_hits(bytes: &[u8], tags: &[Tag]) -> BTreeMap<Tag, u32> {
    let mut out = BTreeMap::new();
    for t in tags {
        let n = bytes.windows(4).filter(|w| *w == t.0).count() as u32;
        if n > 0 {
            out.insert(*t, n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_driver(name: &str) -> BTreeMap<Tag, TagHits> {
        let bytes =
            std::fs::read(crate::pool::testmem::corpus(&format!("drivers/{name}"))).unwrap();
        let (bitness, regions) = code_regions_from_file(&bytes).unwrap();
        assert_eq!(bitness, 64);
        scan_code(bitness, &regions)
    }

    fn hits(m: &BTreeMap<Tag, TagHits>) -> Vec<(String, u32, u32)> {
        m.iter()
            .map(|(t, h)| {
                (
                    t.to_string(),
                    h.alloc_argument,
                    h.alloc_argument + h.other_immediate,
                )
            })
            .collect()
    }

    /// Expected values from GNU objdump (Debian binutils-mingw-w64-x86-64):
    /// `x86_64-w64-mingw32-objdump -d usbnet.sys`, counting `$0xXXXXXXXX,` operands whose four
    /// bytes are printable: Ueem (0x6d656555) 12 times, 5 of them `mov $0x6d656555,%r8d`;
    /// USBD (0x44425355) once, not into r8d.
    #[test]
    fn usbnet_tags_match_objdump() {
        let m = scan_driver("usbnet.sys");
        assert_eq!(
            hits(&m),
            [("USBD".to_string(), 0, 1), ("Ueem".to_string(), 5, 12)]
        );
    }

    /// objdump on usb2dbg.sys: UDbg (0x67624455) 39 times, 14 `mov $0x67624455,%r8d`;
    /// NAME (0x454d414e) once.
    #[test]
    fn usb2dbg_tags_match_objdump() {
        let m = scan_driver("usb2dbg.sys");
        assert_eq!(
            hits(&m),
            [("NAME".to_string(), 0, 1), ("UDbg".to_string(), 14, 39)]
        );
    }

    /// A loaded image read from memory: only executable sections, split where a page is
    /// missing from the dump, and the call site on a present page still found.
    #[test]
    fn code_from_memory_skips_missing_pages() {
        use crate::pool::testmem::Image;
        let base = 0xffff_f800_0100_0000_u64;
        let mut img = Image::new(8);
        // .text: 3 pages at +0x1000; the middle one is mapped but not in the dump.
        img.write(base + 0x1000, &[0x41, 0xb8, b'L', b'e', b'a', b'k', 0xc3]);
        img.missing(base + 0x2000);
        img.write(base + 0x3000, &[0xc3]);
        // .data (not executable) holds the tag too: not code.
        img.write(base + 0x4000, b"Data");
        let sec = |name: &str, va: u32, size: u32, ch: u32| Section {
            name: name.into(),
            virtual_address: va,
            virtual_size: size,
            raw_size: size,
            raw_offset: va,
            characteristics: ch,
        };
        let pe = PeInfo {
            machine: 0x8664,
            timestamp: 0,
            size_of_image: 0x5000,
            checksum: 0,
            image_base: base,
            entry_point: 0x1000,
            is_64: true,
            sections: vec![
                sec(".text", 0x1000, 0x3000, 0x6000_0020),
                sec(".data", 0x4000, 0x1000, 0xc000_0040),
            ],
            imports: None,
            codeview: None,
            warnings: Vec::new(),
        };
        let (bitness, regions, missing) = code_regions_from_memory(img.memory(), base, &pe);
        assert_eq!((bitness, missing), (64, 1));
        let runs: Vec<_> = regions
            .iter()
            .map(|r| (r.address - base, r.bytes.len()))
            .collect();
        assert_eq!(runs, [(0x1000, 0x1000), (0x3000, 0x1000)]);
        let hits = scan_code(bitness, &regions);
        assert_eq!(
            hits.get(&Tag(*b"Leak"))
                .map(|h| (h.alloc_argument, h.first)),
            Some((1, base + 0x1000))
        );
        assert!(!hits.contains_key(&Tag(*b"Data")));
    }

    #[test]
    fn x86_push_is_an_allocation_argument() {
        // push 0x6b61654c ("Leak"); mov eax, 0x6b61654c; push 0x00000010 (not printable)
        let code = [
            0x68, 0x4c, 0x65, 0x61, 0x6b, 0xb8, 0x4c, 0x65, 0x61, 0x6b, 0x68, 0x10, 0, 0, 0,
        ];
        let m = scan_code(
            32,
            &[CodeRegion {
                address: 0x1000,
                bytes: code.to_vec(),
            }],
        );
        assert_eq!(hits(&m), [("Leak".to_string(), 1, 2)]);
        assert_eq!(m[&Tag(*b"Leak")].first, 0x1000);
        assert_eq!(
            byte_hits(&code, &[Tag(*b"Leak"), Tag(*b"None")])
                .into_iter()
                .collect::<Vec<_>>(),
            [(Tag(*b"Leak"), 2)]
        );
    }

    /// A linear decode thrown out of step by an odd run of zero bytes swallows `push 'Acme'`
    /// (`00 68` decodes as `add [eax+..], ch`); the anchored decode still finds it.
    #[test]
    fn anchored_decode_recovers_desynchronised_sites() {
        let mut code = vec![0xc3];
        code.extend_from_slice(&[0u8; 0xff]);
        code.extend_from_slice(&[
            0x68, b'A', b'c', b'm', b'e', 0x68, 0x10, 0, 0, 0, 0x6a, 0, 0xff, 0x15, 0, 0x20, 0, 0,
            0xc3,
        ]);
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: code,
        }];
        let tag = Tag(*b"Acme");
        assert_eq!(
            scan_code(32, &regions).get(&tag).map(|h| h.alloc_argument),
            None,
            "linear decode misses it"
        );
        let (h, bytes) = anchored_hits(32, &regions, tag);
        assert_eq!(
            (h.map(|h| (h.alloc_argument, h.first)), bytes),
            (Some((1, 0x1100)), 1)
        );
        // The indirect call through [0x2000] is recorded.
        assert_eq!(scan(32, &regions).indirect_calls.get(&0x2000), Some(&1));
    }

    fn allocators(slot: u64) -> Option<Allocator> {
        match slot {
            0x2000 => allocator_named("ExAllocatePoolWithTag"),
            0x2008 => allocator_named("ExAllocatePool2"),
            0x2010 => allocator_named("ExAllocatePool"),
            _ => None,
        }
    }

    fn site(
        address: u64,
        tag: &[u8; 4],
        callee: Option<&'static str>,
        paged: Option<bool>,
        size: Option<u64>,
    ) -> AllocSite {
        AllocSite {
            address,
            tag: Tag(*tag),
            untagged_call: tag == b"None",
            callee,
            paged,
            size,
        }
    }

    /// Hand-assembled x64; the listing is GNU objdump's (`x86_64-w64-mingw32-objdump -D -b
    /// binary -m i386:x86-64 --adjust-vma=0x1000`):
    /// 1000 mov $0x1,%ecx; 1005 mov $0x7f0,%edx; 100a mov $'Leak',%r8d; 1010 call *[0x2000]; ret
    /// 1017 mov $0x100,%ecx; 101c mov $0x200,%edx; 1021 mov $'Flag',%r8d; 1027 call *[0x2008]; ret
    /// 102e xor %ecx,%ecx; 1030 mov $0x180,%edx; 1035 call *[0x2010]; ret
    /// 103c mov $0x1,%ecx; 1041 mov $'Unkn',%r8d; 1047 call 0x104c; ret
    /// 104d mov $0x1,%ecx; 1052 mov %ebx,%ecx; 1054 mov $'Clob',%r8d; 105a call *[0x2000]; ret
    const X64_SITES: &str = "b901000000baf007000041b84c65616bff15ea0f0000c3b900010000ba0002000041b8466c6167ff15db0f0000c331c9ba80010000ff15d50f0000c3b90100000041b8556e6b6ee800000000c3b90100000089d941b8436c6f62ff15a00f0000c3";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn x64_call_sites_with_their_arguments() {
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: unhex(X64_SITES),
        }];
        let tags: HashSet<Tag> = [b"Leak", b"Flag", b"Unkn", b"Clob"]
            .iter()
            .map(|t| Tag(**t))
            .collect();
        let (sites, truncated) = alloc_sites(64, &regions, &tags, &allocators, 100);
        assert!(!truncated);
        assert_eq!(
            sites,
            [
                // POOL_TYPE 1 = PagedPool, 0x7f0 bytes.
                site(
                    0x100a,
                    b"Leak",
                    Some("ExAllocatePoolWithTag"),
                    Some(true),
                    Some(0x7f0)
                ),
                // ExAllocatePool2: 0x100 is POOL_FLAG_PAGED, not a POOL_TYPE.
                site(
                    0x1021,
                    b"Flag",
                    Some("ExAllocatePool2"),
                    Some(true),
                    Some(0x200)
                ),
                // ExAllocatePool(NonPagedPool = xor ecx,ecx, 0x180): the call is the site.
                site(
                    0x1035,
                    b"None",
                    Some("ExAllocatePool"),
                    Some(false),
                    Some(0x180)
                ),
                // A call to an unknown function: the tag argument, nothing decoded.
                site(0x1041, b"Unkn", None, None, None),
                // ecx overwritten from a register, edx never set: nothing decoded.
                site(0x1054, b"Clob", Some("ExAllocatePoolWithTag"), None, None),
            ]
        );
        // Bounded.
        let (few, truncated) = alloc_sites(64, &regions, &tags, &allocators, 2);
        assert_eq!((few.len(), truncated), (2, true));
    }

    /// x86 stdcall: `push 'Leak'; push 0x7f0; push 1; call [0x2000]` (arguments pushed last to
    /// first), and `push 'Late'; push 0x10; call [0x2000]` where the tag is not the third
    /// argument, so nothing is decoded.
    #[test]
    fn x86_pushes_are_read_as_arguments() {
        let mut code = vec![
            0x68, b'L', b'e', b'a', b'k', 0x68, 0xf0, 0x07, 0, 0, 0x6a, 0x01,
        ];
        code.extend_from_slice(&[0xff, 0x15, 0x00, 0x20, 0, 0, 0xc3]);
        code.extend_from_slice(&[
            0x68, b'L', b'a', b't', b'e', 0x6a, 0x10, 0xff, 0x15, 0x00, 0x20, 0, 0, 0xc3,
        ]);
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: code,
        }];
        let tags: HashSet<Tag> = [Tag(*b"Leak"), Tag(*b"Late")].into();
        let (sites, _) = alloc_sites(32, &regions, &tags, &allocators, 100);
        assert_eq!(
            sites,
            [
                site(
                    0x1000,
                    b"Leak",
                    Some("ExAllocatePoolWithTag"),
                    Some(true),
                    Some(0x7f0)
                ),
                site(0x1013, b"Late", Some("ExAllocatePoolWithTag"), None, None),
            ]
        );
    }

    /// An odd run of zero bytes before an aligned function throws the linear decode out of step
    /// (`00 b9 01 00 00 00` reads as `add cl, bh ...`): the site is still listed and its
    /// arguments decoded from the aligned start.
    #[test]
    fn a_site_after_desynchronising_padding_is_decoded_from_its_aligned_start() {
        let mut code = vec![0xc3];
        code.extend_from_slice(&[0u8; 0xff]);
        code.extend_from_slice(&unhex(&X64_SITES[..2 * 0x17]));
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: code,
        }];
        let tags: HashSet<Tag> = [Tag(*b"Leak")].into();
        let never = |_: u64| None;
        let (linear, _) = linear_sites(64, &regions, &tags, &never, 100);
        assert_eq!(
            linear.first().map(|s| (s.address, s.paged)),
            Some((0x110a, None)),
            "the linear decode is out of step"
        );
        let (sites, _) = alloc_sites(
            64,
            &regions,
            &tags,
            &|slot| {
                (slot == 0x2000 - 0x1000 + 0x1100)
                    .then(|| allocator_named("ExAllocatePoolWithTag"))
                    .flatten()
            },
            100,
        );
        assert_eq!(
            sites,
            [site(
                0x110a,
                b"Leak",
                Some("ExAllocatePoolWithTag"),
                Some(true),
                Some(0x7f0)
            )]
        );
    }

    #[test]
    fn anchored_decode_reads_41_b8_as_mov_r8d() {
        // `41 b8 'Leak'` after a byte that hides it from the linear decode.
        let regions = [CodeRegion {
            address: 0x1000,
            bytes: vec![0x48, 0x41, 0xb8, b'L', b'e', b'a', b'k', 0xc3],
        }];
        let (h, _) = anchored_hits(64, &regions, Tag(*b"Leak"));
        assert_eq!(h.map(|h| (h.alloc_argument, h.first)), Some((1, 0x1001)));
    }
}
