//! Activities: calls, emails, meetings and the like, logged against a deal or a lead.

use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::Object;
use rusqlite::{params, Connection, Row};

use super::auth::{Principal, Role};
use super::error::{DomainError, DomainResult, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::terms::Term;
use super::{scores, validate};
use crate::clock::Millis;
use crate::domain::changes;
use crate::ids::new_id;
use crate::timefmt::Timestamp;

/// Types a client may log.
pub const CLIENT_TYPES: &[&str] = &["call", "email", "meeting", "sms", "linkedin", "other"];
/// Types only the server writes (email and pipeline bookkeeping).
pub const SYSTEM_TYPES: &[&str] = &[
    "email_sent",
    "email_received",
    "email_opened",
    "stage_changed",
];

/// An activity.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Activity {
    /// `act_...`
    pub id: String,
    /// call, email, meeting, sms, linkedin, other; or, written by the server, email_sent,
    /// email_received, email_opened, stage_changed.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub activity_type: Term<ActivityType>,
    /// One line.
    pub subject: Nullable<String>,
    /// Details.
    pub body: Nullable<String>,
    /// The deal it belongs to.
    pub deal_id: Nullable<String>,
    /// The lead it belongs to.
    pub lead_id: Nullable<String>,
    /// Who did it.
    pub user_id: Nullable<String>,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Length of a call or meeting.
    pub duration_seconds: Nullable<i64>,
    /// How a call went (e.g. connected, no_answer, voicemail).
    pub outcome: Nullable<String>,
    /// Always 1: activities are a record and are not edited.
    pub version: i64,
    /// When it was logged.
    pub created_at: Timestamp,
}

/// An activity to log, on a deal, a lead, or both (at least one).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewActivity {
    /// call, email, meeting, sms, linkedin or other.
    #[oai(rename = "type")]
    pub activity_type: Term<LoggableActivityType>,
    /// Up to 500 characters.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub subject: Option<String>,
    /// Up to 50,000 characters.
    #[oai(validator(max_length = 50000))]
    #[oai(nullable)]
    pub body: Option<String>,
    /// A deal of this organization.
    #[oai(nullable)]
    pub deal_id: Option<String>,
    /// A lead of this organization.
    #[oai(nullable)]
    pub lead_id: Option<String>,
    /// When it happened; defaults to now. A scheduled meeting may be dated ahead: it moves the
    /// deal's and lead's last activity only to now.
    #[oai(nullable)]
    pub occurred_at: Option<Timestamp>,
    /// Seconds, for calls and meetings.
    #[oai(validator(minimum(value = "0"), maximum(value = "86400")))]
    #[oai(nullable)]
    pub duration_seconds: Option<i64>,
    /// How a call went.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub outcome: Option<String>,
    /// The teammate who did it, credited in the leaderboard (an active user of this
    /// organization); defaults to the caller, or for an API key the user who made it. Naming
    /// someone else takes an admin's or owner's credential: a dialer sync or an agent logs a
    /// call for the rep who made it.
    #[oai(nullable)]
    pub user_id: Option<String>,
}

/// What an activity says, whoever logs it: a caller ([`NewActivity`]) or the server about its
/// own work (a stage change, an email), whose types a caller cannot log.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// One line.
    pub subject: Option<String>,
    /// Details.
    pub body: Option<String>,
    /// The deal it is on.
    pub deal_id: Option<String>,
    /// The lead it is on.
    pub lead_id: Option<String>,
    /// When it happened (default: now).
    pub occurred_at: Option<Timestamp>,
    /// Length of a call or meeting.
    pub duration_seconds: Option<i64>,
    /// How a call went.
    pub outcome: Option<String>,
}

impl NewActivity {
    /// Its type, as any activity type, and what it says.
    fn split(self) -> (Term<ActivityType>, Details) {
        (
            Term::known(self.activity_type),
            Details {
                subject: self.subject,
                body: self.body,
                deal_id: self.deal_id,
                lead_id: self.lead_id,
                occurred_at: self.occurred_at,
                duration_seconds: self.duration_seconds,
                outcome: self.outcome,
            },
        )
    }
}

pub(crate) const COLUMNS: &str =
    "id, type, subject, body, deal_id, lead_id, user_id, occurred_at, \
    duration_seconds, outcome, version, created_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "activities",
    id: "id",
    count_from: None,
};

/// Maps a row of [`COLUMNS`].
pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Activity> {
    Ok(Activity {
        id: r.get(0)?,
        activity_type: r.get(1)?,
        subject: r.get(2)?,
        body: r.get(3)?,
        deal_id: r.get(4)?,
        lead_id: r.get(5)?,
        user_id: r.get(6)?,
        occurred_at: Timestamp(r.get(7)?),
        duration_seconds: r.get(8)?,
        outcome: r.get(9)?,
        version: r.get(10)?,
        created_at: Timestamp(r.get(11)?),
    })
}

const RECORD: Record = Record::new("activities", COLUMNS, "act", "activity");

/// The activity `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Activity> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Filters of the activity list.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Any of these types.
    pub activity_type: Option<String>,
    /// On any of these deals.
    pub deal_id: Option<String>,
    /// On any of these leads.
    pub lead_id: Option<String>,
    /// Done by any of these users.
    pub user_id: Option<String>,
    /// Happened at or after.
    pub occurred_after: Option<Millis>,
    /// Happened before.
    pub occurred_before: Option<Millis>,
    /// Logged at or after.
    pub created_after: Option<Millis>,
    /// Logged before.
    pub created_before: Option<Millis>,
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[("created_at", "created_at"), ("occurred_at", "occurred_at")];

