//! Campaigns with a history, for a seeded organization. They run through the real engine on
//! a simulated clock: the scheduler's steps, the sender's records (as the `log` transport
//! makes them), opens, replies, bounces and unsubscribes. So a demo's metrics come from the
//! same code as a live campaign's, and stay true to it as that code changes.

use rusqlite::params;

use super::Rng;
use crate::clock::Millis;
use crate::db::{Db, Tx};
use crate::domain::auth::{Principal, Role};
use crate::domain::campaigns::enroll::{self, Enroll};
use crate::domain::campaigns::steps::{self, NewStep, StepKind};
use crate::domain::campaigns::{self, run, DelayUnit, NewCampaign, Transition};
use crate::domain::email::{self, Attempt, Parsed};
use crate::domain::events::Actor;
use crate::domain::suppressions::{self, SuppressionReason};
use crate::domain::templates::{self, NewEmailTemplate};
use crate::domain::DomainResult;

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

/// The seeded campaigns: name, days before `as_of` it started, leads enrolled.
const CAMPAIGNS: &[(&str, i64, usize)] = &[
    ("Q4 outbound: mid-market SaaS", 35, 160),
    ("Webinar follow-up", 21, 90),
    ("Win-back: closed-lost last year", 9, 60),
];

/// Creates the campaigns (at most `count`) with their templates, enrolls seeded leads, and
/// plays them forward hour by hour to `as_of`. Returns how many campaigns it made.
#[allow(clippy::too_many_arguments)] // the seed's own parameters, passed on
pub(super) fn seed(
    db: &Db,
    org_id: &str,
    owner: &str,
    leads: &[(String, Millis)],
    count: usize,
    rng: &mut Rng,
    as_of: Millis,
    domain: &str,
) -> DomainResult<usize> {
    let p = Principal::operator(org_id, owner, Role::Owner);
    let made = CAMPAIGNS.iter().take(count).count();
    if made == 0 || leads.is_empty() {
        return Ok(0);
    }
    let (intro, nudge) = db.blocking().write(|tx| {
        let start = as_of - CAMPAIGNS[0].1 * DAY - HOUR;
        let intro = templates::create(
            tx,
            &p,
            NewEmailTemplate {
                name: "Campaign: introduction".into(),
                subject: "{{ company.name | default('Your team') }} and Acme".into(),
                html_body: Some(
                    "<p>Hi {{ lead.first_name | default('there') }},</p><p>Teams like \
                     {{ company.name | default('yours') }} use Acme to close faster. Worth a \
                     15-minute call?</p><p>{{ owner.first_name | default('The Acme team') }}</p>"
                        .into(),
                ),
                text_body: None,
            },
            start,
        )?;
        let nudge = templates::create(
            tx,
            &p,
            NewEmailTemplate {
                name: "Campaign: follow-up".into(),
                subject: "Following up".into(),
                html_body: None,
                text_body: Some(
                    "Hi {{ lead.first_name | default('there') }}, did my note reach you? Happy \
                     to send a two-minute video instead."
                        .into(),
                ),
            },
            start,
        )?;
        Ok((intro.id, nudge.id))
    })?;
    for (name, days_ago, enrolled) in CAMPAIGNS.iter().take(count) {
        let start = as_of - days_ago * DAY;
        let pool: Vec<&String> = leads
            .iter()
            .filter(|(_, at)| *at < start)
            .map(|(id, _)| id)
            .collect();
        let mut picked: Vec<String> = Vec::new();
        while picked.len() < (*enrolled).min(pool.len()) {
            let id = pool[rng.below(pool.len())];
            if !picked.contains(id) {
                picked.push(id.clone());
            }
        }
        db.blocking().write(|tx| {
            let c = campaigns::create(
                tx,
                &p,
                NewCampaign {
                    name: (*name).into(),
                    description: Some("Seeded with a history for the demo.".into()),
                    sender_username: None,
                    sender_name: Some("Acme sales".into()),
                    window: None,
                    timezone: None,
                    daily_cap: Some(80),
                    track_opens: Some(true),
                    stop_on_reply: Some(true),
                    stop_on_deal: Some(true),
                },
                domain,
                start,
            )?;
            let step = |kind, template_id: Option<&String>, in_thread, delay| NewStep {
                kind,
                template_id: template_id.cloned(),
                in_thread: Some(in_thread),
                title: None,
                delay: Some(delay),
                delay_unit: Some(DelayUnit::BusinessDays),
                position: None,
            };
            for s in [
                step(StepKind::Email, Some(&intro), false, 0),
                step(StepKind::Email, Some(&nudge), true, 3),
                step(StepKind::Call, None, false, 2),
            ] {
                steps::create(tx, &p, &c.id, s, start)?;
            }
            enroll::enroll(
                tx,
                &p,
                &c.id,
                Enroll {
                    lead_ids: Some(picked.clone()),
                    filter: None,
                },
                start,
            )?;
            campaigns::transition(tx, &p, &c.id, Transition::Activate, start)?;
            play(tx, rng, start, as_of, domain)
        })?;
    }
    Ok(made)
}

/// Runs the scheduler and the sender hour by hour from `from` to `to`, with what recipients do
/// to the mail: about 45% open it, 7% reply, 2% bounce and 1% unsubscribe.
fn play(tx: &Tx<'_>, rng: &mut Rng, from: Millis, to: Millis, domain: &str) -> DomainResult<()> {
    let mut t = from;
    while t < to {
        for due in run::due(tx, 10_000, t)? {
            run::run(tx, &due, domain, t)?;
        }
        for job in email::claim(tx, 10_000, t)? {
            email::record_attempt(tx, &job, Attempt::Sent, t)?;
            if job.email.enrollment_id.0.is_none() {
                continue;
            }
            let to_address = job.email.to.first().cloned().unwrap_or_default();
            let roll = rng.below(100);
            if roll < 45 {
                if let Some(token) = &job.open_token {
                    email::record_open(tx, token, t + HOUR / 2)?;
                }
            }
            if roll < 7 {
                reply(tx, &job.email, &to_address, t + HOUR / 2)?;
            } else if roll < 9 {
                suppressions::suppress(
                    tx,
                    &job.org_id,
                    &to_address,
                    SuppressionReason::Bounced,
                    Some("bounced by the recipient's server: 5.1.1".into()),
                    &Actor::system(),
                    t,
                )?;
            } else if roll < 10 {
                suppressions::suppress(
                    tx,
                    &job.org_id,
                    &to_address,
                    SuppressionReason::Unsubscribed,
                    None,
                    &Actor::system(),
                    t,
                )?;
            }
        }
        t += HOUR;
    }
    // What the simulated clock left due runs when the server starts, at the real time.
    tx.execute(
        "UPDATE enrollments SET next_run_at = max(next_run_at, ?1) WHERE status = 'active'",
        params![to],
    )?;
    Ok(())
}

/// The lead answers `sent` in its thread.
fn reply(tx: &Tx<'_>, sent: &email::Email, from: &str, at: Millis) -> DomainResult<()> {
    email::receive(
        tx,
        Parsed {
            message_id: format!("reply-{}@buyer.example", sent.id.to_ascii_lowercase()),
            in_reply_to: Some(sent.message_id.clone()),
            references: vec![sent.message_id.clone()],
            from: from.to_string(),
            envelope: vec![sent.from.clone()],
            recipients: vec![sent.from.clone()],
            to: vec![sent.from.clone()],
            subject: format!("Re: {}", sent.subject),
            text: Some("Thanks for reaching out. Can we talk on Thursday?".into()),
            ..Parsed::default()
        },
        at,
    )?;
    Ok(())
}
