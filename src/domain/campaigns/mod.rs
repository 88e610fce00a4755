//! Campaigns: outbound sequences that run by themselves. A campaign owns ordered steps (an
//! email from a template, a call or another task, each a delay after the one before), sends
//! from an address of its own on the inbox domain (so replies come back to it), within a
//! sending window and a daily cap, and stops for a lead who replies, bounces, unsubscribes or
//! gets a deal. Leads run through it as enrollments ([`crate::domain::enrollments`]), worked by
//! the scheduler ([`run`]) from the database, so a restart loses nothing.

use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, Row};

use super::auth::Principal;
use super::changes;
use super::email::{self, NewInbox, Username};
use super::enrollments::{self, StopReason};
use super::error::{DomainError, DomainResult, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::nullable::Nullable;
use super::validate::{self, Name, TimeZoneName};
use crate::clock::Millis;
use crate::db::Tx;
use crate::ids::new_id;
use crate::shape::Shaped;
use crate::timefmt::Timestamp;

pub mod enroll;
pub mod metrics;
pub mod run;
pub mod schedule;
pub mod steps;
mod window;

pub use schedule::DelayUnit;
pub(crate) use window::timing;
use window::{clock, window_columns, DAYS};
pub use window::{ClockTime, Day, SendingWindow};

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Being set up: leads may be enrolled, nothing runs.
    Draft,
    /// Running: due steps run within the sending window.
    Active,
    /// Held: nothing runs until it is activated again.
    Paused,
    /// Over: every enrollment still running was stopped.
    Completed,
    /// Put away (from draft or completed).
    Archived,
}

impl CampaignStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Archived => "archived",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            "archived" => Self::Archived,
            _ => Self::Draft,
        }
    }
}

/// The statuses, as filters take them.
pub const STATUSES: &[&str] = &["draft", "active", "paused", "completed", "archived"];

/// A campaign and its settings.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Campaign {
    /// `cmp_...`
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Nullable<String>,
    /// draft, active, paused, completed or archived.
    pub status: CampaignStatus,
    /// The address its emails come from; replies to it stop the lead's enrollment.
    pub sender: String,
    /// The name its emails come from.
    pub sender_name: Nullable<String>,
    /// When its emails may go out.
    pub window: SendingWindow,
    /// The window's time zone (none: the organization's).
    pub timezone: Nullable<String>,
    /// Most emails it sends in one local day (none: no cap).
    pub daily_cap: Nullable<i64>,
    /// Whether its HTML emails carry the open-tracking pixel.
    pub track_opens: bool,
    /// Whether a reply from a lead stops the lead's enrollment (bounces and unsubscribes
    /// always do).
    pub stop_on_reply: bool,
    /// Whether a deal for the lead (or its conversion) stops the lead's enrollment.
    pub stop_on_deal: bool,
    /// How many steps it has.
    pub step_count: i64,
    /// Who created it.
    pub created_by: Nullable<String>,
    /// When it was last activated.
    pub activated_at: Nullable<Timestamp>,
    /// When it was completed.
    pub completed_at: Nullable<Timestamp>,
    /// Bumped on every change.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A new campaign (a draft).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1–200 characters.
    pub name: Shaped<Name>,
    /// Up to 2,000 characters.
    #[oai(nullable, validator(max_length = 2000))]
    pub description: Option<String>,
    /// The sender address's local part (letters, digits, `.`, `_`, `-`); defaults to a slug
    /// of the name. Fixed once created, so replies keep finding the campaign.
    #[oai(nullable)]
    pub sender_username: Option<Shaped<Username>>,
    /// The name emails come from (up to 200 characters).
    #[oai(nullable, validator(max_length = 200))]
    pub sender_name: Option<String>,
    /// When emails may go out (default Monday to Friday, 09:00 to 17:00).
    #[oai(nullable)]
    pub window: Option<SendingWindow>,
    /// The window's time zone (default: the organization's).
    #[oai(nullable)]
    pub timezone: Option<Shaped<TimeZoneName>>,
    /// Most emails in one local day, 1 to 100,000 (default: no cap).
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "100000")))]
    pub daily_cap: Option<i64>,
    /// Track opens (default true).
    #[oai(nullable)]
    pub track_opens: Option<bool>,
    /// Stop a lead's enrollment when the lead replies (default true).
    #[oai(nullable)]
    pub stop_on_reply: Option<bool>,
    /// Stop a lead's enrollment when it gets a deal (default true).
    #[oai(nullable)]
    pub stop_on_deal: Option<bool>,
}

