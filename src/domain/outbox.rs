//! The webhook outbox (docs/api.md §9): deliveries queued in the same transaction as the event
//! they carry, so a delivery exists exactly when its event does. The worker in
//! `crate::webhook_worker` sends them; the endpoints themselves are `domain::webhooks`.

use poem_openapi::types::ToJSON;
use rusqlite::params;

use super::error::DomainResult;
use super::events::{self, Event};
use crate::clock::Millis;
use crate::db::Tx;
use crate::ids::new_id;

/// Queues one delivery of an event to one endpoint.
pub fn enqueue(
    tx: &Tx<'_>,
    org_id: &str,
    webhook_id: &str,
    event_id: &str,
    event_type: &str,
    payload: &str,
    now: Millis,
) -> DomainResult<String> {
    let id = new_id("dlv");
    tx.prepare_cached(
        "INSERT INTO webhook_deliveries (id, org_id, webhook_id, event_id, event_type, payload, status,
                                         next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?7)",
    )?
    .execute(params![id, org_id, webhook_id, event_id, event_type, payload, now])?;
    tx.queue_work();
    Ok(id)
}

/// Queues a delivery of an event to every active endpoint of the organization that wants it;
/// called by `changes::append` inside the event's own transaction. The event is only built (and
/// serialized, once for all endpoints) when some endpoint wants it.
pub fn enqueue_event(
    tx: &Tx<'_>,
    org_id: &str,
    event_type: &str,
    now: Millis,
    event: &dyn Fn() -> Event,
) -> DomainResult<()> {
    let endpoints: Vec<(String, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, event_types FROM webhooks WHERE org_id = ?1 AND active = 1",
        )?;
        let rows = stmt.query_map(params![org_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut built: Option<(Event, String)> = None;
    for (id, types) in endpoints {
        let patterns: Vec<String> = serde_json::from_str(&types).unwrap_or_default();
        if events::matches(&patterns, event_type) {
            let (e, payload) = built.get_or_insert_with(|| {
                let e = event();
                let payload = e.to_json().map(|v| v.to_string()).unwrap_or_default();
                (e, payload)
            });
            enqueue(tx, org_id, &id, &e.id, event_type, payload, now)?;
        }
    }
    Ok(())
}

/// Deliveries not yet done, all organizations: (`pending` or `in_flight`, how many). For the
/// metrics, read at each scrape off the `(status, next_attempt_at)` index.
pub fn backlog(conn: &rusqlite::Connection) -> DomainResult<Vec<(String, i64)>> {
    super::count_by_status(
        conn,
        "SELECT status, COUNT(*) FROM webhook_deliveries
         WHERE status IN ('pending', 'in_flight') GROUP BY status",
    )
}
