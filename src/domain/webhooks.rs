//! Webhook endpoints and their delivery log (docs/api.md §9). Deliveries are queued by
//! `domain::outbox` in the same transaction as the event they carry; the worker in
//! `crate::webhook_worker` sends them.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::changes;
use crate::domain::nullable::Nullable;
use base64::Engine;
use poem_openapi::types::ToJSON;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::error::{DomainError, DomainResult, Issues};
use super::events::{self, Event};
use super::events::{EventType, EventTypePattern};
use super::listing::{Filters, ListPage, ListSource, Paging, Record, Sort};
use super::outbox;
use super::terms::Term;
use super::validate;
use crate::clock::{Millis, HOUR_MS};
use crate::ids::{self, new_id};
use crate::secrets;
use crate::shape::Shaped;
use crate::targets::{self, TargetPolicy};
use crate::timefmt::Timestamp;

/// The values of the deliveries' `status` filter.
pub const DELIVERY_STATUSES: &[&str] = &["pending", "in_flight", "succeeded", "failed"];

/// How long a rotated-out secret keeps signing beside the new one.
pub const PREVIOUS_SECRET_GRACE_MS: Millis = 24 * HOUR_MS;

/// A webhook endpoint (its secret is shown only on create and rotate).
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Webhook {
    /// `wh_...`
    pub id: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// What it is for.
    pub description: Nullable<String>,
    /// Event types it receives, with wildcards (`deal.*`, `*`).
    pub event_types: Vec<Term<EventTypePattern>>,
    /// False once disabled (by hand, by a 410 Gone, or after five days of failures).
    pub active: bool,
    /// Why it was disabled.
    pub disabled_reason: Nullable<String>,
    /// When deliveries started failing without a success since.
    pub failing_since: Nullable<Timestamp>,
    /// Bumped on every change.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A webhook with its signing secret, shown once.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[oai(flatten)]
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_...`: verify `webhook-signature` with it (Standard Webhooks). Store it now.
    pub secret: String,
}

/// An endpoint to add.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewWebhook {
    /// http(s) URL, up to 2,000 characters. A host that is an address in a private, loopback,
    /// link-local or other internal range (or `localhost`) is refused, naming the range, unless
    /// the operator allowed it with `--webhook-allow-cidr`.
    pub url: Shaped<Url>,
    /// Up to 500 characters.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub description: Option<String>,
    /// Defaults to every event (`["*"]`).
    #[oai(validator(min_items = 1, max_items = 100))]
    #[oai(nullable)]
    pub event_types: Option<Vec<Term<EventTypePattern>>>,
}

/// Changes to an endpoint.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New URL, held to the same rules as a new endpoint's.
    #[oai(nullable)]
    pub url: Option<Shaped<Url>>,
    /// New description.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub description: Option<String>,
    /// New event types.
    #[oai(validator(min_items = 1, max_items = 100))]
    #[oai(nullable)]
    pub event_types: Option<Vec<Term<EventTypePattern>>>,
    /// `true` re-enables a disabled endpoint (its failure clock restarts); `false` pauses it.
    #[oai(nullable)]
    pub active: Option<bool>,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Delivery {
    /// `dlv_...`
    pub id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// The event (also the `webhook-id` header, stable across retries).
    pub event_id: String,
    /// Its type.
    pub event_type: Term<EventType>,
    /// pending, in_flight, succeeded or failed (no more retries).
    pub status: Term<DeliveryStatus>,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Nullable<Timestamp>,
    /// The last HTTP status the endpoint answered.
    pub last_status_code: Nullable<i64>,
    /// The last failure, when it did not answer.
    pub last_error: Nullable<String>,
    /// How long the last attempt took.
    pub last_latency_ms: Nullable<i64>,
    /// The start of the last response body.
    pub response_excerpt: Nullable<String>,
    /// When it was queued.
    pub created_at: Timestamp,
}

const COLUMNS: &str = "id, url, description, event_types, active, disabled_reason, failing_since, version, created_at, updated_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "webhooks",
    id: "id",
    count_from: None,
};

fn from_row(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: r.get(0)?,
        url: r.get(1)?,
        description: r.get(2)?,
        event_types: serde_json::from_str::<Vec<String>>(&r.get::<_, String>(3)?)
            .unwrap_or_default()
            .into_iter()
            .map(Term::known)
            .collect(),
        active: r.get(4)?,
        disabled_reason: r.get(5)?,
        failing_since: Nullable(r.get::<_, Option<i64>>(6)?.map(Timestamp)),
        version: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
        updated_at: Timestamp(r.get(9)?),
    })
}

/// A new `whsec_` secret: 24 random bytes, base64 (Standard Webhooks).
fn new_secret() -> String {
    let mut key = [0u8; 24];
    secrets::fill_random(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

const RECORD: Record = Record::new("webhooks", COLUMNS, "wh", "webhook");

/// The endpoint `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Webhook> {
    RECORD.get(conn, org_id, id, from_row)
}

/// The organization's endpoints.
pub fn list(conn: &Connection, org_id: &str, paging: Paging) -> DomainResult<ListPage<Webhook>> {
    let sort = Sort {
        column: "created_at",
        descending: true,
        plain: false,
    };
    Filters::for_org("org_id", org_id).fetch_page(conn, &LIST, sort, paging, from_row)
}

/// An endpoint URL as the API accepts it (the document publishes this same pattern): http or
/// https, a host name, IPv4 or bracketed IPv6 address, an optional port, then any path, query
/// and fragment of URL characters. A host that is an address (in any spelling) must be one the
/// policy permits; a host name is checked on every address it resolves to, at delivery.
pub const URL_PATTERN: &str = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#][A-Za-z0-9._~!$&'()*+,;=:@/?#%-]*)?$";

crate::text_shape!(
    /// A webhook's target URL, up to 2,000 characters.
    Url,
    1,
    2000,
    Some(URL_PATTERN)
);

fn check_url(issues: &mut Issues, url: &str, policy: &TargetPolicy) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    if !validate::matches(&RE, URL_PATTERN, url) {
        issues.add("url", "must be an absolute http or https URL");
    } else if let Some((ip, why)) =
        targets::literal_address(url).and_then(|ip| policy.refusal(ip).map(|why| (ip, why)))
    {
        issues.add("url", format!("names the address {ip}, which {why}"));
    }
    url.to_string()
}

