//! Auth settings: flags, `POOLTRIAGE_*` variables and the `[auth]` table of the config file,
//! layered with the rest of the service configuration (`crate::config`): flag > env > file >
//! default.

use super::{AuthConfig, RateLimit};
use serde::{Deserialize, Serialize};

/// The auth part of [`crate::config::Settings`]: flattened into `serve`'s flags, the `[auth]`
/// table of the config file.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Mark cookies Secure (HTTPS only): set when the service is reached over TLS.
    #[arg(
        long,
        env = "POOLTRIAGE_SECURE_COOKIES",
        value_name = "BOOL",
        action = clap::ArgAction::Set,
        default_value_t = false
    )]
    pub secure_cookies: bool,
    /// Lifetime of a browser session, in seconds.
    #[arg(long, env = "POOLTRIAGE_SESSION_TTL_SECS", value_name = "SECS", default_value_t = 12 * 3600)]
    pub session_ttl_secs: i64,
    /// Uploads a token may start back to back (token bucket size); 0 with a rate of 0 = no limit.
    #[arg(long, env = "POOLTRIAGE_UPLOAD_BURST", value_name = "N", default_value_t = RateLimit::default().burst)]
    pub upload_burst: u32,
    /// Sustained uploads per minute and token.
    #[arg(long, env = "POOLTRIAGE_UPLOADS_PER_MINUTE", value_name = "N", default_value_t = RateLimit::default().per_minute)]
    pub uploads_per_minute: f64,
    /// Uploads in flight at once, all tenants (one tenant gets half).
    #[arg(
        long,
        env = "POOLTRIAGE_MAX_UPLOADS",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_uploads: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        let d = AuthConfig::default();
        AuthSettings {
            secure_cookies: d.secure_cookies,
            session_ttl_secs: d.session_ttl_secs,
            upload_burst: d.upload_rate.burst,
            uploads_per_minute: d.upload_rate.per_minute,
            max_uploads: d.max_uploads,
        }
    }
}

impl AuthSettings {
    /// The settings as the auth module uses them. The error is one line naming the bad setting.
    pub fn check(&self) -> Result<AuthConfig, String> {
        let cfg = AuthConfig {
            secure_cookies: self.secure_cookies,
            session_ttl_secs: self.session_ttl_secs,
            upload_rate: RateLimit {
                burst: self.upload_burst,
                per_minute: self.uploads_per_minute,
            },
            max_uploads: self.max_uploads,
        };
        if cfg.max_uploads == 0 {
            return Err("max_uploads must be at least 1".into());
        }
        if !(60..=366 * 86_400).contains(&cfg.session_ttl_secs) {
            return Err(format!(
                "session_ttl_secs must be between 60 and 31622400, not {}",
                cfg.session_ttl_secs
            ));
        }
        if !cfg.upload_rate.per_minute.is_finite() || cfg.upload_rate.per_minute < 0.0 {
            return Err(format!(
                "uploads_per_minute must be a number >= 0, not {}",
                cfg.upload_rate.per_minute
            ));
        }
        Ok(cfg)
    }
}
