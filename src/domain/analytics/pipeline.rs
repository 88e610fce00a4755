//! The pipeline's figures: the overview, the stage-to-stage funnel and the forecast.

use super::*;
use crate::db::held;
use crate::db::touched::{Change, Table, Touch};

/// Deals and value in one stage.
#[derive(Debug, Clone, Object, serde::Serialize)]
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
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct StatusCount {
    /// The status.
    pub status: LeadStatus,
    /// How many leads have it.
    pub count: i64,
}

/// The pipeline at a glance.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Overview {
    /// The organization's currency; every amount is in it.
    pub currency: Term<Currency>,
    /// Start of the period the created and closed figures cover (absent: all time).
    pub from: Nullable<Timestamp>,
    /// End of that period.
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
    pub win_rate: Nullable<f64>,
    /// Average value of the deals won in the period.
    pub average_deal_size: Nullable<f64>,
    /// Average days from creation to won, for deals won in the period.
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
    /// Emails accepted by the mail server in the period, from deals and campaigns.
    pub emails_sent: i64,
    /// Of those, emails campaigns sent.
    pub campaign_emails_sent: i64,
    /// Inbound emails received in the period (replies and new mail, not delivery reports'
    /// effects).
    pub emails_received: i64,
}

/// Computes the overview. `w` bounds the created and closed figures.
///
/// Remembered until the next commit ([`crate::db::memo`]): it sums the whole organization,
/// and for at most a minute, as its at-risk count ages with the clock.
pub fn overview(conn: &Connection, org_id: &str, w: Window, now: Millis) -> DomainResult<Overview> {
    let key = format!("overview\0{org_id}\0{w:?}");
    memo::remember(conn, &key, Some(now), || overview_now(conn, org_id, w, now))
}

fn overview_now(conn: &Connection, org_id: &str, w: Window, now: Millis) -> DomainResult<Overview> {
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
    // Per stage and currency, the totals the deal triggers keep (migration 18) count every deal
    // once, whatever its status: no scan of the deals.
    let other_currency_deals = count(
        "SELECT coalesce(sum(t.deals), 0) FROM stages s JOIN stage_totals t ON t.stage_id = s.id
         WHERE s.org_id = ?1 AND t.currency <> ?2",
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
                    coalesce(sum(t.deals), 0),
                    coalesce(sum(CASE WHEN t.currency = ?2 THEN t.value END), 0)
             FROM stages s
             JOIN pipelines p ON p.id = s.pipeline_id
             LEFT JOIN stage_totals t ON t.stage_id = s.id
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
    // One pass over the organization's leads in the status index, not one per status.
    let mut by_status: HashMap<String, i64> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT status, COUNT(*) FROM leads WHERE org_id = ?1 GROUP BY status",
        )?;
        let mut rows = stmt.query(params![org_id])?;
        while let Some(r) = rows.next()? {
            by_status.insert(r.get(0)?, r.get(1)?);
        }
    }
    let leads_by_status = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Converted,
        LeadStatus::Lost,
    ]
    .into_iter()
    .map(|status| StatusCount {
        status,
        count: by_status.get(status.as_str()).copied().unwrap_or(0),
    })
    .collect();
    let (emails_sent, campaign_emails_sent): (i64, i64) = conn.cached_row(
        "SELECT COUNT(*), coalesce(sum(enrollment_id IS NOT NULL), 0) FROM emails
         WHERE org_id = ?1 AND direction = 'outbound' AND status = 'sent'
           AND sent_at >= ?2 AND sent_at < ?3",
        params![org_id, w.from, w.to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let emails_received = count(
        "SELECT COUNT(*) FROM emails WHERE org_id = ?1 AND direction = 'inbound'
           AND created_at >= ?2 AND created_at < ?3",
        &[&org_id, &w.from, &w.to],
    )?;
    let at_risk_deals = intelligence::at_risk(
        conn,
        org_id,
        None,
        crate::rules::deal_risk::HIGH_FROM,
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
        emails_sent,
        campaign_emails_sent,
        emails_received,
        currency,
    })
}

/// One step of the funnel.
#[derive(Debug, Clone, Object, serde::Serialize)]
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
    pub conversion_to_next: Nullable<f64>,
    /// Average days a deal stayed before leaving it.
    pub average_days_in_stage: Nullable<f64>,
    /// Deals in it now.
    pub current: i64,
}

