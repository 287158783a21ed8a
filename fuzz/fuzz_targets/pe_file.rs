//! A PE file on disk: loader view, code sections, symbol store checks, vendor upload
//! identification. The body is `fuzz_harness::pe_file` (fuzz/harness), which the harness's tests
//! also replay on every seed and regression input; `run` keeps panics the library contains from
//! counting as crashes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::run(fuzz_harness::pe_file, data));
