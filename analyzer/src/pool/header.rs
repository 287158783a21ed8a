//! POOL_HEADER, the 8-byte (x86) or 16-byte (x64) header in front of every classic pool block.
//!
//! x86 (XP to 8.1): `PreviousSize:9 PoolIndex:7` in the first USHORT, `BlockSize:9 PoolType:7`
//! in the second, then the tag; sizes in 8-byte units. x64: `PreviousSize:8 PoolIndex:8
//! BlockSize:8 PoolType:8` in one ULONG, the tag, then ProcessBilled (or the back-trace index);
//! sizes in 16-byte units. The field positions are read from the profile's `_POOL_HEADER`
//! (a PDB gives the x86 fields as 9/7-bit fields of USHORTs at 0 and 2, an ISF the x64 ones as
//! 8-bit fields of the ULONG at 0, or of the USHORT at 2 on Windows 10): both are handled, as
//! [`FieldSpec`] reads "bits of the integer at this offset".

use super::layout::{table_profile, FieldSpec, LayoutSource};
use super::tag::Tag;
use super::types::PoolType;
use crate::symbols::Profile;

/// Where the fields of a POOL_HEADER are, and how big its units are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLayout {
    /// sizeof(POOL_HEADER): 8 on x86, 16 on x64. Also the unit of BlockSize and PreviousSize.
    pub size: u64,
    pub previous_size: FieldSpec,
    pub pool_index: FieldSpec,
    pub block_size: FieldSpec,
    pub pool_type: FieldSpec,
    pub pool_tag: FieldSpec,
    /// x64 only: the quota-charged process (encoded on Windows 8+, see `vm`). On x86 the
    /// charged process is the last pointer of the block instead.
    pub process_billed: Option<FieldSpec>,
    /// XP/2003: PoolType holds `POOL_TYPE + 1`; later: the type with an in-use bit.
    pub pre_vista: bool,
    pub source: LayoutSource,
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolHeader {
    /// In units of [`HeaderLayout::size`].
    pub previous_size: u32,
    pub pool_index: u32,
    /// In units of [`HeaderLayout::size`]; the block's size including its header.
    pub block_size: u32,
    pub pool_type: PoolType,
    pub tag: Tag,
    /// The raw ProcessBilled field (x64), whatever the pool type says.
    pub process_billed: Option<u64>,
}

impl HeaderLayout {
    /// The layout from the profile's `_POOL_HEADER`, if it has the fields we need and a size
    /// that is a header's (8 or 16).
    pub fn from_profile(profile: &Profile, build: u32) -> Option<HeaderLayout> {
        const T: &str = "_POOL_HEADER";
        let size = profile.type_size(T)?;
        if size != 8 && size != 16 {
            return None;
        }
        let f = |name, width| FieldSpec::from_profile(profile, T, name, width);
        let layout = HeaderLayout {
            size,
            previous_size: f("PreviousSize", 1)?,
            pool_index: f("PoolIndex", 1).unwrap_or(FieldSpec::plain(0, 0)),
            block_size: f("BlockSize", 1)?,
            pool_type: f("PoolType", 1)?,
            pool_tag: f("PoolTag", 4)?,
            process_billed: if size == 16 {
                f("ProcessBilled", 8)
            } else {
                None
            },
            pre_vista: build < 6000,
            source: LayoutSource::Profile,
        };
        // Every field must lie inside the header.
        let fields = [
            layout.previous_size,
            layout.block_size,
            layout.pool_type,
            layout.pool_tag,
        ];
        fields.iter().all(|f| f.end() <= size).then_some(layout)
    }

    /// The built-in layout for a pointer size, from the built-in table of kernel layouts (the
    /// header is the same on every classic-pool build of a pointer size: XP to 8.1 on x86,
    /// Vista to 10 on x64, per the ntkrnlpa.pdb and ntkrnlmp ISFs). `None` only if that table
    /// has no kernel of this pointer size (it has x86 and x64 ones: tested).
    pub fn built_in(pointer_size: u8, build: u32) -> Option<HeaderLayout> {
        let p = table_profile(pointer_size, build, 0..u32::MAX)?;
        HeaderLayout::from_profile(&p, build)
            .filter(|l| (l.size == 16) == (pointer_size == 8))
            .map(|l| HeaderLayout {
                source: LayoutSource::BuiltIn,
                ..l
            })
    }

    /// The profile's layout when it has one, else the built-in one.
    ///
    /// Without either (a pointer size the table has no kernel of), a layout that decodes no
    /// header: every block walk then finds nothing rather than guessing.
    pub fn for_kernel(profile: Option<&Profile>, pointer_size: u8, build: u32) -> HeaderLayout {
        profile
            .and_then(|p| HeaderLayout::from_profile(p, build))
            .filter(|l| (l.size == 16) == (pointer_size == 8))
            .or_else(|| HeaderLayout::built_in(pointer_size, build))
            .unwrap_or(HeaderLayout::NONE)
    }

    /// Decodes nothing: every field lies past any header.
    const NONE: HeaderLayout = HeaderLayout {
        size: 16,
        previous_size: FieldSpec::plain(u64::MAX >> 1, 1),
        pool_index: FieldSpec::plain(u64::MAX >> 1, 1),
        block_size: FieldSpec::plain(u64::MAX >> 1, 1),
        pool_type: FieldSpec::plain(u64::MAX >> 1, 1),
        pool_tag: FieldSpec::plain(u64::MAX >> 1, 4),
        process_billed: None,
        pre_vista: false,
        source: LayoutSource::BuiltIn,
    };

