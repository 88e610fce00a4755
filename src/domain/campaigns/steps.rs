//! A campaign's steps, in order. An enrollment remembers the position of the last step it ran
//! and takes the first step after it, read when it comes due: so adding, changing or removing
//! a step of a running campaign applies to every enrollment that has not reached it.

use super::*;
use crate::domain::templates;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Sends an email from a template, from the campaign's sender.
    Email,
    /// Creates a call task for the lead's owner.
    Call,
    /// Creates a task for the lead's owner.
    Task,
}

impl StepKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Call => "call",
            Self::Task => "task",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "call" => Self::Call,
            "task" => Self::Task,
            _ => Self::Email,
        }
    }
}

/// One step of a campaign.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Step {
    /// `stp_...`
    pub id: String,
    /// The campaign.
    pub campaign_id: String,
    /// Its place: steps run in increasing position.
    pub position: i64,
    /// email, call or task.
    pub kind: StepKind,
    /// The template an email step sends.
    pub template_id: Nullable<String>,
    /// An email step: send as a reply in the thread of the enrollment's previous email.
    pub in_thread: bool,
    /// A call or task step: the task's title.
    pub title: Nullable<String>,
    /// How long after the previous step (or the enrollment, for the first) it comes due.
    pub delay: i64,
    /// The delay's unit.
    pub delay_unit: DelayUnit,
    /// Bumped on every change.
    pub version: i64,
    /// When it was added.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A new step.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewStep {
    /// email, call or task.
    pub kind: StepKind,
    /// An email step's template (`tpl_...`); required for email, refused otherwise.
    #[oai(nullable)]
    pub template_id: Option<String>,
    /// An email step: reply in the thread of the previous email (default false).
    #[oai(nullable)]
    pub in_thread: Option<bool>,
    /// A task step's title (required), or a call's (default "Call <lead>"); up to 500.
    #[oai(nullable, validator(max_length = 500))]
    pub title: Option<String>,
    /// 0 to 10,000 (default 0: at once).
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "10000")))]
    pub delay: Option<i64>,
    /// Default `days`.
    #[oai(nullable)]
    pub delay_unit: Option<DelayUnit>,
    /// Where it goes, from 1: before the step at that position (default: last).
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "1000")))]
    pub position: Option<i64>,
}

/// Changes to a step; absent fields stay.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct StepPatch {
    /// An email step's template.
    #[oai(nullable)]
    pub template_id: Option<String>,
    /// Reply in the previous email's thread.
    #[oai(nullable)]
    pub in_thread: Option<bool>,
    /// A task's or call's title; `null` clears a call's.
    #[oai(nullable, validator(max_length = 500))]
    pub title: MaybeUndefined<String>,
    /// 0 to 10,000.
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "10000")))]
    pub delay: Option<i64>,
    /// The delay's unit.
    #[oai(nullable)]
    pub delay_unit: Option<DelayUnit>,
}

const COLUMNS: &str = "id, campaign_id, position, kind, template_id, in_thread, title, delay, \
    delay_unit, version, created_at, updated_at";
const RECORD: Record = Record::new("campaign_steps", COLUMNS, "stp", "campaign step");

fn from_row(r: &Row<'_>) -> rusqlite::Result<Step> {
    Ok(Step {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        position: r.get(2)?,
        kind: StepKind::parse(r.get_ref(3)?.as_str()?),
        template_id: r.get(4)?,
        in_thread: r.get(5)?,
        title: r.get(6)?,
        delay: r.get(7)?,
        delay_unit: DelayUnit::parse(r.get_ref(8)?.as_str()?),
        version: r.get(9)?,
        created_at: Timestamp(r.get(10)?),
        updated_at: Timestamp(r.get(11)?),
    })
}

/// Step `step_id` of campaign `campaign_id`.
pub fn get(
    conn: &Connection,
    org_id: &str,
    campaign_id: &str,
    step_id: &str,
) -> DomainResult<Step> {
    let step = RECORD.get(conn, org_id, step_id, from_row)?;
    if step.campaign_id != campaign_id {
        return Err(DomainError::NotFound("campaign step"));
    }
    Ok(step)
}

