//! A lead's run through a campaign, and the ways it ends. Kept apart from `campaigns` (which
//! sends through `email` and checks `suppressions`) so that mail, suppressions, deals and
//! leads can stop a lead's enrollments without importing the campaign engine.

use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, Row};

use super::auth::Principal;
use super::changes;
use super::error::{DomainError, DomainResult};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::nullable::Nullable;
use crate::clock::Millis;
use crate::db::Tx;
use crate::timefmt::Timestamp;

/// Where an enrollment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Its steps run as they come due (while the campaign is active).
    Active,
    /// Held: no step runs until it is resumed.
    Paused,
    /// Every step ran.
    Completed,
    /// Ended early; `stop_reason` says why.
    Stopped,
}

/// Why an enrollment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The lead wrote back.
    Replied,
    /// Mail to the lead bounced for good.
    Bounced,
    /// The lead unsubscribed (or reported the mail as spam).
    Unsubscribed,
    /// The lead's address was put on the suppression list.
    Suppressed,
    /// The lead was converted, or a deal was opened for it.
    Converted,
    /// A person or an agent stopped it.
    Manual,
    /// The lead was deleted.
    LeadDeleted,
    /// The campaign was completed.
    CampaignCompleted,
}

impl StopReason {
    /// The reason's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replied => "replied",
            Self::Bounced => "bounced",
            Self::Unsubscribed => "unsubscribed",
            Self::Suppressed => "suppressed",
            Self::Converted => "converted",
            Self::Manual => "manual",
            Self::LeadDeleted => "lead_deleted",
            Self::CampaignCompleted => "campaign_completed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "replied" => Self::Replied,
            "bounced" => Self::Bounced,
            "unsubscribed" => Self::Unsubscribed,
            "suppressed" => Self::Suppressed,
            "converted" => Self::Converted,
            "manual" => Self::Manual,
            "lead_deleted" => Self::LeadDeleted,
            "campaign_completed" => Self::CampaignCompleted,
            _ => return None,
        })
    }
}

/// The statuses, as filters take them.
pub const STATUSES: &[&str] = &["active", "paused", "completed", "stopped"];

/// One lead in one campaign.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Enrollment {
    /// `enr_...`
    pub id: String,
    /// The campaign.
    pub campaign_id: String,
    /// The lead (none once the lead is deleted).
    pub lead_id: Nullable<String>,
    /// The address its emails go to (the lead's when enrolled).
    pub email: Nullable<String>,
    /// active, paused, completed or stopped.
    pub status: EnrollmentStatus,
    /// Why it stopped (stopped only).
    pub stop_reason: Nullable<StopReason>,
    /// How many steps have run.
    pub steps_run: i64,
    /// The position of the last step that ran (0: none yet).
    pub last_position: i64,
    /// The step that runs next (none once every step ran, or when it ended).
    pub next_step_id: Nullable<String>,
    /// When the next step is due (none when paused or ended); the sending window may put it
    /// off further.
    pub next_run_at: Nullable<Timestamp>,
    /// Who enrolled the lead.
    pub enrolled_by: Nullable<String>,
    /// When it completed or stopped.
    pub ended_at: Nullable<Timestamp>,
    /// Bumped on every change.
    pub version: i64,
    /// When the lead was enrolled.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "e.id, e.campaign_id, e.lead_id, e.email, e.status, e.stop_reason, \
    e.steps_run, e.done_position, \
    (SELECT s.id FROM campaign_steps s WHERE s.campaign_id = e.campaign_id \
        AND s.position > e.done_position AND e.status IN ('active', 'paused') \
        ORDER BY s.position LIMIT 1), \
    e.next_run_at, e.enrolled_by, e.ended_at, e.version, e.created_at, e.updated_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "enrollments e",
    id: "e.id",
    count_from: Some("enrollments e"),
};
const RECORD: Record = Record::new("enrollments e", COLUMNS, "enr", "enrollment").aliased("e.");

