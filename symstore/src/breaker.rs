//! Per-host circuit breaker: after N consecutive failed attempts a host is skipped for a
//! cool-down, so that a dead or firewalled symbol server costs one timeout per run rather than
//! one per module. After the cool-down, requests may probe it again; one more failure trips it
//! again at once, a success closes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the last failure was, so a skipped request reports the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailKind {
    TimedOut,
    Failed,
}

#[derive(Debug, Default)]
struct HostState {
    failures: u32,
    open_until: Option<Instant>,
    last: Option<FailKind>,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    hosts: Mutex<HashMap<String, HostState>>,
}

/// The host is being skipped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Open {
    pub failures: u32,
    pub retry_in: Duration,
    pub last: FailKind,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostState>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Err while the host's breaker is open.
    pub fn check(&self, host: &str) -> Result<(), Open> {
        let hosts = self.lock();
        match hosts.get(host) {
            Some(HostState {
                failures,
                open_until: Some(until),
                last,
            }) => {
                let now = Instant::now();
                if now < *until {
                    Err(Open {
                        failures: *failures,
                        retry_in: *until - now,
                        last: last.unwrap_or(FailKind::Failed),
                    })
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The host answered (any HTTP status that is not a server failure).
    pub fn success(&self, host: &str) {
        self.lock().remove(host);
    }

    pub fn failure(&self, host: &str, kind: FailKind) {
        if self.threshold == 0 {
            return;
        }
        let mut hosts = self.lock();
        let st = hosts.entry(host.to_string()).or_default();
        st.failures = st.failures.saturating_add(1);
        st.last = Some(kind);
        if st.failures >= self.threshold {
            st.open_until = Some(Instant::now() + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_threshold_and_recovers() {
        let b = Breaker::new(3, Duration::from_millis(50));
        b.failure("h", FailKind::Failed);
        b.failure("h", FailKind::TimedOut);
        assert!(b.check("h").is_ok());
        b.failure("h", FailKind::TimedOut);
        let open = b.check("h").unwrap_err();
        assert_eq!((open.failures, open.last), (3, FailKind::TimedOut));
        assert!(b.check("other").is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check("h").is_ok(), "half-open after the cool-down");
        b.failure("h", FailKind::Failed);
        assert!(
            b.check("h").is_err(),
            "one failure while half-open trips it again"
        );
        b.success("h");
        assert!(b.check("h").is_ok());
        let off = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.failure("h", FailKind::Failed);
        }
        assert!(off.check("h").is_ok());
    }
}
