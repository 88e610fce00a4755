//! Credentials recently resolved, so a client's next requests skip the lookup.
//!
//! Resolving a bearer token reads its key (or session) and user: under a load of gets by id
//! that read, and the snapshot around it, took an eighth of the server's CPU. A principal read
//! here is used again while nothing can have changed it:
//!
//! - no write transaction of this process has committed since it was read, so a key revoked,
//!   a user deactivated or a role changed through the API counts from the next request on;
//! - it was read less than [`MAX_AGE_MS`] ago, so a change made by another process on the same
//!   file (`clozup keys revoke` while the server runs) counts within that;
//! - and the credential has not reached its own expiry since.
//!
//! Only live credentials are remembered: an unknown or refused token is looked up every time,
//! so a stream of made-up tokens cannot fill the memory, and it is bounded anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Millis;
use crate::domain::auth::Principal;

/// How long a principal is used without reading it again, for changes made by other processes.
pub const MAX_AGE_MS: Millis = 1_000;

/// Most credentials remembered; past this all are forgotten and read again as they come.
const REMEMBERED: usize = 10_000;

/// A principal as read, with when and after which commit.
struct Remembered {
    principal: Principal,
    commit: u64,
    read_at: Millis,
}

/// Principals by their token's hash (the token itself is never kept).
#[derive(Default)]
pub struct Credentials {
    entries: Mutex<HashMap<Vec<u8>, Remembered>>,
}

impl Credentials {
    /// The principal of the token hashing to `hash`, if it was read after `commit` (this
    /// process's count of committed writes, taken before the caller's own read) and is still
    /// fresh and unexpired at `now`.
    pub fn get(&self, hash: &[u8], commit: u64, now: Millis) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let r = entries.get(hash)?;
        let fresh = r.commit == commit
            && (0..MAX_AGE_MS).contains(&(now - r.read_at))
            && r.principal.expires_at.is_none_or(|e| now < e);
        fresh.then(|| r.principal.clone())
    }

    /// Remembers `principal`, read at `now` in a snapshot taken when this process had committed
    /// `commit` writes (or more: a later commit only makes the entry look older than it is).
    pub fn remember(&self, hash: Vec<u8>, principal: &Principal, commit: u64, now: Millis) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= REMEMBERED && !entries.contains_key(&hash) {
            entries.clear();
        }
        entries.insert(
            hash,
            Remembered {
                principal: principal.clone(),
                commit,
                read_at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth::{CredentialKind, Role};

    fn principal(expires_at: Option<Millis>) -> Principal {
        Principal {
            org_id: "org_1".into(),
            user_id: "usr_1".into(),
            role: Role::Admin,
            credential_id: "key_1".into(),
            kind: CredentialKind::ApiKey,
            scopes: Role::Admin.scopes(),
            last_used_at: None,
            expires_at,
        }
    }

    #[test]
    fn a_principal_is_used_again_only_until_a_commit_its_age_or_its_expiry() {
        let c = Credentials::default();
        c.remember(b"h".to_vec(), &principal(Some(5_000)), 7, 1_000);
        assert!(c.get(b"h", 7, 1_000).is_some());
        assert!(c.get(b"h", 7, 1_000 + MAX_AGE_MS - 1).is_some());
        assert!(c.get(b"other", 7, 1_000).is_none());
        assert!(c.get(b"h", 8, 1_000).is_none(), "a commit since the read");
        assert!(c.get(b"h", 7, 1_000 + MAX_AGE_MS).is_none(), "too old");
        assert!(c.get(b"h", 7, 999).is_none(), "a clock that went back");

        c.remember(b"h".to_vec(), &principal(Some(1_200)), 7, 1_000);
        assert!(c.get(b"h", 7, 1_199).is_some());
        assert!(c.get(b"h", 7, 1_200).is_none(), "expired by its own date");
    }

    #[test]
    fn the_memory_is_bounded() {
        let c = Credentials::default();
        for n in 0..REMEMBERED + 1 {
            c.remember(n.to_string().into_bytes(), &principal(None), 1, 0);
        }
        let entries = c.entries.lock().unwrap();
        assert!(entries.len() <= REMEMBERED, "{}", entries.len());
        assert!(entries.contains_key(REMEMBERED.to_string().as_bytes()));
    }
}
