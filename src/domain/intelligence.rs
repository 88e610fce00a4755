//! Gathers the facts the intelligence rules need, straight from the database, and serves the
//! deal intelligence and at-risk views. The rules themselves live in `crate::intelligence`.

use std::collections::HashMap;

use poem_openapi::Object;
use rusqlite::{params, params_from_iter, Connection};

use super::error::{DomainError, DomainResult};
use super::listing::{ListPage, Paging};
use crate::clock::{Millis, DAY_MS};
use crate::intelligence::risk::{self, DealFacts, RiskLevel, ENGAGEMENT_WINDOW_DAYS};
use crate::intelligence::signals::HIGH_ENGAGEMENT_WINDOW_DAYS;
use crate::intelligence::Factor;
use crate::timefmt::{self, Timestamp};

/// Activity types that mean the buyer engaged.
pub const ENGAGEMENT_TYPES: [&str; 2] = ["email_opened", "email_received"];

/// A deal's risk, in the reference shape plus its factors.
#[derive(Debug, Clone, Object)]
pub struct DealIntelligence {
    /// The deal.
    pub deal_id: String,
    /// 0–100: the sum of `factors`.
    pub risk_score: i64,
    /// none (closed), low < 30 ≤ medium < 60 ≤ high < 80 ≤ critical.
    pub risk_level: RiskLevel,
    /// Whole days in the current stage.
    pub days_in_stage: i64,
    /// Whole days since the last activity (or since creation, with none).
    pub days_since_activity: i64,
    /// The factors as sentences, largest first.
    pub risk_factors: Vec<String>,
    /// The one concrete thing to do next.
    pub suggested_action: String,
    /// Each rule's contribution; the points add up to `risk_score`.
    pub factors: Vec<Factor>,
    /// When this was computed.
    pub computed_at: Timestamp,
}

/// Everything gathered about one deal.
#[derive(Debug, Clone)]
pub struct GatheredDeal {
    /// The deal's id.
    pub id: String,
    /// Its stage.
    pub stage_id: String,
    /// Its lead.
    pub lead_id: Option<String>,
    /// The rules' input.
    pub facts: DealFacts,
    /// Ids of its overdue tasks, in the order of `facts.overdue_tasks`.
    pub overdue_task_ids: Vec<String>,
    /// Ids of opens and replies in the high-engagement window.
    pub recent_engagement: Vec<String>,
}

/// Which deals to gather.
pub enum Scope<'a> {
    /// These deals (any status).
    Ids(&'a [String]),
    /// Every open deal of the organization.
    AllOpen,
}

/// The average value of the organization's open deals (minor units; 0 with none).
pub fn average_open_value(conn: &Connection, org_id: &str) -> DomainResult<f64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(avg(value), 0.0) FROM deals WHERE org_id = ?1 AND status = 'open'",
        )?
        .query_row(params![org_id], |r| r.get(0))?)
}

