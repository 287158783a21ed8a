//! The kernel debugger data block (KDDEBUGGER_DATA64, "KDBG"): the kernel's own table of where
//! its important globals live, written for debuggers. The dump header gives its address.
//!
//! Windows 8+ keeps the block encoded in memory (KdpDataBlockEncoded); a dump written at
//! bugcheck time usually holds a decoded copy, but a live or hand-made dump may not. Decoding
//! needs three kernel globals (KiWaitNever, KiWaitAlways, the address of KdpDataBlockEncoded)
//! that only the kernel's symbols give; without them an encoded block is reported as such,
//! never guessed at.
//!
//! Layout (same on x86 and x64, all fields 64-bit): `{LIST_ENTRY64; u32 OwnerTag; u32 Size}`
//! then the fields of [`FIELDS`]. Sources: volatility3 `symbols/windows/kdbg.json`, the SDK's
//! wdbgexts.h as mirrored in windows-sys, ../shared/docs/windows-internals.md; the offsets were
//! checked against the decoded block of corpus/dumps/triage_x64.dmp (see tests).

use super::bytes::{u32_at, u64_at};
use crate::memory::{MemoryError, VirtualMemory};
use thiserror::Error;

/// "KDBG" as a little-endian u32.
pub const KDBG_TAG: u32 = u32::from_le_bytes(*b"KDBG");
const HEADER_SIZE: usize = 0x18;
/// Smallest block that holds the list heads we need (PsActiveProcessHead ends at 0x58).
const MIN_SIZE: u32 = 0x58;
/// Largest block we accept: Windows 11's block is under 0x400; anything near this is a lie.
const MAX_SIZE: u32 = 0x1000;

/// Field names (as in wdbgexts.h) and offsets inside the block. Most hold the ADDRESS of the
/// kernel variable of that name; PteBase and KernBase are values.
pub const FIELDS: &[(&str, usize)] = &[
    ("KernBase", 0x18),
    ("PsLoadedModuleList", 0x48),
    ("PsActiveProcessHead", 0x50),
    ("PspCidTable", 0x58),
    ("ExpPagedPoolDescriptor", 0x68),
    ("ExpNumberOfPagedPools", 0x70),
    ("KeTimeIncrement", 0x78),
    ("ObpRootDirectoryObject", 0x98),
    ("MmPfnDatabase", 0xc0),
    ("MmSystemPtesStart", 0xc8),
    ("MmSystemPtesEnd", 0xd0),
    ("MmNumberOfPhysicalPages", 0xf8),
    ("MmMaximumNonPagedPoolInBytes", 0x100),
    ("MmNonPagedSystemStart", 0x108),
    ("MmNonPagedPoolStart", 0x110),
    ("MmNonPagedPoolEnd", 0x118),
    ("MmPagedPoolStart", 0x120),
    ("MmPagedPoolEnd", 0x128),
    ("MmPagedPoolInformation", 0x130),
    ("MmSizeOfPagedPoolInBytes", 0x140),
    ("MmTotalCommitLimit", 0x148),
    ("MmTotalCommittedPages", 0x150),
    ("MmPagedPoolCommit", 0x170),
    ("MmAvailablePages", 0x1a8),
    ("PoolTrackTable", 0x1b8),
    ("NonPagedPoolDescriptor", 0x1c0),
    ("MmHighestUserAddress", 0x1c8),
    ("MmSystemRangeStart", 0x1d0),
    ("NtBuildLab", 0x208),
    ("KiProcessorBlock", 0x218),
    ("MmUnloadedDrivers", 0x220),
    ("MmLastUnloadedDriver", 0x228),
    ("MmSpecialPoolTag", 0x238),
    ("MmVerifierData", 0x248),
    ("MmAllocatedNonPagedPool", 0x250),
    ("CmNtCSDVersion", 0x268),
    ("MmPhysicalMemoryBlock", 0x270),
    ("MmSessionBase", 0x278),
    ("MmSessionSize", 0x280),
    ("PteBase", 0x360),
];

/// The three kernel globals that decode an encoded block (from the kernel's symbols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdbgKeys {
    pub ki_wait_never: u64,
    pub ki_wait_always: u64,
    /// The ADDRESS of nt!KdpDataBlockEncoded.
    pub kdp_data_block_encoded: u64,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KdbgError {
    #[error("debugger data block at {va:#x} is not readable: {source}")]
    Unreadable { va: u64, source: MemoryError },
    #[error("debugger data block at {va:#x} is not tagged \"KDBG\": encoded, no keys (decoding needs KiWaitNever, KiWaitAlways and KdpDataBlockEncoded from the kernel's symbols)")]
    EncodedNoKeys { va: u64 },
    #[error(
        "debugger data block at {va:#x} has tag {tag:#010x}, not \"KDBG\", even after decoding"
    )]
    BadTag { va: u64, tag: u32 },
    #[error("debugger data block at {va:#x} has an implausible size {size:#x}")]
    BadSize { va: u64, size: u32 },
}

