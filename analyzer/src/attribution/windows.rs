//! Is a loaded module part of Windows? Microsoft's own drivers (NDIS.SYS, tcpip.sys, ...)
//! allocate with ExAllocatePool and with tags drivers share like everyone else, but they are
//! not what a vendor's support is asked about: a verdict never blames them as a third-party
//! leaker on code evidence alone. Each recognition says what it rests on:
//!
//! - `kernel-image`: the image at the kernel's base (ntoskrnl, ntkrnlpa, ... whatever its
//!   file name), and the HAL;
//! - `inbox-list`: its file name is on the list below of drivers Windows ships *and* it was
//!   loaded from the Windows directory (`\SystemRoot\System32\...`,
//!   `\Windows\System32\...`); a third-party file of the same name elsewhere is not taken.
//!
//! The list holds the drivers of a default Windows installation (client and server, XP to
//! Windows 11) that are most often loaded on a server: the boot, file system, storage,
//! network, display and power drivers. It is maintained here, by hand, from the drivers
//! folder of Windows installations and Microsoft's driver documentation; a Windows driver
//! missing from it is treated as third-party (its figures are shown, its name is not
//! hidden), never the other way round. The image's signing level (`_KLDR_DATA_TABLE_ENTRY`
//! `SignatureLevel`, Windows 8.1+) would be stronger evidence, but which level
//! WHQL-signed third-party drivers get could not be established here without real dumps, so
//! it is not used.

use crate::kernel::Module;
use serde::{Deserialize, Serialize};

/// What a module's recognition as part of Windows rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowsBasis {
    /// The kernel image (at the kernel's base) or the HAL.
    KernelImage,
    /// On the list of drivers Windows ships, and loaded from the Windows directory.
    InboxList,
}

