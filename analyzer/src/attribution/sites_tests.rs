//! The site finder on hand-assembled code: every listing below was assembled with LLVM's
//! `llvm-mc` from the instructions shown and is GNU objdump's reading of the bytes. Expected
//! values come from the instructions and the allocators' documented argument orders.

use super::*;
use crate::attribution::allocators::{allocator_named, KnownData};
use crate::attribution::dataflow::Origin::{Allocator as Implied, Computed, Immediate};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The import slots of the x64 listings (the table after the code, at +0x1000).
fn x64_imports(slot: u64) -> Option<ImportUse> {
    let a = |n| allocator_named(n).map(ImportUse::Allocator);
    match slot {
        0x2000 => a("ExAllocatePoolWithTag"),
        0x2008 => a("ExAllocatePool2"),
        0x2010 => a("ExAllocatePool"),
        0x2020 => a("ExInitializeNPagedLookasideList"),
        0x2028 => a("ExInitializeLookasideListEx"),
        0x2030 => a("NdisAllocateMemoryWithTagPriority"),
        0x2038 => a("ExAllocatePoolWithQuota"),
        0x2040 => Some(ImportUse::Data(KnownData::DefaultNonPagedPoolType)),
        // 0x2018 is ExFreePoolWithTag: an import, not an allocator.
        _ => None,
    }
}

/// The x86 listing's slots (its table is at 0x1000, the code at 0).
fn x86_imports(slot: u64) -> Option<ImportUse> {
    x64_imports(match slot {
        0x1000 => 0x2000,
        0x1004 => 0x2008,
        0x1008 => 0x2010,
        0x1010 => 0x2020,
        0x101c => 0x2038,
        _ => return None,
    })
}

fn find(
    bitness: u32,
    address: u64,
    hex: &str,
    imports: &dyn Fn(u64) -> Option<ImportUse>,
) -> SiteScan {
    // Every global reads as 0 (NonPagedPool), as in a file whose .data is zero-filled.
    find_with(bitness, address, hex, imports, &|_| Some(0))
}

fn find_with(
    bitness: u32,
    address: u64,
    hex: &str,
    imports: &dyn Fn(u64) -> Option<ImportUse>,
    read_u32: &dyn Fn(u64) -> Option<u32>,
) -> SiteScan {
    let regions = [CodeRegion {
        address,
        bytes: unhex(hex),
    }];
    let code = ModuleCode {
        bitness,
        regions: &regions,
        imports,
        read_u32,
    };
    find_sites(&code, None, 100)
}

/// (address, call, tag, paged, size) of each site.
type Brief = (u64, u64, String, Option<bool>, Option<u64>);

fn brief(s: &SiteScan) -> Vec<Brief> {
    s.sites
        .iter()
        .map(|s| (s.address, s.call, s.tag.to_string(), s.paged, s.size))
        .collect()
}

fn b(address: u64, call: u64, tag: &str, paged: Option<bool>, size: Option<u64>) -> Brief {
    (address, call, tag.to_string(), paged, size)
}

fn site_at(s: &SiteScan, call: u64) -> &AllocSite {
    s.sites.iter().find(|x| x.call == call).unwrap()
}

/// `X64_DIRECT`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386:x86-64 -M intel`):
/// 1000 mov ecx,0x1
/// 1005 mov edx,0x7f0
/// 100a mov r8d,0x6b61654c
/// 1010 call QWORD PTR [rip+0xfea] # 0x2000
/// 1016 ret
/// 1017 mov ecx,0x100
/// 101c mov edx,0x200
/// 1021 mov r8d,0x67616c46
/// 1027 call QWORD PTR [rip+0xfdb] # 0x2008
/// 102d ret
/// 102e xor ecx,ecx
/// 1030 mov edx,0x180
/// 1035 call QWORD PTR [rip+0xfd5] # 0x2010
/// 103b ret
/// 103c mov ecx,0x1
/// 1041 mov r8d,0x6e6b6e55
/// 1047 call 0x1061
/// 104c ret
/// 104d mov ecx,0x1
/// 1052 mov ecx,ebx
/// 1054 mov r8d,0x626f6c43
/// 105a call QWORD PTR [rip+0xfa0] # 0x2000
/// 1060 ret
/// 1061 mov edx,0x65657246
/// 1066 call QWORD PTR [rip+0xfac] # 0x2018
/// 106c mov r8d,0x656e6f4c
/// 1072 ret
const X64_DIRECT: &str = concat!(
    "b901000000baf007000041b84c65616bff15ea0f0000c3b900010000ba0002000041b8466c6167ff15db0f0000c331c9",
    "ba80010000ff15d50f0000c3b90100000041b8556e6b6ee815000000c3b90100000089d941b8436c6f62ff15a00f0000",
    "c3ba46726565ff15ac0f000041b84c6f6e65c3",
);

