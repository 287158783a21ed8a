//! Triage dumps (DumpType 4, "small memory dump"): the TRIAGE_DUMP header after the dump
//! header, the driver list, and the captured virtual-memory data blocks.
//!
//! Layout: rizin `librz/bin/format/dmp/dmp_specs.h` (dmp32_triage / dmp64_triage,
//! dmp_driver_entry32/64) and shared/docs/windows-internals.md, checked on
//! corpus/dumps/triage_x64.dmp. All offsets in TRIAGE_DUMP are file offsets.

use super::bytes::{need, slice, u32_at, u64_at};
use super::DumpError;

/// The "TRGD" marker at ValidOffset.
const TRIAGE_VALID: &[u8; 4] = b"TRGD";
/// Longest driver name we accept (UNICODE_STRING's limit, in UTF-16 units).
const MAX_NAME_CHARS: u64 = 0x7FFF;

/// The TRIAGE_DUMP fields, normalised over the 32- and 64-bit layouts. Offsets are file offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageHeader {
    pub service_pack_build: u32,
    pub size_of_dump: u32,
    pub valid_offset: u32,
    pub context_offset: u32,
    pub exception_offset: u32,
    pub mm_offset: u32,
    pub unloaded_drivers_offset: u32,
    pub prcb_offset: u32,
    pub process_offset: u32,
    pub thread_offset: u32,
    pub call_stack_offset: u32,
    pub size_of_call_stack: u32,
    pub driver_list_offset: u32,
    pub driver_count: u32,
    pub string_pool_offset: u32,
    pub string_pool_size: u32,
    pub broken_driver_offset: u32,
    pub triage_options: u32,
    pub top_of_stack: u64,
    pub data_page_address: u64,
    pub data_page_offset: u32,
    pub data_page_size: u32,
    pub debugger_data_offset: u32,
    pub debugger_data_size: u32,
    pub data_blocks_offset: u32,
    pub data_blocks_count: u32,
}

/// One loaded driver as the triage writer recorded it (from its LDR entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageDriver {
    /// File name: the last component of `path`, e.g. "amdppm.sys".
    pub name: String,
    /// The string-pool entry as written, usually the full path
    /// ("\\SystemRoot\\System32\\drivers\\amdppm.sys").
    pub path: String,
    pub base: u64,
    pub size: u32,
    pub timestamp: u32,
    pub checksum: u32,
}

/// A range of kernel virtual memory the triage writer captured: `size` bytes at file `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriageDataBlock {
    pub address: u64,
    pub offset: u32,
    pub size: u32,
}

/// Everything a triage dump carries beyond the dump header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageDump {
    pub header: TriageHeader,
    pub drivers: Vec<TriageDriver>,
    /// The captured data blocks, in file order.
    pub data_blocks: Vec<TriageDataBlock>,
    /// The debugger data block (KDDEBUGGER_DATA64) copy: its virtual address (the header's
    /// KdDebuggerDataBlock) and its bytes' place in the file. `None` when not captured.
    pub debugger_data: Option<TriageDataBlock>,
    /// The "data page" the writer captured around the faulting address, when present.
    pub data_page: Option<TriageDataBlock>,
}

impl TriageDump {
    /// Every captured virtual range: data blocks, the data page and the debugger data block.
    pub fn regions(&self) -> impl Iterator<Item = TriageDataBlock> + '_ {
        self.data_blocks
            .iter()
            .copied()
            .chain(self.data_page)
            .chain(self.debugger_data)
    }
}

/// Parses the TRIAGE_DUMP at `at` (the dump header size). `wide` = 64-bit layout.
pub(crate) fn parse(
    data: &[u8],
    at: u64,
    wide: bool,
    kd_debugger_data_block: Option<u64>,
) -> Result<TriageDump, DumpError> {
    let w = "triage header";
    let hdr_len = if wide { 0x80 } else { 0x68 };
    need(data, w, at, hdr_len)?;
    let r = |off: u64| u32_at(data, w, at + off);
    let mut h = TriageHeader {
        service_pack_build: r(0x00)?,
        size_of_dump: r(0x04)?,
        valid_offset: r(0x08)?,
        context_offset: r(0x0C)?,
        exception_offset: r(0x10)?,
        mm_offset: r(0x14)?,
        unloaded_drivers_offset: r(0x18)?,
        prcb_offset: r(0x1C)?,
        process_offset: r(0x20)?,
        thread_offset: r(0x24)?,
        call_stack_offset: r(0x28)?,
        size_of_call_stack: r(0x2C)?,
        driver_list_offset: r(0x30)?,
        driver_count: r(0x34)?,
        string_pool_offset: r(0x38)?,
        string_pool_size: r(0x3C)?,
        broken_driver_offset: r(0x40)?,
        triage_options: r(0x44)?,
        top_of_stack: 0,
        data_page_address: 0,
        data_page_offset: 0,
        data_page_size: 0,
        debugger_data_offset: 0,
        debugger_data_size: 0,
        data_blocks_offset: 0,
        data_blocks_count: 0,
    };
    if wide {
        h.top_of_stack = u64_at(data, w, at + 0x48)?;
        // 0x50..0x60: IA64 backing-store fields, unused on x64/arm64.
        h.data_page_address = u64_at(data, w, at + 0x60)?;
        h.data_page_offset = r(0x68)?;
        h.data_page_size = r(0x6C)?;
        h.debugger_data_offset = r(0x70)?;
        h.debugger_data_size = r(0x74)?;
        h.data_blocks_offset = r(0x78)?;
        h.data_blocks_count = r(0x7C)?;
    } else {
        h.top_of_stack = u64::from(r(0x48)?);
        h.data_page_address = u64::from(r(0x4C)?);
        h.data_page_offset = r(0x50)?;
        h.data_page_size = r(0x54)?;
        h.debugger_data_offset = r(0x58)?;
        h.debugger_data_size = r(0x5C)?;
        h.data_blocks_offset = r(0x60)?;
        h.data_blocks_count = r(0x64)?;
    }

    // The writer's own idea of the dump size: a shorter file lost its tail.
    need(
        data,
        "triage dump (SizeOfDump)",
        0,
        u64::from(h.size_of_dump),
    )?;
    let valid = slice(
        data,
        "triage ValidOffset marker",
        u64::from(h.valid_offset),
        4,
    )?;
    if valid != TRIAGE_VALID {
        return Err(DumpError::malformed(
            "triage header",
            format!("no \"TRGD\" marker at ValidOffset {:#x}", h.valid_offset),
        ));
    }

    let drivers = parse_drivers(data, &h, wide)?;
    let data_blocks = parse_blocks(data, &h, wide)?;
    let region = |what: &'static str,
                  address: u64,
                  offset: u32,
                  size: u32|
     -> Result<Option<TriageDataBlock>, DumpError> {
        if offset == 0 || size == 0 {
            return Ok(None);
        }
        need(data, what, u64::from(offset), u64::from(size))?;
        Ok(Some(TriageDataBlock {
            address,
            offset,
            size,
        }))
    };
    let debugger_data = match kd_debugger_data_block {
        Some(va) => region(
            "triage debugger data",
            va,
            h.debugger_data_offset,
            h.debugger_data_size,
        )?,
        None => None,
    };
    let data_page = if h.data_page_address != 0 {
        region(
            "triage data page",
            h.data_page_address,
            h.data_page_offset,
            h.data_page_size,
        )?
    } else {
        None
    };
    Ok(TriageDump {
        header: h,
        drivers,
        data_blocks,
        debugger_data,
        data_page,
    })
}

