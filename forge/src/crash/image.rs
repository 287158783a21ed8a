//! Code and unwind data written into images already in memory: function bodies at chosen
//! addresses (only where nothing was written before), a `.pdata` section carved from the start
//! of the image's `.data` holding the RUNTIME_FUNCTION table, and the UNWIND_INFO entries it
//! points at in the image's `.rdata` (where MSVC merges `.xdata`).

use super::unwind::{runtime_function, Prolog};
use crate::pe;
use crate::space::Machine;
use crate::ForgeError;

/// Where the UNWIND_INFO entries start inside `.rdata`: after the PE metadata the forge keeps
/// in its first 0xC00 bytes (debug directory, exports, imports).
const UNWIND_AT: u32 = 0xc00;
/// Most RUNTIME_FUNCTIONs one `.pdata` page holds.
const MAX_FUNCTIONS: usize = 0x1000 / 12;

/// Writes code at `va`, refusing to overwrite anything the forge planted there.
pub fn write_code(m: &mut Machine, va: u64, bytes: &[u8]) -> Result<(), ForgeError> {
    let old = m.read(va, bytes.len()).ok_or(ForgeError::Unmapped(va))?;
    if old.iter().any(|&b| b != 0) {
        return Err(ForgeError::Internal(format!(
            "code at {va:#x} would overwrite planted data"
        )));
    }
    m.write(va, bytes)
}

/// One function (or chained fragment) of a `.pdata` table.
#[derive(Debug, Clone)]
pub struct PdataEntry {
    pub begin: u32,
    pub end: u32,
    pub prolog: Prolog,
    /// Index (in the list given to [`write_pdata`]) of the function this fragment continues.
    pub chain_to: Option<usize>,
}

/// Gives the image at `base` a `.pdata` section (the first page of its `.data`) holding
/// `entries` sorted by address, their UNWIND_INFO in `.rdata`, and points the exception
/// directory at the table. Returns the `.pdata` RVA.
pub fn write_pdata(m: &mut Machine, base: u64, entries: &[PdataEntry]) -> Result<u32, ForgeError> {
    let (rva, _) = pe::section(m, base, ".data")
        .ok_or_else(|| ForgeError::Internal(format!("image at {base:#x} has no .data")))?;
    let (rdata, _) = pe::section(m, base, ".rdata")
        .ok_or_else(|| ForgeError::Internal(format!("image at {base:#x} has no .rdata")))?;
    if entries.len() > MAX_FUNCTIONS {
        return Err(ForgeError::Internal("too many RUNTIME_FUNCTIONs".into()));
    }
    // Unwind infos of primaries first: a chained entry embeds its primary's RUNTIME_FUNCTION.
    let mut unwind_rva = vec![0u32; entries.len()];
    let mut xdata = Vec::new();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].chain_to.is_some());
    for i in order {
        let e = &entries[i];
        let chain = e.chain_to.map(|p| {
            let p_entry = &entries[p];
            [p_entry.begin, p_entry.end, unwind_rva[p]]
        });
        unwind_rva[i] = rdata + UNWIND_AT + xdata.len() as u32;
        xdata.extend_from_slice(&e.prolog.unwind_info(chain));
    }
    let mut table: Vec<[u32; 3]> = entries
        .iter()
        .zip(&unwind_rva)
        .map(|(e, &u)| [e.begin, e.end, u])
        .collect();
    table.sort_by_key(|f| f[0]);
    let pdata: Vec<u8> = table.iter().flat_map(|&f| runtime_function(f)).collect();
    if UNWIND_AT as usize + xdata.len() > 0x1000 {
        return Err(ForgeError::Internal("unwind data exceeds one page".into()));
    }
    write_code(m, base + u64::from(rva), &pdata)?;
    write_code(m, base + u64::from(rdata + UNWIND_AT), &xdata)?;
    pe::carve_section(
        m,
        base,
        ".pdata",
        rva,
        0x1000,
        pdata.len() as u32,
        pe::RDATA,
        Some((pe::DIRECTORY_EXCEPTION, pdata.len() as u32)),
    )?;
    Ok(rva)
}
