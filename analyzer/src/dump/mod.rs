//! Dump files: the crash-dump header, and the map from physical page numbers to file offsets
//! for every DumpType (run tables, bitmaps, RDMP, triage).
//!
//! The file is memory-mapped; pages are served as slices of the map, never copied. Opening
//! parses and bounds-checks every structure the page index relies on, so that a lookup later
//! can neither panic nor read past the file.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;
use serde::Serialize;

use crate::memory::{
    BlockMemory, PageTableMemory, PagingMode, PhysicalMemory, PteFormat, VirtualMemory, PAGE_SIZE,
};

mod bitmap;
mod bytes;
mod error;
mod header;
mod rdmp;
mod runs;
mod triage;

pub use error::DumpError;
pub use triage::{TriageDataBlock, TriageDriver, TriageDump, TriageHeader};

/// The processor architecture the dump was written on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86,
    X64,
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// The bugcheck recorded in the header: code and its four parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BugCheck {
    pub code: u32,
    pub params: [u64; 4],
}

/// The fields of the dump header that the analyzer uses, normalised over x86 and x64 layouts.
/// A field the writer left as the "PAGE" filler is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpHeader {
    pub arch: Arch,
    /// x86 only: PAE paging (`PaeEnabled`); always false elsewhere.
    pub pae: bool,
    pub major_version: u32,
    /// `MinorVersion`: the build number (e.g. 19041).
    pub build: u32,
    pub directory_table_base: u64,
    pub pfn_database: Option<u64>,
    pub ps_loaded_module_list: Option<u64>,
    pub ps_active_process_head: Option<u64>,
    pub machine_image_type: u32,
    pub processors: u32,
    pub bugcheck: BugCheck,
    /// Virtual address of the debugger data block (KDDEBUGGER_DATA64).
    pub kd_debugger_data_block: Option<u64>,
    /// Raw DumpType (1, 2, 4, 5, 6, 8, 9, 0xA).
    pub dump_type: u32,
    pub required_dump_space: Option<u64>,
    /// SystemTime as a Windows FILETIME (100 ns since 1601-01-01 UTC).
    pub system_time: Option<u64>,
    /// SystemUpTime: time since boot at the crash, 100 ns units. With `system_time` it gives
    /// the boot time, which tells dumps of one boot from dumps of another (trend analysis).
    pub system_up_time: Option<u64>,
}

/// What kind of dump a file is, from DumpType and the sub-header signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DumpFormat {
    /// DumpType 1: complete memory dump with a run table.
    Full,
    /// DumpType 2: old (XP/2003-era) kernel "summary" dump with a bitmap.
    Summary,
    /// DumpType 4: small memory (triage) dump.
    Triage,
    /// DumpType 5/6 with "SDMP": kernel (or automatic/active) bitmap dump.
    KernelBitmap,
    /// DumpType 5/6 with "FDMP": complete bitmap dump.
    FullBitmap,
    /// DumpType 8: kernel memory dump with an RDMP sub-header.
    RdmpKernel,
    /// DumpType 9: kernel and user memory dump with an RDMP sub-header.
    RdmpKernelUser,
    /// DumpType 0xA: complete memory dump with an RDMP sub-header.
    RdmpComplete,
}

impl DumpFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DumpFormat::Full => "full",
            DumpFormat::Summary => "summary",
            DumpFormat::Triage => "triage",
            DumpFormat::KernelBitmap => "kernel-bitmap",
            DumpFormat::FullBitmap => "full-bitmap",
            DumpFormat::RdmpKernel => "rdmp-kernel",
            DumpFormat::RdmpKernelUser => "rdmp-kernel-user",
            DumpFormat::RdmpComplete => "rdmp-complete",
        }
    }
}

impl std::fmt::Display for DumpFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bytes of the dump: a read-only map of the file, or an owned buffer (tests, fuzzing).
enum Data {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Map(m) => m,
            Data::Owned(v) => v,
        }
    }
}

