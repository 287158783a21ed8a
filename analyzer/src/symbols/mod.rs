//! Symbols: kernel profiles (global RVAs and structure layouts) from PDB and ISF files.
