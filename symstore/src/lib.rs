//! The symbol store client: fetches PDBs and images by key from the stores of a WinDbg-style
//! symbol path (local directories, symbol-store trees, HTTP symbol servers such as
//! Microsoft's), into a local cache.
//!
//! One job per file: [`path`] parses the symbol path, [`key`] builds keys and refuses hostile
//! names, `local` searches local stores, `http` downloads (timeouts, retries, size limit,
//! `breaker`), [`cache`] installs files atomically and evicts by LRU, `negative` remembers
//! misses, `flight` merges concurrent requests, `cab` and `ptr` read `.pd_` and
//! `file.ptr` entries, `verify` checks that a file is what its key says.
//!
//! Everything is blocking and [`SymbolStore`] is `Send + Sync`: share one across threads.
//!
//! A crate of its own because it needs nothing of the analyzer: [`msf_check`] (the bounds a PDB
//! container must keep before the `pdb` crate reads it) lives here since the store identifies
//! PDBs with it; the analyzer re-exports both as `analyzer::symbols::{store, msf_check}`.

pub mod add;
mod breaker;
pub mod bytes;
pub(crate) mod cab;
pub mod cache;
mod config;
mod error;
mod flight;
mod http;
pub mod key;
mod local;
pub mod msf_check;
mod negative;
pub mod path;
pub(crate) mod ptr;
pub(crate) mod verify;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use cache::EvictStats;
pub use config::StoreConfig;
pub use error::FetchError;
pub use key::{check_name, compressed_name, file_name_of, SymbolKey};
pub use path::{PathEntry, StoreLocation, SymbolPath, MICROSOFT_SYMBOL_SERVER};

use cache::TempFile;
use flight::SingleFlight;
use http::{Got, Http};
use local::Found;
use ptr::PtrTarget;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file the store produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The local file: in a cache, or in place in a local store.
    pub path: PathBuf,
    /// The symbol path element that answered: a directory or a server's base URL.
    pub source: String,
    /// Exactly what was read: the URL downloaded, the `.pd_` or `file.ptr` target used, or
    /// `path` itself for a file found in place (including a cache hit).
    pub origin: String,
}

/// A symbol store client over a [`SymbolPath`].
pub struct SymbolStore {
    path: SymbolPath,
    config: StoreConfig,
    http: Http,
    flights: SingleFlight<Result<Fetched, FetchError>>,
}

/// Something a store produced, to be turned into a local file.
enum Material {
    /// Found in a local store.
    Store(Found),
    /// The plain file, downloaded into a temp file (from this URL).
    Downloaded(TempFile, String),
    /// `name.pd_`, downloaded into a temp file.
    DownloadedCab(TempFile, String),
}

/// One step of the chain: where to look and whether we manage it as a cache.
struct Target<'a> {
    /// The cache new files go to.
    dir: &'a Path,
    /// True when `dir` is a cache of ours (touched on hit, evicted), false for a user's store.
    managed: bool,
}

impl SymbolStore {
    pub fn new(path: SymbolPath, config: StoreConfig) -> SymbolStore {
        let http = Http::new(&config);
        SymbolStore {
            path,
            config,
            http,
            flights: SingleFlight::new(),
        }
    }