    /// Decodes one header from at least [`HeaderLayout::size`] bytes.
    pub fn decode(&self, bytes: &[u8]) -> Option<PoolHeader> {
        let small = |f: FieldSpec| f.read(bytes).map(|v| v as u32);
        Some(PoolHeader {
            previous_size: small(self.previous_size)?,
            pool_index: small(self.pool_index).unwrap_or(0),
            block_size: small(self.block_size)?,
            pool_type: PoolType::from_header_field(small(self.pool_type)?, self.pre_vista),
            tag: Tag::from_u32(small(self.pool_tag)?),
            process_billed: self.process_billed.and_then(|f| f.read(bytes)),
        })
    }

    /// Bytes in `units` header units.
    pub fn bytes(&self, units: u32) -> u64 {
        u64::from(units) * self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::types::PoolKind;

    fn corpus(rel: &str) -> String {
        crate::test_corpus::corpus_str(rel)
    }

    /// An x86 header as the XP kernel writes it (WRK pool.c): PreviousSize 3, PoolIndex 1,
    /// BlockSize 5 (40 bytes), PoolType PagedPool+1 = 2, tag "Leak".
    /// Bits of USHORT 0: 3 | 1 << 9 = 0x0203; USHORT 2: 5 | 2 << 9 = 0x0405.
    const X86: [u8; 8] = [0x03, 0x02, 0x05, 0x04, b'L', b'e', b'a', b'k'];

    /// An x64 (Vista+) header: ULONG 0 = PreviousSize 2 | PoolIndex 0 << 8 | BlockSize 4 << 16 |
    /// PoolType (NonPagedPool|quota 8, in-use bit 2) = 0x0a << 24 = 0x0a04_0002; tag "Proc";
    /// ProcessBilled 0xffff_e000_1234_5678.
    const X64: [u8; 16] = [
        0x02, 0x00, 0x04, 0x0a, b'P', b'r', b'o', b'c', 0x78, 0x56, 0x34, 0x12, 0x00, 0xe0, 0xff,
        0xff,
    ];

    fn check_x86(h: PoolHeader) {
        assert_eq!((h.previous_size, h.pool_index, h.block_size), (3, 1, 5));
        assert_eq!(h.pool_type.kind, PoolKind::Paged);
        assert_eq!(h.tag, Tag(*b"Leak"));
        assert_eq!(h.process_billed, None);
    }

    fn check_x64(h: PoolHeader) {
        assert_eq!((h.previous_size, h.pool_index, h.block_size), (2, 0, 4));
        assert_eq!(
            (h.pool_type.kind, h.pool_type.quota),
            (PoolKind::Nonpaged, true)
        );
        assert_eq!(h.tag, Tag(*b"Proc"));
        assert_eq!(h.process_billed, Some(0xffff_e000_1234_5678));
    }

    #[test]
    fn built_in_layouts_decode_hand_made_headers() {
        let l86 = HeaderLayout::built_in(4, 2600).unwrap();
        check_x86(l86.decode(&X86).unwrap());
        assert_eq!(l86.bytes(5), 40);
        let l64 = HeaderLayout::built_in(8, 7601).unwrap();
        check_x64(l64.decode(&X64).unwrap());
        assert_eq!(l64.bytes(4), 64);
        assert_eq!(l64.decode(&X64[..8]).map(|h| h.process_billed), Some(None));
        assert_eq!(l64.decode(&X64[..3]), None);
    }

    #[test]
    fn built_in_layouts_for_builds_the_table_lacks() {
        let vista86 = HeaderLayout::built_in(4, 6002).unwrap();
        assert_eq!((vista86.size, vista86.pre_vista), (8, false));
        check_x86(
            HeaderLayout::built_in(4, 3790)
                .unwrap()
                .decode(&X86)
                .unwrap(),
        );
        let w11 = HeaderLayout::for_kernel(None, 8, 22621);
        assert_eq!((w11.size, w11.source), (16, LayoutSource::BuiltIn));
        check_x64(w11.decode(&X64).unwrap());
        // No kernel of that pointer size in the table: nothing decodes.
        assert_eq!(HeaderLayout::for_kernel(None, 2, 19041).decode(&X64), None);
    }

    #[test]
    fn xp_pdb_layout_decodes_like_the_built_in_one() {
        let p = Profile::from_pdb(corpus("pdb/ntkrnlpa.pdb")).unwrap();
        let l = HeaderLayout::from_profile(&p, 2600).expect("ntkrnlpa.pdb has _POOL_HEADER");
        assert_eq!(l.size, 8);
        assert_eq!(l.source, LayoutSource::Profile);
        check_x86(l.decode(&X86).unwrap());
    }

    #[test]
    fn isf_layouts_decode_like_the_built_in_one() {
        // 7601 declares the bitfields in the ULONG at 0; 17763+ in the USHORT at 2.
        for guid in [
            "339E74133576439CBCDF7E0229DA3773-1",
            "8B11040A5928757B11390AC78F6B6925-1",
            "5278AFF86C341677D7D7835C85B7B844-1",
            "C2EADB24A615E9472CE47C8ADD31F130-1",
        ] {
            let p = Profile::from_isf(corpus(&format!("isf/ntkrnlmp.pdb/{guid}.json.xz"))).unwrap();
            let l = HeaderLayout::for_kernel(Some(&p), 8, 7601);
            assert_eq!(l.source, LayoutSource::Profile, "{guid}");
            check_x64(l.decode(&X64).unwrap());
        }
    }
}