/// Adds an endpoint; returns it with its secret (shown this once).
pub fn create(
    tx: &Tx<'_>,
    org_id: &str,
    input: NewWebhook,
    policy: &TargetPolicy,
    now: Millis,
) -> DomainResult<WebhookWithSecret> {
    let mut issues = Issues::new();
    let url = check_url(&mut issues, &input.url, policy);
    let description = validate::optional_text(&mut issues, "description", input.description, 500);
    let types = input.event_types.unwrap_or_else(|| vec![Term::known("*")]);
    issues.finish()?;
    let id = new_id("wh");
    let secret = new_secret();
    tx.execute(
        "INSERT INTO webhooks (id, org_id, url, description, event_types, secret, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![id, org_id, url, description, serde_json::to_string(&types).unwrap_or_default(), secret, now],
    )?;
    Ok(WebhookWithSecret {
        webhook: get(tx, org_id, &id)?,
        secret,
    })
}

/// Changes an endpoint.
pub fn update(
    tx: &Tx<'_>,
    org_id: &str,
    id: &str,
    patch: WebhookPatch,
    expected_version: Option<i64>,
    policy: &TargetPolicy,
    now: Millis,
) -> DomainResult<Webhook> {
    let current = get(tx, org_id, id)?;
    validate::if_match(expected_version, current.version)?;
    let mut issues = Issues::new();
    let url = patch
        .url
        .map(|u| check_url(&mut issues, &u, policy))
        .unwrap_or(current.url);
    let description = match patch.description {
        Some(d) => validate::optional_text(&mut issues, "description", Some(d), 500),
        None => current.description.0,
    };
    let types = patch.event_types.unwrap_or(current.event_types);
    issues.finish()?;
    let active = patch.active.unwrap_or(current.active);
    // Disabling keeps the reason already given (a 410, five days of failures) or says it was
    // done by hand; enabling clears it, and a failure streak starts afresh.
    let disabled_reason = (!active).then(|| {
        current
            .disabled_reason
            .0
            .unwrap_or_else(|| "disabled by hand".into())
    });
    let failing_since = if active && !current.active {
        None
    } else {
        current.failing_since.0.map(|t| t.0)
    };
    changes::update(
        tx,
        "webhooks",
        org_id,
        id,
        &[
            ("url", &url),
            ("description", &description),
            (
                "event_types",
                &serde_json::to_string(&types).unwrap_or_default(),
            ),
            ("active", &active),
            ("disabled_reason", &disabled_reason),
            ("failing_since", &failing_since),
        ],
        now,
    )?;
    get(tx, org_id, id)
}

