//! PE headers of an image as it lies in (kernel) virtual memory: machine, timestamp, size,
//! checksum, sections, imports and the CodeView record that names the image's PDB.
//!
//! Parsed by hand rather than with a PE crate because the input is a sparse address space, not
//! a file: the headers page may be present while the import names or the debug record live in
//! pages the dump did not keep (a discarded INIT section, a paged-out .rdata). Those give a
//! partial [`PeInfo`] with a warning, never an error; only unreadable or invalid headers are an
//! error. Every count and length is capped, so a hostile image cannot make us allocate or loop
//! without bound.
//!
//! The same reader works on a PE file on disk through [`PeFile`], which maps RVAs to file
//! offsets with the section table, and on a mapped image in a buffer through [`SliceMemory`].

use super::bytes::{c_string, ptr_at, u16_at, u32_at, u64_at};
use crate::memory::{MemoryError, VirtualMemory, PAGE_SIZE};
use thiserror::Error;

/// More sections than the PE specification allows (96) means a corrupt header.
pub const MAX_SECTIONS: usize = 96;
/// Caps on the import walk: enough for any real driver (ntoskrnl imports from ~20 DLLs).
pub const MAX_IMPORT_DLLS: usize = 256;
pub const MAX_IMPORTS_PER_DLL: usize = 4096;
/// Longest import or PDB name read (bytes).
pub const MAX_NAME_LEN: usize = 512;
/// e_lfanew beyond this is not a real image (the linker puts it within the first page).
const MAX_LFANEW: u32 = 0x1_0000;
const MAX_DEBUG_ENTRIES: usize = 32;
const MAX_CODEVIEW_SIZE: u32 = 0x1000;

pub const IMAGE_FILE_MACHINE_I386: u16 = 0x014c;
pub const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
pub const IMAGE_FILE_MACHINE_ARM64: u16 = 0xaa64;
pub const IMAGE_FILE_MACHINE_ARMNT: u16 = 0x01c4;
pub const IMAGE_FILE_MACHINE_IA64: u16 = 0x0200;

const IMAGE_DIRECTORY_ENTRY_IMPORT: usize = 1;
const IMAGE_DIRECTORY_ENTRY_DEBUG: usize = 6;
const IMAGE_DEBUG_TYPE_CODEVIEW: u32 = 2;

