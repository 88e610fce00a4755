//! What comes back: inbound mail routed to its deal's thread, and open-tracking hits.

use super::*;
use crate::domain::changes;
use crate::domain::enrollments::{self, StopReason};
use crate::domain::suppressions::{self, Suppression, SuppressionReason};

/// An inbound message, parsed.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Its `Message-ID` (without brackets); one is made up from its hash when missing.
    pub message_id: String,
    /// `In-Reply-To`.
    pub in_reply_to: Option<String>,
    /// `References`, oldest first.
    pub references: Vec<String>,
    /// Sender.
    pub from: String,
    /// Sender's name.
    pub from_name: Option<String>,
    /// The address this copy was delivered to (`Delivered-To`, `X-Original-To`).
    pub envelope: Vec<String>,
    /// Every recipient address the message's headers name (To, Cc, Bcc).
    pub recipients: Vec<String>,
    /// To.
    pub to: Vec<String>,
    /// Cc.
    pub cc: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain text.
    pub text: Option<String>,
    /// HTML.
    pub html: Option<String>,
    /// Headers of interest.
    pub headers: BTreeMap<String, String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// What a delivery status notification reports, when the message is one.
    pub bounce: Option<Bounce>,
}

/// A delivery status notification (RFC 3464): a mail server saying a message it accepted could
/// not be delivered.
#[derive(Debug, Clone, Default)]
pub struct Bounce {
    /// The recipients that failed for good (`Action: failed` with a 5.x.x `Status`); a delay
    /// or a temporary failure names none.
    pub failed: Vec<Failure>,
    /// The `Message-ID` of the message that bounced, from the headers the report returns.
    pub original: Option<String>,
}

/// One recipient a report says failed for good.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// The address (`Final-Recipient`).
    pub address: String,
    /// The enhanced status code (`5.1.1`).
    pub status: String,
    /// The receiving server's words (`Diagnostic-Code`), if given.
    pub diagnostic: Option<String>,
}

impl Failure {
    fn describe(&self) -> String {
        match &self.diagnostic {
            Some(d) => format!("bounced by the recipient's server: {} ({d})", self.status),
            None => format!("bounced by the recipient's server: {}", self.status),
        }
    }
}

/// What storing an inbound message did.
pub struct Received {
    /// The stored message.
    pub email: Email,
    /// False when the same `Message-ID` had already been stored (nothing changed).
    pub created: bool,
}

/// Stores an inbound message on each deal whose inbox it reached: the inbox it was delivered to
/// (a mail server delivers a message to several inboxes once per recipient, each copy naming
/// its own), else every inbox its headers name. Threads it by `In-Reply-To`/`References`, logs
/// `email_received` (which raises `email_replied`) and emits `email.received`. A message is
/// stored once per inbox: the same `Message-ID` again in an inbox changes nothing there.
/// Answers with the copy on the first inbox, `created` when any copy is new.
pub fn receive(tx: &Tx<'_>, m: Parsed, now: Millis) -> DomainResult<Received> {
    let mut inboxes = inboxes_of(tx, &m.envelope)?;
    if inboxes.is_empty() {
        inboxes = inboxes_of(tx, &m.recipients)?;
    }
    if inboxes.is_empty() {
        return Err(DomainError::NotFound("email inbox"));
    }
    if m.from.is_empty() {
        return Err(DomainError::invalid("body", "has no From address"));
    }
    let mut first: Option<Received> = None;
    let mut created = false;
    for inbox in &inboxes {
        let stored = store(tx, &m, inbox, now)?;
        if stored.created {
            if let Some(bounce) = &m.bounce {
                apply_bounce(tx, &inbox.org_id, bounce, now)?;
            }
        }
        created |= stored.created;
        first.get_or_insert(stored);
    }
    let mut first = first.expect("one inbox at least");
    first.created = created;
    Ok(first)
}

