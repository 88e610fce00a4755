//! User sessions: `POST /auth/login` trades an email and password for a `clzs_` token.

use crate::db::Tx;
use rusqlite::params;

use super::auth::SESSION_PREFIX;
use super::error::{DomainError, DomainResult};
use crate::clock::Millis;
use crate::ids::new_id;
use crate::secrets;

/// A hash of a random password nobody knows, verified when no account matches so that a wrong
/// email takes as long as a wrong password and logins do not reveal who has an account.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| secrets::hash_password(&secrets::new_token("decoy_")).unwrap_or_default())
}

/// The user a correct email and password belong to: `(user_id, org_id)`, among the accounts
/// [`super::users::login_candidates`] found for the email.
///
/// When the same email has accounts in several organizations, `org_id` picks one; without it the
/// first account whose password matches wins. Runs argon2, so call it on a blocking thread and
/// without holding a database connection.
pub fn verify_login(
    candidates: Vec<(String, String, String)>,
    password: &str,
    org_id: Option<&str>,
) -> DomainResult<(String, String)> {
    let mut found = None;
    for (user_id, user_org, phc) in candidates
        .into_iter()
        .filter(|(_, o, _)| org_id.is_none_or(|want| want == o))
    {
        if secrets::verify_password(password, &phc) {
            found = Some((user_id, user_org));
            break;
        }
    }
    match found {
        Some(found) => Ok(found),
        None => {
            secrets::verify_password(password, decoy_hash());
            Err(DomainError::Unauthorized)
        }
    }
}

/// Opens a session for the user; returns the token (shown once) and when it expires.
pub fn open(
    tx: &Tx<'_>,
    user_id: &str,
    org_id: &str,
    ttl_ms: Millis,
    now: Millis,
) -> DomainResult<(String, Millis)> {
    let token = secrets::new_token(SESSION_PREFIX);
    let expires_at = now + ttl_ms;
    tx.execute(
        "INSERT INTO sessions (id, org_id, user_id, hash, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            new_id("ses"),
            org_id,
            user_id,
            secrets::token_hash(&token),
            expires_at,
            now
        ],
    )?;
    Ok((token, expires_at))
}

/// Ends the session `id`.
pub fn close(tx: &Tx<'_>, id: &str, now: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(())
}
