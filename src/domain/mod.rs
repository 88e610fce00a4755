//! The CRM itself: one module per resource, each with its types, its validation and its SQL on
//! a plain `rusqlite` connection. Nothing here knows about HTTP; the API layer calls in with
//! values it has parsed and the caller's [`auth::Principal`].

pub mod activities;
pub mod agenda;
pub mod analytics;
pub mod api_keys;
pub mod auth;
pub mod campaigns;
pub mod changes;
pub mod companies;
pub mod deals;
pub mod email;
pub mod enrollments;
pub mod events;
pub mod idempotency;
pub mod intelligence;
pub mod lead_view;
pub mod leads;
pub mod listing;
pub mod memory;
pub mod notes;
pub mod nullable;
pub mod orgs;
pub mod outbox;
pub mod password_resets;
pub mod pipelines;
pub mod scores;
pub mod search;
pub mod sessions;
pub mod sheets;
pub mod signals;
pub mod suppressions;
pub mod tasks;
pub mod templates;
pub mod terms;
pub mod users;
pub mod validate;
pub mod webhooks;

/// The one error type, at the bottom of the house (the database layer returns it too).
pub use crate::error;
pub use error::{unknown, DomainError, DomainResult, FieldIssue, Issues};

/// Runs `sql`, a `SELECT status, COUNT(*) … GROUP BY status`, into (status, count) pairs.
fn count_by_status(conn: &rusqlite::Connection, sql: &str) -> DomainResult<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
