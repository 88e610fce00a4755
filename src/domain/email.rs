//! Per-deal email: inboxes, outbound messages queued for the sender, replies threaded on the
//! original, inbound mail routed by recipient, and open tracking.
//!
//! Everything here runs inside the caller's transaction. Sending happens later, in
//! [`crate::email`], from the queued rows: a request never waits on an SMTP server.

use crate::domain::nullable::Nullable;
use std::collections::BTreeMap;

use crate::db::{CachedRow, Tx};
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::activities;
use super::auth::Principal;
use super::error::{DomainError, DomainResult, Issues};
use super::events::{self, Actor};
use super::listing::{ListPage, Paging};
use super::terms::Term;
use super::validate;
use crate::clock::Millis;
use crate::ids::new_id;
use crate::timefmt::Timestamp;

/// Most addresses in each of to, cc and bcc.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest text or html body accepted from the API, in characters: mail clients clip longer
/// messages (Gmail at about 102 KB), and a text and an html body this long still fit the
/// default 1 MiB request limit, so a schema-valid send is never a 413.
pub const MAX_BODY_CHARS: usize = 100_000;

/// A deal's inbox.
#[derive(Debug, Clone, Object)]
pub struct Inbox {
    /// `inb_...`
    pub id: String,
    /// The deal it belongs to.
    pub deal_id: String,
    /// `<username or deal slug>@<email domain>`: mail to it lands on the deal.
    pub address: String,
    /// The name outbound mail is sent under.
    #[oai(nullable)]
    pub display_name: Nullable<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Options for a new inbox.
#[derive(Debug, Clone, Default, Object)]
pub struct NewInbox {
    /// The address's local part (letters, digits, `.`, `_`, `-`; up to 64); defaults to a slug
    /// of the deal's title.
    #[oai(validator(max_length = 64))]
    #[oai(nullable)]
    pub username: Option<String>,
    /// The name outbound mail is sent under (up to 200 characters).
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub display_name: Option<String>,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Direction {
    /// Sent from the deal's inbox.
    Outbound,
    /// Received by the deal's inbox.
    Inbound,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Waiting for the sender (also between retries).
    Queued,
    /// Being handed to the SMTP server.
    Sending,
    /// Accepted by the SMTP server (or logged, with the `log` transport).
    Sent,
    /// Refused for good, or still refused after every retry; see `last_error`.
    Failed,
    /// An inbound message.
    Received,
}

/// An attachment's metadata (the content is not kept).
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The file name, if the message gave one.
    #[oai(nullable)]
    pub filename: Nullable<String>,
    /// Its MIME type.
    pub content_type: String,
    /// Its decoded size in bytes.
    pub size: i64,
}

/// One message in a deal's inbox.
#[derive(Debug, Clone, Object)]
pub struct Email {
    /// `eml_...`
    pub id: String,
    /// The deal.
    pub deal_id: String,
    /// outbound or inbound.
    pub direction: Direction,
    /// queued, sending, sent, failed (outbound) or received (inbound).
    pub status: EmailStatus,
    /// The RFC 5322 `Message-ID`, without angle brackets.
    pub message_id: String,
    /// The conversation: replies share their original's thread.
    pub thread_id: String,
    /// The `Message-ID` this one answers.
    #[oai(nullable)]
    pub in_reply_to: Nullable<String>,
    /// The `References` chain, oldest first.
    pub references: Vec<String>,
    /// The sender's address.
    pub from: String,
    /// The sender's display name.
    #[oai(nullable)]
    pub from_name: Nullable<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Copied recipients.
    pub cc: Vec<String>,
    /// Blind-copied recipients (outbound only; never in the sent headers).
    pub bcc: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    #[oai(nullable)]
    pub text: Nullable<String>,
    /// The HTML body.
    #[oai(nullable)]
    pub html: Nullable<String>,
    /// Headers of interest (inbound): Date, Reply-To, List-Id, Auto-Submitted and the like.
    pub headers: BTreeMap<String, String>,
    /// Attachments' metadata.
    pub attachments: Vec<Attachment>,
    /// Whether opens are tracked (HTML messages only).
    pub track_opens: bool,
    /// How often it was opened.
    pub open_count: i64,
    /// First open.
    #[oai(nullable)]
    pub first_opened_at: Nullable<Timestamp>,
    /// Latest open.
    #[oai(nullable)]
    pub last_opened_at: Nullable<Timestamp>,
    /// Delivery attempts so far (outbound).
    pub attempts: i64,
    /// Why the last attempt failed.
    #[oai(nullable)]
    pub last_error: Nullable<String>,
    /// When the SMTP server accepted it.
    #[oai(nullable)]
    pub sent_at: Nullable<Timestamp>,
    /// When it was queued or received.
    pub created_at: Timestamp,
}

/// A new outbound message.
#[derive(Debug, Clone, Object)]
pub struct SendEmail {
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// Copied recipients.
    #[oai(default)]
    pub cc: Vec<String>,
    /// Blind-copied recipients.
    #[oai(default)]
    pub bcc: Vec<String>,
    /// Up to 998 characters.
    #[oai(validator(max_length = 998))]
    pub subject: String,
    /// The plain-text body (up to 100,000 characters).
    #[oai(validator(max_length = 100000))]
    pub text: String,
    /// An HTML alternative; the message is then multipart/alternative.
    #[oai(validator(max_length = 100000))]
    #[oai(nullable)]
    pub html: Option<String>,
    /// Add an open-tracking pixel to the HTML (default true; no HTML, no tracking).
    #[oai(nullable)]
    pub track_opens: Option<bool>,
}

/// A reply: recipients, subject and threading come from the original.
#[derive(Debug, Clone, Object)]
pub struct ReplyEmail {
    /// The plain-text body (up to 100,000 characters).
    #[oai(validator(max_length = 100000))]
    pub text: String,
    /// An HTML alternative.
    #[oai(validator(max_length = 100000))]
    #[oai(nullable)]
    pub html: Option<String>,
    /// Extra copied recipients.
    #[oai(default)]
    pub cc: Vec<String>,
    /// Add an open-tracking pixel to the HTML (default true).
    #[oai(nullable)]
    pub track_opens: Option<bool>,
}

/// Filters of the message list.
#[derive(Debug, Clone, Default)]
pub struct EmailFilter {
    /// One conversation.
    pub thread_id: Option<String>,
    /// outbound or inbound.
    pub direction: Option<Direction>,
}

const INBOX_COLUMNS: &str = "id, deal_id, address, display_name, created_at";

fn inbox_from_row(r: &Row<'_>) -> rusqlite::Result<Inbox> {
    Ok(Inbox {
        id: r.get(0)?,
        deal_id: r.get(1)?,
        address: r.get(2)?,
        display_name: r.get(3)?,
        created_at: Timestamp(r.get(4)?),
    })
}

pub(crate) const COLUMNS: &str =
    "id, deal_id, direction, status, message_id, thread_id, in_reply_to, refs, \
    from_address, from_name, to_addresses, cc_addresses, bcc_addresses, subject, text_body, \
    html_body, headers, attachments, track_opens, open_count, first_opened_at, last_opened_at, \
    attempts, last_error, sent_at, created_at";

fn json_list(raw: String) -> Vec<String> {
    serde_json::from_str(&raw).unwrap_or_default()
}

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Email> {
    let direction = match r.get_ref(2)?.as_str()? {
        "inbound" => Direction::Inbound,
        _ => Direction::Outbound,
    };
    let status = match r.get_ref(3)?.as_str()? {
        "sending" => EmailStatus::Sending,
        "sent" => EmailStatus::Sent,
        "failed" => EmailStatus::Failed,
        "received" => EmailStatus::Received,
        _ => EmailStatus::Queued,
    };
    Ok(Email {
        id: r.get(0)?,
        deal_id: r.get(1)?,
        direction,
        status,
        message_id: r.get(4)?,
        thread_id: r.get(5)?,
        in_reply_to: r.get(6)?,
        references: json_list(r.get(7)?),
        from: r.get(8)?,
        from_name: r.get(9)?,
        to: json_list(r.get(10)?),
        cc: json_list(r.get(11)?),
        bcc: json_list(r.get(12)?),
        subject: r.get(13)?,
        text: r.get(14)?,
        html: r.get(15)?,
        headers: serde_json::from_str(&r.get::<_, String>(16)?).unwrap_or_default(),
        attachments: serde_json::from_str(&r.get::<_, String>(17)?).unwrap_or_default(),
        track_opens: r.get(18)?,
        open_count: r.get(19)?,
        first_opened_at: Nullable(r.get::<_, Option<i64>>(20)?.map(Timestamp)),
        last_opened_at: Nullable(r.get::<_, Option<i64>>(21)?.map(Timestamp)),
        attempts: r.get(22)?,
        last_error: r.get(23)?,
        sent_at: Nullable(r.get::<_, Option<i64>>(24)?.map(Timestamp)),
        created_at: Timestamp(r.get(25)?),
    })
}

/// Whether `s` is a usable local part for an inbox address.
fn is_username(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
}

/// An inbox username as the document states it (surrounding blanks are trimmed, and it is
/// lowercased): letters, digits, `.`, `_`, `-`, dots only between other characters.
pub const USERNAME_PATTERN: &str = concat!(
    "^[",
    crate::domain::validate::white_space!(),
    r"]*[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*[",
    crate::domain::validate::white_space!(),
    "]*$"
);

/// A lowercase slug of `title` for an address: letters and digits, words joined by `-`.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "deal".into()
    } else {
        out
    }
}

