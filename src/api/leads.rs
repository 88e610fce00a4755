//! `/leads`: people who may buy, their 360 view, assignment, conversion, CSV in and out.

use crate::api::params::Choice;
use crate::api::params::{
    paging, LeadSort, LeadStatuses, PageNumber, PerPage, ScoreBound, Shaped, SortParam,
};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{Object, OpenApi};

use super::body::JsonBody;
use super::csv::{self, CsvBody, CsvDownload};
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::headers::IfMatch;
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::deals::{self, Conversion, ConvertLead};
use crate::domain::lead_view::{self, Lead360};
use crate::domain::leads::{self, Lead, LeadFilter, LeadPatch, NewLead};
use crate::domain::listing::Sort;
use crate::domain::scores::{self, LeadScoreView};
use crate::domain::sheets::leads::LeadImport;
use crate::domain::sheets::{self, Delimiter, ImportResult, OnDuplicate};
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Whom to assign a lead to.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AssignLead {
    /// An active user of the organization.
    pub user_id: String,
}

/// Leads.
pub struct LeadsApi;

/// The list and export filters, shared so both read the same parameters the same way.
#[allow(clippy::too_many_arguments)]
fn lead_filter(
    status: Option<String>,
    owner_id: Option<String>,
    company_id: Option<String>,
    source: Option<String>,
    country: Option<String>,
    tag: Option<String>,
    created_after: Option<Timestamp>,
    created_before: Option<Timestamp>,
    updated_since: Option<Timestamp>,
    q: Option<String>,
    score: (Option<i64>, Option<i64>),
) -> LeadFilter {
    LeadFilter {
        status,
        owner_id,
        company_id,
        source,
        country,
        tag,
        created_after: created_after.map(|t| t.0),
        created_before: created_before.map(|t| t.0),
        updated_since: updated_since.map(|t| t.0),
        q,
        score_min: score.0,
        score_max: score.1,
    }
}

