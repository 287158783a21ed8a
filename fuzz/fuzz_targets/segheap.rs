//! Kernel memory: the 19H1+ segment heap (LFH, VS), system and session heaps. The body is
//! `fuzz_harness::segheap` (fuzz/harness), which the harness's tests also replay on every seed and
//! regression input; `run` keeps panics the library contains from counting as crashes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::run(fuzz_harness::segheap, data));
