//! The agenda: a day's work in one read, for the organization or one owner — the buying
//! signals worth acting on, the deals at risk with what to do about each, the tasks overdue and
//! due today, and the inbound email nobody has answered. An agent's daily loop starts here
//! instead of with four lists.

use poem_openapi::Object;
use rusqlite::Connection;

use super::campaigns::schedule;
use super::email::{self, Email};
use super::error::{DomainResult, Issues};
use super::intelligence::{self, AtRiskDeal};
use super::listing::{Filters, ListPage, ListSource, Paging, Sort};
use super::nullable::Nullable;
use super::signals::{self, Signal, SignalFilter};
use super::tasks::{self, Task, TaskFilter};
use super::{orgs, validate};
use crate::clock::Millis;
use crate::timefmt::Timestamp;

/// Most items of each list (`totals` counts them all).
pub const EACH: i64 = 25;

/// The first [`EACH`] of a list.
const FIRST: Paging = Paging {
    page: 1,
    per_page: EACH,
};

/// How far back inbound email is looked at for an answer, in days.
pub const UNANSWERED_DAYS: i64 = 30;

/// A day's work.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Agenda {
    /// When it was computed.
    pub as_of: Timestamp,
    /// The owner it is for; null for the whole organization.
    pub owner_id: Nullable<String>,
    /// Today in the organization's time zone, `YYYY-MM-DD`.
    pub today: String,
    /// Open buying signals scored at least `score_min`, highest first.
    pub signals: Vec<Signal>,
    /// Open deals whose risk is at least `score_min`, riskiest first, each with its
    /// intelligence (factors and the suggested action) and the deal in brief.
    pub at_risk: Vec<AtRiskDeal>,
    /// Open tasks past their due time, the longest overdue first.
    pub overdue_tasks: Vec<Task>,
    /// Open tasks due from now to the end of today, soonest first.
    pub due_today: Vec<Task>,
    /// Inbound email of the last 30 days with no reply after it in its thread, oldest first.
    pub unanswered_emails: Vec<Email>,
    /// How many there are of each, in all.
    pub totals: AgendaTotals,
}

/// The size of each list of an [`Agenda`] before it was cut to 25.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct AgendaTotals {
    /// Open signals at or above the threshold.
    pub signals: i64,
    /// Deals at risk at or above the threshold.
    pub at_risk: i64,
    /// Overdue open tasks.
    pub overdue_tasks: i64,
    /// Open tasks due later today.
    pub due_today: i64,
    /// Unanswered inbound email.
    pub unanswered_emails: i64,
}

/// The agenda of `org_id` (of `owner_id`'s deals, leads and tasks, when given), with signals
/// and risks from `score_min`.
pub fn agenda(
    conn: &Connection,
    org_id: &str,
    owner_id: Option<&str>,
    score_min: i64,
    now: Millis,
) -> DomainResult<Agenda> {
    let mut issues = Issues::new();
    validate::reference(
        conn,
        &mut issues,
        "owner_id",
        "users",
        "usr",
        org_id,
        owner_id,
    )?;
    issues.finish()?;
    let owner = owner_id.map(str::to_string);
    let signals = signals::list(
        conn,
        org_id,
        &SignalFilter {
            score_min: Some(score_min),
            owner_id: owner.clone(),
            ..SignalFilter::default()
        },
        None,
        FIRST,
    )?;
    let at_risk = intelligence::at_risk(conn, org_id, owner_id, score_min, FIRST, now)?;
    let zone = orgs::get(conn, org_id)?.timezone;
    let tz = schedule::zone(&zone);
    let (_, end_of_day) = schedule::day_of(now, &tz);
    let open_tasks = |due_after: Option<Millis>, due_before: Millis| {
        tasks::list(
            conn,
            org_id,
            &TaskFilter {
                status: Some("open".into()),
                assignee_id: owner.clone(),
                due_after,
                due_before: Some(due_before),
                ..TaskFilter::default()
            },
            Some("due_at"),
            FIRST,
            now,
        )
    };
    let overdue = open_tasks(None, now)?;
    let due_today = open_tasks(Some(now), end_of_day)?;
    let unanswered = unanswered(conn, org_id, owner_id, now)?;
    Ok(Agenda {
        as_of: Timestamp(now),
        owner_id: Nullable(owner),
        today: schedule::zoned(now, &tz).date().to_string(),
        totals: AgendaTotals {
            signals: signals.total,
            at_risk: at_risk.total,
            overdue_tasks: overdue.total,
            due_today: due_today.total,
            unanswered_emails: unanswered.total,
        },
        signals: signals.items,
        at_risk: at_risk.items,
        overdue_tasks: overdue.items,
        due_today: due_today.items,
        unanswered_emails: unanswered.items,
    })
}

/// Inbound email of the last [`UNANSWERED_DAYS`] with no outbound message after it in its
/// thread (on `owner_id`'s deals or leads, when given), oldest first.
fn unanswered(
    conn: &Connection,
    org_id: &str,
    owner_id: Option<&str>,
    now: Millis,
) -> DomainResult<ListPage<Email>> {
    const SOURCE: ListSource = ListSource {
        columns: email::COLUMNS,
        from: "emails",
        id: "id",
        count_from: None,
    };
    let mut filters = Filters::for_org("org_id", org_id);
    filters.push(
        "direction = 'inbound' AND created_at >= ?",
        vec![(now - UNANSWERED_DAYS * 86_400_000).into()],
    );
    // A thread's messages share its deal (none for a campaign's): `deal_id IS` lets the
    // answer be looked up in the thread index instead of scanning the organization's mail.
    filters.push(
        "NOT EXISTS (SELECT 1 FROM emails o
                     WHERE o.deal_id IS emails.deal_id AND o.thread_id = emails.thread_id
                       AND o.created_at > emails.created_at AND o.org_id = emails.org_id
                       AND o.direction = 'outbound')",
        vec![],
    );
    if let Some(owner) = owner_id {
        filters.owned_by(org_id, owner);
    }
    let oldest_first = Sort::parse(Some("created_at"), &[("created_at", "created_at")])?;
    filters.fetch_page(conn, &SOURCE, oldest_first, FIRST, email::from_row)
}
