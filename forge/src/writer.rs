//! Writes the dump file: the crash-dump header ("PAGEDU64" x64, "PAGEDUMP" x86 PAE), then the
//! stored pages in one of three layouts. The file is sized with `set_len` and only stored
//! (forged) pages are written, so a 16 GiB full dump is a sparse file written in seconds.

use crate::space::{Machine, Paging, PAGE};
use crate::ForgeError;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// The dump layouts the forge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// DumpType 1: run table in the header, pages back to back.
    Full,
    /// DumpType 5 "SDMP": bitmap of the stored pages (kernel memory only).
    KernelBitmap,
    /// DumpType 5 "FDMP": bitmap of all physical memory.
    FullBitmap,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Full, Format::KernelBitmap, Format::FullBitmap];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Full => "full",
            Format::KernelBitmap => "kernel-bitmap",
            Format::FullBitmap => "full-bitmap",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn dump_type(self) -> u32 {
        match self {
            Format::Full => 1,
            Format::KernelBitmap | Format::FullBitmap => 5,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Format::Full => "complete memory dump, DumpType 1 (run table)",
            Format::KernelBitmap => {
                "kernel memory dump, DumpType 5 bitmap \"SDMP\" (forged pages only)"
            }
            Format::FullBitmap => {
                "complete memory dump, DumpType 5 bitmap \"FDMP\" (all physical pages)"
            }
        }
    }
}

/// The header values that come from the forged system.
#[derive(Debug, Clone)]
pub struct HeaderValues {
    pub build: u32,
    pub directory_table_base: u64,
    pub pfn_database: u64,
    pub ps_loaded_module_list: u64,
    pub ps_active_process_head: u64,
    pub kd_debugger_data_block: u64,
    pub processors: u32,
    pub bugcheck_code: u32,
    pub bugcheck_params: [u64; 4],
    /// CONTEXT of the faulting frame; `None`: a zeroed record with its ContextFlags.
    pub context: Option<Vec<u8>>,
    /// EXCEPTION_RECORD of the crash; `None`: zeroed.
    pub exception: Option<Vec<u8>>,
    pub system_time: u64,
    /// Time since boot, 100 ns units.
    pub system_up_time: u64,
    pub product_type: u32,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub file_size: u64,
    pub pages_stored: u64,
}

/// The machine's physical memory runs (base page, page count) for a memory size in bytes: the
/// usual PC layout with the legacy hole below 1 MiB and, above 3 GiB, the PCI hole with the rest
/// of memory remapped above 4 GiB.
pub fn physical_runs(size: u64) -> Vec<(u64, u64)> {
    let pages = size / PAGE;
    let mut runs = vec![(0x1, 0x9e)];
    let low_end = 0xc0000u64; // 3 GiB
    if pages <= low_end {
        runs.push((0x100, pages.saturating_sub(0x100)));
    } else {
        runs.push((0x100, low_end - 0x100));
        runs.push((0x100000, pages - low_end));
    }
    runs
}

fn in_runs(runs: &[(u64, u64)], pfn: u64) -> bool {
    runs.iter().any(|&(b, c)| pfn >= b && pfn < b + c)
}

struct Layout {
    header_size: u64,
    x64: bool,
}

