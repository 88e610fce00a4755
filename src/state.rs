//! What every handler and worker shares: the database, the clock, the settings, the limiter,
//! the credential cache, the shutdown, the event bus and the mail transport.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::config::Transport;
use crate::db::Db;
use crate::shutdown::Shutdown;
use crate::{events_bus, ids};

/// Everything a request handler may need, shared by all of them.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The source of "now" (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// The settings the server was started with.
    pub config: ServeConfig,
    /// Per-caller rate limits.
    pub limiter: crate::ratelimit::RateLimiter,
    /// Principals recently resolved from bearer tokens.
    pub credentials: crate::credentials::Credentials,
    /// This process's id, to tell its in-flight idempotent requests from a crashed one's.
    pub instance_id: String,
    /// Fires when the server starts shutting down; long-lived streams end on it.
    pub shutdown: Shutdown,
    /// Committed events, broadcast to SSE streams.
    pub bus: events_bus::EventBus,
    /// Open SSE streams, for their limits.
    pub streams: Arc<events_bus::StreamSlots>,
    /// Where outbound mail goes.
    pub mail: Transport,
}

impl AppState {
    /// State over an open database.
    pub fn new(db: Db, config: ServeConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            limiter: crate::ratelimit::RateLimiter::new(config.rate_limit.0),
            credentials: Default::default(),
            instance_id: ids::new_id("inst"),
            shutdown: Shutdown::new(),
            bus: events_bus::EventBus::new(),
            streams: Arc::default(),
            // The flag parser has already tried the URL, so a bad one never gets this far.
            mail: Transport::from_config(config.smtp_url.as_deref()).unwrap_or(Transport::Log),
            config,
        }
    }
}
