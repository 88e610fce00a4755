//! Gathering what the risk rules read about a set of deals: one pass per table, in the order of
//! the covering indexes, so scoring every open deal of an organization stays one scan.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, params_from_iter, Connection};

use super::{
    average_open_value, deal_facts, facts_from_row, GatheredDeal, Scope, StageRef, OPEN_DEAL_FACTS,
};
use crate::clock::{Millis, DAY_MS};
use crate::domain::error::DomainResult;
use crate::rules::buying_signals::HIGH_ENGAGEMENT_WINDOW_DAYS;
use crate::rules::deal_risk::ENGAGEMENT_WINDOW_DAYS;

/// Gathers the facts of the deals in `scope` at `now`, in one pass per table.
///
/// Deals come back ordered by id, which is the covering index's own order when every open deal
/// is read; their open tasks are then read in the same order and merged in, with no lookup table.
pub fn gather(
    conn: &Connection,
    org_id: &str,
    scope: Scope<'_>,
    now: Millis,
) -> DomainResult<Vec<GatheredDeal>> {
    gather_with(conn, org_id, scope, now, Depth::Full)
}

/// How much of each deal [`gather_with`] reads.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Depth {
    /// Everything, the organization's average looked up when not scanned.
    Full,
    /// Everything, against an average already known (a ranked page, re-read in full).
    FullWithAverage(f64),
    /// What the score needs, from the facts the deal itself keeps (migration 8): no task or
    /// activity is read, and overdue tasks come without ids or titles (and at most three).
    Score,
}

/// The organization's stages by id, shared by every deal read, and what a deal in a stage that
/// is not among them gets.
pub(super) fn stage_refs(
    conn: &Connection,
    org_id: &str,
) -> DomainResult<(HashMap<String, StageRef>, StageRef)> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name, rotting_days FROM stages WHERE org_id = ?1")?;
    let rows = stmt.query_map(params![org_id], |r| {
        let id: String = r.get(0)?;
        let name: String = r.get(1)?;
        Ok((id.clone(), (Arc::from(id), Arc::from(name), r.get(2)?)))
    })?;
    let stages = rows.collect::<rusqlite::Result<_>>()?;
    Ok((stages, (Arc::from(""), Arc::from(""), None)))
}

