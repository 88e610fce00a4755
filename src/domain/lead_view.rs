//! The lead 360: everything about a lead in one response, so an agent needs one call to act.

use crate::domain::nullable::Nullable;
use poem_openapi::Object;
use rusqlite::{params, Connection, Row};

use crate::db::CachedRow;

use super::activities::{self, Activity};
use super::companies::{self, Company};
use super::deals::{self, Deal, DealFilter};
use super::email::{self, Email};
use super::error::DomainResult;
use super::leads::{self, Lead};
use super::listing::Paging;
use super::notes::{self, Note};
use super::signals::{self, Signal};
use super::tasks::{self, Task};
use crate::clock::Millis;

/// How many of each kind of related record the 360 view includes (the most recent first); the
/// list endpoints page through the rest, and `totals` says how many there are.
pub const RELATED_LIMIT: i64 = 100;

/// Records about a lead: on the lead itself or on any of its deals.
const ON_LEAD_OR_ITS_DEALS: &str = "(lead_id = ?2 OR deal_id IN (SELECT id FROM deals INDEXED BY deals_org_lead WHERE org_id = ?1 AND lead_id = ?2))";

/// A lead with its whole relationship: its company, its deals, and everything recorded on the
/// lead or on any of those deals (each record's `deal_id` says which deal it belongs to, null
/// when it is on the lead alone).
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Lead360 {
    /// The lead.
    pub lead: Lead,
    /// Its company record, when linked.
    pub company: Nullable<Company>,
    /// Deals from this lead, newest first.
    pub deals: Vec<Deal>,
    /// Activities on the lead and its deals, most recent first (calls, emails sent, opened and
    /// received included).
    pub activities: Vec<Activity>,
    /// The calls, most recent first.
    pub calls: Vec<Activity>,
    /// Notes on the lead and its deals, newest first.
    pub notes: Vec<Note>,
    /// Tasks on the lead and its deals: open ones by due date, then the rest.
    pub tasks: Vec<Task>,
    /// Email in its deals' inboxes, both ways (the mail the lead sent included), newest first.
    pub emails: Vec<Email>,
    /// Open buying signals about the lead and its deals, strongest first.
    pub signals: Vec<Signal>,
    /// How many of each there are in all; a list holds at most 100.
    pub totals: Lead360Totals,
    /// Whether any list holds fewer than its total (page through the list endpoints, filtered
    /// by `lead_id` or `deal_id`, for the rest).
    pub truncated: bool,
}

/// How many records each list of a [`Lead360`] stands for.
#[derive(Debug, Clone, Default, Object, serde::Serialize)]
pub struct Lead360Totals {
    /// Deals.
    pub deals: i64,
    /// Activities.
    pub activities: i64,
    /// Calls.
    pub calls: i64,
    /// Notes.
    pub notes: i64,
    /// Tasks.
    pub tasks: i64,
    /// Emails.
    pub emails: i64,
    /// Open signals.
    pub signals: i64,
}

/// Up to [`RELATED_LIMIT`] rows of `table` matching `filter` (with `?1` the organization and
/// `?2` the lead), in `order`, and how many match in all.
///
/// The lead's rows are found by the lead's and its deals' indexes (SQLite joins the two with a
/// multi-index OR). Without statistics SQLite would rather walk the organization's index, every
/// activity of it (170 ms for 1,000,000): `+org_id` keeps that index out of the choice, and the
/// deals come by `deals_org_lead` by name, for the same reason.
fn related<T>(
    conn: &Connection,
    org_id: &str,
    lead_id: &str,
    (columns, table, filter, order): (&str, &str, &str, &str),
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> DomainResult<(Vec<T>, i64)> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {columns} FROM {table} WHERE +org_id = ?1 AND {filter} ORDER BY {order} LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![org_id, lead_id, RELATED_LIMIT], map)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    let total = if (rows.len() as i64) < RELATED_LIMIT {
        rows.len() as i64
    } else {
        conn.cached_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE +org_id = ?1 AND {filter}"),
            params![org_id, lead_id],
            |r| r.get(0),
        )?
    };
    Ok((rows, total))
}

/// Builds the 360 view of a lead, in one read snapshot.
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
    )?;
    let by_time = "occurred_at DESC, id DESC";
    let (activities, activities_total) = related(
        conn,
        org_id,
        id,
        (
            activities::COLUMNS,
            "activities",
            ON_LEAD_OR_ITS_DEALS,
            by_time,
        ),
        activities::from_row,
    )?;
    let calls_filter = format!("type = 'call' AND {ON_LEAD_OR_ITS_DEALS}");
    let (calls, calls_total) = related(
        conn,
        org_id,
        id,
        (activities::COLUMNS, "activities", &calls_filter, by_time),
        activities::from_row,
    )?;
    let newest = "created_at DESC, id DESC";
    let (notes, notes_total) = related(
        conn,
        org_id,
        id,
        (notes::COLUMNS, "notes", ON_LEAD_OR_ITS_DEALS, newest),
        notes::from_row,
    )?;
    let (tasks, tasks_total) = related(
        conn,
        org_id,
        id,
        (
            tasks::COLUMNS,
            "tasks",
            ON_LEAD_OR_ITS_DEALS,
            "status <> 'open', due_at IS NULL, due_at, created_at DESC, id DESC",
        ),
        tasks::mapper(now),
    )?;
    let (emails, emails_total) = related(
        conn,
        org_id,
        id,
        (
            email::COLUMNS,
            "emails",
            "deal_id IN (SELECT id FROM deals INDEXED BY deals_org_lead WHERE org_id = ?1 AND lead_id = ?2)",
            newest,
        ),
        email::from_row,
    )?;
    let (signals, signals_total) = related(
        conn,
        org_id,
        id,
        (
            signals::COLUMNS,
            "signals",
            "lead_id = ?2 AND status = 'open'",
            "score DESC, detected_at DESC, id DESC",
        ),
        signals::from_row,
    )?;
    let totals = Lead360Totals {
        deals: deals.total,
        activities: activities_total,
        calls: calls_total,
        notes: notes_total,
        tasks: tasks_total,
        emails: emails_total,
        signals: signals_total,
    };
    let truncated = [
        (deals.items.len(), totals.deals),
        (activities.len(), totals.activities),
        (calls.len(), totals.calls),
        (notes.len(), totals.notes),
        (tasks.len(), totals.tasks),
        (emails.len(), totals.emails),
        (signals.len(), totals.signals),
    ]
    .iter()
    .any(|(shown, total)| (*shown as i64) < *total);
    Ok(Lead360 {
        lead,
        company: Nullable(company),
        deals: deals.items,
        activities,
        calls,
        notes,
        tasks,
        emails,
        signals,
        totals,
        truncated,
    })
}
