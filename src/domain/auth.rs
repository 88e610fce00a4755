//! Who is calling: credentials, scopes and roles (docs/api.md §2).

use crate::db::CachedRow;
use poem_openapi::Enum;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::{DomainError, DomainResult};
use crate::clock::Millis;
use crate::secrets;

/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "clz_";
/// Prefix of user session tokens.
pub const SESSION_PREFIX: &str = "clzs_";
/// Prefix of one-time password reset tokens (never a bearer credential).
pub const RESET_PREFIX: &str = "clzr_";

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every GET outside the admin resources.
    Read,
    /// Create, update and delete CRM data; send email.
    Write,
    /// API keys, webhooks, users, the organization, backups. Implies `read` and `write`.
    Admin,
}

/// The least scope a request of `method` on `path` needs of a `kind` of credential: that of
/// [`minimum_scope`], but for the one operation a credential with less may call only as a user
/// signed in (editing one's own profile: an API key is not its creator, see
/// [`crate::domain::users::update`]), which takes a key `admin`.
pub fn minimum_scope_of(kind: CredentialKind, method: &str, path: &str) -> Option<Scope> {
    match minimum_scope(method, path) {
        Some(Scope::Read) if kind == CredentialKind::ApiKey && method == "PATCH" => {
            Some(Scope::Admin)
        }
        least => least,
    }
}

/// The least scope any request of `method` on `path` (relative to `/api/v1`) needs, by the
/// rules of docs/api.md §2, or `None` where any credential will do (logging out). The gate checks
/// it before reading the body, so a key without the scope gets 403 whatever it sent; each
/// handler then checks its own, which may be stricter (a user may edit only themself without
/// `admin`) but never looser.
pub fn minimum_scope(method: &str, path: &str) -> Option<Scope> {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let reading = matches!(method, "GET" | "HEAD" | "OPTIONS");
    if under("/auth") {
        None
    } else if under("/api-keys") || under("/webhooks") || under("/admin") {
        Some(Scope::Admin)
    } else if reading {
        Some(Scope::Read)
    } else if under("/users") {
        // PATCH /users/{id} is also a user editing their own profile.
        Some(if method == "PATCH" {
            Scope::Read
        } else {
            Scope::Admin
        })
    } else if under("/org") || under("/performance/quotas") {
        Some(Scope::Admin)
    } else {
        Some(Scope::Write)
    }
}

impl Scope {
    /// The scope's name as written in keys and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A set of scopes, as stored (`read,write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    fn bit(scope: Scope) -> u8 {
        match scope {
            Scope::Read => 1,
            Scope::Write => 2,
            Scope::Admin => 4,
        }
    }

    /// The set holding exactly `scopes`.
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |acc, s| acc | Self::bit(*s)))
    }

    /// Whether the set grants `scope`; `admin` grants everything.
    pub fn grants(self, scope: Scope) -> bool {
        self.0 & Self::bit(Scope::Admin) != 0 || self.0 & Self::bit(scope) != 0
    }

    /// The scopes both sets grant.
    pub fn intersect(self, other: Self) -> Self {
        let expand = |s: Self| {
            if s.grants(Scope::Admin) {
                7
            } else {
                s.0
            }
        };
        let both = expand(self) & expand(other);
        // Keep `admin` alone when both grant it, so the stored form stays canonical.
        if both == 7 {
            Self(4)
        } else {
            Self(both)
        }
    }

    /// The scopes as a sorted list.
    pub fn to_vec(self) -> Vec<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .filter(|s| self.0 & Self::bit(*s) != 0)
            .collect()
    }

    /// The stored form, e.g. `read,write`.
    pub fn to_db(self) -> String {
        self.to_vec()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the stored form; unknown words are ignored.
    pub fn from_db(s: &str) -> Self {
        Self::of(&s.split(',').filter_map(Scope::parse).collect::<Vec<_>>())
    }
}

/// A person's role in the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Reads and writes CRM data.
    Member,
    /// Also manages users, keys, webhooks and the organization.
    Admin,
    /// An admin who may also grant and remove the owner role. Every organization keeps one.
    Owner,
}

impl Role {
    /// The role's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "member" => Some(Self::Member),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    /// The scopes a person with this role acts with.
    pub fn scopes(self) -> Scopes {
        match self {
            Self::Viewer => Scopes::of(&[Scope::Read]),
            Self::Member => Scopes::of(&[Scope::Read, Scope::Write]),
            Self::Admin | Self::Owner => Scopes::of(&[Scope::Admin]),
        }
    }
}

/// The kind of credential a request came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A `clz_` API key.
    ApiKey,
    /// A `clzs_` session from `POST /auth/login`.
    Session,
}

/// An authenticated caller: whose organization, which credential, what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's organization; every query is confined to it.
    pub org_id: String,
    /// The user behind the credential (for a key, the user who created it).
    pub user_id: String,
    /// That user's role.
    pub role: Role,
    /// The key's or session's id: what rate limits and idempotency keys are counted against.
    pub credential_id: String,
    /// Key or session.
    pub kind: CredentialKind,
    /// What this credential may do: a key's scopes capped by its creator's role.
    pub scopes: Scopes,
    /// When the key was last marked used (keys only), to write that at most once a minute.
    pub last_used_at: Option<Millis>,
    /// When the credential stops working by itself (never, for a key made without a lifetime).
    pub expires_at: Option<Millis>,
}