/// `X64_NEGATIVE`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386:x86-64 -M intel`):
/// 1100 mov rsi,QWORD PTR [rip+0xfffffffffffffef9] # 0x1000
/// 1107 mov ecx,0x1
/// 110c mov edx,0x20
/// 1111 mov r8d,0x43676552
/// 1117 call rsi
/// 1119 mov ecx,0x0
/// 111e mov edx,0x30
/// 1123 mov r8d,0x44676552
/// 1129 call rsi
/// 112b mov edi,0xe8
/// 1130 call rbx
/// 1132 mov r8d,0x79706f43
/// 1138 mov edx,edi
/// 113a lea ecx,[rdi-0xe7]
/// 1140 call QWORD PTR [rip+0xfffffffffffffeba] # 0x1000
/// 1146 ret
const X64_NEGATIVE: &str = concat!(
    "488b35f9feffffb901000000ba2000000041b852656743ffd6b900000000ba3000000041b852656744ffd6bfe8000000",
    "ffd341b8436f707989fa8d8f19ffffffff15bafeffffc3",
);

/// `X64_STACK`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386:x86-64 -M intel`):
/// 1000 sub rsp,0x48
/// 1004 mov WORD PTR [rsp+0x30],0x0
/// 100b mov DWORD PTR [rsp+0x28],0x504e6b4c
/// 1013 mov QWORD PTR [rsp+0x20],0x60
/// 101c lea rcx,[rip+0x1035] # 0x2058
/// 1023 xor edx,edx
/// 1025 xor r8d,r8d
/// 1028 xor r9d,r9d
/// 102b call QWORD PTR [rip+0xfef] # 0x2020
/// 1031 mov WORD PTR [rsp+0x38],0x0
/// 1038 mov DWORD PTR [rsp+0x30],0x78456b4c
/// 1040 mov DWORD PTR [rsp+0x28],0x90
/// 1048 and DWORD PTR [rsp+0x20],0x0
/// 104d lea rcx,[rip+0x1004] # 0x2058
/// 1054 xor edx,edx
/// 1056 xor r8d,r8d
/// 1059 mov r9d,0x1
/// 105f call QWORD PTR [rip+0xfc3] # 0x2028
/// 1065 mov rcx,QWORD PTR [rip+0xfec] # 0x2058
/// 106c mov edx,0x120
/// 1071 mov r8d,0x7369644e
/// 1077 mov r9d,0x10
/// 107d call QWORD PTR [rip+0xfad] # 0x2030
/// 1083 add rsp,0x48
/// 1087 ret
const X64_STACK: &str = concat!(
    "4883ec4866c74424300000c74424284c6b4e5048c744242060000000488d0d3510000031d24531c04531c9ff15ef0f00",
    "0066c74424380000c74424304c6b4578c7442428900000008364242000488d0d0410000031d24531c041b901000000ff",
    "15c30f0000488b0dec0f0000ba2001000041b84e64697341b910000000ff15ad0f00004883c448c3",
);