/// Deletes an endpoint and its delivery history.
pub fn delete(tx: &Tx<'_>, org_id: &str, id: &str) -> DomainResult<Webhook> {
    let w = get(tx, org_id, id)?;
    tx.execute(
        "DELETE FROM webhook_deliveries WHERE webhook_id = ?1",
        params![id],
    )?;
    tx.execute("DELETE FROM webhooks WHERE id = ?1", params![id])?;
    Ok(w)
}

/// Replaces the secret; the old one keeps signing (as a second signature) for 24 hours.
pub fn rotate_secret(
    tx: &Tx<'_>,
    org_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<WebhookWithSecret> {
    get(tx, org_id, id)?;
    let secret = new_secret();
    tx.execute(
        "UPDATE webhooks SET previous_secret = secret, previous_secret_until = ?3, secret = ?4,
                version = version + 1, updated_at = ?5
         WHERE org_id = ?1 AND id = ?2",
        params![org_id, id, now + PREVIOUS_SECRET_GRACE_MS, secret, now],
    )?;
    Ok(WebhookWithSecret {
        webhook: get(tx, org_id, id)?,
        secret,
    })
}

/// Queues a `webhook.test` ping to one endpoint (whatever its filters), for `POST .../test`.
pub fn send_test(tx: &Tx<'_>, org_id: &str, id: &str, now: Millis) -> DomainResult<Delivery> {
    let w = get(tx, org_id, id)?;
    let event_id = new_id("evt");
    let ping = Event {
        id: event_id.clone(),
        seq: 0,
        event_type: Term::known(events::TEST_TYPE),
        created_at: Timestamp(now),
        actor: events::Actor::system(),
        data: events::EventData {
            object: [("webhook_id", w.id), ("url", w.url)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                .collect(),
            previous: None,
        },
    };
    let payload = ping.to_json().unwrap_or_default().to_string();
    let dlv = outbox::enqueue(tx, org_id, id, &event_id, events::TEST_TYPE, &payload, now)?;
    get_delivery(tx, org_id, id, &dlv)
}

const DELIVERY_COLUMNS: &str =
    "id, webhook_id, event_id, event_type, status, attempts, next_attempt_at, \
    last_status_code, last_error, last_latency_ms, response_excerpt, created_at";
const DELIVERY_LIST: ListSource = ListSource {
    columns: DELIVERY_COLUMNS,
    from: "webhook_deliveries",
    id: "id",
    count_from: None,
};

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        webhook_id: r.get(1)?,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: Nullable(r.get::<_, Option<i64>>(6)?.map(Timestamp)),
        last_status_code: r.get(7)?,
        last_error: r.get(8)?,
        last_latency_ms: r.get(9)?,
        response_excerpt: r.get(10)?,
        created_at: Timestamp(r.get(11)?),
    })
}

