//! pooltriage's analysis engine: a plain library, no async, no database.
//!
//! Data flows one way, one module per stage:
//! dump file ([`dump`]) -> physical and virtual memory ([`memory`]) -> kernel structures
//! ([`kernel`]: debugger data block, modules, bugcheck) -> symbols ([`symbols`]: kernel profile)
//! -> pool ([`pool`]: tag tables and every block) -> attribution ([`attribution`]: tags to the
//! drivers' code) -> analysis ([`analysis`]: the join and the verdict) -> report ([`report`]:
//! the serde types of the JSON schema).
//!
//! [`analysis::run`] is the one entry point: it opens a dump, finds its kernel's symbols and
//! analyses it; `pooltriage analyze` and the service's workers (which run it) call it.

pub mod analysis;
pub mod attribution;
pub mod dump;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use symstore::fuzzing;
pub mod kernel;
pub mod memory;
pub mod pool;
pub mod report;
pub mod stack;
pub mod symbols;
pub mod trend;

/// Where the tests of every crate find the corpus (not part of the library's interface).
#[doc(hidden)]
pub mod test_corpus;
