//! Systems: a customer's machine, named by its tenant, that collects dumps and pool logs
//! (poolmon, poolsnap, typeperf/relog CSV) over time, and their trend (docs/trend.md, "The
//! service").
//!
//! - [`name`]: what a system name may be (checked before an upload reads a byte);
//! - [`log`]: reading an uploaded log with the analyzer's parsers, to refuse a bad one at
//!   upload with the reason and to record its kind and samples;
//! - [`trend`]: the system's trend, computed on request from what is already stored (the dumps'
//!   analysis reports, the log files): no dump file is read again, so it costs a JSON parse
//!   per dump and a parse per log, and needs no job in the queue.

pub mod log;
pub mod name;
pub mod trend;