fn from_row(r: &Row<'_>) -> rusqlite::Result<Enrollment> {
    let status = match r.get_ref(4)?.as_str()? {
        "paused" => EnrollmentStatus::Paused,
        "completed" => EnrollmentStatus::Completed,
        "stopped" => EnrollmentStatus::Stopped,
        _ => EnrollmentStatus::Active,
    };
    let reason: Option<String> = r.get(5)?;
    Ok(Enrollment {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        lead_id: r.get(2)?,
        email: r.get(3)?,
        status,
        stop_reason: Nullable(reason.as_deref().and_then(StopReason::parse)),
        steps_run: r.get(6)?,
        last_position: r.get(7)?,
        next_step_id: r.get(8)?,
        next_run_at: Nullable(r.get::<_, Option<i64>>(9)?.map(Timestamp)),
        enrolled_by: r.get(10)?,
        ended_at: Nullable(r.get::<_, Option<i64>>(11)?.map(Timestamp)),
        version: r.get(12)?,
        created_at: Timestamp(r.get(13)?),
        updated_at: Timestamp(r.get(14)?),
    })
}

/// Enrollment `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Enrollment> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "e.created_at"),
    ("updated_at", "e.updated_at"),
    ("next_run_at", "e.next_run_at"),
];

/// What a list of enrollments is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    /// One campaign.
    pub campaign_id: Option<String>,
    /// One lead.
    pub lead_id: Option<String>,
    /// Any of these statuses (comma separated).
    pub status: Option<String>,
}

/// One page of enrollments.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &EnrollmentFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Enrollment>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("e.org_id", org_id);
    if let Some(c) = &f.campaign_id {
        filters.push("e.campaign_id = ?", vec![c.clone().into()]);
    }
    if let Some(l) = &f.lead_id {
        filters.push("e.lead_id = ?", vec![l.clone().into()]);
    }
    filters.any_of("e.status", &any_of(f.status.as_deref()));
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Writes a new status (and stop reason) on enrollment `e` and records `event_type`.
#[allow(clippy::too_many_arguments)] // the change's parts, each distinct
fn set_status(
    tx: &Tx<'_>,
    org_id: &str,
    e: &Enrollment,
    status: &str,
    reason: Option<StopReason>,
    event_type: &str,
    actor: &Actor,
    now: Millis,
) -> DomainResult<Enrollment> {
    let ended = matches!(status, "completed" | "stopped").then_some(now);
    let next_run: Option<i64> = match status {
        // Resumed: due at once if its step's time has come and gone while it was paused.
        "active" => Some(tx.query_row(
            "SELECT COALESCE(next_run_at, ?2) FROM enrollments WHERE id = ?1",
            params![e.id, now],
            |r| r.get(0),
        )?),
        "paused" => e.next_run_at.0.map(|t| t.0),
        _ => None,
    };
    let reason = reason.map(StopReason::as_str);
    changes::update(
        tx,
        "enrollments",
        org_id,
        &e.id,
        &[
            ("status", &status),
            ("stop_reason", &reason),
            ("ended_at", &ended),
            ("next_run_at", &next_run),
        ],
        now,
    )?;
    let after = get(tx, org_id, &e.id)?;
    changes::record_update(tx, org_id, actor, event_type, e, &after, now)?;
    Ok(after)
}

/// Ends enrollment `e` early for `reason`; records `enrollment.stopped`.
pub fn stop(
    tx: &Tx<'_>,
    org_id: &str,
    e: &Enrollment,
    reason: StopReason,
    actor: &Actor,
    now: Millis,
) -> DomainResult<Enrollment> {
    set_status(
        tx,
        org_id,
        e,
        "stopped",
        Some(reason),
        "enrollment.stopped",
        actor,
        now,
    )
}

/// Marks enrollment `e` completed (its last step ran); records `enrollment.completed`.
pub fn complete(tx: &Tx<'_>, org_id: &str, e: &Enrollment, now: Millis) -> DomainResult<()> {
    set_status(
        tx,
        org_id,
        e,
        "completed",
        None,
        "enrollment.completed",
        &Actor::system(),
        now,
    )?;
    Ok(())
}

/// Pauses enrollment `e` for the server (a step it cannot run); records `enrollment.paused`.
pub fn hold(tx: &Tx<'_>, org_id: &str, e: &Enrollment, now: Millis) -> DomainResult<()> {
    set_status(
        tx,
        org_id,
        e,
        "paused",
        None,
        "enrollment.paused",
        &Actor::system(),
        now,
    )?;
    Ok(())
}

