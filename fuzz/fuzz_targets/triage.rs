//! The triage parser: a valid x64 DumpType 4 header followed by fuzzer bytes (TRIAGE_DUMP,
//! driver list, string pool, data blocks), so every input reaches the triage code.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let mut b = common::header64(4);
    b.extend_from_slice(data);
    common::exercise(b);
});