/// Drivers and DLLs Windows ships (lower case).
pub const INBOX: &[&str] = &[
    // Kernel, HAL and their companions.
    "hal.dll",
    "halmacpi.dll",
    "halacpi.dll",
    "kdcom.dll",
    "kd.dll",
    "kdnet.dll",
    "kdstub.dll",
    "bootvid.dll",
    "ci.dll",
    "clfs.sys",
    "pshed.dll",
    "mcupdate_genuineintel.dll",
    "mcupdate_authenticamd.dll",
    "werkernel.sys",
    "tm.sys",
    "cng.sys",
    "ksecdd.sys",
    "ksecpkg.sys",
    "msrpc.sys",
    "wdf01000.sys",
    "wdfldr.sys",
    "acpi.sys",
    "acpiex.sys",
    "wmilib.sys",
    "msisadrv.sys",
    "pci.sys",
    "pcw.sys",
    "vdrvroot.sys",
    "pdc.sys",
    "cea.sys",
    "intelppm.sys",
    "amdppm.sys",
    "processr.sys",
    "intelpep.sys",
    "ntosext.sys",
    "skci.dll",
    "tpm.sys",
    "mssecflt.sys",
    "sgrmagent.sys",
    "partmgr.sys",
    "volmgr.sys",
    "volmgrx.sys",
    "mountmgr.sys",
    "spaceport.sys",
    "volsnap.sys",
    "fvevol.sys",
    "rdyboost.sys",
    "ehstorclass.sys",
    // Storage and buses.
    "storport.sys",
    "scsiport.sys",
    "ataport.sys",
    "atapi.sys",
    "pciide.sys",
    "pciidex.sys",
    "stornvme.sys",
    "storahci.sys",
    "msahci.sys",
    "disk.sys",
    "classpnp.sys",
    "cdrom.sys",
    "vmbus.sys",
    "storvsc.sys",
    "vmstorfl.sys",
    "hidclass.sys",
    "hidparse.sys",
    "hidusb.sys",
    "kbdclass.sys",
    "mouclass.sys",
    "kbdhid.sys",
    "mouhid.sys",
    "i8042prt.sys",
    "usbport.sys",
    "usbhub.sys",
    "usbhub3.sys",
    "usbxhci.sys",
    "usbehci.sys",
    "usbohci.sys",
    "usbuhci.sys",
    "ucx01000.sys",
    "usbccgp.sys",
    "usbstor.sys",
    "uaspstor.sys",
    "usbd.sys",
    "serial.sys",
    "serenum.sys",
    "parport.sys",
    "fdc.sys",
    "flpydisk.sys",
    "sdbus.sys",
    "sdstor.sys",
    "iastorv.sys",
    "mpio.sys",
    "msdsm.sys",
    "iscsiprt.sys",
    "msiscsi.sys",
    // File systems and filters.
    "ntfs.sys",
    "fastfat.sys",
    "exfat.sys",
    "refs.sys",
    "refsv1.sys",
    "udfs.sys",
    "cdfs.sys",
    "fltmgr.sys",
    "fileinfo.sys",
    "wof.sys",
    "luafv.sys",
    "npfs.sys",
    "msfs.sys",
    "mup.sys",
    "rdbss.sys",
    "mrxsmb.sys",
    "mrxsmb10.sys",
    "mrxsmb20.sys",
    "srv.sys",
    "srv2.sys",
    "srvnet.sys",
    "dfsc.sys",
    "csc.sys",
    "bindflt.sys",
    "wcifs.sys",
    "cldflt.sys",
    "storqosflt.sys",
    "filecrypt.sys",
    "wdfilter.sys",
    "wdboot.sys",
    "wdnisdrv.sys",
    "bowser.sys",
    "nfsrdr.sys",
    "rdpdr.sys",
    "null.sys",
    "beep.sys",
    "fs_rec.sys",
    "ksthunk.sys",
    // Network.
    "ndis.sys",
    "tcpip.sys",
    "tcpip6.sys",
    "tcpipreg.sys",
    "netio.sys",
    "fwpkclnt.sys",
    "afd.sys",
    "afunix.sys",
    "tdx.sys",
    "tdi.sys",
    "netbt.sys",
    "netbios.sys",
    "ws2ifsl.sys",
    "http.sys",
    "mrxdav.sys",
    "pacer.sys",
    "ndisuio.sys",
    "nwifi.sys",
    "vwififlt.sys",
    "vwifibus.sys",
    "wfplwfs.sys",
    "ndiscap.sys",
    "ndiswan.sys",
    "rasl2tp.sys",
    "raspptp.sys",
    "raspppoe.sys",
    "rassstp.sys",
    "rasacd.sys",
    "wanarp.sys",
    "ipnat.sys",
    "netvsc.sys",
    "vmswitch.sys",
    "mslldp.sys",
    "lltdio.sys",
    "rspndr.sys",
    "nsiproxy.sys",
    "nsi.sys",
    "ndproxy.sys",
    "bridge.sys",
    "msquic.sys",
    "wfpcapture.sys",
    "mpsdrv.sys",
    "ipfltdrv.sys",
    "e1g60i32.sys",
    "e1i63x64.sys",
    "e1d65x64.sys",
    "vmxnet3.sys",
    // Display, sound, power, misc.
    "win32k.sys",
    "win32kbase.sys",
    "win32kfull.sys",
    "cdd.dll",
    "dxgkrnl.sys",
    "dxgmms1.sys",
    "dxgmms2.sys",
    "watchdog.sys",
    "videoprt.sys",
    "basicdisplay.sys",
    "basicrender.sys",
    "vga.sys",
    "vgapnp.sys",
    "monitor.sys",
    "portcls.sys",
    "ks.sys",
    "drmk.sys",
    "hdaudbus.sys",
    "hdaudio.sys",
    "battc.sys",
    "cmbatt.sys",
    "acpipagr.sys",
    "wmiacpi.sys",
    "mmcss.sys",
    "condrv.sys",
    "wmilib.sys",
    "crashdmp.sys",
    "dumpfve.sys",
    "dump_diskdump.sys",
    "dump_storport.sys",
    "dump_stornvme.sys",
    "dump_storahci.sys",
    "dump_dumpfve.sys",
    "bam.sys",
    "ahcache.sys",
    "peauth.sys",
    "spsys.sys",
    "tcpipreg.sys",
    "vmbkmcl.sys",
    "hvsocket.sys",
    "hvservice.sys",
    "winhvr.sys",
    "winhv.sys",
    "vid.sys",
    "gpuenergydrv.sys",
    "msgpioclx.sys",
    "iorate.sys",
    "storufs.sys",
    "sysmon.sys",
    "rdpbus.sys",
    "rdpvideominiport.sys",
    "tsddd.dll",
    "rdpwd.sys",
    "tdtcp.sys",
    "termdd.sys",
    "secdrv.sys",
    "umbus.sys",
    "swenum.sys",
    "mssmbios.sys",
    "compositebus.sys",
    "kdnic.sys",
    "umpass.sys",
    "rdpencdd.sys",
    "rdprefmp.sys",
    "vmgencounter.sys",
    "hyperkbd.sys",
    "hypervideo.sys",
    "synth3dvsc.sys",
    "iumdll.dll",
];

