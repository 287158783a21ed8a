//! Big allocations (a page or more) from `PoolBigPageTable` (`PoolBigPageTableSize` entries),
//! like `!poolused`'s big-page part and Volatility's `windows.bigpools`.
//!
//! Entry layouts (`_POOL_TRACKER_BIG_PAGES`): XP x86 12 bytes `{Va, Key, NumberOfPages}`;
//! Vista+ `{Va, Key, PoolType, NumberOfBytes}` (x86 0x10, x64 0x18); Windows 10 x64 0x18 with
//! PoolType a 12-bit field beside Pattern and SlushSize; 20348+ 0x20 with ProcessBilled. A free
//! slot has bit 0 of Va set (POOL_BIG_TABLE_ENTRY_FREE); a slot never used has key 0.

use super::layout::{table_profile, FieldSpec, LayoutSource};
use super::tag::Tag;
use super::types::{PoolKind, PoolType};
use super::{hex, hex_opt, KernelContext, PoolError};
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::symbols::Profile;
use serde::Serialize;

/// Most big-page entries read. Windows grows the table with use (it starts at a few thousand
/// entries); eight million is far past any real system and bounds the report.
pub const MAX_BIG_ENTRIES: u64 = 1 << 23;
const CHUNK_ENTRIES: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigPageLayout {
    pub size: u64,
    pub va: FieldSpec,
    pub key: FieldSpec,
    pub pool_type: Option<FieldSpec>,
    pub number_of_bytes: Option<FieldSpec>,
    /// XP only: size in pages instead of bytes.
    pub number_of_pages: Option<FieldSpec>,
    /// 20348+.
    pub process_billed: Option<FieldSpec>,
    pub source: LayoutSource,
}

impl BigPageLayout {
    pub fn from_profile(profile: &Profile, pointer_size: u8) -> Option<BigPageLayout> {
        const T: &str = "_POOL_TRACKER_BIG_PAGES";
        let size = profile.type_size(T)?;
        let f = |name, width| FieldSpec::from_profile(profile, T, name, width);
        let l = BigPageLayout {
            size,
            va: f("Va", pointer_size)?,
            key: f("Key", 4)?,
            pool_type: f("PoolType", 4),
            number_of_bytes: f("NumberOfBytes", pointer_size),
            number_of_pages: f("NumberOfPages", 4),
            process_billed: f("ProcessBilled", pointer_size),
            source: LayoutSource::Profile,
        };
        let sized = l.number_of_bytes.is_some() || l.number_of_pages.is_some();
        let all = [
            Some(l.va),
            Some(l.key),
            l.pool_type,
            l.number_of_bytes,
            l.number_of_pages,
            l.process_billed,
        ];
        (sized && all.iter().flatten().all(|f| f.end() <= size)).then_some(l)
    }

    /// Built-in layouts: from the built-in table of kernel layouts (ntkrnlpa.pdb; 7601, 17763,
    /// 19041, 20348), by era: XP 12-byte entries, Vista to 8.1 x64 0x18 with a plain PoolType,
    /// Windows 10 x64 0x18 with PoolType a bitfield, 20348+ 0x20 with ProcessBilled. The table
    /// has no Vista+ x86 kernel: that entry (0x10: Va, Key, PoolType, NumberOfBytes) is the
    /// Windows 10 definition with 32-bit pointers, written here.
    pub fn built_in(pointer_size: u8, build: u32) -> Option<BigPageLayout> {
        if pointer_size == 4 && build >= 6000 {
            let p = FieldSpec::plain;
            return Some(BigPageLayout {
                size: 0x10,
                va: p(0, 4),
                key: p(4, 4),
                pool_type: Some(p(8, 4)),
                number_of_bytes: Some(p(0xc, 4)),
                number_of_pages: None,
                process_billed: None,
                source: LayoutSource::BuiltIn,
            });
        }
        let era = match (pointer_size, build) {
            (4, _) => 0..6000,
            (_, 0..=10239) => 0..10240,
            (_, 10240..=20347) => 10240..20348,
            _ => 20348..u32::MAX,
        };
        let p = table_profile(pointer_size, build, era)?;
        BigPageLayout::from_profile(&p, pointer_size).map(|l| BigPageLayout {
            source: LayoutSource::BuiltIn,
            ..l
        })
    }

    /// The profile's layout, else the built-in one; `None` when neither has one.
    pub fn for_kernel(ctx: &KernelContext) -> Option<BigPageLayout> {
        ctx.profile
            .and_then(|p| BigPageLayout::from_profile(p, ctx.pointer_size))
            .or_else(|| BigPageLayout::built_in(ctx.pointer_size, ctx.build))
    }
}

