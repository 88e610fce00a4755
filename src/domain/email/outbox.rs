//! The outbox as the sender thread works it: claiming due messages and recording each attempt.

use super::*;
use crate::domain::enrollments::{self, EnrollmentStatus};
use crate::domain::{changes, suppressions};

/// A queued message as the sender needs it.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The row.
    pub email: Email,
    /// The organization.
    pub org_id: String,
    /// The open-tracking token, when tracked.
    pub open_token: Option<String>,
    /// Who queued it (for the `email_sent` activity).
    pub user_id: Option<String>,
    /// The one-click unsubscribe token, when it carries the link.
    pub unsubscribe_token: Option<String>,
}

/// Puts messages left `sending` by a stopped server back in the queue. The SMTP server may
/// have accepted some of them already; resending keeps the same `Message-ID`, so receivers can
/// tell, and losing a message would be worse.
pub fn requeue_interrupted(tx: &Tx<'_>) -> DomainResult<usize> {
    Ok(tx.execute(
        "UPDATE emails SET status = 'queued' WHERE status = 'sending'",
        [],
    )?)
}

/// Whether any message is due to be sent: a read, so that an idle sender never takes the write
/// lock (it used to commit an empty transaction, with its sync, twice a second).
pub fn any_due(conn: &Connection, now: Millis) -> DomainResult<bool> {
    Ok(conn.cached_row(
        "SELECT EXISTS (SELECT 1 FROM emails WHERE status = 'queued' AND next_attempt_at <= ?1)",
        params![now],
        |r| r.get(0),
    )?)
}

/// Claims up to `limit` due messages: marks them `sending` and counts the attempt.
pub fn claim(tx: &Tx<'_>, limit: usize, now: Millis) -> DomainResult<Vec<Outbound>> {
    type Due = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let ids: Vec<Due> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, org_id, open_token, user_id, unsubscribe_token FROM emails
             WHERE status = 'queued' AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(ids.len());
    for (id, org_id, open_token, user_id, unsubscribe_token) in ids {
        let mut email = get_by_id(tx, &org_id, &id)?;
        // An address suppressed while the message waited (for a retry, or behind others) is
        // not written to either: the message fails unsent, naming it.
        let recipients = email.to.iter().chain(&email.cc).chain(&email.bcc);
        if let Some(s) = suppressions::first_of(tx, &org_id, recipients)? {
            let error = format!(
                "not sent: {} was suppressed ({}) before it went out",
                s.email,
                s.reason.as_str()
            );
            fail(tx, &org_id, &id, &error, now)?;
            continue;
        }
        // A campaign email whose enrollment stopped while it waited (the lead replied, someone
        // stopped it or completed the campaign) is not sent either: a stop means no more mail.
        if let Some(enrollment) = email.enrollment_id.0.as_deref() {
            let e = enrollments::get(tx, &org_id, enrollment)?;
            if let (EnrollmentStatus::Stopped, Nullable(Some(reason))) = (e.status, e.stop_reason) {
                let error = format!(
                    "not sent: its campaign enrollment stopped ({}) before it went out",
                    reason.as_str()
                );
                fail(tx, &org_id, &id, &error, now)?;
                continue;
            }
        }
        tx.execute(
            "UPDATE emails SET status = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        email.status = EmailStatus::Sending;
        email.attempts += 1;
        out.push(Outbound {
            email,
            org_id,
            open_token,
            user_id,
            unsubscribe_token,
        });
    }
    Ok(out)
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// Accepted.
    Sent,
    /// Refused for now (4xx, or the server could not be reached): retry after the delay.
    Retry(String, std::time::Duration),
    /// Refused for good, or out of retries.
    Failed(String),
}

/// Records an attempt: on success the `email_sent` activity and `email.sent`; on final failure
/// `email.failed`; otherwise the next attempt's time.
pub fn record_attempt(
    tx: &Tx<'_>,
    job: &Outbound,
    attempt: Attempt,
    now: Millis,
) -> DomainResult<()> {
    let id = &job.email.id;
    match attempt {
        Attempt::Sent => {
            tx.execute(
                "UPDATE emails SET status = 'sent', sent_at = ?2, last_error = NULL, updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            let actor = Actor::system();
            log_activity(
                tx,
                &job.org_id,
                job.user_id.as_deref(),
                "email_sent",
                &job.email.subject,
                format!("To {}", job.email.to.join(", ")),
                (job.email.deal_id.as_deref(), job.email.lead_id.as_deref()),
                now,
            )?;
            let email = get_by_id(tx, &job.org_id, id)?;
            changes::append(tx, &job.org_id, &actor, "email.sent", &email, None, now)?;
        }
        Attempt::Retry(error, delay) => {
            tx.execute(
                "UPDATE emails SET status = 'queued', last_error = ?2, next_attempt_at = ?3, updated_at = ?4
                 WHERE id = ?1",
                params![id, error, now + delay.as_millis() as i64, now],
            )?;
        }
        Attempt::Failed(error) => fail(tx, &job.org_id, id, &error, now)?,
    }
    Ok(())
}

/// Marks outbound message `id` failed with `error` and records `email.failed`: when its last
/// attempt failed, or when the recipient's server bounced it after accepting it.
pub(super) fn fail(
    tx: &Tx<'_>,
    org_id: &str,
    id: &str,
    error: &str,
    now: Millis,
) -> DomainResult<()> {
    tx.execute(
        "UPDATE emails SET status = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, error, now],
    )?;
    let email = get_by_id(tx, org_id, id)?;
    changes::append(
        tx,
        org_id,
        &Actor::system(),
        "email.failed",
        &email,
        None,
        now,
    )?;
    Ok(())
}

/// Outbound messages not yet sent, all organizations: (`queued` or `sending`, how many). For
/// the metrics, read at each scrape off the outbox's partial index.
pub fn backlog(conn: &Connection) -> DomainResult<Vec<(String, i64)>> {
    crate::domain::count_by_status(
        conn,
        "SELECT status, COUNT(*) FROM emails
         WHERE status IN ('queued', 'sending') GROUP BY status",
    )
}