/// Physical page number -> file offset, per format.
enum PageIndex {
    /// Triage dumps store no physical pages.
    None,
    Runs(runs::RunIndex),
    Bitmap(bitmap::BitmapIndex),
}

/// An opened kernel dump. Send + Sync: share it between threads by reference.
pub struct Dump {
    data: Data,
    header: DumpHeader,
    header_size: u64,
    format: DumpFormat,
    index: PageIndex,
    triage: Option<TriageDump>,
}

/// A dump file shorter than its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Pages whose bytes are in the file.
    pub pages_in_file: u64,
    /// Pages the header (run table or bitmap) lists as stored.
    pub pages_listed: u64,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the dump file is cut short: it ends at page {} of the {} its header lists ({:.0}%); the pages past its end read as not in the dump",
            self.pages_in_file,
            self.pages_listed,
            100.0 * self.pages_in_file as f64 / self.pages_listed.max(1) as f64
        )
    }
}

/// Parses only the dump header of `bytes` (the file's first 0x1000/0x2000 bytes suffice).
pub fn parse_header(bytes: &[u8]) -> Result<DumpHeader, DumpError> {
    header::parse(bytes).map(|p| p.header)
}

impl Dump {
    /// Maps the file read-only and parses it. The file must not be modified while open.
    pub fn open(path: impl AsRef<Path>) -> Result<Dump, DumpError> {
        let path = path.as_ref();
        let io = |source| DumpError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(DumpError::Empty);
        }
        // SAFETY: the map is read-only and private to this process; like every mmap-based dump
        // reader we rely on nobody truncating or rewriting the dump while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Dump::from_data(Data::Map(map))
    }

    /// Parses a dump held in memory (tests, fuzzing, small dumps received over the network).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Dump, DumpError> {
        Dump::from_data(Data::Owned(bytes))
    }

    fn from_data(data: Data) -> Result<Dump, DumpError> {
        let bytes = data.bytes();
        let parsed = header::parse(bytes)?;
        let h = &parsed.header;
        let at = parsed.size;
        let (format, index, triage) = match h.dump_type {
            1 => {
                let idx = runs::parse_run_table(
                    bytes,
                    parsed.run_table_offset,
                    parsed.run_table_capacity,
                    parsed.wide,
                    at,
                )?;
                (DumpFormat::Full, PageIndex::Runs(idx), None)
            }
            2 => (
                DumpFormat::Summary,
                PageIndex::Bitmap(bitmap::parse_summary(bytes, at, parsed.wide)?),
                None,
            ),
            4 => {
                let t = triage::parse(bytes, at, parsed.wide, h.kd_debugger_data_block)?;
                (DumpFormat::Triage, PageIndex::None, Some(t))
            }
            5 | 6 => {
                let (idx, full) = bitmap::parse_bmp(bytes, at)?;
                let f = if full {
                    DumpFormat::FullBitmap
                } else {
                    DumpFormat::KernelBitmap
                };
                (f, PageIndex::Bitmap(idx), None)
            }
            8..=0xA => {
                if !parsed.wide {
                    return Err(DumpError::Unsupported(format!(
                        "DumpType {:#x} with a 32-bit header",
                        h.dump_type
                    )));
                }
                let f = match h.dump_type {
                    8 => DumpFormat::RdmpKernel,
                    9 => DumpFormat::RdmpKernelUser,
                    _ => DumpFormat::RdmpComplete,
                };
                (
                    f,
                    PageIndex::Runs(rdmp::parse(bytes, at, h.dump_type == 0xA)?),
                    None,
                )
            }
            3 => {
                return Err(DumpError::Unsupported(
                    "DumpType 3 (header-only dump) holds no memory".into(),
                ))
            }
            7 => {
                return Err(DumpError::Unsupported(
                    "DumpType 7 (automatic, unconverted) is not a file format".into(),
                ))
            }
            other => {
                return Err(DumpError::Unsupported(format!(
                    "unknown DumpType {other:#x}"
                )))
            }
        };
        Ok(Dump {
            header: parsed.header,
            header_size: parsed.size,
            format,
            index,
            triage,
            data,
        })
    }

    pub fn header(&self) -> &DumpHeader {
        &self.header
    }

    pub fn format(&self) -> DumpFormat {
        self.format
    }

    /// Size of the dump header: 0x2000 (64-bit layout) or 0x1000 (x86).
    pub fn header_size(&self) -> u64 {
        self.header_size
    }

    pub fn file_size(&self) -> u64 {
        self.data.bytes().len() as u64
    }

    /// Tells the kernel the dump will be read front to back (e.g. every stored page once), so
    /// it reads ahead and maps pages in bigger batches. Only a hint; errors are ignored.
    pub fn advise_sequential(&self) {
        if let Data::Map(m) = &self.data {
            let _ = m.advise(memmap2::Advice::Sequential);
        }
    }

    /// Drops the file pages of `offset..offset + len` from this process's resident set, for
    /// readers that stream through a dump many times larger than memory: without it a full scan
    /// of a 64 GB dump leaves 64 GB of file pages mapped and counted as resident. The bytes stay
    /// readable; touching them again reloads them from the file. A hint: errors are ignored.
    pub fn release(&self, offset: u64, len: u64) {
        let Data::Map(m) = &self.data else { return };
        let page = PAGE_SIZE;
        let start = offset.div_ceil(page) * page;
        let end = offset.saturating_add(len).min(m.len() as u64) / page * page;
        if end <= start {
            return;
        }
        // SAFETY: the map is a read-only shared file mapping; MADV_DONTNEED only unmaps its pages
        // from this process, and any later access (including through slices handed out
        // earlier) faults the same file contents back in. The soundness assumption is the one
        // `open` already makes: nobody rewrites the file while it is open.
        let _ = unsafe {
            m.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                start as usize,
                (end - start) as usize,
            )
        };
    }

    /// Calls `f(pfn, page)` for every stored page in ascending page order, releasing the file
    /// pages already visited every 64 MiB (see [`Dump::release`]) so that resident memory stays
    /// bounded however large the dump is.
    pub fn for_each_stored_page(&self, mut f: impl FnMut(u64, &[u8])) {
        const WINDOW: u64 = 64 << 20;
        let mut released_to = 0u64;
        for pfn in self.stored_pfns() {
            let (Some(page), Some(off)) = (self.page(pfn), self.page_file_offset(pfn)) else {
                continue;
            };
            f(pfn, page);
            if off >= released_to + 2 * WINDOW {
                self.release(released_to, off - WINDOW - released_to);
                released_to = off - WINDOW;
            }
        }
    }

    /// The raw file bytes (e.g. for the context record inside the header).
    pub fn file_bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// The stored physical pages.
    pub fn physical(&self) -> &dyn PhysicalMemory {
        self
    }

    pub fn stored_page_count(&self) -> u64 {
        match &self.index {
            PageIndex::None => 0,
            PageIndex::Runs(r) => r.total(),
            PageIndex::Bitmap(b) => b.present(),
        }
    }

    /// How much of the page data the file holds, when it was cut short (the machine lost power
    /// while writing, the dump file was too small, a copy or an upload broke off): the pages
    /// past its end read as not in the dump.
    pub fn truncation(&self) -> Option<Truncation> {
        let (listed, in_file) = match &self.index {
            PageIndex::None => return None,
            PageIndex::Runs(r) => (r.total(), r.pages_in_file()),
            PageIndex::Bitmap(b) => (b.present(), b.pages_in_file()),
        };
        (in_file < listed).then_some(Truncation {
            pages_in_file: in_file,
            pages_listed: listed,
        })
    }

    /// Page frame numbers of the stored pages, ascending: every page the header lists, except,
    /// in a file cut short ([`Dump::truncation`]), those past its end, which are not in the dump
    /// ([`PhysicalMemory::page`] is `None` for them). Which pages those are follows the file
    /// order of the runs, not the PFN order, so they are found by their offsets.
    pub fn stored_pfns(&self) -> impl Iterator<Item = u64> + '_ {
        let bytes = self.data.bytes();
        let (runs, bits) = match &self.index {
            PageIndex::None => (None, None),
            PageIndex::Runs(r) => (Some(r.pfns()), None),
            PageIndex::Bitmap(b) => (None, Some(b.pfns(bytes))),
        };
        let cut = self.truncation().is_some();
        runs.into_iter()
            .flatten()
            .chain(bits.into_iter().flatten())
            .filter(move |&pfn| !cut || self.page(pfn).is_some())
    }

    /// File offset of the stored page `pfn`, if the dump holds it.
    pub fn page_file_offset(&self, pfn: u64) -> Option<u64> {
        match &self.index {
            PageIndex::None => None,
            PageIndex::Runs(r) => r.offset(pfn),
            PageIndex::Bitmap(b) => b.offset(self.data.bytes(), pfn),
        }
    }

    /// Kernel virtual memory: page tables from the header's DirectoryTableBase (x64, x86 PAE,
    /// x86 non-PAE), or for a triage dump its captured data blocks (data blocks, data page and
    /// debugger data block). ARM64 page tables are not supported.
    pub fn kernel_memory(&self) -> Result<Box<dyn VirtualMemory + '_>, DumpError> {
        self.kernel_memory_with(None)
    }

    /// As [`Dump::kernel_memory`], reading invalid PTEs with `format` (the kernel's layout,
    /// `PteFormat::for_kernel`) when it is for this dump's paging mode; else with the mode's
    /// built-in layout.
    pub fn kernel_memory_with(
        &self,
        format: Option<PteFormat>,
    ) -> Result<Box<dyn VirtualMemory + '_>, DumpError> {
        let ptr = if self.header.arch == Arch::X86 { 4 } else { 8 };
        if let Some(t) = &self.triage {
            let bytes = self.data.bytes();
            let blocks = t
                .regions()
                .filter_map(|b| {
                    let s = bytes.get(
                        b.offset as usize..(b.offset as usize).checked_add(b.size as usize)?,
                    )?;
                    Some((b.address, s))
                })
                .collect();
            return Ok(Box::new(BlockMemory::new(blocks, ptr)));
        }
        let mode = match (self.header.arch, self.header.pae) {
            (Arch::X64, _) => PagingMode::X64,
            (Arch::X86, true) => PagingMode::X86Pae,
            (Arch::X86, false) => PagingMode::X86,
            (Arch::Arm64, _) => {
                return Err(DumpError::Unsupported(
                    "virtual memory translation for arm64 dumps (header and triage driver lists are read)".into(),
                ))
            }
        };
        let format = format
            .filter(|f| f.mode == mode)
            .unwrap_or_else(|| PteFormat::built_in(mode));
        Ok(Box::new(PageTableMemory::with_format(
            self,
            self.header.directory_table_base,
            format,
        )))
    }

    pub fn triage(&self) -> Option<&TriageDump> {
        self.triage.as_ref()
    }

    /// The triage dump's copy of the debugger data block (KDDEBUGGER_DATA64), if captured.
    pub fn triage_debugger_data(&self) -> Option<&[u8]> {
        let b = self.triage.as_ref()?.debugger_data?;
        self.data
            .bytes()
            .get(b.offset as usize..(b.offset as usize).checked_add(b.size as usize)?)
    }
}

impl PhysicalMemory for Dump {
    fn page(&self, pfn: u64) -> Option<&[u8]> {
        let off = self.page_file_offset(pfn)?;
        self.data
            .bytes()
            .get(off as usize..(off + PAGE_SIZE) as usize)
    }

    /// The whole file: see [`Dump::release`].
    fn release_resident(&self) {
        self.release(0, self.file_size());
    }
}

impl std::fmt::Debug for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dump")
            .field("format", &self.format)
            .field("header", &self.header)
            .field("file_size", &self.file_size())
            .field("stored_pages", &self.stored_page_count())
            .finish()
    }
}

#[cfg(test)]
mod tests;
