//! The kernels the forge can imitate. Layouts and global RVAs are never written here: they are
//! read at run time from the corpus (ISF for the x64 kernels, the PDB for XP). This table holds
//! only what symbols do not carry: version strings, the address-space plan, the clock.

use crate::space::Paging;
use std::path::{Path, PathBuf};

/// Where a profile's symbols live, relative to the corpus directory.
#[derive(Debug, Clone, Copy)]
pub enum SymbolSource {
    Isf(&'static str),
    Pdb(&'static str),
}

/// The virtual address-space plan of one kernel family: where the kernel, drivers, pools and the
/// page-table self-map live. Distinct regions give the PML4 the several kernel-half entries a
/// real one has.
#[derive(Debug, Clone, Copy)]
pub struct AddressPlan {
    pub kernel_base: u64,
    pub drivers: u64,
    pub session_drivers: u64,
    pub nonpaged_pool: u64,
    pub paged_pool: u64,
    pub pfn_database: u64,
    pub prcb: u64,
    pub kuser_shared_data: u64,
    /// x64 only: PML4 index of the self-map (Windows 7 fixed 0x1ED, Windows 10 random).
    pub self_map_index: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ProfileSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub build: u32,
    pub paging: Paging,
    pub symbols: SymbolSource,
    pub nt_major: u32,
    pub nt_minor: u32,
    /// KUSER_SHARED_DATA.NtProductType: 1 workstation, 3 server.
    pub product_type: u32,
    pub build_lab: &'static str,
    /// CmNtCSDVersion (service pack << 8).
    pub csd_version: u32,
    pub plan: AddressPlan,
    /// SystemTime of the crash, FILETIME.
    pub system_time: u64,
    /// Kernel image TimeDateStamp.
    pub kernel_timestamp: u32,
    /// Whether the kernel ships ci.dll (Vista+).
    pub has_ci: bool,
}

const WIN10_PLAN: AddressPlan = AddressPlan {
    kernel_base: 0xfffff806_1a000000,
    drivers: 0xfffff806_1c000000,
    session_drivers: 0xffffd7a1_40000000,
    nonpaged_pool: 0xffffa10f_2a000000,
    paged_pool: 0xffffc80c_1d000000,
    pfn_database: 0xffffe580_00000000,
    prcb: 0xffffb381_00000000,
    kuser_shared_data: 0xfffff780_00000000,
    self_map_index: 0x1b3,
};

pub const PROFILES: &[ProfileSpec] = &[
    ProfileSpec {
        name: "xp-2600-x86pae",
        description: "Windows XP SP3 x86 PAE (ntkrnlpa.pdb 30B5FB31-AE7E-4ACA-ABA7-50AA241FF331)",
        build: 2600,
        paging: Paging::X86Pae,
        symbols: SymbolSource::Pdb("pdb/ntkrnlpa.pdb"),
        nt_major: 5,
        nt_minor: 1,
        product_type: 1,
        build_lab: "2600.xpsp_sp3_qfe.100216-1510",
        csd_version: 0x300,
        plan: AddressPlan {
            kernel_base: 0x804d_7000,
            drivers: 0xb900_0000,
            session_drivers: 0xbf80_0000,
            nonpaged_pool: 0x8a00_0000,
            paged_pool: 0xe100_0000,
            pfn_database: 0x8160_0000,
            prcb: 0xffdf_f000,
            kuser_shared_data: 0xffdf_0000,
            self_map_index: 0,
        },
        system_time: 0x01ca_d2e4_5c3a_8000, // 2010-04-03 04:15:57 UTC
        kernel_timestamp: 0x4b7d_0f3c,
        has_ci: false,
    },
    ProfileSpec {
        name: "win7-7601-x64",
        description: "Windows 7 SP1 x64 (ntkrnlmp.pdb 339E7413-3576-439C-BCDF-7E0229DA3773)",
        build: 7601,
        paging: Paging::X64,
        symbols: SymbolSource::Isf("isf/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-1.json.xz"),
        nt_major: 6,
        nt_minor: 1,
        product_type: 1,
        build_lab: "7601.24545.amd64fre.win7sp1_ldr_escrow.200102-1707",
        csd_version: 0x100,
        plan: AddressPlan {
            kernel_base: 0xfffff800_02a1b000,
            drivers: 0xfffff880_00c00000,
            session_drivers: 0xfffff960_00000000,
            nonpaged_pool: 0xfffffa80_02000000,
            paged_pool: 0xfffff8a0_00000000,
            pfn_database: 0xfffffa80_00000000,
            prcb: 0xfffff880_009e0000,
            kuser_shared_data: 0xfffff780_00000000,
            self_map_index: 0x1ed,
        },
        system_time: 0x01d5_c1ae_7f2b_3000, // 2020-01-02 20:52:07 UTC
        kernel_timestamp: 0x5e0e_b0b6,
        has_ci: true,
    },
    ProfileSpec {
        name: "win10-17763-x64",
        description: "Windows 10 1809 x64 (ntkrnlmp.pdb 8B11040A-5928-757B-1139-0AC78F6B6925)",
        build: 17763,
        paging: Paging::X64,
        symbols: SymbolSource::Isf("isf/ntkrnlmp.pdb/8B11040A5928757B11390AC78F6B6925-1.json.xz"),
        nt_major: 10,
        nt_minor: 0,
        product_type: 1,
        build_lab: "17763.1.amd64fre.rs5_release.180914-1434",
        csd_version: 0,
        plan: AddressPlan {
            self_map_index: 0x1a4,
            ..WIN10_PLAN
        },
        system_time: 0x01d4_8a4f_3b1c_d000, // 2018-12-02 14:56:39 UTC
        kernel_timestamp: 0x5b9c_2c1a,
        has_ci: true,
    },
    ProfileSpec {
        name: "win10-19041-x64",
        description: "Windows 10 2004 x64, build 19041.804 (ntkrnlmp.pdb 5278AFF8-6C34-1677-D7D7-835C85B7B844)",
        build: 19041,
        paging: Paging::X64,
        symbols: SymbolSource::Isf("isf/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz"),
        nt_major: 10,
        nt_minor: 0,
        product_type: 1,
        build_lab: "19041.1.amd64fre.vb_release.191206-1406",
        csd_version: 0,
        plan: WIN10_PLAN,
        system_time: 0x01d7_15b4_6c8a_e000, // 2021-03-10 13:51:09 UTC
        kernel_timestamp: 0x6e0f_9c2a,
        has_ci: true,
    },
    ProfileSpec {
        name: "server2022-20348-x64",
        description: "Windows Server 2022 x64, build 20348 (ntkrnlmp.pdb C2EADB24-A615-E947-2CE4-7C8ADD31F130)",
        build: 20348,
        paging: Paging::X64,
        symbols: SymbolSource::Isf("isf/ntkrnlmp.pdb/C2EADB24A615E9472CE47C8ADD31F130-1.json.xz"),
        nt_major: 10,
        nt_minor: 0,
        product_type: 3,
        build_lab: "20348.1.amd64fre.fe_release.210507-1500",
        csd_version: 0,
        plan: AddressPlan {
            self_map_index: 0x1c7,
            ..WIN10_PLAN
        },
        system_time: 0x01d8_1f0c_9e5d_4000, // 2022-02-11 06:00:06 UTC
        kernel_timestamp: 0x2c7a_59a1,
        has_ci: true,
    },
];

pub fn find(name: &str) -> Option<&'static ProfileSpec> {
    PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

impl ProfileSpec {
    pub fn symbol_path(&self, corpus: &Path) -> PathBuf {
        match self.symbols {
            SymbolSource::Isf(rel) | SymbolSource::Pdb(rel) => corpus.join(rel),
        }
    }

    /// An ISF profile's file inside a Volatility 3 symbol folder (`ntkrnlmp.pdb/...json.xz`).
    pub fn isf_relative(&self) -> Option<&'static str> {
        match self.symbols {
            SymbolSource::Isf(rel) => rel.strip_prefix("isf/"),
            SymbolSource::Pdb(_) => None,
        }
    }

    pub fn arch(&self) -> &'static str {
        match self.paging {
            Paging::X64 => "x64",
            Paging::X86Pae => "x86",
        }
    }

    pub fn machine_type(&self) -> u16 {
        match self.paging {
            Paging::X64 => 0x8664,
            Paging::X86Pae => 0x14c,
        }
    }
}
