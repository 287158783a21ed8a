//! Cheap checks that a file is what its key says: the right magic (so an HTML error page
//! served with 200 never lands in the cache as a PDB), and for files found in a flat directory
//! (no key in the path) the identity itself: a PE's TimeDateStamp and SizeOfImage, a PDB's
//! GUID/signature and age.

use super::bytes::u32_at;
use super::key::SymbolKey;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const MSF7: &[u8] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";
const MSF2: &[u8] = b"Microsoft C/C++ program database 2.00\r\n\x1aJG\0\0";
const IMAGE_EXTENSIONS: [&str; 8] = ["exe", "dll", "sys", "ocx", "drv", "efi", "cpl", "scr"];

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Err(reason) when the file's first bytes cannot be a file of this key's kind. Unknown
/// extensions (`.dbg`, `.bin`...) pass unchecked.
pub(crate) fn check_magic(key: &SymbolKey, f: &mut File) -> Result<(), String> {
    let mut head = [0u8; 64];
    f.rewind().map_err(|e| e.to_string())?;
    let n = read_up_to(f, &mut head).map_err(|e| e.to_string())?;
    let _ = f.rewind();
    let head = head.get(..n).unwrap_or(&[]);
    let ext = extension(key.name());
    if ext == "pdb" && !(head.starts_with(MSF7) || head.starts_with(MSF2)) {
        return Err(format!("not a PDB (starts with {:?})", preview(head)));
    }
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) && !head.starts_with(b"MZ") {
        return Err(format!("not a PE image (starts with {:?})", preview(head)));
    }
    Ok(())
}

fn preview(b: &[u8]) -> String {
    String::from_utf8_lossy(b.get(..16).unwrap_or(b)).into_owned()
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// (TimeDateStamp, SizeOfImage) of a PE file.
pub(crate) fn pe_identity(f: &mut File) -> Option<(u32, u32)> {
    let mut head = [0u8; 0x40];
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_exact(&mut head).ok()?;
    if !head.starts_with(b"MZ") {
        return None;
    }
    let pe = u64::from(u32_at(&head, 0x3c)?);
    let mut nt = [0u8; 24 + 60];
    f.seek(SeekFrom::Start(pe)).ok()?;
    f.read_exact(&mut nt).ok()?;
    if !nt.starts_with(b"PE\0\0") {
        return None;
    }
    // IMAGE_FILE_HEADER.TimeDateStamp at +8; SizeOfImage at +56 of the optional header (+24),
    // the same offset in PE32 and PE32+.
    Some((u32_at(&nt, 8)?, u32_at(&nt, 24 + 56)?))
}

/// (GUID as 32 upper-case hex digits, or the NB10 signature as 8; age) of a PDB. The age is the
/// DBI stream's (the one CodeView records carry), else the PDB info stream's.
pub(crate) fn pdb_identity(path: &Path) -> Option<(String, String, u32)> {
    // Any file with the right name in a flat directory gets here: a parser panic on junk must
    // not take the process down.
    std::panic::catch_unwind(|| pdb_identity_inner(path))
        .ok()
        .flatten()
}

fn pdb_identity_inner(path: &Path) -> Option<(String, String, u32)> {
    let mut file = std::fs::File::open(path).ok()?;
    crate::msf_check::check(&mut file).ok()?;
    std::io::Seek::rewind(&mut file).ok()?;
    let mut pdb = pdb::PDB::open(file).ok()?;
    let info = pdb.pdb_information().ok()?;
    let guid = info.guid.simple().to_string().to_ascii_uppercase();
    let sig = format!("{:08X}", info.signature);
    let age = pdb
        .debug_information()
        .ok()
        .and_then(|d| d.age())
        .unwrap_or(info.age);
    Some((guid, sig, age))
}

/// True when the file at `path` is the one `key` names (used for flat directories).
pub(crate) fn matches_key(key: &SymbolKey, path: &Path) -> bool {
    match key {
        SymbolKey::Pe {
            timestamp,
            size_of_image,
            ..
        } => File::open(path)
            .ok()
            .and_then(|mut f| pe_identity(&mut f))
            .is_some_and(|id| id == (*timestamp, *size_of_image)),
        SymbolKey::Pdb { guid, age, .. } => pdb_identity(path).is_some_and(|(g, sig, a)| {
            a == *age && (g == *guid || (guid.len() == 8 && sig == *guid))
        }),
    }
}
