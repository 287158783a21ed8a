//! Vendor symbols: PDBs and images tenants upload so that their drivers' code is named by
//! function and source line in their reports (docs/symbols.md, "Vendor symbols").
//!
//! The flow: an upload is received into a temporary file with the upload limits
//! ([`receive`]); a sandboxed child (`pooltriage symbols ingest`, started by
//! `crate::jobs::runner::ingest_symbols` with the analyses' time and memory limits) unpacks
//! it and reads each file's key from its content ([`unpack`], the only place an uploaded PDB
//! or image is parsed); the server moves the accepted files into the tenant's store, laid out
//! as Microsoft's (`vendor-symbols/<tenant>/name/KEY/name`, [`store`]), records them
//! (`crate::db::symbol_files`) and re-queues the tenant's dumps whose reports name a module
//! with one of the new keys ([`requeue`]). Analyses of a tenant's dumps search its store
//! before the public symbol path; other tenants never see it.

pub mod ingest;
pub mod receive;
pub mod requeue;
pub mod service;
pub mod store;
pub mod unpack;