/// Changes to a campaign's settings; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct CampaignPatch {
    /// 1–200 characters.
    #[oai(nullable)]
    pub name: Option<Shaped<Name>>,
    /// Up to 2,000 characters.
    #[oai(nullable, validator(max_length = 2000))]
    pub description: MaybeUndefined<String>,
    /// Up to 200 characters.
    #[oai(nullable, validator(max_length = 200))]
    pub sender_name: MaybeUndefined<String>,
    /// When emails may go out.
    #[oai(nullable)]
    pub window: Option<SendingWindow>,
    /// `null`: the organization's.
    #[oai(nullable)]
    pub timezone: MaybeUndefined<Shaped<TimeZoneName>>,
    /// 1 to 100,000; `null`: no cap.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "100000")))]
    pub daily_cap: MaybeUndefined<i64>,
    /// Track opens.
    #[oai(nullable)]
    pub track_opens: Option<bool>,
    /// Stop on replies.
    #[oai(nullable)]
    pub stop_on_reply: Option<bool>,
    /// Stop on deals.
    #[oai(nullable)]
    pub stop_on_deal: Option<bool>,
}

const COLUMNS: &str = "c.id, c.name, c.description, c.status, i.address, i.display_name, \
    c.window_days, c.window_from, c.window_to, c.timezone, c.daily_cap, c.track_opens, \
    c.stop_on_reply, c.stop_on_deal, \
    (SELECT COUNT(*) FROM campaign_steps s WHERE s.campaign_id = c.id), \
    c.created_by, c.activated_at, c.completed_at, c.version, c.created_at, c.updated_at";
const FROM: &str = "campaigns c JOIN email_inboxes i ON i.campaign_id = c.id";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: FROM,
    id: "c.id",
    count_from: Some("campaigns c"),
};
const RECORD: Record = Record::new(FROM, COLUMNS, "cmp", "campaign").aliased("c.");

fn from_row(r: &Row<'_>) -> rusqlite::Result<Campaign> {
    let days: Vec<usize> = serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default();
    Ok(Campaign {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        status: CampaignStatus::parse(r.get_ref(3)?.as_str()?),
        sender: r.get(4)?,
        sender_name: r.get(5)?,
        window: SendingWindow {
            days: days
                .into_iter()
                .filter_map(|d| DAYS.get(d.wrapping_sub(1)).copied())
                .collect(),
            from: clock(r.get(7)?).into(),
            to: clock(r.get(8)?).into(),
        },
        timezone: r.get(9)?,
        daily_cap: r.get(10)?,
        track_opens: r.get(11)?,
        stop_on_reply: r.get(12)?,
        stop_on_deal: r.get(13)?,
        step_count: r.get(14)?,
        created_by: r.get(15)?,
        activated_at: Nullable(r.get::<_, Option<i64>>(16)?.map(Timestamp)),
        completed_at: Nullable(r.get::<_, Option<i64>>(17)?.map(Timestamp)),
        version: r.get(18)?,
        created_at: Timestamp(r.get(19)?),
        updated_at: Timestamp(r.get(20)?),
    })
}

/// Campaign `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Campaign> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "c.created_at"),
    ("updated_at", "c.updated_at"),
    ("name", "c.name COLLATE NOCASE"),
];

