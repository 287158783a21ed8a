//! The bitmap parsers: a valid x64 header of DumpType 5 (SDMP/FDMP sub-header) or 2 (old
//! summary) followed by fuzzer bytes, so every input reaches the bitmap and rank-index code.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let t = match sel % 3 {
        0 => 5,
        1 => 6,
        _ => 2,
    };
    let mut b = common::header64(t);
    b.extend_from_slice(rest);
    common::exercise(b);
});