/// Whether `m` is part of Windows, and why. `kernel_base` marks the kernel image.
pub fn windows_basis(m: &Module, kernel_base: Option<u64>) -> Option<WindowsBasis> {
    let name = m.name.to_ascii_lowercase();
    if Some(m.base) == kernel_base || name == "hal.dll" {
        return Some(WindowsBasis::KernelImage);
    }
    (INBOX.contains(&name.as_str()) && in_windows_directory(&m.path))
        .then_some(WindowsBasis::InboxList)
}

/// `\SystemRoot\...`, `\Windows\...`, `C:\Windows\...` or `\??\C:\Windows\...` (as loader
/// entries name them), or a bare name (triage dumps and some boot drivers give no path).
fn in_windows_directory(path: &str) -> bool {
    let p = path.to_ascii_lowercase().replace('/', "\\");
    if !p.contains('\\') {
        return true;
    }
    let p = p.strip_prefix("\\??\\").unwrap_or(&p);
    let p = match p.as_bytes() {
        [_, b':', ..] => &p[2..],
        _ => p,
    };
    p.starts_with("\\systemroot\\") || p.starts_with("\\windows\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, path: &str, base: u64) -> Module {
        Module {
            name: name.into(),
            path: path.into(),
            base,
            size: 0x1000,
            timestamp: None,
            checksum: None,
            ldr_entry: None,
            pe: None,
            pe_error: None,
        }
    }

    #[test]
    fn windows_drivers_are_recognised_by_name_and_place_only() {
        let kb = Some(0x1000);
        assert_eq!(
            windows_basis(
                &m("ntkrnlpa.exe", "\\WINDOWS\\system32\\ntkrnlpa.exe", 0x1000),
                kb
            ),
            Some(WindowsBasis::KernelImage)
        );
        assert_eq!(
            windows_basis(
                &m(
                    "NDIS.SYS",
                    "\\SystemRoot\\system32\\drivers\\NDIS.SYS",
                    0x5000
                ),
                kb
            ),
            Some(WindowsBasis::InboxList)
        );
        assert_eq!(
            windows_basis(
                &m(
                    "tcpip.sys",
                    "\\??\\C:\\Windows\\System32\\drivers\\tcpip.sys",
                    0x6000
                ),
                kb
            ),
            Some(WindowsBasis::InboxList)
        );
        // The same name loaded from a vendor's folder is not taken for Windows'.
        assert_eq!(
            windows_basis(
                &m(
                    "ndis.sys",
                    "\\??\\C:\\Program Files\\Acme\\ndis.sys",
                    0x7000
                ),
                kb
            ),
            None
        );
        assert_eq!(
            windows_basis(
                &m(
                    "acmeflt.sys",
                    "\\SystemRoot\\system32\\drivers\\acmeflt.sys",
                    0x8000
                ),
                kb
            ),
            None
        );
    }
}
