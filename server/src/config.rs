//! Service configuration: flags, then `POOLTRIAGE_*` environment variables (clap reads both),
//! then an optional TOML file (`--config FILE`, else `<data dir>/pooltriage.toml` if present),
//! then built-in defaults. The service runs with no set-up at all: every field has a default.

pub use crate::http::connections::ConnectionLimits;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Command-line and environment view of the settings; `None` means "not given here".
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, env = "POOLTRIAGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory holding the database, the dumps and temporary files (created if missing).
    #[arg(long, env = "POOLTRIAGE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL for scale-out: `postgres://user:password@host:5432/db` lets several
    /// service instances share one queue (and one data directory on a shared file system).
    /// Default: the SQLite file `<data dir>/pooltriage.db`.
    #[arg(
        long,
        env = "POOLTRIAGE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// TOML configuration file (default: `<data dir>/pooltriage.toml` when it exists).
    #[arg(long, env = "POOLTRIAGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Largest accepted upload, in bytes as received (before decompression).
    #[arg(long, env = "POOLTRIAGE_MAX_UPLOAD_BYTES", value_name = "BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Largest accepted dump after decompression, in bytes.
    #[arg(long, env = "POOLTRIAGE_MAX_DUMP_BYTES", value_name = "BYTES")]
    pub max_dump_bytes: Option<u64>,
    /// Largest accepted ratio of decompressed bytes to bytes received over the whole stream
    /// (compression bomb guard), checked once the output passes the floor. Default 100.
    #[arg(long, env = "POOLTRIAGE_MAX_RATIO", value_name = "N")]
    pub max_ratio: Option<u64>,
    /// Decompressed size below which the ratio is not checked: the start of a real dump may be
    /// one long run of zero pages. Default 128 MiB.
    #[arg(long, env = "POOLTRIAGE_RATIO_FLOOR_BYTES", value_name = "BYTES")]
    pub ratio_floor_bytes: Option<u64>,
    /// Largest vendor symbol upload (a PDB, an image, or a zip of them) as received, and
    /// largest single symbol file in it after decompression. Default 4 GiB.
    #[arg(long, env = "POOLTRIAGE_MAX_SYMBOL_BYTES", value_name = "BYTES")]
    pub max_symbol_bytes: Option<u64>,
    /// Number of worker tasks (concurrent analyses).
    #[arg(long, env = "POOLTRIAGE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Wall-clock limit of one analysis; the child is killed when it expires.
    #[arg(long, env = "POOLTRIAGE_JOB_TIMEOUT_SECS", value_name = "SECS")]
    pub job_timeout_secs: Option<u64>,
    /// Memory (heap, RLIMIT_DATA) limit of one analysis child, in bytes; 0 = no limit.
    #[arg(long, env = "POOLTRIAGE_JOB_MEMORY_BYTES", value_name = "BYTES")]
    pub job_memory_bytes: Option<u64>,
    /// How long a worker's claim on a job lives without a heartbeat.
    #[arg(long, env = "POOLTRIAGE_JOB_LEASE_SECS", value_name = "SECS")]
    pub job_lease_secs: Option<u64>,
    /// Attempts before a job that keeps failing transiently is marked failed.
    #[arg(long, env = "POOLTRIAGE_JOB_MAX_ATTEMPTS", value_name = "N")]
    pub job_max_attempts: Option<u32>,
    /// Program run as the analyzer (default: this executable). It is called as
    /// `PROGRAM analyze --json (--symbol-path P | --no-symbols) [--isf-dir D] [--pooltag F] DUMP`
    /// and must behave like `pooltriage` (docs/api.md, "Jobs").
    #[arg(long, env = "POOLTRIAGE_ANALYZER", value_name = "PROGRAM")]
    pub analyzer: Option<PathBuf>,
    /// A resumable upload with no activity for this long is abandoned: its row and its partial
    /// file are removed (default 86400, a day).
    #[arg(long, env = "POOLTRIAGE_UPLOAD_EXPIRY_SECS", value_name = "SECS")]
    pub upload_expiry_secs: Option<u64>,
    /// A request's line and headers must arrive within this many seconds (also how long an
    /// idle keep-alive connection stays open). Default 30.
    #[arg(long, env = "POOLTRIAGE_HEADER_TIMEOUT_SECS", value_name = "SECS")]
    pub header_timeout_secs: Option<u64>,
    /// A request body (an upload) that sends nothing for this many seconds is cut off and its
    /// partial data dropped (a resumable upload keeps what was made durable). Default 60.
    #[arg(long, env = "POOLTRIAGE_BODY_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub body_idle_timeout_secs: Option<u64>,
    /// Most connections open at once; beyond, new clients wait in the listen backlog.
    /// Default 1024 (lowered to what the process's file descriptor limit allows).
    #[arg(long, env = "POOLTRIAGE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address; beyond, the newest is closed.
    /// Default 128. Behind a reverse proxy every client has the proxy's address: raise it.
    #[arg(long, env = "POOLTRIAGE_MAX_CONNECTIONS_PER_CLIENT", value_name = "N")]
    pub max_connections_per_client: Option<usize>,
    /// Auth settings (`--secure-cookies`, `--upload-burst`, ...; docs/auth.md).
    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
    /// Delete dump files this many days after their last upload (reports are kept); 0 = as
    /// soon as the analysis finished. Not set: dump files are kept forever.
    #[arg(long, env = "POOLTRIAGE_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<u64>,
    /// How often the retention sweep runs.
    #[arg(long, env = "POOLTRIAGE_RETENTION_INTERVAL_SECS", value_name = "SECS")]
    pub retention_interval_secs: Option<u64>,
    /// Test knob: the retention sweep's clock runs this many seconds ahead of the real one
    /// (so a test can age a dump by days without waiting). Leave at 0 in production.
    #[arg(
        long,
        env = "POOLTRIAGE_RETENTION_CLOCK_OFFSET_SECS",
        value_name = "SECS"
    )]
    pub retention_clock_offset_secs: Option<i64>,
    /// Base URL of the service as its users reach it (`https://triage.example.com`), for the
    /// absolute links in webhook events. Not set: the links are paths (`/dumps/ID`).
    #[arg(long, env = "POOLTRIAGE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Webhook called for every dump (server-wide default; an upload's own `webhook_url` and a
    /// tenant's default in the config file take precedence).
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Key of the HMAC-SHA256 signature of webhook bodies. Not set: a random key is made once
    /// and kept in `<data dir>/webhook_secret`.
    #[arg(
        long,
        env = "POOLTRIAGE_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Hosts an upload's own `webhook_url` may name (comma-separated; `*.example.com` matches
    /// sub-domains). Empty: uploads cannot name a webhook (configured defaults still work).
    #[arg(
        long,
        env = "POOLTRIAGE_WEBHOOK_ALLOWED_HOSTS",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    pub webhook_allowed_hosts: Option<Vec<String>>,
    /// Time limit of one webhook request (connect + answer).
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_TIMEOUT_SECS", value_name = "SECS")]
    pub webhook_timeout_secs: Option<u64>,
    /// Attempts before a webhook delivery is given up.
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_MAX_ATTEMPTS", value_name = "N")]
    pub webhook_max_attempts: Option<u32>,
    /// First retry delay of a failed delivery; doubles at each attempt, capped at an hour.
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_RETRY_BASE_SECS", value_name = "SECS")]
    pub webhook_retry_base_secs: Option<u64>,
    /// Symbol path of the analyses (kernel profile, drivers' PDBs), WinDbg `_NT_SYMBOL_PATH`
    /// syntax as `analyze --symbol-path`. Default: `_NT_SYMBOL_PATH` of the service's
    /// environment, else `srv*<data dir>/symbols*https://msdl.microsoft.com/download/symbols`
    /// (one cache shared by all workers). Relative directories are taken from the service's
    /// working directory.
    #[arg(long, env = "POOLTRIAGE_SYMBOL_PATH", value_name = "PATH")]
    pub symbol_path: Option<String>,
    /// No symbol path for the analyses (no downloads): only --isf-dir and the built-in layouts.
    #[arg(long, env = "POOLTRIAGE_NO_SYMBOLS")]
    pub no_symbols: bool,
    /// A folder of Volatility ISFs (`ntkrnlmp.pdb/<GUID>-<AGE>.json.xz`), searched for the
    /// kernel's profile before the symbol path (as `analyze --isf-dir`).
    #[arg(long, env = "POOLTRIAGE_ISF_DIR", value_name = "DIR")]
    pub isf_dir: Option<PathBuf>,
    /// The operator's pooltag.txt (`Tag - binary - description`) for tag descriptions.
    #[arg(long, env = "POOLTRIAGE_POOLTAG", value_name = "FILE")]
    pub pooltag: Option<PathBuf>,
}

