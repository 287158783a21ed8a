//! A structural check of a PDB's container (MSF 7.00) before the `pdb` crate reads it.
//!
//! PDBs reach us from customers (uploads) and from symbol paths: hostile input. The `pdb`
//! crate trusts the container's numbers: a directory or a stream that claims gigabytes is
//! allocated whole before a byte is read, and nothing stops two streams sharing pages. This
//! check reads only the superblock, the directory's block map and the stream directory, with
//! every size bounded by the file's own length and [`MAX_DIRECTORY_BYTES`], and refuses with
//! a reason a file that is truncated, names more streams than its directory can hold, points
//! outside itself, or uses one page twice (a directory that loops back on itself).
//! Memory: the directory plus one bit per page of the file.

use crate::bytes::u32_at;
use std::io::{Read, Seek, SeekFrom};
use thiserror::Error;

/// The MSF 7.00 signature (32 bytes) every PDB since Visual C++ 7 starts with.
pub const MSF7_MAGIC: &[u8; 32] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";
/// The signature of the older MSF 2.00 container (Visual C++ 6 and before).
pub const MSF2_MAGIC: &[u8] = b"Microsoft C/C++ program database 2.00\r\n\x1aJG\0\0";
/// Largest stream directory read (a 4 GiB PDB of 4 KiB pages needs about 4 MiB).
pub const MAX_DIRECTORY_BYTES: u64 = 64 << 20;
/// Most streams a directory may name (large real PDBs have some 10^5: one per module).
pub const MAX_STREAMS: u32 = 1 << 20;
/// Page sizes accepted (powers of two; Microsoft's linkers write 1 KiB to 32 KiB).
const PAGE_SIZES: std::ops::RangeInclusive<u32> = 0x200..=0x10000;
/// The superblock's fields end at 0x34, where the directory's block map list starts.
const SUPERBLOCK_END: u64 = 0x34;

/// Why a file is not a readable MSF 7.00 container.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MsfError {
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("not a PDB (no MSF 7.00 signature)")]
    NotMsf,
    #[error("an MSF 2.00 PDB (Visual C++ 6 or older): not supported")]
    OldMsf,
    #[error("page size {0} is not a power of two between 512 and 65536")]
    PageSize(u32),
    #[error(
        "truncated: the header says {pages} pages of {page_size} bytes, the file holds {len} bytes"
    )]
    Truncated {
        pages: u32,
        page_size: u32,
        len: u64,
    },
    #[error("the stream directory's size {0} bytes is impossible for this file")]
    DirectorySize(u64),
    #[error("the stream directory names {count} streams but holds only {bytes} bytes")]
    StreamCount { count: u32, bytes: u64 },
    #[error("stream {stream} claims {size} bytes, more than the file")]
    StreamSize { stream: u32, size: u32 },
    #[error("the stream directory ends before the page list of stream {0}")]
    DirectoryShort(u32),
    #[error("page {page} is outside the file ({pages} pages)")]
    PageOutOfRange { page: u32, pages: u32 },
    #[error("page {0} is used twice: the stream directory loops back on itself")]
    PageReused(u32),
}

/// What the check learned: enough to say what a PDB holds without the `pdb` crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsfSummary {
    pub page_size: u32,
    pub pages: u32,
    pub streams: u32,
}

/// Checks the MSF container of the file `f` (read from the start; the position is left
/// anywhere).
pub fn check<F: Read + Seek>(f: &mut F) -> Result<MsfSummary, MsfError> {
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    let mut head = [0u8; SUPERBLOCK_END as usize];
    read_at(f, 0, &mut head).map_err(|_| MsfError::NotMsf)?;
    if head.starts_with(MSF2_MAGIC) {
        return Err(MsfError::OldMsf);
    }
    if !head.starts_with(MSF7_MAGIC) {
        return Err(MsfError::NotMsf);
    }
    let sb = Superblock::parse(&head, len)?;
    let mut used = PageSet::new(sb.pages);
    let dir_pages = directory_pages(f, &sb, &mut used)?;
    let dir = read_pages(f, &sb, &dir_pages, sb.dir_bytes)?;
    let streams = check_directory(&dir, &sb, &mut used)?;
    Ok(MsfSummary {
        page_size: sb.page_size,
        pages: sb.pages,
        streams,
    })
}

fn io(e: std::io::Error) -> MsfError {
    MsfError::Io(e.to_string())
}

/// The superblock's numbers, checked against the file's length.
struct Superblock {
    page_size: u32,
    pages: u32,
    dir_bytes: u64,
}