/// `X64_WRAPPERS`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386:x86-64 -M intel`):
/// 1000 sub rsp,0x28
/// 1004 mov ecx,0x40
/// 1009 call 0x104b
/// 100e mov edx,0x80
/// 1013 mov ecx,0x1
/// 1018 mov r8d,0x42707257
/// 101e call 0x105f
/// 1023 mov ecx,0x90
/// 1028 mov edx,0x43707257
/// 102d call 0x106d
/// 1032 mov edx,0x30
/// 1037 mov ecx,0x1
/// 103c call 0x10a1
/// 1041 call 0x107a
/// 1046 add rsp,0x28
/// 104a ret
/// 104b mov rdx,rcx
/// 104e mov ecx,0x200
/// 1053 mov r8d,0x41707257
/// 1059 jmp QWORD PTR [rip+0xfa1] # 0x2000
/// 105f test rdx,rdx
/// 1062 je 0x106a
/// 1064 jmp QWORD PTR [rip+0xf96] # 0x2000
/// 106a xor eax,eax
/// 106c ret
/// 106d mov r8d,edx
/// 1070 mov rdx,rcx
/// 1073 mov ecx,0x1
/// 1078 jmp 0x105f
/// 107a sub rsp,0x28
/// 107e mov ecx,0x1
/// 1083 mov edx,0x10
/// 1088 mov r8d,0x7065654b
/// 108e call QWORD PTR [rip+0xf6c] # 0x2000
/// 1094 mov QWORD PTR [rip+0xfbd],rax # 0x2058
/// 109b add rsp,0x28
/// 109f ret
/// 10a0 int3
/// 10a1 jmp QWORD PTR [rip+0xf91] # 0x2038
/// 10a7 int3
const X64_WRAPPERS: &str = concat!(
    "4883ec28b940000000e83d000000ba80000000b90100000041b857727042e83c000000b990000000ba57727043e83b00",
    "0000ba30000000b901000000e860000000e8340000004883c428c34889cab90002000041b857727041ff25a10f000048",
    "85d27406ff25960f000031c0c34189d04889cab901000000ebe54883ec28b901000000ba1000000041b84b656570ff15",
    "6c0f0000488905bd0f00004883c428c3ccff25910f0000cc",
);

/// `X64_GLOBALS`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386:x86-64 -M intel`):
/// 1000 mov DWORD PTR [rip+0x103e],0x200 # 0x2048
/// 100a mov DWORD PTR [rip+0x1038],0x40000000 # 0x204c
/// 1014 mov DWORD PTR [rip+0x1032],0x1 # 0x2050
/// 101e ret
/// 101f mov ecx,DWORD PTR [rip+0x1023] # 0x2048
/// 1025 mov edx,0x50
/// 102a mov r8d,0x746c6644
/// 1030 call QWORD PTR [rip+0xfca] # 0x2000
/// 1036 mov rax,QWORD PTR [rip+0x1003] # 0x2040
/// 103d mov ecx,DWORD PTR [rax]
/// 103f mov edx,0x60
/// 1044 mov r8d,0x6d496644
/// 104a call QWORD PTR [rip+0xfb0] # 0x2000
/// 1050 mov ecx,DWORD PTR [rip+0xffa] # 0x2050
/// 1056 mov edx,0x70
/// 105b mov r8d,0x67615048
/// 1061 call QWORD PTR [rip+0xf99] # 0x2000
/// 1067 ret
const X64_GLOBALS: &str = concat!(
    "c7053e10000000020000c7053810000000000040c7053210000001000000c38b0d23100000ba5000000041b844666c74",
    "ff15ca0f0000488b05031000008b08ba6000000041b84466496dff15b00f00008b0dfa0f0000ba7000000041b8485061",
    "67ff15990f0000c3",
);

/// `X64_JOINS`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386:x86-64 -M intel`):
/// 1000 xor ebx,ebx
/// 1002 mov edi,0x40
/// 1007 test eax,eax
/// 1009 je 0x1011
/// 100b call QWORD PTR [rip+0x1007] # 0x2018
/// 1011 mov ecx,ebx
/// 1013 mov edx,edi
/// 1015 mov r8d,0x6e696f4a
/// 101b call QWORD PTR [rip+0xfdf] # 0x2000
/// 1021 mov ecx,ebx
/// 1023 mov edx,edi
/// 1025 mov r8d,0x706f6f4c
/// 102b call QWORD PTR [rip+0xfcf] # 0x2000
/// 1031 dec esi
/// 1033 jne 0x1021
/// 1035 ret
const X64_JOINS: &str = concat!(
    "31dbbf4000000085c07406ff150710000089d989fa41b84a6f696eff15df0f000089d989fa41b84c6f6f70ff15cf0f00",
    "00ffce75ecc3",
);