/// The optional config file. Same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    max_upload_bytes: Option<u64>,
    max_dump_bytes: Option<u64>,
    max_ratio: Option<u64>,
    ratio_floor_bytes: Option<u64>,
    max_symbol_bytes: Option<u64>,
    workers: Option<usize>,
    job_timeout_secs: Option<u64>,
    job_memory_bytes: Option<u64>,
    job_lease_secs: Option<u64>,
    job_max_attempts: Option<u32>,
    analyzer: Option<PathBuf>,
    upload_expiry_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    body_idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    retention_days: Option<u64>,
    retention_interval_secs: Option<u64>,
    retention_clock_offset_secs: Option<i64>,
    public_url: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    webhook_allowed_hosts: Option<Vec<String>>,
    webhook_timeout_secs: Option<u64>,
    webhook_max_attempts: Option<u32>,
    webhook_retry_base_secs: Option<u64>,
    /// Per-tenant default webhooks, `{ acme = "https://..." }` (config file only).
    webhook_tenant_urls: Option<std::collections::BTreeMap<String, String>>,
    /// Owned by the auth module; accepted here so one file configures the whole service.
    auth: Option<toml::Table>,
    symbol_path: Option<String>,
    no_symbols: Option<bool>,
    isf_dir: Option<PathBuf>,
    pooltag: Option<PathBuf>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the SQLite file under `data_dir` (see `crate::db::open`).
    pub database_url: Option<String>,
    pub limits: UploadLimits,
    pub workers: usize,
    pub job: JobLimits,
    /// Analyzer program; None = this executable.
    pub analyzer: Option<PathBuf>,
    /// Abandoned resumable uploads are removed after this long without activity.
    pub upload_expiry: Duration,
    /// Timeouts and connection limits of the HTTP server (`crate::http::connections`).
    pub connections: ConnectionLimits,
    /// Dump file retention (`crate::retention`).
    pub retention: RetentionConfig,
    /// Webhooks (`crate::webhooks`).
    pub webhooks: WebhookConfig,
    /// Symbols handed to the analyzer child (`crate::jobs::runner`).
    pub symbols: SymbolConfig,
    /// The `[auth]` table of the config file, for the auth module to resolve (once wired).
    #[allow(dead_code)]
    pub auth_file: Option<toml::Table>,
}

