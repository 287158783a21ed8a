//! Memory made of the fuzzer's bytes, for the walkers that read a kernel address space (pool
//! big pages, segment heap, sessions): a list of records `address: u64, length: u16, bytes`,
//! each written into zero-filled 4 KiB pages. A page no record touches is not mapped (virtual)
//! or not in the dump (physical), as in a real dump. Seeds are written with [`Builder`].

use analyzer::memory::{MemoryError, PhysicalMemory, VirtualMemory, PAGE_SIZE};
use std::collections::BTreeMap;

/// Most pages one input may map: the walkers' own bounds are what is tested, not the host's
/// memory.
pub const MAX_PAGES: usize = 512;

pub struct Sparse {
    pages: BTreeMap<u64, Vec<u8>>,
    pointer_size: u8,
}

impl Sparse {
    /// Reads the records of `data`; a record cut short keeps the bytes it has.
    pub fn parse(data: &[u8], pointer_size: u8) -> Sparse {
        let mut s = Sparse {
            pages: BTreeMap::new(),
            pointer_size,
        };
        let mut rest = data;
        while rest.len() >= 10 {
            let addr = crate::le(rest, 0, 8);
            let len = (crate::le(rest, 8, 2) as usize).min(rest.len() - 10);
            let (bytes, next) = rest[10..].split_at(len);
            if !s.write(addr, bytes) {
                break;
            }
            rest = next;
        }
        s
    }

    /// Writes `bytes` at `addr`; `false` once the page budget is spent.
    fn write(&mut self, addr: u64, bytes: &[u8]) -> bool {
        for (i, &b) in bytes.iter().enumerate() {
            let a = addr.wrapping_add(i as u64);
            let key = a & !(PAGE_SIZE - 1);
            if !self.pages.contains_key(&key) && self.pages.len() >= MAX_PAGES {
                return false;
            }
            let page = self
                .pages
                .entry(key)
                .or_insert_with(|| vec![0u8; PAGE_SIZE as usize]);
            page[(a & (PAGE_SIZE - 1)) as usize] = b;
        }
        true
    }
}

impl VirtualMemory for Sparse {
    /// Copies page by page; the first byte on a page no record wrote is reported unmapped.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va
                .checked_add(done as u64)
                .ok_or(MemoryError::AddressOverflow { addr: va })?;
            let off = (a & (PAGE_SIZE - 1)) as usize;
            let page = self
                .pages
                .get(&(a - off as u64))
                .ok_or(MemoryError::NotMapped { va: a })?;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }
    fn pointer_size(&self) -> u8 {
        self.pointer_size
    }
}

impl PhysicalMemory for Sparse {
    fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.pages
            .get(&pfn.checked_mul(PAGE_SIZE)?)
            .map(Vec::as_slice)
    }
}

/// Writes the records of a seed.
#[derive(Default)]
pub struct Builder {
    pub out: Vec<u8>,
}

impl Builder {
    pub fn new(params: &[u8]) -> Builder {
        Builder {
            out: params.to_vec(),
        }
    }
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> &mut Self {
        for (i, chunk) in bytes.chunks(u16::MAX as usize).enumerate() {
            self.out
                .extend_from_slice(&(addr + (i * u16::MAX as usize) as u64).to_le_bytes());
            self.out
                .extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            self.out.extend_from_slice(chunk);
        }
        self
    }
    pub fn u16(&mut self, addr: u64, v: u16) -> &mut Self {
        self.write(addr, &v.to_le_bytes())
    }
    pub fn u32(&mut self, addr: u64, v: u32) -> &mut Self {
        self.write(addr, &v.to_le_bytes())
    }
    pub fn u64(&mut self, addr: u64, v: u64) -> &mut Self {
        self.write(addr, &v.to_le_bytes())
    }
}