/// A change a person or an agent makes to one enrollment.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// Hold it.
    Pause,
    /// Let it run again.
    Resume,
    /// End it (`manual`).
    Stop,
}

/// Pauses, resumes or stops enrollment `id`. Pausing or resuming what is not active or paused,
/// or stopping what has ended, is a 409 naming its status.
pub fn change(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    change: Change,
    now: Millis,
) -> DomainResult<Enrollment> {
    let e = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    let (from, to, event) = match change {
        Change::Pause => (EnrollmentStatus::Active, "paused", "enrollment.paused"),
        Change::Resume => (EnrollmentStatus::Paused, "active", "enrollment.resumed"),
        Change::Stop => {
            if matches!(
                e.status,
                EnrollmentStatus::Completed | EnrollmentStatus::Stopped
            ) {
                return Err(ended(&e));
            }
            return stop(tx, &p.org_id, &e, StopReason::Manual, &actor, now);
        }
    };
    if e.status == to_status(to) {
        return Ok(e);
    }
    if e.status != from {
        return Err(ended(&e));
    }
    set_status(tx, &p.org_id, &e, to, None, event, &actor, now)
}

fn to_status(s: &str) -> EnrollmentStatus {
    match s {
        "paused" => EnrollmentStatus::Paused,
        _ => EnrollmentStatus::Active,
    }
}

fn ended(e: &Enrollment) -> DomainError {
    let status = match e.status {
        EnrollmentStatus::Completed => "completed",
        EnrollmentStatus::Stopped => "stopped",
        EnrollmentStatus::Active => "active",
        EnrollmentStatus::Paused => "paused",
    };
    DomainError::Conflict {
        message: format!("enrollment {} is {status}", e.id),
        details: Vec::new(),
    }
}

/// The live (active or paused) enrollments a `WHERE` clause over `e` and `c` (the campaign)
/// picks, with `args` bound from `?2` (`?1` is the organization).
fn live(tx: &Tx<'_>, org_id: &str, condition: &str, arg: &str) -> DomainResult<Vec<Enrollment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id
         WHERE e.org_id = ?1 AND e.status IN ('active', 'paused') AND {condition}"
    );
    let rows = tx
        .prepare_cached(&sql)?
        .query_map(params![org_id, arg], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Stops the live enrollments of lead `lead_id` for `reason`: a reply stops only campaigns
/// that stop on replies, a deal only those that stop on deals; the rest stop every one.
pub fn stop_for_lead(
    tx: &Tx<'_>,
    org_id: &str,
    lead_id: &str,
    reason: StopReason,
    now: Millis,
) -> DomainResult<usize> {
    let condition = match reason {
        StopReason::Replied => "e.lead_id = ?2 AND c.stop_on_reply = 1",
        StopReason::Converted => "e.lead_id = ?2 AND c.stop_on_deal = 1",
        _ => "e.lead_id = ?2",
    };
    stop_each(
        tx,
        org_id,
        live(tx, org_id, condition, lead_id)?,
        reason,
        now,
    )
}

/// Stops the live enrollments of campaign `campaign_id` for `reason`.
pub fn stop_for_campaign(
    tx: &Tx<'_>,
    org_id: &str,
    campaign_id: &str,
    reason: StopReason,
    now: Millis,
) -> DomainResult<usize> {
    let found = live(tx, org_id, "e.campaign_id = ?2", campaign_id)?;
    stop_each(tx, org_id, found, reason, now)
}

/// Stops the live enrollments writing to `email` (an address just suppressed) for `reason`.
pub fn stop_for_address(
    tx: &Tx<'_>,
    org_id: &str,
    email: &str,
    reason: StopReason,
    now: Millis,
) -> DomainResult<usize> {
    let found = live(tx, org_id, "e.email = ?2 COLLATE NOCASE", email.trim())?;
    stop_each(tx, org_id, found, reason, now)
}

fn stop_each(
    tx: &Tx<'_>,
    org_id: &str,
    found: Vec<Enrollment>,
    reason: StopReason,
    now: Millis,
) -> DomainResult<usize> {
    let actor = Actor::system();
    for e in &found {
        stop(tx, org_id, e, reason, &actor, now)?;
    }
    Ok(found.len())
}
