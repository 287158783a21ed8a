//! pooltriage's analysis engine: a plain library, no async, no database.
//!
//! Data flows one way, one module per stage:
//! dump file ([`dump`]) -> physical and virtual memory ([`memory`]) -> kernel structures
//! ([`kernel`]: debugger data block, modules, bugcheck) -> symbols ([`symbols`]: kernel profile)
//! -> pool -> attribution -> report ([`report`]: the serde types of the JSON schema).

pub mod analysis;
pub mod attribution;
pub mod dump;
pub mod kernel;
pub mod memory;
pub mod pool;
pub mod report;
pub mod symbols;
