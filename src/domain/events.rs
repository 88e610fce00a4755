//! The event log (docs/api.md §9): one row per change, appended inside the change's transaction, so
//! an event exists exactly when its change does. SSE streams and webhook deliveries read it by
//! `seq`.

use crate::db::CachedRow;
use poem_openapi::Object;
use rusqlite::{params, Connection, Row};
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::auth::Principal;
use super::error::{DomainError, DomainResult};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Sort};
use super::terms::Term;
use crate::clock::Millis;
use crate::timefmt::Timestamp;

/// Every event type the server emits.
pub const TYPES: &[&str] = &[
    "lead.created",
    "lead.updated",
    "lead.assigned",
    "lead.converted",
    "lead.deleted",
    "company.created",
    "company.updated",
    "company.deleted",
    "deal.created",
    "deal.updated",
    "deal.stage_changed",
    "deal.won",
    "deal.lost",
    "deal.deleted",
    "task.created",
    "task.updated",
    "task.completed",
    "task.deleted",
    "activity.created",
    "activity.deleted",
    "note.created",
    "note.updated",
    "note.deleted",
    "memory.created",
    "memory.deleted",
    "signal.detected",
    "email.queued",
    "email.sent",
    "email.failed",
    "email.received",
    "email.opened",
    "email_template.created",
    "email_template.updated",
    "email_template.deleted",
    "suppression.created",
    "suppression.deleted",
    "campaign.created",
    "campaign.updated",
    "campaign.activated",
    "campaign.paused",
    "campaign.completed",
    "campaign.archived",
    "campaign.deleted",
    "campaign_step.created",
    "campaign_step.updated",
    "campaign_step.deleted",
    "enrollment.created",
    "enrollment.advanced",
    "enrollment.paused",
    "enrollment.resumed",
    "enrollment.completed",
    "enrollment.stopped",
    "webhook.disabled",
    "user.password_reset",
];

/// The type of the ping `POST /webhooks/{id}/test` sends: never stored, never filtered on.
pub const TEST_TYPE: &str = "webhook.test";

/// The kinds of [`Actor`].
pub const ACTOR_TYPES: &[&str] = &["api_key", "user", "system"];

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct Actor {
    /// `api_key`, `user` or `system`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: Term<ActorType>,
    /// The key's or user's id (`system` for the server's own work).
    pub id: String,
}

impl Actor {
    /// The server itself (imports' follow-ups, scheduled rules).
    pub fn system() -> Self {
        Self {
            kind: Term::known("system"),
            id: "system".into(),
        }
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        let (kind, id) = p.actor();
        Self {
            kind: Term::known(kind),
            id: id.into(),
        }
    }
}

/// One event as the API shows it.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Event {
    /// `evt_...`, stable: webhooks send it as `webhook-id`.
    pub id: String,
    /// Position in the log; resume SSE with it.
    pub seq: i64,
    /// e.g. `deal.stage_changed`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub event_type: Term<EventType>,
    /// When the change was committed.
    pub created_at: Timestamp,
    /// Who made the change.
    pub actor: Actor,
    /// The object and what changed.
    pub data: EventData,
}

/// What an event carries.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct EventData {
    /// The object after the change (a deleted one as it was), as its own read returns it,
    /// without what is computed on read (a deal's risk).
    pub object: BTreeMap<String, Value>,
    /// The old values of the fields an update changed; absent from other events.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<BTreeMap<String, Value>>,
}

impl EventData {
    /// Reads the stored JSON (written by [`append`], so an object with `object`).
    pub(super) fn from_stored(text: &str) -> Self {
        let mut data: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
        let object = |v: Option<Value>| match v {
            Some(Value::Object(map)) => Some(map.into_iter().collect()),
            _ => None,
        };
        Self {
            object: object(data.remove("object")).unwrap_or_default(),
            previous: object(data.remove("previous")),
        }
    }
}

/// Every value a `types` filter may list: `*`, each type, and each family (`deal.*`).
pub fn type_patterns() -> Vec<String> {
    let mut out = vec!["*".to_string()];
    for t in TYPES {
        let family = format!("{}.*", t.split('.').next().unwrap_or(t));
        if !out.contains(&family) {
            out.push(family);
        }
        out.push(t.to_string());
    }
    out
}

/// Checks a `types` filter (`deal.updated,lead.*`, `*`): every pattern must name a known type
/// or a known family.
pub fn parse_type_patterns(types: Option<&str>) -> DomainResult<Vec<String>> {
    let patterns = any_of(types);
    for p in &patterns {
        let known = p == "*"
            || TYPES.contains(&p.as_str())
            || p.strip_suffix(".*")
                .is_some_and(|family| TYPES.iter().any(|t| t.starts_with(&format!("{family}."))));
        if !known {
            return Err(DomainError::invalid(
                "types",
                format!("must name event types or families such as deal.*; `{p}` is neither (see the events reference)"),
            ));
        }
    }
    Ok(patterns)
}

