//! What a customer reads must not show the server's file system: a job's failure message and
//! the stored report name the dump, the symbol files and the ISF files relative to the store
//! they came from, never by where the service keeps them. The analyzer runs with the data
//! directory as its working directory and names the dump `dumps/<sha256>`; the symbol files it
//! used lie in the symbol path's local stores, the ISF directory or the data directory.

use crate::config::SymbolConfig;
use analyzer::symbols::store::{PathEntry, StoreLocation, SymbolPath};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Rewrites server paths in texts and reports.
pub struct Scrubber {
    /// The dump as the analyzer was given it (relative to the data directory).
    dump: String,
    /// Directories whose prefix (with its separator) is removed, longest first.
    dirs: Vec<String>,
}

impl Scrubber {
    pub fn new(work_dir: &Path, dump: &Path, symbols: &SymbolConfig) -> Self {
        let mut dirs: Vec<PathBuf> = vec![work_dir.to_path_buf()];
        dirs.extend(std::path::absolute(work_dir).ok());
        dirs.extend(symbols.isf_dir.clone());
        if let Some(p) = symbols.symbol_path.as_deref() {
            dirs.extend(local_dirs(p));
        }
        let mut dirs: Vec<String> = dirs
            .iter()
            .map(|d| d.to_string_lossy().trim_end_matches('/').to_string())
            .filter(|d| d.len() > 1)
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        dirs.dedup();
        Scrubber {
            dump: dump.to_string_lossy().into_owned(),
            dirs,
        }
    }

    /// A message: "`dumps/<sha256>`: problem" becomes "problem", any other mention of the dump
    /// "the dump", and a path under a known directory the part inside it.
    pub fn text(&self, s: &str) -> String {
        let mut out = s
            .strip_prefix(&format!("{}: ", self.dump))
            .unwrap_or(s)
            .replace(&self.dump, "the dump");
        for d in &self.dirs {
            out = out.replace(&format!("{d}/"), "");
        }
        out
    }

    /// Whether `text` mentions the dump or a known directory at all (most reports do not).
    pub fn mentioned_in(&self, text: &str) -> bool {
        text.contains(&self.dump) || self.dirs.iter().any(|d| text.contains(d.as_str()))
    }

    /// Every string of a report, in place.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                let clean = self.text(s);
                if clean != *s {
                    *s = clean;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.json(x)),
            _ => {}
        }
    }
}

/// The local directories of a symbol path: stores, caches and plain folders.
fn local_dirs(symbol_path: &str) -> Vec<PathBuf> {
    let Ok(parsed) = SymbolPath::parse(symbol_path) else {
        return Vec::new();
    };
    parsed
        .entries
        .into_iter()
        .flat_map(|e| match e {
            PathEntry::Server(locs) => locs
                .into_iter()
                .filter_map(|l| match l {
                    StoreLocation::Local(p) => Some(p),
                    _ => None,
                })
                .collect(),
            PathEntry::Cache(Some(p)) | PathEntry::Local(p) => vec![p],
            PathEntry::Cache(None) => Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Scrubber {
        let symbols = SymbolConfig {
            symbol_path: Some("srv*/srv/cache*https://msdl.example/s;/opt/vendor".into()),
            isf_dir: Some("/opt/isf".into()),
            pooltag: None,
        };
        Scrubber::new(Path::new("/var/lib/pt"), Path::new("dumps/ab12"), &symbols)
    }

    #[test]
    fn failure_messages_name_no_server_path() {
        let s = scrubber();
        assert_eq!(
            s.text("dumps/ab12: malformed bitmap header"),
            "malformed bitmap header"
        );
        assert_eq!(
            s.text("cannot read /var/lib/pt/dumps/ab12 (os error 5)"),
            "cannot read the dump (os error 5)"
        );
        assert_eq!(
            s.text("/srv/cache/ntkrnlmp.pdb/ABC1/ntkrnlmp.pdb: truncated"),
            "ntkrnlmp.pdb/ABC1/ntkrnlmp.pdb: truncated"
        );
        assert_eq!(s.text("no path here"), "no path here");
        assert!(!s.mentioned_in("{\"a\": \"no path here\"}"));
        assert!(s.mentioned_in("{\"a\": \"/opt/isf/x\"}"));
    }

    #[test]
    fn every_string_of_a_report() {
        let s = scrubber();
        let mut v = serde_json::json!({
            "symbols": {"path": "/opt/isf/windows/ntkrnlmp.pdb/X-1.json.xz", "age": 1},
            "warnings": ["/opt/vendor/acme.pdb: no line information"],
        });
        s.json(&mut v);
        assert_eq!(v["symbols"]["path"], "windows/ntkrnlmp.pdb/X-1.json.xz");
        assert_eq!(v["symbols"]["age"], 1);
        assert_eq!(v["warnings"][0], "acme.pdb: no line information");
    }
}
