//! Builds the forged Windows system in memory: the kernel image with its globals at their real
//! RVAs, the debugger data block, KUSER_SHARED_DATA, driver images, the loaded-module list and
//! the process list, all in the layouts of the profile's symbols.
//!
//! Every structure offset comes from the [`Profile`]; a field the kernel does not have is
//! simply not written (e.g. `_LDR_DATA_TABLE_ENTRY.CheckSum` on Windows 10).

use crate::pool::{HeaderLayout, PoolKind, PoolRegion};
use crate::profiles::ProfileSpec;
use crate::rng::SplitMix64;
use crate::segheap::{SegLayout, SegmentHeap};
use crate::space::{Machine, Paging, PAGE};
use crate::truth::{ModuleTruth, PdbTruth, ProcessTruth};
use crate::{pe, ForgeError};
use analyzer::symbols::Profile;

/// MANUALLY_INITIATED_CRASH: the keyboard crash (CrashOnCtrlScroll), parameters all zero.
pub const BUGCHECK_MANUALLY_INITIATED_CRASH: u32 = 0xe2;

/// The forged system, open for scenarios to add to before it is written.
pub struct System {
    pub machine: Machine,
    pub profile: Profile,
    pub spec: &'static ProfileSpec,
    pub rng: SplitMix64,
    pub processors: u32,
    pub memory_size: u64,
    pub kernel_base: u64,
    pub kernel_size: u32,
    pub kdbg: u64,
    pub ps_loaded_module_list: u64,
    pub ps_active_process_head: u64,
    pub pfn_database: u64,
    pub modules: Vec<ModuleTruth>,
    pub processes: Vec<ProcessTruth>,
    pub nonpaged: PoolRegion,
    pub paged: PoolRegion,
    /// Every allocation call site in the drivers' code (scenario drivers, and base drivers a
    /// scenario gave code to).
    pub sites: Vec<crate::code::SiteRecord>,
    /// `_LDR_DATA_TABLE_ENTRY` of each module, in [`System::modules`] order.
    pub ldr_entries: Vec<u64>,
    /// Driver and device objects as planted ([`crate::objects`]).
    pub driver_objects: Vec<crate::objects::DriverObjects>,
    /// Randomness of the object manager's structures (ObHeaderCookie), apart from [`System::rng`]
    /// so that the scenarios' draws, and the dumps they make, do not move.
    pub object_rng: SplitMix64,
    /// When the crash happens and how long the machine has been up.
    pub clock: Clock,
    /// A crash scenario's bugcheck, context record and truth; `None`: the keyboard crash.
    pub crash: Option<crate::crash::CrashHeader>,
}

/// The machine's clock at the crash: SystemTime and the time since boot (100 ns units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// FILETIME of the crash.
    pub system_time: u64,
    /// Time since boot, 100 ns units.
    pub up_time: u64,
}

impl Clock {
    /// Up time of a profile's single dump: 3 h 17 min 29 s.
    pub const BASE_UP_TIME: u64 = (3 * 3600 + 17 * 60 + 29) * 10_000_000;

    /// The profile's own crash time.
    pub fn of(spec: &ProfileSpec) -> Clock {
        Clock {
            system_time: spec.system_time,
            up_time: Clock::BASE_UP_TIME,
        }
    }

    /// The same boot, `seconds` later.
    pub fn later(self, seconds: u64) -> Clock {
        Clock {
            system_time: self.system_time + seconds * 10_000_000,
            up_time: self.up_time + seconds * 10_000_000,
        }
    }

    /// FILETIME of the boot.
    pub fn boot_time(&self) -> u64 {
        self.system_time - self.up_time
    }
}

pub use crate::code::{AllocSite, SiteSize, VendorDriver};

/// A driver's allocator calls as emitted, one [`SiteCall`] per [`AllocSite`] in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorCalls {
    pub name: String,
    pub base: u64,
    pub size: u32,
    pub calls: Vec<SiteCall>,
}

/// One `call [import]` of an allocation site: where the instruction is, the address right
/// after it (the return address a callee sees, which Driver Verifier records as the
/// allocation's CallingAddress) and the import address table slot it calls through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteCall {
    pub call: u64,
    pub return_address: u64,
    pub iat_slot: u64,
}