/// A short name for a PE machine value ("x64", "x86", ...), or `None` when unknown.
pub fn machine_name(machine: u16) -> Option<&'static str> {
    Some(match machine {
        IMAGE_FILE_MACHINE_I386 => "x86",
        IMAGE_FILE_MACHINE_AMD64 => "x64",
        IMAGE_FILE_MACHINE_ARM64 => "arm64",
        IMAGE_FILE_MACHINE_ARMNT => "arm",
        IMAGE_FILE_MACHINE_IA64 => "ia64",
        _ => return None,
    })
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PeError {
    #[error("PE headers at {base:#x} are not readable: {source}")]
    Unreadable { base: u64, source: MemoryError },
    #[error("no MZ signature at {base:#x}")]
    NoMz { base: u64 },
    #[error("e_lfanew {lfanew:#x} at {base:#x} is out of range")]
    BadLfanew { base: u64, lfanew: u32 },
    #[error("no PE signature at {va:#x}")]
    NoPe { va: u64 },
    #[error("unknown optional header magic {magic:#x} at {base:#x}")]
    BadMagic { base: u64, magic: u16 },
    #[error("malformed PE header at {base:#x}: {reason}")]
    Malformed { base: u64, reason: &'static str },
}

/// What the PE headers of one image say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeInfo {
    pub machine: u16,
    /// FileHeader.TimeDateStamp (also the first half of the image's symbol-store key).
    pub timestamp: u32,
    pub size_of_image: u32,
    pub checksum: u32,
    pub image_base: u64,
    pub entry_point: u32,
    /// PE32+ (64-bit optional header).
    pub is_64: bool,
    pub sections: Vec<Section>,
    /// `None` when the image has no import directory.
    pub imports: Option<Imports>,
    /// The CodeView record, when there is one and it could be read.
    pub codeview: Option<CodeView>,
    /// What could not be read (missing pages, truncated tables, caps reached).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Up to 8 bytes, NUL-trimmed (long names of object files do not occur in images).
    pub name: String,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
    pub characteristics: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imports {
    pub dlls: Vec<ImportedDll>,
    /// False when a cap was hit or a page was missing part-way.
    pub complete: bool,
}

impl Imports {
    /// Number of imported functions over all DLLs (those that could be read).
    pub fn function_count(&self) -> usize {
        self.dlls.iter().map(|d| d.functions.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedDll {
    pub name: String,
    pub functions: Vec<Import>,
    /// RVA of its import address table (FirstThunk): function `i`'s resolved address is the
    /// pointer at `first_thunk + i * pointer size`, the slot a `call [slot]` goes through.
    pub first_thunk: u32,
    /// False when the lookup table could not be read to its end.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Import {
    Name { hint: u16, name: String },
    Ordinal(u16),
}

/// A CodeView debug record: what a symbol server needs to find the image's PDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeView {
    /// The PDB path as the linker wrote it (may be a full build path).
    pub pdb_path: String,
    /// "RSDS": upper-case dashed GUID (8-4-4-4-12). "NB10" (old PDB 2.0): the 32-bit
    /// signature as 8 upper-case hex digits.
    pub guid: String,
    pub age: u32,
    /// "RSDS" or "NB10".
    pub format: &'static str,
}

impl CodeView {
    /// The PDB file name without its directory: the first half of the symbol-store path.
    pub fn pdb_name(&self) -> &str {
        self.pdb_path
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or(&self.pdb_path)
    }

    /// The symbol-store key: GUID without dashes followed by the age in hex (upper case).
    pub fn symstore_key(&self) -> String {
        format!("{}{:X}", self.guid.replace('-', ""), self.age)
    }
}

/// The GUID text of a CodeView record (the symbol store's: one copy for the workspace).
pub use symstore::key::format_guid;

/// Parses a CodeView record ("RSDS" or "NB10") from its bytes.
pub fn parse_codeview(b: &[u8]) -> Option<CodeView> {
    match b.get(0..4)? {
        b"RSDS" => {
            let guid: [u8; 16] = b.get(4..20)?.try_into().ok()?;
            let age = u32_at(b, 20)?;
            let name = b.get(24..)?;
            Some(CodeView {
                pdb_path: c_string(name),
                guid: format_guid(&guid),
                age,
                format: "RSDS",
            })
        }
        b"NB10" => {
            let sig = u32_at(b, 8)?;
            let age = u32_at(b, 12)?;
            let name = b.get(16..)?;
            Some(CodeView {
                pdb_path: c_string(name),
                guid: format!("{sig:08X}"),
                age,
                format: "NB10",
            })
        }
        _ => None,
    }
}

/// Reads a NUL-terminated string of at most `max` bytes at `va`, one page piece at a time so
/// that a string that ends before a missing page still reads.
pub fn read_c_string(mem: &dyn VirtualMemory, va: u64, max: usize) -> Result<String, MemoryError> {
    let mut out = Vec::new();
    let mut addr = va;
    while out.len() < max {
        let to_page_end = (PAGE_SIZE - (addr & (PAGE_SIZE - 1))) as usize;
        let n = to_page_end.min(max - out.len());
        let mut chunk = vec![0u8; n];
        mem.read(addr, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|&c| c == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&chunk);
        addr = addr
            .checked_add(n as u64)
            .ok_or(MemoryError::AddressOverflow { addr })?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The fixed header fields, parsed from bytes at known offsets.
struct Headers {
    machine: u16,
    timestamp: u32,
    size_of_image: u32,
    size_of_headers: u32,
    checksum: u32,
    image_base: u64,
    entry_point: u32,
    is_64: bool,
    sections: Vec<Section>,
    /// (rva, size) of each data directory present.
    directories: Vec<(u32, u32)>,
}

fn read_headers(mem: &dyn VirtualMemory, base: u64) -> Result<Headers, PeError> {
    let unreadable = |source| PeError::Unreadable { base, source };
    let malformed = |reason| PeError::Malformed { base, reason };
    let at = |off: u64| {
        base.checked_add(off).ok_or(PeError::Malformed {
            base,
            reason: "address overflow",
        })
    };

    let mut dos = [0u8; 64];
    mem.read(base, &mut dos).map_err(unreadable)?;
    if &dos[0..2] != b"MZ" {
        return Err(PeError::NoMz { base });
    }
    let lfanew = u32_at(&dos, 0x3c).ok_or(malformed("short DOS header"))?;
    if !(0x40..=MAX_LFANEW).contains(&lfanew) {
        return Err(PeError::BadLfanew { base, lfanew });
    }
    let nt = at(u64::from(lfanew))?;
    let mut fixed = [0u8; 24];
    mem.read(nt, &mut fixed).map_err(unreadable)?;
    if &fixed[0..4] != b"PE\0\0" {
        return Err(PeError::NoPe { va: nt });
    }
    let machine = u16_at(&fixed, 4).ok_or(malformed("short file header"))?;
    let nsections = usize::from(u16_at(&fixed, 6).ok_or(malformed("short file header"))?);
    let timestamp = u32_at(&fixed, 8).ok_or(malformed("short file header"))?;
    let opt_size = usize::from(u16_at(&fixed, 20).ok_or(malformed("short file header"))?);
    if nsections > MAX_SECTIONS {
        return Err(malformed("more than 96 sections"));
    }
    if opt_size < 2 {
        return Err(malformed("no optional header"));
    }
    let opt_va = at(u64::from(lfanew) + 24)?;
    let opt = mem.read_vec(opt_va, opt_size).map_err(unreadable)?;
    let magic = u16_at(&opt, 0).ok_or(malformed("short optional header"))?;
    let is_64 = match magic {
        0x10b => false,
        0x20b => true,
        _ => return Err(PeError::BadMagic { base, magic }),
    };
    let short = || malformed("short optional header");
    let entry_point = u32_at(&opt, 16).ok_or_else(short)?;
    let image_base = if is_64 {
        u64_at(&opt, 24)
    } else {
        u32_at(&opt, 28).map(u64::from)
    }
    .ok_or_else(short)?;
    let size_of_image = u32_at(&opt, 56).ok_or_else(short)?;
    let size_of_headers = u32_at(&opt, 60).ok_or_else(short)?;
    let checksum = u32_at(&opt, 64).ok_or_else(short)?;
    let (count_off, dirs_off) = if is_64 { (108, 112) } else { (92, 96) };
    let declared = u32_at(&opt, count_off).unwrap_or(0) as usize;
    // Only directories that fit inside SizeOfOptionalHeader are real, whatever the count says.
    let fit = opt.len().saturating_sub(dirs_off) / 8;
    let directories = (0..declared.min(fit).min(16))
        .filter_map(|i| {
            Some((
                u32_at(&opt, dirs_off + i * 8)?,
                u32_at(&opt, dirs_off + i * 8 + 4)?,
            ))
        })
        .collect();

    let sec_va = opt_va
        .checked_add(opt_size as u64)
        .ok_or(malformed("address overflow"))?;
    let table = mem.read_vec(sec_va, nsections * 40).map_err(unreadable)?;
    let sections = table
        .chunks_exact(40)
        .map(|s| Section {
            name: c_string(&s[0..8]),
            virtual_size: u32_at(s, 8).unwrap_or(0),
            virtual_address: u32_at(s, 12).unwrap_or(0),
            raw_size: u32_at(s, 16).unwrap_or(0),
            raw_offset: u32_at(s, 20).unwrap_or(0),
            characteristics: u32_at(s, 36).unwrap_or(0),
        })
        .collect();
    Ok(Headers {
        machine,
        timestamp,
        size_of_image,
        size_of_headers,
        checksum,
        image_base,
        entry_point,
        is_64,
        sections,
        directories,
    })
}

/// Reads the PE image mapped at `base`. `module_size`, when known (from the loader entry),
/// bounds the RVAs we follow in addition to the image's own SizeOfImage.
pub fn read_pe(
    mem: &dyn VirtualMemory,
    base: u64,
    module_size: Option<u32>,
) -> Result<PeInfo, PeError> {
    let h = read_headers(mem, base)?;
    let limit = match module_size {
        Some(s) if s > 0 => s.min(h.size_of_image),
        _ => h.size_of_image,
    };
    // Every RVA followed below is checked against `limit`, so `base + rva` cannot overflow.
    if base.checked_add(u64::from(limit)).is_none() {
        return Err(PeError::Malformed {
            base,
            reason: "image extends past the end of the address space",
        });
    }
    let mut warnings = Vec::new();
    let dir = |i: usize| {
        h.directories
            .get(i)
            .copied()
            .filter(|&(rva, size)| rva != 0 && size != 0)
    };

    let imports = dir(IMAGE_DIRECTORY_ENTRY_IMPORT)
        .map(|(rva, _)| read_imports(mem, base, rva, limit, h.is_64, &mut warnings));
    let codeview = match dir(IMAGE_DIRECTORY_ENTRY_DEBUG) {
        Some((rva, size)) => read_codeview(mem, base, rva, size, limit, &mut warnings),
        None => None,
    };
    let codeview = codeview.or_else(|| {
        let found = codeview_in_header_page(mem, base);
        if found.is_some() {
            warnings.push(
                "no readable debug directory: the CodeView record was found in the header page"
                    .into(),
            );
        }
        found
    });
    Ok(PeInfo {
        machine: h.machine,
        timestamp: h.timestamp,
        size_of_image: h.size_of_image,
        checksum: h.checksum,
        image_base: h.image_base,
        entry_point: h.entry_point,
        is_64: h.is_64,
        sections: h.sections,
        imports,
        codeview,
        warnings,
    })
}

fn rva_ok(rva: u32, len: u32, limit: u32) -> bool {
    rva.checked_add(len).is_some_and(|end| end <= limit)
}

fn read_imports(
    mem: &dyn VirtualMemory,
    base: u64,
    rva: u32,
    limit: u32,
    is_64: bool,
    warnings: &mut Vec<String>,
) -> Imports {
    let mut dlls = Vec::new();
    let mut complete = true;
    for i in 0..=MAX_IMPORT_DLLS {
        if i == MAX_IMPORT_DLLS {
            warnings.push(format!("imports: stopped after {MAX_IMPORT_DLLS} DLLs"));
            complete = false;
            break;
        }
        let d_rva = match rva.checked_add(i as u32 * 20) {
            Some(r) if rva_ok(r, 20, limit) => r,
            _ => {
                warnings.push(format!("imports: descriptor {i} lies outside the image"));
                complete = false;
                break;
            }
        };
        let mut d = [0u8; 20];
        if let Err(e) = mem.read(base + u64::from(d_rva), &mut d) {
            warnings.push(format!("imports: descriptor {i} unreadable: {e}"));
            complete = false;
            break;
        }
        if d.iter().all(|&b| b == 0) {
            break;
        }
        let (oft, name_rva, ft) = (
            u32_at(&d, 0).unwrap_or(0),
            u32_at(&d, 12).unwrap_or(0),
            u32_at(&d, 16).unwrap_or(0),
        );
        let name = if rva_ok(name_rva, 1, limit) {
            match read_c_string(mem, base + u64::from(name_rva), MAX_NAME_LEN) {
                Ok(n) => n,
                Err(e) => {
                    warnings.push(format!("imports: name of DLL {i} unreadable: {e}"));
                    complete = false;
                    String::new()
                }
            }
        } else {
            warnings.push(format!("imports: name of DLL {i} lies outside the image"));
            complete = false;
            String::new()
        };
        // The lookup table (OriginalFirstThunk) keeps names after loading; the address table
        // (FirstThunk) is overwritten with resolved addresses, so it is only a fallback.
        let table = if oft != 0 { oft } else { ft };
        let dll = read_thunks(mem, base, table, limit, is_64, &name, warnings);
        complete &= dll.complete;
        dlls.push(ImportedDll {
            name,
            functions: dll.functions,
            first_thunk: ft,
            complete: dll.complete,
        });
    }
    Imports { dlls, complete }
}

struct Thunks {
    functions: Vec<Import>,
    complete: bool,
}

fn read_thunks(
    mem: &dyn VirtualMemory,
    base: u64,
    table: u32,
    limit: u32,
    is_64: bool,
    dll: &str,
    warnings: &mut Vec<String>,
) -> Thunks {
    let psize: u32 = if is_64 { 8 } else { 4 };
    let ordinal_flag: u64 = if is_64 { 1 << 63 } else { 1 << 31 };
    let mut functions = Vec::new();
    for j in 0..=MAX_IMPORTS_PER_DLL {
        if j == MAX_IMPORTS_PER_DLL {
            warnings.push(format!(
                "imports: {dll}: stopped after {MAX_IMPORTS_PER_DLL} functions"
            ));
            return Thunks {
                functions,
                complete: false,
            };
        }
        let t_rva = match table.checked_add(j as u32 * psize) {
            Some(r) if rva_ok(r, psize, limit) => r,
            _ => {
                warnings.push(format!(
                    "imports: {dll}: lookup table runs outside the image"
                ));
                return Thunks {
                    functions,
                    complete: false,
                };
            }
        };
        let mut buf = [0u8; 8];
        let slot = &mut buf[..psize as usize];
        if let Err(e) = mem.read(base + u64::from(t_rva), slot) {
            warnings.push(format!("imports: {dll}: lookup table unreadable: {e}"));
            return Thunks {
                functions,
                complete: false,
            };
        }
        let v = ptr_at(&buf, 0, psize as u8).unwrap_or(0);
        if v == 0 {
            return Thunks {
                functions,
                complete: true,
            };
        }
        if v & ordinal_flag != 0 && (v & !ordinal_flag) <= 0xffff {
            functions.push(Import::Ordinal((v & 0xffff) as u16));
            continue;
        }
        // A hint/name RVA must lie inside the image; anything else is a resolved address
        // (an already-bound address table) and names are not recoverable from it.
        let hn = match u32::try_from(v) {
            Ok(r) if rva_ok(r, 2, limit) => r,
            _ => {
                warnings.push(format!(
                    "imports: {dll}: address table already bound, names not available"
                ));
                return Thunks {
                    functions,
                    complete: false,
                };
            }
        };
        let hint = match mem.read_u16(base + u64::from(hn)) {
            Ok(h) => h,
            Err(e) => {
                warnings.push(format!("imports: {dll}: hint/name unreadable: {e}"));
                return Thunks {
                    functions,
                    complete: false,
                };
            }
        };
        match read_c_string(mem, base + u64::from(hn) + 2, MAX_NAME_LEN) {
            Ok(name) => functions.push(Import::Name { hint, name }),
            Err(e) => {
                warnings.push(format!("imports: {dll}: function name unreadable: {e}"));
                return Thunks {
                    functions,
                    complete: false,
                };
            }
        }
    }
    Thunks {
        functions,
        complete: false,
    }
}

/// A CodeView ("RSDS") record anywhere in the image's header page, for an image whose debug
/// directory is missing or unreadable (a kernel whose directory page is not in the dump; some
/// linkers place the record right after the section table). Volatility 3 finds the kernel's
/// PDB the same way, by scanning for the signature. Only a record naming a `.pdb` file in
/// printable characters is taken: the four letters alone prove nothing.
fn codeview_in_header_page(mem: &dyn VirtualMemory, base: u64) -> Option<CodeView> {
    let page = mem.read_vec(base, PAGE_SIZE as usize).ok()?;
    page.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"RSDS")
        .filter_map(|(at, _)| parse_codeview(page.get(at..)?))
        .find(|cv| {
            let p = &cv.pdb_path;
            p.len() > 4
                && p.to_ascii_lowercase().ends_with(".pdb")
                && p.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        })
}

fn read_codeview(
    mem: &dyn VirtualMemory,
    base: u64,
    rva: u32,
    size: u32,
    limit: u32,
    warnings: &mut Vec<String>,
) -> Option<CodeView> {
    let count = (size / 28) as usize;
    if count > MAX_DEBUG_ENTRIES {
        warnings.push(format!(
            "debug directory: {count} entries, reading the first {MAX_DEBUG_ENTRIES}"
        ));
    }
    for i in 0..count.min(MAX_DEBUG_ENTRIES) {
        let e_rva = rva
            .checked_add(i as u32 * 28)
            .filter(|&r| rva_ok(r, 28, limit));
        let Some(e_rva) = e_rva else {
            warnings.push("debug directory lies outside the image".into());
            return None;
        };
        let mut e = [0u8; 28];
        if let Err(err) = mem.read(base + u64::from(e_rva), &mut e) {
            warnings.push(format!("debug directory unreadable: {err}"));
            return None;
        }
        if u32_at(&e, 12) != Some(IMAGE_DEBUG_TYPE_CODEVIEW) {
            continue;
        }
        let data_size = u32_at(&e, 16).unwrap_or(0);
        let data_rva = u32_at(&e, 20).unwrap_or(0);
        if data_rva == 0 || data_size < 16 {
            warnings.push("CodeView record is not mapped in the image".into());
            return None;
        }
        let len = data_size.min(MAX_CODEVIEW_SIZE);
        if !rva_ok(data_rva, len, limit) {
            warnings.push("CodeView record lies outside the image".into());
            return None;
        }
        return match mem.read_vec(base + u64::from(data_rva), len as usize) {
            Ok(b) => {
                let cv = parse_codeview(&b);
                if cv.is_none() {
                    warnings.push("CodeView record has an unknown signature".into());
                }
                cv
            }
            Err(err) => {
                warnings.push(format!("CodeView record unreadable: {err}"));
                None
            }
        };
    }
    None
}

/// A mapped image (or any memory range) in a byte buffer, as [`VirtualMemory`] at `base`.
/// Lets the forge and tests run the readers of this module on bytes they hold.
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a [u8],
    pointer_size: u8,
}

impl<'a> SliceMemory<'a> {
    pub fn new(base: u64, bytes: &'a [u8], pointer_size: u8) -> Self {
        SliceMemory {
            base,
            bytes,
            pointer_size,
        }
    }
}

impl VirtualMemory for SliceMemory<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let off = va
            .checked_sub(self.base)
            .ok_or(MemoryError::NotMapped { va })?;
        let off = usize::try_from(off).map_err(|_| MemoryError::NotMapped { va })?;
        let end = off
            .checked_add(buf.len())
            .ok_or(MemoryError::AddressOverflow { addr: va })?;
        let src = self.bytes.get(off..end).ok_or_else(|| {
            // Name the first byte that is missing, as a page-table reader would.
            MemoryError::NotMapped {
                va: self.base.saturating_add(self.bytes.len().max(off) as u64),
            }
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn pointer_size(&self) -> u8 {
        self.pointer_size
    }
}

/// A PE file on disk seen as the image the loader would map at `base`: headers at RVA 0, each
/// section's raw data at its VirtualAddress, zero fill up to its VirtualSize.
///
/// Files are read by this module's reader, not by the `object` crate, so that a driver file
/// and the same driver in a dump give one [`PeInfo`] from one parser (the same caps, fields
/// and warnings). `object` cannot replace the reader for dumps: it reads a byte slice, where
/// a page the dump did not keep would have to be filled with something and would then be
/// parsed as data, instead of being reported missing as [`read_pe`] does.
pub struct PeFile<'a> {
    base: u64,
    bytes: &'a [u8],
    size_of_headers: u32,
    size_of_image: u32,
    sections: Vec<Section>,
    pointer_size: u8,
}

impl<'a> PeFile<'a> {
    /// Parses the headers of the file (they are at the same offsets in file and image).
    pub fn new(bytes: &'a [u8]) -> Result<Self, PeError> {
        let h = read_headers(&SliceMemory::new(0, bytes, 8), 0)?;
        Ok(PeFile {
            base: h.image_base,
            bytes,
            size_of_headers: h.size_of_headers,
            size_of_image: h.size_of_image,
            sections: h.sections,
            pointer_size: if h.is_64 { 8 } else { 4 },
        })
    }

    /// The image base from the optional header: where [`read_pe`] should look.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Reads the image's PE information.
    pub fn info(&self) -> Result<PeInfo, PeError> {
        read_pe(self, self.base, None)
    }

    /// Where the byte at `rva` of the mapped image comes from: `Some(offset)` in the file, or
    /// `None` for zero fill (past a section's raw data, or the alignment gaps between sections,
    /// which the loader maps as zeros too).
    fn byte_source(&self, rva: u32) -> Option<usize> {
        if rva < self.size_of_headers {
            return Some(rva as usize);
        }
        let s = self
            .sections
            .iter()
            .find(|s| rva >= s.virtual_address && rva - s.virtual_address < s.raw_size)?;
        (s.raw_offset as usize).checked_add((rva - s.virtual_address) as usize)
    }
}

impl VirtualMemory for PeFile<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (i, out) in buf.iter_mut().enumerate() {
            let addr = va
                .checked_add(i as u64)
                .ok_or(MemoryError::AddressOverflow { addr: va })?;
            let rva = addr
                .checked_sub(self.base)
                .and_then(|r| u32::try_from(r).ok())
                .filter(|&r| r < self.size_of_image)
                .ok_or(MemoryError::NotMapped { va: addr })?;
            // Raw data declared past the end of the file reads as zeros, as a truncated
            // section would after mapping; only addresses outside SizeOfImage are unmapped.
            *out = self
                .byte_source(rva)
                .and_then(|off| self.bytes.get(off))
                .copied()
                .unwrap_or(0);
        }
        Ok(())
    }
    fn pointer_size(&self) -> u8 {
        self.pointer_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_formatting_matches_windows() {
        // Bytes of {1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3} as stored in an RSDS record.
        let b = [
            0xdb, 0xfd, 0x19, 0x1c, 0xbb, 0x27, 0x99, 0x33, 0xd9, 0xb4, 0x59, 0x73, 0xef, 0xea,
            0xfc, 0xf3,
        ];
        assert_eq!(format_guid(&b), "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3");
    }

    #[test]
    fn codeview_rsds_and_nb10() {
        let mut r = b"RSDS".to_vec();
        r.extend_from_slice(&[0x11; 16]);
        r.extend_from_slice(&7u32.to_le_bytes());
        r.extend_from_slice(b"c:\\build\\x.pdb\0junk");
        let cv = parse_codeview(&r).unwrap();
        assert_eq!(cv.pdb_path, "c:\\build\\x.pdb");
        assert_eq!(cv.pdb_name(), "x.pdb");
        assert_eq!(cv.age, 7);
        assert_eq!(cv.guid, "11111111-1111-1111-1111-111111111111");
        assert_eq!(cv.symstore_key(), "111111111111111111111111111111117");

        let mut n = b"NB10".to_vec();
        n.extend_from_slice(&0u32.to_le_bytes());
        n.extend_from_slice(&0x3b7d84a5u32.to_le_bytes());
        n.extend_from_slice(&2u32.to_le_bytes());
        n.extend_from_slice(b"ntoskrnl.pdb\0");
        let cv = parse_codeview(&n).unwrap();
        assert_eq!(
            (cv.guid.as_str(), cv.age, cv.format),
            ("3B7D84A5", 2, "NB10")
        );
        assert!(parse_codeview(b"RSDS\0\0").is_none());
        assert!(parse_codeview(b"XXXX0000000000000000000000000").is_none());
    }

    #[test]
    fn slice_memory_bounds() {
        let bytes = [1u8, 2, 3, 4];
        let m = SliceMemory::new(0x1000, &bytes, 8);
        assert_eq!(m.read_u16(0x1002), Ok(0x0403));
        assert!(m.read_u32(0x1002).is_err());
        assert!(m.read_u8(0xfff).is_err());
        assert!(m.read_u8(u64::MAX).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let m0 = vec![0u8; 4096];
        assert!(matches!(
            read_pe(&SliceMemory::new(0, &m0, 8), 0, None),
            Err(PeError::NoMz { .. })
        ));
        let mut m = vec![0u8; 4096];
        m[0..2].copy_from_slice(b"MZ");
        m[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(
            read_pe(&SliceMemory::new(0, &m, 8), 0, None),
            Err(PeError::BadLfanew { .. })
        ));
        m[0x3c..0x40].copy_from_slice(&0xfe0u32.to_le_bytes());
        assert!(matches!(
            read_pe(&SliceMemory::new(0, &m, 8), 0, None),
            Err(PeError::NoPe { .. })
        ));
        m[0x3c..0x40].copy_from_slice(&0xff8u32.to_le_bytes());
        m[0xff8..0xffc].copy_from_slice(b"PE\0\0");
        // File header runs past the end of the buffer.
        assert!(matches!(
            read_pe(&SliceMemory::new(0, &m, 8), 0, None),
            Err(PeError::Unreadable { .. })
        ));
    }

    /// A minimal hand-built 64-bit image whose import table points at a missing page.
    #[test]
    fn missing_import_page_is_partial_not_error() {
        let mut m = vec![0u8; 0x1000];
        m[0..2].copy_from_slice(b"MZ");
        m[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        m[0x80..0x84].copy_from_slice(b"PE\0\0");
        m[0x84..0x86].copy_from_slice(&IMAGE_FILE_MACHINE_AMD64.to_le_bytes());
        m[0x86..0x88].copy_from_slice(&0u16.to_le_bytes());
        m[0x88..0x8c].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        m[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
        let opt = 0x98;
        m[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        m[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes());
        m[opt + 60..opt + 64].copy_from_slice(&0x400u32.to_le_bytes());
        m[opt + 64..opt + 68].copy_from_slice(&0xabcdu32.to_le_bytes());
        m[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        // Import directory at RVA 0x2000 (not in the buffer: a page missing from the dump).
        m[opt + 112 + 8..opt + 112 + 12].copy_from_slice(&0x2000u32.to_le_bytes());
        m[opt + 112 + 12..opt + 112 + 16].copy_from_slice(&0x28u32.to_le_bytes());
        let pe = read_pe(
            &SliceMemory::new(0xfffff800_00000000, &m, 8),
            0xfffff800_00000000,
            None,
        )
        .unwrap();
        assert_eq!(
            (pe.machine, pe.timestamp, pe.size_of_image, pe.checksum),
            (0x8664, 0x1234_5678, 0x3000, 0xabcd)
        );
        assert!(pe.is_64 && pe.sections.is_empty() && pe.codeview.is_none());
        let imports = pe.imports.unwrap();
        assert!(!imports.complete && imports.dlls.is_empty());
        assert_eq!(pe.warnings.len(), 1, "{:?}", pe.warnings);
    }

    /// No debug directory, but an RSDS record after the section table: found, with a warning;
    /// a bare "RSDS" without a PDB name is not taken.
    #[test]
    fn codeview_found_in_the_header_page_without_a_debug_directory() {
        let mut m = vec![0u8; 0x1000];
        m[0..2].copy_from_slice(b"MZ");
        m[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        m[0x80..0x84].copy_from_slice(b"PE\0\0");
        m[0x84..0x86].copy_from_slice(&IMAGE_FILE_MACHINE_AMD64.to_le_bytes());
        m[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
        let opt = 0x98;
        m[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        m[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes());
        m[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        // A decoy, then the record.
        m[0x300..0x308].copy_from_slice(b"RSDS\x01\x02\x03\x04");
        let mut rec = b"RSDS".to_vec();
        rec.extend_from_slice(&[0x11; 16]);
        rec.extend_from_slice(&2u32.to_le_bytes());
        rec.extend_from_slice(b"ntkrnlmp.pdb\0");
        m[0x400..0x400 + rec.len()].copy_from_slice(&rec);
        let base = 0xfffff800_00000000;
        let pe = read_pe(&SliceMemory::new(base, &m, 8), base, None).unwrap();
        let cv = pe.codeview.as_ref().expect("found in the header page");
        assert_eq!((cv.pdb_name(), cv.age), ("ntkrnlmp.pdb", 2));
        assert_eq!(cv.guid, "11111111-1111-1111-1111-111111111111");
        assert!(
            pe.warnings.iter().any(|w| w.contains("header page")),
            "{:?}",
            pe.warnings
        );
        // Without the record: nothing invented.
        m[0x400..0x404].copy_from_slice(b"XXXX");
        let pe = read_pe(&SliceMemory::new(base, &m, 8), base, None).unwrap();
        assert!(pe.codeview.is_none());
    }

    fn corpus(rel: &str) -> Vec<u8> {
        let p = crate::test_corpus::corpus_str(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// amdppm.sys from the symbol store: the store's own keys are the independent truth.
    /// `amdppm.sys/c9c030003b000` = TimeDateStamp C9C03000 + SizeOfImage 3B000;
    /// `amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31` = GUID + age 1.
    #[test]
    fn amdppm_matches_symbol_store_keys() {
        let bytes = corpus("symstore/amdppm.sys/c9c030003b000/amdppm.sys");
        let pe = PeFile::new(&bytes).unwrap().info().unwrap();
        assert_eq!(
            format!("{:x}{:x}", pe.timestamp, pe.size_of_image),
            "c9c030003b000"
        );
        let cv = pe.codeview.as_ref().unwrap();
        assert_eq!(cv.pdb_name(), "amdppm.pdb");
        assert_eq!(cv.guid, "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3");
        assert_eq!(cv.age, 1);
        assert_eq!(cv.symstore_key(), "1C19FDDB27BB3399D9B45973EFEAFCF31");
        // The rest from pefile 2024.8.26 (an independent PE parser).
        assert_eq!(
            (pe.machine, pe.checksum, pe.image_base, pe.entry_point),
            (0x8664, 0x3d883, 0x1c0000000, 0x27a0)
        );
        let names: Vec<&str> = pe.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                ".text", ".rdata", ".data", ".pdata", ".idata", "PAGE", "INIT", "GFIDS", ".rsrc",
                ".reloc"
            ]
        );
        let page = &pe.sections[5];
        assert_eq!(
            (
                page.virtual_address,
                page.virtual_size,
                page.characteristics
            ),
            (0x1c000, 0x19848, 0x60000020)
        );
        let imports = pe.imports.as_ref().unwrap();
        assert!(imports.complete, "{:?}", pe.warnings);
        let dlls: Vec<(&str, usize)> = imports
            .dlls
            .iter()
            .map(|d| (d.name.as_str(), d.functions.len()))
            .collect();
        assert_eq!(
            dlls,
            [
                ("ntoskrnl.exe", 84),
                ("HAL.dll", 2),
                ("WppRecorder.sys", 4),
                ("WDFLDR.SYS", 4)
            ]
        );
        assert!(
            matches!(&imports.dlls[0].functions[0], Import::Name { name, .. } if name == "KeQueryLogicalProcessorRelationship")
        );
        assert!(pe.warnings.is_empty(), "{:?}", pe.warnings);
    }

    /// Expected values from pefile 2024.8.26.
    #[test]
    fn usbnet_and_usb2dbg_match_pefile() {
        let bytes = corpus("drivers/usbnet.sys");
        let pe = PeFile::new(&bytes).unwrap().info().unwrap();
        assert_eq!(
            (pe.machine, pe.timestamp, pe.size_of_image, pe.checksum),
            (0x8664, 0x9a2487fb, 0x14000, 0x202d5)
        );
        assert_eq!(pe.sections.len(), 11);
        assert_eq!(pe.sections[1].name, "fothk");
        let cv = pe.codeview.as_ref().unwrap();
        assert_eq!(
            (cv.pdb_name(), cv.symstore_key().as_str()),
            ("usbnet.pdb", "9D020CA1E186B6B78FB38E96053DA2AF1")
        );
        let dlls: Vec<(&str, usize)> = pe
            .imports
            .as_ref()
            .unwrap()
            .dlls
            .iter()
            .map(|d| (d.name.as_str(), d.functions.len()))
            .collect();
        assert_eq!(
            dlls,
            [
                ("ntoskrnl.exe", 41),
                ("NDIS.SYS", 33),
                ("ksecdd.sys", 3),
                ("NETIO.SYS", 8)
            ]
        );

        let bytes = corpus("drivers/usb2dbg.sys");
        let pe = PeFile::new(&bytes).unwrap().info().unwrap();
        assert_eq!(
            (pe.machine, pe.timestamp, pe.size_of_image, pe.checksum),
            (0x8664, 0x9264fd86, 0xe000, 0x1e53b)
        );
        let cv = pe.codeview.as_ref().unwrap();
        assert_eq!(
            (cv.pdb_name(), cv.symstore_key().as_str()),
            ("usb2dbg.pdb", "FA013ACC175478C10865912465B4885F1")
        );
        assert_eq!(pe.imports.as_ref().unwrap().function_count(), 40);
    }

    /// The image as the loader maps it, with its INIT section's pages dropped (as a dump that
    /// did not keep them): headers, sections and CodeView still read; imports partial or whole
    /// depending on where the tables live, never an error.
    #[test]
    fn mapped_image_with_a_hole_reads_partially() {
        let bytes = corpus("symstore/amdppm.sys/c9c030003b000/amdppm.sys");
        let file = PeFile::new(&bytes).unwrap();
        let base = 0xfffff805_1b2c0000u64;
        let mut image = vec![0u8; 0x3b000];
        file.read(file.base(), &mut image).unwrap();
        // Hole: the .idata section (0x1b000..0x1c000) where the import names are.
        struct Holey<'a>(SliceMemory<'a>, std::ops::Range<u64>);
        impl VirtualMemory for Holey<'_> {
            fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
                let end = va + buf.len() as u64;
                if va < self.1.end && end > self.1.start {
                    return Err(MemoryError::PageMissing {
                        va: Some(va.max(self.1.start)),
                        pa: 0,
                    });
                }
                self.0.read(va, buf)
            }
            fn pointer_size(&self) -> u8 {
                8
            }
        }
        let mem = Holey(
            SliceMemory::new(base, &image, 8),
            base + 0x1b000..base + 0x1c000,
        );
        let pe = read_pe(&mem, base, Some(0x3b000)).unwrap();
        assert_eq!(pe.timestamp, 0xc9c03000);
        assert_eq!(
            pe.codeview.unwrap().guid,
            "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3"
        );
        let imports = pe.imports.unwrap();
        assert!(!imports.complete);
        assert!(!pe.warnings.is_empty());
    }
}