/// One page of activities.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &ActivityFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Activity>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    let types = any_of(f.activity_type.as_deref());
    let known: Vec<&str> = CLIENT_TYPES.iter().chain(SYSTEM_TYPES).copied().collect();
    validate::one_of("type", &types, &known)?;
    filters.any_of("type", &types);
    filters.any_of("deal_id", &any_of(f.deal_id.as_deref()));
    filters.any_of("lead_id", &any_of(f.lead_id.as_deref()));
    filters.any_of("user_id", &any_of(f.user_id.as_deref()));
    if let Some(t) = f.occurred_after {
        filters.push("occurred_at >= ?", vec![t.into()]);
    }
    if let Some(t) = f.occurred_before {
        filters.push("occurred_at < ?", vec![t.into()]);
    }
    filters.time_window("", f.created_after, f.created_before, None);
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Logs an activity of any type (the server's own types included) and moves the deal's and
/// lead's `last_activity_at` forward; records `activity.created`.
pub fn record(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    user_id: Option<&str>,
    activity_type: Term<ActivityType>,
    input: Details,
    now: Millis,
) -> DomainResult<Activity> {
    let mut issues = Issues::new();
    let subject = validate::optional_text(&mut issues, "subject", input.subject, 500);
    let body = validate::optional_text(&mut issues, "body", input.body, 50_000);
    let outcome = validate::optional_text(&mut issues, "outcome", input.outcome, 100);
    if input.deal_id.is_none() && input.lead_id.is_none() {
        issues.add(
            "deal_id",
            "or lead_id is required: an activity is logged on a deal or a lead",
        );
    }
    validate::reference(
        tx,
        &mut issues,
        "deal_id",
        "deals",
        "deal",
        org_id,
        input.deal_id.as_deref(),
    )?;
    validate::reference(
        tx,
        &mut issues,
        "lead_id",
        "leads",
        "lead",
        org_id,
        input.lead_id.as_deref(),
    )?;
    let occurred_at = input.occurred_at.map_or(now, |t| t.0);
    issues.finish()?;
    let id = new_id("act");
    tx.execute(
        "INSERT INTO activities (id, org_id, type, subject, body, deal_id, lead_id, user_id,
                                 occurred_at, duration_seconds, outcome, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            id,
            org_id,
            activity_type,
            subject,
            body,
            input.deal_id,
            input.lead_id,
            user_id,
            occurred_at,
            input.duration_seconds,
            outcome,
            now
        ],
    )?;
    // The deal's and the lead's `last_activity_at` follow by trigger (schema.sql, step 13);
    // the lead's score reads its recent activities.
    if let Some(lead_id) = &input.lead_id {
        scores::refresh(tx, org_id, lead_id, now)?;
    }
    let activity = get(tx, org_id, &id)?;
    changes::append(tx, org_id, actor, "activity.created", &activity, None, now)?;
    super::signals::on_activity(
        tx,
        org_id,
        &super::signals::Touch {
            activity_id: &activity.id,
            activity_type: &activity.activity_type,
            subject: activity.subject.as_deref(),
            deal_id: activity.deal_id.as_deref(),
            lead_id: activity.lead_id.as_deref(),
        },
        now,
    )?;
    Ok(activity)
}

/// Logs a client's activity (only the client types), credited to `user_id` or the caller.
pub fn create(
    tx: &Tx<'_>,
    p: &Principal,
    mut input: NewActivity,
    now: Millis,
) -> DomainResult<Activity> {
    let credited = match input.user_id.take() {
        Some(other) if other != p.user_id => {
            if !matches!(p.role, Role::Admin | Role::Owner) {
                return Err(DomainError::Forbidden(format!(
                    "crediting an activity to another user takes an admin's or owner's credential; this one acts for a {}",
                    p.role.as_str()
                )));
            }
            let mut issues = Issues::new();
            validate::active_user(tx, &mut issues, "user_id", &p.org_id, Some(&other))?;
            issues.finish()?;
            other
        }
        _ => p.user_id.clone(),
    };
    let (activity_type, details) = input.split();
    record(
        tx,
        &p.org_id,
        &Actor::from(p),
        Some(&credited),
        activity_type,
        details,
        now,
    )
}

/// Deletes an activity; records `activity.deleted`. `last_activity_at` on the deal and lead is
/// recomputed from what remains.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Activity> {
    let activity = get(tx, &p.org_id, id)?;
    tx.execute(
        "DELETE FROM activities WHERE org_id = ?1 AND id = ?2",
        params![p.org_id, id],
    )?;
    for (table, column, value) in [
        ("deals", "deal_id", &activity.deal_id),
        ("leads", "lead_id", &activity.lead_id),
    ] {
        if let Nullable(Some(v)) = value {
            tx.execute(
                &format!(
                    "UPDATE {table} SET last_activity_at =
                        (SELECT max(occurred_at) FROM activities WHERE {column} = ?1)
                     WHERE id = ?1"
                ),
                params![v],
            )?;
        }
    }
    if let Nullable(Some(lead_id)) = &activity.lead_id {
        super::scores::refresh(tx, &p.org_id, lead_id, now)?;
    }
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "activity.deleted",
        &activity,
        None,
        now,
    )?;
    Ok(activity)
}

crate::domain::terms::vocabularies! {
    /// An activity type a caller may log.
    LoggableActivityType = "LoggableActivityType",
        "An activity a caller logs.",
        CLIENT_TYPES.iter().copied();
    /// Any activity type, the server's own included.
    ActivityType = "ActivityType",
        "What an activity was: one a caller logs, or one the server writes itself (email_sent, \
         email_received, email_opened, stage_changed).",
        CLIENT_TYPES.iter().chain(SYSTEM_TYPES).copied();
}
