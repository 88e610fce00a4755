//! Gathers the facts the intelligence rules need, straight from the database, and serves the
//! deal intelligence and at-risk views. The rules themselves live in `crate::intelligence`.

use std::collections::HashMap;
use std::sync::Arc;

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
    pub stage_id: Arc<str>,
    /// Its lead.
    pub lead_id: Option<String>,
    /// The rules' input.
    pub facts: DealFacts,
    /// Ids of its overdue tasks, in the order of `facts.overdue_tasks`.
    pub overdue_task_ids: Vec<String>,
    /// Ids of opens and replies in the high-engagement window.
    pub recent_engagement: Vec<String>,
}

/// A stage as the rules see it: id, name, rotting days (shared, not copied, per deal).
type StageRef = (Arc<str>, Arc<str>, Option<i64>);

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

/// Gathers the facts of the deals in `scope` at `now`, in one pass per table.
pub fn gather(
    conn: &Connection,
    org_id: &str,
    scope: Scope<'_>,
    now: Millis,
) -> DomainResult<Vec<GatheredDeal>> {
    // Scoring every open deal reads them all anyway, so their average comes from the scan.
    let average = match scope {
        Scope::Ids(_) => average_open_value(conn, org_id)?,
        Scope::AllOpen => 0.0,
    };
    let stages: HashMap<String, StageRef> = {
        let mut stmt =
            conn.prepare_cached("SELECT id, name, rotting_days FROM stages WHERE org_id = ?1")?;
        let rows = stmt.query_map(params![org_id], |r| {
            let id: String = r.get(0)?;
            let name: String = r.get(1)?;
            Ok((id.clone(), (Arc::from(id), Arc::from(name), r.get(2)?)))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let unknown_stage: StageRef = (Arc::from(""), Arc::from(""), None);
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
    let expected: i64 = match scope {
        Scope::Ids(ids) => ids.len() as i64,
        Scope::AllOpen => conn
            .prepare_cached("SELECT COUNT(*) FROM deals WHERE org_id = ?1 AND status = 'open'")?
            .query_row(params![org_id], |r| r.get(0))?,
    };
    let mut deals: Vec<GatheredDeal> = Vec::with_capacity(expected.max(0) as usize);
    {
        let sql = format!(
            "SELECT d.id, d.status, d.value, d.stage_id, d.stage_entered_at,
                    coalesce(d.last_activity_at, d.created_at), d.expected_close_date, d.lead_id
             FROM deals d WHERE d.org_id = ? AND {deal_filter}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(values.iter()))?;
        // Read by reference where possible: this loop runs once per open deal when ranking.
        while let Some(r) = rows.next()? {
            let (stage_id, stage_name, rotting_days) = stages
                .get(r.get_ref(3)?.as_str()?)
                .unwrap_or(&unknown_stage)
                .clone();
            let status = match r.get_ref(1)?.as_str()? {
                "won" => "won",
                "lost" => "lost",
                _ => "open",
            };
            deals.push(GatheredDeal {
                id: r.get(0)?,
                lead_id: r.get(7)?,
                facts: DealFacts {
                    status,
                    value: r.get(2)?,
                    stage_name,
                    rotting_days,
                    stage_entered_at: r.get(4)?,
                    last_touch_at: r.get(5)?,
                    expected_close_at: r
                        .get_ref(6)?
                        .as_str_or_null()?
                        .and_then(timefmt::date_to_ms),
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
    if let Scope::AllOpen = scope {
        let average = deals.iter().map(|d| d.facts.value as f64).sum::<f64>() / deals.len() as f64;
        for d in &mut deals {
            d.facts.average_open_value = average;
        }
    }
    let index: HashMap<&str, usize> = deals
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    // Tasks and engagement are collected by deal position, then applied, so the index can
    // borrow the deals' ids while they are read.
    let mut open_counts: Vec<(usize, i64)> = Vec::new();
    let mut overdue_rows: Vec<(usize, String, Millis, String)> = Vec::new();
    let mut engagement_rows: Vec<(usize, String, bool, Millis)> = Vec::new();
    let (task_filter, task_values): (String, Vec<rusqlite::types::Value>) = match &scope {
        Scope::Ids(ids) => (
            format!("deal_id IN ({})", vec!["?"; ids.len()].join(", ")),
            ids.iter().map(|i| i.clone().into()).collect(),
        ),
        Scope::AllOpen => ("deal_id IS NOT NULL".into(), Vec::new()),
    };
    {
        // Open tasks per deal (from the covering index), then only the overdue ones in full.
        let mut all = vec![rusqlite::types::Value::from(org_id.to_string())];
        all.extend(task_values.iter().cloned());
        let sql = format!(
            "SELECT deal_id, COUNT(*) FROM tasks WHERE org_id = ? AND status = 'open' AND {task_filter} GROUP BY deal_id"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(all.iter()))?;
        while let Some(r) = rows.next()? {
            if let Some(&i) = index.get(r.get_ref(0)?.as_str()?) {
                open_counts.push((i, r.get(1)?));
            }
        }
        all.push(now.into());
        let sql = format!(
            "SELECT deal_id, id, title, due_at FROM tasks
             WHERE org_id = ? AND status = 'open' AND {task_filter} AND due_at < ?"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(all.iter()))?;
        while let Some(r) = rows.next()? {
            if let Some(&i) = index.get(r.get_ref(0)?.as_str()?) {
                overdue_rows.push((i, r.get(2)?, r.get(3)?, r.get(1)?));
            }
        }
    }
    {
        let window = now - ENGAGEMENT_WINDOW_DAYS.max(HIGH_ENGAGEMENT_WINDOW_DAYS) * DAY_MS;
        let mut stmt = conn.prepare_cached(
            "SELECT deal_id, id, type, occurred_at FROM activities
             WHERE org_id = ?1 AND type IN ('email_opened', 'email_received') AND occurred_at >= ?2
               AND deal_id IS NOT NULL
             ORDER BY occurred_at",
        )?;
        let mut rows = stmt.query(params![org_id, window])?;
        while let Some(r) = rows.next()? {
            let Some(&i) = index.get(r.get_ref(0)?.as_str()?) else {
                continue;
            };
            engagement_rows.push((
                i,
                r.get(1)?,
                r.get_ref(2)?.as_str()? == "email_received",
                r.get(3)?,
            ));
        }
    }
    drop(index);
    for (i, count) in open_counts {
        deals[i].facts.open_tasks = count;
    }
    for (i, title, due, id) in overdue_rows {
        deals[i].facts.overdue_tasks.push((title, due));
        deals[i].overdue_task_ids.push(id);
    }
    for d in &mut deals {
        if d.facts.overdue_tasks.len() > 1 {
            let mut pairs: Vec<((String, Millis), String)> = d
                .facts
                .overdue_tasks
                .drain(..)
                .zip(d.overdue_task_ids.drain(..))
                .collect();
            pairs.sort_by_key(|((_, due), _)| *due);
            for (t, id) in pairs {
                d.facts.overdue_tasks.push(t);
                d.overdue_task_ids.push(id);
            }
        }
    }
    let engaged_since = now - HIGH_ENGAGEMENT_WINDOW_DAYS * DAY_MS;
    for (i, id, reply, at) in engagement_rows {
        let d = &mut deals[i];
        if reply {
            d.facts.last_reply_at = Some(at);
        } else {
            d.facts.last_open_at = Some(at);
        }
        if at >= engaged_since {
            d.recent_engagement.push(id);
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
            let score = risk::score(&d.facts, now);
            let level = if d.facts.status == "open" {
                RiskLevel::of(score)
            } else {
                RiskLevel::None
            };
            (d.id.clone(), (score, level))
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
        .map(|(i, d)| (risk::score(&d.facts, now), d.facts.stage_entered_at, i))
        .filter(|(score, _, _)| *score >= min_score)
        .collect();
    let total = scored.len() as i64;
    // Only the requested page needs ordering: partition the rest away first.
    let order = |a: &(i64, Millis, usize), b: &(i64, Millis, usize)| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(gathered[a.2].id.cmp(&gathered[b.2].id))
    };
    let wanted = ((paging.offset() + paging.limit()) as usize).min(scored.len());
    if wanted > 0 && wanted < scored.len() {
        scored.select_nth_unstable_by(wanted - 1, order);
        scored.truncate(wanted);
    }
    scored.sort_by(order);
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