pub use upload::UploadLimits;

#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    pub timeout: Duration,
    /// 0 = unlimited.
    pub memory_bytes: u64,
    pub lease: Duration,
    pub max_attempts: u32,
}

/// Dump file retention: files go, reports stay.
#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    /// None: keep dump files forever.
    pub days: Option<u64>,
    pub interval: Duration,
    /// Seconds added to the clock of the retention sweep (tests only).
    pub clock_offset_secs: i64,
}

/// Webhook settings (docs/api.md, "Webhooks").
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// Base URL for the links in events (no trailing slash); None = paths.
    pub public_url: Option<String>,
    /// Server-wide default webhook.
    pub default_url: Option<String>,
    /// Per-tenant default webhooks (win over the server-wide one).
    pub tenant_urls: std::collections::BTreeMap<String, String>,
    /// HMAC key; None = the key kept in the data directory.
    pub secret: Option<String>,
    /// Hosts an upload's own webhook URL may name (lower-case; `*.` prefix = sub-domains).
    pub allowed_hosts: Vec<String>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
}

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
    /// Resolves the symbol settings: flag/env over the file; the symbol path then falls back
    /// to `_NT_SYMBOL_PATH`, then to the default store with its cache under the data directory.
    fn resolve(args: &ServeArgs, file: &FileConfig, data_dir: &Path) -> Result<Self, ConfigError> {
        use analyzer::symbols::store::SymbolPath;
        let abs = |p: &Path| {
            std::path::absolute(p).map_err(|e| {
                ConfigError::Invalid(format!("cannot make {} absolute: {e}", p.display()))
            })
        };
        let data_dir = abs(data_dir)?;
        let no_symbols = args.no_symbols || file.no_symbols.unwrap_or(false);
        let symbol_path = if no_symbols {
            None
        } else {
            let given = args
                .symbol_path
                .clone()
                .or_else(|| file.symbol_path.clone())
                .filter(|s| !s.trim().is_empty());
            let parsed = SymbolPath::resolve(given.as_deref(), &data_dir)
                .map_err(|e| ConfigError::Invalid(format!("symbol_path: {e}")))?;
            Some(absolute_symbol_path(parsed, &data_dir)?.to_string())
        };
        let isf_dir = match args.isf_dir.clone().or_else(|| file.isf_dir.clone()) {
            Some(d) if !d.is_dir() => {
                return Err(ConfigError::Invalid(format!(
                    "isf_dir {} is not a directory",
                    d.display()
                )))
            }
            Some(d) => Some(abs(&d)?),
            None => None,
        };
        let pooltag = match args.pooltag.clone().or_else(|| file.pooltag.clone()) {
            Some(f) if !f.is_file() => {
                return Err(ConfigError::Invalid(format!(
                    "pooltag {} is not a file",
                    f.display()
                )))
            }
            Some(f) => Some(abs(&f)?),
            None => None,
        };
        Ok(SymbolConfig {
            symbol_path,
            isf_dir,
            pooltag,
        })
    }
}