/// The deal's inbox, if it has one.
pub fn inbox_of(conn: &Connection, org_id: &str, deal_id: &str) -> DomainResult<Option<Inbox>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {INBOX_COLUMNS} FROM email_inboxes WHERE org_id = ?1 AND deal_id = ?2"
        ))?
        .query_row(params![org_id, deal_id], inbox_from_row)
        .optional()?)
}

/// The deal's inbox (404 when the deal has none).
pub fn get_inbox(conn: &Connection, org_id: &str, deal_id: &str) -> DomainResult<Inbox> {
    super::deals::get(conn, org_id, deal_id)?;
    inbox_of(conn, org_id, deal_id)?.ok_or(DomainError::NotFound("email inbox"))
}

/// Creates the deal's inbox, or returns the one it has: `(inbox, created)`.
pub fn ensure_inbox(
    tx: &Tx<'_>,
    org_id: &str,
    deal_id: &str,
    input: NewInbox,
    domain: &str,
    now: Millis,
) -> DomainResult<(Inbox, bool)> {
    let deal = super::deals::get(tx, org_id, deal_id)?;
    if let Some(existing) = inbox_of(tx, org_id, deal_id)? {
        return Ok((existing, false));
    }
    let mut issues = Issues::new();
    let display_name =
        validate::optional_text(&mut issues, "display_name", input.display_name, 200);
    let username = input.username.map(|u| u.trim().to_ascii_lowercase());
    if let Some(u) = &username {
        if !is_username(u) {
            issues.add(
                "username",
                "must be 1-64 letters, digits, `.`, `_` or `-`, not starting or ending with `.`",
            );
        }
    }
    issues.finish()?;
    let taken = |address: &str| -> DomainResult<bool> {
        Ok(tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM email_inboxes WHERE address = ?1)")?
            .query_row(params![address], |r| r.get(0))?)
    };
    let address = match username {
        Some(u) => {
            let address = format!("{u}@{domain}");
            if taken(&address)? {
                return Err(DomainError::Conflict {
                    message: format!("the address {address} is taken; choose another username"),
                    details: vec![super::error::FieldIssue::new("username", "is taken")],
                });
            }
            address
        }
        None => {
            let base = slug(&deal.title);
            let mut n = 1;
            loop {
                let address = if n == 1 {
                    format!("{base}@{domain}")
                } else {
                    format!("{base}-{n}@{domain}")
                };
                if !taken(&address)? {
                    break address;
                }
                n += 1;
            }
        }
    };
    let inbox = Inbox {
        id: new_id("inb"),
        deal_id: deal.id,
        address,
        display_name: Nullable(display_name),
        created_at: Timestamp(now),
    };
    tx.execute(
        "INSERT INTO email_inboxes (id, org_id, deal_id, address, display_name, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            inbox.id,
            org_id,
            inbox.deal_id,
            inbox.address,
            inbox.display_name,
            now
        ],
    )?;
    Ok((inbox, true))
}