/// Functions a driver imports from ntoskrnl.exe with the addresses the loader bound them to.
type Imports = Vec<(&'static str, u64)>;

struct DriverSpec {
    name: &'static str,
    /// Path relative to the system root prefix of the profile.
    path: &'static str,
    pdb: &'static str,
    size: u32,
    dll: bool,
    session: bool,
    vista_plus: bool,
}

const DRIVERS: &[DriverSpec] = &[
    DriverSpec {
        name: "hal.dll",
        path: "system32\\hal.dll",
        pdb: "hal.pdb",
        size: 0x60000,
        dll: true,
        session: false,
        vista_plus: false,
    },
    DriverSpec {
        name: "kdcom.dll",
        path: "system32\\kdcom.dll",
        pdb: "kdcom.pdb",
        size: 0xb000,
        dll: true,
        session: false,
        vista_plus: false,
    },
    DriverSpec {
        name: "CI.dll",
        path: "system32\\CI.dll",
        pdb: "ci.pdb",
        size: 0x90000,
        dll: true,
        session: false,
        vista_plus: true,
    },
    DriverSpec {
        name: "Ntfs.sys",
        path: "System32\\Drivers\\Ntfs.sys",
        pdb: "ntfs.pdb",
        size: 0x120000,
        dll: false,
        session: false,
        vista_plus: false,
    },
    DriverSpec {
        name: "NDIS.SYS",
        path: "system32\\drivers\\NDIS.SYS",
        pdb: "ndis.pdb",
        size: 0xd0000,
        dll: false,
        session: false,
        vista_plus: false,
    },
    DriverSpec {
        name: "tcpip.sys",
        path: "System32\\drivers\\tcpip.sys",
        pdb: "tcpip.pdb",
        size: 0x200000,
        dll: false,
        session: false,
        vista_plus: false,
    },
    DriverSpec {
        name: "acmeflt.sys",
        path: "System32\\drivers\\acmeflt.sys",
        pdb: "acmeflt.pdb",
        size: 0x12000,
        dll: false,
        session: false,
        vista_plus: false,
    },
    DriverSpec {
        name: "win32k.sys",
        path: "System32\\win32k.sys",
        pdb: "win32k.pdb",
        size: 0x100000,
        dll: false,
        session: true,
        vista_plus: false,
    },
];

struct ProcSpec {
    pid: u64,
    ppid: u64,
    name: &'static str,
    threads: u32,
    /// Seconds after boot.
    started: u64,
}

const PROCS_NT6: &[ProcSpec] = &[
    ProcSpec {
        pid: 4,
        ppid: 0,
        name: "System",
        threads: 98,
        started: 0,
    },
    ProcSpec {
        pid: 340,
        ppid: 4,
        name: "smss.exe",
        threads: 2,
        started: 2,
    },
    ProcSpec {
        pid: 440,
        ppid: 432,
        name: "csrss.exe",
        threads: 10,
        started: 5,
    },
    ProcSpec {
        pid: 512,
        ppid: 432,
        name: "wininit.exe",
        threads: 1,
        started: 5,
    },
    ProcSpec {
        pid: 524,
        ppid: 504,
        name: "csrss.exe",
        threads: 12,
        started: 5,
    },
    ProcSpec {
        pid: 588,
        ppid: 504,
        name: "winlogon.exe",
        threads: 5,
        started: 6,
    },
    ProcSpec {
        pid: 640,
        ppid: 512,
        name: "services.exe",
        threads: 7,
        started: 6,
    },
    ProcSpec {
        pid: 656,
        ppid: 512,
        name: "lsass.exe",
        threads: 9,
        started: 6,
    },
    ProcSpec {
        pid: 780,
        ppid: 640,
        name: "svchost.exe",
        threads: 14,
        started: 8,
    },
    ProcSpec {
        pid: 840,
        ppid: 640,
        name: "svchost.exe",
        threads: 11,
        started: 8,
    },
    ProcSpec {
        pid: 1020,
        ppid: 640,
        name: "svchost.exe",
        threads: 23,
        started: 9,
    },
    ProcSpec {
        pid: 1320,
        ppid: 640,
        name: "spoolsv.exe",
        threads: 8,
        started: 12,
    },
    ProcSpec {
        pid: 3012,
        ppid: 2988,
        name: "explorer.exe",
        threads: 41,
        started: 40,
    },
];

const PROCS_XP: &[ProcSpec] = &[
    ProcSpec {
        pid: 4,
        ppid: 0,
        name: "System",
        threads: 56,
        started: 0,
    },
    ProcSpec {
        pid: 368,
        ppid: 4,
        name: "smss.exe",
        threads: 3,
        started: 2,
    },
    ProcSpec {
        pid: 584,
        ppid: 368,
        name: "csrss.exe",
        threads: 11,
        started: 5,
    },
    ProcSpec {
        pid: 608,
        ppid: 368,
        name: "winlogon.exe",
        threads: 18,
        started: 5,
    },
    ProcSpec {
        pid: 652,
        ppid: 608,
        name: "services.exe",
        threads: 15,
        started: 6,
    },
    ProcSpec {
        pid: 664,
        ppid: 608,
        name: "lsass.exe",
        threads: 21,
        started: 6,
    },
    ProcSpec {
        pid: 820,
        ppid: 652,
        name: "svchost.exe",
        threads: 19,
        started: 8,
    },
    ProcSpec {
        pid: 904,
        ppid: 652,
        name: "svchost.exe",
        threads: 10,
        started: 8,
    },
    ProcSpec {
        pid: 1000,
        ppid: 652,
        name: "svchost.exe",
        threads: 64,
        started: 9,
    },
    ProcSpec {
        pid: 1200,
        ppid: 652,
        name: "spoolsv.exe",
        threads: 12,
        started: 12,
    },
    ProcSpec {
        pid: 1500,
        ppid: 1480,
        name: "explorer.exe",
        threads: 16,
        started: 40,
    },
    ProcSpec {
        pid: 1624,
        ppid: 1500,
        name: "notepad.exe",
        threads: 1,
        started: 300,
    },
];

/// Globals the forge writes, with the bytes each occupies (to keep the PE metadata clear).
const PLANTED: &[(&str, u64)] = &[
    ("PsLoadedModuleList", 0x10),
    ("PsActiveProcessHead", 0x10),
    ("KdDebuggerDataBlock", 0x400),
    ("KdVersionBlock", 0x28),
    ("KeNumberProcessors", 4),
    ("NtBuildLab", 0x80),
    ("NtBuildLabEx", 0x80),
    ("NtBuildNumber", 4),
    ("CmNtCSDVersion", 4),
    ("PsInitialSystemProcess", 8),
    ("MmSystemRangeStart", 8),
    ("MmPfnDatabase", 8),
    ("KiProcessorBlock", 0x200),
    ("MmNumberOfPhysicalPages", 4),
    // Written by the pool scenarios (crate::poolstate).
    ("PoolTrackTable", 8),
    ("PoolTrackTableSize", 8),
    ("ExPoolTagTables", 0x200),
    ("PoolTrackTableExpansion", 8),
    ("PoolTrackTableExpansionSize", 8),
    ("PoolBigPageTable", 8),
    ("PoolBigPageTableSize", 8),
    ("ExpPoolQuotaCookie", 8),
    ("MmNonPagedPoolStart", 8),
    ("MmNonPagedPoolEnd", 8),
    ("MmPagedPoolStart", 8),
    ("MmPagedPoolEnd", 8),
    ("MmSizeOfPagedPoolInBytes", 8),
    ("MmMaximumNonPagedPoolInBytes", 8),
    ("MmPagedPoolCommit", 8),
    ("MmAllocatedNonPagedPool", 8),
    ("ExPoolState", 0x6000),
    // Written by crate::objects and crate::pte.
    ("ObTypeIndexTable", 0x400),
    ("ObpObjectTypes", 0x100),
    ("ObHeaderCookie", 4),
    ("ObpInfoMaskToOffset", 0x100),
    ("ObpTypeObjectType", 8),
    ("ObpDirectoryObjectType", 8),
    ("ObpRootDirectoryObject", 8),
    ("IoDriverObjectType", 8),
    ("IoDeviceObjectType", 8),
    ("MiInvalidPteMask", 8),
    ("MmPagingFile", 0x80),
    ("MmNumberOfPagingFiles", 4),
    ("RtlpHpHeapGlobals", 0x40),
    // Written by the verifier scenario (crate::verifier).
    ("MmVerifierData", 0xb0),
    ("MiSuspectDriverList", 0x10),
    ("ViTargetDriversAvl", 0x40),
    ("VfSuspectDriversList", 0x10),
    ("VfRuleClasses", 8),
    ("VerifierIsTrackingPool", 4),
    // Written by the crash scenarios (crate::crash::unloaded).
    ("MmUnloadedDrivers", 8),
    ("MmLastUnloadedDriver", 4),
];

fn sign_extend32(ptr_size: u8, v: u64) -> u64 {
    if ptr_size == 4 && v & 0x8000_0000 != 0 {
        v | 0xffff_ffff_0000_0000
    } else {
        v
    }
}

impl System {
    /// Every argument is one independent fact of the forged machine (its kernel, memory, CPUs,
    /// randomness, dump extent, third-party drivers, clock); a struct of them would only be
    /// unpacked here.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        spec: &'static ProfileSpec,
        profile: Profile,
        memory_size: u64,
        processors: u32,
        seed: &str,
        data_limit_pfn: u64,
        vendor_drivers: &[VendorDriver],
        clock: Clock,
    ) -> Result<System, ForgeError> {
        let machine = Machine::new(spec.paging, spec.plan.self_map_index, data_limit_pfn)?;
        let ptr = machine.pointer_size();
        let header = HeaderLayout::from_profile(&profile)?;
        let mut sys = System {
            nonpaged: PoolRegion::new(
                spec.plan.nonpaged_pool,
                PoolKind::NonPaged,
                spec.paging,
                spec.build,
                header,
            ),
            paged: PoolRegion::new(
                spec.plan.paged_pool,
                PoolKind::Paged,
                spec.paging,
                spec.build,
                header,
            ),
            machine,
            profile,
            spec,
            rng: SplitMix64::from_str_seed(seed),
            processors,
            memory_size,
            kernel_base: spec.plan.kernel_base,
            kernel_size: 0,
            kdbg: 0,
            ps_loaded_module_list: 0,
            ps_active_process_head: 0,
            pfn_database: spec.plan.pfn_database,
            modules: Vec::new(),
            processes: Vec::new(),
            sites: Vec::new(),
            ldr_entries: Vec::new(),
            driver_objects: Vec::new(),
            object_rng: SplitMix64::from_str_seed(&format!("{seed}/objects")),
            clock,
            crash: None,
        };
        for g in [
            "PsLoadedModuleList",
            "PsActiveProcessHead",
            "KdDebuggerDataBlock",
        ] {
            sys.global(g)?;
        }
        if sys.profile.pointer_size != ptr {
            return Err(ForgeError::Internal(
                "profile pointer size does not match the paging mode".into(),
            ));
        }
        sys.build_kernel_image()?;
        sys.build_segment_heaps()?;
        sys.build_kuser_shared_data()?;
        sys.build_drivers(vendor_drivers)?;
        for d in vendor_drivers {
            if !DRIVERS.iter().any(|b| b.name == d.name) {
                sys.build_vendor_driver(d)?;
            }
        }
        sys.build_module_list()?;
        sys.build_processes()?;
        crate::objects::plant(&mut sys, vendor_drivers)?;
        sys.build_globals()?;
        sys.build_debugger_data()?;
        Ok(sys)
    }

    pub fn ptr_size(&self) -> u8 {
        self.machine.pointer_size()
    }

    /// Virtual address of a kernel global (kernel base + RVA from the profile).
    pub fn global(&self, name: &str) -> Result<u64, ForgeError> {
        self.profile
            .global(name)
            .map(|rva| self.kernel_base + rva)
            .ok_or_else(|| ForgeError::MissingSymbol(name.to_string()))
    }

    /// Offset of a required structure field.
    pub fn offset(&self, ty: &str, field: &str) -> Result<u64, ForgeError> {
        self.profile
            .offset(ty, field)
            .ok_or_else(|| ForgeError::MissingSymbol(format!("{ty}.{field}")))
    }

    pub fn type_size(&self, ty: &str) -> Result<u64, ForgeError> {
        self.profile
            .type_size(ty)
            .ok_or_else(|| ForgeError::MissingSymbol(ty.to_string()))
    }

    /// Writes `value` at `base + ty.field` if the profile's structure has that field.
    fn put_opt(
        &mut self,
        base: u64,
        ty: &str,
        field: &str,
        bytes: &[u8],
    ) -> Result<(), ForgeError> {
        if let Some(off) = self.profile.offset(ty, field) {
            self.machine.write(base + off, bytes)?;
        }
        Ok(())
    }

    fn put_ptr_opt(&mut self, base: u64, ty: &str, field: &str, v: u64) -> Result<(), ForgeError> {
        if let Some(off) = self.profile.offset(ty, field) {
            self.machine.write_ptr(base + off, v)?;
        }
        Ok(())
    }

    /// Allocates from nonpaged pool with a POOL_HEADER carrying `tag`.
    pub fn alloc_nonpaged(&mut self, size: u64, tag: &[u8; 4]) -> Result<u64, ForgeError> {
        self.nonpaged.alloc(&mut self.machine, size, tag)
    }

    pub fn alloc_paged(&mut self, size: u64, tag: &[u8; 4]) -> Result<u64, ForgeError> {
        self.paged.alloc(&mut self.machine, size, tag)
    }

    /// Writes a LIST_ENTRY (Flink, Blink) of the machine's pointer size.
    pub fn write_list_entry(&mut self, at: u64, flink: u64, blink: u64) -> Result<(), ForgeError> {
        let p = u64::from(self.ptr_size());
        self.machine.write_ptr(at, flink)?;
        self.machine.write_ptr(at + p, blink)
    }

    /// Links the entries at `nodes` (addresses of LIST_ENTRY fields) into a closed ring headed
    /// by `head`.
    pub fn link_ring(&mut self, head: u64, nodes: &[u64]) -> Result<(), ForgeError> {
        let mut ring = vec![head];
        ring.extend_from_slice(nodes);
        let n = ring.len();
        for i in 0..n {
            let flink = ring[(i + 1) % n];
            let blink = ring[(i + n - 1) % n];
            self.write_list_entry(ring[i], flink, blink)?;
        }
        Ok(())
    }

    /// Base name, full path and export-directory name of the kernel. The PAE kernel file is
    /// ntkrnlpa.exe but it is loaded, listed and exports as ntoskrnl.exe (MemProcFS finds the
    /// kernel by that export name on x86 too).
    fn kernel_names(&self) -> (&'static str, String, &'static str) {
        match self.spec.paging {
            Paging::X86Pae => (
                "ntoskrnl.exe",
                "\\WINDOWS\\system32\\ntkrnlpa.exe".into(),
                "ntoskrnl.exe",
            ),
            Paging::X64 => (
                "ntoskrnl.exe",
                "\\SystemRoot\\system32\\ntoskrnl.exe".into(),
                "ntoskrnl.exe",
            ),
        }
    }

    fn build_kernel_image(&mut self) -> Result<(), ForgeError> {
        let max_rva = self
            .profile
            .globals
            .values()
            .copied()
            .filter(|r| *r < 0x400_0000)
            .max()
            .unwrap_or(0);
        let size = (max_rva + 0x1000 + 0x100).div_ceil(PAGE) * PAGE;
        self.kernel_size =
            u32::try_from(size).map_err(|_| ForgeError::Internal("kernel too large".into()))?;
        // Every page of the image is present: readers walk it page by page from the base.
        self.machine.map_range(self.kernel_base, size)?;

        // A page-aligned area of two pages no planted global touches, for PE metadata.
        let planted: Vec<(u64, u64)> = PLANTED
            .iter()
            .filter_map(|(n, len)| self.profile.global(n).map(|r| (r, *len)))
            .collect();
        let mut meta = 0x2000u64;
        while planted
            .iter()
            .any(|&(r, len)| r < meta + 0x3000 && r + len > meta)
        {
            meta += PAGE;
            if meta + 0x3000 >= size {
                return Err(ForgeError::Internal(
                    "no room for the kernel's PE metadata".into(),
                ));
            }
        }
        let meta = meta as u32;
        let ksize = self.kernel_size;
        let sections = vec![
            pe::Section {
                name: ".text",
                rva: 0x1000,
                size: meta - 0x1000,
                characteristics: pe::CODE,
            },
            pe::Section {
                name: ".rdata",
                rva: meta,
                size: 0x1000,
                characteristics: pe::RDATA,
            },
            pe::Section {
                name: "POOLCODE",
                rva: meta + 0x1000,
                size: 0x1000,
                characteristics: pe::CODE,
            },
            pe::Section {
                name: ".data",
                rva: meta + 0x2000,
                size: ksize - meta - 0x3000,
                characteristics: pe::DATA,
            },
            pe::Section {
                name: "INIT",
                rva: ksize - 0x1000,
                size: 0x1000,
                characteristics: pe::DISCARD,
            },
        ];
        let mut exports = Vec::new();
        for name in [
            "PsInitialSystemProcess",
            "PsLoadedModuleList",
            "KeNumberProcessors",
            "MmSystemRangeStart",
            "NtBuildLab",
            "NtBuildNumber",
            "PsActiveProcessHead",
            "KdDebuggerDataBlock",
        ] {
            // Only names the real kernel exports: PsActiveProcessHead/KdDebuggerDataBlock are not.
            if matches!(name, "PsActiveProcessHead" | "KdDebuggerDataBlock") {
                continue;
            }
            if let Some(rva) = self.profile.global(name) {
                exports.push((name, rva as u32));
            }
        }
        let guid = self
            .profile
            .guid_bytes()
            .ok_or_else(|| ForgeError::Internal("profile GUID is malformed".into()))?;
        let (base_name, full_path, export_name) = self.kernel_names();
        let checksum = 0x0080_0000 | (self.rng.next_u64() as u32 & 0x7f_ffff);
        let pdb_name = self.profile.pdb_name.clone();
        let img = pe::PeImage {
            machine: self.spec.machine_type(),
            base: self.kernel_base,
            size: ksize,
            timestamp: self.spec.kernel_timestamp,
            checksum,
            entry_rva: meta + 0x1000,
            dll: false,
            sections,
            meta_rva: meta,
            export_name: Some(export_name),
            exports,
            pdb_name: &pdb_name,
            guid,
            age: self.profile.age,
            os_version: (self.spec.nt_major as u16, self.spec.nt_minor as u16),
            imports: Vec::new(),
        };
        pe::write_image(&mut self.machine, &img)?;
        self.modules.push(ModuleTruth {
            name: base_name.to_string(),
            path: full_path,
            base: self.kernel_base,
            size: ksize,
            timestamp: self.spec.kernel_timestamp,
            checksum,
            pdb: Some(PdbTruth {
                name: pdb_name,
                guid: self.profile.guid.clone(),
                age: self.profile.age,
            }),
        });
        Ok(())
    }

    fn build_drivers(&mut self, with_code: &[VendorDriver]) -> Result<(), ForgeError> {
        let mut next = self.spec.plan.drivers;
        let mut next_session = self.spec.plan.session_drivers;
        let xp = self.spec.paging == Paging::X86Pae;
        for d in DRIVERS {
            if d.vista_plus && !self.spec.has_ci {
                continue;
            }
            let base = if d.name == "hal.dll" && xp {
                // XP loads the HAL right after the kernel.
                (self.kernel_base + u64::from(self.kernel_size)).div_ceil(0x10000) * 0x10000
            } else if d.session {
                let b = next_session;
                next_session += u64::from(d.size) + 0x10000;
                b
            } else {
                let b = next;
                next = (next + u64::from(d.size) + 0x1000).div_ceil(0x1000) * 0x1000;
                b
            };
            self.machine.map_range(base, u64::from(d.size))?;
            let (meta, sections) = pe::driver_sections(d.size);
            let guid: [u8; 16] = self.rng.bytes();
            let timestamp = (self.spec.kernel_timestamp.wrapping_sub(0x0100_0000))
                .wrapping_add(self.rng.below(0x00ff_ffff) as u32);
            let checksum = (self.rng.next_u64() as u32 & 0x3f_ffff) | 0x1_0000;
            let sites = with_code
                .iter()
                .find(|v| v.name == d.name)
                .map(|v| v.sites.as_slice())
                .unwrap_or(&[]);
            let (imports, code) = self.driver_code(d.name, base, meta, sites)?;
            let img = pe::PeImage {
                machine: self.spec.machine_type(),
                base,
                size: d.size,
                timestamp,
                checksum,
                entry_rva: d.size - 0x1000,
                dll: d.dll,
                sections,
                meta_rva: meta,
                export_name: if d.dll { Some(d.name) } else { None },
                exports: Vec::new(),
                pdb_name: d.pdb,
                guid,
                age: 1,
                os_version: (self.spec.nt_major as u16, self.spec.nt_minor as u16),
                imports,
            };
            pe::write_image(&mut self.machine, &img)?;
            if !code.is_empty() {
                self.machine.write(base + 0x1000, &[0xc3])?;
                self.machine
                    .write(base + u64::from(crate::code::CODE_RVA), &code)?;
            }
            let root = if xp && d.path.starts_with("system32\\") && !d.path.contains("drivers") {
                "\\WINDOWS\\"
            } else {
                "\\SystemRoot\\"
            };
            self.modules.push(ModuleTruth {
                name: d.name.to_string(),
                path: format!("{root}{}", d.path),
                base,
                size: d.size,
                timestamp,
                checksum,
                pdb: Some(PdbTruth {
                    name: d.pdb.to_string(),
                    guid: analyzer::kernel::pe::format_guid(&guid),
                    age: 1,
                }),
            });
        }
        Ok(())
    }

    /// Writes a UNICODE_STRING at `at` whose buffer is `buf` holding `s` (UTF-16).
    pub(crate) fn write_unicode_string(
        &mut self,
        at: u64,
        buf: u64,
        s: &str,
    ) -> Result<(), ForgeError> {
        let utf16: Vec<u8> = s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
        let len = utf16.len() as u16;
        self.machine.write(buf, &utf16)?;
        self.machine.write_u16(buf + u64::from(len), 0)?;
        self.machine.write_u16(at, len)?;
        self.machine.write_u16(at + 2, len + 2)?;
        let off = self.offset("_UNICODE_STRING", "Buffer")?;
        self.machine.write_ptr(at + off, buf)
    }

    /// Windows 10 19H1+ kernels (those whose symbols have ExPoolState and the segment-heap
    /// types): one segment heap per pool, registered in ExPoolState.PoolNode[0].Heaps[] (index
    /// 0 NonPagedPool, 2 PagedPool), keys in RtlpHpHeapGlobals, which ExPoolState's first
    /// pointer names. Small pool blocks then live in LFH/VS subsegments ([`crate::segheap`]).
    fn build_segment_heaps(&mut self) -> Result<(), ForgeError> {
        if self.spec.build < 18362 {
            return Ok(());
        }
        let Some(layout) = SegLayout::from_profile(&self.profile) else {
            return Ok(());
        };
        let state = self.global("ExPoolState")?;
        let globals = self.global("RtlpHpHeapGlobals")?;
        let pool_node = self.offset("_EX_POOL_HEAP_MANAGER_STATE", "PoolNode")?;
        let pools = self.offset("_EX_POOL_HEAP_MANAGER_STATE", "NumberOfPools")?;
        let heaps = self.offset("_EX_HEAP_POOL_NODE", "Heaps")?;
        let heap_key = self.rng.next_u64() | 0x0101_0101_0101_0101;
        let lfh_key = self.rng.next_u64() | 0x0101_0101_0101_0101;
        self.machine.write_u64(globals, heap_key)?;
        self.machine.write_u64(globals + 8, lfh_key)?;
        self.machine.write_u64(state, globals)?;
        self.machine.write_u32(state + pools, 1)?;
        for (index, region) in [(0u64, PoolKind::NonPaged), (2, PoolKind::Paged)] {
            let base = match region {
                PoolKind::NonPaged => self.nonpaged.base,
                PoolKind::Paged => self.paged.base,
            };
            let heap_va = base + 0x3000_0000;
            let heap = SegmentHeap::new(
                &mut self.machine,
                layout,
                heap_va,
                heap_va + 0x10_0000,
                heap_key,
                lfh_key,
            )?;
            self.machine
                .write_u64(state + pool_node + heaps + index * 8, heap_va)?;
            match region {
                PoolKind::NonPaged => self.nonpaged.segment_heap = Some(heap),
                PoolKind::Paged => self.paged.segment_heap = Some(heap),
            }
        }
        Ok(())
    }

    fn build_vendor_driver(&mut self, d: &VendorDriver) -> Result<(), ForgeError> {
        // After the last driver of the system-driver area. Session drivers (win32k) live in their
        // own area, which lies below the driver area on Windows 10 and above it on older builds.
        let (drivers, session) = (self.spec.plan.drivers, self.spec.plan.session_drivers);
        let in_driver_area = |b: u64| b >= drivers && (session < drivers || b < session);
        let base = match self
            .modules
            .iter()
            .filter(|m| in_driver_area(m.base))
            .map(|m| m.base + u64::from(m.size))
            .max()
        {
            Some(end) => (end + 0x1000).div_ceil(0x10000) * 0x10000,
            None => self.spec.plan.drivers,
        };
        let size = d.size.max(0x8000) & !0xfff;
        self.machine.map_range(base, u64::from(size))?;
        let (meta, sections) = pe::driver_sections(size);
        let (imports, code) = self.driver_code(d.name, base, meta, &d.sites)?;
        let guid: [u8; 16] = self.rng.bytes();
        let timestamp = self
            .spec
            .kernel_timestamp
            .wrapping_add(0x0120_0000)
            .wrapping_add(self.rng.below(0xffff) as u32);
        let checksum = (self.rng.next_u64() as u32 & 0x3f_ffff) | 0x1_0000;
        let img = pe::PeImage {
            machine: self.spec.machine_type(),
            base,
            size,
            timestamp,
            checksum,
            entry_rva: 0x1000,
            dll: false,
            sections,
            meta_rva: meta,
            export_name: None,
            exports: Vec::new(),
            pdb_name: d.pdb,
            guid,
            age: 1,
            os_version: (self.spec.nt_major as u16, self.spec.nt_minor as u16),
            imports,
        };
        pe::write_image(&mut self.machine, &img)?;
        // DriverEntry: ret.
        self.machine.write(base + 0x1000, &[0xc3])?;
        self.machine
            .write(base + u64::from(crate::code::CODE_RVA), &code)?;
        self.modules.push(ModuleTruth {
            name: d.name.to_string(),
            path: format!("\\SystemRoot\\System32\\drivers\\{}", d.name),
            base,
            size,
            timestamp,
            checksum,
            pdb: Some(PdbTruth {
                name: d.pdb.to_string(),
                guid: analyzer::kernel::pe::format_guid(&guid),
                age: 1,
            }),
        });
        Ok(())
    }

    /// A driver's calls, from [`System::sites`], in the order of its [`VendorDriver::sites`].
    pub fn vendor_calls(&self, name: &str) -> Option<VendorCalls> {
        let m = self.modules.iter().find(|m| m.name == name)?;
        let calls = self
            .sites
            .iter()
            .filter(|s| s.module == name)
            .map(|s| SiteCall {
                call: s.call,
                return_address: s.return_address(),
                iat_slot: s.iat_slot,
            })
            .collect();
        Some(VendorCalls {
            name: name.to_string(),
            base: m.base,
            size: m.size,
            calls,
        })
    }

    /// Imports (bound to the kernel's real RVAs) and code of a driver with allocation sites;
    /// nothing for a driver without. The sites are recorded in [`System::sites`].
    fn driver_code(
        &mut self,
        name: &str,
        base: u64,
        meta: u32,
        sites: &[AllocSite],
    ) -> Result<(Imports, Vec<u8>), ForgeError> {
        if sites.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut imports = Vec::new();
        for f in crate::code::IMPORTS {
            let rva = self
                .profile
                .global(f)
                .ok_or_else(|| ForgeError::MissingSymbol(f.to_string()))?;
            imports.push((f, self.kernel_base + rva));
        }
        let pe64 = self.spec.paging == Paging::X64;
        let (code, records) = crate::code::emit(name, base, meta, pe64, sites);
        self.sites.extend(records);
        Ok((imports, code))
    }

    fn build_module_list(&mut self) -> Result<(), ForgeError> {
        let head = self.global("PsLoadedModuleList")?;
        self.ps_loaded_module_list = head;
        let entry_size = self.type_size("_LDR_DATA_TABLE_ENTRY")?;
        let links = self.offset("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks")?;
        let modules = self.modules.clone();
        let mut nodes = Vec::new();
        for m in &modules {
            let strings = (m.path.len() as u64 + m.name.len() as u64 + 2) * 2;
            let entry = self.alloc_nonpaged(entry_size + strings + 8, b"MmLd")?;
            let full_buf = entry + entry_size;
            let base_buf = full_buf + (m.path.len() as u64 + 1) * 2;
            let full = self.offset("_LDR_DATA_TABLE_ENTRY", "FullDllName")?;
            let basen = self.offset("_LDR_DATA_TABLE_ENTRY", "BaseDllName")?;
            self.write_unicode_string(entry + full, full_buf, &m.path)?;
            self.write_unicode_string(entry + basen, base_buf, &m.name)?;
            let dll_base = self.offset("_LDR_DATA_TABLE_ENTRY", "DllBase")?;
            self.machine.write_ptr(entry + dll_base, m.base)?;
            let size_of_image = self.offset("_LDR_DATA_TABLE_ENTRY", "SizeOfImage")?;
            self.machine.write_u32(entry + size_of_image, m.size)?;
            self.put_ptr_opt(
                entry,
                "_LDR_DATA_TABLE_ENTRY",
                "EntryPoint",
                m.base + u64::from(m.size) - 0x1000,
            )?;
            self.put_opt(
                entry,
                "_LDR_DATA_TABLE_ENTRY",
                "TimeDateStamp",
                &m.timestamp.to_le_bytes(),
            )?;
            self.put_opt(
                entry,
                "_LDR_DATA_TABLE_ENTRY",
                "CheckSum",
                &m.checksum.to_le_bytes(),
            )?;
            // LDRP_ENTRY_PROCESSED | LDRP_IMAGE_DLL-ish flags as the kernel loader leaves them.
            self.put_opt(
                entry,
                "_LDR_DATA_TABLE_ENTRY",
                "Flags",
                &0x0900_4000u32.to_le_bytes(),
            )?;
            self.put_opt(
                entry,
                "_LDR_DATA_TABLE_ENTRY",
                "LoadCount",
                &1u16.to_le_bytes(),
            )?;
            self.put_opt(
                entry,
                "_LDR_DATA_TABLE_ENTRY",
                "ObsoleteLoadCount",
                &1u16.to_le_bytes(),
            )?;
            // The other two link fields point at themselves (empty rings), as for kernel modules.
            for f in ["InMemoryOrderLinks", "InInitializationOrderLinks"] {
                if let Some(o) = self.profile.offset("_LDR_DATA_TABLE_ENTRY", f) {
                    self.write_list_entry(entry + o, entry + o, entry + o)?;
                }
            }
            nodes.push(entry + links);
            self.ldr_entries.push(entry);
        }
        self.link_ring(head, &nodes)
    }

    fn build_processes(&mut self) -> Result<(), ForgeError> {
        let head = self.global("PsActiveProcessHead")?;
        self.ps_active_process_head = head;
        let size = self.type_size("_EPROCESS")?;
        let links = self.offset("_EPROCESS", "ActiveProcessLinks")?;
        let pcb = self.offset("_EPROCESS", "Pcb")?;
        let dtb_off = self.offset("_KPROCESS", "DirectoryTableBase")?;
        let table = if self.spec.paging == Paging::X86Pae {
            PROCS_XP
        } else {
            PROCS_NT6
        };
        let mut nodes = Vec::new();
        for (i, p) in table.iter().enumerate() {
            let ep = self.alloc_nonpaged(size, b"Proc")?;
            // Pcb.Header.Type = ProcessObject; Size in dwords.
            self.machine.write_u8(ep + pcb, 3)?;
            self.machine.write_u8(
                ep + pcb + 2,
                ((self.type_size("_KPROCESS")? / 4).min(255)) as u8,
            )?;
            let dtb = if i == 0 {
                self.machine.dtb
            } else {
                self.machine.new_process_root()?
            };
            self.machine.write_ptr(ep + pcb + dtb_off, dtb)?;
            self.machine
                .write_ptr(ep + self.offset("_EPROCESS", "UniqueProcessId")?, p.pid)?;
            self.machine.write_ptr(
                ep + self.offset("_EPROCESS", "InheritedFromUniqueProcessId")?,
                p.ppid,
            )?;
            let mut name = [0u8; 15];
            let n = p.name.len().min(14);
            name[..n].copy_from_slice(&p.name.as_bytes()[..n]);
            self.machine
                .write(ep + self.offset("_EPROCESS", "ImageFileName")?, &name)?;
            let jitter = self.rng.below(10_000_000);
            let create = self.clock.boot_time() + p.started * 10_000_000 + jitter;
            self.machine
                .write_u64(ep + self.offset("_EPROCESS", "CreateTime")?, create)?;
            self.machine
                .write_u32(ep + self.offset("_EPROCESS", "ActiveThreads")?, p.threads)?;
            if i > 0 {
                let peb = match self.spec.paging {
                    Paging::X64 => 0x0000_00a0_0000_0000 + (self.rng.below(0x7_0000) << 12),
                    Paging::X86Pae => 0x7ffd_0000 + (self.rng.below(0xf) << 12),
                };
                self.put_ptr_opt(ep, "_EPROCESS", "Peb", peb)?;
            }
            // Empty, closed thread lists (no ETHREADs are forged yet).
            for (ty, base) in [("_EPROCESS", ep), ("_KPROCESS", ep + pcb)] {
                if let Some(o) = self.profile.offset(ty, "ThreadListHead") {
                    self.write_list_entry(base + o, base + o, base + o)?;
                }
            }
            nodes.push(ep + links);
            self.processes.push(ProcessTruth {
                pid: p.pid,
                ppid: p.ppid,
                name: p.name.to_string(),
                eprocess: ep,
                create_time: create,
                threads: p.threads,
                directory_table_base: dtb,
            });
        }
        self.link_ring(head, &nodes)
    }

    fn build_kuser_shared_data(&mut self) -> Result<(), ForgeError> {
        let k = self.spec.plan.kuser_shared_data;
        self.machine.map_range(k, PAGE)?;
        let t = "_KUSER_SHARED_DATA";
        let uptime = self.clock.up_time;
        self.put_opt(k, t, "TickCountMultiplier", &0x0fa0_0000u32.to_le_bytes())?;
        let ksystem_time = |v: u64| {
            let mut b = [0u8; 12];
            b[0..4].copy_from_slice(&(v as u32).to_le_bytes());
            b[4..8].copy_from_slice(&((v >> 32) as u32).to_le_bytes());
            b[8..12].copy_from_slice(&((v >> 32) as u32).to_le_bytes());
            b
        };
        self.put_opt(k, t, "InterruptTime", &ksystem_time(uptime))?;
        self.put_opt(k, t, "SystemTime", &ksystem_time(self.clock.system_time))?;
        let ticks = uptime / 156_250;
        self.put_opt(k, t, "TickCount", &ksystem_time(ticks))?;
        self.put_opt(k, t, "TickCountLow", &(ticks as u32).to_le_bytes())?;
        let machine = self.spec.machine_type();
        self.put_opt(k, t, "ImageNumberLow", &machine.to_le_bytes())?;
        self.put_opt(k, t, "ImageNumberHigh", &machine.to_le_bytes())?;
        let root = if self.spec.paging == Paging::X86Pae {
            "C:\\WINDOWS"
        } else {
            "C:\\Windows"
        };
        let root16: Vec<u8> = root.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
        self.put_opt(k, t, "NtSystemRoot", &root16)?;
        self.put_opt(k, t, "NtProductType", &self.spec.product_type.to_le_bytes())?;
        self.put_opt(k, t, "ProductTypeIsValid", &[1])?;
        self.put_opt(k, t, "NtMajorVersion", &self.spec.nt_major.to_le_bytes())?;
        self.put_opt(k, t, "NtMinorVersion", &self.spec.nt_minor.to_le_bytes())?;
        self.put_opt(k, t, "NtBuildNumber", &self.spec.build.to_le_bytes())?;
        let pages = (self.memory_size / PAGE) as u32;
        self.put_opt(k, t, "NumberOfPhysicalPages", &pages.to_le_bytes())?;
        self.put_opt(k, t, "ActiveProcessorCount", &self.processors.to_le_bytes())?;
        Ok(())
    }

    fn build_globals(&mut self) -> Result<(), ForgeError> {
        let ptr = self.ptr_size();
        let lab = self.global("NtBuildLab")?;
        let mut s = self.spec.build_lab.as_bytes().to_vec();
        s.push(0);
        self.machine.write(lab, &s)?;
        if let Ok(lab_ex) = self.global("NtBuildLabEx") {
            let mut s = format!(
                "{}.{}",
                self.spec.build,
                self.spec
                    .build_lab
                    .split_once('.')
                    .map(|x| x.1)
                    .unwrap_or("")
            )
            .into_bytes();
            s.push(0);
            self.machine.write(lab_ex, &s)?;
        }
        let nbn = self.global("NtBuildNumber")?;
        self.machine.write_u32(nbn, 0xf000_0000 | self.spec.build)?;
        if let Ok(csd) = self.global("CmNtCSDVersion") {
            self.machine.write_u32(csd, self.spec.csd_version)?;
        }
        let knp = self.global("KeNumberProcessors")?;
        if ptr == 4 {
            self.machine.write_u8(knp, self.processors as u8)?; // CCHAR on XP
        } else {
            self.machine.write_u32(knp, self.processors)?;
        }
        let system = self.processes.first().map(|p| p.eprocess).unwrap_or(0);
        let psp = self.global("PsInitialSystemProcess")?;
        self.machine.write_ptr(psp, system)?;
        let range = if ptr == 4 {
            0x8000_0000
        } else {
            0xffff_8000_0000_0000
        };
        self.machine
            .write_ptr(self.global("MmSystemRangeStart")?, range)?;
        if let Ok(n) = self.global("MmNumberOfPhysicalPages") {
            self.machine
                .write_u32(n, (self.memory_size / PAGE) as u32)?;
        }
        // MmPfnDatabase points at a mapped (empty) PFN database page.
        self.machine.map_range(self.pfn_database, PAGE)?;
        self.machine
            .write_ptr(self.global("MmPfnDatabase")?, self.pfn_database)?;
        // KiProcessorBlock[i] -> the PRCB inside each processor's PCR page.
        let prcb_off = if ptr == 4 { 0x120 } else { 0x180 };
        let kpb = self.global("KiProcessorBlock")?;
        for cpu in 0..u64::from(self.processors) {
            let pcr = self.spec.plan.prcb + cpu * 0x10 * PAGE;
            self.machine.map_range(pcr, PAGE)?;
            self.machine
                .write_ptr(kpb + cpu * u64::from(ptr), pcr + prcb_off)?;
        }
        Ok(())
    }

    fn build_debugger_data(&mut self) -> Result<(), ForgeError> {
        let ptr = self.ptr_size();
        let x = |v: u64| sign_extend32(ptr, v).to_le_bytes();
        let kdbg = self.global("KdDebuggerDataBlock")?;
        self.kdbg = kdbg;
        let size: u32 = match (ptr, self.spec.build) {
            (4, _) => 0x290,
            (_, b) if b < 9200 => 0x340,
            _ => 0x368,
        };
        let m = &mut self.machine;
        m.write(kdbg, &x(kdbg))?;
        m.write(kdbg + 8, &x(kdbg))?;
        m.write(kdbg + 0x10, b"KDBG")?;
        m.write_u32(kdbg + 0x14, size)?;
        m.write(kdbg + 0x18, &x(self.kernel_base))?;
        if ptr == 4 {
            m.write_u16(kdbg + 0x36, 1)?; // PaeEnabled
        }
        m.write(kdbg + 0x48, &x(self.ps_loaded_module_list))?;
        m.write(kdbg + 0x50, &x(self.ps_active_process_head))?;
        let fields: &[(u64, &str)] = &[
            (0xc0, "MmPfnDatabase"),
            (0x208, "NtBuildLab"),
            (0x218, "KiProcessorBlock"),
            (0x268, "CmNtCSDVersion"),
            (0xf8, "MmNumberOfPhysicalPages"),
            (0x80, "KeBugCheckCallbackListHead"),
            (0x58, "PspCidTable"),
        ];
        for &(off, name) in fields {
            if let Some(rva) = self.profile.global(name) {
                let v = self.kernel_base + rva;
                self.machine.write(kdbg + off, &x(v))?;
            }
        }
        if size >= 0x368 {
            let pte_base = self.machine.pte_base();
            self.machine.write_u64(kdbg + 0x360, pte_base)?;
        }

        // DBGKD_GET_VERSION64.
        let vb = self.global("KdVersionBlock")?;
        let m = &mut self.machine;
        m.write_u16(vb, 0xf)?;
        m.write_u16(vb + 2, self.spec.build as u16)?;
        m.write_u8(vb + 4, 6)?;
        m.write_u8(vb + 5, 2)?;
        let flags: u16 = if ptr == 8 { 0x1 | 0x2 | 0x4 } else { 0x1 | 0x2 };
        m.write_u16(vb + 6, flags)?;
        m.write_u16(vb + 8, self.spec.machine_type())?;
        m.write(vb + 10, &[0x0c, 0x03, 0x33, 0])?; // MaxPacketType, MaxStateChange, MaxManipulate, Simulation
        m.write(vb + 16, &x(self.kernel_base))?;
        m.write(vb + 24, &x(self.ps_loaded_module_list))?;
        m.write(vb + 32, &x(kdbg))?;
        Ok(())
    }

    /// Time since boot at the crash, 100 ns units.
    pub fn up_time(&self) -> u64 {
        self.clock.up_time
    }

    /// Everything the truth file reports about virtual memory: merged mapped ranges.
    pub fn mapped(&self) -> Vec<(u64, u64)> {
        self.machine.mapped_ranges()
    }
}
