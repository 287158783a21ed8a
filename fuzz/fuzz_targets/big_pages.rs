//! Kernel memory: big page table, tag tables, classic page scan of a pool range. The body is `fuzz_harness::big_pages` (fuzz/harness), which the
//! harness's tests also replay on every seed and regression input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::big_pages(data));
