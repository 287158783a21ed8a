//! A symbol store file.ptr. The body is `fuzz_harness::file_ptr` (fuzz/harness), which the
//! harness's tests also replay on every seed and regression input; `run` keeps panics the library
//! contains from counting as crashes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::run(fuzz_harness::file_ptr, data));
