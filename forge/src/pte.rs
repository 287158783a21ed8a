//! Pool pages the memory manager has trimmed: paged out to a paging file (the PTE is a
//! `_MMPTE_SOFTWARE`: Valid 0, Prototype 0, Transition 0, PageFileLow = the paging file's
//! number, PageFileHigh = the page's offset in it, in pages; the frame is gone, so no dump can
//! hold the page) or in transition (a `_MMPTE_TRANSITION`: Transition 1 and the frame, which
//! RAM, and so the dump, still holds; WinDbg reads such pages).
//!
//! Bit positions come from the profile's `_MMPTE_SOFTWARE` / `_MMPTE_TRANSITION` (XP:
//! PageFileLow bits 1-4; 7601+ bits 12-15). Kernels whose PTEs have a `SwizzleBit` (the L1TF
//! mitigation: 7601 with late updates, 10.x) store invalid PTEs swizzled: SwizzleBit 0 and the
//! kernel's InvalidPteMask ORed in (here bit 45, a physical address bit beyond any frame), which a
//! reader removes (`pte & ~mask` when SwizzleBit is 0; Volatility and MemProcFS also drop bit 45
//! of transition PTEs). The mask is planted where the kernel keeps it: `MiInvalidPteMask` (7601)
//! or `MiState.Hardware.InvalidPteMask` (17763+). The paging files are planted too:
//! `MmPagingFile[]` / `MmNumberOfPagingFiles` (XP, 7601) or `MiSystemPartition.Vp.PagingFile[]`
//! / `NumberOfPagingFiles` (10.x), each an `_MMPAGING_FILE` with Size and PageFileName.

use crate::system::System;
use crate::truth::hex;
use crate::ForgeError;
use analyzer::symbols::Field;
use serde_json::{json, Value};

/// InvalidPteMask: bit 45 (MAXPHYADDR 46), as on the machines whose dumps Volatility and
/// MemProcFS handle (both clear that bit in transition PTEs).
pub const INVALID_PTE_MASK: u64 = 1 << 45;
/// MM_READWRITE: the protection of a pool page.
const MM_READWRITE: u64 = 4;
/// Paging files planted: name and size in pages.
pub const PAGING_FILES: [(&str, u64); 2] = [
    ("\\??\\C:\\pagefile.sys", 0x60000),
    ("\\??\\D:\\pagefile.sys", 0x40000),
];
/// The paging file the trimmed pool pages go to (PageFileLow).
pub const PAGE_FILE: u64 = 1;

/// One trimmed page, for the truth.
#[derive(Debug, Clone)]
pub struct Trimmed {
    pub va: u64,
    /// The PTE as stored.
    pub pte: u64,
    /// "pagefile" or "transition".
    pub state: &'static str,
    pub page_file: Option<u64>,
    /// Offset in the paging file, in pages.
    pub offset: Option<u64>,
    /// The frame a transition PTE names.
    pub pfn: Option<u64>,
    pub swizzled: bool,
}

impl Trimmed {
    pub fn truth(&self) -> Value {
        json!({ "va": hex(self.va), "pte": hex(self.pte), "state": self.state,
                "page_file": self.page_file, "page_file_offset": self.offset,
                "pfn": self.pfn.map(hex), "swizzled": self.swizzled })
    }
}

fn set(v: u64, f: Field, value: u64) -> u64 {
    let pos = f.bit_position.unwrap_or(0);
    let len = f.bit_length.unwrap_or(64);
    let mask = if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    };
    (v & !(mask << pos)) | ((value & mask) << pos)
}

fn field(sys: &System, ty: &str, name: &str) -> Result<Field, ForgeError> {
    sys.profile
        .field(ty, name)
        .ok_or_else(|| ForgeError::MissingSymbol(format!("{ty}.{name}")))
}

/// The swizzle mask the kernel applies, if its PTEs have a SwizzleBit: planted (once) where
/// the kernel keeps it.
fn swizzle(sys: &mut System) -> Result<Option<u64>, ForgeError> {
    if sys.profile.field("_MMPTE_SOFTWARE", "SwizzleBit").is_none() {
        return Ok(None);
    }
    let at = match sys.global("MiInvalidPteMask") {
        Ok(at) => at,
        Err(_) => {
            let state = sys.global("MiState")?;
            state
                + sys.offset("_MI_SYSTEM_INFORMATION", "Hardware")?
                + sys.offset("_MI_HARDWARE_STATE", "InvalidPteMask")?
        }
    };
    sys.machine.write_u64(at, INVALID_PTE_MASK)?;
    Ok(Some(INVALID_PTE_MASK))
}

