//! The dump header parser and format dispatch on raw bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let _ = analyzer::dump::parse_header(data);
    common::exercise(data.to_vec());
});
