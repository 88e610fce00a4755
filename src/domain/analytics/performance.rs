//! Team performance: the leaderboard, and quotas with their attainment and pace.

use super::*;
use crate::shape::{CalendarDate, Shaped};

/// What the leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Object, serde::Serialize)]
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
    pub reply_rate: Nullable<f64>,
    /// Every activity they logged.
    pub activities: i64,
}

/// The activity types a person's `activities` count: what a person does (not what the server
/// records, such as an email opened or received).
const COUNTED_TYPES: [&str; 7] = [
    "call",
    "email",
    "meeting",
    "sms",
    "linkedin",
    "other",
    "email_sent",
];

/// Every active user's results in `w`, ranked by `metric`.
///
/// Remembered until the next commit ([`crate::db::memo`]): it sums every member's deals and
/// activities.
pub fn leaderboard(
    conn: &Connection,
    org_id: &str,
    w: Window,
    metric: Metric,
) -> DomainResult<Vec<Performance>> {
    let key = format!("leaderboard\0{org_id}\0{w:?}\0{metric:?}");
    memo::remember(conn, &key, None, || {
        leaderboard_now(conn, org_id, w, metric)
    })
}

fn leaderboard_now(
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
    // What is counted per person in one pass over the window (deals won, replies) rather than
    // once per person: those scans cannot seek to one person's rows.
    let mut won: HashMap<String, (i64, i64)> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT owner_id, COUNT(*), coalesce(sum(CASE WHEN currency = ?4 THEN value END), 0)
             FROM deals WHERE org_id = ?1 AND status = 'won' AND closed_at >= ?2 AND closed_at < ?3
             GROUP BY owner_id",
        )?;
        let mut rows = stmt.query(params![org_id, w.from, w.to, currency])?;
        while let Some(r) = rows.next()? {
            won.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
        }
    }
    let mut replies: HashMap<String, i64> = HashMap::new();
    {
        // A reply on a deal counts for the deal's owner; one to a campaign (no deal) for the
        // lead's, else for whom the answered email went out.
        let mut stmt = conn.prepare_cached(
            "SELECT coalesce(d.owner_id, l.owner_id, a.user_id) AS who, COUNT(*)
             FROM activities a LEFT JOIN deals d ON d.id = a.deal_id
               LEFT JOIN leads l ON l.id = a.lead_id
             WHERE a.org_id = ?1 AND a.type = 'email_received'
               AND a.occurred_at >= ?2 AND a.occurred_at < ?3
             GROUP BY who",
        )?;
        let mut rows = stmt.query(params![org_id, w.from, w.to])?;
        while let Some(r) = rows.next()? {
            if let Some(who) = r.get::<_, Option<String>>(0)? {
                replies.insert(who, r.get(1)?);
            }
        }
    }
    let mut out = Vec::new();
    for (user_id, name) in users {
        let (deals_won, won) = won.get(&user_id).copied().unwrap_or((0, 0));
        let generated: i64 = conn.cached_row(
            "SELECT coalesce(sum(CASE WHEN currency = ?5 THEN value END), 0) FROM deals
             WHERE org_id = ?1 AND owner_id = ?2 AND created_at >= ?3 AND created_at < ?4",
            params![org_id, user_id, w.from, w.to, currency],
            |r| r.get(0),
        )?;
        let mut by_type: HashMap<String, i64> = HashMap::new();
        {
            // Only the types counted, named: the index then seeks each type's window instead
            // of reading every activity the person ever logged.
            let mut stmt = conn.prepare_cached(
                "SELECT type, COUNT(*) FROM activities
                 WHERE org_id = ?1 AND user_id = ?2 AND occurred_at >= ?3 AND occurred_at < ?4
                   AND type IN (?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 GROUP BY type",
            )?;
            let args: [&dyn rusqlite::ToSql; 4] = [&org_id, &user_id, &w.from, &w.to];
            let types = COUNTED_TYPES.iter().map(|t| t as &dyn rusqlite::ToSql);
            let mut rows = stmt.query(rusqlite::params_from_iter(args.into_iter().chain(types)))?;
            while let Some(r) = rows.next()? {
                by_type.insert(r.get(0)?, r.get(1)?);
            }
        }
        let replies = replies.get(&user_id).copied().unwrap_or(0);
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
            activities: COUNTED_TYPES.iter().map(|t| get(t)).sum(),
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
    pub date: Option<Shaped<CalendarDate>>,
    /// The targets, one entry per user.
    #[oai(validator(max_items = 1000))]
    pub quotas: Vec<QuotaTargets>,
}

/// How one target stands.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Attainment {
    /// What was set.
    pub target: f64,
    /// What was done so far.
    pub actual: f64,
    /// actual / target.
    pub attainment: f64,
}

/// One user's quota, with attainment so far.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct QuotaStatus {
    /// The user.
    pub user_id: String,
    /// month, quarter or year.
    pub period: QuotaPeriod,
    /// First day of the period.
    pub period_start: String,
    /// Revenue target and result.
    pub revenue: Nullable<Attainment>,
    /// Deals target and result.
    pub deals: Nullable<Attainment>,
    /// Meetings target and result.
    pub meetings: Nullable<Attainment>,
    /// Activities target and result.
    pub activities: Nullable<Attainment>,
    /// How far through the period we are, 0–1.
    pub period_elapsed: f64,
    /// Where the weakest target stands against the period's pace.
    pub status: Pace,
}

/// Where a quota stands against the period's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
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
pub(super) fn quota_period(
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

pub(super) fn period_name(p: QuotaPeriod) -> &'static str {
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
