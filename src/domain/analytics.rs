//! Analytics and team performance: sums over the CRM, computed on read.
//!
//! Money is in major units of the organization's currency; deals in other currencies are left
//! out of sums (and counted in `other_currency_deals`). Named periods (today, this week, month,
//! quarter, fiscal year) are cut in the organization's time zone: see [`Calendar`].

use crate::db::CachedRow;
use crate::domain::nullable::Nullable;
use std::collections::HashMap;

use crate::db::Tx;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Span;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection};

use super::error::{DomainError, DomainResult, Issues};
use super::intelligence;
use super::leads::LeadStatus;
use super::listing::Paging;
use super::pipelines::StageKind;
use super::terms::{Currency, Term};
use super::{orgs, pipelines, validate};
use crate::clock::{Millis, DAY_MS};
use crate::timefmt::Timestamp;

/// A time window `[from, to)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, inclusive.
    pub from: Millis,
    /// End, exclusive.
    pub to: Millis,
}

impl Window {
    /// Everything.
    pub const ALL: Window = Window {
        from: i64::MIN / 2,
        to: i64::MAX / 2,
    };
}

/// A named period, in the organization's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Period {
    /// Today, midnight to midnight.
    Day,
    /// Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
    /// A quarter of the fiscal year (calendar quarters when it starts in January).
    Quarter,
    /// The fiscal year, from the organization's `fiscal_year_start_month`.
    Year,
}

/// A period quotas are set for (a week is too short for a quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// A calendar month.
    Month,
    /// A quarter of the fiscal year.
    Quarter,
    /// The fiscal year.
    Year,
}

impl From<QuotaPeriod> for Period {
    fn from(p: QuotaPeriod) -> Self {
        match p {
            QuotaPeriod::Month => Period::Month,
            QuotaPeriod::Quarter => Period::Quarter,
            QuotaPeriod::Year => Period::Year,
        }
    }
}

/// An organization's calendar: its time zone (from the IANA database, daylight saving time
/// included) and the month its fiscal year starts. Every named period is cut by it, so "this
/// month" for a team in Berlin starts at midnight in Berlin, and a day across a DST change is
/// 23 or 25 hours long.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    fiscal_start: i8,
}

impl Calendar {
    /// UTC, fiscal year from January.
    pub fn utc() -> Self {
        Self {
            tz: TimeZone::UTC,
            fiscal_start: 1,
        }
    }

    /// The calendar of a zone named in the IANA database, fiscal year from `fiscal_start`.
    pub fn new(zone: &str, fiscal_start: i64) -> Option<Self> {
        Some(Self {
            tz: jiff::tz::db().get(zone).ok()?,
            fiscal_start: i8::try_from(fiscal_start)
                .ok()
                .filter(|m| (1..=12).contains(m))?,
        })
    }

    /// The organization's calendar. A zone the database no longer knows (it was checked when
    /// saved) falls back to UTC rather than failing every report.
    pub fn of(conn: &Connection, org_id: &str) -> DomainResult<Self> {
        let org = orgs::get(conn, org_id)?;
        Ok(Self::new(&org.timezone, org.fiscal_year_start_month).unwrap_or_else(Self::utc))
    }

    /// The local date at `at`.
    pub fn date_at(&self, at: Millis) -> Date {
        jiff::Timestamp::from_millisecond(at)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(self.tz.clone())
            .date()
    }

    /// When local day `d` begins (midnight, or the first instant after a DST gap at midnight).
    fn start_of(&self, d: Date) -> Millis {
        d.to_zoned_datetime(self.tz.clone())
            .and_then(|z| z.start_of_day())
            .map_or(0, |z| z.timestamp().as_millisecond())
    }

    /// The period of kind `period` that contains local day `day`.
    pub fn period_of(&self, period: Period, day: Date) -> Window {
        let months = |d: Date, n: i64| d.checked_add(Span::new().months(n)).unwrap_or(d);
        let (start, end) = match period {
            Period::Day => (day, day.checked_add(Span::new().days(1)).unwrap_or(day)),
            Period::Week => {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                let start = day.checked_add(Span::new().days(-back)).unwrap_or(day);
                (
                    start,
                    start.checked_add(Span::new().days(7)).unwrap_or(start),
                )
            }
            Period::Month => {
                let start = day.first_of_month();
                (start, months(start, 1))
            }
            Period::Quarter | Period::Year => {
                let into_year = i64::from((day.month() - self.fiscal_start).rem_euclid(12));
                let year_start = months(day.first_of_month(), -into_year);
                if period == Period::Year {
                    (year_start, months(year_start, 12))
                } else {
                    let start = months(year_start, into_year / 3 * 3);
                    (start, months(start, 3))
                }
            }
        };
        Window {
            from: self.start_of(start),
            to: self.start_of(end),
        }
    }

