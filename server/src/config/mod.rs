//! Service configuration: one [`Settings`] struct declares every setting (settings.rs);
//! flags, then `POOLTRIAGE_*` environment variables (clap reads both), then an optional TOML
//! file (`--config FILE`, else `<data dir>/pooltriage.toml` if present), then the defaults are
//! layered by figment (layers.rs). [`Config::resolve`] checks the result and groups it for the
//! parts of the service. The service runs with no set-up at all: every setting has a default.

mod duration;
mod layers;
mod settings;
mod symbols;

pub use crate::http::connections::ConnectionLimits;
pub use layers::ServeArgs;
pub use settings::{Settings, DEFAULT_DATA_DIR};
use std::path::PathBuf;
use std::time::Duration;
pub use symbols::SymbolConfig;

/// The settings checked and grouped by the part of the service that reads them.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: std::net::SocketAddr,
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
    /// Tokens, sessions and upload limits (`crate::auth`).
    pub auth: crate::auth::AuthConfig,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Layers flags/env over the config file over the defaults, then checks the result.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        Config::check(args.layered()?)
    }

    fn check(s: Settings) -> Result<Config, ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        let symbols = SymbolConfig::resolve(&s)?;
        let auth = s.auth.check().map_err(ConfigError::Invalid)?;
        let limits = UploadLimits {
            max_upload_bytes: s.max_upload_bytes,
            max_dump_bytes: s.max_dump_bytes,
            max_ratio: s.max_ratio,
            ratio_floor_bytes: s.ratio_floor_bytes,
            max_symbol_bytes: s.max_symbol_bytes,
        };
        let job = JobLimits {
            timeout: s.job_timeout_secs,
            memory_bytes: s.job_memory_bytes,
            lease: s.job_lease_secs,
            max_attempts: s.job_max_attempts,
        };
        if s.workers == 0 || s.workers > 256 {
            return Err(ConfigError::Invalid(format!(
                "workers must be between 1 and 256, not {}",
                s.workers
            )));
        }
        if job.lease.as_secs() == 0 || job.timeout.as_secs() == 0 {
            return invalid("job lease and timeout must be at least 1 second");
        }
        if job.max_attempts == 0 {
            return invalid("job_max_attempts must be at least 1");
        }
        if limits.max_ratio == 0 {
            return invalid("max_ratio must be at least 1");
        }
        if s.upload_expiry_secs.as_secs() == 0 {
            return invalid("upload_expiry_secs must be at least 1");
        }
        let connections = ConnectionLimits {
            header_timeout: s.header_timeout_secs,
            body_idle_timeout: s.body_idle_timeout_secs,
            max_connections: s.max_connections,
            max_connections_per_client: s.max_connections_per_client,
        };
        if connections.header_timeout.is_zero() || connections.body_idle_timeout.is_zero() {
            return invalid("header_timeout_secs and body_idle_timeout_secs must be at least 1");
        }
        if connections.max_connections == 0 || connections.max_connections_per_client == 0 {
            return invalid("max_connections and max_connections_per_client must be at least 1");
        }
        let second = Duration::from_secs(1);
        let retention = RetentionConfig {
            days: s.retention_days,
            interval: s.retention_interval_secs.max(second),
            clock_offset_secs: s.retention_clock_offset_secs,
        };
        let webhooks = WebhookConfig {
            public_url: s.public_url.map(|u| u.trim_end_matches('/').to_string()),
            default_url: s.webhook_url,
            tenant_urls: s.webhook_tenant_urls,
            secret: s.webhook_secret,
            allowed_hosts: s
                .webhook_allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            timeout: s.webhook_timeout_secs.max(second),
            max_attempts: s.webhook_max_attempts.max(1),
            retry_base: s.webhook_retry_base_secs.max(second),
        };
        if webhooks.secret.as_deref() == Some("") {
            return invalid("webhook_secret must not be empty");
        }
        Ok(Config {
            listen: s.listen,
            data_dir: s.data_dir,
            database_url: s.database_url,
            limits,
            workers: s.workers,
            job,
            analyzer: s.analyzer,
            upload_expiry: s.upload_expiry_secs,
            connections,
            retention,
            webhooks,
            symbols,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::settings::GIB;
    use super::*;
    use std::path::Path;

    /// `serve ARGS...` as the command line gives it (with the environment of the tests).
    fn args(argv: &[&str]) -> ServeArgs {
        let argv = std::iter::once("serve").chain(argv.iter().copied());
        ServeArgs::parse_from(argv).unwrap()
    }

    fn in_dir(dir: &Path, more: &[&str]) -> ServeArgs {
        args(&[&["--data-dir", dir.to_str().unwrap()], more].concat())
    }

    #[test]
    fn defaults_without_anything() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::resolve(&in_dir(dir.path(), &[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.workers, 2);
        assert_eq!(c.limits.max_upload_bytes, 64 * GIB);
        assert_eq!(c.auth, crate::auth::AuthConfig::default());
    }

    #[test]
    fn database_url_from_file_or_flag_else_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::resolve(&in_dir(dir.path(), &[]))
                .unwrap()
                .database_url,
            None
        );
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "database_url = \"postgres://u:p@file/db\"\n",
        )
        .unwrap();
        let c = Config::resolve(&in_dir(dir.path(), &[])).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:p@file/db"));
        let c = Config::resolve(&in_dir(
            dir.path(),
            &["--database-url", "postgres://flag/db"],
        ))
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
        let c = Config::resolve(&in_dir(dir.path(), &["--workers", "7"])).unwrap();
        assert_eq!(c.workers, 7);
        assert_eq!(c.limits.max_upload_bytes, 1000);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn durations_take_whole_seconds_or_humantime_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "job_timeout_secs = 120\njob_lease_secs = \"1m\"\nheader_timeout_secs = \"45\"\n",
        )
        .unwrap();
        let c = Config::resolve(&in_dir(dir.path(), &["--upload-expiry-secs", "2h"])).unwrap();
        assert_eq!(c.job.timeout, Duration::from_secs(120));
        assert_eq!(c.job.lease, Duration::from_secs(60));
        assert_eq!(c.connections.header_timeout, Duration::from_secs(45));
        assert_eq!(c.upload_expiry, Duration::from_secs(7200));
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "job_timeout_secs = \"a while\"\n",
        )
        .unwrap();
        let e = Config::resolve(&in_dir(dir.path(), &[])).unwrap_err();
        assert!(e.to_string().contains("job_timeout_secs"), "{e}");
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
        let c = Config::resolve(&in_dir(
            dir.path(),
            &["--retention-days", "7", "--webhook-max-attempts", "0"],
        ))
        .unwrap();
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
        let c = Config::resolve(&in_dir(bare.path(), &[])).unwrap();
        assert_eq!(c.retention.days, None);
    }

    #[test]
    fn serve_takes_the_auth_flags_and_the_upload_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let flags = [
            "--upload-burst",
            "3",
            "--uploads-per-minute",
            "0.5",
            "--secure-cookies",
            "true",
            "--upload-expiry-secs",
            "60",
        ];
        let c = Config::resolve(&in_dir(dir.path(), &flags)).unwrap();
        assert_eq!(c.auth.upload_rate.burst, 3);
        assert_eq!(c.auth.upload_rate.per_minute, 0.5);
        assert!(c.auth.secure_cookies);
        assert_eq!(c.upload_expiry.as_secs(), 60);
        let zero = in_dir(dir.path(), &["--upload-expiry-secs", "0"]);
        assert!(Config::resolve(&zero).is_err());
    }

    #[test]
    fn auth_flags_beat_the_auth_table_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "[auth]\nsecure_cookies = true\nupload_burst = 5\nuploads_per_minute = 2.5\n",
        )
        .unwrap();
        let c = Config::resolve(&in_dir(dir.path(), &["--upload-burst", "9"])).unwrap();
        assert!(c.auth.secure_cookies);
        assert_eq!(
            c.auth.upload_rate,
            crate::auth::RateLimit {
                burst: 9,
                per_minute: 2.5
            }
        );
        assert_eq!(
            c.auth.session_ttl_secs,
            crate::auth::AuthConfig::default().session_ttl_secs
        );
    }

    #[test]
    fn bad_auth_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pooltriage.toml"),
            "[auth]\nupload_bust = 5\n",
        )
        .unwrap();
        let e = Config::resolve(&in_dir(dir.path(), &[])).unwrap_err();
        assert!(e.to_string().contains("upload_bust"), "{e}");
        let bare = tempfile::tempdir().unwrap();
        for (flag, value, named) in [
            ("--session-ttl-secs", "5", "session_ttl_secs"),
            ("--uploads-per-minute", "-1", "uploads_per_minute"),
        ] {
            let a = in_dir(bare.path(), &[&format!("{flag}={value}")]);
            let e = Config::resolve(&a).unwrap_err().to_string();
            assert!(e.contains(named), "{e}");
        }
    }

    #[test]
    fn symbol_settings_default_to_the_data_dir_cache_and_are_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let abs_data = std::path::absolute(dir.path()).unwrap();
        // Default (unless the environment has _NT_SYMBOL_PATH): Microsoft's server, cached
        // under the data directory.
        if std::env::var(analyzer::symbols::store::path::ENV_VAR).is_err() {
            let c = Config::resolve(&in_dir(dir.path(), &[])).unwrap();
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
        let c = Config::resolve(&in_dir(
            dir.path(),
            &[
                "--symbol-path",
                "srv*rel/cache*http://127.0.0.1:9/s;srv**http://h/",
            ],
        ))
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
        let c = Config::resolve(&in_dir(dir.path(), &[])).unwrap();
        assert_eq!(c.symbols.symbol_path.as_deref(), Some("srv*/c*http://x"));
        assert_eq!(
            c.symbols.isf_dir.as_deref(),
            Some(abs_data.join("isf").as_path())
        );
        assert_eq!(
            c.symbols.pooltag.as_deref(),
            Some(abs_data.join("pooltag.txt").as_path())
        );
        let c = Config::resolve(&in_dir(dir.path(), &["--no-symbols"])).unwrap();
        assert_eq!(c.symbols.symbol_path, None);
        // Bad values are refused at start, not at the first job.
        let missing = dir.path().join("missing");
        for bad in [
            in_dir(dir.path(), &["--symbol-path", "srv*/c*ftp://x/"]),
            in_dir(dir.path(), &["--isf-dir", missing.to_str().unwrap()]),
            in_dir(dir.path(), &["--pooltag", isf.to_str().unwrap()]),
        ] {
            assert!(Config::resolve(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "wrokers = 5\n").unwrap();
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains("wrokers"), "{e}");
        let e = Config::resolve(&args(&["--config", "/nonexistent/p.toml"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read config file /nonexistent/p.toml"),
            "{e}"
        );
        std::fs::write(&path, "workers = [").unwrap();
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml"), "{e}");
    }
}
