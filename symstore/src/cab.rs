//! Microsoft's compressed store files (`name.pd_`, `.sy_`, `.ex_`, `.dl_`): a cabinet holding
//! the one file, MSZIP- or LZX-compressed (the `cab` crate decodes both).

use std::fs::File;
use std::io::{self, Read, Seek, Write};

/// "MSCF": the first bytes of every cabinet.
pub(crate) const CAB_MAGIC: &[u8; 4] = b"MSCF";

/// Decompresses the file named `want` (case-insensitive; else the cabinet's only file) from
/// the cabinet `src` into `out`. Returns the number of bytes written. Fails on a damaged
/// cabinet, on more than one candidate, and on content larger than `max_bytes`.
pub(crate) fn extract(
    src: &mut File,
    want: &str,
    out: &mut impl Write,
    max_bytes: u64,
) -> Result<u64, String> {
    src.rewind().map_err(|e| e.to_string())?;
    // The decoder is fed bytes from the network: a panic inside it must not take the process
    // down (house rule: typed errors, never a panic on foreign data).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        extract_inner(src, want, out, max_bytes)
    }));
    match result {
        Ok(r) => r,
        Err(_) => Err("the CAB decoder failed on this file".to_string()),
    }
}

fn extract_inner(
    src: &mut File,
    want: &str,
    out: &mut impl Write,
    max_bytes: u64,
) -> Result<u64, String> {
    let mut cabinet = cab::Cabinet::new(src).map_err(|e| format!("not a valid cabinet: {e}"))?;
    let mut names = Vec::new();
    for folder in cabinet.folder_entries() {
        for file in folder.file_entries() {
            names.push((file.name().to_string(), u64::from(file.uncompressed_size())));
        }
    }
    let chosen = names
        .iter()
        .find(|(n, _)| crate::key::file_name_of(n).eq_ignore_ascii_case(want))
        .or(if names.len() == 1 {
            names.first()
        } else {
            None
        })
        .ok_or_else(|| format!("cabinet holds {} files, none named {want}", names.len()))?
        .clone();
    if chosen.1 > max_bytes {
        return Err(format!(
            "content of {} bytes exceeds the limit of {max_bytes}",
            chosen.1
        ));
    }
    let reader = cabinet
        .read_file(&chosen.0)
        .map_err(|e| format!("cannot read {}: {e}", chosen.0))?;
    let copied = io::copy(&mut reader.take(max_bytes + 1), out)
        .map_err(|e| format!("decompressing: {e}"))?;
    if copied > max_bytes {
        return Err(format!("content exceeds the limit of {max_bytes} bytes"));
    }
    if copied != chosen.1 {
        return Err(format!(
            "decompressed {copied} bytes, the cabinet says {}",
            chosen.1
        ));
    }
    Ok(copied)
}

/// True when the file starts with the cabinet signature.
pub(crate) fn is_cab(f: &mut File) -> bool {
    let mut magic = [0u8; 4];
    let ok = f.rewind().is_ok() && f.read_exact(&mut magic).is_ok() && &magic == CAB_MAGIC;
    let _ = f.rewind();
    ok
}
