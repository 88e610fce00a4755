//! `/deals`: opportunities, their moves through the pipeline, and their full context.

use crate::api::params::Choice;
use crate::api::params::{
    paging, AmountBound, CalendarDate, DealSort, DealStatuses, PageNumber, PerPage, Shaped,
    SortParam,
};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::csv::{self, CsvBody, CsvDownload};
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::headers::IfMatch;
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::deals::{
    self, Deal, DealContext, DealFilter, DealPatch, MoveDeal, NewDeal, StageChange,
};
use crate::domain::pipelines::{self, Stage};
use crate::domain::sheets::deals::DealImport;
use crate::domain::sheets::{self, Delimiter, ImportResult, OnDuplicate};
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Deals.
pub struct DealsApi;

#[OpenApi(tag = "ApiTags::Deals")]
impl DealsApi {
    /// List deals
    ///
    /// Filters: `stage_id`, `stage` (by name), `status` (open, won, lost), `pipeline_id`,
    /// `owner_id`, `lead_id`, `company_id` (each any of, comma separated), `tag`,
    /// `value_min`/`value_max` (major units of the organization's currency),
    /// `expected_close_after`/`expected_close_before` (dates), `created_after`/`created_before`/
    /// `updated_since`, `q` (title). Sort: `created_at`, `updated_at`, `value`, `title`,
    /// `expected_close_date`, `stage_entered_at`, `last_activity_at`; default `-created_at`.
    #[oai(path = "/deals", method = "get", operation_id = "list_deals")]
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
        sort: Query<Option<SortParam<DealSort>>>,
        /// Only deals in these stages (`stg_...`; any of, comma separated).
        stage_id: Query<Option<String>>,
        /// Only deals in stages with these names (any of, comma separated).
        stage: Query<Option<String>>,
        /// Only deals that are open, won or lost (any of, comma separated).
        status: Query<Option<Shaped<DealStatuses>>>,
        /// Only deals of these pipelines (`pip_...`; any of, comma separated).
        pipeline_id: Query<Option<String>>,
        /// Only deals owned by these users (`usr_...`; any of, comma separated).
        owner_id: Query<Option<String>>,
        /// Only deals of these leads (`lead_...`; any of, comma separated).
        lead_id: Query<Option<String>>,
        /// Only deals of these companies (`co_...`; any of, comma separated).
        company_id: Query<Option<String>>,
        /// Only deals carrying this tag.
        tag: Query<Option<String>>,
        /// Only deals worth at least this much, in major units of the organization's currency.
        value_min: Query<Option<AmountBound>>,
        /// Only deals worth at most this much, in major units of the organization's currency.
        value_max: Query<Option<AmountBound>>,
        /// Only deals expected to close on or after this date.
        expected_close_after: Query<Option<Shaped<CalendarDate>>>,
        /// Only deals expected to close before this date.
        expected_close_before: Query<Option<Shaped<CalendarDate>>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
    ) -> ApiResult<Page<Deal>> {
        let paging = paging(page.0, per_page.0)?;
        let now = state.clock.now_ms();
        let f = deal_filter(
            (stage_id.0, stage.0, status.0, pipeline_id.0),
            (owner_id.0, lead_id.0, company_id.0, tag.0),
            (value_min.0.map(|v| v.0), value_max.0.map(|v| v.0)),
            (expected_close_after.0, expected_close_before.0),
            (created_after.0, created_before.0, updated_since.0),
            q.0,
        );
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    deals::list(c, org_id, &f, sort.0.as_deref(), paging, now)
                })
                .await?,
        ))
    }

    /// Export deals as CSV
    ///
    /// Streams every deal matching the list filters (same parameters as `GET /deals`, no
    /// paging) as `text/csv` with a header row: pipeline and stage by name, lead by email,
    /// company by domain (or name), owner by email (`owner_email`), value in major units, so
    /// the file imports into another organization that has them. Text cells a spreadsheet
    /// would run as a formula get a `'` in front. `bom=true` prefixes a UTF-8 byte-order mark.
    #[oai(path = "/deals/export", method = "get", operation_id = "export_deals")]
    #[allow(clippy::too_many_arguments)]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<DealSort>>>,
        /// Only deals in these stages (`stg_...`; any of, comma separated).
        stage_id: Query<Option<String>>,
        /// Only deals in stages with these names (any of, comma separated).
        stage: Query<Option<String>>,
        /// Only deals that are open, won or lost (any of, comma separated).
        status: Query<Option<Shaped<DealStatuses>>>,
        /// Only deals of these pipelines (`pip_...`; any of, comma separated).
        pipeline_id: Query<Option<String>>,
        /// Only deals owned by these users (`usr_...`; any of, comma separated).
        owner_id: Query<Option<String>>,
        /// Only deals of these leads (`lead_...`; any of, comma separated).
        lead_id: Query<Option<String>>,
        /// Only deals of these companies (`co_...`; any of, comma separated).
        company_id: Query<Option<String>>,
        /// Only deals carrying this tag.
        tag: Query<Option<String>>,
        /// Only deals worth at least this much, in major units of the organization's currency.
        value_min: Query<Option<AmountBound>>,
        /// Only deals worth at most this much, in major units of the organization's currency.
        value_max: Query<Option<AmountBound>>,
        /// Only deals expected to close on or after this date.
        expected_close_after: Query<Option<Shaped<CalendarDate>>>,
        /// Only deals expected to close before this date.
        expected_close_before: Query<Option<Shaped<CalendarDate>>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
        /// true: start the file with a UTF-8 byte-order mark, for spreadsheet programs that need one.
        bom: Query<Option<bool>>,
    ) -> ApiResult<CsvDownload> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let f = deal_filter(
            (stage_id.0, stage.0, status.0, pipeline_id.0),
            (owner_id.0, lead_id.0, company_id.0, tag.0),
            (value_min.0.map(|v| v.0), value_max.0.map(|v| v.0)),
            (expected_close_after.0, expected_close_before.0),
            (created_after.0, created_before.0, updated_since.0),
            q.0,
        );
        // Bad filters are a 422 now, before the 200 and the stream begin.
        let sort = sort.0.map(String::from);
        let check = (org_id.clone(), f.clone(), sort.clone());
        state
            .db
            .read(move |c| deals::filters_for(c, &check.0, &check.1, check.2.as_deref()).map(drop))
            .await?;
        let bom = bom.0.unwrap_or(false);
        Ok(CsvDownload::stream(
            &state.db,
            "deals.csv",
            move |c, sink| sheets::deals::export(c, &org_id, &f, sort.as_deref(), bom, sink),
        ))
    }

    /// Import deals from CSV
    ///
    /// Scope `write`. Read as `POST /leads/import` reads a file (encodings, separators, header
    /// names in any spelling, one transaction, a report of every row); the columns and their
    /// aliases are in docs/import.md. Each row names its pipeline and stage (by name or id;
    /// default the default pipeline's first stage), lead (by email or id), company (by domain,
    /// name or id) and owner (by email); an unknown pipeline, stage, lead or company is a row
    /// error, an owner who is not a member a warning. A row whose `id` is a deal of this
    /// organization is skipped, updates it (never moving it) or is an error (`on_duplicate`).
    /// Each created deal emits `deal.created`.
    #[oai(path = "/deals/import", method = "post", operation_id = "import_deals")]
    async fn import(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: CsvBody,
        /// What a row naming an existing deal's `id` does: skip it (default), update that deal, or count as an error.
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
            DealImport,
        )
        .await
    }

    /// List the stages of a pipeline
    ///
    /// The stages of the default pipeline, or of `pipeline_id`, in board order, each with its
    /// probability, kind (open, won, lost) and rotting days.
    #[oai(
        path = "/deals/stages",
        method = "get",
        operation_id = "list_deal_stages"
    )]
    async fn stages(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The pipeline (`pip_...`); default the organization's default pipeline.
        pipeline_id: Query<Option<String>>,
    ) -> ApiResult<Page<Stage>> {
        let stages = caller
            .read(&state, move |c, org_id| {
                let pid = match pipeline_id.0 {
                    Some(id) => pipelines::get(c, org_id, &id)?.id,
                    None => pipelines::default_id(c, org_id)?,
                };
                pipelines::stages_of(c, org_id, &pid)
            })
            .await?;
        Ok(Page::whole(stages))
    }

    /// Create a deal
    ///
    /// Scope `write`. Lands in the default pipeline's first stage unless `pipeline_id`,
    /// `stage_id` or `stage` (name) says otherwise; `currency` defaults to the organization's,
    /// `owner_id` to the caller, `company_id` to the lead's. Emits `deal.created`.
    #[oai(path = "/deals", method = "post", operation_id = "create_deal")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewDeal>,
    ) -> ApiResult<Created<Deal>> {
        let deal = caller
            .write(&state, move |tx, p, now| {
                let mut deal = deals::create(tx, p, body.0, now)?;
                deals::annotate_risk(tx, &p.org_id, std::slice::from_mut(&mut deal), now)?;
                Ok(deal)
            })
            .await?;
        Ok(Created::versioned(deal.version, deal))
    }

    /// Get a deal with its full context
    ///
    /// The deal with its stage, lead and company summaries, the next open task, the last
    /// activity, and counts of open tasks and notes: what an agent needs to act, in one call.
    #[oai(path = "/deals/:id", method = "get", operation_id = "get_deal")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
    ) -> ApiResult<One<DealContext>> {
        let now = state.clock.now_ms();
        let ctx = caller
            .lookup(&state, move |c, org_id| {
                deals::context(c, org_id, &id.0, now)
            })
            .await?;
        Ok(One::versioned(ctx.deal.version, ctx))
    }

    /// Update a deal
    ///
    /// Scope `write`. Absent fields stay, `null` clears. The stage changes only through
    /// `POST /deals/{id}/move`. Send `If-Match` to avoid overwriting a newer version (412).
    /// Emits `deal.updated` with the old values of the changed fields.
    #[oai(path = "/deals/:id", method = "patch", operation_id = "update_deal")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        body: JsonBody<DealPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Deal>> {
        let expected = IfMatch::value(if_match.0);
        let deal = caller
            .write(&state, move |tx, p, now| {
                let mut deal = deals::update(tx, p, &id.0, body.0, expected, now)?;
                deals::annotate_risk(tx, &p.org_id, std::slice::from_mut(&mut deal), now)?;
                Ok(deal)
            })
            .await?;
        Ok(One::versioned(deal.version, deal))
    }

    /// Delete a deal
    ///
    /// Scope `write`. Its tasks and notes go with it (each with its own `deleted` event), as do
    /// its activities and stage history; a lead converted into it keeps status `converted`.
    /// Emits `deal.deleted`; returns the deleted deal.
    #[oai(path = "/deals/:id", method = "delete", operation_id = "delete_deal")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
    ) -> ApiResult<One<Deal>> {
        let deal = caller
            .write(&state, move |tx, p, now| deals::delete(tx, p, &id.0, now))
            .await?;
        Ok(One::new(deal))
    }

    /// Move a deal to another stage
    ///
    /// Scope `write`. By `stage_id` or by `stage` name, within the deal's own pipeline (a
    /// stage of another pipeline is 422). Entering a won or lost stage sets `status` and
    /// `closed_at` (and `lost_reason` for a loss); leaving one reopens the deal. Records a
    /// history row and a `stage_changed` activity, and emits `deal.updated`,
    /// `deal.stage_changed` and `deal.won` or `deal.lost`. Moving to the current stage changes
    /// nothing. Send `If-Match` so that a deal someone else changed meanwhile is not moved (412).
    #[oai(path = "/deals/:id/move", method = "post", operation_id = "move_deal")]
    async fn move_deal(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        body: JsonBody<MoveDeal>,
        /// The version this move is based on, as the `ETag` gave it (`"3"`): if the deal has changed since, the answer is 412 and it does not move. Without it the move applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Deal>> {
        let expected = IfMatch::value(if_match.0);
        let deal = caller
            .write(&state, move |tx, p, now| {
                let mut deal = deals::move_to(tx, p, &id.0, body.0, expected, now)?;
                deals::annotate_risk(tx, &p.org_id, std::slice::from_mut(&mut deal), now)?;
                Ok(deal)
            })
            .await?;
        Ok(One::versioned(deal.version, deal))
    }

    /// Get a deal's stage history
    ///
    /// Every stage the deal entered, oldest first, with who moved it and how long it had
    /// spent in the stage it left.
    #[oai(
        path = "/deals/:id/history",
        method = "get",
        operation_id = "get_deal_history"
    )]
    async fn history(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
    ) -> ApiResult<Page<StageChange>> {
        let items = caller
            .read(&state, move |c, org_id| deals::history(c, org_id, &id.0))
            .await?;
        Ok(Page::whole(items))
    }
}

/// The list's (and the export's) filters from their query parameters.
fn deal_filter(
    (stage_id, stage, status, pipeline_id): (
        Option<String>,
        Option<String>,
        Option<Shaped<DealStatuses>>,
        Option<String>,
    ),
    (owner_id, lead_id, company_id, tag): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    (value_min, value_max): (Option<f64>, Option<f64>),
    (close_after, close_before): (Option<Shaped<CalendarDate>>, Option<Shaped<CalendarDate>>),
    (created_after, created_before, updated_since): (
        Option<Timestamp>,
        Option<Timestamp>,
        Option<Timestamp>,
    ),
    q: Option<String>,
) -> DealFilter {
    DealFilter {
        stage_id,
        stage,
        status: status.map(String::from),
        pipeline_id,
        owner_id,
        lead_id,
        company_id,
        tag,
        value_min,
        value_max,
        expected_close_after: close_after.map(String::from),
        expected_close_before: close_before.map(String::from),
        created_after: created_after.map(|t| t.0),
        created_before: created_before.map(|t| t.0),
        updated_since: updated_since.map(|t| t.0),
        q,
    }
}
