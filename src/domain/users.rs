//! The team: the people of an organization, their roles and passwords.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::changes;
use crate::domain::nullable::Nullable;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::{CredentialKind, Principal, Role, Scope};
use super::error::{DomainError, DomainResult, FieldIssue, Issues};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::validate;
use crate::clock::Millis;
use crate::domain::validate::{EmailAddress, Name};
use crate::ids::{self, new_id};
use crate::secrets;
use crate::shape::Shaped;
use crate::timefmt::Timestamp;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// A member of the team.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct User {
    /// `usr_...`
    pub id: String,
    /// Login and contact address, unique in the organization.
    pub email: String,
    /// Display name.
    pub name: String,
    /// owner, admin, member or viewer.
    pub role: Role,
    /// False once deactivated: the user can no longer sign in, their keys stop working, their
    /// records stay.
    pub active: bool,
    /// Whether a password is set (users without one can only use API keys).
    pub has_password: bool,
    /// When the user was deactivated.
    pub deactivated_at: Nullable<Timestamp>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When the user was added.
    pub created_at: Timestamp,
    /// When the user last changed.
    pub updated_at: Timestamp,
}

/// A new member of the team.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewUser {
    /// Unique in the organization (case-insensitive).
    pub email: Shaped<EmailAddress>,
    /// 1–200 characters.
    pub name: Shaped<Name>,
    /// Defaults to `member`. Only an owner may create another owner.
    #[oai(nullable)]
    pub role: Option<Role>,
    /// At least 12 characters; without one the user cannot log in until an admin issues them a
    /// password reset. Stored only as an argon2id hash. Set by a signed-in admin only: an API
    /// key may add users but never give them a password, since the key could then sign in as
    /// them.
    #[oai(write_only, validator(min_length = 12, max_length = 256))]
    #[oai(nullable)]
    pub password: Option<String>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct UserPatch {
    /// New address, unique in the organization. It is the user's login, so like the password
    /// only the user themself may change it, signed in, with `current_password`; it ends their
    /// other sessions.
    #[oai(nullable)]
    pub email: Option<Shaped<EmailAddress>>,
    /// 1–200 characters.
    #[oai(nullable)]
    pub name: Option<Shaped<Name>>,
    /// Admins only; granting or removing `owner` takes an owner.
    #[oai(nullable)]
    pub role: Option<Role>,
    /// At least 12 characters. Only the user themself may set it, signed in with a session
    /// (never an API key) and with `current_password`; it ends their other sessions.
    #[oai(write_only, validator(min_length = 12, max_length = 256))]
    #[oai(nullable)]
    pub password: Option<String>,
    /// The user's password as it is now: required with a new `password` or `email`, so that a
    /// stolen session cannot lock its user out.
    #[oai(write_only, validator(max_length = 256))]
    #[oai(nullable)]
    pub current_password: Option<String>,
    /// `true` reactivates a deactivated user (admins only).
    #[oai(nullable)]
    pub active: Option<bool>,
}

const COLUMNS: &str = "id, email, name, role, active, password_hash IS NOT NULL, deactivated_at, \
                       version, created_at, updated_at";

const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "users",
    id: "id",
    count_from: None,
};

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        active: r.get(4)?,
        has_password: r.get(5)?,
        deactivated_at: Nullable(r.get::<_, Option<i64>>(6)?.map(Timestamp)),
        version: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
        updated_at: Timestamp(r.get(9)?),
    })
}

const RECORD: Record = Record::new("users", COLUMNS, "usr", "user");

/// The user `id` of organization `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<User> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Filters for the team list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Any of these roles (`admin,owner`).
    pub role: Option<String>,
    /// Only active (true) or only deactivated (false) users.
    pub active: Option<bool>,
    /// Text in the name or email.
    pub q: Option<String>,
}

/// The values of the `role` filter.
pub const ROLES: &[&str] = &["owner", "admin", "member", "viewer"];

/// Sortable fields of the team list.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "created_at"),
    ("name", "name COLLATE NOCASE"),
    ("email", "email COLLATE NOCASE"),
];

