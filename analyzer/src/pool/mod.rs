//! The pool engine: what WinDbg's `!poolused`, `!pool`, `!poolfind` and `!vm` show, read from a
//! dump with the kernel's own layouts.
//!
//! One file per source of truth: [`header`] (POOL_HEADER), [`tags`] (the tag tracker tables),
//! [`bigpages`] (PoolBigPageTable), [`pages`] (classic pool pages, walked header by header),
//! [`vm`] (pool limits and quota charges). Layouts come from the kernel's [`Profile`] when we
//! have one, else from a built-in per-version table, and every result says which
//! ([`LayoutSource`]).
//!
//! Everything read from the dump is bounded before anything is allocated: a table size or a
//! processor count is a number the dump's writer chose, not a fact.

pub mod bigpages;
mod entries;
pub mod header;
mod layout;
pub mod page_states;
pub mod pages;
pub mod pte_info;
pub mod quota;
pub mod resident;
pub mod scan;
pub mod segheap;
pub mod session;
pub mod tag;
pub mod tags;
pub mod types;
pub mod verifier;
pub mod vm;
pub mod vm_descriptors;
pub mod vm_failures;
mod vm_read;
pub mod vm_sessions;
mod vm_system;

pub use layout::{FieldSpec, LayoutSource};
pub use scan::{scan_pool, PartFailure, PoolPart, PoolScan, SeenBlock};
pub use tag::{Tag, TagPattern};
pub use types::{BlockSource, PoolKind, PoolType};

use crate::memory::MemoryError;
use crate::symbols::Profile;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PoolError {
    #[error("cannot read {what} at {va:#x}: {source}")]
    Memory {
        what: &'static str,
        va: u64,
        source: MemoryError,
    },
    #[error("{what} is unknown: {why}")]
    Missing { what: &'static str, why: String },
    #[error("{what} is implausible: {value:#x} (limit {limit:#x})")]
    Implausible {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// The dump gives no kernel virtual memory at all (the reader's reason).
    #[error("{0}")]
    NoKernelMemory(String),
    #[error("the kernel's base address is unknown (no debugger data block and no module list)")]
    NoKernelBase,
}

/// What the pool readers know about the kernel: where it is loaded, which build, and its
/// symbols if we have them.
#[derive(Clone, Copy)]
pub struct KernelContext<'a> {
    /// nt's image base (KDBG KernBase): globals are `kernel_base + RVA`.
    pub kernel_base: u64,
    /// 4 or 8.
    pub pointer_size: u8,
    /// Build number from the dump header (e.g. 7601, 19041).
    pub build: u32,
    /// Processor count from the dump header: the fallback for KeNumberProcessors.
    pub processors: u32,
    pub profile: Option<&'a Profile>,
}

impl KernelContext<'_> {
    /// Virtual address of a kernel global, from the profile's RVA.
    pub fn global(&self, name: &str) -> Option<u64> {
        self.profile?
            .global(name)
            .and_then(|rva| self.kernel_base.checked_add(rva))
    }
    pub fn is_x64(&self) -> bool {
        self.pointer_size == 8
    }
}

/// Serializes an address or 64-bit value as a "0x..." lowercase hex string (docs/json.md).
pub fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:#x}"))
}

/// As [`hex`], for an optional value (null when absent).
pub fn hex_opt<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(&format_args!("{v:#x}")),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
pub(crate) mod testmem;
