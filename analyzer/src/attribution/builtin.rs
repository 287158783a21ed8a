//! A small built-in table of common Windows pool tags, written for this project (our own short
//! descriptions), used when no pooltag.txt is given and to name the kernel's own tags.

use crate::pool::Tag;

/// (tag, binary, description).
pub const BUILT_IN: &[(&[u8; 4], &str, &str)] = &[
    (b"Irp ", "nt", "I/O request packets"),
    (b"Mdl ", "nt", "memory descriptor lists"),
    (b"MmSt", "nt", "memory manager: section prototype PTEs"),
    (b"MmCa", "nt", "memory manager: control areas"),
    (b"Cont", "nt", "contiguous physical memory allocations"),
    (b"Vad ", "nt", "virtual address descriptors"),
    (b"VadS", "nt", "short virtual address descriptors"),
    (b"Proc", "nt", "process objects"),
    (b"Thre", "nt", "thread objects"),
    (b"Toke", "nt", "access token objects"),
    (b"File", "nt", "file objects"),
    (b"Even", "nt", "event objects"),
    (b"Muta", "nt", "mutant (mutex) objects"),
    (b"Sema", "nt", "semaphore objects"),
    (b"Key ", "nt", "registry key objects"),
    (b"Driv", "nt", "driver objects"),
    (b"Devi", "nt", "device objects"),
    (b"Symb", "nt", "symbolic link objects"),
    (b"ObNm", "nt", "object manager: names"),
    (b"ObDi", "nt", "object manager: directories"),
    (b"CM31", "nt", "registry (configuration manager) data"),
    (b"CM25", "nt", "registry (configuration manager) data"),
    (b"AlMs", "nt", "ALPC messages"),
    (b"EtwB", "nt", "ETW trace buffers"),
    (b"IoNm", "nt", "I/O manager: name buffers"),
    (
        b"None",
        "<any>",
        "allocations through ExAllocatePool, which takes no tag: see which drivers call it",
    ),
    (
        b"Ddk ",
        "<any>",
        "default tag of old-DDK ExAllocatePool callers",
    ),
    (b"NtFs", "ntfs.sys", "NTFS structures"),
    (b"Ntfx", "ntfs.sys", "NTFS general allocations"),
    (b"FMfn", "fltmgr.sys", "filter manager: name cache"),
    (b"FMfc", "fltmgr.sys", "filter manager: file contexts"),
    (b"FMsl", "fltmgr.sys", "filter manager: stream lists"),
    (b"USBD", "usbd.sys", "USB class driver support"),
    (b"Acpi", "acpi.sys", "ACPI driver data"),
];

/// The built-in entry for a tag.
pub fn lookup(tag: Tag) -> Option<(&'static str, &'static str)> {
    BUILT_IN
        .iter()
        .find(|(t, _, _)| **t == tag.0)
        .map(|&(_, b, d)| (b, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (t, b, d) in BUILT_IN {
            assert!(Tag(**t).is_printable() && !b.is_empty() && !d.is_empty());
            assert!(seen.insert(**t), "duplicate {}", Tag(**t));
        }
        assert!(BUILT_IN.len() >= 30);
        assert_eq!(lookup(Tag(*b"Irp ")).map(|(b, _)| b), Some("nt"));
        assert_eq!(lookup(Tag(*b"Zzzz")), None);
    }
}