/// What a bounce means for an organization: every address that failed for good is suppressed
/// (reason `bounced`, so nothing is sent to it again), and the message that bounced, if it is
/// one of the organization's, is marked failed with the server's words (`email.failed`).
fn apply_bounce(tx: &Tx<'_>, org_id: &str, bounce: &Bounce, now: Millis) -> DomainResult<()> {
    let actor = Actor::system();
    for failure in &bounce.failed {
        suppressions::suppress(
            tx,
            org_id,
            &failure.address,
            SuppressionReason::Bounced,
            Some(failure.describe().chars().take(500).collect()),
            &actor,
            now,
        )?;
    }
    let (Some(original), Some(failure)) = (&bounce.original, bounce.failed.first()) else {
        return Ok(());
    };
    let bounced: Option<String> = tx
        .cached_row(
            "SELECT id FROM emails WHERE org_id = ?1 AND message_id = ?2
               AND direction = 'outbound' AND status <> 'failed'",
            params![org_id, original],
            |r| r.get(0),
        )
        .optional()?;
    match bounced {
        Some(id) => super::outbox::fail(tx, org_id, &id, &failure.describe(), now),
        None => Ok(()),
    }
}

/// An inbox: its id, organization, and its deal (none for a campaign's inbox).
#[derive(Debug, Clone, PartialEq)]
struct InboxOf {
    id: String,
    org_id: String,
    deal_id: Option<String>,
}

/// The inboxes among `addresses`, each once, in the order named.
fn inboxes_of(tx: &Tx<'_>, addresses: &[String]) -> DomainResult<Vec<InboxOf>> {
    let mut found: Vec<InboxOf> = Vec::new();
    for address in addresses {
        let inbox = tx
            .prepare_cached("SELECT id, org_id, deal_id FROM email_inboxes WHERE address = ?1")?
            .query_row(params![address], |row| {
                Ok(InboxOf {
                    id: row.get(0)?,
                    org_id: row.get(1)?,
                    deal_id: row.get(2)?,
                })
            })
            .optional()?;
        if let Some(inbox) = inbox.filter(|i| !found.contains(i)) {
            found.push(inbox);
        }
    }
    Ok(found)
}

/// What a message's place in a conversation tells: its thread, and the lead, campaign
/// enrollment and sender (the user it went out for) of the message it answers.
type Parent = (String, Option<String>, Option<String>, Option<String>);