/// Validates a list of addresses (each trimmed, lowercased domain kept as given).
fn addresses(issues: &mut Issues, field: &str, list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .enumerate()
        .map(|(i, a)| validate::email(issues, &format!("{field}[{i}]"), &a))
        .collect()
}

/// What a queued message needs besides its recipients.
struct Outgoing {
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    subject: String,
    text: String,
    html: Option<String>,
    track_opens: bool,
    thread_id: Option<String>,
    in_reply_to: Option<String>,
    references: Vec<String>,
}

/// Queues `out` from the deal's inbox (created if needed), with its `email.queued` event, in
/// the caller's transaction: the sender picks it up once this commits.
fn queue(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    out: Outgoing,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    let (inbox, _) = ensure_inbox(tx, &p.org_id, deal_id, NewInbox::default(), domain, now)?;
    let id = new_id("eml");
    let message_id = format!("{}@{domain}", id.to_ascii_lowercase());
    let track = out.track_opens && out.html.is_some();
    let token = track.then(|| crate::secrets::new_token("o"));
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO emails (id, org_id, deal_id, inbox_id, direction, status, message_id, thread_id,
                             in_reply_to, refs, from_address, from_name, to_addresses, cc_addresses,
                             bcc_addresses, subject, text_body, html_body, track_opens, open_token,
                             user_id, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'outbound', 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 ?15, ?16, ?17, ?18, ?19, ?20, ?20, ?20)",
        params![
            id,
            p.org_id,
            deal_id,
            inbox.id,
            message_id,
            out.thread_id.unwrap_or_else(|| new_id("thr")),
            out.in_reply_to,
            json(&out.references),
            inbox.address,
            inbox.display_name,
            json(&out.to),
            json(&out.cc),
            json(&out.bcc),
            out.subject,
            out.text,
            out.html,
            track,
            token,
            p.user_id,
            now
        ],
    )?;
    tx.queue_work();
    let email = get_by_id(tx, &p.org_id, &id)?;
    events::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "email.queued",
        &email,
        None,
        now,
    )?;
    Ok(email)
}

