//! A module's mapped image as the unwinder reads it: from the dump's pages first, and for what
//! the dump does not hold (a triage dump holds no image pages at all) from a copy of the image
//! file the symbol path serves by TimeDateStamp + SizeOfImage, fetched once per module.

use super::UnwindError;
use crate::kernel::Module;
use crate::memory::VirtualMemory;
use crate::symbols::frame_data::FrameTable;

/// Reads a module's mapped image by RVA.
pub trait ImageRead {
    /// Fills `buf` with the image bytes at `rva`; [`UnwindError::Missing`] when neither the
    /// dump nor a fetched image holds them.
    fn read_rva(&mut self, rva: u32, buf: &mut [u8]) -> Result<(), UnwindError>;
}

/// Finds what the walk needs of a module outside the dump: its image, and on x86 its PDB's
/// frame records.
pub trait ImageFetch {
    /// The image as the loader maps it (headers at RVA 0, each section at its RVA), or `None`
    /// when the symbol path has no copy.
    fn fetch_image(&self, module: &Module) -> Option<Vec<u8>>;

    /// The x86 frame records (FPO_DATA, FRAMEDATA) of the module's PDB, or `None` when no PDB
    /// of it can be had: the walk then follows the EBP chain through its frames.
    fn frame_data(&self, _module: &Module) -> Option<FrameTable> {
        None
    }
}

/// No image outside the dump.
pub struct NoFetch;

impl ImageFetch for NoFetch {
    fn fetch_image(&self, _module: &Module) -> Option<Vec<u8>> {
        None
    }
}

/// The fetched copy of one module, tried at most once.
#[derive(Debug, Default)]
enum FileCopy {
    #[default]
    NotTried,
    Absent,
    Loaded(Vec<u8>),
}

/// One module's image: dump pages, then the fetched copy.
pub struct ModuleImage<'a> {
    pub module: &'a Module,
    mem: Option<&'a dyn VirtualMemory>,
    fetch: &'a dyn ImageFetch,
    file: FileCopy,
}

impl<'a> ModuleImage<'a> {
    pub fn new(
        module: &'a Module,
        mem: Option<&'a dyn VirtualMemory>,
        fetch: &'a dyn ImageFetch,
    ) -> Self {
        ModuleImage {
            module,
            mem,
            fetch,
            file: FileCopy::NotTried,
        }
    }

    /// Whether bytes were read from a fetched copy.
    pub fn used_copy(&self) -> bool {
        matches!(self.file, FileCopy::Loaded(_))
    }

    fn copy(&mut self) -> Option<&[u8]> {
        if matches!(self.file, FileCopy::NotTried) {
            self.file = match self.fetch.fetch_image(self.module) {
                Some(b) => FileCopy::Loaded(b),
                None => FileCopy::Absent,
            };
        }
        match &self.file {
            FileCopy::Loaded(b) => Some(b),
            _ => None,
        }
    }
}

impl ImageRead for ModuleImage<'_> {
    fn read_rva(&mut self, rva: u32, buf: &mut [u8]) -> Result<(), UnwindError> {
        let va = self.module.base.wrapping_add(u64::from(rva));
        let missing = UnwindError::Missing {
            what: "image bytes",
            address: va,
        };
        if u64::from(rva) + buf.len() as u64 > u64::from(self.module.size) {
            return Err(UnwindError::Malformed {
                rva,
                reason: "reaches past the end of the image",
            });
        }
        if let Some(mem) = self.mem {
            if mem.read(va, buf).is_ok() {
                return Ok(());
            }
        }
        let copy = self.copy().ok_or(missing.clone())?;
        let start = rva as usize;
        let src = copy.get(start..start + buf.len()).ok_or(missing)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// An image held in memory at RVA 0 (tests, and the fetched copies).
pub struct BytesImage<'a>(pub &'a [u8]);

impl ImageRead for BytesImage<'_> {
    fn read_rva(&mut self, rva: u32, buf: &mut [u8]) -> Result<(), UnwindError> {
        let start = rva as usize;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(UnwindError::Malformed {
                rva,
                reason: "reaches past the end of the image",
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}