    /// The period of kind `period` that contains the instant `at`.
    pub fn period(&self, period: Period, at: Millis) -> Window {
        self.period_of(period, self.date_at(at))
    }
}

/// The window `period` gives (or all time) narrowed by `from`/`to`. Every bound given applies,
/// like any filter: a `to` at or before the `from` is an empty window, whose figures are all
/// zero.
pub fn window(period: Option<Window>, from: Option<Millis>, to: Option<Millis>) -> Window {
    let base = period.unwrap_or(Window::ALL);
    let from = from.map_or(base.from, |f| f.max(base.from));
    let to = to.map_or(base.to, |t| t.min(base.to)).max(from);
    Window { from, to }
}

/// Deals and value in one stage.
#[derive(Debug, Clone, Object)]
pub struct StageTotals {
    /// The stage.
    pub stage_id: String,
    /// Its name.
    pub name: String,
    /// Its pipeline.
    pub pipeline_id: String,
    /// Its place on the board.
    pub position: i64,
    /// Deals in it now.
    pub count: i64,
    /// Their value.
    pub value: f64,
    /// Their value times the stage's probability.
    pub weighted_value: f64,
}

/// Leads with one status.
#[derive(Debug, Clone, Object)]
pub struct StatusCount {
    /// The status.
    pub status: LeadStatus,
    /// How many leads have it.
    pub count: i64,
}

