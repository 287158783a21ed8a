//! A tiny reader of forged dumps written here from the format description
//! (/work/shared/docs/windows-internals.md), not through the analyzer: header, run table or
//! bitmap, x64 / PAE page walk, and helpers to read lists and strings. Shared by the forge's
//! read-back tests.
#![allow(dead_code)]

use analyzer::symbols::Profile;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The corpus: `$POOLTRIAGE_CORPUS`, else `shared/corpus` beside the repository.
pub fn corpus_dir() -> PathBuf {
    analyzer::test_corpus::corpus("")
}

/// A forged dump, read back independently.
pub struct Reader {
    pub file: File,
    pub x64: bool,
    pub dtb: u64,
    /// pfn -> file offset.
    pub pages: HashMap<u64, u64>,
    pub header: Vec<u8>,
}

pub fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
pub fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
pub fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
pub fn hex(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

impl Reader {
    pub fn open(path: &Path) -> Reader {
        let file = File::open(path).unwrap();
        let mut header = vec![0u8; 0x2000];
        file.read_exact_at(&mut header[..0x1000], 0).unwrap();
        assert_eq!(&header[0..4], b"PAGE");
        let x64 = &header[4..8] == b"DU64";
        if x64 {
            file.read_exact_at(&mut header[0x1000..], 0x1000).unwrap();
        } else {
            assert_eq!(&header[4..8], b"DUMP");
            header.truncate(0x1000);
        }
        let (dtb, dump_type) = if x64 {
            (u64_at(&header, 0x10), u32_at(&header, 0xf98))
        } else {
            (u64::from(u32_at(&header, 0x10)), u32_at(&header, 0xf88))
        };
        let hsize = if x64 { 0x2000u64 } else { 0x1000 };
        let mut pages = HashMap::new();
        match dump_type {
            1 => {
                let mut off = hsize;
                let (n, mut o, step) = if x64 {
                    (u32_at(&header, 0x88), 0x98, 16)
                } else {
                    (u32_at(&header, 0x64), 0x6c, 8)
                };
                for _ in 0..n {
                    let (base, count) = if x64 {
                        (u64_at(&header, o), u64_at(&header, o + 8))
                    } else {
                        (
                            u64::from(u32_at(&header, o)),
                            u64::from(u32_at(&header, o + 4)),
                        )
                    };
                    for i in 0..count {
                        pages.insert(base + i, off);
                        off += 0x1000;
                    }
                    o += step;
                }
            }
            5 => {
                let mut sub = vec![0u8; 0x38];
                file.read_exact_at(&mut sub, hsize).unwrap();
                assert!(&sub[0..4] == b"SDMP" || &sub[0..4] == b"FDMP");
                assert_eq!(&sub[4..8], b"DUMP");
                let first = u64_at(&sub, 0x20);
                let bits = u64_at(&sub, 0x30);
                assert_eq!(bits % 64, 0, "bitmap bit count must be a multiple of 64");
                assert_eq!(first % 0x1000, 0);
                let mut bitmap = vec![0u8; (bits / 8) as usize];
                file.read_exact_at(&mut bitmap, hsize + 0x38).unwrap();
                let mut off = first;
                for pfn in 0..bits {
                    if bitmap[(pfn / 8) as usize] & (1 << (pfn % 8)) != 0 {
                        pages.insert(pfn, off);
                        off += 0x1000;
                    }
                }
                assert_eq!(u64_at(&sub, 0x28), pages.len() as u64, "TotalPresentPages");
            }
            t => panic!("unexpected DumpType {t}"),
        }
        Reader {
            file,
            x64,
            dtb,
            pages,
            header,
        }
    }

    pub fn phys(&self, pa: u64, buf: &mut [u8]) -> bool {
        match self.pages.get(&(pa >> 12)) {
            Some(off) => {
                self.file.read_exact_at(buf, off + (pa & 0xfff)).unwrap();
                true
            }
            None => false,
        }
    }

    pub fn phys_u64(&self, pa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.phys(pa, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// x64 4-level or PAE 3-level walk with 4 KiB pages (the forge uses no large pages).
    /// The page-table entry that maps `va` (valid or not), walking valid upper levels.
    pub fn pte(&self, va: u64) -> Option<u64> {
        let mask = 0x000f_ffff_ffff_f000u64;
        let levels: Vec<(u32, u64)> = if self.x64 {
            vec![(39, 0x1ff), (30, 0x1ff), (21, 0x1ff)]
        } else {
            vec![(30, 0x3), (21, 0x1ff)]
        };
        let mut table = self.dtb & !0x1f;
        for (shift, idx_mask) in levels {
            let e = self.phys_u64(table + ((va >> shift) & idx_mask) * 8)?;
            if e & 1 == 0 {
                return None;
            }
            table = e & mask;
        }
        self.phys_u64(table + ((va >> 12) & 0x1ff) * 8)
    }

    /// x64 4-level or PAE 3-level walk with 4 KiB pages (the forge uses no large pages). A
    /// last-level entry in transition (Valid 0, Prototype 0, Transition 1) still names its
    /// frame, as WinDbg reads it; x64 transition entries may carry the swizzle bit 45, which
    /// is not part of the frame.
    pub fn translate(&self, va: u64) -> Option<u64> {
        let e = self.pte(va)?;
        let frame = if e & 1 == 1 {
            e & 0x000f_ffff_ffff_f000
        } else if e & 0xc00 == 0x800 {
            e & 0x0000_dfff_ffff_f000
        } else {
            return None;
        };
        Some(frame | (va & 0xfff))
    }

    pub fn read(&self, va: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let a = va + done as u64;
            let n = (0x1000 - (a & 0xfff) as usize).min(len - done);
            let pa = self.translate(a)?;
            if !self.phys(pa, &mut out[done..done + n]) {
                return None;
            }
            done += n;
        }
        Some(out)
    }

    pub fn ptr(&self, va: u64) -> u64 {
        let b = self
            .read(va, if self.x64 { 8 } else { 4 })
            .expect("pointer readable");
        if self.x64 {
            u64_at(&b, 0)
        } else {
            u64::from(u32_at(&b, 0))
        }
    }
}

pub fn profile_of(truth: &Value) -> Profile {
    let name = truth["profile"].as_str().unwrap();
    let spec = forge::profiles::find(name).unwrap();
    forge::load_profile(spec, &corpus_dir()).unwrap()
}

/// Walks a LIST_ENTRY ring from `head`, returning the entry addresses (minus `link_offset`);
/// asserts the ring closes on the head both ways.
pub fn walk(r: &Reader, head: u64, link_offset: u64) -> Vec<u64> {
    let p = if r.x64 { 8 } else { 4 };
    let mut out = Vec::new();
    let mut prev = head;
    let mut cur = r.ptr(head);
    while cur != head {
        assert_eq!(r.ptr(cur + p), prev, "Blink of {cur:#x}");
        out.push(cur - link_offset);
        prev = cur;
        cur = r.ptr(cur);
        assert!(out.len() < 1000, "list does not close");
    }
    assert_eq!(r.ptr(head + p), prev, "head Blink");
    out
}

pub fn unicode(r: &Reader, prof: &Profile, at: u64) -> String {
    let len = u16_at(&r.read(at, 2).unwrap(), 0) as usize;
    let buf = r.ptr(at + prof.offset("_UNICODE_STRING", "Buffer").unwrap());
    let raw = r.read(buf, len).unwrap();
    String::from_utf16(
        &raw.chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<_>>(),
    )
    .unwrap()
}