/// The campaign's steps in order.
pub fn list(conn: &Connection, org_id: &str, campaign_id: &str) -> DomainResult<Vec<Step>> {
    super::get(conn, org_id, campaign_id)?;
    all(conn, campaign_id)
}

fn all(conn: &Connection, campaign_id: &str) -> DomainResult<Vec<Step>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM campaign_steps WHERE campaign_id = ?1 ORDER BY position"
        ))?
        .query_map(params![campaign_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The step after position `done` (the one an enrollment runs next), if any.
pub(crate) fn after(conn: &Connection, campaign_id: &str, done: i64) -> DomainResult<Option<Step>> {
    Ok(all(conn, campaign_id)?
        .into_iter()
        .find(|s| s.position > done))
}

/// A campaign that is over cannot change its steps: 409.
fn check_editable(c: &Campaign) -> DomainResult<()> {
    if matches!(
        c.status,
        CampaignStatus::Completed | CampaignStatus::Archived
    ) {
        return Err(DomainError::Conflict {
            message: format!(
                "campaign {} is {}; its steps are fixed",
                c.id,
                c.status.as_str()
            ),
            details: Vec::new(),
        });
    }
    Ok(())
}

/// The template an email step names, checked; a call or task step names none.
fn check_template(
    conn: &Connection,
    org_id: &str,
    issues: &mut Issues,
    kind: StepKind,
    template_id: Option<&str>,
) -> DomainResult<()> {
    match (kind, template_id) {
        (StepKind::Email, None) => issues.add("template_id", "is required for an email step"),
        (StepKind::Email, Some(t)) => {
            if templates::get(conn, org_id, t).is_err() {
                issues.add("template_id", crate::error::unknown("email template", t));
            }
        }
        (_, Some(_)) => issues.add("template_id", "is only for email steps"),
        (_, None) => {}
    }
    Ok(())
}

/// Adds a step; records `campaign_step.created`. Steps at and after its position move one
/// place down, and so do enrollments past them, so none runs a step twice or skips one.
pub fn create(
    tx: &Tx<'_>,
    p: &Principal,
    campaign_id: &str,
    input: NewStep,
    now: Millis,
) -> DomainResult<Step> {
    let campaign = super::get(tx, &p.org_id, campaign_id)?;
    check_editable(&campaign)?;
    let mut issues = Issues::new();
    check_template(
        tx,
        &p.org_id,
        &mut issues,
        input.kind,
        input.template_id.as_deref(),
    )?;
    let title = validate::optional_text(&mut issues, "title", input.title, 500);
    if input.kind == StepKind::Task && title.is_none() {
        issues.add("title", "is required for a task step");
    }
    if input.kind != StepKind::Email && input.in_thread == Some(true) {
        issues.add("in_thread", "is only for email steps");
    }
    issues.finish()?;
    let last: i64 = tx.query_row(
        "SELECT COALESCE(MAX(position), 0) FROM campaign_steps WHERE campaign_id = ?1",
        params![campaign_id],
        |r| r.get(0),
    )?;
    let position = input.position.map_or(last + 1, |p| p.min(last + 1));
    if position <= last {
        // Two passes, so no two steps hold one position in between.
        tx.execute(
            "UPDATE campaign_steps SET position = -(position + 1)
             WHERE campaign_id = ?1 AND position >= ?2",
            params![campaign_id, position],
        )?;
        tx.execute(
            "UPDATE campaign_steps SET position = -position WHERE campaign_id = ?1 AND position < 0",
            params![campaign_id],
        )?;
        tx.execute(
            "UPDATE enrollments SET done_position = done_position + 1
             WHERE campaign_id = ?1 AND done_position >= ?2",
            params![campaign_id, position],
        )?;
    }
    let id = new_id("stp");
    tx.execute(
        "INSERT INTO campaign_steps (id, org_id, campaign_id, position, kind, template_id, in_thread,
                                     title, delay, delay_unit, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![
            id,
            p.org_id,
            campaign_id,
            position,
            input.kind.as_str(),
            input.template_id,
            input.in_thread.unwrap_or(false),
            title,
            input.delay.unwrap_or(0),
            input.delay_unit.unwrap_or(DelayUnit::Days).as_str(),
            now
        ],
    )?;
    reschedule(tx, &p.org_id, campaign_id, now)?;
    let step = get(tx, &p.org_id, campaign_id, &id)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "campaign_step.created",
        &step,
        None,
        now,
    )?;
    Ok(step)
}

/// Changes a step (`If-Match` checked); records `campaign_step.updated`. A new delay moves the
/// next run of every enrollment waiting for the step.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    campaign_id: &str,
    step_id: &str,
    patch: StepPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Step> {
    let campaign = super::get(tx, &p.org_id, campaign_id)?;
    check_editable(&campaign)?;
    let before = get(tx, &p.org_id, campaign_id, step_id)?;
    validate::if_match(expected_version, before.version)?;
    let mut issues = Issues::new();
    let template_id = patch.template_id.or(before.template_id.0.clone());
    check_template(
        tx,
        &p.org_id,
        &mut issues,
        before.kind,
        template_id.as_deref(),
    )?;
    let title = validate::optional_text(
        &mut issues,
        "title",
        validate::merge(patch.title, before.title.0.clone()),
        500,
    );
    if before.kind == StepKind::Task && title.is_none() {
        issues.add("title", "is required for a task step");
    }
    let in_thread = patch.in_thread.unwrap_or(before.in_thread);
    if before.kind != StepKind::Email && in_thread {
        issues.add("in_thread", "is only for email steps");
    }
    issues.finish()?;
    let delay = patch.delay.unwrap_or(before.delay);
    let unit = patch.delay_unit.unwrap_or(before.delay_unit).as_str();
    let wrote = changes::update(
        tx,
        "campaign_steps",
        &p.org_id,
        step_id,
        &[
            ("template_id", &template_id),
            ("in_thread", &in_thread),
            ("title", &title),
            ("delay", &delay),
            ("delay_unit", &unit),
        ],
        now,
    )?;
    let after = get(tx, &p.org_id, campaign_id, step_id)?;
    if wrote {
        reschedule(tx, &p.org_id, campaign_id, now)?;
        changes::record_update(
            tx,
            &p.org_id,
            &Actor::from(p),
            "campaign_step.updated",
            &before,
            &after,
            now,
        )?;
    }
    Ok(after)
}

/// Removes a step; records `campaign_step.deleted`. Enrollments waiting for it go on to the
/// step after it.
pub fn delete(
    tx: &Tx<'_>,
    p: &Principal,
    campaign_id: &str,
    step_id: &str,
    now: Millis,
) -> DomainResult<Step> {
    let campaign = super::get(tx, &p.org_id, campaign_id)?;
    check_editable(&campaign)?;
    let step = get(tx, &p.org_id, campaign_id, step_id)?;
    changes::remove(
        tx,
        "campaign_steps",
        &p.org_id,
        step_id,
        &Actor::from(p),
        "campaign_step.deleted",
        &step,
        now,
    )?;
    reschedule(tx, &p.org_id, campaign_id, now)?;
    Ok(step)
}

/// Sets the next run of every active enrollment of the campaign from its last step's time and
/// the delay of the step it waits for (none left: due now, to complete).
pub(crate) fn reschedule(
    tx: &Tx<'_>,
    org_id: &str,
    campaign_id: &str,
    now: Millis,
) -> DomainResult<()> {
    let campaign = super::get(tx, org_id, campaign_id)?;
    let (_, tz) = super::timing(tx, &campaign)?;
    let steps = all(tx, campaign_id)?;
    let waiting: Vec<(String, i64, i64)> = tx
        .prepare_cached(
            "SELECT id, done_position, anchor_at FROM enrollments
             WHERE campaign_id = ?1 AND status IN ('active', 'paused')",
        )?
        .query_map(params![campaign_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, done, anchor) in waiting {
        let next = steps
            .iter()
            .find(|s| s.position > done)
            .map_or(now, |s| schedule::after(anchor, s.delay, s.delay_unit, &tz));
        tx.prepare_cached("UPDATE enrollments SET next_run_at = ?2 WHERE id = ?1")?
            .execute(params![id, next])?;
    }
    tx.queue_work();
    Ok(())
}
