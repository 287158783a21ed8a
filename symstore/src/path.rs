//! Symbol paths as WinDbg reads `_NT_SYMBOL_PATH`: entries separated by `;`, tried in order.
//!
//! * `srv*DOWNSTREAM*...*UPSTREAM` (also `symsrv*symsrv.dll*...`): a chain of stores; a file
//!   found further up is copied into the stores before it (the first one is the cache). An
//!   empty element (`srv**URL`) or a chain that starts with a URL uses the default cache.
//! * `cache*DIR` (or `cache*` for the default cache): files found by later entries are cached
//!   in DIR, and DIR is searched at this position.
//! * anything else is a local directory: flat (`DIR/name`, checked against the key) or in
//!   symbol-store layout (`DIR/name/KEY/name`, two-tier when `DIR/index2.txt` exists).
//! * a bare `http(s)://` URL is taken as `srv*URL`.

use super::error::FetchError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Microsoft's public symbol server.
pub const MICROSOFT_SYMBOL_SERVER: &str = "https://msdl.microsoft.com/download/symbols";
/// The environment variable WinDbg reads.
pub const ENV_VAR: &str = "_NT_SYMBOL_PATH";

/// One store in a `srv*` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory in symbol-store layout.
    Local(PathBuf),
    /// An HTTP(S) symbol server, base URL without the trailing `/`.
    Http(String),
    /// An empty element: the default cache (`StoreConfig::default_cache_dir`).
    DefaultCache,
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Local(p) => write!(f, "{}", p.display()),
            StoreLocation::Http(u) => f.write_str(u),
            StoreLocation::DefaultCache => f.write_str("(default cache)"),
        }
    }
}

/// One `;`-separated element of a symbol path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEntry {
    /// `srv*A*B*...`
    Server(Vec<StoreLocation>),
    /// `cache*DIR`; `None` for `cache*` (the default cache).
    Cache(Option<PathBuf>),
    /// A plain directory (flat or symbol-store layout).
    Local(PathBuf),
}

/// A parsed symbol path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymbolPath {
    pub entries: Vec<PathEntry>,
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

fn location(s: &str) -> Result<StoreLocation, FetchError> {
    let s = s.trim();
    if s.is_empty() {
        Ok(StoreLocation::DefaultCache)
    } else if is_url(s) {
        Ok(StoreLocation::Http(s.trim_end_matches('/').to_string()))
    } else if s.contains("://") {
        Err(FetchError::BadSymbolPath(format!(
            "unsupported URL scheme in {s:?} (http and https only)"
        )))
    } else {
        Ok(StoreLocation::Local(PathBuf::from(s)))
    }
}

impl SymbolPath {
    /// Parses a symbol path string (see the module doc). Empty elements are skipped.
    pub fn parse(s: &str) -> Result<SymbolPath, FetchError> {
        let mut entries = Vec::new();
        for raw in s.split(';') {
            let elem = raw.trim();
            if elem.is_empty() {
                continue;
            }
            let lower = elem.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix("srv*").map(|_| &elem[4..]) {
                entries.push(PathEntry::Server(Self::chain(rest, elem)?));
            } else if lower.starts_with("symsrv*") {
                // symsrv*DLL*stores: the DLL is WinDbg's business.
                let rest = elem[7..].split_once('*').map(|(_, r)| r).unwrap_or("");
                entries.push(PathEntry::Server(Self::chain(rest, elem)?));
            } else if lower.starts_with("cache*") {
                let dir = elem[6..].trim();
                entries.push(PathEntry::Cache(
                    (!dir.is_empty()).then(|| PathBuf::from(dir)),
                ));
            } else if is_url(elem) {
                entries.push(PathEntry::Server(vec![location(elem)?]));
            } else if elem.contains('*') {
                return Err(FetchError::BadSymbolPath(format!(
                    "{elem:?}: '*' only in srv*, symsrv* and cache* elements"
                )));
            } else {
                entries.push(PathEntry::Local(PathBuf::from(elem)));
            }
        }
        Ok(SymbolPath { entries })
    }

    fn chain(rest: &str, elem: &str) -> Result<Vec<StoreLocation>, FetchError> {
        let stores = rest
            .split('*')
            .map(location)
            .collect::<Result<Vec<_>, _>>()?;
        if stores.iter().all(|s| *s == StoreLocation::DefaultCache) {
            return Err(FetchError::BadSymbolPath(format!(
                "{elem:?} names no store"
            )));
        }
        Ok(stores)
    }