impl Superblock {
    fn parse(head: &[u8], len: u64) -> Result<Superblock, MsfError> {
        let page_size = le32(head, 0x20);
        let pages = le32(head, 0x28);
        let dir_bytes = u64::from(le32(head, 0x2c));
        if !page_size.is_power_of_two() || !PAGE_SIZES.contains(&page_size) {
            return Err(MsfError::PageSize(page_size));
        }
        if u64::from(pages) * u64::from(page_size) > len || pages == 0 {
            return Err(MsfError::Truncated {
                pages,
                page_size,
                len,
            });
        }
        let whole = u64::from(pages) * u64::from(page_size);
        if dir_bytes < 4 || dir_bytes > whole || dir_bytes > MAX_DIRECTORY_BYTES {
            return Err(MsfError::DirectorySize(dir_bytes));
        }
        Ok(Superblock {
            page_size,
            pages,
            dir_bytes,
        })
    }

    fn pages_for(&self, bytes: u64) -> u64 {
        bytes.div_ceil(u64::from(self.page_size))
    }
}

/// The pages holding the stream directory: listed in the block map page(s) whose numbers
/// follow the superblock.
fn directory_pages<F: Read + Seek>(
    f: &mut F,
    sb: &Superblock,
    used: &mut PageSet,
) -> Result<Vec<u32>, MsfError> {
    let dir_pages = sb.pages_for(sb.dir_bytes);
    let map_pages = sb.pages_for(dir_pages * 4);
    if SUPERBLOCK_END + map_pages * 4 > u64::from(sb.page_size) {
        return Err(MsfError::DirectorySize(sb.dir_bytes));
    }
    let mut raw = vec![0u8; (map_pages * 4) as usize];
    read_at(f, SUPERBLOCK_END, &mut raw).map_err(io)?;
    let map: Vec<u32> = raw.chunks_exact(4).map(|c| le32(c, 0)).collect();
    for &p in &map {
        used.claim(p)?;
    }
    let list = read_pages(f, sb, &map, dir_pages * 4)?;
    let pages: Vec<u32> = list.chunks_exact(4).map(|c| le32(c, 0)).collect();
    for &p in &pages {
        used.claim(p)?;
    }
    Ok(pages)
}

/// Walks the directory: stream count, sizes, then every stream's page numbers.
fn check_directory(dir: &[u8], sb: &Superblock, used: &mut PageSet) -> Result<u32, MsfError> {
    let bytes = dir.len() as u64;
    let count = le32(dir, 0);
    if count > MAX_STREAMS || 4 + 4 * u64::from(count) > bytes {
        return Err(MsfError::StreamCount { count, bytes });
    }
    let whole = u64::from(sb.pages) * u64::from(sb.page_size);
    let mut at = 4 + 4 * count as usize;
    for stream in 0..count {
        let size = le32(dir, 4 + 4 * stream as usize);
        if size == u32::MAX {
            continue;
        }
        if u64::from(size) > whole {
            return Err(MsfError::StreamSize { stream, size });
        }
        let n = sb.pages_for(u64::from(size)) as usize;
        let list = dir
            .get(at..at + 4 * n)
            .ok_or(MsfError::DirectoryShort(stream))?;
        for c in list.chunks_exact(4) {
            used.claim(le32(c, 0))?;
        }
        at += 4 * n;
    }
    Ok(count)
}

/// The first `bytes` bytes of the pages `pages`, in order.
fn read_pages<F: Read + Seek>(
    f: &mut F,
    sb: &Superblock,
    pages: &[u32],
    bytes: u64,
) -> Result<Vec<u8>, MsfError> {
    let ps = u64::from(sb.page_size);
    let mut out = vec![0u8; bytes as usize];
    for (i, chunk) in out.chunks_mut(ps as usize).enumerate() {
        let page = *pages.get(i).ok_or(MsfError::DirectorySize(bytes))?;
        read_at(f, u64::from(page) * ps, chunk).map_err(io)?;
    }
    Ok(out)
}

fn read_at<F: Read + Seek>(f: &mut F, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

/// A little-endian u32 field; 0 past the end of `b`.
fn le32(b: &[u8], at: usize) -> u32 {
    u32_at(b, at).unwrap_or(0)
}

/// One bit per page: which pages a stream (or the directory) already uses.
struct PageSet {
    bits: Vec<u64>,
    pages: u32,
}

impl PageSet {
    fn new(pages: u32) -> PageSet {
        PageSet {
            bits: vec![0; (pages as usize).div_ceil(64)],
            pages,
        }
    }

    /// Marks `page` used; page 0 (the superblock) and pages past the end are refused, and so
    /// is a page already used.
    fn claim(&mut self, page: u32) -> Result<(), MsfError> {
        if page == 0 || page >= self.pages {
            return Err(MsfError::PageOutOfRange {
                page,
                pages: self.pages,
            });
        }
        let (word, bit) = ((page / 64) as usize, page % 64);
        let slot = self.bits.get_mut(word).ok_or(MsfError::PageOutOfRange {
            page,
            pages: self.pages,
        })?;
        if *slot & (1 << bit) != 0 {
            return Err(MsfError::PageReused(page));
        }
        *slot |= 1 << bit;
        Ok(())
    }
}

#[cfg(test)]
#[path = "msf_check_tests.rs"]
mod tests;
