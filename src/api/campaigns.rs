//! `/campaigns` and `/enrollments`: outbound sequences that run by themselves, and the leads
//! running through them.

use crate::api::params::{
    paging, CampaignSort, CampaignStatuses, EnrollmentSort, EnrollmentStatuses, PageNumber,
    PerPage, Shaped, SortParam,
};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::headers::IfMatch;
use super::security::Caller;
use super::ApiTags;
use crate::domain::campaigns::enroll::{self, Enroll, EnrollResult};
use crate::domain::campaigns::metrics::{self, CampaignMetrics};
use crate::domain::campaigns::steps::{self, NewStep, Step, StepPatch};
use crate::domain::campaigns::{self, Campaign, CampaignPatch, NewCampaign, Transition};
use crate::domain::enrollments::{self, Change, Enrollment, EnrollmentFilter};
use crate::state::AppState;

/// Campaigns and enrollments.
pub struct CampaignsApi;

impl CampaignsApi {
    async fn transition(
        state: &AppState,
        caller: Caller,
        id: String,
        t: Transition,
    ) -> ApiResult<One<Campaign>> {
        let c = caller
            .write(state, move |tx, p, now| {
                campaigns::transition(tx, p, &id, t, now)
            })
            .await?;
        Ok(One::versioned(c.version, c))
    }

    async fn change(
        state: &AppState,
        caller: Caller,
        id: String,
        change: Change,
    ) -> ApiResult<One<Enrollment>> {
        let e = caller
            .write(state, move |tx, p, now| {
                enrollments::change(tx, p, &id, change, now)
            })
            .await?;
        Ok(One::versioned(e.version, e))
    }
}