/// The newest message of the inbox that `m` refers to (for a bounce, the message that bounced).
fn parent_of(tx: &Tx<'_>, m: &Parsed, inbox_id: &str) -> DomainResult<Option<Parent>> {
    let original = m.bounce.as_ref().and_then(|b| b.original.as_ref());
    for reference in original
        .into_iter()
        .chain(&m.in_reply_to)
        .chain(m.references.iter().rev())
    {
        let found = tx
            .prepare_cached(
                "SELECT thread_id, lead_id, enrollment_id, user_id FROM emails
                 WHERE inbox_id = ?1 AND message_id = ?2",
            )?
            .query_row(params![inbox_id, reference], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Stores `m` on one inbox, unless that inbox has it already. The lead it comes from is the
/// one the answered message went to, else the lead with the sender's address; a word from a
/// lead (not a delivery report) stops the lead's campaign enrollments that stop on replies.
fn store(tx: &Tx<'_>, m: &Parsed, inbox: &InboxOf, now: Millis) -> DomainResult<Received> {
    let org_id = &inbox.org_id;
    if let Some(id) = tx
        .prepare_cached("SELECT id FROM emails WHERE inbox_id = ?1 AND message_id = ?2")?
        .query_row(params![inbox.id, m.message_id], |r| r.get::<_, String>(0))
        .optional()?
    {
        return Ok(Received {
            email: get_by_id(tx, org_id, &id)?,
            created: false,
        });
    }
    let (thread, parent_lead, enrollment, answered_for) = match parent_of(tx, m, &inbox.id)? {
        Some((thread, lead, enrollment, user)) => (Some(thread), lead, enrollment, user),
        None => (None, None, None, None),
    };
    let lead_id: Option<String> = match parent_lead {
        Some(lead) => Some(lead),
        None => tx
            .cached_row(
                "SELECT id FROM leads WHERE org_id = ?1 AND email = ?2 COLLATE NOCASE",
                params![org_id, m.from],
                |r| r.get(0),
            )
            .optional()?,
    };
    let id = new_id("eml");
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO emails (id, org_id, deal_id, inbox_id, direction, status, message_id, thread_id,
                             in_reply_to, refs, from_address, from_name, to_addresses, cc_addresses,
                             subject, text_body, html_body, headers, attachments, created_at, updated_at,
                             lead_id, enrollment_id)
         VALUES (?1, ?2, ?3, ?4, 'inbound', 'received', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 ?15, ?16, ?17, ?18, ?18, ?19, ?20)",
        params![
            id,
            org_id,
            inbox.deal_id,
            inbox.id,
            m.message_id,
            thread.unwrap_or_else(|| new_id("thr")),
            m.in_reply_to,
            json(&m.references),
            m.from,
            m.from_name,
            json(&m.to),
            json(&m.cc),
            m.subject,
            m.text,
            m.html,
            serde_json::to_string(&m.headers).unwrap_or_else(|_| "{}".into()),
            serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into()),
            now,
            lead_id,
            enrollment
        ],
    )?;
    let actor = Actor::system();
    // A delivery report is no word from the lead: no activity, so no reply signal.
    if m.bounce.is_none() {
        // The reply is activity of whoever the answered message went out for.
        log_activity(
            tx,
            org_id,
            answered_for.as_deref(),
            "email_received",
            &m.subject,
            format!("From {}", m.from),
            (inbox.deal_id.as_deref(), lead_id.as_deref()),
            now,
        )?;
        if let Some(lead) = &lead_id {
            enrollments::stop_for_lead(tx, org_id, lead, StopReason::Replied, now)?;
        }
    }
    let email = get_by_id(tx, org_id, &id)?;
    changes::append(tx, org_id, &actor, "email.received", &email, None, now)?;
    Ok(Received {
        email,
        created: true,
    })
}

/// Records an open of the message behind `token`: first-open time and count, an
/// `email_opened` activity (raising `email_opened`) and `email.opened`. An unknown token does
/// nothing, and the caller answers the same either way.
pub fn record_open(tx: &Tx<'_>, token: &str, now: Millis) -> DomainResult<bool> {
    let Some((id, org_id)) = tx
        .prepare_cached("SELECT id, org_id FROM emails WHERE open_token = ?1")?
        .query_row(params![token], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?
    else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE emails SET open_count = open_count + 1, first_opened_at = coalesce(first_opened_at, ?2),
                           last_opened_at = ?2, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    let email = get_by_id(tx, &org_id, &id)?;
    let actor = Actor::system();
    log_activity(
        tx,
        &org_id,
        None,
        "email_opened",
        &email.subject,
        format!("Opened {} time(s)", email.open_count),
        (email.deal_id.as_deref(), email.lead_id.as_deref()),
        now,
    )?;
    changes::append(tx, &org_id, &actor, "email.opened", &email, None, now)?;
    Ok(true)
}

/// The message whose unsubscribe link carries `token`: its id, organization, one recipient
/// and subject.
fn unsubscribed_by(
    conn: &Connection,
    token: &str,
) -> DomainResult<Option<(String, String, String, String)>> {
    let row = conn
        .prepare_cached(
            "SELECT id, org_id, to_addresses, subject FROM emails WHERE unsubscribe_token = ?1",
        )?
        .query_row(params![token], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(id, org_id, to, subject)| {
        let address = json_list(to).into_iter().next()?;
        Some((id, org_id, address, subject))
    }))
}

/// The recipient of the message whose unsubscribe link carries `token`, if there is one.
pub fn unsubscribe_target(conn: &Connection, token: &str) -> DomainResult<Option<String>> {
    Ok(unsubscribed_by(conn, token)?.map(|(_, _, address, _)| address))
}

/// One-click unsubscribe (RFC 8058): suppresses the one recipient of the message whose link
/// carries `token` (reason `unsubscribed`, `suppression.created`), once; `None` for an
/// unknown token.
pub fn unsubscribe(tx: &Tx<'_>, token: &str, now: Millis) -> DomainResult<Option<Suppression>> {
    let Some((id, org_id, address, subject)) = unsubscribed_by(tx, token)? else {
        return Ok(None);
    };
    let note: String = format!("one-click unsubscribe from {id} ({subject})")
        .chars()
        .take(500)
        .collect();
    suppressions::suppress(
        tx,
        &org_id,
        &address,
        SuppressionReason::Unsubscribed,
        Some(note),
        &Actor::system(),
        now,
    )
    .map(Some)
}