pub(super) fn gather_with(
    conn: &Connection,
    org_id: &str,
    scope: Scope<'_>,
    now: Millis,
    depth: Depth,
) -> DomainResult<Vec<GatheredDeal>> {
    // Scoring every open deal reads them all anyway, so their average comes from the scan.
    let average = match (&scope, depth) {
        (_, Depth::FullWithAverage(average)) => average,
        (Scope::Ids(_), _) => average_open_value(conn, org_id)?,
        (Scope::AllOpen, _) => 0.0,
    };
    let (stages, unknown_stage) = stage_refs(conn, org_id)?;
    let (filter, ids): (String, Vec<rusqlite::types::Value>) = match &scope {
        Scope::Ids(ids) => (
            format!("IN ({})", vec!["?"; ids.len().max(1)].join(", ")),
            if ids.is_empty() {
                vec![rusqlite::types::Value::Null]
            } else {
                ids.iter().map(|i| i.clone().into()).collect()
            },
        ),
        Scope::AllOpen => (String::new(), Vec::new()),
    };
    let with_org = |extra: &[rusqlite::types::Value]| {
        let mut all = vec![rusqlite::types::Value::from(org_id.to_string())];
        all.extend(extra.iter().cloned());
        all.extend(ids.iter().cloned());
        all
    };
    // Sized up front: growing a vector of 100,000 deals by doubling copies them all twice over.
    let expected = match scope {
        Scope::Ids(ids) => ids.len(),
        Scope::AllOpen => rusqlite::OptionalExtension::optional(
            conn.prepare_cached("SELECT deals FROM open_deal_totals WHERE org_id = ?1")?
                .query_row(params![org_id], |r| r.get::<_, i64>(0)),
        )?
        .unwrap_or(0)
        .max(0) as usize,
    };
    let mut deals: Vec<GatheredDeal> = Vec::with_capacity(expected);
    // Scoring alone takes the facts the deal keeps; the full view counts them below from the
    // tasks and activities it reads anyway for their ids and titles.
    let kept = depth == Depth::Score;
    {
        // Every open deal comes in id order from the covering index. A few deals by id are
        // looked up by primary key and sorted afterwards: the `+` keeps SQLite from walking the
        // whole organization in that covering index instead, which it otherwise prefers.
        let sql = match scope {
            Scope::Ids(_) => format!(
                "SELECT {} FROM deals d WHERE +d.org_id = ?1 AND d.id {filter}",
                deal_facts!()
            ),
            Scope::AllOpen => OPEN_DEAL_FACTS.to_string(),
        };
        let mut stmt = conn.prepare_cached(&sql)?;

        let mut rows = stmt.query(params_from_iter(with_org(&[])))?;
        // Read by reference where possible: this loop runs once per open deal when ranking.
        while let Some(r) = rows.next()? {
            let (stage_id, stage_name, rotting_days) = stages
                .get(r.get_ref(3)?.as_str()?)
                .unwrap_or(&unknown_stage)
                .clone();
            deals.push(GatheredDeal {
                id: r.get(0)?,
                lead_id: r.get(7)?,
                facts: facts_from_row(r, 0, (stage_name, rotting_days), average, now, kept)?,
                stage_id,
                overdue_task_ids: Vec::new(),
                recent_engagement: Vec::new(),
            });
        }
    }
    if deals.is_empty() {
        return Ok(deals);
    }
    if let Scope::Ids(_) = scope {
        deals.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    }
    if let (Scope::AllOpen, Depth::Full | Depth::Score) = (&scope, depth) {
        let average = deals.iter().map(|d| d.facts.value as f64).sum::<f64>() / deals.len() as f64;
        for d in &mut deals {
            d.facts.average_open_value = average;
        }
    }
    if kept {
        return Ok(deals);
    }
    {
        // Open tasks in deal order, overdue ones first within a deal. Only overdue tasks need
        // their id and title, so only they are looked up in the table (SQLite defers the seek).
        let task_filter = match scope {
            Scope::Ids(_) => format!("deal_id {filter}"),
            Scope::AllOpen => "deal_id IS NOT NULL".into(),
        };
        let sql = format!(
            "SELECT deal_id, due_at,
                    CASE WHEN due_at < ?2 THEN id END, CASE WHEN due_at < ?2 THEN title END
             FROM tasks WHERE org_id = ?1 AND status = 'open' AND {task_filter}
             ORDER BY deal_id, due_at"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(with_org(&[now.into()])))?;
        let mut at = 0;
        while let Some(r) = rows.next()? {
            let deal_id = r.get_ref(0)?.as_str()?;
            while at < deals.len() && deals[at].id.as_str() < deal_id {
                at += 1;
            }
            let Some(d) = deals.get_mut(at).filter(|d| d.id == deal_id) else {
                // A task of a deal outside the scope (a closed one, when ranking).
                continue;
            };
            d.facts.open_tasks += 1;
            if let Some(id) = r.get_ref(2)?.as_str_or_null()? {
                d.overdue_task_ids.push(id.to_string());
                d.facts.overdue_tasks.push((r.get(3)?, r.get(1)?));
            }
        }
    }
    {
        let window = now - ENGAGEMENT_WINDOW_DAYS.max(HIGH_ENGAGEMENT_WINDOW_DAYS) * DAY_MS;
        let engaged_since = now - HIGH_ENGAGEMENT_WINDOW_DAYS * DAY_MS;
        // For a few deals, their own activities (by the deal index; the `+`s keep SQLite off the
        // organization-wide type index, which would read every recent email of the
        // organization); for every open deal, the recent emails of the organization, once.
        let (org_term, deal_term) = match scope {
            Scope::Ids(_) => ("+org_id = ?1 AND +type", format!("deal_id {filter}")),
            Scope::AllOpen => ("org_id = ?1 AND type", "deal_id IS NOT NULL".into()),
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT deal_id, id, type, occurred_at FROM activities
             WHERE {org_term} IN ('email_opened', 'email_received') AND occurred_at >= ?2
               AND {deal_term}
             ORDER BY occurred_at"
        ))?;
        let mut rows = stmt.query(params_from_iter(with_org(&[window.into()])))?;
        while let Some(r) = rows.next()? {
            let deal_id = r.get_ref(0)?.as_str()?;
            let Ok(i) = deals.binary_search_by(|d| d.id.as_str().cmp(deal_id)) else {
                continue;
            };
            let d = &mut deals[i];
            let at: Millis = r.get(3)?;
            if r.get_ref(2)?.as_str()? == "email_received" {
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
pub(super) fn add_contacts(conn: &Connection, deals: &mut [GatheredDeal]) -> DomainResult<()> {
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