/// One page of the organization's users.
pub fn list(
    conn: &Connection,
    org_id: &str,
    filter: &UserFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<User>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    let roles = any_of(filter.role.as_deref());
    validate::one_of("role", &roles, ROLES)?;
    filters.any_of("role", &roles);
    if let Some(active) = filter.active {
        filters.push("active = ?", vec![i64::from(active).into()]);
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = validate::like_pattern(q);
        filters.push(
            "(name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')",
            vec![pattern.clone().into(), pattern.into()],
        );
    }
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

fn email_taken(
    conn: &Connection,
    org_id: &str,
    email: &str,
    except: Option<&str>,
) -> DomainResult<()> {
    let existing: Option<String> = conn
        .cached_row(
            "SELECT id FROM users WHERE org_id = ?1 AND email = ?2 COLLATE NOCASE",
            params![org_id, email],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(id) if Some(id.as_str()) != except => Err(DomainError::Conflict {
            message: format!("a user with email {email} already exists"),
            details: vec![FieldIssue::new("email", format!("is already used by {id}"))],
        }),
        _ => Ok(()),
    }
}

fn check_password(issues: &mut Issues, password: &str) {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        issues.add(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        );
    } else if len > 256 {
        issues.add("password", "must be at most 256 characters");
    }
}

/// A password that passed the rules, hashed with argon2id.
#[derive(Debug, Clone)]
pub struct HashedPassword(String);

impl HashedPassword {
    /// The PHC string stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks and hashes a new password. Argon2 is deliberately slow, so callers run this on a
/// blocking thread *before* opening the write transaction, never inside it.
pub fn hash_password(password: &str) -> DomainResult<HashedPassword> {
    let mut issues = Issues::new();
    check_password(&mut issues, password);
    issues.finish()?;
    secrets::hash_password(password)
        .map(HashedPassword)
        .map_err(DomainError::Internal)
}

/// [`hash_password`] for an optional field.
pub fn hash_new_password(password: Option<&str>) -> DomainResult<Option<HashedPassword>> {
    password.map(hash_password).transpose()
}

/// Only an owner may hand out or take away the owner role.
fn check_role_change(actor: Option<&Principal>, from: Option<Role>, to: Role) -> DomainResult<()> {
    let touches_owner = to == Role::Owner || from == Some(Role::Owner);
    match actor {
        Some(p) if touches_owner && !p.is_owner() => Err(DomainError::Forbidden(
            "only an owner may grant or remove the owner role".into(),
        )),
        _ => Ok(()),
    }
}

/// Adds a user. `actor` is the caller (`None` when the server itself founds an organization).
pub fn create(
    tx: &Tx<'_>,
    org_id: &str,
    input: NewUser,
    password: Option<HashedPassword>,
    actor: Option<&Principal>,
    now: Millis,
) -> DomainResult<User> {
    let mut issues = Issues::new();
    let email = validate::email(&mut issues, "email", &input.email);
    let name = validate::name(&mut issues, "name", &input.name);
    issues.finish()?;
    let role = input.role.unwrap_or(Role::Member);
    check_role_change(actor, None, role)?;
    if password.is_some() && actor.is_some_and(|p| p.kind == CredentialKind::ApiKey) {
        return Err(DomainError::Forbidden(
            "an API key cannot give a user a password (it could then sign in as them); add the \
             user without one, and a signed-in admin issues them a password reset \
             (POST /users/{id}/password-reset)"
                .into(),
        ));
    }
    email_taken(tx, org_id, &email, None)?;
    let password_hash = password.map(|p| p.0);
    let id = new_id("usr");
    tx.execute(
        "INSERT INTO users (id, org_id, email, name, role, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![id, org_id, email, name, role.as_str(), password_hash, now],
    )?;
    get(tx, org_id, &id)
}

fn active_owners(conn: &Connection, org_id: &str) -> DomainResult<i64> {
    Ok(conn.cached_row(
        "SELECT COUNT(*) FROM users WHERE org_id = ?1 AND role = 'owner' AND active = 1",
        params![org_id],
        |r| r.get(0),
    )?)
}

/// What the caller proved about the target user's current password (`current_password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentPassword {
    /// None was sent.
    Missing,
    /// One was sent and it is not the user's password (or the caller may not change it, so it
    /// was not checked).
    Wrong,
    /// It matched this stored hash. The write checks the hash again, so a password changed in
    /// between does not count.
    Matches(String),
}

