//! API keys: `clz_` + 32 base62 characters, stored as SHA-256 with a display prefix.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::{Scope, Scopes, API_KEY_PREFIX};
use super::error::{DomainError, DomainResult, Issues};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::terms::Term;
use super::validate;
use crate::clock::{Millis, MINUTE_MS};
use crate::ids::new_id;
use crate::secrets;
use crate::timefmt::Timestamp;

/// Characters of the key shown in lists (`clz_` and the first 8 random ones).
const DISPLAY_PREFIX_LEN: usize = API_KEY_PREFIX.len() + 8;

/// An API key as lists show it: never the secret.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ApiKey {
    /// `key_...`
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// What the key may do (capped by its creator's role).
    pub scopes: Vec<Scope>,
    /// The user who created it; the key stops working if they are deactivated.
    pub created_by: String,
    /// After this the key no longer works.
    pub expires_at: Nullable<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Nullable<Timestamp>,
    /// Last use, to the minute.
    pub last_used_at: Nullable<Timestamp>,
    /// active, expired or revoked.
    pub status: Term<ApiKeyStatus>,
    /// Bumped on every change.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct CreatedApiKey {
    /// The key.
    #[oai(flatten)]
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The full secret (`clz_...`). Store it now: it is never shown again.
    pub key: String,
}

/// A key to create.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewApiKey {
    /// 1–100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// Defaults to `["read", "write"]`. A key never grants more than its creator's role.
    #[oai(validator(min_items = 1, max_items = 3))]
    #[oai(nullable)]
    pub scopes: Option<Vec<Scope>>,
    /// Seconds from now until the key stops working (a minute to ten years); absent: never
    /// expires. A duration, not an instant, so an expiry is never already past.
    #[oai(validator(minimum(value = "60"), maximum(value = "315360000")))]
    #[oai(nullable)]
    pub expires_in_seconds: Option<i64>,
}

const COLUMNS: &str =
    "id, name, prefix, scopes, created_by, expires_at, revoked_at, last_used_at, version, created_at";

const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "api_keys",
    id: "id",
    count_from: None,
};

/// The status a key has at `now`.
fn status(revoked: Option<i64>, expires: Option<i64>, now: Millis) -> &'static str {
    if revoked.is_some() {
        "revoked"
    } else if expires.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

fn row_mapper(now: Millis) -> impl Fn(&Row<'_>) -> rusqlite::Result<ApiKey> {
    move |r| {
        let expires: Option<i64> = r.get(5)?;
        let revoked: Option<i64> = r.get(6)?;
        Ok(ApiKey {
            id: r.get(0)?,
            name: r.get(1)?,
            prefix: r.get(2)?,
            scopes: Scopes::from_db(&r.get::<_, String>(3)?).to_vec(),
            created_by: r.get(4)?,
            expires_at: Nullable(expires.map(Timestamp)),
            revoked_at: Nullable(revoked.map(Timestamp)),
            last_used_at: Nullable(r.get::<_, Option<i64>>(7)?.map(Timestamp)),
            status: Term::known(status(revoked, expires, now)),
            version: r.get(8)?,
            created_at: Timestamp(r.get(9)?),
        })
    }
}

const RECORD: Record = Record::new("api_keys", COLUMNS, "key", "API key");

/// The key `id` of organization `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str, now: Millis) -> DomainResult<ApiKey> {
    RECORD.get(conn, org_id, id, row_mapper(now))
}

/// The values of the `status` filter.
pub const STATUSES: &[&str] = &["active", "expired", "revoked"];

/// Sortable fields of the key list.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "created_at"),
    ("name", "name COLLATE NOCASE"),
    ("last_used_at", "last_used_at"),
];

/// One page of the organization's keys; `status` filters by any of active, expired, revoked.
pub fn list(
    conn: &Connection,
    org_id: &str,
    status_filter: Option<&str>,
    sort: Option<&str>,
    paging: Paging,
    now: Millis,
) -> DomainResult<ListPage<ApiKey>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    let wanted = any_of(status_filter);
    let mut alternatives = Vec::new();
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    for s in &wanted {
        match s.as_str() {
            "active" => {
                alternatives
                    .push("(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?))");
                params.push(now.into());
            }
            "expired" => {
                alternatives.push("(revoked_at IS NULL AND expires_at <= ?)");
                params.push(now.into());
            }
            "revoked" => alternatives.push("(revoked_at IS NOT NULL)"),
            other => {
                return Err(DomainError::invalid(
                    "status",
                    format!("must be one of {}; `{other}` is not", STATUSES.join(", ")),
                ))
            }
        }
    }
    if !alternatives.is_empty() {
        filters.push(format!("({})", alternatives.join(" OR ")), params);
    }
    filters.fetch_page(conn, &LIST, sort, paging, row_mapper(now))
}