#[OpenApi(tag = "ApiTags::Leads")]
impl LeadsApi {
    /// List leads
    ///
    /// Filters: `status`, `owner_id`, `company_id`, `source`, `country` (each any of, comma
    /// separated), `tag`, `created_after`/`created_before`/`updated_since`, `q` (name, email or
    /// company), `score_min`/`score_max`. Sort: `created_at`, `updated_at`, `first_name`,
    /// `last_name`, `email`, `last_activity_at`, `score`; default `-created_at`.
    #[oai(path = "/leads", method = "get", operation_id = "list_leads")]
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
        sort: Query<Option<SortParam<LeadSort>>>,
        /// Only leads with these statuses (any of, comma separated).
        status: Query<Option<Shaped<LeadStatuses>>>,
        /// Only leads owned by these users (`usr_...`; any of, comma separated).
        owner_id: Query<Option<String>>,
        /// Only leads of these companies (`co_...`; any of, comma separated).
        company_id: Query<Option<String>>,
        /// Only leads from these sources (any of, comma separated).
        source: Query<Option<String>>,
        /// Only leads in these countries (any of, comma separated).
        country: Query<Option<String>>,
        /// Only leads carrying this tag.
        tag: Query<Option<String>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
        /// Only leads scored at least this, 0 to 100.
        score_min: Query<Option<ScoreBound>>,
        /// Only leads scored at most this, 0 to 100.
        score_max: Query<Option<ScoreBound>>,
    ) -> ApiResult<Page<Lead>> {
        let paging = paging(page.0, per_page.0)?;
        let f = lead_filter(
            status.0.map(String::from),
            owner_id.0,
            company_id.0,
            source.0,
            country.0,
            tag.0,
            created_after.0,
            created_before.0,
            updated_since.0,
            q.0,
            (score_min.0.map(|s| s.0), score_max.0.map(|s| s.0)),
        );
        let page = caller
            .read(&state, move |c, org_id| {
                leads::list(c, org_id, &f, sort.0.as_deref(), paging)
            })
            .await?;
        Ok(Page(page))
    }

    /// Create a lead
    ///
    /// Scope `write`. Needs a first name, a last name or an email. A second lead with the same
    /// email is 409 with the existing lead's id in `details`. Emits `lead.created`.
    #[oai(path = "/leads", method = "post", operation_id = "create_lead")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewLead>,
    ) -> ApiResult<Created<Lead>> {
        let lead = caller
            .write(&state, move |tx, p, now| leads::create(tx, p, body.0, now))
            .await?;
        Ok(Created::versioned(lead.version, lead))
    }

    /// Export leads as CSV
    ///
    /// Streams every lead matching the list filters (same parameters as `GET /leads`, no
    /// paging) as `text/csv` with a header row. `bom=true` prefixes a UTF-8 byte-order mark for
    /// spreadsheet programs that need one.
    #[oai(path = "/leads/export", method = "get", operation_id = "export_leads")]
    #[allow(clippy::too_many_arguments)]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<LeadSort>>>,
        /// Only leads with these statuses (any of, comma separated).
        status: Query<Option<Shaped<LeadStatuses>>>,
        /// Only leads owned by these users (`usr_...`; any of, comma separated).
        owner_id: Query<Option<String>>,
        /// Only leads of these companies (`co_...`; any of, comma separated).
        company_id: Query<Option<String>>,
        /// Only leads from these sources (any of, comma separated).
        source: Query<Option<String>>,
        /// Only leads in these countries (any of, comma separated).
        country: Query<Option<String>>,
        /// Only leads carrying this tag.
        tag: Query<Option<String>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
        /// Only leads scored at least this, 0 to 100.
        score_min: Query<Option<ScoreBound>>,
        /// Only leads scored at most this, 0 to 100.
        score_max: Query<Option<ScoreBound>>,
        /// true: start the file with a UTF-8 byte-order mark, for spreadsheet programs that need one.
        bom: Query<Option<bool>>,
    ) -> ApiResult<CsvDownload> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let f = lead_filter(
            status.0.map(String::from),
            owner_id.0,
            company_id.0,
            source.0,
            country.0,
            tag.0,
            created_after.0,
            created_before.0,
            updated_since.0,
            q.0,
            (score_min.0.map(|s| s.0), score_max.0.map(|s| s.0)),
        );
        // Bad filters are a 422 now, before the 200 and the stream begin.
        Sort::parse(sort.0.as_deref(), leads::SORTS)?;
        leads::filters_for(&org_id, &f)?;
        let bom = bom.0.unwrap_or(false);
        Ok(CsvDownload::stream(
            &state.db,
            "leads.csv",
            move |c, sink| sheets::leads::export(c, &org_id, &f, sort.0.as_deref(), bom, sink),
        ))
    }

    /// Import leads from CSV
    ///
    /// Scope `write`. The body is a spreadsheet's CSV with a header row, in UTF-8 (with or
    /// without a byte-order mark), UTF-16 with a byte-order mark, the `charset` the
    /// `Content-Type` declares, or Windows-1252 when undeclared bytes are not UTF-8; separated
    /// by commas, semicolons or tabs (the header row's first, or `delimiter`). Columns are
    /// matched by name in any case and spelling of spaces, hyphens and underscores, with the
    /// aliases docs/import.md lists (`E-mail`, `Email Address`, `Job Title`, `Full Name`, …);
    /// `owner_email` names a member by email. One transaction: every good row is stored, every
    /// bad row is reported in `errors` with its `row` (1 = the first after the header), `line`
    /// and `field`, and a failed request stores nothing. A row whose email matches an existing
    /// lead is skipped, updates it or is an error (`on_duplicate`). Each created lead emits
    /// `lead.created`, each updated one `lead.updated`.
    #[oai(path = "/leads/import", method = "post", operation_id = "import_leads")]
    async fn import(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: CsvBody,
        /// What a row whose email matches an existing lead does: skip it (default), update that lead, or count as an error.
        on_duplicate: Query<Option<Choice<OnDuplicate>>>,
        /// The separator between cells; by default the first the header row uses.
        delimiter: Query<Option<Choice<Delimiter>>>,
    ) -> ApiResult<One<ImportResult>> {
        csv::import(
            &state,
            &caller,
            body,
            delimiter.0.map(|c| c.0),
            on_duplicate.0.map(|c| c.0),
            LeadImport,
        )
        .await
    }

    /// Get a lead
    ///
    /// The lead with its version in `ETag`; `GET /leads/{id}/360` adds everything around it.
    #[oai(path = "/leads/:id", method = "get", operation_id = "get_lead")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
    ) -> ApiResult<One<Lead>> {
        let lead = caller
            .lookup(&state, move |c, org_id| leads::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(lead.version, lead))
    }

    /// Get a lead's score with its breakdown
    ///
    /// The score (0–100) is the sum of three parts, each with the factors behind it:
    /// completeness (up to 30: email 8, phone 5, title 5, company 5, first and last name 4,
    /// country 3), engagement (up to 30: 5 per activity in the last 30 days up to 20, and 10
    /// for a reply in that time) and fit to the organization's ideal customer profile (up to
    /// 40, shared by the criteria the profile sets in the ratio industry 12 : title 12 :
    /// country 8 : company size 8). The stored `score` is kept current as the lead, its
    /// activities, its company and the profile change.
    #[oai(
        path = "/leads/:id/score",
        method = "get",
        operation_id = "get_lead_score"
    )]
    async fn score(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
    ) -> ApiResult<One<LeadScoreView>> {
        let now = state.clock.now_ms();
        Ok(One::new(
            caller
                .read(&state, move |c, org_id| {
                    scores::breakdown(c, org_id, &id.0, now)
                })
                .await?,
        ))
    }

    /// Get the lead's 360 view
    ///
    /// The whole relationship in one response: the lead with its company, its deals, and the
    /// activities (calls also listed apart), notes, tasks, emails (both ways) and open buying
    /// signals recorded on the lead or on any of its deals, each carrying the `deal_id` it
    /// belongs to. Up to 100 of each, most recent first; `totals` counts them all and
    /// `truncated` says whether a list was capped.
    #[oai(path = "/leads/:id/360", method = "get", operation_id = "get_lead_360")]
    async fn view_360(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
    ) -> ApiResult<One<Lead360>> {
        let now = state.clock.now_ms();
        let view = caller
            .read(&state, move |c, org_id| {
                lead_view::lead_360(c, org_id, &id.0, now)
            })
            .await?;
        Ok(One::versioned(view.lead.version, view))
    }

    /// Update a lead
    ///
    /// Scope `write`. Absent fields stay, `null` clears; `status` may not be set to
    /// `converted` (use convert). Send `If-Match` to avoid overwriting a newer version (412).
    /// Emits `lead.updated` with the old values of the changed fields.
    #[oai(path = "/leads/:id", method = "patch", operation_id = "update_lead")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
        body: JsonBody<LeadPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Lead>> {
        let expected = IfMatch::value(if_match.0);
        let lead = caller
            .write(&state, move |tx, p, now| {
                leads::update(tx, p, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(lead.version, lead))
    }

    /// Delete a lead
    ///
    /// Scope `write`. Its tasks, notes and activities go with it (each task and note with its
    /// own `deleted` event); deals it became stay, with `lead_id` cleared. Emits
    /// `lead.deleted`; returns the deleted lead.
    #[oai(path = "/leads/:id", method = "delete", operation_id = "delete_lead")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
    ) -> ApiResult<One<Lead>> {
        let lead = caller
            .write(&state, move |tx, p, now| leads::delete(tx, p, &id.0, now))
            .await?;
        Ok(One::new(lead))
    }

    /// Assign a lead
    ///
    /// Scope `write`. Makes an active user of the organization the lead's owner (422 for an
    /// unknown or deactivated user). Emits `lead.assigned` with the previous owner.
    #[oai(
        path = "/leads/:id/assign",
        method = "post",
        operation_id = "assign_lead"
    )]
    async fn assign(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
        body: JsonBody<AssignLead>,
    ) -> ApiResult<One<Lead>> {
        let lead = caller
            .write(&state, move |tx, p, now| {
                leads::assign(tx, p, &id.0, &body.0.user_id, now)
            })
            .await?;
        Ok(One::versioned(lead.version, lead))
    }

    /// Convert a lead into a deal
    ///
    /// Scope `write`. Creates a deal from the lead (in the default pipeline's first stage
    /// unless a pipeline or stage is given; with the lead's company and owner) and sets the
    /// lead's status to `converted`. A lead already converted is 409 naming its deal. Emits
    /// `deal.created` and `lead.converted`. The body may be empty (`{}`).
    #[oai(
        path = "/leads/:id/convert",
        method = "post",
        operation_id = "convert_lead"
    )]
    async fn convert(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lead's id (`lead_...`).
        id: Path<String>,
        body: JsonBody<ConvertLead>,
    ) -> ApiResult<Created<Conversion>> {
        let c = caller
            .write(&state, move |tx, p, now| {
                deals::convert_lead(tx, p, &id.0, body.0, now)
            })
            .await?;
        Ok(Created::new(c))
    }
}
