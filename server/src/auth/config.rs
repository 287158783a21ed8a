//! Auth settings from flags/environment and the `[auth]` table of the config file, the same
//! precedence as the rest of the service configuration (flag > env > file > default).

use super::{AuthConfig, RateLimit};

/// Flags (and `POOLTRIAGE_*` variables) for auth; flattened into `serve`'s arguments.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct AuthArgs {
    /// Mark cookies Secure (HTTPS only): set when the service is reached over TLS.
    #[arg(long, env = "POOLTRIAGE_SECURE_COOKIES", value_name = "BOOL")]
    pub secure_cookies: Option<bool>,
    /// Lifetime of a browser session, in seconds.
    #[arg(long, env = "POOLTRIAGE_SESSION_TTL_SECS", value_name = "SECS")]
    pub session_ttl_secs: Option<i64>,
    /// Uploads a token may start back to back (token bucket size); 0 with a rate of 0 = no limit.
    #[arg(long, env = "POOLTRIAGE_UPLOAD_BURST", value_name = "N")]
    pub upload_burst: Option<u32>,
    /// Sustained uploads per minute and token.
    #[arg(long, env = "POOLTRIAGE_UPLOADS_PER_MINUTE", value_name = "N")]
    pub uploads_per_minute: Option<f64>,
    /// Uploads in flight at once, all tenants (one tenant gets half). Default 64.
    #[arg(long, env = "POOLTRIAGE_MAX_UPLOADS", value_name = "N")]
    pub max_uploads: Option<usize>,
}

impl AuthArgs {
    /// The settings given by `POOLTRIAGE_*` environment variables alone, parsed by the same clap
    /// definitions as the flags (for a caller whose command line does not flatten [`AuthArgs`]).
    #[allow(dead_code)] // serve flattens AuthArgs now; kept for commands that do not
    pub fn from_env() -> Result<AuthArgs, String> {
        #[derive(clap::Parser)]
        struct EnvOnly {
            #[command(flatten)]
            auth: AuthArgs,
        }
        <EnvOnly as clap::Parser>::try_parse_from(["pooltriage"])
            .map(|e| e.auth)
            .map_err(|e| {
                // clap names the flag; the value came from its environment variable.
                let mut line = e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("bad auth setting")
                    .trim_start_matches("error: ")
                    .to_string();
                for (flag, var) in [
                    ("'--secure-cookies <BOOL>'", "POOLTRIAGE_SECURE_COOKIES"),
                    ("'--session-ttl-secs <SECS>'", "POOLTRIAGE_SESSION_TTL_SECS"),
                    ("'--upload-burst <N>'", "POOLTRIAGE_UPLOAD_BURST"),
                    (
                        "'--uploads-per-minute <N>'",
                        "POOLTRIAGE_UPLOADS_PER_MINUTE",
                    ),
                ] {
                    line = line.replace(flag, var);
                }
                line
            })
    }
}

/// The `[auth]` table of the config file: every key optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileAuth {
    secure_cookies: Option<bool>,
    session_ttl_secs: Option<i64>,
    upload_burst: Option<u32>,
    uploads_per_minute: Option<f64>,
    max_uploads: Option<usize>,
}

/// Resolve the auth settings. `file` is the config file's `[auth]` table, if any. The error is one
/// line naming the bad setting.
pub fn resolve(args: &AuthArgs, file: Option<toml::Table>) -> Result<AuthConfig, String> {
    let file: FileAuth = match file {
        Some(t) => toml::Value::Table(t)
            .try_into()
            .map_err(|e| format!("[auth] in the config file: {e}"))?,
        None => FileAuth::default(),
    };
    let d = AuthConfig::default();
    let cfg = AuthConfig {
        secure_cookies: args
            .secure_cookies
            .or(file.secure_cookies)
            .unwrap_or(d.secure_cookies),
        session_ttl_secs: args
            .session_ttl_secs
            .or(file.session_ttl_secs)
            .unwrap_or(d.session_ttl_secs),
        upload_rate: RateLimit {
            burst: args
                .upload_burst
                .or(file.upload_burst)
                .unwrap_or(d.upload_rate.burst),
            per_minute: args
                .uploads_per_minute
                .or(file.uploads_per_minute)
                .unwrap_or(d.upload_rate.per_minute),
        },
        max_uploads: args
            .max_uploads
            .or(file.max_uploads)
            .unwrap_or(d.max_uploads),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> Option<toml::Table> {
        Some(s.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let d = resolve(&AuthArgs::default(), None).unwrap();
        assert_eq!(d, AuthConfig::default());
        let file = table("secure_cookies = true\nupload_burst = 5\nuploads_per_minute = 2.5");
        let c = resolve(
            &AuthArgs {
                upload_burst: Some(9),
                ..Default::default()
            },
            file,
        )
        .unwrap();
        assert!(c.secure_cookies);
        assert_eq!(
            c.upload_rate,
            RateLimit {
                burst: 9,
                per_minute: 2.5
            }
        );
        assert_eq!(c.session_ttl_secs, AuthConfig::default().session_ttl_secs);
    }

    #[test]
    fn environment_values_are_parsed_and_bad_ones_named() {
        // One test owns these variables (tests run in parallel threads of one process).
        std::env::set_var("POOLTRIAGE_UPLOAD_BURST", "7");
        std::env::set_var("POOLTRIAGE_SECURE_COOKIES", "true");
        let a = AuthArgs::from_env().unwrap();
        assert_eq!((a.upload_burst, a.secure_cookies), (Some(7), Some(true)));
        std::env::set_var("POOLTRIAGE_UPLOAD_BURST", "x");
        let e = AuthArgs::from_env().unwrap_err();
        std::env::remove_var("POOLTRIAGE_UPLOAD_BURST");
        std::env::remove_var("POOLTRIAGE_SECURE_COOKIES");
        assert!(
            e.starts_with("invalid value 'x' for POOLTRIAGE_UPLOAD_BURST"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let e = resolve(&AuthArgs::default(), table("upload_bust = 5")).unwrap_err();
        assert!(e.contains("upload_bust"), "{e}");
        let e = resolve(
            &AuthArgs {
                session_ttl_secs: Some(5),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
        assert!(e.contains("session_ttl_secs"), "{e}");
        let e = resolve(
            &AuthArgs {
                uploads_per_minute: Some(-1.0),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
        assert!(e.contains("uploads_per_minute"), "{e}");
    }
}