/// Creates a key for `org_id` made by user `created_by`; `creator_scopes` caps what it may get.
///
/// `not_after` is when the creating credential itself expires, when it is an API key: a key
/// never outlives the key that made it (without `expires_in_seconds` it expires with it), so
/// a short-lived key cannot mint itself a permanent one.
pub fn create(
    tx: &Tx<'_>,
    org_id: &str,
    created_by: &str,
    creator_scopes: Scopes,
    not_after: Option<Millis>,
    input: NewApiKey,
    now: Millis,
) -> DomainResult<CreatedApiKey> {
    let mut issues = Issues::new();
    let name = validate::text(&mut issues, "name", &input.name, 1, 100);
    let scopes = input
        .scopes
        .unwrap_or_else(|| vec![Scope::Read, Scope::Write]);
    if scopes.is_empty() {
        issues.add("scopes", "must name at least one of read, write, admin");
    }
    if let Some(s) = scopes.iter().find(|s| !creator_scopes.grants(**s)) {
        issues.add(
            "scopes",
            format!(
                "may not include `{}`: it is more than the creator may grant",
                s.as_str()
            ),
        );
    }
    let expires_at = match (input.expires_in_seconds.map(|s| now + s * 1000), not_after) {
        (Some(wanted), Some(limit)) if wanted > limit => {
            issues.add(
                "expires_in_seconds",
                format!(
                    "must be at most {}: a key cannot outlive the key that creates it",
                    (limit - now) / 1000
                ),
            );
            None
        }
        (wanted, limit) => wanted.or(limit),
    };
    issues.finish()?;
    let secret = secrets::new_token(API_KEY_PREFIX);
    let id = new_id("key");
    tx.execute(
        "INSERT INTO api_keys (id, org_id, created_by, name, prefix, hash, scopes, expires_at,
                               created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            org_id,
            created_by,
            name,
            &secret[..DISPLAY_PREFIX_LEN],
            secrets::token_hash(&secret),
            Scopes::of(&scopes).to_db(),
            expires_at,
            now
        ],
    )?;
    Ok(CreatedApiKey {
        api_key: get(tx, org_id, &id, now)?,
        key: secret,
    })
}

/// Creates a key on behalf of the organization's first active owner: what the operator's CLI
/// and first-run setup do, since they act outside any request.
pub fn create_as_owner(
    tx: &Tx<'_>,
    org_id: &str,
    input: NewApiKey,
    now: Millis,
) -> DomainResult<CreatedApiKey> {
    let owner = super::users::first_owner(tx, org_id)?;
    create(tx, org_id, &owner.id, owner.role.scopes(), None, input, now)
}

/// Revokes a key of `org_id` at once; revoking a revoked key changes nothing.
pub fn revoke(tx: &Tx<'_>, org_id: &str, id: &str, now: Millis) -> DomainResult<ApiKey> {
    let key = get(tx, org_id, id, now)?;
    if key.revoked_at.is_none() {
        tx.execute(
            "UPDATE api_keys SET revoked_at = ?3, version = version + 1, updated_at = ?3
             WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, now],
        )?;
    }
    get(tx, org_id, id, now)
}

/// The organization a key belongs to (for the operator's CLI, which works across them).
pub fn org_of(conn: &Connection, id: &str) -> DomainResult<String> {
    conn.cached_row(
        "SELECT org_id FROM api_keys WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(DomainError::NotFound("API key"))
}

/// Whether a key last marked used at `last_used_at` should be marked again at `now`:
/// `last_used_at` is written at most once a minute, so busy keys cost no extra writes.
pub fn needs_touch(last_used_at: Option<Millis>, now: Millis) -> bool {
    last_used_at.is_none_or(|t| now - t >= MINUTE_MS)
}

/// Marks the key used at `now` (unless another request already did within the minute).
pub fn touch(tx: &Tx<'_>, id: &str, now: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE api_keys SET last_used_at = ?2
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
        params![id, now, MINUTE_MS],
    )?;
    Ok(())
}

crate::domain::terms::vocabularies! {
    /// An API key's state.
    ApiKeyStatus = "ApiKeyStatus",
        "active, expired or revoked.",
        STATUSES.iter().copied();
}