/// One big allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BigPage {
    #[serde(serialize_with = "hex")]
    pub va: u64,
    pub tag: Tag,
    pub size: u64,
    /// `None` on XP, whose entries have no pool type.
    pub pool_type: Option<PoolType>,
    /// The pool: from the pool type, else (XP) from the pool range holding `va` when the
    /// caller knows the ranges, else unknown.
    pub pool: PoolKind,
    /// 20348+: the entry's ProcessBilled as stored.
    #[serde(serialize_with = "hex_opt")]
    pub process_billed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BigPages {
    /// In table order.
    pub entries: Vec<BigPage>,
    #[serde(serialize_with = "hex")]
    pub table: u64,
    pub table_size: u64,
    /// Slots marked free (Va bit 0) that still had a key.
    pub free: u64,
    /// Slots whose memory is not in the dump.
    pub unreadable: u64,
    pub layout_source: LayoutSource,
}

/// Reads the big page table. Needs the profile for where the table is (the debugger data
/// block does not say).
pub fn read_big_pages(mem: &dyn VirtualMemory, ctx: &KernelContext) -> Result<BigPages, PoolError> {
    let missing = |what| PoolError::Missing {
        what,
        why: "needs the kernel's symbols (a PDB or ISF)".into(),
    };
    let layout =
        BigPageLayout::for_kernel(ctx).ok_or_else(|| missing("_POOL_TRACKER_BIG_PAGES layout"))?;
    let var = ctx
        .global("PoolBigPageTable")
        .ok_or_else(|| missing("PoolBigPageTable"))?;
    let size_var = ctx
        .global("PoolBigPageTableSize")
        .ok_or_else(|| missing("PoolBigPageTableSize"))?;
    let table = mem.read_ptr(var).map_err(|source| PoolError::Memory {
        what: "PoolBigPageTable",
        va: var,
        source,
    })?;
    let n = mem.read_ptr(size_var).map_err(|source| PoolError::Memory {
        what: "PoolBigPageTableSize",
        va: size_var,
        source,
    })?;
    read_big_table(mem, layout, "PoolBigPageTableSize", table, n)
}

/// Reads `n` entries of a big page table at `table` (PoolBigPageTable, or a session's
/// MM_SESSION_SPACE.PoolTrackBigPages, whose entries have the same layout: ExGetBigPoolInfo
/// copies either with the same code).
pub(super) fn read_big_table(
    mem: &dyn VirtualMemory,
    layout: BigPageLayout,
    what: &'static str,
    table: u64,
    n: u64,
) -> Result<BigPages, PoolError> {
    if n > MAX_BIG_ENTRIES {
        return Err(PoolError::Implausible {
            what,
            value: n,
            limit: MAX_BIG_ENTRIES,
        });
    }
    let mut out = BigPages {
        entries: Vec::new(),
        table,
        table_size: n,
        free: 0,
        unreadable: 0,
        layout_source: layout.source,
    };
    super::entries::for_each_entry(
        mem,
        table,
        n,
        layout.size,
        CHUNK_ENTRIES,
        &mut |e| match e {
            Some(e) => decode(&layout, e, &mut out),
            None => out.unreadable += 1,
        },
    );
    Ok(out)
}