/// `X86_SITES`, GNU objdump's listing (`x86_64-w64-mingw32-objdump -D -b binary -m i386 -M intel`):
/// 0 push 0x6b61654c
/// 5 push 0x7f0
/// a push 0x1
/// c call DWORD PTR ds:0x1000
/// 12 push 0x6574614c
/// 17 push 0x10
/// 19 call DWORD PTR ds:0x1000
/// 1f push 0x4e326c50
/// 24 push 0x30
/// 26 push 0x0
/// 28 push 0x40
/// 2a call DWORD PTR ds:0x1004
/// 30 push 0x100
/// 35 push 0x0
/// 37 call DWORD PTR ds:0x1008
/// 3d push 0x6b61654c
/// 42 push eax
/// 43 call DWORD PTR ds:0x100c
/// 49 ret
/// 4a push 0x0
/// 4c push 0x504e6b4c
/// 51 push 0x60
/// 53 push 0x0
/// 55 push 0x0
/// 57 push 0x0
/// 59 push 0x1030
/// 5e call DWORD PTR ds:0x1010
/// 64 push 0x746c6644
/// 69 push 0x50
/// 6b push DWORD PTR ds:0x1024
/// 71 call DWORD PTR ds:0x1000
/// 77 ret
/// 78 push 0x40
/// 7a call 0x9a
/// 7f push 0x42707257
/// 84 push 0x80
/// 89 push 0x1
/// 8b call 0xb1
/// 90 push 0x30
/// 92 push 0x1
/// 94 call 0xd9
/// 99 ret
/// 9a push 0x41707257
/// 9f push DWORD PTR [esp+0x8]
/// a3 push 0x200
/// a8 call DWORD PTR ds:0x1000
/// ae ret 0x4
/// b1 cmp DWORD PTR [esp+0x8],0x0
/// b6 je 0xbe
/// b8 jmp DWORD PTR ds:0x1000
/// be xor eax,eax
/// c0 ret 0xc
/// c3 mov DWORD PTR ds:0x1024,0x200
/// cd mov DWORD PTR ds:0x1028,0x40000000
/// d7 ret
/// d8 int3
/// d9 jmp DWORD PTR ds:0x101c
/// df int3
const X86_SITES: &str = concat!(
    "684c65616b68f00700006a01ff1500100000684c6174656a10ff150010000068506c324e6a306a006a40ff1504100000",
    "68000100006a00ff1508100000684c65616b50ff150c100000c36a00684c6b4e506a606a006a006a006830100000ff15",
    "101000006844666c746a50ff3524100000ff1500100000c36a40e81b000000685772704268800000006a01e821000000",
    "6a306a01e840000000c36857727041ff7424086800020000ff1500100000c20400837c2408007406ff250010000031c0",
    "c20c00c7052410000000020000c7052810000000000040c3ccff251c100000cc",
);

