//! Kernel and driver symbols: a PDB (every reader the analyzer has for one) and a Volatility 3
//! ISF profile, then the pool layouts taken from the profile it gives.

use analyzer::memory::pte::PteFormat;
use analyzer::memory::PagingMode;
use analyzer::pool::bigpages::BigPageLayout;
use analyzer::pool::header::HeaderLayout;
use analyzer::pool::segheap::SegLayout;
use analyzer::pool::tags::TrackerLayout;
use analyzer::symbols::frame_data::FrameTable;
use analyzer::symbols::identify::identify;
use analyzer::symbols::lines::SourceLines;
use analyzer::symbols::names::{FunctionNames, Undecorate};
use analyzer::symbols::store::SymbolKey;
use analyzer::symbols::{msf_check, Profile};

/// The input is a `.pdb` file: the kernel profile reader, the function names, source lines and
/// frame record readers, the MSF structure check, the vendor upload's identification and the store's
/// identity check.
pub fn pdb(data: &[u8]) {
    let _ = msf_check::check(&mut std::io::Cursor::new(data));
    let path = crate::tmp::file("ntkrnlmp.pdb", data);
    if let Ok(p) = Profile::from_pdb(&path) {
        layouts(&p);
    }
    let _ = FunctionNames::from_pdb(&path, Undecorate::Auto);
    let _ = SourceLines::from_pdb(&path);
    let _ = FrameTable::from_pdb(&path);
    let _ = identify(&path, "ntkrnlmp.pdb");
    let key = SymbolKey::pdb("ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844", 1);
    let _ = analyzer::fuzzing::store_file_checks(&key, &path);
}

/// Byte 0: bit 0 set reads the rest as `.json.xz`, else as `.json`.
pub fn isf(data: &[u8]) {
    let name = if crate::le(data, 0, 1) & 1 == 1 {
        "ntkrnlmp.json.xz"
    } else {
        "ntkrnlmp.json"
    };
    let path = crate::tmp::file(name, data.get(1..).unwrap_or_default());
    if let Ok(p) = Profile::from_isf(&path) {
        layouts(&p);
    }
}

/// Everything the pool readers derive from a profile: a hostile profile's offsets and sizes
/// must give a refusal, not an overflow.
fn layouts(p: &Profile) {
    for ps in [4u8, 8] {
        let _ = BigPageLayout::from_profile(p, ps);
        let _ = TrackerLayout::from_profile(p, ps);
    }
    for build in [2600u32, 7601, 19041] {
        let _ = HeaderLayout::from_profile(p, build);
    }
    let _ = SegLayout::from_profile(p);
    for mode in [PagingMode::X64, PagingMode::X86Pae, PagingMode::X86] {
        let _ = PteFormat::from_profile(p, mode);
    }
    let _ = p.guid_bytes();
}
