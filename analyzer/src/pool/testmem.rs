//! Test helper: a sparse kernel address space built by hand, page by page. Pages never written
//! are not captured, so reading them fails as a page missing from a dump does.

use crate::memory::BlockMemory;
use std::collections::BTreeMap;

pub struct Image {
    pub pointer_size: u8,
    pages: BTreeMap<u64, Vec<u8>>,
}

impl Image {
    pub fn new(pointer_size: u8) -> Image {
        Image { pointer_size, pages: BTreeMap::new() }
    }

    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let a = va + i as u64;
            let page = self.pages.entry(a & !0xfff).or_insert_with(|| vec![0u8; 0x1000]);
            page[(a & 0xfff) as usize] = b;
        }
    }
    pub fn u16(&mut self, va: u64, v: u16) {
        self.write(va, &v.to_le_bytes());
    }
    pub fn u32(&mut self, va: u64, v: u32) {
        self.write(va, &v.to_le_bytes());
    }
    pub fn u64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }
    pub fn ptr(&mut self, va: u64, v: u64) {
        if self.pointer_size == 4 {
            self.u32(va, v as u32)
        } else {
            self.u64(va, v)
        }
    }
    /// Makes a zero-filled page present.
    pub fn touch(&mut self, va: u64) {
        self.pages.entry(va & !0xfff).or_insert_with(|| vec![0u8; 0x1000]);
    }
    pub fn memory(&self) -> BlockMemory<'_> {
        BlockMemory::new(self.pages.iter().map(|(va, b)| (*va, &b[..])).collect(), self.pointer_size)
    }
}

pub fn corpus(rel: &str) -> String {
    format!("{}/../../shared/corpus/{rel}", env!("CARGO_MANIFEST_DIR"))
}

pub fn isf(guid_age: &str) -> crate::symbols::Profile {
    crate::symbols::Profile::from_isf(corpus(&format!("isf/ntkrnlmp.pdb/{guid_age}.json.xz"))).unwrap()
}

pub fn xp_pdb() -> crate::symbols::Profile {
    crate::symbols::Profile::from_pdb(corpus("pdb/ntkrnlpa.pdb")).unwrap()
}

pub const W7601: &str = "339E74133576439CBCDF7E0229DA3773-1";
pub const W17763: &str = "8B11040A5928757B11390AC78F6B6925-1";
pub const W19041: &str = "5278AFF86C341677D7D7835C85B7B844-1";
pub const W20348: &str = "C2EADB24A615E9472CE47C8ADD31F130-1";