/// Calls through the import slots: the tag, pool type and size moved into r8d, ecx and edx
/// reach the call. `Unkn` reaches a local function that allocates nothing, `Free` reaches
/// ExFreePoolWithTag and `Lone` no call at all: none of them is a site.
#[test]
fn x64_calls_through_import_slots() {
    let s = find(64, 0x1000, X64_DIRECT, &x64_imports);
    assert_eq!(
        brief(&s),
        [
            // PagedPool (1), 0x7f0 bytes.
            b(0x100a, 0x1010, "Leak", Some(true), Some(0x7f0)),
            // ExAllocatePool2: 0x100 is POOL_FLAG_PAGED, not a POOL_TYPE.
            b(0x1021, 0x1027, "Flag", Some(true), Some(0x200)),
            // ExAllocatePool(NonPagedPool = xor ecx,ecx, 0x180): the call is the site.
            b(0x1035, 0x1035, "None", Some(false), Some(0x180)),
            // ecx overwritten from an unknown register, edx never set.
            b(0x1054, 0x105a, "Clob", None, None),
        ]
    );
    let leak = &s.sites[0];
    assert_eq!(leak.callee, Some("ExAllocatePoolWithTag"));
    assert_eq!((leak.kind, leak.via), (SiteKind::Tagged, None));
    assert_eq!(
        (leak.tag_from, leak.size_from, leak.paged_from),
        (
            Immediate(0x100a),
            Some(Immediate(0x1005)),
            Some(Immediate(0x1000))
        )
    );
    let untagged = &s.sites[2];
    assert!(untagged.untagged_call);
    assert_eq!(
        (untagged.kind, untagged.tag_from),
        (SiteKind::Untagged, Implied)
    );
    assert_eq!(s.counts.get(&Tag(*b"Unkn")), None);
    assert_eq!(s.counts.get(&Tag(*b"None")), Some(&1));
    // Bounded: the first two kept, the rest counted.
    let regions = [CodeRegion {
        address: 0x1000,
        bytes: unhex(X64_DIRECT),
    }];
    let few = find_sites(
        &ModuleCode {
            bitness: 64,
            regions: &regions,
            imports: &x64_imports,
            read_u32: &|_| None,
        },
        None,
        2,
    );
    assert_eq!(
        (few.sites.len(), few.truncated, few.counts.len()),
        (2, true, 4)
    );
}

/// The slot lies before the code (a negative RIP displacement) and the calls go through rsi,
/// loaded from it once: rsi is callee-saved, so both calls reach the allocator. The size
/// reaches edx through a copy of edi (callee-saved, set before an unrelated call) and the pool
/// type through `lea ecx, [rdi-0xe7]` (0xe8 - 0xe7 = 1, PagedPool).
#[test]
fn negative_displacements_register_calls_and_copies() {
    let imports = |slot| (slot == 0x1000).then(|| x64_imports(0x2000)).flatten();
    let s = find(64, 0x1100, X64_NEGATIVE, &imports);
    assert_eq!(
        brief(&s),
        [
            b(0x1111, 0x1117, "RegC", Some(true), Some(0x20)),
            b(0x1123, 0x1129, "RegD", Some(false), Some(0x30)),
            b(0x1132, 0x1140, "Copy", Some(true), Some(0xe8)),
        ]
    );
    let copy = site_at(&s, 0x1140);
    assert_eq!(
        (copy.size_from, copy.paged_from),
        (Some(Immediate(0x112b)), Some(Computed(0x113a)))
    );
}

/// Stack arguments: the lookaside lists' size and tag at [rsp+0x20] and [rsp+0x28]
/// (ExInitializeNPagedLookasideList) or [rsp+0x28] and [rsp+0x30] (...Ex, whose POOL_TYPE is
/// r9d). The Ex list's size is stored 4 bytes wide into an 8-byte SIZE_T: its upper half is
/// unknown, so is the size. NDIS's allocator implies nonpaged pool.
#[test]
fn x64_stack_arguments_lookaside_lists_and_ndis() {
    let s = find(64, 0x1000, X64_STACK, &x64_imports);
    assert_eq!(
        brief(&s),
        [
            b(0x100b, 0x102b, "LkNP", Some(false), Some(0x60)),
            b(0x1038, 0x105f, "LkEx", Some(true), None),
            b(0x1071, 0x107d, "Ndis", Some(false), Some(0x120)),
        ]
    );
    let np = site_at(&s, 0x102b);
    assert_eq!(
        (np.kind, np.paged_from),
        (SiteKind::Lookaside, Some(Implied))
    );
    assert_eq!(site_at(&s, 0x105f).paged_from, Some(Immediate(0x1059)));
    assert_eq!(site_at(&s, 0x107d).kind, SiteKind::Tagged);
}