/// Stage-to-stage conversion of a pipeline (the default one unless given), from the stage
/// history of deals that entered its stages within `w` (a deal since moved to another pipeline
/// counts where it went while it was in this one).
///
/// Remembered until the next commit ([`crate::db::memo`]): it reads every deal's path.
pub fn funnel(
    conn: &Connection,
    org_id: &str,
    pipeline_id: Option<&str>,
    w: Window,
) -> DomainResult<Vec<FunnelStep>> {
    let key = format!("funnel\0{org_id}\0{pipeline_id:?}\0{w:?}");
    memo::remember(conn, &key, None, || {
        funnel_now(conn, org_id, pipeline_id, w)
    })
}

fn funnel_now(
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
    let order: Vec<(&str, i64)> = stages.iter().map(|s| (s.id.as_str(), s.position)).collect();
    let count = || count_paths(conn, org_id, &stages, w);
    // Every deal's path, counted once and then held between commits: a commit's new stage
    // changes are counted in and out for the deals they belong to.
    let held = held::with_held(
        conn,
        &format!("funnel\0{org_id}\0{pid}\0{w:?}"),
        || {
            Ok(HeldFunnel {
                order: order.iter().map(|(id, p)| (id.to_string(), *p)).collect(),
                tallies: count()?,
            })
        },
        |held: &mut HeldFunnel, written| held.apply(conn, &stages, &order, w, written),
        |held| held.tallies.clone(),
    )?;
    let tallies = match held {
        Some(tallies) => tallies,
        None => count()?,
    };
    let mut steps = Vec::with_capacity(stages.len());
    for (stage, t) in stages.iter().zip(tallies) {
        let current = conn.cached_row(
            "SELECT coalesce(sum(deals), 0) FROM stage_totals WHERE stage_id = ?1",
            params![stage.id],
            |r| r.get(0),
        )?;
        steps.push(FunnelStep {
            stage_id: stage.id.clone(),
            name: stage.name.clone(),
            kind: stage.kind,
            entered: t.entered,
            conversion_to_next: Nullable(
                (t.entered > 0 && stage.kind == pipelines::StageKind::Open)
                    .then(|| round2(t.advanced as f64 / t.entered as f64)),
            ),
            average_days_in_stage: Nullable(
                (t.stays > 0).then(|| round2(t.stay_total as f64 / t.stays as f64 / DAY_MS as f64)),
            ),
            current,
        });
    }
    Ok(steps)
}

/// The stages' indexes by id.
fn stage_index(stages: &[pipelines::Stage]) -> HashMap<&str, usize> {
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect()
}

/// Counts every deal's path through `stages` (see [`tally`]).
fn count_paths(
    conn: &Connection,
    org_id: &str,
    stages: &[pipelines::Stage],
    w: Window,
) -> DomainResult<Vec<Tally>> {
    let index = stage_index(stages);
    let mut tallies = vec![Tally::default(); stages.len()];
    // Each deal's path through the stages, one deal at a time (the history's index is in deal
    // order): no deal's path is kept past its last row, and no stage id is copied.
    let mut path: Vec<(Option<usize>, Millis)> = Vec::new();
    let mut seen = Vec::with_capacity(stages.len());
    let mut deal: Vec<u8> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT deal_id, to_stage_id, changed_at FROM deal_stage_history
         WHERE org_id = ?1 AND to_stage_id IS NOT NULL
         ORDER BY deal_id, changed_at, rowid",
    )?;
    let mut rows = stmt.query(params![org_id])?;
    while let Some(r) = rows.next()? {
        let id = r.get_ref(0)?.as_bytes()?;
        if id != deal.as_slice() {
            tally(&path, stages, w, &mut tallies, &mut seen);
            path.clear();
            deal.clear();
            deal.extend_from_slice(id);
        }
        let stage = index.get(r.get_ref(1)?.as_str()?).copied();
        path.push((stage, r.get(2)?));
    }
    tally(&path, stages, w, &mut tallies, &mut seen);
    Ok(tallies)
}

/// A funnel's counts, held between commits ([`held`]), with the stages (id, position) they were
/// counted against.
struct HeldFunnel {
    order: Vec<(String, i64)>,
    tallies: Vec<Tally>,
}