/// Whether `event_type` matches one of `patterns` (no patterns: everything).
pub fn matches(patterns: &[String], event_type: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| {
            p == "*"
                || p == event_type
                || p.strip_suffix('*')
                    .is_some_and(|prefix| event_type.starts_with(prefix))
        })
}

const COLUMNS: &str = "id, seq, type, created_at, actor_type, actor_id, data";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "events",
    id: "seq",
    count_from: None,
};

fn from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let data: String = r.get(6)?;
    Ok(Event {
        id: r.get(0)?,
        seq: r.get(1)?,
        event_type: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        actor: Actor {
            kind: r.get(4)?,
            id: r.get(5)?,
        },
        data: EventData::from_stored(&data),
    })
}

/// The organization's events after `after`, oldest first, matching `patterns`.
pub fn list(
    conn: &Connection,
    org_id: &str,
    after: i64,
    patterns: &[String],
    paging: Paging,
) -> DomainResult<ListPage<Event>> {
    let mut filters = Filters::for_org("org_id", org_id);
    filters.push("seq > ?", vec![after.into()]);
    if !patterns.is_empty() && !patterns.iter().any(|p| p == "*") {
        let mut alternatives = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        for p in patterns {
            match p.strip_suffix('*') {
                Some(prefix) => {
                    alternatives.push("substr(type, 1, ?) = ?");
                    values.push((prefix.len() as i64).into());
                    values.push(prefix.to_string().into());
                }
                None => {
                    alternatives.push("type = ?");
                    values.push(p.clone().into());
                }
            }
        }
        filters.push(format!("({})", alternatives.join(" OR ")), values);
    }
    let sort = Sort {
        column: "seq",
        descending: false,
        plain: false,
    };
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// The highest `seq` ever given out (0 before the first event), which pruning cannot lower.
pub fn last_seq(db: &crate::db::Db) -> DomainResult<i64> {
    db.blocking().read(|c| {
        Ok(c.cached_row(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            [],
            |r| r.get(0),
        )?)
    })
}

/// The last `seq` pruned from the log (0 when nothing was): events up to it are gone.
pub fn pruned_through(conn: &Connection) -> DomainResult<i64> {
    Ok(conn
        .prepare_cached("SELECT pruned_through FROM event_log_state WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

/// Events deleted per write transaction when pruning, so the writer is never held for long.
const PRUNE_BATCH: i64 = 5_000;

/// Prunes the log's oldest events: everything before the first event created at or after
/// `before` (a prefix by `seq`, so the pruned point is one number). Returns how many went.
pub fn prune(db: &crate::db::Db, before: Millis) -> DomainResult<usize> {
    let mut pruned = 0;
    loop {
        let deleted = db.blocking().write(|tx| {
            let cut: i64 = tx.cached_row(
                "SELECT coalesce(
                     (SELECT seq - 1 FROM events WHERE created_at >= ?1 ORDER BY seq LIMIT 1),
                     (SELECT max(seq) FROM events), 0)",
                params![before],
                |r| r.get(0),
            )?;
            let deleted = tx.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
                params![cut, PRUNE_BATCH],
            )?;
            if deleted > 0 {
                tx.execute(
                    "UPDATE event_log_state SET pruned_through = max(pruned_through,
                         coalesce((SELECT min(seq) - 1 FROM events WHERE seq <= ?1 + 1), ?1))
                     WHERE id = 1",
                    params![cut],
                )?;
            }
            Ok(deleted)
        })?;
        pruned += deleted;
        if deleted < PRUNE_BATCH as usize {
            return Ok(pruned);
        }
    }
}

/// One committed event and its organization.
#[derive(Debug, Clone)]
pub struct Published {
    /// The organization it belongs to.
    pub org_id: String,
    /// The event.
    pub event: Event,
}

/// Every organization's events after `after`, oldest first, at most one page (for the fan-out).
pub fn all_after(conn: &Connection, after: i64, paging: Paging) -> DomainResult<Vec<Published>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, org_id FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, paging.limit()], |r| {
        Ok(Published {
            event: from_row(r)?,
            org_id: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

crate::domain::terms::vocabularies! {
    /// An event type.
    EventType = "EventType",
        "What changed: `<resource>.<change>`; `webhook.test` only in a test delivery.",
        TYPES.iter().copied().chain([TEST_TYPE]);
    /// An event type, a family of them (`deal.*`) or all of them (`*`).
    EventTypePattern = "EventTypePattern",
        "An event type, every type of one resource (`deal.*`), or every type (`*`).",
        type_patterns();
    /// Who made a change.
    ActorType = "ActorType",
        "Who made a change: an API key, a user signed in, or the server itself.",
        ACTOR_TYPES.iter().copied();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = parse_type_patterns(Some("deal.*,lead.created")).unwrap();
        assert!(matches(&p, "deal.won"));
        assert!(matches(&p, "lead.created"));
        assert!(!matches(&p, "lead.updated"));
        assert!(matches(&[], "anything.at_all"));
        assert!(parse_type_patterns(Some("deal.exploded")).is_err());
        assert!(parse_type_patterns(Some("nope.*")).is_err());
        assert!(parse_type_patterns(Some("*")).is_ok());
    }
}
