//! `/suppressions`: the addresses the organization never writes to again.

use crate::api::params::{
    paging, PageNumber, PerPage, Shaped, SortParam, SuppressionReasons, SuppressionSort,
};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::security::Caller;
use super::ApiTags;
use crate::domain::suppressions::{self, NewSuppression, Suppression};
use crate::state::AppState;

/// The suppression list.
pub struct SuppressionsApi;

#[OpenApi(tag = "ApiTags::Suppressions")]
impl SuppressionsApi {
    /// List suppressed addresses
    ///
    /// Filters: `email` (exactly, without regard to case: is this address suppressed?), `q`
    /// (text in the address), `reason` (manual, unsubscribed, bounced, complained; any of,
    /// comma separated). Sort: `created_at`, `email`; default `-created_at`.
    #[oai(
        path = "/suppressions",
        method = "get",
        operation_id = "list_suppressions"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<SuppressionSort>>>,
        /// Only this address.
        email: Query<Option<String>>,
        /// Text to look for in the address (ASCII letters match in either case).
        q: Query<Option<String>>,
        /// Only these reasons (any of, comma separated).
        reason: Query<Option<Shaped<SuppressionReasons>>>,
    ) -> ApiResult<Page<Suppression>> {
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    suppressions::list(
                        c,
                        org_id,
                        email.0.as_deref(),
                        q.0.as_deref(),
                        reason.0.as_deref(),
                        sort.0.as_deref(),
                        paging,
                    )
                })
                .await?,
        ))
    }

    /// Suppress an address
    ///
    /// Scope `write`. From now on no email goes to it: a send or reply naming it is refused
    /// (422 naming the recipient). 409 naming the entry when it is already suppressed. Emits
    /// `suppression.created`.
    #[oai(
        path = "/suppressions",
        method = "post",
        operation_id = "create_suppression"
    )]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewSuppression>,
    ) -> ApiResult<Created<Suppression>> {
        Ok(Created::new(
            caller
                .write(&state, move |tx, p, now| {
                    suppressions::create(tx, p, body.0, now)
                })
                .await?,
        ))
    }

    /// Get a suppression
    ///
    /// The entry: the address, why it is suppressed, and since when.
    #[oai(
        path = "/suppressions/:id",
        method = "get",
        operation_id = "get_suppression"
    )]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The entry's id (`sup_...`).
        id: Path<String>,
    ) -> ApiResult<One<Suppression>> {
        Ok(One::new(
            caller
                .lookup(&state, move |c, org_id| suppressions::get(c, org_id, &id.0))
                .await?,
        ))
    }

    /// Lift a suppression
    ///
    /// Scope `write`. The address may be written to again. Emits `suppression.deleted`;
    /// returns the entry removed.
    #[oai(
        path = "/suppressions/:id",
        method = "delete",
        operation_id = "delete_suppression"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The entry's id (`sup_...`).
        id: Path<String>,
    ) -> ApiResult<One<Suppression>> {
        Ok(One::new(
            caller
                .write(&state, move |tx, p, now| {
                    suppressions::delete(tx, p, &id.0, now)
                })
                .await?,
        ))
    }
}
