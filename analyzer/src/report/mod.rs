//! The serde types of pooltriage's versioned JSON output. Addresses and other 64-bit values
//! are "0x..." strings; counts and byte sizes are numbers.

pub mod bugcheck;
pub mod crash;
pub mod hex;
pub mod inspect;
pub mod time;

pub use hex::{parse_hex, Hex};
pub use inspect::{InspectReport, SCHEMA_VERSION};
pub mod analysis;
pub mod pool;
pub mod pool_at;
pub mod provenance;
pub mod source;
pub mod symbol_file;
pub mod trend;
pub mod unloaded;
pub use analysis::{AnalysisReport, ANALYSIS_SCHEMA_VERSION};
pub use source::SourceRef;
