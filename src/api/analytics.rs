//! `/analytics/*` and `/performance/*`: the pipeline in numbers, and how the team is doing.

use crate::api::params::Choice;
use crate::api::params::{CalendarDate, Shaped};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::{One, Page};
use super::error::ApiResult;
use super::security::Caller;
use super::ApiTags;
use crate::domain::analytics::{
    self, Calendar, ForecastMonth, FunnelStep, Metric, Overview, Performance, Period, QuotaPeriod,
    QuotaStatus, SetQuotas,
};
use crate::domain::auth::Scope;
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Analytics.
pub struct AnalyticsApi;

#[OpenApi(tag = "ApiTags::Analytics")]
impl AnalyticsApi {
    /// Pipeline overview
    ///
    /// Deals created, won and lost in the period (`from`/`to`, or all time), with won value,
    /// win rate (won / closed), average deal size and average sales cycle; the open pipeline
    /// now with its value, weighted value (value × stage probability) and a breakdown by stage;
    /// leads by status; and how many open deals are at risk (risk ≥ 70: `high` or `critical`). Amounts are in the
    /// organization's currency.
    #[oai(
        path = "/analytics/overview",
        method = "get",
        operation_id = "get_analytics_overview"
    )]
    async fn overview(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Start of the period (RFC 3339); with neither bound, all time.
        from: Query<Option<Timestamp>>,
        /// End of the period (RFC 3339), not included.
        to: Query<Option<Timestamp>>,
    ) -> ApiResult<One<Overview>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let now = state.clock.now_ms();
        let w = analytics::window(None, from.0.map(|t| t.0), to.0.map(|t| t.0));
        Ok(One::new(
            state
                .db
                .scan(move |c| analytics::overview(c, &org_id, w, now))
                .await?,
        ))
    }

    /// Stage-to-stage funnel
    ///
    /// For each stage of the pipeline (the default one unless `pipeline_id`), in board order:
    /// how many deals entered it in the period, the share of those that later reached a stage
    /// further along, the average days spent before leaving, and how many are there now.
    #[oai(
        path = "/analytics/funnel",
        method = "get",
        operation_id = "get_analytics_funnel"
    )]
    async fn funnel(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The pipeline (`pip_...`); default the organization's default pipeline.
        pipeline_id: Query<Option<String>>,
        /// Start of the period (RFC 3339); with neither bound, all time.
        from: Query<Option<Timestamp>>,
        /// End of the period (RFC 3339), not included.
        to: Query<Option<Timestamp>>,
    ) -> ApiResult<Page<FunnelStep>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let w = analytics::window(None, from.0.map(|t| t.0), to.0.map(|t| t.0));
        Ok(Page::whole(
            state
                .db
                .scan(move |c| analytics::funnel(c, &org_id, pipeline_id.0.as_deref(), w))
                .await?,
        ))
    }

    /// Revenue forecast
    ///
    /// Open deals by expected close month, with their value and weighted value (value × stage
    /// probability); deals without a date come last as `unscheduled`.
    #[oai(
        path = "/analytics/forecast",
        method = "get",
        operation_id = "get_analytics_forecast"
    )]
    async fn forecast(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
    ) -> ApiResult<Page<ForecastMonth>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        Ok(Page::whole(
            state
                .db
                .scan(move |c| analytics::forecast(c, &org_id))
                .await?,
        ))
    }
}

/// Team performance.
pub struct PerformanceApi;

#[OpenApi(tag = "ApiTags::Performance")]
impl PerformanceApi {
    /// Team leaderboard
    ///
    /// Every active user's revenue closed, deals won, pipeline generated, meetings booked,
    /// emails sent, calls made and reply rate in the period (`period` = day, week, month, quarter
    /// or year, the current one, narrowed by `from`/`to` when given; with only `from`/`to`, that
    /// window; with neither, this month), ranked by `metric` (default revenue_closed; ties share
    /// a rank). A `to` at or before `from` is an empty window: every figure zero. Periods are
    /// cut in the organization's time zone (`timezone`, daylight saving time included), and
    /// quarters and years follow its `fiscal_year_start_month`.
    #[oai(
        path = "/performance/leaderboard",
        method = "get",
        operation_id = "get_leaderboard"
    )]
    async fn leaderboard(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The current day, week, month, quarter or year in the organization's time zone (default month when no `from`/`to` either).
        period: Query<Option<Choice<Period>>>,
        /// Start of the window (RFC 3339); narrows `period` when both are given.
        from: Query<Option<Timestamp>>,
        /// End of the window (RFC 3339), not included.
        to: Query<Option<Timestamp>>,
        /// What the ranking is by (default revenue_closed).
        metric: Query<Option<Choice<Metric>>>,
    ) -> ApiResult<Page<Performance>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let now = state.clock.now_ms();
        let period = period
            .0
            .map(|c| c.0)
            .or((from.0.is_none() && to.0.is_none()).then_some(Period::Month));
        let (from, to) = (from.0.map(|t| t.0), to.0.map(|t| t.0));
        let metric = metric.0.map(|c| c.0).unwrap_or_default();
        Ok(Page::whole(
            state
                .db
                .scan(move |c| {
                    let cal = Calendar::of(c, &org_id)?;
                    let w = analytics::window(period.map(|p| cal.period(p, now)), from, to);
                    analytics::leaderboard(c, &org_id, w, metric)
                })
                .await?,
        ))
    }

    /// Quotas and attainment
    ///
    /// The targets set for the period (`period` month, fiscal quarter or fiscal year, default
    /// month; `date` any day in it, default today, both in the organization's time zone) with each target's result so far and a status: on_track
    /// when every target is at or ahead of the period's pace, at_risk when the weakest is at
    /// 80% of pace or more, behind otherwise.
    #[oai(
        path = "/performance/quotas",
        method = "get",
        operation_id = "get_quotas"
    )]
    async fn quotas(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Month, quarter or year (default month).
        period: Query<Option<Choice<QuotaPeriod>>>,
        /// Any day of the period wanted (default today).
        date: Query<Option<Shaped<CalendarDate>>>,
    ) -> ApiResult<Page<QuotaStatus>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let now = state.clock.now_ms();
        let period = period.0.map_or(QuotaPeriod::Month, |c| c.0);
        Ok(Page::whole(
            state
                .db
                .scan(move |c| analytics::quotas(c, &org_id, period, date.0.as_deref(), now))
                .await?,
        ))
    }

    /// Set quotas
    ///
    /// Scope `admin`. Replaces the targets (revenue, deals, meetings, activities) of each listed
    /// user for the period; returns the period's quotas with attainment.
    #[oai(
        path = "/performance/quotas",
        method = "put",
        operation_id = "set_quotas"
    )]
    async fn set_quotas(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<SetQuotas>,
    ) -> ApiResult<Page<QuotaStatus>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let now = state.clock.now_ms();
        Ok(Page::whole(
            state
                .db
                .write(move |tx| analytics::set_quotas(tx, &org_id, body.0, now))
                .await?,
        ))
    }
}