/// The symbol path with every directory absolute and the default cache spelt out as
/// `<data dir>/symbols`: the child would otherwise read them from its own working directory.
fn absolute_symbol_path(
    p: analyzer::symbols::store::SymbolPath,
    data_dir: &Path,
) -> Result<analyzer::symbols::store::SymbolPath, ConfigError> {
    use analyzer::symbols::store::{PathEntry, StoreLocation};
    let abs = |d: PathBuf| {
        std::path::absolute(&d).map_err(|e| {
            ConfigError::Invalid(format!(
                "symbol_path: cannot make {} absolute: {e}",
                d.display()
            ))
        })
    };
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
    Ok(analyzer::symbols::store::SymbolPath { entries })
}

/// The default listen address, 127.0.0.1:8080 (loopback: exposing the service is a decision).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));
pub const DEFAULT_DATA_DIR: &str = "data";
const GIB: u64 = 1 << 30;

/// Default `max_ratio`. A compression bomb is zeros (or one repeated byte), which deflate packs
/// about 1000 to 1, from its first byte to its last; whole dumps pack far less, page data being
/// mostly incompressible: the forged busy servers of 1 and 4 GiB give 48x and 37x at gzip -1,
/// 71x and 53x at gzip -9. 100 sits between the two with room on both sides.
pub const DEFAULT_MAX_RATIO: u64 = 100;