impl Principal {
    /// A member acting through the command line (`clozup import`): who runs the binary on the
    /// database file acts as that member, with the member's role; events name the member.
    pub fn operator(org_id: &str, user_id: &str, role: Role) -> Self {
        Self {
            org_id: org_id.to_string(),
            user_id: user_id.to_string(),
            role,
            credential_id: "cli".into(),
            kind: CredentialKind::Session,
            scopes: role.scopes(),
            last_used_at: None,
            expires_at: None,
        }
    }

    /// `Ok` when the credential grants `scope`, else a 403 naming it.
    pub fn require(&self, scope: Scope) -> DomainResult<()> {
        if self.scopes.grants(scope) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "this credential lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }

    /// Whether the caller acts with the owner's authority (an owner's session or key).
    pub fn is_owner(&self) -> bool {
        self.role == Role::Owner && self.scopes.grants(Scope::Admin)
    }

    /// The actor written into events: `{"type": "api_key"|"user", "id": ...}`.
    pub fn actor(&self) -> (&'static str, &str) {
        match self.kind {
            CredentialKind::ApiKey => ("api_key", &self.credential_id),
            CredentialKind::Session => ("user", &self.user_id),
        }
    }
}

/// Resolves a bearer token to its principal, or `None` for anything that is not a live
/// credential (unknown, malformed, expired, revoked, or its user deactivated).
pub fn authenticate(
    conn: &Connection,
    token: &str,
    now: Millis,
) -> DomainResult<Option<Principal>> {
    if secrets::is_token_shaped(token, API_KEY_PREFIX) {
        let row = conn
            .cached_row(
                "SELECT k.id, k.org_id, k.scopes, k.expires_at, k.revoked_at, k.last_used_at,
                        u.id, u.role, u.active
                 FROM api_keys k JOIN users u ON u.id = k.created_by
                 WHERE k.hash = ?1",
                params![secrets::token_hash(token)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, bool>(8)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, org_id, scopes, expires, revoked, last_used, user_id, role, active)) = row
        else {
            return Ok(None);
        };
        let Some(role) = Role::parse(&role) else {
            return Ok(None);
        };
        if revoked.is_some() || expires.is_some_and(|e| e <= now) || !active {
            return Ok(None);
        }
        return Ok(Some(Principal {
            org_id,
            user_id,
            role,
            credential_id: id,
            kind: CredentialKind::ApiKey,
            scopes: Scopes::from_db(&scopes).intersect(role.scopes()),
            last_used_at: last_used,
            expires_at: expires,
        }));
    }
    if secrets::is_token_shaped(token, SESSION_PREFIX) {
        let row = conn
            .cached_row(
                "SELECT s.id, s.org_id, s.expires_at, s.revoked_at, u.id, u.role, u.active
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.hash = ?1",
                params![secrets::token_hash(token)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, bool>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, org_id, expires, revoked, user_id, role, active)) = row else {
            return Ok(None);
        };
        let Some(role) = Role::parse(&role) else {
            return Ok(None);
        };
        if revoked.is_some() || expires <= now || !active {
            return Ok(None);
        }
        return Ok(Some(Principal {
            org_id,
            user_id,
            role,
            credential_id: id,
            kind: CredentialKind::Session,
            scopes: role.scopes(),
            last_used_at: None,
            expires_at: Some(expires),
        }));
    }
    Ok(None)
}

/// Whether the credential behind `p` still works at `now` (not revoked, not expired, its user
/// active): long-lived streams check this so a revoked key loses them too.
pub fn still_valid(conn: &Connection, p: &Principal, now: Millis) -> DomainResult<bool> {
    let sql = match p.kind {
        CredentialKind::ApiKey => {
            "SELECT k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?2) AND u.active
             FROM api_keys k JOIN users u ON u.id = k.created_by WHERE k.id = ?1"
        }
        CredentialKind::Session => {
            "SELECT s.revoked_at IS NULL AND s.expires_at > ?2 AND u.active
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1"
        }
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![p.credential_id, now], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_everything_and_roles_cap_keys() {
        let admin = Scopes::of(&[Scope::Admin]);
        assert!(admin.grants(Scope::Read) && admin.grants(Scope::Write));
        let rw = Scopes::of(&[Scope::Read, Scope::Write]);
        assert!(!rw.grants(Scope::Admin));
        assert_eq!(admin.intersect(Role::Member.scopes()), rw);
        assert_eq!(
            rw.intersect(Role::Viewer.scopes()),
            Scopes::of(&[Scope::Read])
        );
        assert_eq!(Scopes::from_db("read,write").to_db(), "read,write");
        assert_eq!(admin.intersect(admin).to_db(), "admin");
    }
}
