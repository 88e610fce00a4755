//! Token-bucket rate limits per credential, or per client IP before authentication (docs/api.md §6).
//!
//! A bucket holds up to `burst` tokens and gets one back every `period`. A full bucket behaves
//! exactly like no bucket, so buckets that have refilled are dropped: memory holds only callers
//! active in the last `burst × period`, however many distinct keys a flood sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// How many buckets may exist before a sweep drops the full ones.
const SWEEP_AT: usize = 4096;

pub use crate::config::Limit;

/// What the limiter decided for one request, and the headers that say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// `RateLimit-Limit`: the burst.
    pub limit: u32,
    /// `RateLimit-Remaining`: tokens left after this request.
    pub remaining: u32,
    /// `RateLimit-Reset`: whole seconds until the bucket is full again.
    pub reset_secs: u64,
    /// `Retry-After` for a refused request: whole seconds until one token is back (≥ 1).
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter: one bucket per caller.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<Limit>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn ceil_secs(seconds: f64) -> u64 {
    seconds.max(0.0).ceil() as u64
}

impl RateLimiter {
    /// A limiter enforcing `limit`, or none at all for `None` (`--rate-limit off`).
    pub fn new(limit: Option<Limit>) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `caller` at `now`; `None` when rate limiting is off.
    pub fn check(&self, caller: &str, now: Instant) -> Option<Decision> {
        let limit = self.limit?;
        let burst = f64::from(limit.burst);
        let per_token = limit.period.as_secs_f64().max(1e-9);
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() / per_token).min(burst)
        };

        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| refill(b) < burst);
        }
        let bucket = buckets.entry(caller.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refill(bucket);
        let allowed = tokens >= 1.0;
        let left = if allowed { tokens - 1.0 } else { tokens };
        *bucket = Bucket {
            tokens: left,
            at: now,
        };
        Some(Decision {
            allowed,
            limit: limit.burst,
            remaining: left.floor() as u32,
            reset_secs: ceil_secs((burst - left) * per_token),
            retry_after_secs: ceil_secs((1.0 - left) * per_token).max(1),
        })
    }

    /// How many buckets are held (for tests and the memory benchmark).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter() -> RateLimiter {
        RateLimiter::new(Some(Limit {
            burst: 30,
            period: Duration::from_millis(500),
        }))
    }

    #[test]
    fn burst_then_refusal_then_refill() {
        let rl = limiter();
        let t0 = Instant::now();
        for i in 0..30 {
            let d = rl.check("k", t0).unwrap();
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 29 - i);
        }
        let refused = rl.check("k", t0).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 15);
        let later = rl.check("k", t0 + Duration::from_millis(500)).unwrap();
        assert!(later.allowed);
        assert!(
            rl.check("other", t0).unwrap().allowed,
            "callers are independent"
        );
    }

    #[test]
    fn full_buckets_are_swept() {
        let rl = limiter();
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            rl.check(&format!("k{i}"), t0);
        }
        assert_eq!(rl.tracked(), SWEEP_AT);
        // 15 s later every bucket is full again, so the next check sweeps them all away.
        rl.check("new", t0 + Duration::from_secs(16));
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn off_means_no_decision() {
        assert!(RateLimiter::new(None).check("k", Instant::now()).is_none());
    }
}
