//! Per-token upload rate limit: a token bucket per token id, in memory.
//!
//! In memory because the limit protects this process's disk and workers; a restart refills every
//! bucket, which is harmless. The map holds one small entry per token that has uploaded, and only
//! authenticated tokens reach it, so its size is bounded by the number of tokens an admin made.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many uploads a token may start: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct RateLimit {
    /// Bucket capacity: uploads allowed back to back after a quiet period.
    pub burst: u32,
    /// Sustained uploads per minute. 0 with `burst` 0 disables the limit.
    pub per_minute: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 20,
            per_minute: 60.0,
        }
    }
}

impl RateLimit {
    pub fn disabled(&self) -> bool {
        self.burst == 0 && self.per_minute <= 0.0
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by token id.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one upload from `key`'s bucket at time `now`. `Err(wait)` says how long until one is
    /// available (the `Retry-After` of the 429). `now` is a parameter so tests control the clock.
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.limit.disabled() {
            return Ok(());
        }
        let capacity = f64::from(self.limit.burst.max(1));
        let per_sec = self.limit.per_minute.max(0.0) / 60.0;
        // A poisoned lock only means another request panicked mid-update; the counters are still
        // plain numbers, so keep going rather than failing every upload.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if per_sec > 0.0 {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        } else {
            // No refill configured: the burst was all there is. Say "an hour" rather than forever.
            Err(Duration::from_secs(3600))
        }
    }

    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// How long until `key`'s bucket holds one again, without taking from it; `None` when it
    /// holds one now.
    pub fn empty_for_at(&self, key: &str, now: Instant) -> Option<Duration> {
        if self.limit.disabled() {
            return None;
        }
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.get(key)?;
        let capacity = f64::from(self.limit.burst.max(1));
        let per_sec = self.limit.per_minute.max(0.0) / 60.0;
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        if tokens >= 1.0 {
            None
        } else if per_sec > 0.0 {
            Some(Duration::from_secs_f64((1.0 - tokens) / per_sec))
        } else {
            Some(Duration::from_secs(3600))
        }
    }
}

/// `Retry-After` value in whole seconds, rounded up and at least 1 (RFC 9110 delay-seconds).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_configured_rate() {
        let rl = RateLimiter::new(RateLimit {
            burst: 3,
            per_minute: 6.0,
        }); // one per 10 s
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check_at("a", t0), Ok(()));
        }
        let wait = rl.check_at("a", t0).unwrap_err();
        assert_eq!(retry_after_secs(wait), 10);
        // 5 s later half a token has come back: still refused, 5 s to go.
        let wait = rl.check_at("a", t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(retry_after_secs(wait), 5);
        assert_eq!(rl.check_at("a", t0 + Duration::from_secs(10)), Ok(()));
        assert!(rl.check_at("a", t0 + Duration::from_secs(10)).is_err());
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(rl.check_at("a", later), Ok(()));
        }
        assert!(rl.check_at("a", later).is_err());
    }

    #[test]
    fn peeking_takes_nothing() {
        let rl = RateLimiter::new(RateLimit {
            burst: 2,
            per_minute: 6.0,
        });
        let t0 = Instant::now();
        assert_eq!(rl.empty_for_at("a", t0), None);
        assert_eq!(rl.check_at("a", t0), Ok(()));
        assert_eq!(rl.empty_for_at("a", t0), None);
        assert_eq!(rl.check_at("a", t0), Ok(()));
        assert_eq!(retry_after_secs(rl.empty_for_at("a", t0).unwrap()), 10);
        assert_eq!(rl.empty_for_at("a", t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn buckets_are_per_token() {
        let rl = RateLimiter::new(RateLimit {
            burst: 1,
            per_minute: 1.0,
        });
        let t0 = Instant::now();
        assert_eq!(rl.check_at("a", t0), Ok(()));
        assert!(rl.check_at("a", t0).is_err());
        assert_eq!(rl.check_at("b", t0), Ok(()));
    }

    #[test]
    fn zero_disables_and_no_refill_waits_an_hour() {
        let off = RateLimiter::new(RateLimit {
            burst: 0,
            per_minute: 0.0,
        });
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(off.check_at("a", t0), Ok(()));
        }
        let once = RateLimiter::new(RateLimit {
            burst: 2,
            per_minute: 0.0,
        });
        assert!(once.check_at("a", t0).is_ok() && once.check_at("a", t0).is_ok());
        assert_eq!(
            once.check_at("a", t0 + Duration::from_secs(86400)),
            Err(Duration::from_secs(3600))
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
