//! Driver code as a compiler emits it for pool allocations: one small function per call site
//! in `.text`, calling ExAllocatePoolWithTag or ExAllocatePool through the image's import
//! address table (a real IAT slot that the import directory names). What the forge records of
//! each site ([`SiteRecord`]) is what a reader must find again: the `call` instruction's
//! address, its return address (what Driver Verifier records as CallingAddress), the pool type,
//! the tag and the size when it is a constant.

use crate::pe;

/// How a call site gets its NumberOfBytes argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteSize {
    /// An immediate (`mov edx, imm32` / `push imm32`): every block of the site has this size.
    Fixed(u32),
    /// Computed from the function's argument n: `3 * n + base` (`lea edx, [rbx+rbx*2+base]` /
    /// `lea eax, [eax+eax*2+base]`), so the code holds no size a reader could match.
    Computed { base: u8 },
}

impl SiteSize {
    /// The constant size, if the code holds one.
    pub fn fixed(self) -> Option<u32> {
        match self {
            SiteSize::Fixed(n) => Some(n),
            SiteSize::Computed { .. } => None,
        }
    }
}

/// One allocation call site of a driver.
#[derive(Debug, Clone, Copy)]
pub struct AllocSite {
    /// `None`: ExAllocatePool (no tag; the kernel tags the block "None").
    pub tag: Option<[u8; 4]>,
    /// POOL_TYPE: 0 NonPagedPool, 1 PagedPool (plus modifier bits, e.g. 0x21 session, 8 quota).
    pub pool_type: u32,
    pub size: SiteSize,
}

impl AllocSite {
    /// A site with a constant size.
    pub fn fixed(tag: Option<[u8; 4]>, pool_type: u32, size: u32) -> AllocSite {
        AllocSite {
            tag,
            pool_type,
            size: SiteSize::Fixed(size),
        }
    }
}

/// A driver a scenario needs, with the allocation sites its code holds. A name that is one of
/// the base system's drivers (NDIS.SYS, tcpip.sys, acmeflt.sys...) gives that driver the code
/// instead of loading a second image.
#[derive(Debug, Clone)]
pub struct VendorDriver {
    pub name: &'static str,
    pub pdb: &'static str,
    pub size: u32,
    pub sites: Vec<AllocSite>,
    /// Device objects the driver creates: (name under \Device, extension bytes, DeviceType).
    /// Empty: one device named after the driver with a 0x40-byte extension.
    pub devices: Vec<(&'static str, u32, u32)>,
}

/// Imports of every driver with code, in IAT order (the slot index is the position).
pub const IMPORTS: [&str; 3] = [
    "ExAllocatePoolWithTag",
    "ExAllocatePool",
    "ExFreePoolWithTag",
];

/// Where the site functions start: `.text` + 0x100 (DriverEntry, a `ret`, is at `.text`).
pub const CODE_RVA: u32 = 0x1100;
/// Bytes per site function.
const FUNCTION_BYTES: usize = 0x40;

/// A call site as planted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRecord {
    pub module: String,
    /// Virtual address of the site's function.
    pub function: u64,
    /// Virtual address of the `call` instruction.
    pub call: u64,
    /// Length of the `call` instruction (6: `FF 15 disp32/abs32`).
    pub call_len: u64,
    /// The imported function called: "ExAllocatePool" or "ExAllocatePoolWithTag".
    pub import: &'static str,
    /// Virtual address of the IAT slot the call goes through.
    pub iat_slot: u64,
    pub tag: Option<[u8; 4]>,
    pub pool_type: u32,
    /// The constant size, `None` when computed.
    pub size: Option<u32>,
}

impl SiteRecord {
    /// The return address: what Driver Verifier records as the allocation's CallingAddress.
    pub fn return_address(&self) -> u64 {
        self.call + self.call_len
    }
}

/// The code of a driver at `base` whose PE metadata is at `meta` RVA: the bytes to write at
/// [`CODE_RVA`] and one record per site.
pub fn emit(
    module: &str,
    base: u64,
    meta: u32,
    pe64: bool,
    sites: &[AllocSite],
) -> (Vec<u8>, Vec<SiteRecord>) {
    let mut code = Vec::new();
    let mut records = Vec::new();
    for site in sites {
        let start = CODE_RVA + code.len() as u32;
        let import = usize::from(site.tag.is_none());
        let iat = pe::iat_rva(meta, import, pe64);
        let (mut f, call_off) = if pe64 {
            function_x64(site, start, iat)
        } else {
            function_x86(site, base, iat)
        };
        f.resize(FUNCTION_BYTES, 0xcc);
        records.push(SiteRecord {
            module: module.to_string(),
            function: base + u64::from(start),
            call: base + u64::from(start) + call_off as u64,
            call_len: 6,
            import: IMPORTS[import],
            iat_slot: base + u64::from(iat),
            tag: site.tag,
            pool_type: site.pool_type,
            size: site.size.fixed(),
        });
        code.extend_from_slice(&f);
    }
    (code, records)
}

