//! Clozup: a self-hostable, agent-native sales CRM server.
//!
//! [`build_app`] assembles the whole route tree from an [`AppState`]; `main.rs` only parses the
//! command line, and the integration tests run exactly what production runs.

/// The two `poem_openapi::types::Type` methods every scalar (not a container) type of ours
/// implements alike: its raw value is itself, and it has one element, itself.
macro_rules! scalar_raw_values {
    () => {
        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    };
}
pub(crate) use scalar_raw_values;

pub mod api;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod email;
pub mod events_bus;
pub mod ids;
pub mod intelligence;
pub mod secrets;
pub mod seed;
pub mod server;
pub mod timefmt;
pub mod webhooks;

use std::sync::Arc;

use clock::Clock;
use config::ServeConfig;
use db::Db;

pub use server::{build_app, serve};

/// Everything a request handler may need, shared by all of them.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The source of "now" (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// The settings the server was started with.
    pub config: ServeConfig,
    /// Per-caller rate limits.
    pub limiter: api::ratelimit::RateLimiter,
    /// Principals recently resolved from bearer tokens.
    pub credentials: api::credentials::Credentials,
    /// This process's id, to tell its in-flight idempotent requests from a crashed one's.
    pub instance_id: String,
    /// Fires when the server starts shutting down; long-lived streams end on it.
    pub shutdown: Shutdown,
    /// Committed events, broadcast to SSE streams.
    pub bus: events_bus::EventBus,
    /// Open SSE streams, for their limits.
    pub streams: Arc<events_bus::StreamSlots>,
    /// Where outbound mail goes.
    pub mail: email::Transport,
}

impl AppState {
    /// State over an open database.
    pub fn new(db: Db, config: ServeConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            limiter: api::ratelimit::RateLimiter::new(config.rate_limit.0),
            credentials: Default::default(),
            instance_id: ids::new_id("inst"),
            shutdown: Shutdown::new(),
            bus: events_bus::EventBus::new(),
            streams: Arc::default(),
            // The flag parser has already tried the URL, so a bad one never gets this far.
            mail: email::Transport::from_config(config.smtp_url.as_deref())
                .unwrap_or(email::Transport::Log),
            config,
        }
    }
}

/// A one-way shutdown signal that any number of tasks can wait on.
pub struct Shutdown(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    fn new() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }

    /// Starts the shutdown; every waiter wakes.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether the shutdown has started (for blocking threads that cannot await).
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // An error means the sender is gone, which only happens at the very end: done either way.
        let _ = rx.wait_for(|started| *started).await;
    }
}