impl HeldFunnel {
    /// Counts in the stage changes `written` since: each deal they belong to is counted out
    /// with its path before them and in with its path now. Anything else (a stage added, moved
    /// or removed, a stage change edited or deleted) asks for every path to be counted again.
    fn apply(
        &mut self,
        conn: &Connection,
        stages: &[pipelines::Stage],
        order: &[(&str, i64)],
        w: Window,
        written: &[Touch],
    ) -> DomainResult<bool> {
        if !self
            .order
            .iter()
            .map(|(id, p)| (id.as_str(), *p))
            .eq(order.iter().copied())
        {
            return Ok(false);
        }
        let mut new_rows = std::collections::HashSet::new();
        for t in written.iter().filter(|t| t.table == Table::StageHistory) {
            if t.change != Change::Inserted {
                return Ok(false);
            }
            new_rows.insert(t.rowid);
        }
        let mut deals = std::collections::BTreeSet::new();
        {
            let mut stmt =
                conn.prepare_cached("SELECT deal_id FROM deal_stage_history WHERE rowid = ?1")?;
            for rowid in &new_rows {
                let mut rows = stmt.query(params![rowid])?;
                if let Some(r) = rows.next()? {
                    deals.insert(r.get::<_, String>(0)?);
                }
            }
        }
        let index = stage_index(stages);
        let mut stmt = conn.prepare_cached(
            "SELECT rowid, to_stage_id, changed_at FROM deal_stage_history
             WHERE deal_id = ?1 AND to_stage_id IS NOT NULL ORDER BY changed_at, rowid",
        )?;
        let (mut before, mut now, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        let mut out = vec![Tally::default(); stages.len()];
        for deal in &deals {
            before.clear();
            now.clear();
            let mut rows = stmt.query(params![deal])?;
            while let Some(r) = rows.next()? {
                let step = (index.get(r.get_ref(1)?.as_str()?).copied(), r.get(2)?);
                if !new_rows.contains(&r.get::<_, i64>(0)?) {
                    before.push(step);
                }
                now.push(step);
            }
            out.fill(Tally::default());
            tally(&before, stages, w, &mut out, &mut seen);
            tally(&now, stages, w, &mut self.tallies, &mut seen);
            for (t, o) in self.tallies.iter_mut().zip(&out) {
                t.take_out(o);
            }
        }
        Ok(true)
    }
}

/// What the funnel counts of one stage.
#[derive(Clone, Copy, Default)]
struct Tally {
    /// Deals whose path entered it in the window.
    entered: i64,
    /// Of those, deals that later reached a stage further along the board.
    advanced: i64,
    /// Of those, deals that left it (a later row in their path), and their time in it.
    stays: i64,
    stay_total: Millis,
}

impl Tally {
    /// Takes what `other` counted (one deal's old path) out of these counts.
    fn take_out(&mut self, other: &Tally) {
        self.entered -= other.entered;
        self.advanced -= other.advanced;
        self.stays -= other.stays;
        self.stay_total -= other.stay_total;
    }
}

/// Counts one deal's `path` (its stage changes in order: the stage's index among `stages`, or
/// none for another pipeline's stage, and when) into `tallies`: for each stage, the deal's first
/// entry into it within `w`. `seen` is scratch space, kept by the caller across deals so the
/// pass over every deal allocates nothing per deal.
fn tally(
    path: &[(Option<usize>, Millis)],
    stages: &[pipelines::Stage],
    w: Window,
    tallies: &mut [Tally],
    seen: &mut Vec<bool>,
) {
    seen.clear();
    seen.resize(stages.len(), false);
    for (i, &(stage, at)) in path.iter().enumerate() {
        let Some(s) = stage else { continue };
        if seen[s] || at < w.from || at >= w.to {
            continue;
        }
        seen[s] = true;
        let t = &mut tallies[s];
        t.entered += 1;
        let further = |&(later, _): &(Option<usize>, Millis)| {
            later.is_some_and(|l| stages[l].position > stages[s].position)
        };
        if path[i + 1..].iter().any(further) {
            t.advanced += 1;
        }
        if let Some((_, left_at)) = path.get(i + 1) {
            t.stays += 1;
            t.stay_total += left_at - at;
        }
    }
}

/// Expected revenue of one month.
#[derive(Debug, Clone, Object, serde::Serialize)]
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
    // The totals the deal triggers keep per stage, currency and month (migration 19): a
    // stage's value times its probability is the sum of its deals' values times it.
    let mut stmt = conn.prepare_cached(
        "SELECT f.month, sum(f.deals), sum(f.value), sum(f.value * s.probability)
         FROM stages s JOIN forecast_totals f ON f.stage_id = s.id
         WHERE s.org_id = ?1 AND f.currency = ?2
         GROUP BY f.month HAVING sum(f.deals) > 0 ORDER BY f.month = 'unscheduled', f.month",
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