/// One delivery of an endpoint.
pub fn get_delivery(
    conn: &Connection,
    org_id: &str,
    webhook_id: &str,
    id: &str,
) -> DomainResult<Delivery> {
    if !ids::is_valid(id, "dlv") {
        return Err(DomainError::NotFound("delivery"));
    }
    conn.cached_row(
        &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = ?1 AND webhook_id = ?2 AND id = ?3"),
        params![org_id, webhook_id, id],
        delivery_from_row,
    )
    .optional()?
    .ok_or(DomainError::NotFound("delivery"))
}

/// An endpoint's deliveries, newest first; `status` filters (any of).
pub fn deliveries(
    conn: &Connection,
    org_id: &str,
    webhook_id: &str,
    status: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Delivery>> {
    get(conn, org_id, webhook_id)?;
    let mut filters = Filters::for_org("org_id", org_id);
    filters.push("webhook_id = ?", vec![webhook_id.to_string().into()]);
    let statuses = super::listing::any_of(status);
    validate::one_of("status", &statuses, DELIVERY_STATUSES)?;
    filters.any_of("status", &statuses);
    let sort = Sort {
        column: "created_at",
        descending: true,
        plain: false,
    };
    filters.fetch_page(conn, &DELIVERY_LIST, sort, paging, delivery_from_row)
}

/// Sends a delivery again, now, as a new attempt sequence (same event id and body).
pub fn redeliver(
    tx: &Tx<'_>,
    org_id: &str,
    webhook_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<Delivery> {
    let d = get_delivery(tx, org_id, webhook_id, id)?;
    if d.status == "in_flight" {
        return Err(DomainError::conflict(
            "the delivery is being attempted right now",
        ));
    }
    tx.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?2, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    tx.queue_work();
    get_delivery(tx, org_id, webhook_id, id)
}

crate::domain::terms::vocabularies! {
    /// A webhook delivery's state.
    DeliveryStatus = "DeliveryStatus",
        "pending (waiting for its next attempt), in_flight, succeeded, or failed (no more retries).",
        DELIVERY_STATUSES.iter().copied();
}

/// An active endpoint's state for `clozup doctor`: its organization, URL, when it began failing
/// (if it is), and its last attempted delivery (status, HTTP code, error).
pub struct EndpointHealth {
    /// The organization.
    pub org_id: String,
    /// The endpoint's id.
    pub id: String,
    /// Where it delivers.
    pub url: String,
    /// Set while its deliveries fail (cleared by a success).
    pub failing_since: Option<Millis>,
    /// Why it was disabled, if it was (then it is not active).
    pub disabled_reason: Option<String>,
    /// Its last attempted delivery: status, HTTP code, error.
    pub last: Option<(String, Option<i64>, Option<String>)>,
}

/// Every endpoint, all organizations, with its last attempted delivery.
pub fn health(conn: &Connection) -> DomainResult<Vec<EndpointHealth>> {
    let mut stmt = conn.prepare(
        "SELECT w.org_id, w.id, w.url, w.failing_since, w.disabled_reason,
                d.status, d.last_status_code, d.last_error
         FROM webhooks w
         LEFT JOIN webhook_deliveries d ON d.id = (
             SELECT id FROM webhook_deliveries
             WHERE webhook_id = w.id AND attempts > 0
             ORDER BY created_at DESC LIMIT 1)
         ORDER BY w.org_id, w.created_at",
    )?;
    let rows = stmt.query_map([], |r| {
        let status: Option<String> = r.get(5)?;
        Ok(EndpointHealth {
            org_id: r.get(0)?,
            id: r.get(1)?,
            url: r.get(2)?,
            failing_since: r.get(3)?,
            disabled_reason: r.get(4)?,
            last: status
                .map(|s| Ok::<_, rusqlite::Error>((s, r.get(6)?, r.get(7)?)))
                .transpose()?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
