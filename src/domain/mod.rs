//! The CRM itself: one module per resource, each with its types, its validation and its SQL on
//! a plain `rusqlite` connection. Nothing here knows about HTTP; the API layer calls in with
//! values it has parsed and the caller's [`auth::Principal`].

pub mod api_keys;
pub mod auth;
pub mod error;
pub mod idempotency;
pub mod listing;
pub mod orgs;
pub mod pipelines;
pub mod sessions;
pub mod users;
pub mod validate;

pub use error::{DomainError, DomainResult, FieldIssue, Issues};
