//! The symbol settings handed to every analysis, checked and made absolute at start.

use super::settings::Settings;
use super::ConfigError;
use analyzer::symbols::store::{PathEntry, StoreLocation, SymbolPath};
use std::path::{Path, PathBuf};

/// What the analyses get for symbols. Every path is absolute: the analyzer child runs in the
/// data directory, not in the service's working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolConfig {
    /// The symbol path in WinDbg syntax, passed as `--symbol-path`; None = `--no-symbols`.
    pub symbol_path: Option<String>,
    pub isf_dir: Option<PathBuf>,
    pub pooltag: Option<PathBuf>,
}

impl SymbolConfig {
    /// The symbol path falls back to `_NT_SYMBOL_PATH`, then to the default store with its
    /// cache under the data directory; `no_symbols` wins over any path.
    pub(super) fn resolve(s: &Settings) -> Result<Self, ConfigError> {
        let data_dir = absolute(&s.data_dir, "")?;
        let symbol_path = if s.no_symbols {
            None
        } else {
            let given = s.symbol_path.as_deref().filter(|p| !p.trim().is_empty());
            let parsed = SymbolPath::resolve(given, &data_dir)
                .map_err(|e| ConfigError::Invalid(format!("symbol_path: {e}")))?;
            Some(absolute_symbol_path(parsed, &data_dir)?.to_string())
        };
        let isf_dir = match &s.isf_dir {
            Some(d) if !d.is_dir() => {
                return Err(ConfigError::Invalid(format!(
                    "isf_dir {} is not a directory",
                    d.display()
                )))
            }
            Some(d) => Some(absolute(d, "")?),
            None => None,
        };
        let pooltag = match &s.pooltag {
            Some(f) if !f.is_file() => {
                return Err(ConfigError::Invalid(format!(
                    "pooltag {} is not a file",
                    f.display()
                )))
            }
            Some(f) => Some(absolute(f, "")?),
            None => None,
        };
        Ok(SymbolConfig {
            symbol_path,
            isf_dir,
            pooltag,
        })
    }
}

/// `p` made absolute against the working directory; `context` prefixes the error.
fn absolute(p: &Path, context: &str) -> Result<PathBuf, ConfigError> {
    std::path::absolute(p).map_err(|e| {
        ConfigError::Invalid(format!(
            "{context}cannot make {} absolute: {e}",
            p.display()
        ))
    })
}

/// The symbol path with every directory absolute and the default cache spelt out as
/// `<data dir>/symbols`: the child would otherwise read them from its own working directory.
fn absolute_symbol_path(p: SymbolPath, data_dir: &Path) -> Result<SymbolPath, ConfigError> {
    let abs = |d: PathBuf| absolute(&d, "symbol_path: ");
    let cache = data_dir.join("symbols");
    let mut entries = Vec::with_capacity(p.entries.len());
    for e in p.entries {
        entries.push(match e {
            PathEntry::Server(stores) => PathEntry::Server(
                stores
                    .into_iter()
                    .map(|s| match s {
                        StoreLocation::Local(d) => abs(d).map(StoreLocation::Local),
                        StoreLocation::DefaultCache => Ok(StoreLocation::Local(cache.clone())),
                        http => Ok(http),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            PathEntry::Cache(d) => PathEntry::Cache(Some(match d {
                Some(d) => abs(d)?,
                None => cache.clone(),
            })),
            PathEntry::Local(d) => PathEntry::Local(abs(d)?),
        });
    }
    Ok(SymbolPath { entries })
}