/// One page of campaigns: `status` any of, `q` in the name.
pub fn list(
    conn: &Connection,
    org_id: &str,
    status: Option<&str>,
    q: Option<&str>,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Campaign>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("c.org_id", org_id);
    filters.any_of("c.status", &any_of(status));
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "c.name LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Creates a draft campaign with its sender address; records `campaign.created`.
pub fn create(
    tx: &Tx<'_>,
    p: &Principal,
    input: NewCampaign,
    domain: &str,
    now: Millis,
) -> DomainResult<Campaign> {
    let mut issues = Issues::new();
    let name = validate::name(&mut issues, "name", &input.name);
    let description = validate::optional_text(&mut issues, "description", input.description, 2000);
    let (days, from, to) = window_columns(&mut issues, &input.window.unwrap_or_default());
    let timezone = input
        .timezone
        .map(|tz| validate::time_zone(&mut issues, "timezone", &tz));
    issues.finish()?;
    let id = new_id("cmp");
    tx.execute(
        "INSERT INTO campaigns (id, org_id, name, description, window_days, window_from, window_to,
                                timezone, daily_cap, track_opens, stop_on_reply, stop_on_deal,
                                created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
        params![
            id,
            p.org_id,
            name,
            description,
            days,
            from,
            to,
            timezone,
            input.daily_cap,
            input.track_opens.unwrap_or(true),
            input.stop_on_reply.unwrap_or(true),
            input.stop_on_deal.unwrap_or(true),
            p.user_id,
            now
        ],
    )?;
    let sender = NewInbox {
        username: input.sender_username,
        display_name: input.sender_name,
    };
    email::open_campaign_inbox(tx, &p.org_id, &id, &name, sender, domain, now)?;
    let campaign = get(tx, &p.org_id, &id)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "campaign.created",
        &campaign,
        None,
        now,
    )?;
    Ok(campaign)
}

/// Changes a campaign's settings (`If-Match` checked); records `campaign.updated`. The steps
/// of running enrollments are scheduled anew when the time zone changes.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: CampaignPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Campaign> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let mut issues = Issues::new();
    let name = match &patch.name {
        Some(n) => validate::name(&mut issues, "name", n),
        None => before.name.clone(),
    };
    let description = validate::optional_text(
        &mut issues,
        "description",
        validate::merge(patch.description, before.description.0.clone()),
        2000,
    );
    let sender_name = validate::optional_text(
        &mut issues,
        "sender_name",
        validate::merge(patch.sender_name, before.sender_name.0.clone()),
        200,
    );
    let (days, from, to) =
        window_columns(&mut issues, patch.window.as_ref().unwrap_or(&before.window));
    let timezone = validate::merge(patch.timezone, before.timezone.0.clone())
        .map(|tz| validate::time_zone(&mut issues, "timezone", &tz));
    issues.finish()?;
    let daily_cap = validate::merge(patch.daily_cap, before.daily_cap.0);
    let track = patch.track_opens.unwrap_or(before.track_opens);
    let on_reply = patch.stop_on_reply.unwrap_or(before.stop_on_reply);
    let on_deal = patch.stop_on_deal.unwrap_or(before.stop_on_deal);
    email::rename_sender(tx, id, sender_name.as_deref())?;
    changes::update(
        tx,
        "campaigns",
        &p.org_id,
        id,
        &[
            ("name", &name),
            ("description", &description),
            ("window_days", &days),
            ("window_from", &from),
            ("window_to", &to),
            ("timezone", &timezone),
            ("daily_cap", &daily_cap),
            ("track_opens", &track),
            ("stop_on_reply", &on_reply),
            ("stop_on_deal", &on_deal),
        ],
        now,
    )?;
    let after = get(tx, &p.org_id, id)?;
    if after.sender_name != before.sender_name && after.version == before.version {
        // Only the sender's name changed: still a new version of the campaign.
        tx.execute(
            "UPDATE campaigns SET version = version + 1, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    let after = get(tx, &p.org_id, id)?;
    if after.version != before.version {
        changes::record_update(
            tx,
            &p.org_id,
            &Actor::from(p),
            "campaign.updated",
            &before,
            &after,
            now,
        )?;
        if after.timezone != before.timezone {
            steps::reschedule(tx, &p.org_id, id, now)?;
        }
    }
    Ok(after)
}

/// Deletes a draft campaign with its steps and enrollments; records `campaign.deleted`. A
/// campaign that has run is kept for its history: 409, archive it instead.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Campaign> {
    let campaign = get(tx, &p.org_id, id)?;
    if campaign.status != CampaignStatus::Draft || campaign.activated_at.0.is_some() {
        return Err(DomainError::Conflict {
            message: format!(
                "campaign {id} has run ({}); complete and archive it instead",
                campaign.status.as_str()
            ),
            details: Vec::new(),
        });
    }
    changes::remove(
        tx,
        "campaigns",
        &p.org_id,
        id,
        &Actor::from(p),
        "campaign.deleted",
        &campaign,
        now,
    )?;
    Ok(campaign)
}