fn date_ms(date: Option<String>) -> Option<Millis> {
    let d = timefmt::parse_date(date.as_deref()?)?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Gathers the facts of the deals in `scope` at `now`, in one pass per table.
pub fn gather(
    conn: &Connection,
    org_id: &str,
    scope: Scope<'_>,
    now: Millis,
) -> DomainResult<Vec<GatheredDeal>> {
    let average = average_open_value(conn, org_id)?;
    let stages: HashMap<String, (String, Option<i64>)> = {
        let mut stmt =
            conn.prepare_cached("SELECT id, name, rotting_days FROM stages WHERE org_id = ?1")?;
        let rows = stmt.query_map(params![org_id], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let (deal_filter, mut values): (String, Vec<rusqlite::types::Value>) = match &scope {
        Scope::Ids(ids) => (
            format!("d.id IN ({})", vec!["?"; ids.len().max(1)].join(", ")),
            if ids.is_empty() {
                vec![rusqlite::types::Value::Null]
            } else {
                ids.iter().map(|i| i.clone().into()).collect()
            },
        ),
        Scope::AllOpen => ("d.status = 'open'".into(), Vec::new()),
    };
    values.insert(0, org_id.to_string().into());
    let mut deals: Vec<GatheredDeal> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    {
        let sql = format!(
            "SELECT d.id, d.status, d.value, d.stage_id, d.stage_entered_at,
                    coalesce(d.last_activity_at, d.created_at), d.expected_close_date, d.lead_id
             FROM deals d WHERE d.org_id = ? AND {deal_filter}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(values.iter()))?;
        while let Some(r) = rows.next()? {
            let stage_id: String = r.get(3)?;
            let (stage_name, rotting_days) = stages.get(&stage_id).cloned().unwrap_or_default();
            let id: String = r.get(0)?;
            index.insert(id.clone(), deals.len());
            deals.push(GatheredDeal {
                id,
                lead_id: r.get(7)?,
                facts: DealFacts {
                    status: r.get(1)?,
                    value: r.get(2)?,
                    stage_name,
                    rotting_days,
                    stage_entered_at: r.get(4)?,
                    last_touch_at: r.get(5)?,
                    expected_close_at: date_ms(r.get(6)?),
                    average_open_value: average,
                    ..DealFacts::default()
                },
                stage_id,
                overdue_task_ids: Vec::new(),
                recent_engagement: Vec::new(),
            });
        }
    }
    if deals.is_empty() {
        return Ok(deals);
    }
    let (task_filter, task_values): (String, Vec<rusqlite::types::Value>) = match &scope {
        Scope::Ids(ids) => (
            format!("deal_id IN ({})", vec!["?"; ids.len()].join(", ")),
            ids.iter().map(|i| i.clone().into()).collect(),
        ),
        Scope::AllOpen => ("deal_id IS NOT NULL".into(), Vec::new()),
    };
    {
        let sql = format!(
            "SELECT deal_id, id, title, due_at FROM tasks
             WHERE org_id = ? AND status = 'open' AND {task_filter} ORDER BY due_at IS NULL, due_at"
        );
        let mut all = vec![rusqlite::types::Value::from(org_id.to_string())];
        all.extend(task_values.iter().cloned());
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(all.iter()))?;
        while let Some(r) = rows.next()? {
            let deal_id: String = r.get(0)?;
            let Some(&i) = index.get(&deal_id) else {
                continue;
            };
            let d = &mut deals[i];
            d.facts.open_tasks += 1;
            if let Some(due) = r.get::<_, Option<i64>>(3)?.filter(|due| *due < now) {
                d.facts.overdue_tasks.push((r.get(2)?, due));
                d.overdue_task_ids.push(r.get(1)?);
            }
        }
    }
    {
        let window = now - ENGAGEMENT_WINDOW_DAYS.max(HIGH_ENGAGEMENT_WINDOW_DAYS) * DAY_MS;
        let engaged_since = now - HIGH_ENGAGEMENT_WINDOW_DAYS * DAY_MS;
        let mut stmt = conn.prepare_cached(
            "SELECT deal_id, id, type, occurred_at FROM activities
             WHERE org_id = ?1 AND type IN ('email_opened', 'email_received') AND occurred_at >= ?2
               AND deal_id IS NOT NULL
             ORDER BY occurred_at",
        )?;
        let mut rows = stmt.query(params![org_id, window])?;
        while let Some(r) = rows.next()? {
            let deal_id: String = r.get(0)?;
            let Some(&i) = index.get(&deal_id) else {
                continue;
            };
            let d = &mut deals[i];
            let at: i64 = r.get(3)?;
            let kind: String = r.get(2)?;
            if kind == "email_received" {
                d.facts.last_reply_at = Some(at);
            } else {
                d.facts.last_open_at = Some(at);
            }
            if at >= engaged_since {
                d.recent_engagement.push(r.get(1)?);
            }
        }
    }
    Ok(deals)
}

/// Fills in the contact names (the deal's lead) for the suggested actions of `deals`.
fn add_contacts(conn: &Connection, deals: &mut [GatheredDeal]) -> DomainResult<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')) FROM leads WHERE id = ?1",
    )?;
    for d in deals.iter_mut() {
        if let Some(lead_id) = &d.lead_id {
            let name: Option<String> = rusqlite::OptionalExtension::optional(
                stmt.query_row(params![lead_id], |r| r.get(0)),
            )?;
            d.facts.contact_name = name.filter(|n| !n.is_empty());
        }
    }
    Ok(())
}

/// The intelligence of one gathered deal.
pub fn intelligence_of(d: &GatheredDeal, now: Millis) -> DealIntelligence {
    let a = risk::assess(&d.facts, now);
    DealIntelligence {
        deal_id: d.id.clone(),
        risk_score: a.risk_score,
        risk_level: a.risk_level,
        days_in_stage: a.days_in_stage,
        days_since_activity: a.days_since_activity,
        risk_factors: a
            .factors
            .iter()
            .filter(|f| f.points > 0)
            .map(|f| f.detail.clone())
            .collect(),
        suggested_action: a.suggested_action,
        factors: a.factors,
        computed_at: Timestamp(now),
    }
}

/// The intelligence of the deal `id`.
pub fn for_deal(
    conn: &Connection,
    org_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<DealIntelligence> {
    let ids = [id.to_string()];
    let mut gathered = gather(conn, org_id, Scope::Ids(&ids), now)?;
    add_contacts(conn, &mut gathered)?;
    gathered
        .first()
        .map(|d| intelligence_of(d, now))
        .ok_or(DomainError::NotFound("deal"))
}

/// Risk score and level of each deal in `ids` (for lists).
pub fn risk_of(
    conn: &Connection,
    org_id: &str,
    ids: &[String],
    now: Millis,
) -> DomainResult<HashMap<String, (i64, RiskLevel)>> {
    Ok(gather(conn, org_id, Scope::Ids(ids), now)?
        .iter()
        .map(|d| {
            let a = risk::assess(&d.facts, now);
            (d.id.clone(), (a.risk_score, a.risk_level))
        })
        .collect())
}

/// Open deals with risk at least `min_score`, riskiest first (ties: oldest in stage first).
pub fn at_risk(
    conn: &Connection,
    org_id: &str,
    min_score: i64,
    paging: Paging,
    now: Millis,
) -> DomainResult<ListPage<DealIntelligence>> {
    let gathered = gather(conn, org_id, Scope::AllOpen, now)?;
    let mut scored: Vec<(i64, Millis, usize)> = gathered
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                risk::assess(&d.facts, now).risk_score,
                d.facts.stage_entered_at,
                i,
            )
        })
        .filter(|(score, _, _)| *score >= min_score)
        .collect();
    scored.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(gathered[a.2].id.cmp(&gathered[b.2].id))
    });
    let total = scored.len() as i64;
    let mut page: Vec<GatheredDeal> = scored
        .iter()
        .skip(paging.offset() as usize)
        .take(paging.limit() as usize)
        .map(|(_, _, i)| gathered[*i].clone())
        .collect();
    add_contacts(conn, &mut page)?;
    Ok(ListPage {
        items: page.iter().map(|d| intelligence_of(d, now)).collect(),
        paging,
        total,
    })
}