/// Queues a new message from the deal's inbox.
pub fn send(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    input: SendEmail,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    super::deals::get(tx, &p.org_id, deal_id)?;
    let mut issues = Issues::new();
    if input.to.is_empty() {
        issues.add("to", "must name at least one recipient");
    }
    let to = addresses(&mut issues, "to", input.to);
    let cc = addresses(&mut issues, "cc", input.cc);
    let bcc = addresses(&mut issues, "bcc", input.bcc);
    for (field, list) in [("to", &to), ("cc", &cc), ("bcc", &bcc)] {
        if list.len() > MAX_RECIPIENTS {
            issues.add(
                field,
                format!("must have at most {MAX_RECIPIENTS} addresses"),
            );
        }
    }
    let subject = input.subject.trim().to_string();
    if subject.contains(['\r', '\n']) {
        issues.add("subject", "must be one line");
    }
    if input.text.trim().is_empty() {
        issues.add("text", "must not be empty");
    }
    issues.finish()?;
    queue(
        tx,
        p,
        deal_id,
        Outgoing {
            to,
            cc,
            bcc,
            subject,
            text: input.text,
            html: input.html,
            track_opens: input.track_opens.unwrap_or(true),
            thread_id: None,
            in_reply_to: None,
            references: Vec::new(),
        },
        domain,
        now,
    )
}

/// `Re: <subject>`, without piling up prefixes.
fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    if s.len() >= 3 && s[..3].eq_ignore_ascii_case("re:") {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// Queues a reply to message `message` of the deal: to its sender (or, for our own message, to
/// its recipients), `Re:` subject, `In-Reply-To` and `References`, same thread.
pub fn reply(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    message: &str,
    input: ReplyEmail,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    let original = get(tx, &p.org_id, deal_id, message)?;
    let mut issues = Issues::new();
    let extra_cc = addresses(&mut issues, "cc", input.cc);
    if input.text.trim().is_empty() {
        issues.add("text", "must not be empty");
    }
    issues.finish()?;
    let (to, mut cc) = match original.direction {
        Direction::Inbound => {
            let reply_to = original
                .headers
                .get("reply-to")
                .filter(|r| validate::is_email(r))
                .cloned()
                .unwrap_or_else(|| original.from.clone());
            (vec![reply_to], Vec::new())
        }
        Direction::Outbound => (original.to.clone(), original.cc.clone()),
    };
    for a in extra_cc {
        if !cc.contains(&a) && !to.contains(&a) {
            cc.push(a);
        }
    }
    let references = thread_references(&original);
    queue(
        tx,
        p,
        deal_id,
        Outgoing {
            to,
            cc,
            bcc: Vec::new(),
            subject: reply_subject(&original.subject),
            text: input.text,
            html: input.html,
            track_opens: input.track_opens.unwrap_or(true),
            thread_id: Some(original.thread_id),
            in_reply_to: Some(original.message_id),
            references,
        },
        domain,
        now,
    )
}

/// The `References` of a reply to `parent` (RFC 5322 3.6.4): the parent's `References`, or,
/// when it has none but answers one message, its `In-Reply-To` (Outlook and some phones send only
/// that), followed by the parent's own `Message-ID`, so every client can rebuild the whole thread
/// from any one message.
fn thread_references(parent: &Email) -> Vec<String> {
    let mut chain = if parent.references.is_empty() {
        parent.in_reply_to.iter().cloned().collect()
    } else {
        parent.references.clone()
    };
    if !chain.contains(&parent.message_id) {
        chain.push(parent.message_id.clone());
    }
    chain
}

fn get_by_id(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Email> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM emails WHERE org_id = ?1 AND id = ?2"
    ))?
    .query_row(params![org_id, id], from_row)
    .optional()?
    .ok_or(DomainError::NotFound("email"))
}