/// The pipeline at a glance.
#[derive(Debug, Clone, Object)]
pub struct Overview {
    /// The organization's currency; every amount is in it.
    pub currency: Term<Currency>,
    /// Start of the period the created and closed figures cover (absent: all time).
    #[oai(nullable)]
    pub from: Nullable<Timestamp>,
    /// End of that period.
    #[oai(nullable)]
    pub to: Nullable<Timestamp>,
    /// Deals created in the period.
    pub total_deals: i64,
    /// Deals open now.
    pub open_deals: i64,
    /// Deals won in the period.
    pub won_deals: i64,
    /// Deals lost in the period.
    pub lost_deals: i64,
    /// Value of the open deals.
    pub pipeline_value: f64,
    /// Open value weighted by stage probability.
    pub weighted_pipeline_value: f64,
    /// Value won in the period.
    pub won_value: f64,
    /// won / (won + lost) in the period, 0–1; null with no closed deals.
    #[oai(nullable)]
    pub win_rate: Nullable<f64>,
    /// Average value of the deals won in the period.
    #[oai(nullable)]
    pub average_deal_size: Nullable<f64>,
    /// Average days from creation to won, for deals won in the period.
    #[oai(nullable)]
    pub average_sales_cycle_days: Nullable<f64>,
    /// Open deals by stage, in board order.
    pub by_stage: Vec<StageTotals>,
    /// Leads by status.
    pub leads_by_status: Vec<StatusCount>,
    /// Open deals at risk now: `high` or `critical` (risk 70 or more), as `GET /deals/at-risk`
    /// lists by default.
    pub at_risk_deals: i64,
    /// Deals in another currency than the organization's, left out of the sums.
    pub other_currency_deals: i64,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Computes the overview. `w` bounds the created and closed figures.
pub fn overview(conn: &Connection, org_id: &str, w: Window, now: Millis) -> DomainResult<Overview> {
    let currency = orgs::get(conn, org_id)?.currency;
    let money = |minor: i64| validate::minor_to_money(minor, &currency);
    let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<i64> {
        conn.cached_row(sql, p, |r| r.get(0))
    };
    let total_deals = count(
        "SELECT COUNT(*) FROM deals WHERE org_id = ?1 AND created_at >= ?2 AND created_at < ?3",
        &[&org_id, &w.from, &w.to],
    )?;
    let open_deals = count(
        "SELECT COUNT(*) FROM deals WHERE org_id = ?1 AND status = 'open'",
        &[&org_id],
    )?;
    let other_currency_deals = count(
        "SELECT COUNT(*) FROM deals WHERE org_id = ?1 AND currency <> ?2",
        &[&org_id, &currency],
    )?;
    let (won_deals, won_minor, cycle_ms): (i64, i64, Option<f64>) = conn.cached_row(
        "SELECT COUNT(*), coalesce(sum(CASE WHEN currency = ?4 THEN value END), 0), avg(closed_at - created_at)
         FROM deals WHERE org_id = ?1 AND status = 'won' AND closed_at >= ?2 AND closed_at < ?3",
        params![org_id, w.from, w.to, currency],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let lost_deals = count(
        "SELECT COUNT(*) FROM deals WHERE org_id = ?1 AND status = 'lost' AND closed_at >= ?2 AND closed_at < ?3",
        &[&org_id, &w.from, &w.to],
    )?;
    let mut by_stage = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT s.id, s.name, s.pipeline_id, s.position, s.probability,
                    COUNT(d.id), coalesce(sum(CASE WHEN d.currency = ?2 THEN d.value END), 0)
             FROM stages s
             JOIN pipelines p ON p.id = s.pipeline_id
             LEFT JOIN deals d ON d.stage_id = s.id AND d.status = 'open'
             WHERE s.org_id = ?1 AND s.kind = 'open'
             GROUP BY s.id ORDER BY p.is_default DESC, p.created_at, s.position",
        )?;
        let mut rows = stmt.query(params![org_id, currency])?;
        while let Some(r) = rows.next()? {
            let probability: i64 = r.get(4)?;
            let value: i64 = r.get(6)?;
            by_stage.push(StageTotals {
                stage_id: r.get(0)?,
                name: r.get(1)?,
                pipeline_id: r.get(2)?,
                position: r.get(3)?,
                count: r.get(5)?,
                value: money(value),
                weighted_value: round2(money(value) * probability as f64 / 100.0),
            });
        }
    }
    let pipeline_value: f64 = by_stage.iter().map(|s| s.value).sum();
    let weighted: f64 = by_stage.iter().map(|s| s.weighted_value).sum();
    let mut leads_by_status = Vec::new();
    for status in [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Converted,
        LeadStatus::Lost,
    ] {
        leads_by_status.push(StatusCount {
            status,
            count: count(
                "SELECT COUNT(*) FROM leads WHERE org_id = ?1 AND status = ?2",
                &[&org_id, &status.as_str()],
            )?,
        });
    }
    let at_risk_deals = intelligence::at_risk(
        conn,
        org_id,
        crate::intelligence::risk::HIGH_FROM,
        Paging {
            page: 1,
            per_page: 1,
        },
        now,
    )?
    .total;
    let closed = won_deals + lost_deals;
    let bounded = |t: Millis| (t > Window::ALL.from && t < Window::ALL.to).then_some(Timestamp(t));
    Ok(Overview {
        from: Nullable(bounded(w.from)),
        to: Nullable(bounded(w.to)),
        total_deals,
        open_deals,
        won_deals,
        lost_deals,
        pipeline_value: round2(pipeline_value),
        weighted_pipeline_value: round2(weighted),
        won_value: money(won_minor),
        win_rate: Nullable((closed > 0).then(|| round2(won_deals as f64 / closed as f64))),
        average_deal_size: Nullable(
            (won_deals > 0).then(|| round2(money(won_minor) / won_deals as f64)),
        ),
        average_sales_cycle_days: Nullable(cycle_ms.map(|ms| round2(ms / DAY_MS as f64))),
        by_stage,
        leads_by_status,
        at_risk_deals,
        other_currency_deals,
        currency,
    })
}

/// One step of the funnel.
#[derive(Debug, Clone, Object)]
pub struct FunnelStep {
    /// The stage.
    pub stage_id: String,
    /// Its name.
    pub name: String,
    /// open, won or lost.
    pub kind: StageKind,
    /// Deals that entered it in the period.
    pub entered: i64,
    /// Of those, how many later reached a stage further along the board (0–1).
    #[oai(nullable)]
    pub conversion_to_next: Nullable<f64>,
    /// Average days a deal stayed before leaving it.
    #[oai(nullable)]
    pub average_days_in_stage: Nullable<f64>,
    /// Deals in it now.
    pub current: i64,
}

