//! The kernel context the pool walkers need, as their unit tests build it: the Windows 10
//! 19041 x64 kernel's own layouts and globals, from its ISF (corpus
//! `isf/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz`) cut down to the structures,
//! fields and globals the analyzer names (`data/w19041_min.json`, 43 KB), and read with the
//! analyzer's own ISF reader.

use analyzer::pool::KernelContext;
use analyzer::symbols::Profile;
use std::sync::OnceLock;

/// nt's base in every memory seed.
pub const KERNEL_BASE: u64 = 0xffff_f800_0000_0000;
pub const BUILD: u32 = 19041;

const ISF: &str = include_str!("../data/w19041_min.json");

pub fn w19041() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| {
        let path = crate::tmp::dir().join("w19041_min.json");
        std::fs::write(&path, ISF).expect("writing the 19041 ISF");
        Profile::from_isf(&path).expect("the 19041 ISF")
    })
}

pub fn context() -> KernelContext<'static> {
    KernelContext {
        kernel_base: KERNEL_BASE,
        pointer_size: 8,
        build: BUILD,
        processors: 1,
        profile: Some(w19041()),
    }
}