/// A message of the deal, by its `eml_` id or its `Message-ID` (with or without brackets).
pub fn get(conn: &Connection, org_id: &str, deal_id: &str, message: &str) -> DomainResult<Email> {
    super::deals::get(conn, org_id, deal_id)?;
    let rfc = message.trim().trim_start_matches('<').trim_end_matches('>');
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM emails WHERE org_id = ?1 AND deal_id = ?2 AND (id = ?3 OR message_id = ?4)"
    ))?
    .query_row(params![org_id, deal_id, message, rfc], from_row)
    .optional()?
    .ok_or(DomainError::NotFound("email"))
}

/// The deal's messages, newest first.
pub fn list(
    conn: &Connection,
    org_id: &str,
    deal_id: &str,
    f: &EmailFilter,
    paging: Paging,
) -> DomainResult<ListPage<Email>> {
    super::deals::get(conn, org_id, deal_id)?;
    let direction = f.direction.map(|d| match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    });
    let filter = "org_id = ?1 AND deal_id = ?2 AND (?3 IS NULL OR thread_id = ?3)
                  AND (?4 IS NULL OR direction = ?4)";
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM emails WHERE {filter}"))?
        .query_row(params![org_id, deal_id, f.thread_id, direction], |r| {
            r.get(0)
        })?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM emails WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT ?5 OFFSET ?6"
    ))?;
    let items = stmt
        .query_map(
            params![
                org_id,
                deal_id,
                f.thread_id,
                direction,
                paging.limit(),
                paging.offset()
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ListPage {
        items,
        paging,
        total,
    })
}

/// Logs the server's activity `kind` about a message on its deal and the deal's lead, if any:
/// the buyer's mail, our mail to them and their opens are activity with the lead as much as on
/// the deal, so both `last_activity_at`s move (and the lead's score), and opens and replies
/// raise their signals.
#[allow(clippy::too_many_arguments)] // the activity's fields, each distinct
fn log_activity(
    tx: &Tx<'_>,
    org_id: &str,
    user_id: Option<&str>,
    kind: &str,
    subject: &str,
    body: String,
    deal_id: &str,
    now: Millis,
) -> DomainResult<()> {
    let subject: String = subject.chars().take(500).collect();
    let lead_id: Option<String> = tx
        .cached_row(
            "SELECT lead_id FROM deals WHERE org_id = ?1 AND id = ?2",
            params![org_id, deal_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    activities::record(
        tx,
        org_id,
        &Actor::system(),
        user_id,
        Term::known(kind),
        activities::Details {
            subject: Some(subject).filter(|s| !s.is_empty()),
            body: Some(body),
            deal_id: Some(deal_id.to_string()),
            lead_id,
            ..Default::default()
        },
        now,
    )?;
    Ok(())
}

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
    let ids: Vec<(String, String, Option<String>, Option<String>)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, org_id, open_token, user_id FROM emails
             WHERE status = 'queued' AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(ids.len());
    for (id, org_id, open_token, user_id) in ids {
        tx.execute(
            "UPDATE emails SET status = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        out.push(Outbound {
            email: get_by_id(tx, &org_id, &id)?,
            org_id,
            open_token,
            user_id,
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
                &job.email.deal_id,
                now,
            )?;
            let email = get_by_id(tx, &job.org_id, id)?;
            events::append(tx, &job.org_id, &actor, "email.sent", &email, None, now)?;
        }
        Attempt::Retry(error, delay) => {
            tx.execute(
                "UPDATE emails SET status = 'queued', last_error = ?2, next_attempt_at = ?3, updated_at = ?4
                 WHERE id = ?1",
                params![id, error, now + delay.as_millis() as i64, now],
            )?;
        }
        Attempt::Failed(error) => {
            tx.execute(
                "UPDATE emails SET status = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, error, now],
            )?;
            let email = get_by_id(tx, &job.org_id, id)?;
            events::append(
                tx,
                &job.org_id,
                &Actor::system(),
                "email.failed",
                &email,
                None,
                now,
            )?;
        }
    }
    Ok(())
}

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
    /// Every recipient address the message names (To, Cc, Delivered-To, X-Original-To).
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
}