#[OpenApi(tag = "ApiTags::Campaigns")]
impl CampaignsApi {
    /// List campaigns
    ///
    /// Filters: `status` (draft, active, paused, completed, archived; any of, comma
    /// separated), `q` (text in the name). Sort: `created_at`, `updated_at`, `name`; default
    /// `-created_at`.
    #[oai(path = "/campaigns", method = "get", operation_id = "list_campaigns")]
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
        sort: Query<Option<SortParam<CampaignSort>>>,
        /// Only campaigns with these statuses (any of, comma separated).
        status: Query<Option<Shaped<CampaignStatuses>>>,
        /// Text to look for in the name (ASCII letters match in either case).
        q: Query<Option<String>>,
    ) -> ApiResult<Page<Campaign>> {
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    campaigns::list(
                        c,
                        org_id,
                        status.0.as_deref(),
                        q.0.as_deref(),
                        sort.0.as_deref(),
                        paging,
                    )
                })
                .await?,
        ))
    }

    /// Create a campaign
    ///
    /// Scope `write`. A draft, with its own sender address on the inbox domain
    /// (`<sender_username or a slug of the name>@<domain>`; 409 when the username is taken):
    /// replies to it come back to the campaign and stop the lead's enrollment. Add steps,
    /// enroll leads, then activate it. Emits `campaign.created`.
    #[oai(path = "/campaigns", method = "post", operation_id = "create_campaign")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewCampaign>,
    ) -> ApiResult<Created<Campaign>> {
        let domain = state.config.email_domain.clone();
        Ok(Created::new(
            caller
                .write(&state, move |tx, p, now| {
                    campaigns::create(tx, p, body.0, &domain, now)
                })
                .await?,
        ))
    }

    /// Get a campaign
    ///
    /// Its settings, status, sender and number of steps.
    #[oai(path = "/campaigns/:id", method = "get", operation_id = "get_campaign")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Campaign>> {
        let c = caller
            .lookup(&state, move |c, org_id| campaigns::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(c.version, c))
    }

    /// Update a campaign
    ///
    /// Scope `write`. Absent fields stay; `null` clears. The sender address is fixed. Send
    /// `If-Match` to avoid overwriting a newer version (412). Emits `campaign.updated` with the
    /// old values of the changed fields.
    #[oai(
        path = "/campaigns/:id",
        method = "patch",
        operation_id = "update_campaign"
    )]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
        body: JsonBody<CampaignPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Campaign>> {
        let expected = IfMatch::value(if_match.0);
        let c = caller
            .write(&state, move |tx, p, now| {
                campaigns::update(tx, p, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(c.version, c))
    }

    /// Delete a campaign
    ///
    /// Scope `write`. Only a draft that never ran, with its steps and enrollments (409
    /// otherwise: complete and archive it instead). Emits `campaign.deleted`.
    #[oai(
        path = "/campaigns/:id",
        method = "delete",
        operation_id = "delete_campaign"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Campaign>> {
        Ok(One::new(
            caller
                .write(&state, move |tx, p, now| {
                    campaigns::delete(tx, p, &id.0, now)
                })
                .await?,
        ))
    }

    /// Activate a campaign
    ///
    /// Scope `write`. From draft (delays count from now) or paused; it needs a step (422).
    /// Due steps then run within the sending window. Emits `campaign.activated`.
    #[oai(
        path = "/campaigns/:id/activate",
        method = "post",
        operation_id = "activate_campaign"
    )]
    async fn activate(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Campaign>> {
        Self::transition(&state, caller, id.0, Transition::Activate).await
    }

    /// Pause a campaign
    ///
    /// Scope `write`. From active: no step runs until it is activated again; steps that came
    /// due meanwhile run then. Emits `campaign.paused`.
    #[oai(
        path = "/campaigns/:id/pause",
        method = "post",
        operation_id = "pause_campaign"
    )]
    async fn pause(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Campaign>> {
        Self::transition(&state, caller, id.0, Transition::Pause).await
    }

    /// Complete a campaign
    ///
    /// Scope `write`. From active or paused: every enrollment still running stops
    /// (`campaign_completed`). Emits `campaign.completed`.
    #[oai(
        path = "/campaigns/:id/complete",
        method = "post",
        operation_id = "complete_campaign"
    )]
    async fn complete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Campaign>> {
        Self::transition(&state, caller, id.0, Transition::Complete).await
    }

    /// Archive a campaign
    ///
    /// Scope `write`. From draft or completed. Emits `campaign.archived`.
    #[oai(
        path = "/campaigns/:id/archive",
        method = "post",
        operation_id = "archive_campaign"
    )]
    async fn archive(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Campaign>> {
        Self::transition(&state, caller, id.0, Transition::Archive).await
    }

    /// Get a campaign's metrics
    ///
    /// Enrolled, active, sent, opened, replied, bounced, unsubscribed and converted, with
    /// rates (over sent; conversion over enrolled), for the campaign and for each step.
    #[oai(
        path = "/campaigns/:id/metrics",
        method = "get",
        operation_id = "get_campaign_metrics"
    )]
    async fn metrics(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<CampaignMetrics>> {
        Ok(One::new(
            caller
                .lookup(&state, move |c, org_id| metrics::of(c, org_id, &id.0))
                .await?,
        ))
    }

    /// List a campaign's steps
    ///
    /// In the order they run.
    #[oai(
        path = "/campaigns/:id/steps",
        method = "get",
        operation_id = "list_campaign_steps"
    )]
    async fn list_steps(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
    ) -> ApiResult<One<Vec<Step>>> {
        Ok(One::new(
            caller
                .lookup(&state, move |c, org_id| steps::list(c, org_id, &id.0))
                .await?,
        ))
    }

    /// Add a step to a campaign
    ///
    /// Scope `write`. An email (from a template, optionally as a reply in the thread of the
    /// previous email), a call or a task for the lead's owner, `delay` after the step before
    /// it. Inserted at `position` (later steps move down) or last. Running enrollments that
    /// have not reached it will run it. 409 for a completed or archived campaign. Emits
    /// `campaign_step.created`.
    #[oai(
        path = "/campaigns/:id/steps",
        method = "post",
        operation_id = "create_campaign_step"
    )]
    async fn create_step(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
        body: JsonBody<NewStep>,
    ) -> ApiResult<Created<Step>> {
        Ok(Created::new(
            caller
                .write(&state, move |tx, p, now| {
                    steps::create(tx, p, &id.0, body.0, now)
                })
                .await?,
        ))
    }

    /// Update a campaign step
    ///
    /// Scope `write`. Absent fields stay. A new delay moves the next run of the enrollments
    /// waiting for the step. Send `If-Match` to avoid overwriting a newer version (412). Emits
    /// `campaign_step.updated`.
    #[oai(
        path = "/campaigns/:id/steps/:step_id",
        method = "patch",
        operation_id = "update_campaign_step"
    )]
    async fn update_step(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
        /// The step's id (`stp_...`).
        step_id: Path<String>,
        body: JsonBody<StepPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Step>> {
        let expected = IfMatch::value(if_match.0);
        let s = caller
            .write(&state, move |tx, p, now| {
                steps::update(tx, p, &id.0, &step_id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(s.version, s))
    }

    /// Delete a campaign step
    ///
    /// Scope `write`. Enrollments waiting for it go on to the step after it. Emits
    /// `campaign_step.deleted`.
    #[oai(
        path = "/campaigns/:id/steps/:step_id",
        method = "delete",
        operation_id = "delete_campaign_step"
    )]
    async fn delete_step(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
        /// The step's id (`stp_...`).
        step_id: Path<String>,
    ) -> ApiResult<One<Step>> {
        Ok(One::new(
            caller
                .write(&state, move |tx, p, now| {
                    steps::delete(tx, p, &id.0, &step_id.0, now)
                })
                .await?,
        ))
    }

    /// Enroll leads in a campaign
    ///
    /// Scope `write`. By `lead_ids`, or every lead `filter` selects (the filters of
    /// `GET /leads`, thousands in one call). A lead runs through a campaign once at a time;
    /// leads without an email, suppressed or already enrolled are skipped and counted, with
    /// the first 100 listed. 409 for a completed or archived campaign. Emits
    /// `enrollment.created` for each.
    #[oai(
        path = "/campaigns/:id/enrollments",
        method = "post",
        operation_id = "enroll_leads"
    )]
    async fn enroll(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The campaign's id (`cmp_...`).
        id: Path<String>,
        body: JsonBody<Enroll>,
    ) -> ApiResult<One<EnrollResult>> {
        Ok(One::new(
            caller
                .write(&state, move |tx, p, now| {
                    enroll::enroll(tx, p, &id.0, body.0, now)
                })
                .await?,
        ))
    }

    /// List enrollments
    ///
    /// Filters: `campaign_id`, `lead_id`, `status` (active, paused, completed, stopped; any
    /// of, comma separated). Sort: `created_at`, `updated_at`, `next_run_at`; default
    /// `-created_at`.
    #[oai(
        path = "/enrollments",
        method = "get",
        operation_id = "list_enrollments"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_enrollments(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<EnrollmentSort>>>,
        /// Only this campaign's (`cmp_...`).
        campaign_id: Query<Option<String>>,
        /// Only this lead's (`lead_...`).
        lead_id: Query<Option<String>>,
        /// Only these statuses (any of, comma separated).
        status: Query<Option<Shaped<EnrollmentStatuses>>>,
    ) -> ApiResult<Page<Enrollment>> {
        let paging = paging(page.0, per_page.0)?;
        let f = EnrollmentFilter {
            campaign_id: campaign_id.0,
            lead_id: lead_id.0,
            status: status.0.map(String::from),
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    enrollments::list(c, org_id, &f, sort.0.as_deref(), paging)
                })
                .await?,
        ))
    }

    /// Get an enrollment
    ///
    /// Its status (with why it stopped), the steps run, the next step and when it is due.
    #[oai(
        path = "/enrollments/:id",
        method = "get",
        operation_id = "get_enrollment"
    )]
    async fn get_enrollment(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The enrollment's id (`enr_...`).
        id: Path<String>,
    ) -> ApiResult<One<Enrollment>> {
        let e = caller
            .lookup(&state, move |c, org_id| enrollments::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(e.version, e))
    }

    /// Pause an enrollment
    ///
    /// Scope `write`. From active; 409 once it has ended. Emits `enrollment.paused`.
    #[oai(
        path = "/enrollments/:id/pause",
        method = "post",
        operation_id = "pause_enrollment"
    )]
    async fn pause_enrollment(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The enrollment's id (`enr_...`).
        id: Path<String>,
    ) -> ApiResult<One<Enrollment>> {
        Self::change(&state, caller, id.0, Change::Pause).await
    }

    /// Resume an enrollment
    ///
    /// Scope `write`. From paused: a step that came due meanwhile runs at once (within the
    /// window). 409 once it has ended. Emits `enrollment.resumed`.
    #[oai(
        path = "/enrollments/:id/resume",
        method = "post",
        operation_id = "resume_enrollment"
    )]
    async fn resume_enrollment(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The enrollment's id (`enr_...`).
        id: Path<String>,
    ) -> ApiResult<One<Enrollment>> {
        Self::change(&state, caller, id.0, Change::Resume).await
    }

    /// Stop an enrollment
    ///
    /// Scope `write`. Ends it (`manual`); 409 once it has ended. Emits `enrollment.stopped`.
    #[oai(
        path = "/enrollments/:id/stop",
        method = "post",
        operation_id = "stop_enrollment"
    )]
    async fn stop_enrollment(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The enrollment's id (`enr_...`).
        id: Path<String>,
    ) -> ApiResult<One<Enrollment>> {
        Self::change(&state, caller, id.0, Change::Stop).await
    }
}