/// Pages `va` out to paging file [`PAGE_FILE`] at `offset` (pages; non-zero, below the file's
/// size and below the mask bit).
pub fn page_out(sys: &mut System, va: u64, offset: u64) -> Result<Trimmed, ForgeError> {
    let t = "_MMPTE_SOFTWARE";
    let mut pte = set(0, field(sys, t, "PageFileLow")?, PAGE_FILE);
    pte = set(pte, field(sys, t, "Protection")?, MM_READWRITE);
    pte = set(pte, field(sys, t, "PageFileHigh")?, offset);
    let mask = swizzle(sys)?;
    if let Some(m) = mask {
        pte |= m;
    }
    sys.machine.invalidate_page(va, pte, false)?;
    Ok(Trimmed {
        va,
        pte,
        state: "pagefile",
        page_file: Some(PAGE_FILE),
        offset: Some(offset),
        pfn: None,
        swizzled: mask.is_some(),
    })
}

/// Puts `va` in transition: its frame stays in RAM (and in the dump), its PTE names it.
pub fn transition(sys: &mut System, va: u64) -> Result<Trimmed, ForgeError> {
    let t = "_MMPTE_TRANSITION";
    let pfn = sys
        .machine
        .pte(va)
        .map(|p| (p & 0x000f_ffff_ffff_f000) >> 12)
        .ok_or(ForgeError::Unmapped(va))?;
    let mut pte = set(0, field(sys, t, "Write")?, 1);
    pte = set(pte, field(sys, t, "Protection")?, MM_READWRITE);
    pte = set(pte, field(sys, t, "Transition")?, 1);
    pte = set(pte, field(sys, t, "PageFrameNumber")?, pfn);
    let mask = swizzle(sys)?;
    if let Some(m) = mask {
        pte |= m;
    }
    sys.machine.invalidate_page(va, pte, true)?;
    Ok(Trimmed {
        va,
        pte,
        state: "transition",
        page_file: None,
        offset: None,
        pfn: Some(pfn),
        swizzled: mask.is_some(),
    })
}

/// Where the kernel lists its paging files: (array of pointers, count variable).
fn paging_file_list(sys: &System) -> Result<(u64, u64), ForgeError> {
    if let (Ok(list), Ok(count)) = (
        sys.global("MmPagingFile"),
        sys.global("MmNumberOfPagingFiles"),
    ) {
        return Ok((list, count));
    }
    let vp = sys.global("MiSystemPartition")? + sys.offset("_MI_PARTITION", "Vp")?;
    let v = "_MI_VISIBLE_PARTITION";
    Ok((
        vp + sys.offset(v, "PagingFile")?,
        vp + sys.offset(v, "NumberOfPagingFiles")?,
    ))
}

/// Plants the [`PAGING_FILES`] (`_MMPAGING_FILE` in nonpaged pool, name after it); returns
/// their truth.
pub fn plant_paging_files(sys: &mut System) -> Result<Value, ForgeError> {
    let (list, count) = paging_file_list(sys)?;
    let t = "_MMPAGING_FILE";
    let size = sys.type_size(t)?;
    let ptr = u64::from(sys.ptr_size());
    let mut out = Vec::new();
    for (i, (name, pages)) in PAGING_FILES.iter().enumerate() {
        let name_bytes = (name.len() as u64 + 1) * 2;
        let pf = sys.alloc_nonpaged(size + name_bytes, b"MmPf")?;
        sys.machine.write_ptr(pf + sys.offset(t, "Size")?, *pages)?;
        sys.machine
            .write_ptr(pf + sys.offset(t, "MaximumSize")?, pages * 2)?;
        sys.machine
            .write_ptr(pf + sys.offset(t, "MinimumSize")?, *pages)?;
        let at = pf + sys.offset(t, "PageFileName")?;
        sys.write_unicode_string(at, pf + size, name)?;
        let number = field(sys, t, "PageFileNumber")?;
        crate::poolstate::put_bits(sys, pf, number, i as u64)?;
        sys.machine.write_ptr(list + i as u64 * ptr, pf)?;
        out.push(json!({ "number": i, "name": name, "size_pages": pages, "address": hex(pf) }));
    }
    sys.machine.write_u32(count, PAGING_FILES.len() as u32)?;
    Ok(Value::Array(out))
}
