//! Page index for dumps whose pages follow one another run after run: DumpType 1 (the run table
//! in the header's PhysicalMemoryBlock) and the RDMP types 8/9/0xA (PFN ranges in the RDMP
//! metadata). Lookup is a binary search over the (few) runs, so no per-page table exists.

use super::bytes::{need, u32_at, u64_at};
use super::DumpError;
use crate::memory::PAGE_SIZE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    base_pfn: u64,
    count: u64,
    /// Index of the run's first page among all stored pages (file order).
    first: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct RunIndex {
    /// Sorted by `base_pfn`, non-overlapping, no empty runs.
    runs: Vec<Run>,
    data_offset: u64,
    total: u64,
    /// Pages whose bytes are wholly in the file: fewer than `total` when the file was cut
    /// short (the writer stopped, a copy or upload broke off).
    in_file: u64,
}

impl RunIndex {
    /// `raw` = (base pfn, page count) in file order; pages start at `data_offset` back to back.
    /// A file that ends before the last page is read as far as it goes (pages past its end are
    /// not stored: [`RunIndex::pages_in_file`]), as WinDbg opens such dumps.
    pub(crate) fn build(
        raw: &[(u64, u64)],
        data_offset: u64,
        file_len: u64,
        what: &'static str,
    ) -> Result<RunIndex, DumpError> {
        let mut runs = Vec::with_capacity(raw.len());
        let mut total = 0u64;
        for (i, &(base_pfn, count)) in raw.iter().enumerate() {
            if !matches!(base_pfn.checked_add(count), Some(end) if end <= 1u64 << 40) {
                return Err(DumpError::malformed(what, format!("run {i} (base page {base_pfn:#x}, {count:#x} pages) exceeds the physical address space")));
            }
            if count > 0 {
                runs.push(Run {
                    base_pfn,
                    count,
                    first: total,
                });
            }
            total = total
                .checked_add(count)
                .ok_or_else(|| DumpError::malformed(what, "page count overflows"))?;
        }
        let bytes = total
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| DumpError::malformed(what, "page count overflows"))?;
        data_offset
            .checked_add(bytes)
            .ok_or_else(|| DumpError::malformed(what, "page data overflows"))?;
        let in_file = (file_len.saturating_sub(data_offset) / PAGE_SIZE).min(total);
        runs.sort_by_key(|r| r.base_pfn);
        for pair in runs.windows(2) {
            if pair[0].base_pfn + pair[0].count > pair[1].base_pfn {
                return Err(DumpError::malformed(
                    what,
                    format!(
                        "runs at page {:#x} and {:#x} overlap",
                        pair[0].base_pfn, pair[1].base_pfn
                    ),
                ));
            }
        }
        Ok(RunIndex {
            runs,
            data_offset,
            total,
            in_file,
        })
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Listed pages whose bytes are in the file.
    pub(crate) fn pages_in_file(&self) -> u64 {
        self.in_file
    }

    pub(crate) fn offset(&self, pfn: u64) -> Option<u64> {
        let i = self
            .runs
            .partition_point(|r| r.base_pfn <= pfn)
            .checked_sub(1)?;
        let r = self.runs.get(i)?;
        let k = pfn - r.base_pfn;
        (k < r.count).then(|| self.data_offset + (r.first + k) * PAGE_SIZE)
    }

    /// Stored page numbers, ascending.
    pub(crate) fn pfns(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs
            .iter()
            .flat_map(|r| r.base_pfn..r.base_pfn + r.count)
    }
}

/// The DumpType 1 run table: `{u32 NumberOfRuns; [pad;] NumberOfPages; runs}` with u64 fields
/// on the 64-bit header and u32 fields on the 32-bit header.
pub(crate) fn parse_run_table(
    data: &[u8],
    at: u64,
    capacity: u64,
    wide: bool,
    data_offset: u64,
) -> Result<RunIndex, DumpError> {
    let w = "run table";
    let n = u64::from(u32_at(data, w, at)?);
    let (pages, runs_at, esize) = if wide {
        (u64_at(data, w, at + 8)?, at + 0x10, 16u64)
    } else {
        (u64::from(u32_at(data, w, at + 4)?), at + 8, 8u64)
    };
    if n == u64::from(super::header::PAGE_FILL32) {
        return Err(DumpError::malformed(
            w,
            "PhysicalMemoryBlock is not set (\"PAGE\" filler)",
        ));
    }
    let max = (capacity - (runs_at - at)) / esize;
    if n > max {
        return Err(DumpError::malformed(
            w,
            format!("NumberOfRuns {n} exceeds the {max} that fit in the header"),
        ));
    }
    need(data, w, runs_at, n * esize)?;
    let mut raw = Vec::with_capacity(n as usize);
    for i in 0..n {
        let e = runs_at + i * esize;
        raw.push(if wide {
            (u64_at(data, w, e)?, u64_at(data, w, e + 8)?)
        } else {
            (
                u64::from(u32_at(data, w, e)?),
                u64::from(u32_at(data, w, e + 4)?),
            )
        });
    }
    let index = RunIndex::build(&raw, data_offset, data.len() as u64, w)?;
    if index.total() != pages {
        return Err(DumpError::malformed(
            w,
            format!(
                "NumberOfPages {pages:#x} but the runs hold {:#x} pages",
                index.total()
            ),
        ));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_file_order_not_pfn_order() {
        // Two runs given out of PFN order: file holds pfn 100..102 first, then pfn 10.
        let idx = RunIndex::build(&[(100, 2), (10, 1)], 0x2000, 0x2000 + 3 * 0x1000, "t").unwrap();
        assert_eq!(idx.offset(100), Some(0x2000));
        assert_eq!(idx.offset(101), Some(0x3000));
        assert_eq!(idx.offset(10), Some(0x4000));
        assert_eq!(idx.offset(11), None);
        assert_eq!(idx.offset(102), None);
        assert_eq!(idx.offset(0), None);
        assert_eq!(idx.pfns().collect::<Vec<_>>(), vec![10, 100, 101]);
    }

    #[test]
    fn overlap_is_an_error_and_a_short_file_is_read_as_far_as_it_goes() {
        assert!(RunIndex::build(&[(0, 4), (2, 1)], 0, 1 << 20, "t")
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        // Four pages listed, one and a half in the file.
        let idx = RunIndex::build(&[(0, 4)], 0x2000, 0x3800, "t").unwrap();
        assert_eq!((idx.total(), idx.pages_in_file()), (4, 1));
        assert_eq!(idx.offset(0), Some(0x2000));
        assert!(RunIndex::build(&[(u64::MAX, 2)], 0, 1 << 20, "t").is_err());
    }
}