pub fn write_dump(
    path: &Path,
    format: Format,
    paging: Paging,
    values: &HeaderValues,
    runs: &[(u64, u64)],
    machine: &Machine,
) -> Result<Written, ForgeError> {
    let layout = match paging {
        Paging::X64 => Layout {
            header_size: 0x2000,
            x64: true,
        },
        Paging::X86Pae => Layout {
            header_size: 0x1000,
            x64: false,
        },
    };
    // Full formats store every page of physical memory: they never omit one.
    if format != Format::KernelBitmap && machine.omitted_count() > 0 {
        return Err(ForgeError::Internal(
            "omitted pages need the kernel-bitmap format".into(),
        ));
    }
    for (pfn, _) in machine.pages() {
        if !in_runs(runs, pfn) {
            return Err(ForgeError::Internal(format!(
                "forged page {pfn:#x} lies outside physical memory"
            )));
        }
    }
    let run_pages: u64 = runs.iter().map(|r| r.1).sum();
    let end_pfn = runs.iter().map(|r| r.0 + r.1).max().unwrap_or(0);

    // Where each stored page goes, and the total size.
    let (first_page_offset, stored_pages, bitmap) = match format {
        Format::Full => (layout.header_size, run_pages, None),
        Format::KernelBitmap | Format::FullBitmap => {
            let bits = end_pfn.div_ceil(64) * 64;
            let mut bitmap = vec![0u8; (bits / 8) as usize];
            let mut set = |pfn: u64| {
                if let Some(b) = bitmap.get_mut((pfn / 8) as usize) {
                    *b |= 1 << (pfn % 8);
                }
            };
            let count = if format == Format::FullBitmap {
                for &(b, c) in runs {
                    for pfn in b..b + c {
                        set(pfn);
                    }
                }
                run_pages
            } else {
                for (pfn, _) in machine.stored_pages() {
                    set(pfn);
                }
                machine.page_count() - machine.omitted_count()
            };
            let first = (layout.header_size + 0x38 + bits / 8).div_ceil(PAGE) * PAGE;
            (first, count, Some((bits, bitmap)))
        }
    };
    let file_size = first_page_offset + stored_pages * PAGE;

    let mut header = build_header(&layout, format, values, runs, run_pages, file_size);
    if let Some((bits, bitmap)) = &bitmap {
        let sig: &[u8; 4] = if format == Format::FullBitmap {
            b"FDMP"
        } else {
            b"SDMP"
        };
        let mut sub = vec![0u8; 0x38];
        sub[0..4].copy_from_slice(sig);
        sub[4..8].copy_from_slice(b"DUMP");
        sub[0x20..0x28].copy_from_slice(&first_page_offset.to_le_bytes());
        sub[0x28..0x30].copy_from_slice(&stored_pages.to_le_bytes());
        sub[0x30..0x38].copy_from_slice(&bits.to_le_bytes());
        header.extend_from_slice(&sub);
        header.extend_from_slice(bitmap);
    }

    let mut file =
        std::fs::File::create(path).map_err(|e| ForgeError::Io(path.display().to_string(), e))?;
    let io = |e| ForgeError::Io(path.display().to_string(), e);
    file.set_len(file_size).map_err(io)?;
    file.write_all(&header).map_err(io)?;

    // File offset of each forged page: its rank among the stored pages.
    let offset_of = |pfn: u64, rank_in_machine: u64| -> u64 {
        match format {
            Format::Full | Format::FullBitmap => {
                let mut before = 0;
                for &(b, c) in runs {
                    if pfn >= b && pfn < b + c {
                        return first_page_offset + (before + pfn - b) * PAGE;
                    }
                    before += c;
                }
                first_page_offset // unreachable: checked above
            }
            Format::KernelBitmap => first_page_offset + rank_in_machine * PAGE,
        }
    };
    for (rank, (pfn, data)) in machine.stored_pages().enumerate() {
        if data.iter().all(|b| *b == 0) {
            continue; // a hole in the sparse file reads as zeros
        }
        file.seek(SeekFrom::Start(offset_of(pfn, rank as u64)))
            .map_err(io)?;
        file.write_all(data).map_err(io)?;
    }
    file.flush().map_err(io)?;
    Ok(Written {
        file_size,
        pages_stored: stored_pages,
    })
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn build_header(
    layout: &Layout,
    format: Format,
    v: &HeaderValues,
    runs: &[(u64, u64)],
    run_pages: u64,
    file_size: u64,
) -> Vec<u8> {
    let mut h = vec![0u8; layout.header_size as usize];
    // Unset header bytes hold the "PAGE" filler, as Windows writes them.
    for chunk in h.chunks_mut(4) {
        chunk.copy_from_slice(b"PAGE");
    }
    if layout.x64 {
        put(&mut h, 0x04, b"DU64");
        put(&mut h, 0x08, &0xfu32.to_le_bytes());
        put(&mut h, 0x0c, &v.build.to_le_bytes());
        put(&mut h, 0x10, &v.directory_table_base.to_le_bytes());
        put(&mut h, 0x18, &v.pfn_database.to_le_bytes());
        put(&mut h, 0x20, &v.ps_loaded_module_list.to_le_bytes());
        put(&mut h, 0x28, &v.ps_active_process_head.to_le_bytes());
        put(&mut h, 0x30, &0x8664u32.to_le_bytes());
        put(&mut h, 0x34, &v.processors.to_le_bytes());
        put(&mut h, 0x38, &v.bugcheck_code.to_le_bytes());
        put(&mut h, 0x3c, &0u32.to_le_bytes());
        for (i, p) in v.bugcheck_params.iter().enumerate() {
            put(&mut h, 0x40 + 8 * i, &p.to_le_bytes());
        }
        put(&mut h, 0x80, &v.kd_debugger_data_block.to_le_bytes());
        // PhysicalMemoryBlock: NumberOfRuns, pad, NumberOfPages, runs.
        let mut o = 0x88;
        put(&mut h, o, &(runs.len() as u32).to_le_bytes());
        put(&mut h, o + 4, &0u32.to_le_bytes());
        put(&mut h, o + 8, &run_pages.to_le_bytes());
        o += 0x10;
        for &(b, c) in runs {
            put(&mut h, o, &b.to_le_bytes());
            put(&mut h, o + 8, &c.to_le_bytes());
            o += 0x10;
        }
        // CONTEXT (0x4d0 bytes): zeroed, ContextFlags = CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS.
        put(&mut h, 0x348, &[0u8; 0x4d0]);
        put(&mut h, 0x348 + 0x30, &0x0010_0007u32.to_le_bytes());
        if let Some(c) = &v.context {
            put(&mut h, 0x348, &c[..c.len().min(0x4d0)]);
        }
        // EXCEPTION_RECORD64 (0x98 bytes).
        put(&mut h, 0xf00, &[0u8; 0x98]);
        if let Some(e) = &v.exception {
            put(&mut h, 0xf00, &e[..e.len().min(0x98)]);
        }
        put(&mut h, 0xf98, &format.dump_type().to_le_bytes());
        put(&mut h, 0xf9c, &0u32.to_le_bytes());
        put(&mut h, 0xfa0, &file_size.to_le_bytes());
        put(&mut h, 0xfa8, &v.system_time.to_le_bytes());
        put(&mut h, 0x1030, &v.system_up_time.to_le_bytes());
    } else {
        put(&mut h, 0x04, b"DUMP");
        put(&mut h, 0x08, &0xfu32.to_le_bytes());
        put(&mut h, 0x0c, &v.build.to_le_bytes());
        put(&mut h, 0x10, &(v.directory_table_base as u32).to_le_bytes());
        put(&mut h, 0x14, &(v.pfn_database as u32).to_le_bytes());
        put(
            &mut h,
            0x18,
            &(v.ps_loaded_module_list as u32).to_le_bytes(),
        );
        put(
            &mut h,
            0x1c,
            &(v.ps_active_process_head as u32).to_le_bytes(),
        );
        put(&mut h, 0x20, &0x14cu32.to_le_bytes());
        put(&mut h, 0x24, &v.processors.to_le_bytes());
        put(&mut h, 0x28, &v.bugcheck_code.to_le_bytes());
        for (i, p) in v.bugcheck_params.iter().enumerate() {
            put(&mut h, 0x2c + 4 * i, &(*p as u32).to_le_bytes());
        }
        put(&mut h, 0x5c, &[1, 0, 0, 0]); // PaeEnabled, Spare3
        put(
            &mut h,
            0x60,
            &(v.kd_debugger_data_block as u32).to_le_bytes(),
        );
        let mut o = 0x64;
        put(&mut h, o, &(runs.len() as u32).to_le_bytes());
        put(&mut h, o + 4, &(run_pages as u32).to_le_bytes());
        o += 8;
        for &(b, c) in runs {
            put(&mut h, o, &(b as u32).to_le_bytes());
            put(&mut h, o + 4, &(c as u32).to_le_bytes());
            o += 8;
        }
        // CONTEXT (x86, 0x2cc bytes): ContextFlags = CONTEXT_i386 | CONTROL | INTEGER | SEGMENTS.
        put(&mut h, 0x320, &[0u8; 0x2cc]);
        put(&mut h, 0x320, &0x0001_0007u32.to_le_bytes());
        if let Some(c) = &v.context {
            put(&mut h, 0x320, &c[..c.len().min(0x2cc)]);
        }
        // EXCEPTION_RECORD32 (0x50 bytes).
        put(&mut h, 0x7d0, &[0u8; 0x50]);
        if let Some(e) = &v.exception {
            put(&mut h, 0x7d0, &e[..e.len().min(0x50)]);
        }
        put(&mut h, 0xf88, &format.dump_type().to_le_bytes());
        put(&mut h, 0xf94, &v.product_type.to_le_bytes());
        put(&mut h, 0xfa0, &file_size.to_le_bytes());
        put(&mut h, 0xfb8, &v.system_up_time.to_le_bytes());
        put(&mut h, 0xfc0, &v.system_time.to_le_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_skip_legacy_and_pci_holes() {
        assert_eq!(
            physical_runs(2 << 30),
            vec![(1, 0x9e), (0x100, 0x80000 - 0x100)]
        );
        let r = physical_runs(16 << 30);
        assert_eq!(r[2], (0x100000, 0x400000 - 0xc0000));
        // Total never exceeds the memory size.
        assert!(r.iter().map(|x| x.1).sum::<u64>() <= (16u64 << 30) / PAGE);
    }
}
