//! `GET/POST /api-keys`, `GET/DELETE /api-keys/{id}`.

use crate::api::params::{paging, ApiKeySort, KeyStatuses, PageNumber, PerPage, Shaped, SortParam};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::security::Caller;
use super::ApiTags;
use crate::domain::api_keys::{self, ApiKey, CreatedApiKey, NewApiKey};
use crate::domain::auth::{CredentialKind, Scope};
use crate::state::AppState;

/// API key management (scope `admin` throughout).
pub struct ApiKeysApi;

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// List API keys
    ///
    /// Never shows a secret, only each key's prefix. Filter `status` (any of active, expired,
    /// revoked). Sort: `created_at`, `name`, `last_used_at`; default `-created_at`.
    #[oai(path = "/api-keys", method = "get", operation_id = "list_api_keys")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<ApiKeySort>>>,
        /// Only keys in one of these states: active, expired, revoked (comma separated).
        status: Query<Option<Shaped<KeyStatuses>>>,
    ) -> ApiResult<Page<ApiKey>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let paging = paging(page.0, per_page.0)?;
        let now = state.clock.now_ms();
        let page = state
            .db
            .read(move |c| {
                api_keys::list(
                    c,
                    &org_id,
                    status.0.as_deref(),
                    sort.0.as_deref(),
                    paging,
                    now,
                )
            })
            .await?;
        Ok(Page(page))
    }

    /// Create an API key
    ///
    /// Returns the secret in `key`, once: only its SHA-256 is kept. Scopes default to read and
    /// write and can never exceed the creator's role. A key made with an expiring key expires
    /// no later than it (by default, with it). The key stops working when it expires, is
    /// revoked, or its creator is deactivated.
    #[oai(path = "/api-keys", method = "post", operation_id = "create_api_key")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewApiKey>,
    ) -> ApiResult<Created<CreatedApiKey>> {
        let p = caller.with(Scope::Admin)?.clone();
        let now = state.clock.now_ms();
        let not_after = match p.kind {
            CredentialKind::ApiKey => p.expires_at,
            CredentialKind::Session => None,
        };
        let created = state
            .db
            .write(move |tx| {
                api_keys::create(tx, &p.org_id, &p.user_id, p.scopes, not_after, body.0, now)
            })
            .await?;
        Ok(Created::versioned(created.api_key.version, created))
    }

    /// Get an API key
    ///
    /// Its name, prefix, scopes, status and last use (to the minute); never the secret.
    #[oai(path = "/api-keys/:id", method = "get", operation_id = "get_api_key")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The key's id (`key_...`).
        id: Path<String>,
    ) -> ApiResult<One<ApiKey>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let now = state.clock.now_ms();
        let key = state
            .db
            .lookup(move |c| api_keys::get(c, &org_id, &id.0, now))
            .await?;
        Ok(One::versioned(key.version, key))
    }

    /// Revoke an API key
    ///
    /// The key stops working with the next request. The record stays (status `revoked`) so its
    /// history can be audited; revoking it again changes nothing. Returns the revoked key.
    #[oai(
        path = "/api-keys/:id",
        method = "delete",
        operation_id = "revoke_api_key"
    )]
    async fn revoke(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The key's id (`key_...`).
        id: Path<String>,
    ) -> ApiResult<One<ApiKey>> {
        let p = caller.with(Scope::Admin)?.clone();
        let now = state.clock.now_ms();
        let key = state
            .db
            .write(move |tx| api_keys::revoke(tx, &p.org_id, &id.0, now))
            .await?;
        Ok(One::versioned(key.version, key))
    }
}