/// A validated debugger data block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdbg {
    /// Where it was read (virtual address), or where the copy claims to come from.
    pub va: u64,
    /// The block's Size field.
    pub size: u32,
    /// True when the block was encoded in memory and we decoded it with [`KdbgKeys`].
    pub was_encoded: bool,
    /// `(name, value)` in [`FIELDS`] order, for every field inside `size`. Pointers of a 32-bit
    /// kernel are truncated to 32 bits (the block stores them sign-extended).
    pub fields: Vec<(&'static str, u64)>,
}

impl Kdbg {
    /// The value of a field by its wdbgexts.h name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
    pub fn kern_base(&self) -> Option<u64> {
        self.get("KernBase").filter(|&v| v != 0)
    }
    pub fn ps_loaded_module_list(&self) -> Option<u64> {
        self.get("PsLoadedModuleList").filter(|&v| v != 0)
    }
    pub fn ps_active_process_head(&self) -> Option<u64> {
        self.get("PsActiveProcessHead").filter(|&v| v != 0)
    }

    /// The pointer-sized kernel variables whose ADDRESS the block holds ([`DEREF_FIELDS`]),
    /// read from `mem`: `(name, value)` for each one that is non-zero and readable, and the
    /// names of those that could not be read.
    pub fn deref_values(
        &self,
        mem: &dyn VirtualMemory,
    ) -> (Vec<(&'static str, u64)>, Vec<&'static str>) {
        let mut values = Vec::new();
        let mut unreadable = Vec::new();
        for &name in DEREF_FIELDS {
            if let Some(addr) = self.get(name).filter(|&a| a != 0) {
                match mem.read_ptr(addr) {
                    Ok(v) => values.push((name, v)),
                    Err(_) => unreadable.push(name),
                }
            }
        }
        (values, unreadable)
    }
}

/// Fields that hold the address of a pointer-sized (PVOID, SIZE_T, PFN_NUMBER) kernel
/// variable worth showing by value: where the PFN database, the pool tag table and the pool
/// ranges are, and the pool usage counters.
pub const DEREF_FIELDS: &[&str] = &[
    "MmPfnDatabase",
    "PoolTrackTable",
    "MmSystemRangeStart",
    "MmHighestUserAddress",
    "MmNonPagedPoolStart",
    "MmNonPagedPoolEnd",
    "MmPagedPoolStart",
    "MmPagedPoolEnd",
    "MmMaximumNonPagedPoolInBytes",
    "MmSizeOfPagedPoolInBytes",
    "MmPagedPoolCommit",
    "MmAllocatedNonPagedPool",
    "MmNumberOfPhysicalPages",
    "MmTotalCommitLimit",
    "MmTotalCommittedPages",
    "MmUnloadedDrivers",
];

/// Decodes one qword of an encoded block (qemu contrib/elf2dmp; ../shared/docs).
pub fn decode_qword(q: u64, keys: &KdbgKeys) -> u64 {
    let rot = (keys.ki_wait_never & 0xff) as u32;
    ((q ^ keys.ki_wait_never).rotate_left(rot) ^ keys.kdp_data_block_encoded).swap_bytes()
        ^ keys.ki_wait_always
}

/// The inverse of [`decode_qword`]: what Windows stores. Used by the forge and by tests.
pub fn encode_qword(v: u64, keys: &KdbgKeys) -> u64 {
    let rot = (keys.ki_wait_never & 0xff) as u32;
    ((v ^ keys.ki_wait_always).swap_bytes() ^ keys.kdp_data_block_encoded).rotate_right(rot)
        ^ keys.ki_wait_never
}

fn decode_in_place(bytes: &mut [u8], keys: &KdbgKeys) {
    for chunk in bytes.chunks_exact_mut(8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        chunk.copy_from_slice(&decode_qword(u64::from_le_bytes(a), keys).to_le_bytes());
    }
}

/// Reads and validates the block at `va`, decoding it with `keys` when it is encoded.
/// Pointers are truncated to 32 bits when `mem` is a 32-bit address space.
pub fn read_kdbg(
    mem: &dyn VirtualMemory,
    va: u64,
    keys: Option<&KdbgKeys>,
) -> Result<Kdbg, KdbgError> {
    let unreadable = |source| KdbgError::Unreadable { va, source };
    let mut head = [0u8; HEADER_SIZE];
    mem.read(va, &mut head).map_err(unreadable)?;
    let mut encoded = false;
    if u32_at(&head, 0x10) != Some(KDBG_TAG) {
        let keys = keys.ok_or(KdbgError::EncodedNoKeys { va })?;
        decode_in_place(&mut head, keys);
        let tag = u32_at(&head, 0x10).unwrap_or(0);
        if tag != KDBG_TAG {
            return Err(KdbgError::BadTag { va, tag });
        }
        encoded = true;
    }
    let size = u32_at(&head, 0x14).unwrap_or(0);
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(KdbgError::BadSize { va, size });
    }
    // Encoded blocks decode in whole qwords.
    let len = (size as usize).div_ceil(8) * 8;
    let mut block = mem.read_vec(va, len).map_err(unreadable)?;
    if encoded {
        if let Some(k) = keys {
            decode_in_place(&mut block, k);
        }
    }
    Ok(parse_block(
        va,
        &block[..size as usize],
        encoded,
        mem.pointer_size(),
    ))
}

