//! Password resets: the one way a password is set for someone else.
//!
//! An admin signed in with a session (a person, never an API key) issues a reset for a member
//! who forgot their password or never had one. Issuing it clears the member's password, ends
//! their sessions and records a `user.password_reset` event naming who did it; the one-time
//! token it returns (shown once, only its SHA-256 kept) is handed to the member, who trades it
//! for a new password and a session at `POST /auth/password-reset`.

use poem_openapi::Object;
use rusqlite::{params, OptionalExtension};

use super::auth::{Principal, Role, Scope, RESET_PREFIX};
use super::error::{DomainError, DomainResult};
use super::events::Actor;
use super::users::{self, HashedPassword, User};
use super::{sessions, validate};
use crate::clock::Millis;
use crate::db::Tx;
use crate::domain::changes;
use crate::ids::new_id;
use crate::secrets;
use crate::timefmt::Timestamp;

/// How long a reset token works: a day, time enough to hand it over, short enough that a
/// forgotten one is not a standing way in.
pub const TTL_MS: Millis = 24 * 3_600_000;

/// A reset just issued.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct IssuedReset {
    /// The `clzr_` token, shown once: give it to the user, who sends it with a new password
    /// to `POST /auth/password-reset`. It works once, until `expires_at`.
    pub token: String,
    /// When the token stops working.
    pub expires_at: Timestamp,
    /// The user, now without a password (`has_password: false`) and with no open session.
    pub user: User,
}

/// Issues a reset for user `id`: see the module's text. Refused for API keys, for the caller
/// themself (who changes their password with the current one), and for an owner unless the
/// caller is an owner.
pub fn issue(
    tx: &Tx<'_>,
    actor: &Principal,
    id: &str,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<IssuedReset> {
    actor.require(Scope::Admin)?;
    // Another organization's id is a 404 for every caller, as everywhere.
    let user = users::get(tx, &actor.org_id, id)?;
    if actor.kind != super::auth::CredentialKind::Session {
        return Err(DomainError::Forbidden(
            "a password reset is issued by a person: sign in as an admin (POST /auth/login); \
             API keys never handle passwords"
                .into(),
        ));
    }
    if user.id == actor.user_id {
        return Err(DomainError::Forbidden(
            "change your own password with PATCH /users/{id} and your current_password".into(),
        ));
    }
    if user.role == Role::Owner && !actor.is_owner() {
        return Err(DomainError::Forbidden(
            "only an owner may reset an owner's password".into(),
        ));
    }
    if !user.active {
        return Err(DomainError::conflict(
            "the user is deactivated; reactivate them first (PATCH {\"active\": true})",
        ));
    }
    validate::if_match(expected_version, user.version)?;
    // Clearing the hash also voids any earlier reset still open.
    users::replace_password(tx, id, None, now)?;
    let token = secrets::new_token(RESET_PREFIX);
    let expires_at = now + TTL_MS;
    tx.execute(
        "INSERT INTO password_resets (id, org_id, user_id, created_by, hash, expires_at,
                                      created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new_id("pwr"),
            actor.org_id,
            id,
            actor.user_id,
            secrets::token_hash(&token),
            expires_at,
            now
        ],
    )?;
    let user = users::get(tx, &actor.org_id, id)?;
    changes::append(
        tx,
        &actor.org_id,
        &Actor::from(actor),
        "user.password_reset",
        &user,
        None,
        now,
    )?;
    tracing::warn!(
        target: "clozup::security",
        org_id = %actor.org_id,
        user_id = %id,
        by = %actor.user_id,
        "password reset issued; the user's password is cleared and their sessions ended"
    );
    Ok(IssuedReset {
        token,
        expires_at: Timestamp(expires_at),
        user,
    })
}

/// Trades a live reset token for a new password and a session (`(token, expires_at, user)`).
/// A token that is malformed, unknown, used, voided or expired, or whose user was deactivated,
/// is the one `unauthorized` of every bad credential.
pub fn redeem(
    tx: &Tx<'_>,
    token: &str,
    password: HashedPassword,
    session_ttl: Millis,
    now: Millis,
) -> DomainResult<(String, Millis, User)> {
    if !secrets::is_token_shaped(token, RESET_PREFIX) {
        return Err(DomainError::Unauthorized);
    }
    let found: Option<(String, String)> = tx
        .query_row(
            "SELECT r.user_id, r.org_id FROM password_resets r JOIN users u ON u.id = r.user_id
             WHERE r.hash = ?1 AND r.spent_at IS NULL AND r.expires_at > ?2 AND u.active",
            params![secrets::token_hash(token), now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((user_id, org_id)) = found else {
        return Err(DomainError::Unauthorized);
    };
    users::replace_password(tx, &user_id, Some(&password), now)?;
    let (session, expires) = sessions::open(tx, &user_id, &org_id, session_ttl, now)?;
    Ok((session, expires, users::get(tx, &org_id, &user_id)?))
}
