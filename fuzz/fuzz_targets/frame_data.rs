//! One x86 frame undone with a PDB's FPO_DATA layout or FRAMEDATA program string. The body is
//! `fuzz_harness::frame_data` (fuzz/harness), which the harness's tests also replay on every
//! seed and regression input; `run` keeps panics the library contains from counting as crashes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::run(fuzz_harness::frame_data, data));
