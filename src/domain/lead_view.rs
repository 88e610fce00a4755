//! The lead 360: everything about a lead in one response, so an agent needs one call to act.

use crate::domain::nullable::Nullable;
use poem_openapi::Object;
use rusqlite::{params, Connection};

use super::activities::{self, Activity};
use super::companies::{self, Company};
use super::deals::{self, Deal, DealFilter};
use super::error::DomainResult;
use super::leads::{self, Lead};
use super::listing::Paging;
use super::notes::{self, Note};
use super::signals::{self, Signal};
use super::tasks::{self, Task};
use crate::clock::Millis;

/// How many of each kind of related record the 360 view includes (the most recent first); the
/// list endpoints page through the rest.
pub const RELATED_LIMIT: i64 = 100;

/// A lead with its company, deals, activities, calls, notes, tasks and open signals.
#[derive(Debug, Clone, Object)]
pub struct Lead360 {
    /// The lead.
    pub lead: Lead,
    /// Its company record, when linked.
    #[oai(nullable)]
    pub company: Nullable<Company>,
    /// Deals from this lead, newest first.
    pub deals: Vec<Deal>,
    /// Activities on the lead, most recent first (calls included).
    pub activities: Vec<Activity>,
    /// The calls among them.
    pub calls: Vec<Activity>,
    /// Notes on the lead, newest first.
    pub notes: Vec<Note>,
    /// Tasks on the lead: open ones by due date, then the rest.
    pub tasks: Vec<Task>,
    /// Open buying signals about the lead and its deals, strongest first.
    pub signals: Vec<Signal>,
}

/// Builds the 360 view of a lead.
pub fn lead_360(conn: &Connection, org_id: &str, id: &str, now: Millis) -> DomainResult<Lead360> {
    let lead = leads::get(conn, org_id, id)?;
    let company = match &lead.company_id {
        Nullable(Some(c)) => companies::find(conn, org_id, c)?,
        Nullable(None) => None,
    };
    let paging = Paging::new(Some(1), Some(RELATED_LIMIT))?;
    let deals = deals::list(
        conn,
        org_id,
        &DealFilter {
            lead_id: Some(id.to_string()),
            ..DealFilter::default()
        },
        None,
        paging,
        now,
    )?
    .items;
    let activities: Vec<Activity> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM activities WHERE org_id = ?1 AND lead_id = ?2
             ORDER BY occurred_at DESC, id DESC LIMIT ?3",
            activities::COLUMNS
        ))?;
        let rows = stmt.query_map(params![org_id, id, RELATED_LIMIT], activities::from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let calls = activities
        .iter()
        .filter(|a| a.activity_type == "call")
        .cloned()
        .collect();
    let notes: Vec<Note> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM notes WHERE org_id = ?1 AND lead_id = ?2 ORDER BY created_at DESC, id DESC LIMIT ?3",
            notes::COLUMNS
        ))?;
        let rows = stmt.query_map(params![org_id, id, RELATED_LIMIT], notes::from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let tasks: Vec<Task> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM tasks WHERE org_id = ?1 AND lead_id = ?2
             ORDER BY status <> 'open', due_at IS NULL, due_at, created_at DESC LIMIT ?3",
            tasks::COLUMNS
        ))?;
        let rows = stmt.query_map(params![org_id, id, RELATED_LIMIT], tasks::mapper(now))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    Ok(Lead360 {
        lead,
        company: Nullable(company),
        deals,
        activities,
        calls,
        notes,
        tasks,
        signals: signals::open_for_lead(conn, org_id, id)?,
    })
}
