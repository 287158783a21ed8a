//! The kernel as seen from a dump: the debugger data block, loaded modules (with their PE
//! headers in memory) and the bugcheck.

mod bytes;
pub mod pe;
pub mod kdbg;
pub mod modules;
