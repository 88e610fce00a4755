//! `/activities`: the record of what happened.

use crate::api::params::{
    paging, ActivitySort, ActivityTypes, PageNumber, PerPage, Shaped, SortParam,
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
use crate::domain::activities::{self, Activity, ActivityFilter, NewActivity};
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Activities.
pub struct ActivitiesApi;

#[OpenApi(tag = "ApiTags::Activities")]
impl ActivitiesApi {
    /// List activities
    ///
    /// Filters: `type`, `deal_id`, `lead_id`, `user_id` (each any of, comma separated),
    /// `occurred_after`/`occurred_before`, `created_after`/`created_before`. Sort:
    /// `created_at`, `occurred_at`; default `-created_at`.
    #[oai(path = "/activities", method = "get", operation_id = "list_activities")]
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
        sort: Query<Option<SortParam<ActivitySort>>>,
        /// Only activities of these types (any of, comma separated).
        #[oai(name = "type")]
        activity_type: Query<Option<Shaped<ActivityTypes>>>,
        /// Only activities on these deals (`deal_...`; any of, comma separated).
        deal_id: Query<Option<String>>,
        /// Only activities on these leads (`lead_...`; any of, comma separated).
        lead_id: Query<Option<String>>,
        /// Only activities logged by these users (`usr_...`; any of, comma separated).
        user_id: Query<Option<String>>,
        /// Only activities that happened at or after this time (RFC 3339).
        occurred_after: Query<Option<Timestamp>>,
        /// Only activities that happened before this time (RFC 3339).
        occurred_before: Query<Option<Timestamp>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
    ) -> ApiResult<Page<Activity>> {
        let paging = paging(page.0, per_page.0)?;
        let f = ActivityFilter {
            activity_type: activity_type.0.map(String::from),
            deal_id: deal_id.0,
            lead_id: lead_id.0,
            user_id: user_id.0,
            occurred_after: occurred_after.0.map(|t| t.0),
            occurred_before: occurred_before.0.map(|t| t.0),
            created_after: created_after.0.map(|t| t.0),
            created_before: created_before.0.map(|t| t.0),
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    activities::list(c, org_id, &f, sort.0.as_deref(), paging)
                })
                .await?,
        ))
    }

    /// Log an activity
    ///
    /// Scope `write`. `type` is call, email, meeting, sms, linkedin or other (the server
    /// writes email_sent, email_received, email_opened and stage_changed itself). On a deal
    /// and/or a lead, whose `last_activity_at` moves forward. Calls carry `duration_seconds`
    /// and `outcome`. Emits `activity.created`.
    #[oai(
        path = "/activities",
        method = "post",
        operation_id = "create_activity"
    )]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewActivity>,
    ) -> ApiResult<Created<Activity>> {
        let a = caller
            .write(&state, move |tx, p, now| {
                activities::create(tx, p, body.0, now)
            })
            .await?;
        Ok(Created::versioned(a.version, a))
    }

    /// Get an activity
    ///
    /// One logged activity.
    #[oai(
        path = "/activities/:id",
        method = "get",
        operation_id = "get_activity"
    )]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The activity's id (`act_...`).
        id: Path<String>,
    ) -> ApiResult<One<Activity>> {
        let a = caller
            .lookup(&state, move |c, org_id| activities::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(a.version, a))
    }

    /// Delete an activity
    ///
    /// Scope `write`. The deal's and lead's `last_activity_at` are recomputed from what
    /// remains. Emits `activity.deleted`; returns the deleted activity.
    #[oai(
        path = "/activities/:id",
        method = "delete",
        operation_id = "delete_activity"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The activity's id (`act_...`).
        id: Path<String>,
    ) -> ApiResult<One<Activity>> {
        let a = caller
            .write(&state, move |tx, p, now| {
                activities::delete(tx, p, &id.0, now)
            })
            .await?;
        Ok(One::new(a))
    }
}
