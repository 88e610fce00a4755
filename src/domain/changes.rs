//! The one path every change takes (docs/api.md §9): inside the change's own transaction it
//! appends the event to the log and queues a delivery to each webhook that wants it, so an
//! event and its deliveries exist exactly when the change does. Resources call [`append`] with
//! the object as it now is; an update writes through [`update`], which compares before it
//! writes, and records itself with [`record_update`] (the fields it changed as `previous`).

use poem_openapi::types::ToJSON;
use rusqlite::{params, ToSql};
use serde_json::{json, Map, Value};

use super::error::DomainResult;
use super::events::{Actor, Event, EventData, TYPES};
use super::terms::Term;
use crate::clock::Millis;
use crate::db::Tx;
use crate::ids::new_id;
use crate::timefmt::Timestamp;

/// Writes one event in the caller's transaction; returns its `seq`.
///
/// `previous` holds the old values of the fields that changed (updates only).
pub fn append(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    event_type: &str,
    object: &impl ToJSON,
    previous: Option<Value>,
    now: Millis,
) -> DomainResult<i64> {
    debug_assert!(
        TYPES.contains(&event_type),
        "unknown event type {event_type}"
    );
    let mut data = Map::new();
    data.insert("object".into(), object.to_json().unwrap_or(Value::Null));
    if let Some(previous) = previous {
        data.insert("previous".into(), previous);
    }
    let data = Value::Object(data).to_string();
    let id = new_id("evt");
    tx.prepare_cached(
        "INSERT INTO events (id, org_id, type, actor_type, actor_id, data, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id, org_id, event_type, actor.kind, actor.id, data, now
    ])?;
    let seq = tx.last_insert_rowid();
    super::outbox::enqueue_event(tx, org_id, event_type, now, &|| Event {
        id: id.clone(),
        seq,
        event_type: Term::known(event_type),
        created_at: Timestamp(now),
        actor: actor.clone(),
        data: EventData::from_stored(&data),
    })?;
    Ok(seq)
}

/// Deletes row `id` of the organization's `table` and records `event_type` with the object as
/// it was: the last step of a delete, once whatever refers to the row has been dealt with.
#[allow(clippy::too_many_arguments)]
pub fn remove(
    tx: &Tx<'_>,
    table: &str,
    org_id: &str,
    id: &str,
    actor: &Actor,
    event_type: &str,
    object: &impl ToJSON,
    now: Millis,
) -> DomainResult<()> {
    tx.prepare_cached(&format!(
        "DELETE FROM {table} WHERE org_id = ?1 AND id = ?2"
    ))?
    .execute(params![org_id, id])?;
    append(tx, org_id, actor, event_type, object, None, now)?;
    Ok(())
}

/// The old values of every field that differs between two JSON renderings of an object,
/// leaving out the bookkeeping (`version`, `updated_at`).
fn previous_values(before: &impl ToJSON, after: &impl ToJSON) -> Value {
    let (Some(Value::Object(b)), Some(Value::Object(a))) = (before.to_json(), after.to_json())
    else {
        return json!({});
    };
    let changed: Map<String, Value> = b
        .into_iter()
        .filter(|(k, v)| k != "version" && k != "updated_at" && a.get(k) != Some(v))
        .collect();
    Value::Object(changed)
}

/// One column's new value, for [`update`].
pub type Set<'a> = (&'static str, &'a dyn ToSql);

/// Stores new values in row `id` of the organization's `table` as the row's next version
/// (`version + 1`, `updated_at = now`), but only if one of them differs from what is stored:
/// the comparison is the statement's own condition, so an update that changes nothing writes
/// nothing and `false` comes back. A PATCH that changes nothing is not a new version and
/// records no event, so agents can repeat one safely.
pub fn update(
    tx: &Tx<'_>,
    table: &str,
    org_id: &str,
    id: &str,
    sets: &[Set<'_>],
    now: Millis,
) -> DomainResult<bool> {
    let mut assign = String::new();
    let mut differs = Vec::with_capacity(sets.len());
    for (i, (column, _)) in sets.iter().enumerate() {
        let n = i + 3;
        assign.push_str(&format!("{column} = ?{n}, "));
        differs.push(format!("{column} IS NOT ?{n}"));
    }
    let sql = format!(
        "UPDATE {table} SET {assign}version = version + 1, updated_at = ?{}
         WHERE org_id = ?1 AND id = ?2 AND ({})",
        sets.len() + 3,
        differs.join(" OR ")
    );
    let mut values: Vec<&dyn ToSql> = vec![&org_id, &id];
    values.extend(sets.iter().map(|(_, v)| *v));
    values.push(&now);
    Ok(tx.prepare_cached(&sql)?.execute(values.as_slice())? > 0)
}

/// Records an update that wrote (see [`update`]): appends `event_type` with the object as it
/// now is and the old values of the fields that changed, and returns those values (for the
/// further events some updates record, such as `task.completed`).
pub fn record_update(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    event_type: &str,
    before: &impl ToJSON,
    after: &impl ToJSON,
    now: Millis,
) -> DomainResult<Value> {
    let previous = previous_values(before, after);
    append(
        tx,
        org_id,
        actor,
        event_type,
        after,
        Some(previous.clone()),
        now,
    )?;
    Ok(previous)
}
