//! The kernel's own structures: the debugger data block, the module and process lists, Driver
//! Verifier's pool tracking, the `!vm` figures, driver and device objects. The body is
//! `fuzz_harness::kernel` (fuzz/harness), which the harness's tests also replay on every seed
//! and regression input; `run` keeps panics the library contains from counting as crashes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::run(fuzz_harness::kernel, data));