/// The stored password hash of a user, for checking `current_password` before a write.
pub fn password_hash(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Option<String>> {
    if !ids::is_valid(id, "usr") {
        return Ok(None);
    }
    Ok(conn
        .cached_row(
            "SELECT password_hash FROM users WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// Checks `typed` against `stored`. Runs argon2: call it on a blocking thread, holding no
/// connection.
pub fn prove_password(stored: Option<String>, typed: &str) -> CurrentPassword {
    match stored {
        Some(hash) if secrets::verify_password(typed, &hash) => CurrentPassword::Matches(hash),
        _ => CurrentPassword::Wrong,
    }
}

/// Whether `actor` is `user_id` in person: signed in as them with a session. An API key acts
/// for the organization with its scopes, never as the person who made it.
pub fn in_person(actor: &Principal, user_id: &str) -> bool {
    actor.kind == CredentialKind::Session && actor.user_id == user_id
}

/// Changes a user.
///
/// - Admins (the `admin` scope) may change anyone's name, role and activation; an owner only
///   an owner may change, and the organization keeps one active owner.
/// - A user signed in with a session may change their own name, and, with `current_password`,
///   their email and password (`password` is the new one, hashed by the caller for the user
///   themself only). Nobody else may: these are the user's credentials, and an API
///   key made by the user is not the user (issue 18: a `write` key could otherwise set its
///   creator's password and sign in as them).
#[allow(clippy::too_many_arguments)]
pub fn update(
    tx: &Tx<'_>,
    actor: &Principal,
    id: &str,
    patch: UserPatch,
    password: Option<HashedPassword>,
    current_password: CurrentPassword,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<User> {
    let org_id = &actor.org_id;
    let current = get(tx, org_id, id)?;
    let is_admin = actor.scopes.grants(Scope::Admin);
    let is_self = in_person(actor, &current.id);
    if !is_admin && (!is_self || patch.role.is_some() || patch.active.is_some()) {
        return Err(DomainError::Forbidden(
            "changing another user, a role or an activation takes the `admin` scope; a user \
             signed in with a session may change their own profile"
                .into(),
        ));
    }
    if current.role == Role::Owner && !actor.is_owner() {
        return Err(DomainError::Forbidden(
            "only an owner may change an owner".into(),
        ));
    }
    // Before the version and the values: whoever may not change credentials learns nothing
    // about them.
    let credentials_change =
        patch.password.is_some() || patch.email.as_ref().is_some_and(|e| **e != *current.email);
    if credentials_change {
        check_in_person(tx, actor, &current, current_password)?;
    }
    validate::if_match(expected_version, current.version)?;
    let mut issues = Issues::new();
    let email = match &patch.email {
        Some(e) => validate::email(&mut issues, "email", e),
        None => current.email.clone(),
    };
    let name = match &patch.name {
        Some(n) => validate::name(&mut issues, "name", n),
        None => current.name.clone(),
    };
    issues.finish()?;
    let role = patch.role.unwrap_or(current.role);
    if role != current.role {
        check_role_change(Some(actor), Some(current.role), role)?;
    }
    let active = patch.active.unwrap_or(current.active);
    if current.role == Role::Owner
        && current.active
        && (role != Role::Owner || !active)
        && active_owners(tx, org_id)? <= 1
    {
        return Err(DomainError::conflict(
            "the organization must keep at least one active owner",
        ));
    }
    email_taken(tx, org_id, &email, Some(id))?;
    let deactivated_at = if active {
        None
    } else {
        Some(current.deactivated_at.map_or(now, |t| t.0))
    };
    changes::update(
        tx,
        "users",
        org_id,
        id,
        &[
            ("email", &email),
            ("name", &name),
            ("role", &role.as_str()),
            ("active", &active),
            ("deactivated_at", &deactivated_at),
        ],
        now,
    )?;
    if let Some(hash) = password {
        set_password_hash(tx, id, Some(&hash.0), now)?;
    }
    if !active || credentials_change {
        // A deactivated user, or one whose credentials changed, keeps no other open session.
        end_sessions(tx, id, Some(&actor.credential_id), now)?;
    }
    get(tx, org_id, id)
}

/// Refuses a change of `user`'s email or password unless the caller is that user, signed in,
/// and proved the current password.
fn check_in_person(
    conn: &Connection,
    actor: &Principal,
    user: &User,
    proof: CurrentPassword,
) -> DomainResult<()> {
    if !in_person(actor, &user.id) {
        return Err(DomainError::Forbidden(
            "a user's email and password are changed only by that user, signed in with a \
             session (never with an API key); an admin can issue a password reset with \
             POST /users/{id}/password-reset"
                .into(),
        ));
    }
    let stored = password_hash(conn, &actor.org_id, &user.id)?;
    match proof {
        CurrentPassword::Matches(hash) if Some(&hash) == stored.as_ref() => Ok(()),
        CurrentPassword::Missing => Err(DomainError::invalid(
            "current_password",
            "is required to change the email or password",
        )),
        _ => Err(DomainError::Forbidden(
            "current_password is not this user's password".into(),
        )),
    }
}

/// Replaces (or, with `None`, clears) a user's password for someone other than the user
/// themself (a reset, the operator): every open reset and every session of theirs ends.
pub fn replace_password(
    tx: &Tx<'_>,
    user_id: &str,
    hash: Option<&HashedPassword>,
    now: Millis,
) -> DomainResult<()> {
    set_password_hash(tx, user_id, hash.map(HashedPassword::as_str), now)?;
    end_sessions(tx, user_id, None, now)
}

/// Replaces (or, with `None`, clears) a user's password hash and voids any password reset
/// still open for them. Bumps the user's version.
fn set_password_hash(
    tx: &Tx<'_>,
    user_id: &str,
    hash: Option<&str>,
    now: Millis,
) -> DomainResult<()> {
    tx.execute(
        "UPDATE users SET password_hash = ?2, version = version + 1, updated_at = ?3
         WHERE id = ?1",
        params![user_id, hash, now],
    )?;
    tx.execute(
        "UPDATE password_resets SET spent_at = ?2 WHERE user_id = ?1 AND spent_at IS NULL",
        params![user_id, now],
    )?;
    Ok(())
}

/// Ends every open session of the user but `except` (the caller's own).
fn end_sessions(tx: &Tx<'_>, user_id: &str, except: Option<&str>, now: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE sessions SET revoked_at = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?2",
        params![user_id, except, now],
    )?;
    Ok(())
}

/// Deactivates a user: they cannot sign in, their sessions end and the keys they created stop
/// working; everything they own in the CRM stays. Deactivating twice is harmless.
pub fn deactivate(
    tx: &Tx<'_>,
    actor: &Principal,
    id: &str,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<User> {
    let current = get(tx, &actor.org_id, id)?;
    if !current.active {
        validate::if_match(expected_version, current.version)?;
        return Ok(current);
    }
    update(
        tx,
        actor,
        id,
        UserPatch {
            active: Some(false),
            ..UserPatch::default()
        },
        None,
        CurrentPassword::Missing,
        expected_version,
        now,
    )
}

/// Active users with this email (any organization), with their password hashes, for login.
pub fn login_candidates(
    conn: &Connection,
    email: &str,
) -> DomainResult<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, org_id, password_hash FROM users
         WHERE email = ?1 COLLATE NOCASE AND active = 1 AND password_hash IS NOT NULL",
    )?;
    let rows = stmt
        .query_map(params![email.trim()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Sets the password of the user with `email` in `org_id` as the operator, from the command
/// line: whoever can open the database file. It ends the user's sessions and voids open resets.
/// This is how the owner of a new organization gets a password: the API never lets a key set
/// one.
pub fn set_password_by_operator(
    tx: &Tx<'_>,
    org_id: &str,
    email: &str,
    password: HashedPassword,
    now: Millis,
) -> DomainResult<User> {
    let id = by_email(tx, org_id, email)?
        .ok_or(DomainError::NotFound("user"))?
        .id;
    replace_password(tx, &id, Some(&password), now)?;
    get(tx, org_id, &id)
}

/// The member with this email (case aside), active or not.
pub fn by_email(conn: &Connection, org_id: &str, email: &str) -> DomainResult<Option<User>> {
    Ok(conn
        .cached_row(
            &format!("SELECT {COLUMNS} FROM users WHERE org_id = ?1 AND email = ?2 COLLATE NOCASE"),
            params![org_id, email.trim()],
            from_row,
        )
        .optional()?)
}

/// The organization's longest-standing active owner: who the operator's CLI acts as.
pub fn first_owner(conn: &Connection, org_id: &str) -> DomainResult<User> {
    conn.cached_row(
        &format!(
            "SELECT {COLUMNS} FROM users WHERE org_id = ?1 AND role = 'owner' AND active = 1
             ORDER BY created_at, id LIMIT 1"
        ),
        params![org_id],
        from_row,
    )
    .optional()?
    .ok_or(DomainError::NotFound("active owner"))
}
