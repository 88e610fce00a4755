//! `GET /org`, `PATCH /org`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::One;
use super::error::ApiResult;
use super::headers::IfMatch;
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::orgs::{self, Organization, OrganizationPatch};
use crate::state::AppState;

/// The caller's organization.
pub struct OrgApi;

#[OpenApi(tag = "ApiTags::Organization")]
impl OrgApi {
    /// Get the organization
    ///
    /// Name, currency, time zone, fiscal year, revenue target and ideal customer profile.
    /// Scope `read`: agents need the currency and the profile to do their work.
    #[oai(path = "/org", method = "get", operation_id = "get_org")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
    ) -> ApiResult<One<Organization>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let org = state.db.read(move |c| orgs::get(c, &org_id)).await?;
        Ok(One::versioned(org.version, org))
    }

    /// Update the organization
    ///
    /// Changes only the fields sent; `monthly_revenue_target: null` clears the target, and `icp`
    /// replaces the whole profile. Scope `admin`. Send `If-Match` with the ETag to avoid
    /// overwriting someone else's change (412 if it moved on).
    #[oai(path = "/org", method = "patch", operation_id = "update_org")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<OrganizationPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Organization>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let expected = IfMatch::value(if_match.0);
        let now = state.clock.now_ms();
        let org = state
            .db
            .write(move |tx| orgs::update(tx, &org_id, body.0, expected, now))
            .await?;
        Ok(One::versioned(org.version, org))
    }
}
