//! The crash-dump header at file offset 0: "PAGE" + "DU64" (x64 and arm64, 0x2000 bytes) or
//! "PAGE" + "DUMP" (x86, 0x1000 bytes). Offsets: kdmp-parser `kdmp-parser-structs.h` (HEADER64),
//! rizin `dmp_specs.h` (dmp32_header), windows-sys `DUMP_HEADER32/64`; see
//! shared/docs/windows-internals.md.

use super::bytes::{u32_at, u64_at, u8_at};
use super::{Arch, BugCheck, DumpError, DumpHeader};

/// "PAGE" as a little-endian u32: the filler of every unused header byte.
pub(crate) const PAGE_FILL32: u32 = 0x4547_4150;
pub(crate) const PAGE_FILL64: u64 = 0x4547_4150_4547_4150;

pub(crate) const HEADER64_SIZE: u64 = 0x2000;
pub(crate) const HEADER32_SIZE: u64 = 0x1000;

const MACHINE_I386: u32 = 0x14C;
const MACHINE_AMD64: u32 = 0x8664;
const MACHINE_ARM64: u32 = 0xAA64;

/// The header plus the layout facts the page index needs.
#[derive(Debug, Clone)]
pub(crate) struct ParsedHeader {
    pub header: DumpHeader,
    /// 0x2000 (64-bit header) or 0x1000 (32-bit header): where sub-headers / page data start.
    pub size: u64,
    /// True for the 64-bit header layout (x64 and arm64).
    pub wide: bool,
    /// File offset of PhysicalMemoryBlock (the run table of DumpType 1).
    pub run_table_offset: u64,
    /// Bytes reserved for PhysicalMemoryBlock in the header (700).
    pub run_table_capacity: u64,
}

fn opt32(v: u32) -> Option<u64> {
    (v != PAGE_FILL32).then_some(u64::from(v))
}

fn opt64(v: u64) -> Option<u64> {
    (v != PAGE_FILL64).then_some(v)
}

/// Names the well-known things a kernel-dump reader gets handed by mistake.
fn identify_foreign(data: &[u8]) -> String {
    let head = &data[..data.len().min(8)];
    if head.starts_with(b"MDMP") {
        return "user-mode minidump (MDMP)".into();
    }
    if head.starts_with(b"PAGE") {
        let rest = String::from_utf8_lossy(&head[4..]).into_owned();
        return format!(
            "\"PAGE\" header with unknown validity tag {rest:?} (expected \"DU64\" or \"DUMP\")"
        );
    }
    if head.starts_with(b"HIBR") || head.starts_with(b"hibr") || head.starts_with(b"WAKE") {
        return "hibernation file".into();
    }
    if head.starts_with(b"\x7fELF") {
        return "ELF file (Linux core dump?)".into();
    }
    if head.starts_with(b"MZ") {
        return "PE executable (MZ)".into();
    }
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    format!("unknown signature {}", hex.join(" "))
}

pub(crate) fn parse(data: &[u8]) -> Result<ParsedHeader, DumpError> {
    if data.is_empty() {
        return Err(DumpError::Empty);
    }
    if data.len() < 8 {
        if data.starts_with(b"MDMP") {
            return Err(DumpError::NotKernelDump(identify_foreign(data)));
        }
        return Err(DumpError::Truncated {
            what: "header signature",
            need: 8,
            have: data.len() as u64,
        });
    }
    let wide = match &data[..8] {
        b"PAGEDU64" => true,
        b"PAGEDUMP" => false,
        _ => return Err(DumpError::NotKernelDump(identify_foreign(data))),
    };
    let size = if wide { HEADER64_SIZE } else { HEADER32_SIZE };
    if (data.len() as u64) < size {
        return Err(DumpError::Truncated {
            what: "header",
            need: size,
            have: data.len() as u64,
        });
    }
    let w = "header";
    if wide {
        parse64(data, w)
    } else {
        parse32(data, w)
    }
}