/// Default `ratio_floor_bytes`. The ratio is judged over the whole stream, so it needs enough
/// output to mean anything: a dump may open with tens of MiB of zero pages (the forged busy
/// servers open with 33 MiB: their running ratio peaks at up to 450x there and stays under 100x
/// only past 39 to 58 MiB of output, gzip -1 to -9, 1 and 4 GiB machines), and a running ratio
/// judged earlier refuses such dumps (the floor was 16 MiB). 128 MiB is twice that; a bomb still
/// stops at 128 MiB of output, about a second of this disk's writing and 0.1 % of the default
/// `max_dump_bytes`.
pub const DEFAULT_RATIO_FLOOR_BYTES: u64 = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Merges flags/env over the config file over the defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => {
                let dir = args
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
                let default_path = dir.join("pooltriage.toml");
                if default_path.is_file() {
                    read_file(&default_path)?
                } else {
                    FileConfig::default()
                }
            }
        };
        let listen = args.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN);
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let symbols = SymbolConfig::resolve(args, &file, &data_dir)?;
        let database_url = args.database_url.clone().or(file.database_url);
        let limits = UploadLimits {
            max_upload_bytes: args
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(64 * GIB),
            max_dump_bytes: args
                .max_dump_bytes
                .or(file.max_dump_bytes)
                .unwrap_or(128 * GIB),
            max_ratio: args
                .max_ratio
                .or(file.max_ratio)
                .unwrap_or(DEFAULT_MAX_RATIO),
            ratio_floor_bytes: args
                .ratio_floor_bytes
                .or(file.ratio_floor_bytes)
                .unwrap_or(DEFAULT_RATIO_FLOOR_BYTES),
            max_symbol_bytes: args
                .max_symbol_bytes
                .or(file.max_symbol_bytes)
                .unwrap_or(4 * GIB),
        };
        let workers = args.workers.or(file.workers).unwrap_or(2);
        let job = JobLimits {
            timeout: Duration::from_secs(
                args.job_timeout_secs
                    .or(file.job_timeout_secs)
                    .unwrap_or(600),
            ),
            memory_bytes: args
                .job_memory_bytes
                .or(file.job_memory_bytes)
                .unwrap_or(4 * GIB),
            lease: Duration::from_secs(args.job_lease_secs.or(file.job_lease_secs).unwrap_or(30)),
            max_attempts: args.job_max_attempts.or(file.job_max_attempts).unwrap_or(3),
        };
        if workers == 0 || workers > 256 {
            return Err(ConfigError::Invalid(format!(
                "workers must be between 1 and 256, not {workers}"
            )));
        }
        if job.lease.as_secs() == 0 || job.timeout.as_secs() == 0 {
            return Err(ConfigError::Invalid(
                "job lease and timeout must be at least 1 second".into(),
            ));
        }
        if job.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "job_max_attempts must be at least 1".into(),
            ));
        }
        if limits.max_ratio == 0 {
            return Err(ConfigError::Invalid("max_ratio must be at least 1".into()));
        }
        let analyzer = args.analyzer.clone().or(file.analyzer);
        let upload_expiry = Duration::from_secs(
            args.upload_expiry_secs
                .or(file.upload_expiry_secs)
                .unwrap_or(24 * 3600),
        );
        if upload_expiry.as_secs() == 0 {
            return Err(ConfigError::Invalid(
                "upload_expiry_secs must be at least 1".into(),
            ));
        }
        let connections = ConnectionLimits {
            header_timeout: Duration::from_secs(
                args.header_timeout_secs
                    .or(file.header_timeout_secs)
                    .unwrap_or(30),
            ),
            body_idle_timeout: Duration::from_secs(
                args.body_idle_timeout_secs
                    .or(file.body_idle_timeout_secs)
                    .unwrap_or(60),
            ),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(1024),
            max_connections_per_client: args
                .max_connections_per_client
                .or(file.max_connections_per_client)
                .unwrap_or(128),
        };
        if connections.header_timeout.is_zero() || connections.body_idle_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "header_timeout_secs and body_idle_timeout_secs must be at least 1".into(),
            ));
        }
        if connections.max_connections == 0 || connections.max_connections_per_client == 0 {
            return Err(ConfigError::Invalid(
                "max_connections and max_connections_per_client must be at least 1".into(),
            ));
        }
        let retention = RetentionConfig {
            days: args.retention_days.or(file.retention_days),
            interval: Duration::from_secs(
                args.retention_interval_secs
                    .or(file.retention_interval_secs)
                    .unwrap_or(3600)
                    .max(1),
            ),
            clock_offset_secs: args
                .retention_clock_offset_secs
                .or(file.retention_clock_offset_secs)
                .unwrap_or(0),
        };
        let webhooks = WebhookConfig {
            public_url: args
                .public_url
                .clone()
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            default_url: args.webhook_url.clone().or(file.webhook_url),
            tenant_urls: file.webhook_tenant_urls.unwrap_or_default(),
            secret: args.webhook_secret.clone().or(file.webhook_secret),
            allowed_hosts: args
                .webhook_allowed_hosts
                .clone()
                .or(file.webhook_allowed_hosts)
                .unwrap_or_default()
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            timeout: Duration::from_secs(
                args.webhook_timeout_secs
                    .or(file.webhook_timeout_secs)
                    .unwrap_or(10)
                    .max(1),
            ),
            max_attempts: args
                .webhook_max_attempts
                .or(file.webhook_max_attempts)
                .unwrap_or(8)
                .max(1),
            retry_base: Duration::from_secs(
                args.webhook_retry_base_secs
                    .or(file.webhook_retry_base_secs)
                    .unwrap_or(30)
                    .max(1),
            ),
        };
        if webhooks.secret.as_deref() == Some("") {
            return Err(ConfigError::Invalid(
                "webhook_secret must not be empty".into(),
            ));
        }
        Ok(Config {
            symbols,
            retention,
            webhooks,
            upload_expiry,
            connections,
            listen,
            data_dir,
            database_url,
            limits,
            workers,
            job,
            analyzer,
            auth_file: file.auth,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: shown,
        message: e.to_string().replace('\n', " "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_anything() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.workers, 2);
        assert_eq!(c.limits.max_upload_bytes, 64 * GIB);
    }

    #[test]
    fn database_url_from_file_or_flag_else_none() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        assert_eq!(Config::resolve(&args).unwrap().database_url, None);
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "database_url = \"postgres://u:p@file/db\"\n",
        )
        .unwrap();
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:p@file/db"));
        let c = Config::resolve(&ServeArgs {
            database_url: Some("postgres://flag/db".into()),
            ..args
        })
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://flag/db"));
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "workers = 5\nmax_upload_bytes = 1000\nlisten = \"127.0.0.1:9\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().into()),
            workers: Some(7),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.workers, 7);
        assert_eq!(c.limits.max_upload_bytes, 1000);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn retention_and_webhook_settings_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "retention_days = 30\npublic_url = \"https://t.example.com/\"\n\
             webhook_allowed_hosts = [\"Hooks.Example.com\", \" \"]\n\
             webhook_tenant_urls = { acme = \"https://acme.example.com/h\" }\n",
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().into()),
            retention_days: Some(7),
            webhook_max_attempts: Some(0),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.retention.days, Some(7));
        assert_eq!(c.retention.interval, Duration::from_secs(3600));
        assert_eq!(
            c.webhooks.public_url.as_deref(),
            Some("https://t.example.com")
        );
        assert_eq!(c.webhooks.allowed_hosts, ["hooks.example.com"]);
        assert_eq!(c.webhooks.tenant_urls["acme"], "https://acme.example.com/h");
        assert_eq!(c.webhooks.max_attempts, 1, "at least one attempt");
        // Not set anywhere: files are kept forever.
        let bare = tempfile::tempdir().unwrap();
        let c = Config::resolve(&ServeArgs {
            data_dir: Some(bare.path().into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.retention.days, None);
    }

    #[test]
    fn serve_takes_the_auth_flags_and_the_upload_expiry() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from([
            "serve",
            "--upload-burst",
            "3",
            "--uploads-per-minute",
            "0.5",
            "--secure-cookies",
            "true",
            "--upload-expiry-secs",
            "60",
        ])
        .unwrap();
        assert_eq!(cli.serve.auth.upload_burst, Some(3));
        assert_eq!(cli.serve.auth.uploads_per_minute, Some(0.5));
        assert_eq!(cli.serve.auth.secure_cookies, Some(true));
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().into()),
            ..cli.serve
        };
        assert_eq!(Config::resolve(&args).unwrap().upload_expiry.as_secs(), 60);
        let zero = ServeArgs {
            upload_expiry_secs: Some(0),
            ..args
        };
        assert!(Config::resolve(&zero).is_err());
    }

    #[test]
    fn symbol_settings_default_to_the_data_dir_cache_and_are_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let abs_data = std::path::absolute(dir.path()).unwrap();
        // Default (unless the environment has _NT_SYMBOL_PATH): Microsoft's server, cached
        // under the data directory.
        if std::env::var(analyzer::symbols::store::path::ENV_VAR).is_err() {
            let c = Config::resolve(&ServeArgs {
                data_dir: Some(dir.path().into()),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(
                c.symbols.symbol_path.as_deref(),
                Some(
                    format!(
                        "srv*{}*https://msdl.microsoft.com/download/symbols",
                        abs_data.join("symbols").display()
                    )
                    .as_str()
                )
            );
        }
        // A relative cache and the default cache (`srv**URL`) become absolute paths.
        let c = Config::resolve(&ServeArgs {
            data_dir: Some(dir.path().into()),
            symbol_path: Some("srv*rel/cache*http://127.0.0.1:9/s;srv**http://h/".into()),
            ..Default::default()
        })
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            c.symbols.symbol_path.unwrap(),
            format!(
                "srv*{}*http://127.0.0.1:9/s;srv*{}*http://h",
                cwd.join("rel/cache").display(),
                abs_data.join("symbols").display()
            )
        );
        // The file's settings; --no-symbols wins over any path.
        let isf = dir.path().join("isf");
        std::fs::create_dir(&isf).unwrap();
        let tags = dir.path().join("pooltag.txt");
        std::fs::write(&tags, "Leak - leaky.sys - test\n").unwrap();
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            format!(
                "symbol_path = \"srv*/c*http://x\"\nisf_dir = {:?}\npooltag = {:?}\n",
                isf.display().to_string(),
                tags.display().to_string()
            ),
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.symbols.symbol_path.as_deref(), Some("srv*/c*http://x"));
        assert_eq!(
            c.symbols.isf_dir.as_deref(),
            Some(abs_data.join("isf").as_path())
        );
        assert_eq!(
            c.symbols.pooltag.as_deref(),
            Some(abs_data.join("pooltag.txt").as_path())
        );
        let c = Config::resolve(&ServeArgs {
            no_symbols: true,
            ..args.clone()
        })
        .unwrap();
        assert_eq!(c.symbols.symbol_path, None);
        // Bad values are refused at start, not at the first job.
        for bad in [
            ServeArgs {
                symbol_path: Some("srv*/c*ftp://x/".into()),
                ..args.clone()
            },
            ServeArgs {
                isf_dir: Some(dir.path().join("missing")),
                ..args.clone()
            },
            ServeArgs {
                pooltag: Some(isf.clone()),
                ..args.clone()
            },
        ] {
            assert!(Config::resolve(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "wrokers = 5\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = Config::resolve(&args).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("wrokers"), "{e}");
    }
}