/// A change of a campaign's status.
#[derive(Debug, Clone, Copy)]
pub enum Transition {
    /// Start (from draft) or resume (from paused).
    Activate,
    /// Hold (from active).
    Pause,
    /// End (from active or paused): running enrollments stop.
    Complete,
    /// Put away (from draft or completed).
    Archive,
}

/// Moves campaign `id` through `t`; records `campaign.<activated|paused|completed|archived>`.
/// A move the status does not allow is a 409 naming the status; asking for the status it has
/// changes nothing.
pub fn transition(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    t: Transition,
    now: Millis,
) -> DomainResult<Campaign> {
    use CampaignStatus::*;
    let before = get(tx, &p.org_id, id)?;
    let (to, allowed, event): (CampaignStatus, &[CampaignStatus], &str) = match t {
        Transition::Activate => (Active, &[Draft, Paused], "campaign.activated"),
        Transition::Pause => (Paused, &[Active], "campaign.paused"),
        Transition::Complete => (Completed, &[Active, Paused], "campaign.completed"),
        Transition::Archive => (Archived, &[Draft, Completed], "campaign.archived"),
    };
    if before.status == to {
        return Ok(before);
    }
    if !allowed.contains(&before.status) {
        let from: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(DomainError::Conflict {
            message: format!(
                "campaign {id} is {}; it can become {} only from {}",
                before.status.as_str(),
                to.as_str(),
                from.join(" or ")
            ),
            details: Vec::new(),
        });
    }
    if to == Active && before.step_count == 0 {
        return Err(DomainError::Conflict {
            message: format!("campaign {id} has no steps; add one before activating it"),
            details: Vec::new(),
        });
    }
    let activated = if to == Active {
        Some(now)
    } else {
        before.activated_at.0.map(|t| t.0)
    };
    let completed = (to == Completed).then_some(now);
    changes::update(
        tx,
        "campaigns",
        &p.org_id,
        id,
        &[
            ("status", &to.as_str()),
            ("activated_at", &activated),
            ("completed_at", &completed),
        ],
        now,
    )?;
    let actor = Actor::from(p);
    if to == Active && before.status == Draft {
        // Delays count from the start, not from when each lead was enrolled in the draft.
        tx.execute(
            "UPDATE enrollments SET anchor_at = ?2 WHERE campaign_id = ?1 AND steps_run = 0",
            params![id, now],
        )?;
        steps::reschedule(tx, &p.org_id, id, now)?;
    }
    if to == Completed {
        enrollments::stop_for_campaign(tx, &p.org_id, id, StopReason::CampaignCompleted, now)?;
    }
    let after = get(tx, &p.org_id, id)?;
    changes::record_update(tx, &p.org_id, &actor, event, &before, &after, now)?;
    Ok(after)
}
