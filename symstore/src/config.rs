//! The knobs of the symbol store client, with defaults for a support engineer's workstation
//! talking to Microsoft's server.

use std::path::PathBuf;
use std::time::Duration;

/// Configuration of a [`super::SymbolStore`]. `StoreConfig::default()` is what the CLI uses.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// TCP (and TLS) connect timeout per request.
    pub connect_timeout: Duration,
    /// Longest wait for any single read from the socket (a stalled server).
    pub read_timeout: Duration,
    /// Wall-clock limit for one URL (one spelling of one file), all attempts and backoff included.
    pub total_timeout: Duration,
    /// Retries after a failed attempt (timeouts, connection errors, 408/429/5xx); never after
    /// a 404 or another 4xx.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further retry, up to `max_backoff`.
    pub retry_backoff: Duration,
    pub max_backoff: Duration,
    /// Largest file accepted, downloaded or decompressed; a download is aborted as soon as it
    /// passes this, whatever Content-Length said.
    pub max_download_bytes: u64,
    /// Consecutive failed attempts to one host after which the host is skipped (0: never).
    pub breaker_threshold: u32,
    /// How long a tripped host is skipped before one request may probe it again.
    pub breaker_cooldown: Duration,
    /// How long a "not on this server" answer is remembered (persisted in the cache dir, so a
    /// second process benefits). Zero disables the negative cache.
    pub negative_ttl: Duration,
    /// Size limit of each cache directory; least recently used files are evicted after a new
    /// file lands. `None`: unlimited.
    pub max_cache_bytes: Option<u64>,
    /// The cache for `srv*URL`, `srv**URL` and `cache*` (default `./data/symbols`).
    pub default_cache_dir: PathBuf,
    /// Also try the lower-case spellings of a key on HTTP servers (static servers on
    /// case-sensitive file systems hold what their uploader wrote; Microsoft's is case-blind).
    pub http_case_variants: bool,
    pub user_agent: String,
    /// HTTP proxy for symbol servers, e.g. `http://proxy:3128` (`user:password@` allowed).
    /// Environment variables are not read here: a proxy must not swallow loopback servers.
    pub proxy: Option<String>,
    /// Never use the network: HTTP entries of the symbol path are skipped (reported as
    /// "offline" among the places tried); caches and local stores still answer.
    pub offline: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            max_retries: 2,
            retry_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            max_download_bytes: 1 << 30,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(3600),
            max_cache_bytes: Some(10 << 30),
            default_cache_dir: PathBuf::from("data").join("symbols"),
            http_case_variants: true,
            user_agent: format!(
                "pooltriage/{} (symbol store client)",
                env!("CARGO_PKG_VERSION")
            ),
            proxy: None,
            offline: false,
        }
    }
}

impl StoreConfig {
    /// The default configuration with the default cache under `data_dir` (`DATA_DIR/symbols`).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            default_cache_dir: data_dir.into().join("symbols"),
            ..StoreConfig::default()
        }
    }
}
