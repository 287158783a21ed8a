//! The crashing thread: starting registers (header context, exception record, trap frame), the
//! stack walk over hostile unwind information and stacks, and the unloaded-driver list. The
//! body is `fuzz_harness::crash` (fuzz/harness), which the harness's tests also replay on every
//! seed and regression input; `run` keeps panics the library contains from counting as crashes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::run(fuzz_harness::crash, data));
