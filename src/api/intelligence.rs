//! Agent intelligence: deal risk, at-risk deals, agent memory and buying signals. Every answer
//! is computed by deterministic rules in the server, with the factors that made it.

use crate::api::params::{
    paging, MemoryKinds, PageNumber, PerPage, ScoreBound, Shaped, SignalSort, SignalTypes,
    SortParam,
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
use crate::domain::agenda::{self, Agenda};
use crate::domain::auth::Scope;
use crate::domain::intelligence::{self, AtRiskDeal, DealIntelligence};
use crate::domain::memory::{self, MemoryEntry, MemoryFilter, NewMemory};
use crate::domain::signals::{self, Signal, SignalFilter};
use crate::rules::deal_risk;
use crate::state::AppState;

/// Intelligence.
pub struct IntelligenceApi;

#[OpenApi(tag = "ApiTags::Intelligence")]
impl IntelligenceApi {
    /// Get the agenda: a day's work in one call
    ///
    /// For the organization, or for one owner (`owner_id`: the signals on their deals and
    /// leads, their deals, the tasks assigned to them, the email on their deals and leads): open
    /// buying signals scored at least `score_min` (default 70), highest first; open deals at
    /// risk at least `score_min`, riskiest first, each with its intelligence and suggested
    /// action; open tasks overdue, and due from now to the end of today in the organization's
    /// time zone (`today`); inbound email of the last 30 days with no reply after it in its
    /// thread, oldest first. Up to 25 of each; `totals` counts them all.
    #[oai(path = "/agenda", method = "get", operation_id = "get_agenda")]
    async fn agenda(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Only what this user owns or is assigned (`usr_...`).
        owner_id: Query<Option<String>>,
        /// The lowest signal score and deal risk listed, 0 to 100 (default 70).
        score_min: Query<Option<ScoreBound>>,
    ) -> ApiResult<One<Agenda>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let now = state.clock.now_ms();
        let min = score_min.0.map_or(deal_risk::HIGH_FROM, |s| s.0);
        let agenda = state
            .db
            .scan(move |c| agenda::agenda(c, &org_id, owner_id.0.as_deref(), min, now))
            .await?;
        Ok(One::new(agenda))
    }

    /// List deals at risk
    ///
    /// Open deals whose risk is at least `score_min` (default 70, where `high` begins),
    /// riskiest first, each with its full intelligence (see `GET /deals/{id}/intelligence`
    /// for the rules and the levels) and the deal in brief (`deal`: title, value, currency,
    /// stage, owner, lead and company), so acting on one needs no other call.
    #[oai(
        path = "/deals/at-risk",
        method = "get",
        operation_id = "list_at_risk_deals"
    )]
    async fn at_risk(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The lowest risk score listed, 0 to 100 (default 70: `high` and `critical`).
        score_min: Query<Option<ScoreBound>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<AtRiskDeal>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let paging = paging(page.0, per_page.0)?;
        let now = state.clock.now_ms();
        let min = score_min.0.map_or(deal_risk::HIGH_FROM, |s| s.0);
        Ok(Page(
            state
                .db
                .scan(move |c| intelligence::at_risk(c, &org_id, None, min, paging, now))
                .await?,
        ))
    }

    /// Get a deal's risk and what to do about it
    ///
    /// Computed now, by deterministic rules (no model calls). `risk_score` (0–100) is the sum
    /// of `factors`: stage_rotting +20 (days in stage ≥ the stage's rotting days; +30 at twice
    /// that), activity_gap +20/+30/+40 (7/14/30 days without activity), overdue_tasks +15 for
    /// one and +5 per more (at most 25), no_next_step +10 (no open task), close_date_passed
    /// +15, high_value_stalling +15 (value ≥ 2× the average open deal and stalling),
    /// recent_reply −15 and recent_open −5 (within 7 days); a `cap` factor keeps the sum in
    /// 0–100. Levels: low < 30 ≤ medium < 70 ≤ high < 85 ≤ critical; won and lost deals are
    /// `none`. `suggested_action` names the one concrete next step.
    #[oai(
        path = "/deals/:id/intelligence",
        method = "get",
        operation_id = "get_deal_intelligence"
    )]
    async fn intelligence(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
    ) -> ApiResult<One<DealIntelligence>> {
        let now = state.clock.now_ms();
        Ok(One::new(
            caller
                .read(&state, move |c, org_id| {
                    intelligence::for_deal(c, org_id, &id.0, now)
                })
                .await?,
        ))
    }

    /// Read a deal's agent memory
    ///
    /// Entries newest first. Filters: `tag` (any of, comma separated), `kind` (any of fact,
    /// preference, objection, next_step, summary, other), `q` (text in the content).
    #[oai(
        path = "/deals/:id/memory",
        method = "get",
        operation_id = "list_deal_memory"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn memory(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        /// Only entries carrying one of these tags (comma separated).
        tag: Query<Option<String>>,
        /// Only entries of these kinds: fact, preference, objection, next_step, summary, other (comma separated).
        kind: Query<Option<Shaped<MemoryKinds>>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<MemoryEntry>> {
        let paging = paging(page.0, per_page.0)?;
        let f = MemoryFilter {
            tag: tag.0,
            kind: kind.0.map(String::from),
            q: q.0,
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    memory::list(c, org_id, &id.0, &f, paging)
                })
                .await?,
        ))
    }

    /// Write to a deal's agent memory
    ///
    /// Scope `write`. What an agent (or person) learned: `content` (up to 10,000 characters),
    /// `tags`, `kind` (default fact), `source`, `confidence` (0–1). The creating credential is
    /// recorded. Emits `memory.created`.
    #[oai(
        path = "/deals/:id/memory",
        method = "post",
        operation_id = "create_deal_memory"
    )]
    async fn remember(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        body: JsonBody<NewMemory>,
    ) -> ApiResult<Created<MemoryEntry>> {
        Ok(Created::new(
            caller
                .write(&state, move |tx, p, now| {
                    memory::create(tx, p, &id.0, body.0, now)
                })
                .await?,
        ))
    }

    /// Delete a memory entry
    ///
    /// Scope `write`. Emits `memory.deleted`; returns the deleted entry.
    #[oai(
        path = "/deals/:id/memory/:memory_id",
        method = "delete",
        operation_id = "delete_deal_memory"
    )]
    async fn forget(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        /// The memory's id (`mem_...`).
        memory_id: Path<String>,
    ) -> ApiResult<One<MemoryEntry>> {
        Ok(One::new(
            caller
                .write(&state, move |tx, p, now| {
                    memory::delete(tx, p, &id.0, &memory_id.0, now)
                })
                .await?,
        ))
    }

    /// List buying signals
    ///
    /// Open signals, strongest first. Types and scores: email_replied 90, high_engagement 85
    /// (3+ opens and replies in 7 days), close_date_passed 80, overdue_followup 75,
    /// stage_stalled 70 (in stage for its rotting days), activity_gap 65 (14 days without
    /// activity), email_opened 60. Opens and replies raise theirs at once; the time-based ones
    /// come from a sweep every minute. One signal per cause, never duplicated; it resolves when
    /// its cause does. Filters: `score_min`, `type`, `deal_id`, `lead_id` (any of),
    /// `include_dismissed`. Sort: `score`, `detected_at`; default `-score`.
    #[oai(path = "/signals", method = "get", operation_id = "list_signals")]
    #[allow(clippy::too_many_arguments)]
    async fn signals(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Only signals scored at least this, 0 to 100.
        score_min: Query<Option<ScoreBound>>,
        /// Only signals of these types (any of, comma separated).
        #[oai(name = "type")]
        signal_type: Query<Option<Shaped<SignalTypes>>>,
        /// Only signals about these deals (`deal_...`; any of, comma separated).
        deal_id: Query<Option<String>>,
        /// Only signals about these leads (`lead_...`; any of, comma separated).
        lead_id: Query<Option<String>>,
        /// Also list dismissed signals (default false).
        include_dismissed: Query<Option<bool>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<SignalSort>>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<Signal>> {
        let paging = paging(page.0, per_page.0)?;
        let f = SignalFilter {
            score_min: score_min.0.map(|s| s.0),
            signal_type: signal_type.0.map(String::from),
            deal_id: deal_id.0,
            lead_id: lead_id.0,
            include_dismissed: include_dismissed.0.unwrap_or(false),
            owner_id: None,
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    signals::list(c, org_id, &f, sort.0.as_deref(), paging)
                })
                .await?,
        ))
    }

    /// Get a signal
    ///
    /// With its evidence: the ids of the activities, tasks or deal behind it.
    #[oai(path = "/signals/:id", method = "get", operation_id = "get_signal")]
    async fn signal(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The signal's id (`sig_...`).
        id: Path<String>,
    ) -> ApiResult<One<Signal>> {
        Ok(One::new(
            caller
                .lookup(&state, move |c, org_id| signals::get(c, org_id, &id.0))
                .await?,
        ))
    }

    /// Dismiss a signal
    ///
    /// Scope `write`. It leaves the open list and is not raised again while its cause lasts.
    /// Dismissing twice changes nothing; a resolved signal is 409.
    #[oai(
        path = "/signals/:id/dismiss",
        method = "post",
        operation_id = "dismiss_signal"
    )]
    async fn dismiss(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The signal's id (`sig_...`).
        id: Path<String>,
    ) -> ApiResult<One<Signal>> {
        Ok(One::new(
            caller
                .write(&state, move |tx, p, now| {
                    signals::dismiss(tx, &p.org_id, &id.0, now)
                })
                .await?,
        ))
    }
}