fn decode(l: &BigPageLayout, e: &[u8], out: &mut BigPages) {
    let va = l.va.read(e).unwrap_or(0);
    let key = l.key.read(e).unwrap_or(0) as u32;
    if key == 0 || va == 0 {
        return;
    }
    if va & 1 != 0 {
        out.free += 1;
        return;
    }
    let size = match (l.number_of_bytes, l.number_of_pages) {
        (Some(f), _) => f.read(e).unwrap_or(0),
        (None, Some(f)) => f.read(e).unwrap_or(0).saturating_mul(PAGE_SIZE),
        (None, None) => 0,
    };
    let pool_type = l
        .pool_type
        .and_then(|f| f.read(e))
        .map(|v| PoolType::from_pool_type(v as u32));
    out.entries.push(BigPage {
        va,
        tag: Tag::from_u32(key),
        size,
        pool_type,
        pool: pool_type.map_or(PoolKind::Unknown, |t| t.kind),
        process_billed: l.process_billed.and_then(|f| f.read(e)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::testmem::*;

    /// Memory that counts the reads made of it.
    struct Counting<'a>(&'a dyn VirtualMemory, std::cell::Cell<u64>);

    impl VirtualMemory for Counting<'_> {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::memory::MemoryError> {
            self.1.set(self.1.get() + 1);
            self.0.read(va, buf)
        }
        fn pointer_size(&self) -> u8 {
            self.0.pointer_size()
        }
    }

    /// A table size of millions whose entries the dump does not hold costs a read per page,
    /// not one per entry (`pool::entries`; found by the session fuzz target: 5.6 million entries
    /// took seconds).
    /// An entry on a page that is there is still read, even after a page that was not.
    #[test]
    fn an_unreadable_table_is_skipped_a_page_at_a_time() {
        let t = 0xffff_c000_0050_0000_u64;
        let n = 1u64 << 18;
        let mut img = Image::new(8);
        // The last page of the table is in the dump, with one entry.
        let es = 0x18u64;
        let last = (t + (n - 1) * es) & !0xfff;
        let i = (last - t).div_ceil(es);
        img.u64(t + i * es, 0xffff_c000_1000_0000);
        img.write(t + i * es + 8, b"Last");
        img.u64(t + i * es + 0x10, 0x1000);
        let mem = Counting(img.memory(), std::cell::Cell::new(0));
        let layout = BigPageLayout::built_in(8, 19041).unwrap();
        let b = read_big_table(&mem, layout, "test", t, n).unwrap();
        assert_eq!(b.entries.len(), 1);
        assert_eq!(b.entries[0].tag, Tag(*b"Last"));
        assert!(b.unreadable >= n - (0x1000 / es) - 1, "{}", b.unreadable);
        let pages = n * es / 0x1000;
        assert!(
            mem.1.get() < 4 * pages,
            "{} reads for {pages} pages",
            mem.1.get()
        );
    }

    const KB64: u64 = 0xffff_f800_1000_0000;
    const KB32: u64 = 0x8040_0000;

    fn ctx(p: Option<&Profile>, ptr: u8, build: u32, kb: u64) -> KernelContext<'_> {
        KernelContext {
            kernel_base: kb,
            pointer_size: ptr,
            build,
            processors: 1,
            profile: p,
        }
    }

    /// Windows 10 entries (19041 ISF, 0x18 bytes): Va u64@0, Key u32@8, the u32@0xc with
    /// Pattern:8 PoolType:12 SlushSize:12, NumberOfBytes u64@0x10.
    #[test]
    fn win10_bitfield_pool_type_free_and_unused_slots() {
        for (guid, build, esize) in [(W19041, 19041, 0x18u64), (W20348, 20348, 0x20)] {
            let p = isf(guid);
            assert_eq!(p.type_size("_POOL_TRACKER_BIG_PAGES"), Some(esize));
            let mut img = Image::new(8);
            let t = 0xffff_c000_0050_0000_u64;
            img.u64(KB64 + p.global("PoolBigPageTable").unwrap(), t);
            img.u64(KB64 + p.global("PoolBigPageTableSize").unwrap(), 4);
            // 0: paged (PoolType 1) "Leak" 64 KiB; pattern byte 0x5a and slush 0x123 around it.
            img.u64(t, 0xffff_c000_1000_0000);
            img.write(t + 8, b"Leak");
            img.u32(t + 0xc, 0x5a | (1 << 8) | (0x123 << 20));
            img.u64(t + 0x10, 0x10000);
            // 1: freed (Va bit 0) but still keyed.
            img.u64(t + esize, 0xffff_c000_2000_0001);
            img.write(t + esize + 8, b"Gone");
            // 2: never used (key 0).
            // 3: NonPagedPoolNx (0x200) "Nx  " 8 KiB.
            let e = t + 3 * esize;
            img.u64(e, 0xffff_c000_3000_0000);
            img.write(e + 8, b"Nx  ");
            img.u32(e + 0xc, 0x200 << 8);
            img.u64(e + 0x10, 0x2000);
            if build >= 20348 {
                img.u64(e + 0x18, 0xffff_b000_0000_0080);
            }
            let mem = img.memory();
            let b = read_big_pages(mem, &ctx(Some(&p), 8, build, KB64)).unwrap();
            assert_eq!(b.layout_source, LayoutSource::Profile);
            assert_eq!(
                (b.free, b.unreadable, b.entries.len()),
                (1, 0, 2),
                "{build}"
            );
            let leak = b.entries[0];
            assert_eq!(
                (leak.va, leak.tag, leak.size),
                (0xffff_c000_1000_0000, Tag(*b"Leak"), 0x10000)
            );
            assert_eq!(leak.pool_type.unwrap().kind, PoolKind::Paged);
            let nx = b.entries[1];
            assert_eq!(
                (
                    nx.size,
                    nx.pool_type.unwrap().raw,
                    nx.pool_type.unwrap().kind
                ),
                (0x2000, 0x200, PoolKind::Nonpaged)
            );
            assert_eq!(
                nx.process_billed,
                (build >= 20348).then_some(0xffff_b000_0000_0080)
            );
            // The built-in layout is the ISF's, field by field.
            let bi = BigPageLayout {
                source: LayoutSource::Profile,
                ..BigPageLayout::built_in(8, build).unwrap()
            };
            assert_eq!(Some(bi), BigPageLayout::from_profile(&p, 8), "{build}");
        }
    }

    /// Windows 7 x64 (7601 ISF): PoolType a plain ULONG at 0xc.
    #[test]
    fn win7_plain_pool_type() {
        let p = isf(W7601);
        let mut img = Image::new(8);
        let t = 0xffff_fa80_0200_0000_u64;
        img.u64(KB64 + p.global("PoolBigPageTable").unwrap(), t);
        img.u64(KB64 + p.global("PoolBigPageTableSize").unwrap(), 1);
        img.u64(t, 0xffff_f8a0_0123_4000);
        img.write(t + 8, b"CM31");
        img.u32(t + 0xc, 0x21); // PagedPoolSession
        img.u64(t + 0x10, 0x3000);
        let mem = img.memory();
        let b = read_big_pages(mem, &ctx(Some(&p), 8, 7601, KB64)).unwrap();
        assert_eq!(b.entries.len(), 1);
        let pt = b.entries[0].pool_type.unwrap();
        assert_eq!(
            (pt.kind, pt.session, b.entries[0].size),
            (PoolKind::Paged, true, 0x3000)
        );
        let l = BigPageLayout::from_profile(&p, 8).unwrap();
        let bi = BigPageLayout::built_in(8, 7601).unwrap();
        assert_eq!(
            (l.size, l.va, l.key, l.pool_type, l.number_of_bytes),
            (bi.size, bi.va, bi.key, bi.pool_type, bi.number_of_bytes)
        );
    }

    /// XP x86 (ntkrnlpa.pdb): 12-byte entries {Va, Key, NumberOfPages}; one entry sits on a page
    /// that is not in the dump.
    #[test]
    fn xp_pages_not_bytes_and_missing_entries() {
        let p = xp_pdb();
        assert_eq!(p.type_size("_POOL_TRACKER_BIG_PAGES"), Some(0xc));
        let mut img = Image::new(4);
        let t = 0x8200_0ff4_u64; // entry 1 starts at 0x82001000, on a page we leave out
        img.u32(KB32 + p.global("PoolBigPageTable").unwrap(), t as u32);
        img.u32(KB32 + p.global("PoolBigPageTableSize").unwrap(), 2);
        img.u32(t, 0x8234_5000);
        img.write(t + 4, b"Ntfx");
        img.u32(t + 8, 3);
        let mem = img.memory();
        let b = read_big_pages(mem, &ctx(Some(&p), 4, 2600, KB32)).unwrap();
        assert_eq!((b.entries.len(), b.unreadable), (1, 1));
        assert_eq!(
            (b.entries[0].va, b.entries[0].size, b.entries[0].pool_type),
            (0x8234_5000, 0x3000, None)
        );
        assert_eq!(
            b.entries[0].pool,
            PoolKind::Unknown,
            "XP entries record no pool"
        );
        assert_eq!(BigPageLayout::built_in(4, 2600).unwrap().size, 0xc);
    }

    #[test]
    fn built_in_layouts_by_era() {
        let l = |ptr, build| BigPageLayout::built_in(ptr, build).unwrap();
        assert_eq!(
            (l(4, 7601).size, l(4, 7601).number_of_bytes),
            (0x10, Some(FieldSpec::plain(0xc, 4)))
        );
        assert_eq!(
            l(8, 9600).pool_type,
            Some(FieldSpec::plain(0xc, 4)),
            "8.1: plain PoolType"
        );
        assert_eq!(
            l(8, 10586).pool_type,
            Some(FieldSpec::bitfield(0xc, 4, 8, 12)),
            "Windows 10 before the first table build: PoolType a bitfield"
        );
        assert_eq!(
            (l(8, 22621).size, l(8, 22621).process_billed.is_some()),
            (0x20, true)
        );
        assert_eq!(l(8, 19041).source, LayoutSource::BuiltIn);
    }

    #[test]
    fn needs_symbols_and_refuses_absurd_sizes() {
        let p = isf(W17763);
        let mut img = Image::new(8);
        img.u64(KB64 + p.global("PoolBigPageTableSize").unwrap(), u64::MAX);
        img.u64(KB64 + p.global("PoolBigPageTable").unwrap(), 0x1000);
        let mem = img.memory();
        assert!(matches!(
            read_big_pages(mem, &ctx(Some(&p), 8, 17763, KB64)),
            Err(PoolError::Implausible { .. })
        ));
        assert!(matches!(
            read_big_pages(mem, &ctx(None, 8, 17763, KB64)),
            Err(PoolError::Missing { .. })
        ));
    }
}
