//! Every `serve` setting, declared once: its flag, its `POOLTRIAGE_*` variable, its key in the
//! config file (the field name), its type and its default. clap reads the flags and the
//! variables; figment layers what they gave over the config file over the defaults
//! ([`super::Config::resolve`]). Adding a setting is one field here plus its row in the table
//! of docs/api.md (or docs/auth.md), which a test checks.

use super::duration;
use crate::auth::config::AuthSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(super) const GIB: u64 = 1 << 30;

/// The default listen address, 127.0.0.1:8080 (loopback: exposing the service is a decision).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));
pub const DEFAULT_DATA_DIR: &str = "data";

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

/// The settings of `serve`. As parsed by clap, a field not given holds its default; the file
/// layer comes in between ([`super::Config::resolve`]).
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, env = "POOLTRIAGE_LISTEN", value_name = "ADDR", default_value_t = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory holding the database, the dumps and temporary files (created if missing).
    #[arg(long, env = "POOLTRIAGE_DATA_DIR", value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL for scale-out: `postgres://user:password@host:5432/db` lets several
    /// service instances share one queue (and one data directory on a shared file system).
    /// Default: the SQLite file `<data dir>/pooltriage.db`.
    #[arg(
        long,
        env = "POOLTRIAGE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Largest accepted upload, in bytes as received (before decompression).
    #[arg(long, env = "POOLTRIAGE_MAX_UPLOAD_BYTES", value_name = "BYTES", default_value_t = 64 * GIB)]
    pub max_upload_bytes: u64,
    /// Largest accepted dump after decompression, in bytes.
    #[arg(long, env = "POOLTRIAGE_MAX_DUMP_BYTES", value_name = "BYTES", default_value_t = 128 * GIB)]
    pub max_dump_bytes: u64,
    /// Largest accepted ratio of decompressed bytes to bytes received over the whole stream
    /// (compression bomb guard), checked once the output passes the floor.
    #[arg(long, env = "POOLTRIAGE_MAX_RATIO", value_name = "N", default_value_t = DEFAULT_MAX_RATIO)]
    pub max_ratio: u64,
    /// Decompressed size below which the ratio is not checked: the start of a real dump may be
    /// one long run of zero pages.
    #[arg(
        long,
        env = "POOLTRIAGE_RATIO_FLOOR_BYTES",
        value_name = "BYTES",
        default_value_t = DEFAULT_RATIO_FLOOR_BYTES
    )]
    pub ratio_floor_bytes: u64,
    /// Largest vendor symbol upload (a PDB, an image, or a zip of them) as received, and
    /// largest single symbol file in it after decompression.
    #[arg(long, env = "POOLTRIAGE_MAX_SYMBOL_BYTES", value_name = "BYTES", default_value_t = 4 * GIB)]
    pub max_symbol_bytes: u64,
    /// Number of worker tasks (concurrent analyses).
    #[arg(
        long,
        env = "POOLTRIAGE_WORKERS",
        value_name = "N",
        default_value_t = 2
    )]
    pub workers: usize,
    /// Wall-clock limit of one analysis; the child is killed when it expires.
    #[arg(long, env = "POOLTRIAGE_JOB_TIMEOUT_SECS", value_name = "SECS", default_value = "600", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub job_timeout_secs: Duration,
    /// Memory (heap, RLIMIT_DATA) limit of one analysis child, in bytes; 0 = no limit.
    #[arg(long, env = "POOLTRIAGE_JOB_MEMORY_BYTES", value_name = "BYTES", default_value_t = 4 * GIB)]
    pub job_memory_bytes: u64,
    /// How long a worker's claim on a job lives without a heartbeat.
    #[arg(long, env = "POOLTRIAGE_JOB_LEASE_SECS", value_name = "SECS", default_value = "30", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub job_lease_secs: Duration,
    /// Attempts before a job that keeps failing transiently is marked failed.
    #[arg(
        long,
        env = "POOLTRIAGE_JOB_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 3
    )]
    pub job_max_attempts: u32,
    /// Program run as the analyzer (default: this executable). It is called as
    /// `PROGRAM analyze --json (--symbol-path P | --no-symbols) [--isf-dir D] [--pooltag F] DUMP`
    /// and must behave like `pooltriage` (docs/api.md, "Jobs").
    #[arg(long, env = "POOLTRIAGE_ANALYZER", value_name = "PROGRAM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<PathBuf>,
    /// A resumable upload with no activity for this long is abandoned: its row and its partial
    /// file are removed.
    #[arg(long, env = "POOLTRIAGE_UPLOAD_EXPIRY_SECS", value_name = "SECS", default_value = "86400", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub upload_expiry_secs: Duration,
    /// A request's line and headers must arrive within this long (also how long an idle
    /// keep-alive connection stays open).
    #[arg(long, env = "POOLTRIAGE_HEADER_TIMEOUT_SECS", value_name = "SECS", default_value = "30", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub header_timeout_secs: Duration,
    /// A request body (an upload) that sends nothing for this long is cut off and its partial
    /// data dropped (a resumable upload keeps what was made durable).
    #[arg(long, env = "POOLTRIAGE_BODY_IDLE_TIMEOUT_SECS", value_name = "SECS", default_value = "60", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub body_idle_timeout_secs: Duration,
    /// Most connections open at once; beyond, new clients wait in the listen backlog
    /// (lowered to what the process's file descriptor limit allows).
    #[arg(
        long,
        env = "POOLTRIAGE_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 1024
    )]
    pub max_connections: usize,
    /// Most connections open at once from one client address; beyond, the newest is closed.
    /// Behind a reverse proxy every client has the proxy's address: raise it.
    #[arg(
        long,
        env = "POOLTRIAGE_MAX_CONNECTIONS_PER_CLIENT",
        value_name = "N",
        default_value_t = 128
    )]
    pub max_connections_per_client: usize,
    /// Auth settings (`--secure-cookies`, `--upload-burst`, ...; the `[auth]` table of the
    /// config file; docs/auth.md).
    #[command(flatten)]
    #[serde(default)]
    pub auth: AuthSettings,
    /// Delete dump files this many days after their last upload (reports are kept); 0 = as
    /// soon as the analysis finished. Not set: dump files are kept forever.
    #[arg(long, env = "POOLTRIAGE_RETENTION_DAYS", value_name = "DAYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u64>,
    /// How often the retention sweep runs.
    #[arg(long, env = "POOLTRIAGE_RETENTION_INTERVAL_SECS", value_name = "SECS", default_value = "3600", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub retention_interval_secs: Duration,
    /// Test knob: the retention sweep's clock runs this many seconds ahead of the real one
    /// (so a test can age a dump by days without waiting). Leave at 0 in production.
    #[arg(
        long,
        env = "POOLTRIAGE_RETENTION_CLOCK_OFFSET_SECS",
        value_name = "SECS",
        default_value_t = 0
    )]
    pub retention_clock_offset_secs: i64,
    /// Base URL of the service as its users reach it (`https://triage.example.com`), for the
    /// absolute links in webhook events. Not set: the links are paths (`/dumps/ID`).
    #[arg(long, env = "POOLTRIAGE_PUBLIC_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Webhook called for every dump (server-wide default; an upload's own `webhook_url` and a
    /// tenant's default in the config file take precedence).
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Per-tenant default webhooks, `{ acme = "https://..." }` (config file only).
    #[arg(skip)]
    #[serde(default)]
    pub webhook_tenant_urls: BTreeMap<String, String>,
    /// Key of the HMAC-SHA256 signature of webhook bodies. Not set: a random key is made once
    /// and kept in `<data dir>/webhook_secret`.
    #[arg(
        long,
        env = "POOLTRIAGE_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Hosts an upload's own `webhook_url` may name (comma-separated; `*.example.com` matches
    /// sub-domains). Empty: uploads cannot name a webhook (configured defaults still work).
    #[arg(
        long,
        env = "POOLTRIAGE_WEBHOOK_ALLOWED_HOSTS",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    pub webhook_allowed_hosts: Vec<String>,
    /// Time limit of one webhook request (connect + answer).
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_TIMEOUT_SECS", value_name = "SECS", default_value = "10", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub webhook_timeout_secs: Duration,
    /// Attempts before a webhook delivery is given up.
    #[arg(
        long,
        env = "POOLTRIAGE_WEBHOOK_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 8
    )]
    pub webhook_max_attempts: u32,
    /// First retry delay of a failed delivery; doubles at each attempt, capped at an hour.
    #[arg(long, env = "POOLTRIAGE_WEBHOOK_RETRY_BASE_SECS", value_name = "SECS", default_value = "30", value_parser = duration::parse)]
    #[serde(with = "duration")]
    pub webhook_retry_base_secs: Duration,
    /// Symbol path of the analyses (kernel profile, drivers' PDBs), WinDbg `_NT_SYMBOL_PATH`
    /// syntax as `analyze --symbol-path`. Default: `_NT_SYMBOL_PATH` of the service's
    /// environment, else `srv*<data dir>/symbols*https://msdl.microsoft.com/download/symbols`
    /// (one cache shared by all workers). Relative directories are taken from the service's
    /// working directory.
    #[arg(long, env = "POOLTRIAGE_SYMBOL_PATH", value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol_path: Option<String>,
    /// No symbol path for the analyses (no downloads): only --isf-dir and the built-in layouts.
    #[arg(long, env = "POOLTRIAGE_NO_SYMBOLS")]
    pub no_symbols: bool,
    /// A folder of Volatility ISFs (`ntkrnlmp.pdb/<GUID>-<AGE>.json.xz`), searched for the
    /// kernel's profile before the symbol path (as `analyze --isf-dir`).
    #[arg(long, env = "POOLTRIAGE_ISF_DIR", value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isf_dir: Option<PathBuf>,
    /// The operator's pooltag.txt (`Tag - binary - description`) for tag descriptions.
    #[arg(long, env = "POOLTRIAGE_POOLTAG", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooltag: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};
    use serde::de::{self, Visitor};
    use std::path::Path;

    /// The rows of the settings tables: docs/api.md "Configuration" and docs/auth.md "Settings".
    fn documented_rows() -> Vec<String> {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        ["api.md", "auth.md"]
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(docs.join(f)).unwrap();
                text.lines()
                    .filter(|l| l.starts_with("| `"))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The keys serde reads for `T` (the config file's keys), as its derive lists them.
    fn file_keys<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Recorder(&'static [&'static str]);
        impl<'de> de::Deserializer<'de> for &mut Recorder {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(de::Error::custom("recorded"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut r = Recorder(&[]);
        let _ = T::deserialize(&mut r);
        r.0
    }

    #[test]
    fn every_flag_and_variable_has_a_row_in_the_docs() {
        let rows = documented_rows();
        let cmd = super::super::ServeArgs::augment_args(Command::new("serve"));
        let mut checked = 0;
        for arg in cmd.get_arguments() {
            let flag = format!("`--{}`", arg.get_long().unwrap());
            let env = format!("`{}`", arg.get_env().unwrap().to_str().unwrap());
            assert!(
                rows.iter().any(|r| r.contains(&flag) && r.contains(&env)),
                "no row of docs/api.md or docs/auth.md names both {flag} and {env}"
            );
            checked += 1;
        }
        assert!(checked > 35, "{checked} flags");
    }

    #[test]
    fn every_config_file_key_has_a_row_in_the_docs() {
        let rows = documented_rows();
        let keys = file_keys::<Settings>();
        assert!(keys.contains(&"webhook_tenant_urls") && keys.contains(&"auth"));
        for key in keys.iter().chain(file_keys::<AuthSettings>()) {
            if *key == "auth" {
                continue; // a table, not a setting
            }
            let named = [format!("`{key}`"), format!("`--{}`", key.replace('_', "-"))];
            assert!(
                rows.iter().any(|r| named.iter().any(|n| r.contains(n))),
                "config file key {key} has no row in docs/api.md or docs/auth.md"
            );
        }
    }
}
