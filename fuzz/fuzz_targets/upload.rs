//! A dump upload: raw, .gz or .zip, decompressed and checked while streaming. The body is `fuzz_harness::upload` (fuzz/harness), which the
//! harness's tests also replay on every seed and regression input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::upload(data));
