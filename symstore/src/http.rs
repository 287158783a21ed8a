//! HTTP downloads: per-phase timeouts (connect, read, total), bounded retries with exponential
//! backoff (never after 404 or another plain 4xx), a hard size limit enforced on the bytes
//! actually received, and the per-host circuit breaker.

use super::breaker::{Breaker, FailKind};
use super::config::StoreConfig;
use super::error::FetchError;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::time::{Duration, Instant};

/// What one GET produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Got {
    /// 404 or 410: the server does not have it.
    Missing,
    /// The body, this many bytes, is in the output file.
    Saved(u64),
}

/// How an attempt failed.
enum Failure {
    /// Worth another attempt (timeouts, connection errors, 408/429/5xx); counts against the host.
    Retry(FetchError, FailKind),
    /// Final: a plain 4xx, a too-large body, a bad URL, a local write error.
    Final(FetchError),
}

pub(crate) struct Http {
    agent: ureq::Agent,
    /// A proxy setting that could not be used: every request fails with it.
    bad_proxy: Option<String>,
    breaker: Breaker,
    max_retries: u32,
    retry_backoff: Duration,
    max_backoff: Duration,
    total_timeout: Duration,
    read_timeout: Duration,
    max_bytes: u64,
}

/// The host part of a URL (breaker key), lower case, without user info.
pub(crate) fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_ascii_lowercase()
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

fn io_failure(url: &str, e: &io::Error) -> Failure {
    if is_timeout(e) {
        Failure::Retry(
            FetchError::TimedOut {
                url: url.into(),
                reason: e.to_string(),
            },
            FailKind::TimedOut,
        )
    } else {
        Failure::Retry(
            FetchError::DownloadFailed {
                url: url.into(),
                reason: e.to_string(),
            },
            FailKind::Failed,
        )
    }
}

impl Http {
    pub fn new(cfg: &StoreConfig) -> Http {
        let mut builder = ureq::AgentBuilder::new();
        let mut bad_proxy = None;
        if let Some(p) = &cfg.proxy {
            match ureq::Proxy::new(p) {
                Ok(proxy) => builder = builder.proxy(proxy),
                Err(e) => bad_proxy = Some(format!("bad proxy {p:?}: {e}")),
            }
        }
        let agent = builder
            .timeout_connect(cfg.connect_timeout)
            .timeout_read(cfg.read_timeout)
            .timeout_write(cfg.read_timeout)
            .user_agent(&cfg.user_agent)
            // Microsoft's server answers with a redirect to its blob storage.
            .redirects(5)
            // No connection reuse: ureq 2 clears a pooled socket's read timeout and only
            // restores it for requests with an overall deadline, which in turn replaces the
            // read timeout. A fresh connection per request keeps the read timeout in force.
            .max_idle_connections(0)
            .build();
        Http {
            agent,
            bad_proxy,
            breaker: Breaker::new(cfg.breaker_threshold, cfg.breaker_cooldown),
            max_retries: cfg.max_retries,
            retry_backoff: cfg.retry_backoff,
            max_backoff: cfg.max_backoff,
            total_timeout: cfg.total_timeout,
            read_timeout: cfg.read_timeout,
            max_bytes: cfg.max_download_bytes,
        }
    }