fn parse64(d: &[u8], w: &'static str) -> Result<ParsedHeader, DumpError> {
    let machine = u32_at(d, w, 0x30)?;
    let arch = match machine {
        MACHINE_AMD64 => Arch::X64,
        MACHINE_ARM64 => Arch::Arm64,
        other => {
            return Err(DumpError::Unsupported(format!(
                "64-bit dump header with MachineImageType {other:#x} (expected 0x8664 or 0xaa64)"
            )))
        }
    };
    let header = DumpHeader {
        arch,
        pae: false,
        major_version: u32_at(d, w, 0x08)?,
        build: u32_at(d, w, 0x0C)?,
        directory_table_base: u64_at(d, w, 0x10)?,
        pfn_database: opt64(u64_at(d, w, 0x18)?),
        ps_loaded_module_list: opt64(u64_at(d, w, 0x20)?),
        ps_active_process_head: opt64(u64_at(d, w, 0x28)?),
        machine_image_type: machine,
        processors: u32_at(d, w, 0x34)?,
        bugcheck: BugCheck {
            code: u32_at(d, w, 0x38)?,
            params: [
                u64_at(d, w, 0x40)?,
                u64_at(d, w, 0x48)?,
                u64_at(d, w, 0x50)?,
                u64_at(d, w, 0x58)?,
            ],
        },
        kd_debugger_data_block: opt64(u64_at(d, w, 0x80)?),
        dump_type: u32_at(d, w, 0xF98)?,
        required_dump_space: opt64(u64_at(d, w, 0xFA0)?),
        system_time: opt64(u64_at(d, w, 0xFA8)?),
        system_up_time: opt64(u64_at(d, w, 0x1030)?),
    };
    Ok(ParsedHeader {
        header,
        size: HEADER64_SIZE,
        wide: true,
        run_table_offset: 0x88,
        run_table_capacity: 700,
    })
}

fn parse32(d: &[u8], w: &'static str) -> Result<ParsedHeader, DumpError> {
    let machine = u32_at(d, w, 0x20)?;
    if machine != MACHINE_I386 {
        return Err(DumpError::Unsupported(format!(
            "32-bit dump header with MachineImageType {machine:#x} (expected 0x14c)"
        )));
    }
    let pae = u8_at(d, w, 0x5C)?;
    let header = DumpHeader {
        arch: Arch::X86,
        // The byte is 0/1 when set by the writer; anything else (e.g. the "PAGE" filler 0x50)
        // means the field was not written, which only pre-PAE-era kernels do.
        pae: pae == 1,
        major_version: u32_at(d, w, 0x08)?,
        build: u32_at(d, w, 0x0C)?,
        directory_table_base: u64::from(u32_at(d, w, 0x10)?),
        pfn_database: opt32(u32_at(d, w, 0x14)?),
        ps_loaded_module_list: opt32(u32_at(d, w, 0x18)?),
        ps_active_process_head: opt32(u32_at(d, w, 0x1C)?),
        machine_image_type: machine,
        processors: u32_at(d, w, 0x24)?,
        bugcheck: BugCheck {
            code: u32_at(d, w, 0x28)?,
            params: [
                u64::from(u32_at(d, w, 0x2C)?),
                u64::from(u32_at(d, w, 0x30)?),
                u64::from(u32_at(d, w, 0x34)?),
                u64::from(u32_at(d, w, 0x38)?),
            ],
        },
        kd_debugger_data_block: opt32(u32_at(d, w, 0x60)?),
        dump_type: u32_at(d, w, 0xF88)?,
        required_dump_space: opt64(u64_at(d, w, 0xFA0)?),
        system_time: opt64(u64_at(d, w, 0xFC0)?),
        system_up_time: opt64(u64_at(d, w, 0xFB8)?),
    };
    Ok(ParsedHeader {
        header,
        size: HEADER32_SIZE,
        wide: false,
        run_table_offset: 0x64,
        run_table_capacity: 700,
    })
}