/// The driver's own allocation functions: `my_alloc(size)` (fixed type and tag, tail jump),
/// `my_tagged(type, size, tag)` (forwards all three after a check), `my_paged(size, tag)`
/// (calls my_tagged: two levels), an import thunk for ExAllocatePoolWithQuota, and `keeper`,
/// which allocates but keeps the block in a global: its caller is not an allocation site.
#[test]
fn x64_wrappers_and_thunks() {
    let s = find(64, 0x1000, X64_WRAPPERS, &x64_imports);
    assert_eq!(
        brief(&s),
        [
            // Calls to the wrappers, with the caller's arguments.
            b(0x1009, 0x1009, "WrpA", Some(false), Some(0x40)),
            b(0x1018, 0x101e, "WrpB", Some(true), Some(0x80)),
            b(0x1028, 0x102d, "WrpC", Some(true), Some(0x90)),
            b(0x103c, 0x103c, "None", Some(true), Some(0x30)),
            // my_alloc's own tail jump: its size is its caller's.
            b(0x1053, 0x1059, "WrpA", Some(false), None),
            // keeper's own call.
            b(0x1088, 0x108e, "Keep", Some(true), Some(0x10)),
        ]
    );
    assert_eq!(site_at(&s, 0x1009).via, Some(Via::Wrapper(0x104b)));
    assert_eq!(site_at(&s, 0x1009).tag_from, Immediate(0x1053));
    assert_eq!(site_at(&s, 0x101e).via, Some(Via::Wrapper(0x105f)));
    let two_levels = site_at(&s, 0x102d);
    assert_eq!(two_levels.via, Some(Via::Wrapper(0x106d)));
    assert_eq!(two_levels.paged_from, Some(Immediate(0x1073)));
    let thunk = site_at(&s, 0x103c);
    assert_eq!(thunk.via, Some(Via::ImportThunk(0x10a1)));
    assert_eq!(thunk.callee, Some("ExAllocatePoolWithQuota"));
}

/// Pool types read from memory: a global that the code only sets to NonPagedPoolNx (and that
/// holds 0 in the image) is nonpaged; the imported ExDefaultNonPagedPoolType, read through its
/// slot, is nonpaged; a global also set to 1 (PagedPool) is unknown.
#[test]
fn default_nonpaged_pool_type_globals_and_imports() {
    let s = find(64, 0x1000, X64_GLOBALS, &x64_imports);
    assert_eq!(
        brief(&s),
        [
            b(0x102a, 0x1030, "Dflt", Some(false), Some(0x50)),
            b(0x1044, 0x104a, "DfIm", Some(false), Some(0x60)),
            b(0x105b, 0x1061, "HPag", None, Some(0x70)),
        ]
    );
    assert_eq!(
        site_at(&s, 0x1030).paged_from,
        Some(Origin::DefaultPoolTypeGlobal(0x2048))
    );
    assert_eq!(
        site_at(&s, 0x104a).paged_from,
        Some(Origin::DefaultPoolTypeImport(0x2040))
    );
    // The global's own value must be nonpaged too (here: PagedPool in the image).
    let paged_image = find_with(64, 0x1000, X64_GLOBALS, &x64_imports, &|_| Some(1));
    assert_eq!(site_at(&paged_image, 0x1030).paged, None);
    // Without the image's data nothing is proven.
    let no_data = find_with(64, 0x1000, X64_GLOBALS, &x64_imports, &|_| None);
    assert_eq!(site_at(&no_data, 0x1030).paged, None);
}

/// Where paths join: at `1:` the branch from `je` and the fall-through after an unrelated call
/// both hold ebx = 0 and edi = 0x40 (callee-saved), so the site's pool and size are known. `2:`
/// is also reached by a backward branch from code not yet decoded: nothing is known there.
#[test]
fn values_survive_joins_that_agree() {
    let s = find(64, 0x1000, X64_JOINS, &x64_imports);
    assert_eq!(
        brief(&s),
        [
            b(0x1015, 0x101b, "Join", Some(false), Some(0x40)),
            b(0x1025, 0x102b, "Loop", None, None),
        ]
    );
}