/// What storing an inbound message did.
pub struct Received {
    /// The stored message.
    pub email: Email,
    /// False when the same `Message-ID` had already been stored (nothing changed).
    pub created: bool,
}

/// Stores an inbound message on the deal whose inbox it was sent to: threads it by
/// `In-Reply-To`/`References`, logs `email_received` (which raises `email_replied`) and emits
/// `email.received`. The same `Message-ID` twice is stored once.
pub fn receive(tx: &Tx<'_>, m: Parsed, now: Millis) -> DomainResult<Received> {
    let mut inbox: Option<(String, String, String)> = None;
    for r in &m.recipients {
        inbox = tx
            .prepare_cached("SELECT id, org_id, deal_id FROM email_inboxes WHERE address = ?1")?
            .query_row(params![r], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        if inbox.is_some() {
            break;
        }
    }
    let Some((inbox_id, org_id, deal_id)) = inbox else {
        return Err(DomainError::NotFound("email inbox"));
    };
    if m.from.is_empty() {
        return Err(DomainError::invalid("body", "has no From address"));
    }
    if let Some(id) = tx
        .prepare_cached("SELECT id FROM emails WHERE org_id = ?1 AND message_id = ?2")?
        .query_row(params![org_id, m.message_id], |r| r.get::<_, String>(0))
        .optional()?
    {
        return Ok(Received {
            email: get_by_id(tx, &org_id, &id)?,
            created: false,
        });
    }
    // The thread of the newest message it refers to that this deal has.
    let mut thread = None;
    for reference in m.in_reply_to.iter().chain(m.references.iter().rev()) {
        thread = tx
            .prepare_cached(
                "SELECT thread_id FROM emails WHERE org_id = ?1 AND deal_id = ?2 AND message_id = ?3",
            )?
            .query_row(params![org_id, deal_id, reference], |r| r.get::<_, String>(0))
            .optional()?;
        if thread.is_some() {
            break;
        }
    }
    let id = new_id("eml");
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO emails (id, org_id, deal_id, inbox_id, direction, status, message_id, thread_id,
                             in_reply_to, refs, from_address, from_name, to_addresses, cc_addresses,
                             subject, text_body, html_body, headers, attachments, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'inbound', 'received', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 ?15, ?16, ?17, ?18, ?18)",
        params![
            id,
            org_id,
            deal_id,
            inbox_id,
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
            now
        ],
    )?;
    let actor = Actor::system();
    log_activity(
        tx,
        &org_id,
        None,
        "email_received",
        &m.subject,
        format!("From {}", m.from),
        &deal_id,
        now,
    )?;
    let email = get_by_id(tx, &org_id, &id)?;
    events::append(tx, &org_id, &actor, "email.received", &email, None, now)?;
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
        &email.deal_id,
        now,
    )?;
    events::append(tx, &org_id, &actor, "email.opened", &email, None, now)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_usernames() {
        assert_eq!(slug("Acme Corp — Q3 renewal!"), "acme-corp-q3-renewal");
        assert_eq!(slug("  ***  "), "deal");
        assert!(slug(&"x".repeat(100)).len() <= 40);
        assert!(is_username("ann.lee_2-x"));
        assert!(!is_username(".ann") && !is_username("a..b") && !is_username("a b"));
    }

    #[test]
    fn reply_subjects_do_not_pile_up() {
        assert_eq!(reply_subject("Pricing"), "Re: Pricing");
        assert_eq!(reply_subject("RE: Pricing"), "RE: Pricing");
    }
}