    pub fn symbol_path(&self) -> &SymbolPath {
        &self.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Fetches the file `key` names, trying the symbol path's entries in order. Concurrent
    /// calls for the same key share one fetch.
    pub fn fetch(&self, key: &SymbolKey) -> Result<Fetched, FetchError> {
        let index = key.index_path()?;
        let panicked = FetchError::DownloadFailed {
            url: index.clone(),
            reason: "internal error: the fetching thread panicked".into(),
        };
        self.flights.run(&index.to_lowercase(), Err(panicked), || {
            self.fetch_now(key, &index)
        })
    }

    /// Fetches several files with up to `threads` in parallel; results in the order of `keys`.
    /// (A dump lists ~150 modules; one at a time, each a round trip to the server, is slow.)
    pub fn fetch_many(
        &self,
        keys: &[SymbolKey],
        threads: usize,
    ) -> Vec<Result<Fetched, FetchError>> {
        let slots: Vec<std::sync::Mutex<Option<Result<Fetched, FetchError>>>> =
            keys.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, keys.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (Some(key), Some(slot)) = (keys.get(i), slots.get(i)) else {
                        break;
                    };
                    let r = self.fetch(key);
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                });
            }
        });
        slots
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| {
                        Err(FetchError::DownloadFailed {
                            url: String::new(),
                            reason: "internal error: not fetched".into(),
                        })
                    })
            })
            .collect()
    }

    fn fetch_now(&self, key: &SymbolKey, index: &str) -> Result<Fetched, FetchError> {
        let mut tried = Vec::new();
        let mut first_error = None;
        let mut cache: Option<PathBuf> = None;
        for entry in &self.path.entries {
            let outcome = match entry {
                PathEntry::Cache(dir) => {
                    let d = dir
                        .clone()
                        .unwrap_or_else(|| self.config.default_cache_dir.clone());
                    cache = Some(d.clone());
                    self.search_local(
                        &d,
                        key,
                        index,
                        Target {
                            dir: &d,
                            managed: true,
                        },
                        false,
                        &mut tried,
                    )
                }
                PathEntry::Local(dir) => {
                    let to = cache.as_deref().unwrap_or(&self.config.default_cache_dir);
                    self.search_local(
                        dir,
                        key,
                        index,
                        Target {
                            dir: to,
                            managed: false,
                        },
                        true,
                        &mut tried,
                    )
                }
                PathEntry::Server(stores) => {
                    self.search_chain(stores, cache.as_deref(), key, index, &mut tried)
                }
            };
            match outcome {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(e) => {
                    tried.push(format!("{e}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(FetchError::NotFound { tried }))
    }

    /// A local store (or flat directory when `flat`); compressed or pointed-to files are
    /// materialised in `to.dir`.
    fn search_local(
        &self,
        dir: &Path,
        key: &SymbolKey,
        index: &str,
        to: Target<'_>,
        flat: bool,
        tried: &mut Vec<String>,
    ) -> Result<Option<Fetched>, FetchError> {
        let source = dir.display().to_string();
        let in_place = |p: PathBuf, managed: bool| -> Result<Option<Fetched>, FetchError> {
            check_file_magic(key, &p)?;
            if managed {
                cache::touch(&p);
            }
            Ok(Some(Fetched {
                origin: p.display().to_string(),
                path: p,
                source: source.clone(),
            }))
        };
        match local::find_in_store(dir, key)? {
            Some(Found::Plain(p)) => return in_place(p, to.managed && to.dir == dir),
            Some(found) => {
                // Already materialised by an earlier run?
                if let Ok(Some(Found::Plain(p))) = local::find_in_store(to.dir, key) {
                    return in_place(p, true);
                }
                return self
                    .materialise(Material::Store(found), key, index, &to, &source)
                    .map(Some);
            }
            None => {}
        }
        if flat {
            if let Some(p) = local::find_flat(dir, key) {
                return in_place(p, false);
            }
        }
        tried.push(source);
        Ok(None)
    }

    /// A `srv*A*B*...` chain: the first store is the downstream cache of the others.
    fn search_chain(
        &self,
        stores: &[StoreLocation],
        cache: Option<&Path>,
        key: &SymbolKey,
        index: &str,
        tried: &mut Vec<String>,
    ) -> Result<Option<Fetched>, FetchError> {
        let default = cache
            .unwrap_or(&self.config.default_cache_dir)
            .to_path_buf();
        let mut chain: Vec<StoreLocation> = stores
            .iter()
            .map(|s| match s {
                StoreLocation::DefaultCache => StoreLocation::Local(default.clone()),
                other => other.clone(),
            })
            .collect();
        if let [StoreLocation::Local(dir)] = chain.as_slice() {
            // A lone store (srv*\\server\share) is read in place.
            return self.search_local(
                dir,
                key,
                index,
                Target {
                    dir: &default,
                    managed: false,
                },
                false,
                tried,
            );
        }
        if !matches!(chain.first(), Some(StoreLocation::Local(_))) {
            chain.insert(0, StoreLocation::Local(default.clone()));
        }
        let Some(StoreLocation::Local(down)) = chain.first() else {
            return Ok(None);
        };
        let down = down.clone();
        let mut first_error = None;
        for (i, loc) in chain.iter().enumerate() {
            let found = match loc {
                StoreLocation::Local(dir) if i == 0 => self.search_local(
                    dir,
                    key,
                    index,
                    Target {
                        dir: &down,
                        managed: true,
                    },
                    false,
                    tried,
                ),
                StoreLocation::Local(dir) => {
                    let mut scratch = Vec::new();
                    match self.search_local(
                        dir,
                        key,
                        index,
                        Target {
                            dir: &down,
                            managed: true,
                        },
                        false,
                        &mut scratch,
                    ) {
                        // Found in place upstream: copy it down (WinDbg does the same).
                        Ok(Some(f)) if !f.path.starts_with(&down) => {
                            let dest = down.join(index);
                            cache::copy_in(&f.path, &down, &dest)
                                .map_err(|e| FetchError::cache(&dest, e))?;
                            self.evict(&down, &dest);
                            Ok(Some(Fetched { path: dest, ..f }))
                        }
                        other => {
                            tried.extend(scratch);
                            other
                        }
                    }
                }
                StoreLocation::Http(base) => self.search_http(base, key, index, &down, tried),
                StoreLocation::DefaultCache => Ok(None),
            };
            match found {
                Ok(Some(f)) => {
                    // Copy into the intermediate local stores too (srv*A*B*URL).
                    for mid in chain.iter().take(i).skip(1) {
                        if let StoreLocation::Local(m) = mid {
                            let _ = cache::copy_in(&f.path, m, &m.join(index));
                        }
                    }
                    return Ok(Some(f));
                }
                Ok(None) => {}
                Err(e) => {
                    tried.push(e.to_string());
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }

    /// An HTTP server: the plain file, `name.pd_`, then `file.ptr`, each under the key as
    /// Microsoft spells it and (optionally) in lower case.
    fn search_http(
        &self,
        base: &str,
        key: &SymbolKey,
        index: &str,
        down: &Path,
        tried: &mut Vec<String>,
    ) -> Result<Option<Fetched>, FetchError> {
        if self.config.offline {
            tried.push(format!("{base} (offline)"));
            return Ok(None);
        }
        let ttl = self.config.negative_ttl;
        if negative::is_missing(down, base, index, ttl) {
            tried.push(format!("{base} (not there, remembered)"));
            return Ok(None);
        }
        let name = key.name();
        for file in [
            name.to_string(),
            compressed_name(name),
            "file.ptr".to_string(),
        ] {
            for url in self.urls(base, key, &file) {
                let mut tmp = TempFile::new_in(down).map_err(|e| FetchError::cache(down, e))?;
                if self.http.get(&url, &mut tmp.file)? == Got::Missing {
                    continue;
                }
                let found = Material::from_download(&file, name, tmp, &url)?;
                let fetched = self.materialise(
                    found,
                    key,
                    index,
                    &Target {
                        dir: down,
                        managed: true,
                    },
                    base,
                )?;
                negative::clear(down, base, index);
                return Ok(Some(Fetched {
                    origin: url,
                    ..fetched
                }));
            }
        }
        negative::record_miss(down, base, index, ttl);
        tried.push(base.to_string());
        Ok(None)
    }

    fn urls(&self, base: &str, key: &SymbolKey, file: &str) -> Vec<String> {
        let seg = key::url_segment;
        let name = key.name();
        let mut urls: Vec<String> = key
            .id_variants()
            .iter()
            .map(|id| format!("{base}/{}/{}/{}", seg(name), seg(id), seg(file)))
            .collect();
        // Microsoft's own server ignores case: asking it twice would only double the misses.
        let case_blind = http::host_of(base) == "msdl.microsoft.com";
        if self.config.http_case_variants && !case_blind {
            let lower = format!(
                "{base}/{}/{}/{}",
                seg(&name.to_lowercase()),
                seg(&key.id().to_lowercase()),
                seg(&file.to_lowercase())
            );
            urls.push(lower);
        } else {
            urls.truncate(1);
        }
        let mut seen = std::collections::HashSet::new();
        urls.retain(|u| seen.insert(u.clone()));
        urls
    }

    /// Turns what a store holds into a file in `to.dir` (or in place).
    fn materialise(
        &self,
        found: Material,
        key: &SymbolKey,
        index: &str,
        to: &Target<'_>,
        source: &str,
    ) -> Result<Fetched, FetchError> {
        let dest = to.dir.join(index);
        let done = |origin: String| Fetched {
            path: dest.clone(),
            source: source.to_string(),
            origin,
        };
        match found {
            Material::Store(Found::Plain(p)) => {
                check_file_magic(key, &p)?;
                Ok(Fetched {
                    origin: p.display().to_string(),
                    path: p,
                    source: source.to_string(),
                })
            }
            Material::Store(Found::Compressed(p)) => {
                let mut src = File::open(&p).map_err(|e| FetchError::malformed(p.display(), e))?;
                self.decompress_to(&mut src, key, to.dir, &dest, &p.display().to_string())?;
                self.evict(to.dir, &dest);
                Ok(done(p.display().to_string()))
            }
            Material::Store(Found::Pointer {
                ptr,
                target: PtrTarget::Path(t),
            }) => {
                let what = format!("{} -> {}", ptr.display(), t.display());
                let mut src = File::open(&t).map_err(|e| FetchError::malformed(&what, e))?;
                if cab::is_cab(&mut src) {
                    self.decompress_to(&mut src, key, to.dir, &dest, &what)?;
                    self.evict(to.dir, &dest);
                    Ok(done(t.display().to_string()))
                } else {
                    check_file_magic(key, &t)?;
                    Ok(Fetched {
                        origin: t.display().to_string(),
                        path: t,
                        source: source.to_string(),
                    })
                }
            }
            Material::Store(Found::Pointer {
                ptr,
                target: PtrTarget::Url(url),
            }) => {
                let mut tmp = TempFile::new_in(to.dir).map_err(|e| FetchError::cache(to.dir, e))?;
                if self.http.get(&url, &mut tmp.file)? == Got::Missing {
                    return Err(FetchError::malformed(
                        ptr.display(),
                        format!("points to {url}, which is not there"),
                    ));
                }
                if cab::is_cab(&mut tmp.file) {
                    self.decompress_to(&mut tmp.file, key, to.dir, &dest, &url)?;
                } else {
                    check_magic_open(key, &mut tmp.file, &url)?;
                    tmp.install(&dest)
                        .map_err(|e| FetchError::cache(&dest, e))?;
                }
                self.evict(to.dir, &dest);
                Ok(done(url))
            }
            Material::Downloaded(mut tmp, url) => {
                check_magic_open(key, &mut tmp.file, &url)?;
                tmp.install(&dest)
                    .map_err(|e| FetchError::cache(&dest, e))?;
                self.evict(to.dir, &dest);
                Ok(done(url))
            }
            Material::DownloadedCab(mut tmp, url) => {
                self.decompress_to(&mut tmp.file, key, to.dir, &dest, &url)?;
                self.evict(to.dir, &dest);
                Ok(done(url))
            }
        }
    }

    fn decompress_to(
        &self,
        src: &mut File,
        key: &SymbolKey,
        root: &Path,
        dest: &Path,
        what: &str,
    ) -> Result<(), FetchError> {
        let mut out = TempFile::new_in(root).map_err(|e| FetchError::cache(root, e))?;
        let max = self.config.max_download_bytes;
        cab::extract(src, key.name(), &mut out.file, max).map_err(|e| {
            if e.contains("exceeds the limit") {
                FetchError::TooLarge {
                    url: what.to_string(),
                    limit: max,
                }
            } else {
                FetchError::malformed(what, e)
            }
        })?;
        check_magic_open(key, &mut out.file, what)?;
        out.install(dest).map_err(|e| FetchError::cache(dest, e))
    }

    fn evict(&self, cache: &Path, keep: &Path) {
        if let Some(max) = self.config.max_cache_bytes {
            cache::evict(cache, max, keep);
        }
    }

    /// Evicts least recently used files of `cache` until it fits `max_bytes` (what happens
    /// automatically after each new file; exposed for a `symbols gc`-style command).
    pub fn evict_cache(cache: &Path, max_bytes: u64) -> EvictStats {
        cache::evict(cache, max_bytes, Path::new(""))
    }
}

impl Material {
    /// What a successful GET of `file` (the plain name, `name.pd_` or `file.ptr`) holds.
    fn from_download(
        file: &str,
        name: &str,
        mut tmp: TempFile,
        url: &str,
    ) -> Result<Material, FetchError> {
        if file.eq_ignore_ascii_case(name) {
            return Ok(Material::Downloaded(tmp, url.to_string()));
        }
        if !file.eq_ignore_ascii_case("file.ptr") {
            return Ok(Material::DownloadedCab(tmp, url.to_string()));
        }
        let mut content = Vec::new();
        std::io::Seek::rewind(&mut tmp.file)
            .and_then(|()| {
                (&mut tmp.file)
                    .take(ptr::MAX_PTR_BYTES + 1)
                    .read_to_end(&mut content)
            })
            .map_err(|e| FetchError::malformed(url, e))?;
        if content.len() as u64 > ptr::MAX_PTR_BYTES {
            return Err(FetchError::malformed(url, "file.ptr larger than 4 KiB"));
        }
        match ptr::parse(&content, Path::new("")).map_err(|e| FetchError::malformed(url, e))? {
            PtrTarget::Url(u) => Ok(Material::Store(Found::Pointer {
                ptr: PathBuf::from(url),
                target: PtrTarget::Url(u),
            })),
            // A server must not make us read local files.
            PtrTarget::Path(p) => Err(FetchError::malformed(
                url,
                format!(
                    "file.ptr served over HTTP points to a local path ({}); refused",
                    p.display()
                ),
            )),
        }
    }
}

fn check_magic_open(key: &SymbolKey, f: &mut File, what: &str) -> Result<(), FetchError> {
    verify::check_magic(key, f).map_err(|e| FetchError::malformed(what, e))
}

fn check_file_magic(key: &SymbolKey, p: &Path) -> Result<(), FetchError> {
    let mut f = File::open(p).map_err(|e| FetchError::malformed(p.display(), e))?;
    check_magic_open(key, &mut f, &p.display().to_string())
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<SymbolStore>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_spellings() {
        let s = SymbolStore::new(SymbolPath::default(), StoreConfig::default());
        let pe = SymbolKey::pe("Ntfs.sys", 0x5E00_00AB, 0x2AB000);
        assert_eq!(
            s.urls("http://h/s", &pe, "Ntfs.sys"),
            vec![
                "http://h/s/Ntfs.sys/5E0000AB2ab000/Ntfs.sys",
                "http://h/s/ntfs.sys/5e0000ab2ab000/ntfs.sys"
            ]
        );
        // symstore.py writes the age in lower-case hex.
        let pdb = SymbolKey::pdb("a.pdb", &"AB".repeat(16), 0x1c);
        assert_eq!(
            s.urls("http://h", &pdb, "a.pdb"),
            vec![
                format!("http://h/a.pdb/{}1C/a.pdb", "AB".repeat(16)),
                format!("http://h/a.pdb/{}1c/a.pdb", "AB".repeat(16)),
                format!("http://h/a.pdb/{}1c/a.pdb", "ab".repeat(16)),
            ]
        );
        // Microsoft's server ignores case: one spelling.
        assert_eq!(s.urls(MICROSOFT_SYMBOL_SERVER, &pe, "Ntfs.sys").len(), 1);
        let strict = SymbolStore::new(
            SymbolPath::default(),
            StoreConfig {
                http_case_variants: false,
                ..StoreConfig::default()
            },
        );
        assert_eq!(strict.urls("http://h", &pdb, "a.pdb").len(), 1);
    }
}
