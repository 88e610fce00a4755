//! The one source of "now" for every rule that depends on time.
//!
//! Handlers read the time from [`Clock`] and pass it down as plain milliseconds, so domain and
//! intelligence code never call the system clock and tests can build any situation ("12 days in
//! stage") by setting a [`ManualClock`] instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in Unix milliseconds.
    fn now_ms(&self) -> Millis;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `ms`.
    pub fn new(ms: Millis) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds in a minute, hour and day, for readable arithmetic on [`Millis`].
pub const MINUTE_MS: Millis = 60_000;
/// Milliseconds in an hour.
pub const HOUR_MS: Millis = 60 * MINUTE_MS;
/// Milliseconds in a day.
pub const DAY_MS: Millis = 24 * HOUR_MS;
