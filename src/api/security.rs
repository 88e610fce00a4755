//! The bearer security scheme and the caller's identity inside handlers.
//!
//! The credential is resolved once per request by the gate (which needs it first, for rate
//! limits and idempotency); this scheme only reads the result, so a missing or invalid
//! credential becomes poem-openapi's 401, which the gate renders as the one 401 envelope.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use rusqlite::Connection;

use super::error::{ApiError, ApiResult};
use crate::clock::Millis;
use crate::db::Tx;
use crate::domain::auth::{Principal, Scope};
use crate::domain::DomainResult;
use crate::state::AppState;

/// `Authorization: Bearer clz_...` (API key) or `Bearer clzs_...` (session from /auth/login).
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    rename = "bearer",
    bearer_format = "clz_ API key or clzs_ session token",
    checker = "resolved_principal"
)]
pub struct Caller(pub Principal);

async fn resolved_principal(req: &Request, _bearer: Bearer) -> Option<Principal> {
    req.data::<Principal>().cloned()
}

impl Caller {
    /// The principal, if the credential grants `scope`; else 403.
    pub fn with(&self, scope: Scope) -> Result<&Principal, ApiError> {
        self.0.require(scope)?;
        Ok(&self.0)
    }

    /// Runs one change on the writer for a caller holding `write`, with what every change
    /// takes: the caller (who acts) and the time.
    pub async fn write<T, F>(&self, state: &AppState, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>, &Principal, Millis) -> DomainResult<T> + Send + 'static,
    {
        let p = self.with(Scope::Write)?.clone();
        let now = state.clock.now_ms();
        Ok(state.db.write(move |tx| f(tx, &p, now)).await?)
    }

    /// Runs one read in one snapshot for a caller holding `read`, in the caller's organization.
    pub async fn read<T, F>(&self, state: &AppState, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> DomainResult<T> + Send + 'static,
    {
        let org_id = self.with(Scope::Read)?.org_id.clone();
        Ok(state.db.read(move |c| f(c, &org_id)).await?)
    }

    /// Reads one record by id for a caller holding `read`, in the caller's organization (a
    /// point read: `Db::lookup`).
    pub async fn lookup<T, F>(&self, state: &AppState, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> DomainResult<T> + Send + 'static,
    {
        let org_id = self.with(Scope::Read)?.org_id.clone();
        Ok(state.db.lookup(move |c| f(c, &org_id)).await?)
    }
}