fn parse_drivers(
    data: &[u8],
    h: &TriageHeader,
    wide: bool,
) -> Result<Vec<TriageDriver>, DumpError> {
    let w = "triage driver list";
    // DUMP_DRIVER_ENTRY64 = {u32 name offset; u32 pad; LDR_DATA_TABLE_ENTRY64 (0x88)};
    // DUMP_DRIVER_ENTRY32 = {u32 name offset; LDR_DATA_TABLE_ENTRY32 (0x48)}.
    // (entry size, DllBase, SizeOfImage, CheckSum, TimeDateStamp) offsets within an entry:
    let (esize, o_base, o_size, o_sum, o_time) = if wide {
        (0x90u64, 0x38u64, 0x48u64, 0x80u64, 0x88u64)
    } else {
        (0x4C, 0x1C, 0x24, 0x44, 0x48)
    };
    let list = u64::from(h.driver_list_offset);
    let count = u64::from(h.driver_count);
    // Check the whole list against the file before allocating for it: a lying count fails here.
    need(data, w, list, count * esize)?;
    let mut drivers = Vec::with_capacity(count as usize);
    for i in 0..count {
        let e = list + i * esize;
        let name_off = u64::from(u32_at(data, w, e)?);
        let base = if wide {
            u64_at(data, w, e + o_base)?
        } else {
            u64::from(u32_at(data, w, e + o_base)?)
        };
        let path = read_pool_string(data, name_off, i)?;
        drivers.push(TriageDriver {
            name: path
                .rsplit(['\\', '/'])
                .next()
                .unwrap_or_default()
                .to_string(),
            path,
            base,
            size: u32_at(data, w, e + o_size)?,
            timestamp: u32_at(data, w, e + o_time)?,
            checksum: u32_at(data, w, e + o_sum)?,
        });
    }
    Ok(drivers)
}

/// A string-pool entry: `{u32 length in UTF-16 units; UTF-16 text}`.
fn read_pool_string(data: &[u8], off: u64, index: u64) -> Result<String, DumpError> {
    let w = "triage driver name";
    let chars = u64::from(u32_at(data, w, off)?);
    if chars > MAX_NAME_CHARS {
        return Err(DumpError::malformed(
            "triage driver list",
            format!("driver {index} name at {off:#x} claims {chars} characters"),
        ));
    }
    let raw = slice(data, w, off + 4, chars * 2)?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut s = String::from_utf16_lossy(&units);
    while s.ends_with('\0') {
        s.pop();
    }
    Ok(s)
}

fn parse_blocks(
    data: &[u8],
    h: &TriageHeader,
    wide: bool,
) -> Result<Vec<TriageDataBlock>, DumpError> {
    let w = "triage data blocks";
    let esize = if wide { 16u64 } else { 12u64 };
    let at = u64::from(h.data_blocks_offset);
    let count = u64::from(h.data_blocks_count);
    if count == 0 {
        return Ok(Vec::new());
    }
    need(data, w, at, count * esize)?;
    let mut blocks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let e = at + i * esize;
        let (address, rest) = if wide {
            (u64_at(data, w, e)?, e + 8)
        } else {
            (u64::from(u32_at(data, w, e)?), e + 4)
        };
        let offset = u32_at(data, w, rest)?;
        let size = u32_at(data, w, rest + 4)?;
        need(
            data,
            "triage data block contents",
            u64::from(offset),
            u64::from(size),
        )?;
        if address.checked_add(u64::from(size)).is_none() {
            return Err(DumpError::malformed(
                w,
                format!("block {i} at {address:#x} wraps the address space"),
            ));
        }
        blocks.push(TriageDataBlock {
            address,
            offset,
            size,
        });
    }
    Ok(blocks)
}