/// Parses a block already in plain form (e.g. the decoded copy a triage dump keeps at
/// DebuggerDataOffset). The caller checked nothing: tag and size are validated here.
pub fn parse_kdbg_bytes(va: u64, bytes: &[u8], pointer_size: u8) -> Result<Kdbg, KdbgError> {
    let tag = u32_at(bytes, 0x10).unwrap_or(0);
    if tag != KDBG_TAG {
        return Err(KdbgError::BadTag { va, tag });
    }
    let size = u32_at(bytes, 0x14).unwrap_or(0);
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) || size as usize > bytes.len() {
        return Err(KdbgError::BadSize { va, size });
    }
    Ok(parse_block(
        va,
        &bytes[..size as usize],
        false,
        pointer_size,
    ))
}

fn parse_block(va: u64, block: &[u8], was_encoded: bool, pointer_size: u8) -> Kdbg {
    let fields = FIELDS
        .iter()
        .filter_map(|&(name, off)| {
            let v = u64_at(block, off)?;
            Some((
                name,
                if pointer_size == 4 {
                    v & 0xffff_ffff
                } else {
                    v
                },
            ))
        })
        .collect();
    Kdbg {
        va,
        size: block.len() as u32,
        was_encoded,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    const VA: u64 = 0xfffff804_7c600b20;

    /// A hand-built block: header, then each field holding 0x1000 + its offset.
    fn block(size: u32) -> Vec<u8> {
        let mut b = vec![0u8; size as usize];
        b[0..8].copy_from_slice(&VA.to_le_bytes());
        b[8..16].copy_from_slice(&VA.to_le_bytes());
        b[0x10..0x14].copy_from_slice(b"KDBG");
        b[0x14..0x18].copy_from_slice(&size.to_le_bytes());
        for &(_, off) in FIELDS {
            if off + 8 <= b.len() {
                b[off..off + 8]
                    .copy_from_slice(&(0xfffff800_00001000u64 + off as u64).to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn plain_block_layout() {
        let b = block(0x380);
        let k = read_kdbg(&SliceMemory::new(VA, &b, 8), VA, None).unwrap();
        assert!(!k.was_encoded);
        assert_eq!(k.size, 0x380);
        assert_eq!(k.kern_base(), Some(0xfffff800_00001018));
        assert_eq!(k.ps_loaded_module_list(), Some(0xfffff800_00001048));
        assert_eq!(k.ps_active_process_head(), Some(0xfffff800_00001050));
        assert_eq!(k.get("MmPfnDatabase"), Some(0xfffff800_000010c0));
        assert_eq!(k.get("PoolTrackTable"), Some(0xfffff800_000011b8));
        assert_eq!(k.get("PteBase"), Some(0xfffff800_00001360));
        assert_eq!(k.fields.len(), FIELDS.len());
    }

    #[test]
    fn deref_values_read_what_is_there() {
        // Block at VA, then an 8-byte variable at VA+0x400 that MmPfnDatabase points to.
        let mut b = block(0x380);
        b.resize(0x408, 0);
        b[0xc0..0xc8].copy_from_slice(&(VA + 0x400).to_le_bytes());
        b[0x400..0x408].copy_from_slice(&0xffffc000_00000000u64.to_le_bytes());
        b[0x1b8..0x1c0].copy_from_slice(&0u64.to_le_bytes()); // PoolTrackTable: 0 = skipped
        let mem = SliceMemory::new(VA, &b, 8);
        let k = read_kdbg(&mem, VA, None).unwrap();
        let (values, unreadable) = k.deref_values(&mem);
        assert_eq!(values, [("MmPfnDatabase", 0xffffc000_00000000)]);
        // Every other DEREF field points at 0xfffff800_00001xxx, outside the buffer.
        assert_eq!(unreadable.len(), DEREF_FIELDS.len() - 2);
        assert!(!unreadable.contains(&"PoolTrackTable"));
    }

    #[test]
    fn short_block_has_no_late_fields_and_x86_truncates() {
        // An XP-sized block (0x290) stops before PteBase.
        let b = block(0x290);
        let k = read_kdbg(&SliceMemory::new(VA, &b, 4), VA, None).unwrap();
        assert_eq!(k.get("PteBase"), None);
        assert_eq!(k.kern_base(), Some(0x1018));
    }

    #[test]
    fn encode_decode_round_trip() {
        let keys = KdbgKeys {
            ki_wait_never: 0x9f3c_1a2b_44d1_e8a7,
            ki_wait_always: 0x1234_5678_9abc_def0,
            kdp_data_block_encoded: 0xfffff804_7c6fc438,
        };
        for v in [
            0u64,
            1,
            u64::MAX,
            0x4742_444b_0000_0380,
            0xfffff804_7ba00000,
        ] {
            assert_eq!(decode_qword(encode_qword(v, &keys), &keys), v);
            assert_ne!(encode_qword(v, &keys), v);
        }
        // Rotation amounts of 0 and >= 64 (low byte of KiWaitNever) behave.
        for wn in [0x100u64, 0xff, 0x40, 0x3f] {
            let k = KdbgKeys {
                ki_wait_never: wn,
                ..keys
            };
            assert_eq!(decode_qword(encode_qword(0xdead_beef, &k), &k), 0xdead_beef);
        }
        // A whole encoded block decodes with the keys, and is refused without them.
        let plain = block(0x380);
        let mut enc = plain.clone();
        for c in enc.chunks_exact_mut(8) {
            let v = u64::from_le_bytes(c.try_into().unwrap());
            c.copy_from_slice(&encode_qword(v, &keys).to_le_bytes());
        }
        let mem = SliceMemory::new(VA, &enc, 8);
        assert_eq!(
            read_kdbg(&mem, VA, None),
            Err(KdbgError::EncodedNoKeys { va: VA })
        );
        assert!(read_kdbg(&mem, VA, None)
            .unwrap_err()
            .to_string()
            .contains("encoded, no keys"));
        let k = read_kdbg(&mem, VA, Some(&keys)).unwrap();
        assert!(k.was_encoded);
        assert_eq!(k.kern_base(), Some(0xfffff800_00001018));
        // Wrong keys: a clear error, not garbage.
        let wrong = KdbgKeys {
            ki_wait_always: 1,
            ..keys
        };
        assert!(matches!(
            read_kdbg(&mem, VA, Some(&wrong)),
            Err(KdbgError::BadTag { .. })
        ));
    }

    #[test]
    fn hostile_sizes_and_holes() {
        let mut b = block(0x380);
        b[0x14..0x18].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        assert!(matches!(
            read_kdbg(&SliceMemory::new(VA, &b, 8), VA, None),
            Err(KdbgError::BadSize { .. })
        ));
        let b = block(0x380);
        // Block cut short by a missing page.
        assert!(matches!(
            read_kdbg(&SliceMemory::new(VA, &b[..0x200], 8), VA, None),
            Err(KdbgError::Unreadable { .. })
        ));
        assert!(matches!(
            parse_kdbg_bytes(VA, &b[..0x200], 8),
            Err(KdbgError::BadSize { .. })
        ));
        assert!(parse_kdbg_bytes(VA, &b, 8).is_ok());
    }

    /// The decoded copy in the real triage dump (TRIAGE_DUMP64.DebuggerDataOffset 0x104a8,
    /// DebuggerDataSize 0x380). Expected values read by hand with `xxd -s 0x104a8` at the
    /// offsets of ../shared/docs/windows-internals.md; KernBase agrees with the kernel's PE
    /// header captured at that address (MZ) and the README's 19041 kernel.
    #[test]
    fn real_triage_block() {
        let path = crate::test_corpus::corpus("dumps/triage_x64.dmp");
        let file = std::fs::read(path).unwrap();
        let bytes = &file[0x104a8..0x104a8 + 0x380];
        let k = parse_kdbg_bytes(0xfffff804_7c600b20, bytes, 8).unwrap();
        assert_eq!(k.size, 0x380);
        assert_eq!(k.kern_base(), Some(0xfffff804_7ba00000));
        assert_eq!(k.ps_loaded_module_list(), Some(0xfffff804_7c62a390));
        assert_eq!(k.ps_active_process_head(), Some(0xfffff804_7c61e200));
        assert_eq!(k.get("MmPfnDatabase"), Some(0xfffff804_7c6fc500));
        assert_eq!(k.get("PoolTrackTable"), Some(0xfffff804_7c6168a8));
        assert_eq!(k.get("NtBuildLab"), Some(0xfffff804_7c64c0a0));
        assert_eq!(k.get("PteBase"), Some(0xfffffd80_00000000));
    }
}