    /// GETs `url` into `out` (emptied before each attempt).
    pub fn get(&self, url: &str, out: &mut File) -> Result<Got, FetchError> {
        if let Some(reason) = &self.bad_proxy {
            return Err(FetchError::DownloadFailed {
                url: url.into(),
                reason: reason.clone(),
            });
        }
        let host = host_of(url);
        let start = Instant::now();
        let mut retries = 0u32;
        loop {
            if let Err(open) = self.breaker.check(&host) {
                let reason = format!(
                    "host {host} skipped after {} consecutive failures (circuit breaker; retry in {} s)",
                    open.failures,
                    open.retry_in.as_secs().max(1)
                );
                return Err(match open.last {
                    FailKind::TimedOut => FetchError::TimedOut {
                        url: url.into(),
                        reason,
                    },
                    FailKind::Failed => FetchError::DownloadFailed {
                        url: url.into(),
                        reason,
                    },
                });
            }
            let remaining = self.total_timeout.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                return Err(FetchError::TimedOut {
                    url: url.into(),
                    reason: "total timeout".into(),
                });
            }
            out.set_len(0)
                .and_then(|()| out.rewind())
                .map_err(|e| FetchError::Cache {
                    path: "(temp file)".into(),
                    reason: e.to_string(),
                })?;
            match self.attempt(url, out, remaining) {
                Ok(got) => {
                    self.breaker.success(&host);
                    return Ok(got);
                }
                Err(Failure::Final(e)) => {
                    if matches!(
                        e,
                        FetchError::DownloadFailed { .. } | FetchError::TooLarge { .. }
                    ) {
                        // The host answered; it is not down.
                        self.breaker.success(&host);
                    }
                    return Err(e);
                }
                Err(Failure::Retry(e, kind)) => {
                    self.breaker.failure(&host, kind);
                    if retries >= self.max_retries {
                        return Err(e);
                    }
                    let backoff = self
                        .retry_backoff
                        .saturating_mul(1u32 << retries.min(16))
                        .min(self.max_backoff);
                    if start.elapsed() + backoff >= self.total_timeout {
                        return Err(e);
                    }
                    retries += 1;
                    std::thread::sleep(backoff);
                }
            }
        }
    }

    fn attempt(&self, url: &str, out: &mut File, remaining: Duration) -> Result<Got, Failure> {
        let start = Instant::now();
        let mut request = self.agent.get(url);
        if remaining <= self.read_timeout {
            // Near the end of the total budget the deadline is the tighter bound (in ureq a
            // deadline replaces the per-read timeout, so it is only set when it is shorter).
            request = request.timeout(remaining);
        }
        let resp = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => {
                let e = FetchError::DownloadFailed {
                    url: url.into(),
                    reason: format!("HTTP {code}"),
                };
                return match code {
                    404 | 410 => Ok(Got::Missing),
                    408 | 429 | 500..=599 => Err(Failure::Retry(e, FailKind::Failed)),
                    _ => Err(Failure::Final(e)),
                };
            }
            Err(ureq::Error::Transport(t)) => {
                let reason = t.to_string();
                if is_timeout(&t) {
                    return Err(Failure::Retry(
                        FetchError::TimedOut {
                            url: url.into(),
                            reason,
                        },
                        FailKind::TimedOut,
                    ));
                }
                let e = FetchError::DownloadFailed {
                    url: url.into(),
                    reason,
                };
                return Err(match t.kind() {
                    ureq::ErrorKind::InvalidUrl
                    | ureq::ErrorKind::UnknownScheme
                    | ureq::ErrorKind::InsecureRequestHttpsOnly
                    | ureq::ErrorKind::TooManyRedirects
                    | ureq::ErrorKind::InvalidProxyUrl => Failure::Final(e),
                    _ => Failure::Retry(e, FailKind::Failed),
                });
            }
        };
        if !(200..300).contains(&resp.status()) {
            // A redirect ureq did not follow (no Location, too many) or an odd 1xx/3xx.
            return Err(Failure::Final(FetchError::DownloadFailed {
                url: url.into(),
                reason: format!("HTTP {} {}", resp.status(), resp.status_text()),
            }));
        }
        let too_large = || {
            Failure::Final(FetchError::TooLarge {
                url: url.into(),
                limit: self.max_bytes,
            })
        };
        let declared = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes) {
            return Err(too_large());
        }
        // Whatever Content-Length said (or if it said nothing), never accept more than the limit.
        let mut body = resp.into_reader().take(self.max_bytes + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_failure(url, &e)),
            };
            total += n as u64;
            if total > self.max_bytes {
                return Err(too_large());
            }
            if start.elapsed() > remaining {
                // Every read arrived in time, but the whole is too slow.
                return Err(Failure::Retry(
                    FetchError::TimedOut {
                        url: url.into(),
                        reason: format!("total timeout after {total} bytes"),
                    },
                    FailKind::TimedOut,
                ));
            }
            out.write_all(buf.get(..n).unwrap_or(&[])).map_err(|e| {
                Failure::Final(FetchError::Cache {
                    path: "(temp file)".into(),
                    reason: e.to_string(),
                })
            })?;
        }
        if let Some(n) = declared {
            if n != total {
                return Err(Failure::Retry(
                    FetchError::DownloadFailed {
                        url: url.into(),
                        reason: format!("got {total} bytes, Content-Length said {n}"),
                    },
                    FailKind::Failed,
                ));
            }
        }
        Ok(Got::Saved(total))
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts() {
        assert_eq!(
            host_of("https://msdl.microsoft.com/download/symbols/x"),
            "msdl.microsoft.com"
        );
        assert_eq!(host_of("http://u:p@H:8080/x?y"), "h:8080");
        assert_eq!(host_of("http://127.0.0.1:1"), "127.0.0.1:1");
    }
}