/// Stage-to-stage conversion of a pipeline (the default one unless given), from the stage
/// history of deals that entered stages within `w`.
pub fn funnel(
    conn: &Connection,
    org_id: &str,
    pipeline_id: Option<&str>,
    w: Window,
) -> DomainResult<Vec<FunnelStep>> {
    let pid = match pipeline_id {
        Some(p) => pipelines::get(conn, org_id, p)?.id,
        None => pipelines::default_id(conn, org_id)?,
    };
    let stages = pipelines::stages_of(conn, org_id, &pid)?;
    let position: HashMap<&str, i64> = stages.iter().map(|s| (s.id.as_str(), s.position)).collect();
    // Each deal's path through this pipeline's stages, in order.
    let mut paths: HashMap<String, Vec<(String, Millis)>> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT h.deal_id, h.to_stage_id, h.changed_at FROM deal_stage_history h
             JOIN deals d ON d.id = h.deal_id
             WHERE h.org_id = ?1 AND d.pipeline_id = ?2 AND h.to_stage_id IS NOT NULL
             ORDER BY h.deal_id, h.changed_at, h.rowid",
        )?;
        let mut rows = stmt.query(params![org_id, pid])?;
        while let Some(r) = rows.next()? {
            paths
                .entry(r.get(0)?)
                .or_default()
                .push((r.get(1)?, r.get(2)?));
        }
    }
    let mut steps = Vec::new();
    for stage in &stages {
        let (mut entered, mut advanced, mut stays, mut stay_total) = (0i64, 0i64, 0i64, 0i64);
        for path in paths.values() {
            let Some(i) = path
                .iter()
                .position(|(s, at)| s == &stage.id && *at >= w.from && *at < w.to)
            else {
                continue;
            };
            entered += 1;
            if path[i + 1..].iter().any(|(s, _)| {
                position
                    .get(s.as_str())
                    .is_some_and(|p| *p > stage.position)
            }) {
                advanced += 1;
            }
            if let Some((_, left_at)) = path.get(i + 1) {
                stays += 1;
                stay_total += left_at - path[i].1;
            }
        }
        let current = conn.cached_row(
            "SELECT COUNT(*) FROM deals WHERE stage_id = ?1",
            params![stage.id],
            |r| r.get(0),
        )?;
        steps.push(FunnelStep {
            stage_id: stage.id.clone(),
            name: stage.name.clone(),
            kind: stage.kind,
            entered,
            conversion_to_next: Nullable(
                (entered > 0 && stage.kind == pipelines::StageKind::Open)
                    .then(|| round2(advanced as f64 / entered as f64)),
            ),
            average_days_in_stage: Nullable(
                (stays > 0).then(|| round2(stay_total as f64 / stays as f64 / DAY_MS as f64)),
            ),
            current,
        });
    }
    Ok(steps)
}

/// Expected revenue of one month.
#[derive(Debug, Clone, Object)]
pub struct ForecastMonth {
    /// `YYYY-MM`, or `unscheduled` for open deals without an expected close date.
    pub month: String,
    /// Open deals expected to close then.
    pub deals: i64,
    /// Their value.
    pub value: f64,
    /// Their value times their stage's probability.
    pub weighted_value: f64,
}

