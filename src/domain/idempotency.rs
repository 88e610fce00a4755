//! Stored first responses for `Idempotency-Key` (docs/api.md §5).
//!
//! The first request with a key records an in-flight row before it runs and its response after;
//! a retry with the same key and body gets that response back byte for byte. The row is scoped
//! to (organization, credential, key), so two callers can never see each other's responses.

use crate::db::CachedRow;
use crate::db::Tx;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::DomainResult;
use crate::clock::{Millis, HOUR_MS};

/// How long a stored response is replayed.
pub const TTL_MS: Millis = 24 * HOUR_MS;

/// Identifies one stored request.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The caller's organization.
    pub org_id: String,
    /// The caller's key or session.
    pub credential_id: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
}

impl Slot {
    /// What a stored answer is bound to: it opens for this slot only.
    pub fn context(&self) -> Vec<u8> {
        format!("{}\n{}\n{}", self.org_id, self.credential_id, self.key).into_bytes()
    }
}

/// A response as it was first sent.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers worth replaying (content type, ETag, Location), as name/value pairs.
    pub headers: Vec<(String, String)>,
    /// The body, exactly; stored sealed to the caller's credential (`secrets::seal`).
    pub body: Vec<u8>,
}

/// What to do with a request that carries an `Idempotency-Key`.
#[derive(Debug)]
pub enum Begin {
    /// First time: run it (an in-flight row now holds the key).
    Proceed,
    /// Seen and finished: send this again.
    Replay(StoredResponse),
    /// The same key with a different request: 422.
    Mismatch,
    /// The first request is still running: 409.
    InFlight,
    /// The first request was cut off by a restart, so whether it took effect is unknown: 409.
    Interrupted,
}

/// Looks the key up and, when it is new, records it as in flight for `instance`.
pub fn begin(
    tx: &Tx<'_>,
    slot: &Slot,
    fingerprint: &[u8],
    instance: &str,
    now: Millis,
) -> DomainResult<Begin> {
    tx.execute(
        "DELETE FROM idempotency_keys
         WHERE org_id = ?1 AND credential_id = ?2 AND key = ?3 AND created_at <= ?4",
        params![slot.org_id, slot.credential_id, slot.key, now - TTL_MS],
    )?;
    let row = tx
        .cached_row(
            "SELECT fingerprint, instance, status, headers, body FROM idempotency_keys
             WHERE org_id = ?1 AND credential_id = ?2 AND key = ?3",
            params![slot.org_id, slot.credential_id, slot.key],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((stored_fingerprint, owner, status, headers, body)) = row else {
        tx.execute(
            "INSERT INTO idempotency_keys (org_id, credential_id, key, fingerprint, instance, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![slot.org_id, slot.credential_id, slot.key, fingerprint, instance, now],
        )?;
        return Ok(Begin::Proceed);
    };
    if stored_fingerprint != fingerprint {
        return Ok(Begin::Mismatch);
    }
    match status {
        Some(status) => Ok(Begin::Replay(StoredResponse {
            status: status as u16,
            headers: headers
                .and_then(|h| serde_json::from_str(&h).ok())
                .unwrap_or_default(),
            body: body.unwrap_or_default(),
        })),
        None if owner == instance => Ok(Begin::InFlight),
        None => Ok(Begin::Interrupted),
    }
}

/// Records the response of a request that ran.
pub fn finish(tx: &Tx<'_>, slot: &Slot, response: &StoredResponse) -> DomainResult<()> {
    let headers = serde_json::to_string(&response.headers).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "UPDATE idempotency_keys SET status = ?4, headers = ?5, body = ?6
         WHERE org_id = ?1 AND credential_id = ?2 AND key = ?3",
        params![
            slot.org_id,
            slot.credential_id,
            slot.key,
            i64::from(response.status),
            headers,
            response.body
        ],
    )?;
    Ok(())
}

/// Forgets a key whose request must be retryable (it failed before doing anything).
pub fn release(tx: &Tx<'_>, slot: &Slot) -> DomainResult<()> {
    tx.execute(
        "DELETE FROM idempotency_keys WHERE org_id = ?1 AND credential_id = ?2 AND key = ?3",
        params![slot.org_id, slot.credential_id, slot.key],
    )?;
    Ok(())
}

/// Deletes stored responses older than the replay window; returns how many.
pub fn purge_expired(conn: &Connection, now: Millis) -> DomainResult<usize> {
    Ok(conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at <= ?1",
        params![now - TTL_MS],
    )?)
}
