//! One classic pool page walked header by header. The body is `fuzz_harness::pool_page` (fuzz/harness), which the
//! harness's tests also replay on every seed and regression input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::pool_page(data));