/// x86 stdcall: arguments pushed last to first, `call [abs]`. `Late` is pushed one slot too
/// high to be the tag (only two pushes before the call): not a site. ExAllocatePool2's
/// POOL_FLAGS takes two dwords. The lookaside list's size and tag are its 5th and 6th
/// arguments. The global pool type is pushed from memory; the wrapper reads its parameter at
/// [esp+8] after one push; my_tagged forwards by a tail jump; the thunk is `jmp [slot]`.
#[test]
fn x86_stdcall_sites() {
    let s = find(32, 0, X86_SITES, &x86_imports);
    assert_eq!(
        brief(&s),
        [
            b(0x0, 0xc, "Leak", Some(true), Some(0x7f0)),
            b(0x1f, 0x2a, "Pl2N", Some(false), Some(0x30)),
            b(0x37, 0x37, "None", Some(false), Some(0x100)),
            b(0x4c, 0x5e, "LkNP", Some(false), Some(0x60)),
            b(0x64, 0x71, "Dflt", Some(false), Some(0x50)),
            b(0x7a, 0x7a, "WrpA", Some(false), Some(0x40)),
            b(0x7f, 0x8b, "WrpB", Some(true), Some(0x80)),
            b(0x94, 0x94, "None", Some(true), Some(0x30)),
            b(0x9a, 0xa8, "WrpA", Some(false), None),
        ]
    );
    assert_eq!(
        site_at(&s, 0x71).paged_from,
        Some(Origin::DefaultPoolTypeGlobal(0x1024))
    );
    assert_eq!(site_at(&s, 0x8b).via, Some(Via::Wrapper(0xb1)));
    assert_eq!(site_at(&s, 0x94).via, Some(Via::ImportThunk(0xd9)));
}

/// An odd run of zero bytes before an aligned function throws the linear decode out of step
/// (`00 b9 01 00 00 00` reads as `add cl, bh ...`, swallowing `mov ecx, 1`): the site is
/// decoded again from its aligned start and gets its pool type.
#[test]
fn a_site_after_desynchronising_padding_is_decoded_from_its_aligned_start() {
    let mut code = vec![0xc3];
    code.extend_from_slice(&[0u8; 0xff]);
    code.extend_from_slice(&unhex(&X64_DIRECT[..2 * 0x17]));
    let hex: String = code.iter().map(|b| format!("{b:02x}")).collect();
    // The call at 0x1110 goes through [rip+0xfea] = 0x2100.
    let imports = |slot| (slot == 0x2100).then(|| x64_imports(0x2000)).flatten();
    let s = find(64, 0x1000, &hex, &imports);
    assert_eq!(
        brief(&s),
        [b(0x110a, 0x1110, "Leak", Some(true), Some(0x7f0))]
    );
}

/// x86: the same desynchronisation swallows `push 'Acme'` itself (`00 68` reads as
/// `add [eax+..], ch`); the anchored decode finds the tag's bytes and the aligned window
/// decodes the site.
#[test]
fn a_tag_the_linear_decode_missed_is_found_from_its_aligned_start() {
    let mut code = vec![0xc3];
    code.extend_from_slice(&[0u8; 0xff]);
    code.extend_from_slice(&[
        0x68, b'A', b'c', b'm', b'e', 0x68, 0x10, 0, 0, 0, 0x6a, 0, 0xff, 0x15, 0, 0x10, 0, 0, 0xc3,
    ]);
    let regions = [CodeRegion {
        address: 0x1000,
        bytes: code,
    }];
    let code = ModuleCode {
        bitness: 32,
        regions: &regions,
        imports: &x86_imports,
        read_u32: &|_| None,
    };
    let tag = Tag(*b"Acme");
    let s = find_sites(&code, Some(&HashSet::from([tag])), 100);
    assert_eq!(
        brief(&s),
        [b(0x1100, 0x110c, "Acme", Some(false), Some(0x10))]
    );
}
