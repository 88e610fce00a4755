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
pub mod backup_worker;
pub mod campaign_worker;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod db;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod events_bus;
pub mod ids;
pub mod import_file;
pub mod mail_worker;
pub mod mcp;
pub mod metrics;
pub mod prompt;
pub mod ratelimit;
pub mod rules;
pub mod secrets;
pub mod seed;
pub mod server;
pub mod shape;
pub mod shutdown;
pub mod state;
pub mod systemd;
pub mod targets;
pub mod timefmt;
pub mod tls;
pub mod web;
pub mod webhook_worker;

pub use server::{build_app, serve};
pub use shutdown::{Admitted, Shutdown, QUIET};
pub use state::AppState;
