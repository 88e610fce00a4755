//! The bearer security scheme and the caller's identity inside handlers.
//!
//! The credential is resolved once per request by the gate (which needs it first, for rate
//! limits and idempotency); this scheme only reads the result, so a missing or invalid
//! credential becomes poem-openapi's 401, which the gate renders as the one 401 envelope.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use super::error::ApiError;
use crate::domain::auth::{Principal, Scope};

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
}
