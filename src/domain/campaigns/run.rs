//! The scheduler's work: running each due enrollment's next step. A step runs in one write
//! transaction with everything it causes — the queued email or the task, the row in
//! `enrollment_steps` whose primary key forbids a second run, the enrollment's advance and
//! its event — so a crash either leaves the step undone (it runs after the restart) or done
//! once. The email is then sent by the mail sender from the outbox like any other.

use super::steps::{Step, StepKind};
use super::*;
use crate::db::CachedRow;
use crate::domain::auth::Role;
use crate::domain::leads;
use crate::domain::suppressions;
use crate::domain::tasks::{self, NewTask};
use crate::domain::templates;

/// A due enrollment: its id and organization.
pub type Due = (String, String);

/// Up to `limit` enrollments of active campaigns whose next step is due, the longest due
/// first.
pub fn due(conn: &Connection, limit: usize, now: Millis) -> DomainResult<Vec<Due>> {
    Ok(conn
        .prepare_cached(
            "SELECT e.id, e.org_id FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id
             WHERE e.status = 'active' AND e.next_run_at <= ?1 AND c.status = 'active'
             ORDER BY e.next_run_at LIMIT ?2",
        )?
        .query_map(params![now, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// How many campaign emails wait in the outbox (queued or being sent), counted up to `limit`.
/// The scheduler runs no step while `limit` wait: it keeps just ahead of the sender instead of
/// rendering a whole campaign into the outbox at once (a burst that held up the requests
/// around it), and a campaign whose mail cannot go out stops piling it up.
pub fn mail_waiting(conn: &Connection, limit: usize) -> DomainResult<usize> {
    Ok(conn.cached_row(
        "SELECT COUNT(*) FROM (SELECT 1 FROM emails
          WHERE status IN ('queued', 'sending') AND enrollment_id IS NOT NULL LIMIT ?1)",
        params![limit as i64],
        |r| r.get::<_, i64>(0),
    )? as usize)
}

/// Runs due enrollment `d`'s next step, if it is still due (another transaction may have
/// paused or stopped it since it was read).
pub fn run(tx: &Tx<'_>, d: &Due, domain: &str, now: Millis) -> DomainResult<()> {
    let (id, org_id) = d;
    let e = enrollments::get(tx, org_id, id)?;
    let still_due = e.status == enrollments::EnrollmentStatus::Active
        && e.next_run_at.0.is_some_and(|t| t.0 <= now);
    if still_due {
        run_one(tx, org_id, &e, domain, now)?;
    }
    Ok(())
}

/// Puts enrollment `d`'s next try off until `until` (its step failed).
pub fn put_off(tx: &Tx<'_>, d: &Due, until: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE enrollments SET next_run_at = ?2 WHERE id = ?1",
        params![d.0, until],
    )?;
    Ok(())
}

/// What became of a due enrollment this time.
enum Outcome {
    /// The step ran: its email or task.
    Ran(Option<String>, Option<String>),
    /// Not yet: due again at this time (outside the window, or over the day's cap).
    Later(Millis),
    /// The enrollment ended.
    Ended,
}

fn run_one(
    tx: &Tx<'_>,
    org_id: &str,
    e: &enrollments::Enrollment,
    domain: &str,
    now: Millis,
) -> DomainResult<()> {
    let campaign = super::get(tx, org_id, &e.campaign_id)?;
    // Read once for the step and for what follows it.
    let all = steps::list(tx, org_id, &campaign.id)?;
    let timing = super::timing(tx, &campaign)?;
    let Some(step) = all.iter().find(|s| s.position > e.last_position) else {
        enrollments::complete(tx, org_id, e, now)?;
        return Ok(());
    };
    let outcome = match step.kind {
        StepKind::Email => email_step(tx, org_id, &campaign, &timing, e, step, domain, now)?,
        StepKind::Call | StepKind::Task => task_step(tx, org_id, &campaign, e, step, now)?,
    };
    match outcome {
        Outcome::Later(at) => {
            tx.prepare_cached("UPDATE enrollments SET next_run_at = ?2 WHERE id = ?1")?
                .execute(params![e.id, at])?;
        }
        Outcome::Ended => {}
        Outcome::Ran(email_id, task_id) => {
            let recorded = tx
                .prepare_cached(
                    "INSERT INTO enrollment_steps (enrollment_id, step_id, org_id, campaign_id, kind,
                                                   email_id, task_id, ran_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    e.id,
                    step.id,
                    org_id,
                    campaign.id,
                    step.kind.as_str(),
                    email_id,
                    task_id,
                    now
                ])?;
            if recorded == 0 {
                // Ran before: the transaction is rolled back by the caller's error.
                return Err(DomainError::Internal(format!(
                    "step {} already ran for enrollment {}",
                    step.id, e.id
                )));
            }
            let next = all.iter().find(|s| s.position > step.position);
            advance(tx, org_id, &timing.1, e, step, next, now)?;
        }
    }
    Ok(())
}

/// Records that `step` ran: the enrollment moves past it, due for the next step after its
/// delay (or completes, with none left); records `enrollment.advanced`.
fn advance(
    tx: &Tx<'_>,
    org_id: &str,
    tz: &jiff::tz::TimeZone,
    e: &enrollments::Enrollment,
    step: &Step,
    next: Option<&Step>,
    now: Millis,
) -> DomainResult<()> {
    let next_run = next.map_or(now, |s| schedule::after(now, s.delay, s.delay_unit, tz));
    tx.prepare_cached(
        "UPDATE enrollments SET done_position = ?2, steps_run = steps_run + 1, anchor_at = ?3,
                next_run_at = ?4, version = version + 1, updated_at = ?3
         WHERE id = ?1",
    )?
    .execute(params![e.id, step.position, now, next_run])?;
    let after = enrollments::get(tx, org_id, &e.id)?;
    changes::record_update(
        tx,
        org_id,
        &Actor::system(),
        "enrollment.advanced",
        e,
        &after,
        now,
    )?;
    if next.is_none() {
        enrollments::complete(tx, org_id, &after, now)?;
    }
    Ok(())
}

/// The enrollment's lead; none (and the enrollment stopped, `lead_deleted`) once it is gone.
fn lead_of(
    tx: &Tx<'_>,
    org_id: &str,
    e: &enrollments::Enrollment,
    now: Millis,
) -> DomainResult<Option<leads::Lead>> {
    let lead = e
        .lead_id
        .0
        .as_deref()
        .and_then(|id| leads::get(tx, org_id, id).ok());
    if lead.is_none() {
        enrollments::stop(
            tx,
            org_id,
            e,
            StopReason::LeadDeleted,
            &Actor::system(),
            now,
        )?;
    }
    Ok(lead)
}

/// An email step: within the window and under the day's cap, renders the template for the
/// lead and queues the message from the campaign's sender.
#[allow(clippy::too_many_arguments)] // the step's context, each distinct
fn email_step(
    tx: &Tx<'_>,
    org_id: &str,
    campaign: &Campaign,
    (window, tz): &(schedule::Window, jiff::tz::TimeZone),
    e: &enrollments::Enrollment,
    step: &Step,
    domain: &str,
    now: Millis,
) -> DomainResult<Outcome> {
    let Some(open) = schedule::open_at(now, window, tz) else {
        return Ok(Outcome::Later(now + 24 * 3_600_000));
    };
    if open > now {
        return Ok(Outcome::Later(open));
    }
    if let Some(cap) = campaign.daily_cap.0 {
        let (start, end) = schedule::day_of(now, tz);
        let sent: i64 = tx.query_row(
            "SELECT COUNT(*) FROM enrollment_steps
             WHERE campaign_id = ?1 AND kind = 'email' AND ran_at >= ?2 AND ran_at < ?3",
            params![campaign.id, start, end],
            |r| r.get(0),
        )?;
        if sent >= cap {
            let tomorrow = schedule::open_at(end, window, tz).unwrap_or(end);
            return Ok(Outcome::Later(tomorrow));
        }
    }
    let actor = Actor::system();
    let Some(lead) = lead_of(tx, org_id, e, now)? else {
        return Ok(Outcome::Ended);
    };
    let Some(to) = e.email.0.clone() else {
        enrollments::stop(tx, org_id, e, StopReason::Suppressed, &actor, now)?;
        return Ok(Outcome::Ended);
    };
    if suppressions::find(tx, org_id, &to)?.is_some() {
        enrollments::stop(tx, org_id, e, StopReason::Suppressed, &actor, now)?;
        return Ok(Outcome::Ended);
    }
    let owner = lead
        .owner_id
        .0
        .clone()
        .or_else(|| campaign.created_by.0.clone());
    let template_id = step.template_id.0.as_deref().unwrap_or_default();
    let template = templates::get(tx, org_id, template_id)?;
    let lead_id = lead.id.clone();
    let context = templates::for_lead(tx, org_id, lead)?;
    let rendered = match templates::render_for(&template, &context) {
        Ok(r) => r,
        Err(err) => {
            // A template this lead cannot fill (a field it lacks, with no fallback): hold the
            // enrollment for a person to fix, rather than send a broken email or skip a step.
            tracing::warn!(enrollment = %e.id, "campaign step not rendered: {err}");
            enrollments::hold(tx, org_id, e, now)?;
            return Ok(Outcome::Ended);
        }
    };
    let text = match (rendered.text_body.0, &rendered.html_body.0) {
        (Some(text), _) => text,
        (None, Some(html)) => templates::render::text_of(html),
        (None, None) => String::new(),
    };
    let parent = if step.in_thread {
        tx.query_row(
            "SELECT id FROM emails WHERE enrollment_id = ?1 AND direction = 'outbound'
             ORDER BY created_at DESC, id DESC LIMIT 1",
            params![e.id],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .map(|id| email::get_by_id(tx, org_id, &id))
        .transpose()?
    } else {
        None
    };
    let sent = email::send_for_campaign(
        tx,
        email::CampaignMail {
            org_id,
            user_id: owner.as_deref(),
            inbox: email::campaign_sender(tx, &campaign.id)?,
            lead_id: &lead_id,
            enrollment_id: &e.id,
            to,
            subject: rendered.subject,
            text,
            html: rendered.html_body.0,
            track_opens: campaign.track_opens,
            parent,
        },
        domain,
        now,
    )?;
    Ok(Outcome::Ran(Some(sent.id), None))
}

/// A call or task step: a task for the lead's owner (else the campaign's creator), due now.
fn task_step(
    tx: &Tx<'_>,
    org_id: &str,
    campaign: &Campaign,
    e: &enrollments::Enrollment,
    step: &Step,
    now: Millis,
) -> DomainResult<Outcome> {
    let Some(lead) = lead_of(tx, org_id, e, now)? else {
        return Ok(Outcome::Ended);
    };
    let assignee = lead
        .owner_id
        .0
        .clone()
        .or_else(|| campaign.created_by.0.clone());
    let Some(assignee) = assignee else {
        return Err(DomainError::Internal(format!(
            "campaign {} has no one to give its tasks to",
            campaign.id
        )));
    };
    let who = [lead.first_name.0.as_deref(), lead.last_name.0.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let who = if who.is_empty() {
        lead.email.0.clone().unwrap_or_else(|| lead.id.clone())
    } else {
        who
    };
    let title = match (&step.title.0, step.kind) {
        (Some(t), _) => t.clone(),
        (None, _) => format!("Call {who}"),
    };
    let acting = Principal::operator(org_id, &assignee, Role::Member);
    let task = tasks::create(
        tx,
        &acting,
        NewTask {
            title,
            description: Some(format!(
                "Step {} of campaign {}",
                step.position, campaign.name
            )),
            priority: None,
            due_at: Some(Timestamp(now)),
            assignee_id: Some(assignee),
            deal_id: None,
            lead_id: Some(lead.id),
        },
        now,
    )?;
    Ok(Outcome::Ran(None, Some(task.id)))
}