/// x64: `sub rsp,28h; mov ecx,type; mov edx,size; [mov r8d,tag]; call [rip+IAT]; add rsp,28h;
/// ret`, or for a computed size `push rbx; sub rsp,20h; mov ebx,ecx; lea edx,[rbx+rbx*2+base];
/// mov ecx,type; call [rip+IAT]; add rsp,20h; pop rbx; ret`. Returns the bytes and the offset
/// of the call.
fn function_x64(site: &AllocSite, start: u32, iat: u32) -> (Vec<u8>, usize) {
    let mut f = Vec::new();
    let frame = match site.size {
        SiteSize::Fixed(size) => {
            f.extend_from_slice(&[0x48, 0x83, 0xec, 0x28]); // sub rsp, 28h
            f.push(0xb9); // mov ecx, PoolType
            f.extend_from_slice(&site.pool_type.to_le_bytes());
            f.push(0xba); // mov edx, NumberOfBytes
            f.extend_from_slice(&size.to_le_bytes());
            0x28
        }
        SiteSize::Computed { base } => {
            f.push(0x53); // push rbx
            f.extend_from_slice(&[0x48, 0x83, 0xec, 0x20]); // sub rsp, 20h
            f.extend_from_slice(&[0x8b, 0xd9]); // mov ebx, ecx
            f.extend_from_slice(&[0x8d, 0x54, 0x5b, base]); // lea edx, [rbx+rbx*2+base]
            f.push(0xb9); // mov ecx, PoolType
            f.extend_from_slice(&site.pool_type.to_le_bytes());
            0x20
        }
    };
    if let Some(tag) = site.tag {
        f.extend_from_slice(&[0x41, 0xb8]); // mov r8d, Tag
        f.extend_from_slice(&tag);
    }
    // call qword ptr [rip + disp32] (disp from the end of this 6-byte instruction)
    let call = f.len();
    let next = start + call as u32 + 6;
    f.extend_from_slice(&[0xff, 0x15]);
    f.extend_from_slice(&(iat.wrapping_sub(next)).to_le_bytes());
    f.extend_from_slice(&[0x48, 0x83, 0xc4, frame]); // add rsp, frame
    if frame == 0x20 {
        f.push(0x5b); // pop rbx
    }
    f.push(0xc3);
    (f, call)
}

/// x86 (stdcall): `[push tag]; push size; push type; call [IAT]; ret`, or for a computed size
/// `mov eax,[esp+4]; lea eax,[eax+eax*2+base]; push eax; push type; call [IAT]; ret 4`.
fn function_x86(site: &AllocSite, base: u64, iat: u32) -> (Vec<u8>, usize) {
    let mut f = Vec::new();
    if let Some(tag) = site.tag {
        f.push(0x68); // push Tag
        f.extend_from_slice(&tag);
    }
    match site.size {
        SiteSize::Fixed(size) => {
            f.push(0x68); // push NumberOfBytes
            f.extend_from_slice(&size.to_le_bytes());
        }
        SiteSize::Computed { base } => {
            f.extend_from_slice(&[0x8b, 0x44, 0x24, 0x04]); // mov eax, [esp+4]
            f.extend_from_slice(&[0x8d, 0x44, 0x40, base]); // lea eax, [eax+eax*2+base]
            f.push(0x50); // push eax
        }
    }
    f.extend_from_slice(&[0x6a, site.pool_type as u8]); // push PoolType
    let call = f.len();
    f.extend_from_slice(&[0xff, 0x15]); // call dword ptr [iat]
    f.extend_from_slice(&((base as u32).wrapping_add(iat)).to_le_bytes());
    match site.size {
        SiteSize::Fixed(_) => f.push(0xc3),
        SiteSize::Computed { .. } => f.extend_from_slice(&[0xc2, 0x04, 0x00]), // ret 4
    }
    (f, call)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The existing encodings are kept byte for byte: a tagged x64 site is
    /// `48 83 EC 28 B9 .. BA .. 41 B8 tag FF 15 ..`, the call 20 bytes in.
    #[test]
    fn x64_tagged_site_layout() {
        let s = AllocSite::fixed(Some(*b"Leak"), 1, 0x7f0);
        let (code, rec) = emit("leaky.sys", 0xfffff806_1c000000, 0x5000, true, &[s]);
        assert_eq!(&code[..4], &[0x48, 0x83, 0xec, 0x28]);
        assert_eq!(&code[14..20], &[0x41, 0xb8, b'L', b'e', b'a', b'k']);
        assert_eq!(rec[0].call - rec[0].function, 20);
        assert_eq!(&code[20..22], &[0xff, 0x15]);
        let disp = i32::from_le_bytes(code[22..26].try_into().unwrap());
        let target = (0x1100 + 26) as i64 + i64::from(disp);
        assert_eq!(target as u32, pe::iat_rva(0x5000, 0, true));
        assert_eq!(rec[0].return_address(), rec[0].call + 6);
    }

    #[test]
    fn computed_site_has_no_size_immediate() {
        let s = AllocSite {
            tag: None,
            pool_type: 1,
            size: SiteSize::Computed { base: 0x40 },
        };
        let (code, rec) = emit("a.sys", 0x8000_0000, 0x5000, false, &[s]);
        assert_eq!(rec[0].size, None);
        assert_eq!(rec[0].import, "ExAllocatePool");
        assert_eq!(&code[4..8], &[0x8d, 0x44, 0x40, 0x40]);
        let slot = u32::from_le_bytes(
            code[rec[0].call as usize - 0x8000_0000 - 0x1100 + 2..][..4]
                .try_into()
                .unwrap(),
        );
        assert_eq!(u64::from(slot), rec[0].iat_slot);
    }
}
