//! The fuzz targets' bodies: one function per parser of untrusted bytes, each a thin call to
//! the library entry point that production code uses. The cargo-fuzz crate (`fuzz/`) wraps each
//! in `fuzz_target!`; the tests here replay every committed seed and regression input through
//! the same functions, so the inputs that once crashed stay fixed without a fuzzer in CI.
//!
//! A body never asserts what a parser may legitimately refuse: it only requires that the call
//! returns (no panic, no hang, no unbounded allocation).

mod crash;
mod dump;
mod frame;
mod kernel;
pub mod mem;
mod panics;
mod pe;
mod pool;
mod profile;
mod scan;
mod store;
mod symbols;
mod tmp;
mod trend;
mod upload;

pub use crash::crash;
pub use dump::{bitmap, header, triage};
pub use frame::frame_data;
pub use kernel::kernel;
pub use panics::run;
pub use pe::{pe_file, pe_memory};
pub use pool::{big_pages, pool_page, segheap, session};
pub use scan::code_scan;
pub use store::{cab, file_ptr, pooltag};
pub use symbols::{isf, pdb};
pub use trend::{counter_log, tag_log};
pub use upload::upload;

/// A target's body: any input is valid, and it must return.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/seeds/<name>/` call it.
pub const TARGETS: &[(&str, Target)] = &[
    ("header", header),
    ("triage", triage),
    ("bitmap", bitmap),
    ("pe_memory", pe_memory),
    ("pe_file", pe_file),
    ("pdb", pdb),
    ("isf", isf),
    ("pool_page", pool_page),
    ("big_pages", big_pages),
    ("segheap", segheap),
    ("session", session),
    ("code_scan", code_scan),
    ("cab", cab),
    ("file_ptr", file_ptr),
    ("pooltag", pooltag),
    ("upload", upload),
    ("tag_log", tag_log),
    ("counter_log", counter_log),
    ("crash", crash),
    ("kernel", kernel),
    ("frame_data", frame_data),
];

/// The little-endian integer at `off` of `data`, 0 past its end: targets read their
/// parameters from the input's first bytes this way, so that any input is valid.
pub(crate) fn le(data: &[u8], off: usize, len: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, slot) in b.iter_mut().enumerate().take(len.min(8)) {
        *slot = data.get(off + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod replay;
#[cfg(test)]
mod seeds;