    /// `srv*DATA_DIR/symbols*https://msdl.microsoft.com/download/symbols`.
    pub fn default_for(data_dir: &Path) -> SymbolPath {
        SymbolPath {
            entries: vec![PathEntry::Server(vec![
                StoreLocation::Local(data_dir.join("symbols")),
                StoreLocation::Http(MICROSOFT_SYMBOL_SERVER.to_string()),
            ])],
        }
    }

    /// `_NT_SYMBOL_PATH` when set and not blank, else [`SymbolPath::default_for`].
    pub fn from_env_or_default(data_dir: &Path) -> Result<SymbolPath, FetchError> {
        Self::resolve(None, data_dir)
    }

    /// What every command uses: the `--symbol-path` flag, else `_NT_SYMBOL_PATH`, else the
    /// default.
    pub fn resolve(flag: Option<&str>, data_dir: &Path) -> Result<SymbolPath, FetchError> {
        if let Some(f) = flag {
            return SymbolPath::parse(f);
        }
        match std::env::var(ENV_VAR) {
            Ok(v) if !v.trim().is_empty() => SymbolPath::parse(&v),
            _ => Ok(SymbolPath::default_for(data_dir)),
        }
    }

    /// True when some entry is an HTTP server.
    pub fn uses_network(&self) -> bool {
        self.entries.iter().any(|e| match e {
            PathEntry::Server(stores) => stores.iter().any(|s| matches!(s, StoreLocation::Http(_))),
            _ => false,
        })
    }
}

impl fmt::Display for SymbolPath {
    /// The WinDbg form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            match e {
                PathEntry::Server(stores) => {
                    f.write_str("srv")?;
                    for s in stores {
                        match s {
                            StoreLocation::DefaultCache => f.write_str("*")?,
                            other => write!(f, "*{other}")?,
                        }
                    }
                }
                PathEntry::Cache(dir) => write!(
                    f,
                    "cache*{}",
                    dir.as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                )?,
                PathEntry::Local(dir) => write!(f, "{}", dir.display())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windbg_forms() {
        let p = SymbolPath::parse(
            "srv*C:\\sym*https://msdl.microsoft.com/download/symbols/; cache*/tmp/c ;/opt/flat;SRV**http://h/s;\
             symsrv*symsrv.dll*/down*http://x;cache*;https://bare",
        )
        .unwrap();
        assert_eq!(
            p.entries,
            vec![
                PathEntry::Server(vec![
                    StoreLocation::Local("C:\\sym".into()),
                    StoreLocation::Http(MICROSOFT_SYMBOL_SERVER.into())
                ]),
                PathEntry::Cache(Some("/tmp/c".into())),
                PathEntry::Local("/opt/flat".into()),
                PathEntry::Server(vec![
                    StoreLocation::DefaultCache,
                    StoreLocation::Http("http://h/s".into())
                ]),
                PathEntry::Server(vec![
                    StoreLocation::Local("/down".into()),
                    StoreLocation::Http("http://x".into())
                ]),
                PathEntry::Cache(None),
                PathEntry::Server(vec![StoreLocation::Http("https://bare".into())]),
            ]
        );
        assert_eq!(SymbolPath::parse(" ; ;").unwrap().entries, vec![]);
    }

    #[test]
    fn bad_paths() {
        assert!(SymbolPath::parse("srv*").is_err());
        assert!(SymbolPath::parse("srv*ftp://x").is_err());
        assert!(SymbolPath::parse("a*b").is_err());
    }

    #[test]
    fn default_and_round_trip() {
        let d = SymbolPath::default_for(Path::new("./data"));
        assert_eq!(
            d.to_string(),
            "srv*./data/symbols*https://msdl.microsoft.com/download/symbols"
        );
        assert_eq!(SymbolPath::parse(&d.to_string()).unwrap(), d);
        assert!(d.uses_network());
        // The flag wins over the environment and the default.
        assert_eq!(
            SymbolPath::resolve(Some("/x"), Path::new("d"))
                .unwrap()
                .entries,
            vec![PathEntry::Local("/x".into())]
        );
    }
}