/// Open deals by expected close month, with weighted value.
pub fn forecast(conn: &Connection, org_id: &str) -> DomainResult<Vec<ForecastMonth>> {
    let currency = orgs::get(conn, org_id)?.currency;
    let mut stmt = conn.prepare(
        "SELECT coalesce(substr(d.expected_close_date, 1, 7), 'unscheduled') AS m, COUNT(*),
                coalesce(sum(d.value), 0), coalesce(sum(d.value * s.probability), 0)
         FROM deals d JOIN stages s ON s.id = d.stage_id
         WHERE d.org_id = ?1 AND d.status = 'open' AND d.currency = ?2
         GROUP BY m ORDER BY m = 'unscheduled', m",
    )?;
    let rows = stmt.query_map(params![org_id, currency], |r| {
        let value: i64 = r.get(2)?;
        let weighted: i64 = r.get(3)?;
        Ok(ForecastMonth {
            month: r.get(0)?,
            deals: r.get(1)?,
            value: validate::minor_to_money(value, &currency),
            weighted_value: round2(validate::minor_to_money(weighted, &currency) / 100.0),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What the leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
#[oai(rename_all = "snake_case")]
pub enum Metric {
    /// Value of deals won.
    #[default]
    RevenueClosed,
    /// Deals won.
    DealsWon,
    /// Value of deals created.
    PipelineGenerated,
    /// Meetings logged.
    MeetingsBooked,
    /// Emails sent.
    EmailsSent,
    /// Calls logged.
    CallsMade,
    /// Replies received per email sent.
    ReplyRate,
}

/// One person's results in a period.
#[derive(Debug, Clone, Object)]
pub struct Performance {
    /// The user.
    pub user_id: String,
    /// Their name.
    pub name: String,
    /// 1 = best by the chosen metric (ties share a rank).
    pub rank: i64,
    /// Value of deals they own that were won in the period.
    pub revenue_closed: f64,
    /// How many.
    pub deals_won: i64,
    /// Value of deals they own that were created in the period.
    pub pipeline_generated: f64,
    /// Meetings they logged.
    pub meetings_booked: i64,
    /// Emails they sent (logged emails and sent messages).
    pub emails_sent: i64,
    /// Calls they logged.
    pub calls_made: i64,
    /// Replies received on their deals per email sent, 0–1; null when none were sent.
    #[oai(nullable)]
    pub reply_rate: Nullable<f64>,
    /// Every activity they logged.
    pub activities: i64,
}

/// Every active user's results in `w`, ranked by `metric`.
pub fn leaderboard(
    conn: &Connection,
    org_id: &str,
    w: Window,
    metric: Metric,
) -> DomainResult<Vec<Performance>> {
    let currency = orgs::get(conn, org_id)?.currency;
    let users: Vec<(String, String)> = {
        let mut stmt = conn.prepare(
            "SELECT id, name FROM users WHERE org_id = ?1 AND active = 1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map(params![org_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::new();
    for (user_id, name) in users {
        let (deals_won, won): (i64, i64) = conn.cached_row(
            "SELECT COUNT(*), coalesce(sum(CASE WHEN currency = ?5 THEN value END), 0) FROM deals
             WHERE org_id = ?1 AND owner_id = ?2 AND status = 'won' AND closed_at >= ?3 AND closed_at < ?4",
            params![org_id, user_id, w.from, w.to, currency],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let generated: i64 = conn.cached_row(
            "SELECT coalesce(sum(CASE WHEN currency = ?5 THEN value END), 0) FROM deals
             WHERE org_id = ?1 AND owner_id = ?2 AND created_at >= ?3 AND created_at < ?4",
            params![org_id, user_id, w.from, w.to, currency],
            |r| r.get(0),
        )?;
        let mut by_type: HashMap<String, i64> = HashMap::new();
        {
            let mut stmt = conn.prepare_cached(
                "SELECT type, COUNT(*) FROM activities
                 WHERE org_id = ?1 AND user_id = ?2 AND occurred_at >= ?3 AND occurred_at < ?4 GROUP BY type",
            )?;
            let mut rows = stmt.query(params![org_id, user_id, w.from, w.to])?;
            while let Some(r) = rows.next()? {
                by_type.insert(r.get(0)?, r.get(1)?);
            }
        }
        let replies: i64 = conn.cached_row(
            "SELECT COUNT(*) FROM activities a JOIN deals d ON d.id = a.deal_id
             WHERE a.org_id = ?1 AND d.owner_id = ?2 AND a.type = 'email_received'
               AND a.occurred_at >= ?3 AND a.occurred_at < ?4",
            params![org_id, user_id, w.from, w.to],
            |r| r.get(0),
        )?;
        let get = |t: &str| by_type.get(t).copied().unwrap_or(0);
        let emails_sent = get("email") + get("email_sent");
        out.push(Performance {
            user_id,
            name,
            rank: 0,
            revenue_closed: validate::minor_to_money(won, &currency),
            deals_won,
            pipeline_generated: validate::minor_to_money(generated, &currency),
            meetings_booked: get("meeting"),
            emails_sent,
            calls_made: get("call"),
            reply_rate: Nullable(
                (emails_sent > 0).then(|| round2(replies as f64 / emails_sent as f64)),
            ),
            activities: [
                "call",
                "email",
                "meeting",
                "sms",
                "linkedin",
                "other",
                "email_sent",
            ]
            .iter()
            .map(|t| get(t))
            .sum(),
        });
    }
    let key = |p: &Performance| -> f64 {
        match metric {
            Metric::RevenueClosed => p.revenue_closed,
            Metric::DealsWon => p.deals_won as f64,
            Metric::PipelineGenerated => p.pipeline_generated,
            Metric::MeetingsBooked => p.meetings_booked as f64,
            Metric::EmailsSent => p.emails_sent as f64,
            Metric::CallsMade => p.calls_made as f64,
            Metric::ReplyRate => p.reply_rate.unwrap_or(-1.0),
        }
    };
    out.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.name.cmp(&b.name)));
    let mut prev: Option<f64> = None;
    let mut rank = 0;
    for (i, p) in out.iter_mut().enumerate() {
        let k = key(p);
        if prev != Some(k) {
            rank = i as i64 + 1;
            prev = Some(k);
        }
        p.rank = rank;
    }
    Ok(out)
}

/// Targets of one user for one period.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct QuotaTargets {
    /// The user.
    pub user_id: String,
    /// Revenue to close (major units of the organization's currency).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    #[oai(nullable)]
    pub revenue: Option<f64>,
    /// Deals to win.
    #[oai(validator(minimum(value = "0")))]
    #[oai(nullable)]
    pub deals: Option<i64>,
    /// Meetings to hold.
    #[oai(validator(minimum(value = "0")))]
    #[oai(nullable)]
    pub meetings: Option<i64>,
    /// Activities to log.
    #[oai(validator(minimum(value = "0")))]
    #[oai(nullable)]
    pub activities: Option<i64>,
}

/// Quotas to set for a period: each listed user's targets are replaced.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct SetQuotas {
    /// month, quarter or year.
    pub period: QuotaPeriod,
    /// Any day in the period (`YYYY-MM-DD`); defaults to the current one.
    #[oai(nullable)]
    pub date: Option<String>,
    /// The targets, one entry per user.
    #[oai(validator(max_items = 1000))]
    pub quotas: Vec<QuotaTargets>,
}

/// How one target stands.
#[derive(Debug, Clone, Object)]
pub struct Attainment {
    /// What was set.
    pub target: f64,
    /// What was done so far.
    pub actual: f64,
    /// actual / target.
    pub attainment: f64,
}

/// One user's quota, with attainment so far.
#[derive(Debug, Clone, Object)]
pub struct QuotaStatus {
    /// The user.
    pub user_id: String,
    /// month, quarter or year.
    pub period: QuotaPeriod,
    /// First day of the period.
    pub period_start: String,
    /// Revenue target and result.
    #[oai(nullable)]
    pub revenue: Nullable<Attainment>,
    /// Deals target and result.
    #[oai(nullable)]
    pub deals: Nullable<Attainment>,
    /// Meetings target and result.
    #[oai(nullable)]
    pub meetings: Nullable<Attainment>,
    /// Activities target and result.
    #[oai(nullable)]
    pub activities: Nullable<Attainment>,
    /// How far through the period we are, 0–1.
    pub period_elapsed: f64,
    /// Where the weakest target stands against the period's pace.
    pub status: Pace,
}

/// Where a quota stands against the period's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Pace {
    /// Every target at or ahead of the pace.
    OnTrack,
    /// The weakest target at 80% of the pace or more.
    AtRisk,
    /// The weakest target below 80% of the pace.
    Behind,
}

/// The quota period containing `date` (a local day, `YYYY-MM-DD`) or today, in the
/// organization's calendar, and its first day as quotas are keyed by it.
fn quota_period(
    conn: &Connection,
    org_id: &str,
    period: QuotaPeriod,
    date: Option<&str>,
    now: Millis,
) -> DomainResult<(Window, String)> {
    let cal = Calendar::of(conn, org_id)?;
    let day = match date {
        Some(d) => d
            .parse::<Date>()
            .map_err(|_| DomainError::invalid("date", "must be a date YYYY-MM-DD"))?,
        None => cal.date_at(now),
    };
    let w = cal.period_of(period.into(), day);
    Ok((w, cal.date_at(w.from).to_string()))
}

fn period_name(p: QuotaPeriod) -> &'static str {
    match p {
        QuotaPeriod::Month => "month",
        QuotaPeriod::Quarter => "quarter",
        QuotaPeriod::Year => "year",
    }
}

/// Sets quotas for a period (upsert per user).
pub fn set_quotas(
    tx: &Tx<'_>,
    org_id: &str,
    input: SetQuotas,
    now: Millis,
) -> DomainResult<Vec<QuotaStatus>> {
    let (_, start) = quota_period(tx, org_id, input.period, input.date.as_deref(), now)?;
    let currency = orgs::get(tx, org_id)?.currency;
    let mut issues = Issues::new();
    for (i, q) in input.quotas.iter().enumerate() {
        validate::active_user(
            tx,
            &mut issues,
            &format!("quotas[{i}].user_id"),
            org_id,
            Some(&q.user_id),
        )?;
    }
    let minors: Vec<Option<i64>> = input
        .quotas
        .iter()
        .enumerate()
        .map(|(i, q)| {
            q.revenue.map(|r| {
                validate::money_to_minor(&mut issues, &format!("quotas[{i}].revenue"), r, &currency)
            })
        })
        .collect();
    issues.finish()?;
    for (q, revenue) in input.quotas.iter().zip(minors) {
        tx.execute(
            "INSERT INTO quotas (org_id, user_id, period, period_start, revenue, deals, meetings, activities, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (org_id, user_id, period, period_start) DO UPDATE SET
                revenue = excluded.revenue, deals = excluded.deals, meetings = excluded.meetings,
                activities = excluded.activities, updated_at = excluded.updated_at",
            params![org_id, q.user_id, period_name(input.period), start, revenue, q.deals, q.meetings, q.activities, now],
        )?;
    }
    quotas(tx, org_id, input.period, input.date.as_deref(), now)
}

/// The quotas of a period with their attainment as of `now`.
pub fn quotas(
    conn: &Connection,
    org_id: &str,
    period: QuotaPeriod,
    date: Option<&str>,
    now: Millis,
) -> DomainResult<Vec<QuotaStatus>> {
    let (w, start) = quota_period(conn, org_id, period, date, now)?;
    let currency = orgs::get(conn, org_id)?.currency;
    let elapsed = ((now - w.from) as f64 / (w.to - w.from) as f64).clamp(0.0, 1.0);
    let board: HashMap<String, Performance> = leaderboard(conn, org_id, w, Metric::RevenueClosed)?
        .into_iter()
        .map(|p| (p.user_id.clone(), p))
        .collect();
    let mut stmt = conn.prepare(
        "SELECT user_id, revenue, deals, meetings, activities FROM quotas
         WHERE org_id = ?1 AND period = ?2 AND period_start = ?3 ORDER BY user_id",
    )?;
    let rows = stmt.query_map(params![org_id, period_name(period), start], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<i64>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (user_id, revenue, deals, meetings, activities) = row?;
        let perf = board.get(&user_id);
        let att = |target: Option<f64>, actual: f64| {
            target.map(|t| Attainment {
                target: t,
                actual,
                attainment: if t > 0.0 { round2(actual / t) } else { 1.0 },
            })
        };
        let revenue = att(
            revenue.map(|r| validate::minor_to_money(r, &currency)),
            perf.map_or(0.0, |p| p.revenue_closed),
        );
        let deals = att(
            deals.map(|d| d as f64),
            perf.map_or(0.0, |p| p.deals_won as f64),
        );
        let meetings = att(
            meetings.map(|d| d as f64),
            perf.map_or(0.0, |p| p.meetings_booked as f64),
        );
        let activities = att(
            activities.map(|d| d as f64),
            perf.map_or(0.0, |p| p.activities as f64),
        );
        let weakest = [&revenue, &deals, &meetings, &activities]
            .iter()
            .filter_map(|a| a.as_ref().map(|a| a.attainment))
            .fold(f64::INFINITY, f64::min);
        let status = if weakest == f64::INFINITY || weakest >= elapsed {
            Pace::OnTrack
        } else if weakest >= 0.8 * elapsed {
            Pace::AtRisk
        } else {
            Pace::Behind
        };
        out.push(QuotaStatus {
            user_id,
            period,
            period_start: start.clone(),
            revenue: Nullable(revenue),
            deals: Nullable(deals),
            meetings: Nullable(meetings),
            activities: Nullable(activities),
            period_elapsed: round2(elapsed),
            status,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(cal: &Calendar, period: Period, at: &str) -> (String, String) {
        let w = cal.period(period, crate::timefmt::parse_rfc3339(at).unwrap());
        (
            crate::timefmt::format_ms(w.from),
            crate::timefmt::format_ms(w.to),
        )
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn periods_are_calendar_periods() {
        let utc = Calendar::utc();
        let at = "2026-11-28T12:00:00Z"; // a Saturday
        assert_eq!(
            cut(&utc, Period::Day, at),
            pair("2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Week, at),
            pair("2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Month, at),
            pair("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Quarter, at),
            pair("2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Year, at),
            pair("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Month, "2026-12-31T23:00:00Z").1,
            "2027-01-01T00:00:00Z"
        );
    }

    /// Periods cut in the organization's zone: Berlin's day and month start at its midnight,
    /// and the days and weeks that hold a DST change are 23 or 25 hours longer or shorter.
    #[test]
    fn periods_follow_the_zone_across_dst() {
        let berlin = Calendar::new("Europe/Berlin", 1).unwrap();
        // 2026-03-29 02:00 CET → 03:00 CEST: a 23-hour day.
        assert_eq!(
            cut(&berlin, Period::Day, "2026-03-29T12:00:00Z"),
            pair("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")
        );
        // 2026-10-25 03:00 CEST → 02:00 CET: a 25-hour day.
        assert_eq!(
            cut(&berlin, Period::Day, "2026-10-25T12:00:00Z"),
            pair("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")
        );
        // 23:30 UTC on 31 October is already 1 November in Berlin.
        assert_eq!(
            cut(&berlin, Period::Month, "2026-10-31T23:30:00Z"),
            pair("2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z")
        );
        // The week holding the spring change is 167 hours.
        let (from, to) = cut(&berlin, Period::Week, "2026-03-27T12:00:00Z");
        let hours = (crate::timefmt::parse_rfc3339(&to).unwrap()
            - crate::timefmt::parse_rfc3339(&from).unwrap())
            / 3_600_000;
        assert_eq!((from.as_str(), hours), ("2026-03-22T23:00:00Z", 167));
        // New York's first quarter ends at its midnight, in EDT.
        let ny = Calendar::new("America/New_York", 1).unwrap();
        assert_eq!(
            cut(&ny, Period::Quarter, "2026-02-10T12:00:00Z"),
            pair("2026-01-01T05:00:00Z", "2026-04-01T04:00:00Z")
        );
        // A zone whose clocks skip midnight itself (Havana, 2026-03-08 00:00 → 01:00): the day
        // starts at 01:00 local.
        let havana = Calendar::new("America/Havana", 1).unwrap();
        assert_eq!(
            cut(&havana, Period::Day, "2026-03-08T12:00:00Z").0,
            "2026-03-08T05:00:00Z"
        );
        assert!(Calendar::new("Mars/Olympus", 1).is_none());
        assert!(Calendar::new("Europe/Berlin", 13).is_none());
    }

    /// Quarters and years follow the fiscal year.
    #[test]
    fn fiscal_quarters_and_years() {
        let april = Calendar::new("UTC", 4).unwrap();
        assert_eq!(
            cut(&april, Period::Year, "2027-02-15T00:00:00Z"),
            pair("2026-04-01T00:00:00Z", "2027-04-01T00:00:00Z")
        );
        assert_eq!(
            cut(&april, Period::Quarter, "2027-02-15T00:00:00Z"),
            pair("2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z")
        );
        assert_eq!(
            cut(&april, Period::Quarter, "2026-05-15T00:00:00Z"),
            pair("2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z")
        );
        let november = Calendar::new("UTC", 11).unwrap();
        assert_eq!(
            cut(&november, Period::Quarter, "2026-12-02T00:00:00Z"),
            pair("2026-11-01T00:00:00Z", "2027-02-01T00:00:00Z")
        );
    }
}
